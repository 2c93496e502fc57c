"""Scheduled sweeps settle what time must: lost queue calls, dead leases, expiry."""
import json
import threading

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.core import clock, settings
from chalicelib.domain import devices, sweeps
from chalicelib.domain.messages import first_look as first_look
from chalicelib.storage import aws
from chalicelib.storage.tables import Account, Device, Message
from tests import sending
from tests.concurrency import run_together

PHONE = "+8801712345678"


def jobs_in(device):
    sqs = boto3.client("sqs", region_name="us-east-1")
    got = sqs.receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                              VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.fixture
def send(api, account):
    _, key, device, _ = account

    def go(**extra):
        body, _ = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                      phone_number=PHONE, message="Hello", **extra)
        assert body["status"] == "success", body
        return body
    return go


def fail_sqs_sends():
    def refuse(**kwargs):
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}},
                          "SendMessage")
    aws.sqs().meta.events.register("before-call.sqs.SendMessage", refuse)
    return lambda: aws.sqs().meta.events.unregister("before-call.sqs.SendMessage", refuse)


def test_lost_queue_call_is_queued_by_the_sweep(send, account):
    acct, _, device, _ = account
    clock.freeze()
    restore = fail_sqs_sends()
    body = send()
    restore()
    assert "delayed" in body["message"] and jobs_in(device) == []
    assert sweeps.settle_due_messages()["requeued"] == 0  # not due yet
    clock.advance(settings.current().outbox_grace_seconds)
    assert sweeps.settle_due_messages()["requeued"] == 1
    [job] = jobs_in(device)
    assert job["message_id"] == body["data"]["message_id"] and job["message"] == "Hello"
    assert sweeps.settle_due_messages() == {}  # backed off: nothing due now


def test_sweep_requeue_backs_off(send, account):
    _, _, device, _ = account
    clock.freeze()
    send()
    grace = settings.current().outbox_grace_seconds
    clock.advance(grace)
    assert sweeps.settle_due_messages()["requeued"] == 1
    clock.advance(grace)  # next look is 2x grace later, not yet
    assert sweeps.settle_due_messages() == {}
    clock.advance(grace)
    assert sweeps.settle_due_messages()["requeued"] == 1
    assert len(jobs_in(device)) == 3  # original + 2 copies; the lease makes them send once


def test_unsent_message_expires(send, api, account):
    _, key, _, _ = account
    clock.freeze()
    body = send(valid_for="60")
    clock.advance(61)
    assert sweeps.settle_due_messages()["expired"] == 1
    status, _ = api("query", api_key=key, action="check_status",
                    message_id=body["data"]["message_id"])
    assert status["data"]["status"] == "expired"
    assert "validity" in status["data"]["failed_reason"]
    clock.advance(3600)
    assert sweeps.settle_due_messages() == {}  # left the open index


def test_expires_at_parameter(send, api, account):
    clock.freeze()
    at = clock.fmt(clock.now_ms() + 300_000)
    body = send(expires_at=at)
    stored = Message.get(account[0].account_id, body["data"]["message_id"])
    assert stored.expires_at == clock.now_ms() + 300_000
    for values, parameter in (({"valid_for": "10"}, "valid_for"),
                              ({"valid_for": "soon"}, "valid_for"),
                              ({"expires_at": "2020-01-01 00:00:00"}, "expires_at"),
                              ({"expires_at": "tomorrow"}, "expires_at"),
                              ({"valid_for": "600", "expires_at": at}, "expires_at")):
        bad, _ = api(api_key=account[1], action="send_sms", device_uid=account[2].device_uid,
                     phone_number=PHONE, message="x", **values)
        assert bad["status"] == "error" and bad["data"]["parameter"] == parameter


def test_message_of_a_removed_device_fails_with_a_reason(send, account):
    acct, _, device, _ = account
    clock.freeze()
    body = send()
    devices.remove(acct.account_id, device.device_uid)
    clock.advance(settings.current().outbox_grace_seconds)
    assert sweeps.settle_due_messages()["failed"] == 1
    stored = Message.get(acct.account_id, body["data"]["message_id"])
    assert stored.status == "failed" and "removed" in stored.reason


def _lease(account_id, message_id, attempts, lease_seconds):
    """What a lease writes (jobs._lease): status, attempts and the lease's end; not open_due."""
    message = Message.get(account_id, message_id)
    message.update(actions=[Message.status.set("processing"), Message.attempts.set(attempts),
                            Message.lease_until.set(clock.now_ms() + lease_seconds * 1000)])


def _take(device):
    """The phone receives its queue's jobs and leases them (the real path,
    jobs.lease_received). SQS's visibility runs on real time, not the test's frozen clock: 0
    shows the job again at once, as the lease's end would."""
    from chalicelib.domain import jobs
    sqs = boto3.client("sqs", region_name="us-east-1")
    got = sqs.receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                              VisibilityTimeout=0)
    return [jobs.lease_received(device, json.loads(m["Body"])["message_id"], m["ReceiptHandle"])
            for m in got.get("Messages", [])]


def test_dead_lease_is_released_then_failed_after_the_attempt_limit(send, account):
    acct = account[0]
    clock.freeze()
    mid = send()["data"]["message_id"]
    due = first_look.due_at(Message.get(acct.account_id, mid))
    _lease(acct.account_id, mid, 1, 60)
    clock.advance(61)
    # lease over, but the message is not due yet: the first look enters it, due then
    assert sweeps.settle_due_messages() == {"entered": 1}
    assert Message.get(acct.account_id, mid).open_due == due
    clock.advance((due - clock.now_ms()) // 1000)
    assert sweeps.settle_due_messages()["released"] == 1
    assert Message.get(acct.account_id, mid).status == "pending"
    _lease(acct.account_id, mid, settings.current().max_attempts, 60)
    clock.advance(settings.current().outbox_grace_seconds)
    assert sweeps.settle_due_messages()["failed"] == 1
    stored = Message.get(acct.account_id, mid)
    assert stored.status == "failed" and "without reporting" in stored.reason
    assert stored.presumed is True  # a late "sent" report from the phone may still correct it


def test_a_lease_does_not_move_the_message_in_the_open_index(send, account):
    """A lease writes the message item only: open_due stays (the `open` index is keys only, so
    the lease costs 1 write unit); the sweeps find a leased message at its first due time."""
    acct, _, device, _ = account
    clock.freeze()
    mid = send()["data"]["message_id"]
    before = Message.get(acct.account_id, mid)
    assert _take(device) == ["leased"]
    leased = Message.get(acct.account_id, mid)
    assert leased.status == "processing" and leased.lease_until > clock.now_ms()
    assert (leased.open_shard, leased.open_due) == (before.open_shard, before.open_due)
    assert Message.open_messages.Meta.projection.projection_type == "KEYS_ONLY"


def test_a_message_leased_by_a_phone_that_died_is_settled(send, account):
    """The phone leases a job late (just before the message's due time) and dies: the sweep
    finds it leased at its due, looks again when the lease ends, shows it waiting again, and
    once the attempts are spent fails it. Nothing is left processing forever."""
    acct, _, device, _ = account
    clock.freeze()
    mid = send()["data"]["message_id"]
    due = first_look.due_at(Message.get(acct.account_id, mid))
    clock.advance((due - clock.now_ms()) // 1000 - 10)
    assert _take(device) == ["leased"]
    lease_until = Message.get(acct.account_id, mid).lease_until
    clock.advance(10)
    assert sweeps.settle_due_messages() == {"entered": 1, "leased": 1}
    assert Message.get(acct.account_id, mid).open_due == lease_until  # the rare path's move
    clock.advance(settings.current().lease_seconds - 20)
    assert sweeps.settle_due_messages() == {}  # the lease still runs
    clock.advance(11)
    assert sweeps.settle_due_messages() == {"released": 1}
    assert Message.get(acct.account_id, mid).status == "pending"
    attempts = settings.current().max_attempts
    for attempt in range(2, attempts + 1):  # SQS shows the job again; it dies again
        assert _take(device) == ["leased"]
        assert Message.get(acct.account_id, mid).attempts == attempt
        clock.advance(settings.current().lease_seconds + settings.current().outbox_grace_seconds)
        done = sweeps.settle_due_messages()
        assert done == ({"failed": 1} if attempt == attempts else {"released": 1})
    stored = Message.get(acct.account_id, mid)
    assert stored.status == "failed" and stored.presumed is True and stored.open_due is None


def test_a_lost_requeue_is_queued_again_at_the_next_look(send, account):
    acct, _, device, _ = account
    clock.freeze()
    restore = fail_sqs_sends()
    mid = send()["data"]["message_id"]
    clock.advance(settings.current().outbox_grace_seconds)
    # the first look enters it; the requeue's SendMessage was lost too
    assert sweeps.settle_due_messages() == {"entered": 1, "retry": 1}
    restore()
    assert jobs_in(device) == []
    clock.advance(2 * settings.current().outbox_grace_seconds)
    assert sweeps.settle_due_messages() == {"requeued": 1}
    assert [job["message_id"] for job in jobs_in(device)] == [mid]


def test_a_sweep_racing_leases_and_reports_changes_each_message_once(send, account,
                                                                     atomic_moto):
    """Sweeps, the phone's leases and its reports at once, threads: every message ends once,
    each decision made by a conditional write on the state the sweep read."""
    from chalicelib.domain import jobs
    acct, _, device, _ = account
    clock.freeze()
    mids = [send()["data"]["message_id"] for _ in range(6)]
    clock.advance(settings.current().outbox_grace_seconds)
    results = []

    def phone():
        for outcome in _take(device):
            results.append(outcome)
        for mid in mids[:3]:
            jobs.report(device, mid, "sent")

    threads = [threading.Thread(target=phone)] + [
        threading.Thread(target=lambda: results.append(sweeps.settle_due_messages()))
        for _ in range(2)]
    run_together(threads)
    stored = [Message.get(acct.account_id, m, consistent_read=True) for m in mids]
    assert [m.status for m in stored[:3]] == ["sent"] * 3
    assert all(m.open_due is None for m in stored[:3])
    for m in stored[3:]:  # leased or waiting: still open, and due again later
        assert m.status in ("pending", "processing") and m.open_due is not None
    clock.advance(24 * 3600 + settings.current().lease_seconds)
    while sweeps.settle_due_messages():
        pass
    assert {Message.get(acct.account_id, m).status for m in mids[3:]} <= {"expired", "failed"}


def test_two_sweeps_at_once_requeue_each_message_once(send, account, atomic_moto):
    _, _, device, _ = account
    clock.freeze()
    for _ in range(5):
        send()
    clock.advance(settings.current().outbox_grace_seconds)
    results = []
    threads = [threading.Thread(target=lambda: results.append(sweeps.settle_due_messages()))
               for _ in range(2)]
    run_together(threads)
    assert sum(r["requeued"] for r in results) == 5
    sqs = boto3.client("sqs", region_name="us-east-1")
    attrs = sqs.get_queue_attributes(QueueUrl=device.queue_url,
                                     AttributeNames=["ApproximateNumberOfMessages"])
    assert int(attrs["Attributes"]["ApproximateNumberOfMessages"]) == 10


def test_silent_devices_become_stopped_and_a_fresh_heartbeat_wins(account, api):
    acct, key, device, _ = account
    other, _ = devices.register(acct.account_id, "Phone 2")
    clock.freeze()
    devices.heartbeat(device, "running", battery=80)
    devices.heartbeat(other, "running")
    assert [d["status"] for d in api("query", api_key=key, action="device_status")[0]
            ["data"]] == ["running", "running"]
    clock.advance(settings.current().heartbeat_window_seconds - 1)
    assert devices.stop_silent() == 0
    devices.heartbeat(Device.get(other.device_uid), "running")
    clock.advance(2)
    assert devices.stop_silent() == 1  # only the silent one
    stored = {d.device_uid: d for d in devices.list_devices(acct.account_id)}
    assert stored[device.device_uid].app_state == "stopped" and stored[device.device_uid].live \
        is None
    assert stored[other.device_uid].app_state == "running"
    assert devices.stop_silent() == 0  # idempotent: it left the live index
    devices.heartbeat(stored[device.device_uid], "stopped")
    clock.advance(settings.current().heartbeat_window_seconds * 2)
    assert devices.stop_silent() == 1  # `other` went silent too


def test_sweep_reports_stuck_messages_as_a_metric(send, monkeypatch, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "smsgw-test-settle_messages")
    clock.freeze()
    send()
    send()
    sweeps.settle_due_messages()
    quiet = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert quiet["StuckMessages"] == 0
    clock.advance(settings.current().outbox_grace_seconds)
    sweeps.settle_due_messages()
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["StuckMessages"] == 2 and line["Stage"] == settings.current().stage
    assert line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "StuckMessages"


def test_a_large_backlog_is_settled_over_bounded_runs(account, monkeypatch, settings_override):
    """The first look reads at most FIRST_LOOK_PAGE of an account's messages a run, the index
    part at most PAGE due messages per shard, and a run stops taking new ones when its time
    budget is spent; what it left is still there for the next runs, each settled once."""
    acct, _, device, _ = account
    clock.freeze()
    sent = [sending.send(acct.account_id, device, PHONE, f"m{n}").message.message_id
            for n in range(30)]
    clock.advance(settings.current().outbox_grace_seconds + 1)
    swept_to = Account.get(acct.account_id).swept_to
    assert sweeps.settle_due_messages(budget_seconds=0) == {}  # nothing done
    assert Account.get(acct.account_id).swept_to == swept_to
    assert {Message.get(acct.account_id, m).requeues for m in sent} == {0}
    settings_override(first_look_page=7)
    runs = []
    while done := sweeps.settle_due_messages():
        assert done["entered"] == done["requeued"] <= 7
        runs.append(done)
    assert len(runs) == 5 and Account.get(acct.account_id).swept_to >= max(sent)
    assert {Message.get(acct.account_id, m).requeues for m in sent} == {1}
    # due again (the requeue's backoff): now from the index, at most PAGE per shard a run
    clock.advance(4 * settings.current().outbox_grace_seconds + 1)
    monkeypatch.setattr(sweeps, "PAGE", 2)
    runs = []
    while done := sweeps.settle_due_messages():
        assert sum(done.values()) <= 2 * settings.current().open_shards and not done["entered"]
        runs.append(done)
    assert sum(run["requeued"] for run in runs) == 30 and len(runs) >= 2
    assert {Message.get(acct.account_id, m).requeues for m in sent} == {2}
