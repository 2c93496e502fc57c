"""Daily counters (chalicelib/domain/insight/stats.py) on moto: real state changes -> the
tables' streams -> the app's count_outcomes handler -> DailyCount; a replayed or concurrent
window counts each message once."""
import json
import threading

import pytest

from chalicelib.core import clock
from chalicelib.domain import devices, incoming, jobs
from chalicelib.domain.insight import stats
from chalicelib.storage.insight_tables import DailyCount
from tests import sending


@pytest.fixture
def pumps(aws_mock):
    from localgw import events as local_events
    return local_events.EventPumps()


def traffic(device):
    """Three messages (delivered, sent, failed) and one incoming SMS."""
    ids = []
    for text in ("one", "two", "three"):
        accepted = sending.send(device.account_id, device, "+14155550100", text)
        ids.append(accepted.message.message_id)
    assert len(jobs.lease_from_queue(device, 0, 10)) == 3
    jobs.report(device, ids[0], "sent")
    jobs.report(device, ids[0], "delivered")
    jobs.report(device, ids[1], "sent")
    jobs.report(device, ids[2], "failed", "No credit.")
    incoming.store(device, "in-1", "+14155550111", "hi", 1, clock.now_ms())
    return ids


def stream_window(pumps):
    """Every record of the messages and incoming streams so far, as one final window event
    per shard (the shape Lambda gives a tumbling-window invocation)."""
    windows = []
    for arn in pumps._stream_arns():
        if not any(f"-{short}/" in arn for short in stats.COUNTED_TABLES):
            continue
        for shard in pumps.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = pumps.streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            records = [pumps._lambda_record(r, arn) for r in pumps.streams.get_records(
                ShardIterator=iterator, Limit=1000)["Records"]]
            windows.append({"Records": records, "eventSourceARN": arn,
                            "shardId": shard["ShardId"],
                            "window": {"start": "2026-12-04T10:00:00Z",
                                       "end": "2026-12-04T10:15:00Z"},
                            "state": {}, "isFinalInvokeForWindow": True,
                            "isWindowTerminatedEarly": False})
    return windows


def today(account_id):
    return stats.read(account_id, days=1)


EXPECTED = {"delivered": 1, "sent": 2, "failed": 1, "expired": 0, "cancelled": 0, "received": 1}


def test_outcomes_are_counted_per_day_and_per_phone(account, pumps):
    acct, _, device, _ = account
    traffic(device)
    pumps.pump_streams()
    figures = today(acct.account_id)
    assert figures["totals"] == EXPECTED
    assert figures["days"][-1] == {"day": figures["days"][-1]["day"], **EXPECTED}
    phone = figures["phones"][device.device_id]
    assert {k: phone[k] for k in EXPECTED} == EXPECTED
    assert phone["delivery_rate"] == 0.5
    assert phone["failures_by_reason"] == {"No credit.": 1}
    assert phone["median_accept_to_sent_seconds"] == 2  # reported at once: the 2 s bucket


def test_account_without_webhooks_is_counted_the_filter_passes_every_counted_record(account,
                                                                                   pumps):
    acct, _, device, _ = account
    traffic(device)
    counted = [r for w in stream_window(pumps) for r in w["Records"] if stats._facts(r)]
    assert len(counted) == 5  # delivered (with its sent), sent, failed, incoming
    for record in counted:
        short = "messages" if "-messages/" in record["eventSourceARN"] else "incoming"
        [pattern] = [json.loads(f["Pattern"]) for f in stats.stream_filters(short)]
        if short == "messages":
            assert record["dynamodb"]["NewImage"]["status"]["S"] in \
                pattern["dynamodb"]["NewImage"]["status"]["S"]
            assert "emits_events" not in json.dumps(pattern)
        else:
            assert record["eventName"] in pattern["eventName"]


def test_a_replayed_window_counts_once(account, pumps):
    acct, _, device, _ = account
    traffic(device)
    windows = stream_window(pumps)
    for _ in range(3):  # Lambda hands the same final window over again
        for window in windows:
            assert pumps.app.count_outcomes(window, None) == {"state": {}}
    assert today(acct.account_id)["totals"] == EXPECTED


def test_a_window_ended_early_and_continued_counts_both_runs(account, pumps):
    """Issue 29: past 1 MB of state Lambda ends a window early and continues the same window
    (same start) with a fresh state; the continuation's sums are not "already counted". A
    retry of either run still counts once."""
    acct, _, device, _ = account
    traffic(device)
    for window in stream_window(pumps):
        records = window["Records"]
        counted = [i for i, r in enumerate(records) if stats._facts(r)]
        half = counted[1] if len(counted) > 1 else len(records)  # a counted record each side
        runs = [{**window, "Records": records[:half], "isWindowTerminatedEarly": True},
                {**window, "Records": records[half:]}]
        for run in runs + runs:  # each run, then each again (Lambda retrying it)
            stats.count_window(run)
    assert today(acct.account_id)["totals"] == EXPECTED


def test_a_window_in_several_batches_counts_what_one_batch_does(account, pumps):
    acct, _, device, _ = account
    traffic(device)
    states = []
    for window in stream_window(pumps):
        state, records = {}, window["Records"]
        for i in range(0, len(records), 2):  # non-final invocations carry the sums as state
            state = stats.count_window({**window, "Records": records[i:i + 2], "state": state,
                                        "isFinalInvokeForWindow": False})["state"]
        states.append((window, state))
    assert not DailyCount.count(acct.account_id)  # nothing written before a window ends
    for window, state in states:
        stats.count_window({**window, "Records": [], "state": state})
    assert today(acct.account_id)["totals"] == EXPECTED


def test_concurrent_final_invocations_count_once(account, pumps, atomic_moto):
    """Eight threads hand the same windows over at once: one transaction per window part
    commits, the others are cancelled by the window's mark."""
    acct, _, device, _ = account
    traffic(device)
    windows = stream_window(pumps)
    barrier = threading.Barrier(8)
    errors = []

    def run():
        try:
            barrier.wait()
            for window in windows:
                stats.count_window(window)
        except Exception as exc:  # surfaced below
            errors.append(exc)
    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert today(acct.account_id)["totals"] == EXPECTED


def test_a_late_sent_report_takes_a_presumed_failure_back(account, pumps):
    acct, _, device, _ = account
    accepted = sending.send(device.account_id, device, "+14155550100", "late")
    message_id = accepted.message.message_id
    assert jobs.lease_from_queue(device, 0, 10)
    jobs.report(device, message_id, "failed", "Generic failure")
    pumps.pump_streams()
    assert today(acct.account_id)["totals"]["failed"] == 1
    record = {"eventName": "MODIFY", "eventSourceARN": stream_window(pumps)[0]["eventSourceARN"],
              "dynamodb": {"ApproximateCreationDateTime": clock.now_ms() / 1000,
                           "SequenceNumber": "9" * 20,
                           "OldImage": {"account_id": {"S": acct.account_id},
                                        "message_id": {"N": str(message_id)},
                                        "status": {"S": "failed"},
                                        "reason": {"S": "Generic failure"},
                                        "device_id": {"N": str(device.device_id)}},
                           "NewImage": {"account_id": {"S": acct.account_id},
                                        "message_id": {"N": str(message_id)},
                                        "status": {"S": "sent"},
                                        "device_id": {"N": str(device.device_id)}}}}
    stats.count_window({"Records": [record], "shardId": "s", "window": {"start": "late"},
                        "isFinalInvokeForWindow": True})
    figures = today(acct.account_id)
    assert figures["totals"]["failed"] == 0 and figures["totals"]["sent"] == 1
    assert figures["phones"][device.device_id]["failures_by_reason"] == {}


def test_reading_a_page_is_one_query(account, pumps, aws_calls):
    acct, _, device, _ = account
    traffic(device)
    pumps.pump_streams()
    del aws_calls[:]
    stats.read(acct.account_id)
    assert list(aws_calls) == [("dynamodb", "Query")]
    assert devices  # the phone's figures came from the same Query
