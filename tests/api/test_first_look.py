"""The sweeps' first look from the messages table (chalicelib/domain/messages/first_look.py):
a message
sent for now enters the `open` index only if it is still open a minute later, and no open
message is ever left without an entry or a first look to come."""
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import boto3

from chalicelib.core import clock, ids, settings
from chalicelib.domain import jobs, messages, sweeps
from chalicelib.domain.messages import first_look as first_look
from chalicelib.storage.tables import Account, Message
from tests import sending
from tests.concurrency import run_together

PHONE = "+8801712345678"
ROOT = Path(__file__).resolve().parents[2]


def _send(acct, device, text="Hello"):
    return sending.send(acct.account_id, device, PHONE, text).message.message_id


def _take(device, visibility=0):
    """The phone receives its queue's jobs and leases them (the real path, jobs.lease_received)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    got = sqs.receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                              VisibilityTimeout=visibility)
    return {json.loads(m["Body"])["message_id"]: jobs.lease_received(
        device, json.loads(m["Body"])["message_id"], m["ReceiptHandle"])
        for m in got.get("Messages", [])}


def _stored(acct, mid):
    return Message.get(acct.account_id, mid, consistent_read=True)


def test_a_message_reported_in_time_never_enters_the_open_index(account, aws_calls):
    """The lone SMS's path: send, lease, report; then the first look reads it and writes
    nothing for it. No write of the path names the index's keys."""
    acct, _, device, _ = account
    clock.freeze()
    mid = _send(acct, device)
    assert _stored(acct, mid).open_shard is None
    assert _take(device) == {mid: "leased"}
    assert jobs.report(device, mid, "delivered")["result"] == "ok"
    writes = [params for service, op, params in aws_calls.requests
              if op in ("PutItem", "UpdateItem") and "messages" in params["TableName"]]
    assert len(writes) == 3  # send, lease, report
    assert not any("open_shard" in json.dumps(params) and "REMOVE" not in json.dumps(params)
                   for params in writes)
    clock.advance(settings.current().first_look_seconds)
    aws_calls.clear()
    assert sweeps.settle_due_messages() == {}
    stored = _stored(acct, mid)
    assert stored.status == "delivered" and stored.open_shard is None
    assert Account.get(acct.account_id).swept_to >= mid  # read once, not again
    assert ("dynamodb", "UpdateItem") in aws_calls  # the watermark moved
    aws_calls.clear()
    clock.advance(60)
    assert sweeps.settle_due_messages() == {}
    assert ("dynamodb", "UpdateItem") not in aws_calls  # nothing new: the watermark stays


def test_the_first_look_enters_only_open_messages_due_as_before(account):
    acct, key, device, _ = account
    clock.freeze()
    delivered, leased = _send(acct, device, "d"), _send(acct, device, "l")
    assert _take(device, visibility=30) == {delivered: "leased", leased: "leased"}
    jobs.report(device, delivered, "delivered")
    waiting, cancelled = _send(acct, device, "w"), _send(acct, device, "c")
    messages.cancel(acct.account_id, cancelled)
    clock.advance(settings.current().first_look_seconds - 1)
    assert sweeps.settle_due_messages() == {}  # not a minute old yet: not read
    clock.advance(1)
    assert sweeps.settle_due_messages() == {"entered": 2}  # due at created + grace, later
    created = _stored(acct, delivered).created_at
    for mid in (leased, waiting):
        stored = _stored(acct, mid)
        assert stored.open_shard == messages.open_shard(mid)
        assert stored.open_due == created + settings.current().outbox_grace_seconds * 1000
    assert _stored(acct, delivered).open_shard is None
    assert _stored(acct, cancelled).open_shard is None
    assert sweeps.settle_due_messages() == {}  # read once
    clock.advance(settings.current().outbox_grace_seconds - settings.current().first_look_seconds)
    # from the index now, as before: the phone holding one died (its lease ran out at 60 s)
    assert sweeps.settle_due_messages() == {"released": 1, "requeued": 1}


def test_a_write_that_lands_within_the_lag_is_read_by_a_later_run(account):
    """A send takes its id from the clock, then writes: a write landing up to
    FIRST_LOOK_SECONDS after its id's time is still read (the watermark stops that far back)."""
    acct, _, device, _ = account
    clock.freeze()
    t0 = clock.now_ms()
    early = _send(acct, device)
    assert _take(device) == {early: "leased"}
    jobs.report(device, early, "delivered")
    clock.advance(settings.current().first_look_seconds + 30)
    assert sweeps.settle_due_messages() == {}
    assert Account.get(acct.account_id).swept_to == ids.message_id_floor(t0 + 30_001) - 1
    clock.freeze(t0 + 31_000)  # a send that chose its id 30 s before this run...
    late = _send(acct, device)
    clock.freeze(t0 + (settings.current().first_look_seconds + 30) * 1000)  # ...and wrote only now
    assert sweeps.settle_due_messages() == {}  # not a minute old by its id yet
    clock.advance(settings.current().outbox_grace_seconds)
    assert sweeps.settle_due_messages() == {"entered": 1, "requeued": 1}
    assert _stored(acct, late).open_shard


def test_the_api_timeout_leaves_the_first_look_its_margin():
    """The argument above needs every send's write to land within FIRST_LOOK_SECONDS of its
    id: the API function's timeout (plus skew) must stay well inside it, in every stage."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    timeout = config["lambda_functions"]["api_handler"]["lambda_timeout"]
    for stage in config["stages"].values():
        lag = int(stage.get("environment_variables", {}).get(
            "SMSGW_FIRST_LOOK_SECONDS", settings.current().first_look_seconds))
        assert 2 * timeout <= lag, (timeout, lag)


def test_an_account_from_before_the_watermark_is_read_back_a_day(account):
    """An account created before `swept_to` existed (an upgraded stack): its first run reads
    the last day, so a message accepted between the upgrade and that run is not missed."""
    acct, _, device, _ = account
    clock.freeze()
    Account(account_id=acct.account_id).update(actions=[Account.swept_to.remove()])
    Account(account_id=acct.account_id).update(actions=[Account.created_at.set(0)])
    mid = _send(acct, device)
    clock.advance(3 * 3600)
    assert sweeps.settle_due_messages()["entered"] == 1
    assert _stored(acct, mid).open_shard
    assert Account.get(acct.account_id).swept_to > mid


def test_first_looks_racing_a_phone_leave_no_open_message_unseen(account, atomic_moto,
                                                                  monkeypatch):
    """Threads: three sweeps and a phone that leases, reports and fails jobs, all at once.
    Whatever the interleaving, each message is entered at most once, and afterwards every
    message still open has an entry (so the index settles it later)."""
    acct, _, device, _ = account
    clock.freeze()
    mids = [_send(acct, device, f"m{n}") for n in range(24)]
    clock.advance(settings.current().first_look_seconds)
    entered, original = [], first_look.enter

    def recording(message):
        ok = original(message)
        if ok:
            entered.append(message.message_id)
        return ok
    monkeypatch.setattr(first_look, "enter", recording)
    results = []

    def phone():
        for mid, outcome in _take(device, visibility=30).items():
            if outcome == "leased" and mid % 3:
                jobs.report(device, mid, "sent" if mid % 3 == 1 else "failed", "x")

    threads = [threading.Thread(target=phone) for _ in range(2)] + [
        threading.Thread(target=lambda: results.append(sweeps.settle_due_messages()))
        for _ in range(3)]
    run_together(threads)
    assert len(entered) == len(set(entered))
    assert sum(r["entered"] for r in results) == len(entered)
    stored = [_stored(acct, m) for m in mids]
    assert all(m.open_shard for m in stored if m.status in messages.OPEN)
    assert not any(m.open_shard for m in stored if m.status not in messages.OPEN)
    assert Account.get(acct.account_id).swept_to >= max(mids)
    clock.advance(24 * 3600 + settings.current().lease_seconds)
    while sweeps.settle_due_messages():
        pass
    assert not {m.status for m in (_stored(acct, mid) for mid in mids)} & set(messages.OPEN)


def test_a_run_cut_by_its_budget_leaves_the_rest_after_the_watermark(account, monkeypatch):
    """The budget can end a run in the middle of an account's new messages: the watermark
    moves only past the ones handled, and the next run takes the rest, each once."""
    acct, _, device, _ = account
    clock.freeze()
    mids = [_send(acct, device, f"m{n}") for n in range(5)]
    clock.advance(settings.current().outbox_grace_seconds)
    start, ticks = time.monotonic(), iter(range(1000))
    # first_look's clock only: its account check and two messages come before the run's
    # deadline (its start + 4 s), the third after it
    monkeypatch.setattr(first_look, "time", SimpleNamespace(
        monotonic=lambda: start + 1.5 * next(ticks)))
    done = sweeps.settle_due_messages(budget_seconds=4)
    assert done == {"entered": 2, "requeued": 2}
    assert Account.get(acct.account_id).swept_to == sorted(mids)[1]  # ids: oldest first
    monkeypatch.undo()
    assert sweeps.settle_due_messages() == {"entered": 3, "requeued": 3}
    assert {_stored(acct, m).requeues for m in mids} == {1}
