"""The device protocol through the real handlers (chalice.test.Client on moto): every bad input
answers a clear 4xx and changes nothing; the lease and report rules hold."""
import json

import pytest

from chalicelib.core import clock, settings
from chalicelib.domain import messages
from chalicelib.domain.messages import history as message_history
from chalicelib.storage import aws
from chalicelib.storage.tables import Device, IncomingMessage, Message
from tests import sending


def _auth(token):
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def post(client, path, token, body):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    answer = client.http.post(path, headers=_auth(token), body=raw)
    return answer.status_code, json.loads(answer.body)


def get(client, path, token):
    answer = client.http.get(path, headers=_auth(token))
    return answer.status_code, json.loads(answer.body)


def send(account, text="Hello", **kw):
    acct, _, device, _ = account
    return sending.send(acct.account_id, device, "+8801712345678", text, **kw).message


def stored(account, message_id):
    return Message.get(account[0].account_id, message_id, consistent_read=True)


def test_fetch_leases_the_job_and_report_settles_it(client, account):
    token = account[3]
    message = send(account)
    status, body = get(client, "/device/jobs?wait=0&max=10", token)
    assert status == 200
    assert [j["message_id"] for j in body["jobs"]] == [message.message_id]
    job = body["jobs"][0]
    assert (job["phone_number"], job["message"], job["sim_slot"]) == ("+8801712345678", "Hello",
                                                                      1)
    leased = stored(account, message.message_id)
    assert (leased.status, leased.attempts) == ("processing", 1)
    assert leased.receipt_handle and leased.lease_until > clock.now_ms()

    status, body = post(client, "/device/reports", token,
                        {"reports": [{"message_id": message.message_id, "status": "sent"}]})
    assert status == 200 and body["results"][0]["result"] == "ok"
    done = stored(account, message.message_id)
    assert done.status == "sent" and done.processed_at is not None
    # The SQS message is gone: nothing comes back even once the lease would have ended.
    attrs = aws.sqs().get_queue_attributes(QueueUrl=account[2].queue_url,
                                           AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    status, body = post(client, "/device/reports", token,
                        {"reports": [{"message_id": message.message_id,
                                      "status": "delivered"}]})
    assert body["results"][0] == {"message_id": message.message_id, "result": "ok",
                                  "status": "delivered"}
    # Late and repeated reports are harmless and cannot move it backwards.
    status, body = post(client, "/device/reports", token,
                        {"reports": [{"message_id": message.message_id, "status": "sent"},
                                     {"message_id": message.message_id, "status": "failed",
                                      "reason": "late"}]})
    assert status == 200
    assert [r["result"] for r in body["results"]] == ["ignored", "ignored"]
    assert stored(account, message.message_id).status == "delivered"


def test_failed_report_records_reason_and_deletes_job(client, account):
    message = send(account)
    get(client, "/device/jobs?wait=0", account[3])
    status, body = post(client, "/device/reports", account[3],
                        {"reports": [{"message_id": message.message_id, "status": "failed",
                                      "reason": "No service"}]})
    assert body["results"][0]["result"] == "ok"
    failed = stored(account, message.message_id)
    assert (failed.status, failed.reason) == ("failed", "No service")
    assert messages.status_of(failed)["failed_reason"] == "No service"


def test_a_job_received_twice_is_handed_out_once(client, account):
    message = send(account)
    # The same job twice on the queue (SQS at-least-once, or a re-queue by a sweep).
    messages.enqueue(account[2], message, "Hello")
    status, body = get(client, "/device/jobs?wait=0&max=10", account[3])
    assert [j["message_id"] for j in body["jobs"]] == [message.message_id]
    post(client, "/device/reports", account[3],
         {"reports": [{"message_id": message.message_id, "status": "sent"}]})
    assert stored(account, message.message_id).attempts == 1


def test_live_lease_is_skipped_expired_lease_is_taken_again(client, account, settings_override):
    settings_override(lease_seconds=0)  # SQS shows it again at once
    message = send(account)
    _, first = get(client, "/device/jobs?wait=0", account[3])
    assert len(first["jobs"]) == 1
    item = stored(account, message.message_id)
    item.update(actions=[Message.lease_until.set(clock.now_ms() + 60_000)])
    _, second = get(client, "/device/jobs?wait=0", account[3])
    assert second["jobs"] == []  # a live lease: not handed out, not deleted
    clock.advance(61)
    _, third = get(client, "/device/jobs?wait=0", account[3])
    assert [j["message_id"] for j in third["jobs"]] == [message.message_id]
    assert stored(account, message.message_id).attempts == 2


def test_too_many_attempts_fail_the_message(client, account, settings_override):
    settings_override(lease_seconds=0)
    message = send(account)
    for _ in range(settings.current().max_attempts):
        _, body = get(client, "/device/jobs?wait=0", account[3])
        assert len(body["jobs"]) == 1
        clock.advance(1)
    _, body = get(client, "/device/jobs?wait=0", account[3])
    assert body["jobs"] == []
    failed = stored(account, message.message_id)
    assert failed.status == "failed" and "without reporting" in failed.reason
    _, body = get(client, "/device/jobs?wait=0", account[3])
    assert body["jobs"] == []  # and its SQS message was deleted


def test_expired_job_is_not_handed_out(client, account):
    message = send(account, valid_for_seconds=5)
    clock.advance(10)
    _, body = get(client, "/device/jobs?wait=0", account[3])
    assert body["jobs"] == []
    assert stored(account, message.message_id).status == "expired"


def test_terminal_message_job_is_dropped(client, account):
    message = send(account)
    stored(account, message.message_id).update(actions=[Message.status.set("failed")])
    _, body = get(client, "/device/jobs?wait=0", account[3])
    assert body["jobs"] == []
    attrs = aws.sqs().get_queue_attributes(QueueUrl=account[2].queue_url,
                                           AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == attrs[
        "ApproximateNumberOfMessagesNotVisible"] == "0"


def test_another_devices_token_cannot_report(client, account):
    from chalicelib.domain import accounts, devices
    message = send(account)
    get(client, "/device/jobs?wait=0", account[3])
    _, other_token = devices.register(account[0].account_id, "Phone 2")
    stranger = accounts.create_account("Other")
    _, stranger_token = devices.register(stranger.account_id, "Their phone")
    for token in (other_token, stranger_token):
        status, body = post(client, "/device/reports", token,
                            {"reports": [{"message_id": message.message_id, "status": "failed",
                                          "reason": "x"}]})
        assert status == 200 and body["results"][0]["result"] == "rejected"
        _, jobs = get(client, "/device/jobs?wait=0", token)
        assert jobs["jobs"] == []
    assert stored(account, message.message_id).status == "processing"


def test_incoming_is_stored_once_and_in_history(client, account):
    item = {"device_message_id": "42", "phone_number": "+8801812345678", "message": "Hi there",
            "sim_slot": 2, "received_at": clock.now_ms() - 5000}
    status, first = post(client, "/device/incoming", account[3], {"messages": [item]})
    assert status == 200 and first["results"][0]["result"] == "stored"
    status, again = post(client, "/device/incoming", account[3], {"messages": [item]})
    assert again["results"][0]["result"] == "duplicate"
    assert again["results"][0]["message_id"] == first["results"][0]["message_id"]
    assert len(list(IncomingMessage.query(account[0].account_id))) == 1
    entries, _ = message_history.history(account[0].account_id, "incoming")
    assert [(e["phone_number"], e["message"], e["sim_slot"]) for e in entries] == [
        ("+8801812345678", "Hi there", 2)]


def test_heartbeat_and_poll_make_the_device_running(client, account):
    from chalicelib.domain import devices
    status, body = post(client, "/device/heartbeat", account[3],
                        {"app_state": "running", "battery": 80, "signal": 3, "sim_count": 2})
    assert status == 200 and body["status"] == "running"
    device = Device.get(account[2].device_uid)
    assert devices.describe(device)["status"] == "running"
    assert (device.battery, device.signal) == (80, 3)
    post(client, "/device/heartbeat", account[3], {"app_state": "stopped"})
    assert devices.describe(Device.get(account[2].device_uid))["status"] == "stopped"
    get(client, "/device/jobs?wait=0", account[3])
    assert devices.describe(Device.get(account[2].device_uid))["status"] == "running"
    clock.advance(settings.current().heartbeat_window_seconds + 1)
    assert devices.describe(Device.get(account[2].device_uid))["status"] == "stopped"


BAD_TOKENS = [None, "", "Bearer", "Bearer nonsense", "Bearer 0123456789abcdef.wrong",
              "Basic abc"]


@pytest.mark.parametrize("header", BAD_TOKENS)
@pytest.mark.parametrize("method,path", [("GET", "/device/jobs?wait=0"),
                                         ("POST", "/device/reports"),
                                         ("POST", "/device/incoming"),
                                         ("POST", "/device/heartbeat")])
def test_bad_token_is_401(client, account, header, method, path):
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Authorization"] = header
    if method == "GET":
        answer = client.http.get(path, headers=headers)
    else:
        answer = client.http.post(path, headers=headers, body='{"app_state": "running"}')
    assert answer.status_code == 401
    assert json.loads(answer.body)["error"]["code"] == "unauthorized"
    assert Device.get(account[2].device_uid).last_seen is None


def test_wrong_secret_of_a_real_device_is_401(client, account):
    uid = account[2].device_uid
    status, body = get(client, "/device/jobs?wait=0", f"{uid}.not-the-secret")
    assert status == 401


BAD_FETCH = [("wait=abc", "wait"), ("wait=-1", "wait"), ("max=0", "max"), ("max=x", "max"),
             ("wait=1&wait=2", "wait"), ("limit=3", "limit"), ("wait=99999999999", "wait")]


@pytest.mark.parametrize("query,parameter", BAD_FETCH)
def test_bad_fetch_parameters(client, account, query, parameter):
    message = send(account)
    status, body = get(client, f"/device/jobs?{query}", account[3])
    assert status == 400, body
    assert body["error"]["parameter"] == parameter and body["error"]["message"]
    assert stored(account, message.message_id).status == "pending"


def test_large_wait_and_max_are_capped(client, account, settings_override):
    settings_override(max_poll_wait_seconds=0)
    send(account)
    status, body = get(client, "/device/jobs?wait=999&max=500", account[3])
    assert status == 200 and len(body["jobs"]) == 1


BAD_REPORTS = [
    (b"not json", None), ("[1]", None), ({}, "reports"), ({"reports": []}, "reports"),
    ({"reports": {"message_id": 1}}, "reports"), ({"reports": [1]}, "a report"),
    ({"reports": [{"status": "sent"}]}, "message_id"),
    ({"reports": [{"message_id": "12", "status": "sent"}]}, "message_id"),
    ({"reports": [{"message_id": True, "status": "sent"}]}, "message_id"),
    ({"reports": [{"message_id": -1, "status": "sent"}]}, "message_id"),
    ({"reports": [{"message_id": 2 ** 60, "status": "sent"}]}, "message_id"),
    ({"reports": [{"message_id": 1, "status": "done"}]}, "status"),
    ({"reports": [{"message_id": 1}]}, "status"),
    ({"reports": [{"message_id": 1, "status": "failed"}]}, "reason"),
    ({"reports": [{"message_id": 1, "status": "failed", "reason": " "}]}, "reason"),
    ({"reports": [{"message_id": 1, "status": "failed", "reason": "x" * 501}]}, "reason"),
    ({"reports": [{"message_id": 1, "status": "sent", "reason": "why"}]}, "reason"),
    ({"reports": [{"message_id": 1, "status": "sent", "extra": 1}]}, "extra"),
    ({"reports": [{"message_id": 1, "status": "sent"}] * 2}, "message_id"),
    ({"reports": [{"message_id": n, "status": "sent"} for n in range(50)]}, "reports"),
    ({"reports": [], "more": 1}, "more"),
]


@pytest.mark.parametrize("body,parameter", BAD_REPORTS)
def test_bad_reports(client, account, body, parameter):
    message = send(account)
    get(client, "/device/jobs?wait=0", account[3])
    if isinstance(body, dict) and body.get("reports") and isinstance(body["reports"], list):
        # put a valid report for the real message first: a bad item must void the whole batch
        body = {**body, "reports": [{"message_id": message.message_id, "status": "sent"}]
                + body["reports"]}
    status, answer = post(client, "/device/reports", account[3], body)
    assert status == 400, answer
    assert answer["error"]["parameter"] == parameter and answer["error"]["message"]
    assert stored(account, message.message_id).status == "processing"


def test_unsupported_content_type_and_query_on_post(client, account):
    answer = client.http.post("/device/heartbeat", body='{"app_state": "running"}',
                              headers={"Authorization": f"Bearer {account[3]}",
                                       "Content-Type": "text/xml"})
    assert answer.status_code == 400
    answer = client.http.post("/device/heartbeat?x=1", body='{"app_state": "running"}',
                              headers=_auth(account[3]))
    assert answer.status_code == 400 and json.loads(answer.body)["error"]["parameter"] == "x"
    assert Device.get(account[2].device_uid).last_seen is None


GOOD_IN = {"device_message_id": "a1", "phone_number": "+8801812345678", "message": "Hi",
           "received_at": 1_760_000_000_000}
BAD_INCOMING = [
    ({"messages": []}, "messages"), ({"messages": "x"}, "messages"),
    ({"messages": [{**GOOD_IN, "device_message_id": ""}]}, "device_message_id"),
    ({"messages": [{**GOOD_IN, "device_message_id": 7}]}, "device_message_id"),
    ({"messages": [{**GOOD_IN, "device_message_id": "a b"}]}, "device_message_id"),
    ({"messages": [{**GOOD_IN, "device_message_id": "x" * 129}]}, "device_message_id"),
    ({"messages": [{**GOOD_IN, "phone_number": ""}]}, "phone_number"),
    ({"messages": [{**GOOD_IN, "phone_number": "1" * 40}]}, "phone_number"),
    ({"messages": [{**GOOD_IN, "message": ""}]}, "message"),
    ({"messages": [{**GOOD_IN, "message": None}]}, "message"),
    ({"messages": [{**GOOD_IN, "message": "x" * 5001}]}, "message"),
    ({"messages": [{**GOOD_IN, "sim_slot": 3}]}, "sim_slot"),
    ({"messages": [{**GOOD_IN, "sim_slot": "1"}]}, "sim_slot"),
    ({"messages": [{**GOOD_IN, "received_at": "2025-01-01"}]}, "received_at"),
    ({"messages": [{k: v for k, v in GOOD_IN.items() if k != "received_at"}]}, "received_at"),
    ({"messages": [{**GOOD_IN, "received_at": 2 ** 52}]}, "received_at"),
    ({"messages": [{**GOOD_IN, "from": "x"}]}, "from"),
    ({"messages": [GOOD_IN, GOOD_IN]}, "device_message_id"),
]


@pytest.mark.parametrize("body,parameter", BAD_INCOMING)
def test_bad_incoming(client, account, body, parameter):
    status, answer = post(client, "/device/incoming", account[3], body)
    assert status == 400, answer
    assert answer["error"]["parameter"] == parameter
    assert list(IncomingMessage.query(account[0].account_id)) == []


BAD_HEARTBEATS = [
    ({}, "app_state"), ({"app_state": "RUNNING"}, "app_state"), ({"app_state": 1}, "app_state"),
    ({"app_state": "running", "battery": 101}, "battery"),
    ({"app_state": "running", "battery": "50"}, "battery"),
    ({"app_state": "running", "signal": 5}, "signal"),
    ({"app_state": "running", "sim_count": 3}, "sim_count"),
    ({"app_state": "running", "sim_count": True}, "sim_count"),
    ({"app_state": "running", "gps": 1}, "gps"),
]


@pytest.mark.parametrize("body,parameter", BAD_HEARTBEATS)
def test_bad_heartbeat(client, account, body, parameter):
    status, answer = post(client, "/device/heartbeat", account[3], body)
    assert status == 400, answer
    assert answer["error"]["parameter"] == parameter
    assert Device.get(account[2].device_uid).last_seen is None


def test_late_sent_report_corrects_a_presumed_failure_but_not_a_reported_one(
        client, account, settings_override):
    settings_override(lease_seconds=0)
    slow = send(account, text="slow phone")
    for _ in range(settings.current().max_attempts + 1):
        get(client, "/device/jobs?wait=0", account[3])
        clock.advance(1)
    presumed = stored(account, slow.message_id)
    assert presumed.status == "failed" and presumed.presumed is True
    # The phone did send it, and says so late: the client must not be told it failed.
    _, body = post(client, "/device/reports", account[3], {"reports": [
        {"message_id": slow.message_id, "status": "sent"}]})
    assert body["results"][0]["result"] == "ok"
    corrected = stored(account, slow.message_id)
    assert corrected.status == "sent" and corrected.reason is None and not corrected.presumed
    assert corrected.processed_at is not None

    reported = send(account, text="real failure")
    get(client, "/device/jobs?wait=0", account[3])
    post(client, "/device/reports", account[3], {"reports": [
        {"message_id": reported.message_id, "status": "failed", "reason": "no signal"}]})
    _, body = post(client, "/device/reports", account[3], {"reports": [
        {"message_id": reported.message_id, "status": "sent"}]})
    assert body["results"][0]["result"] == "ignored"
    assert stored(account, reported.message_id).status == "failed"
