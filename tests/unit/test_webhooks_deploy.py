"""The generated template wires webhooks as the code expects: streams on exactly the tables the
events are read from, every stream feeding `emit_events`, the queue `deliver_webhooks` reads
(named as settings name it) with a dead-letter queue and an alarm, and the cold-start rule."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.core import settings
from tests import sending

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["dev", "prod"])
def generated(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "resources.json"
    subprocess.run([sys.executable, "deploy/make_template.py", request.param, "--template",
                    str(out)], cwd=ROOT, check=True)
    return request.param, json.loads(out.read_text())["Resources"]


def test_streams_on_the_event_tables_only(generated):
    stage, resources = generated
    streamed = {r["Properties"]["TableName"]: r["Properties"].get("StreamSpecification")
                for r in resources.values() if r.get("Type") == "AWS::DynamoDB::Table"}
    wanted = {f"smsgw-{stage}-{short}" for short in settings.EVENT_SOURCE_TABLES}
    assert {name for name, spec in streamed.items() if spec} == wanted
    assert all(streamed[name] == {"StreamViewType": "NEW_AND_OLD_IMAGES"} for name in wanted)


def test_every_event_stream_feeds_emit_events_and_failures_are_kept(generated):
    stage, resources = generated
    events = resources["EmitEvents"]["Properties"]["Events"]
    # The name chalice gives its one stream source, so the merge replaces its placeholder ARN.
    assert "EmitEventsDynamodbEventSource" in events
    tables = {r["Properties"]["TableName"]: logical for logical, r in resources.items()
              if r.get("Type") == "AWS::DynamoDB::Table"}
    fed = sorted(e["Properties"]["Stream"]["Fn::GetAtt"][0] for e in events.values())
    assert fed == sorted(tables[f"smsgw-{stage}-{s}"] for s in settings.EVENT_SOURCE_TABLES)
    for source in events.values():
        props = source["Properties"]
        assert source["Type"] == "DynamoDB" and props["StartingPosition"] == "TRIM_HORIZON"
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["StreamFailureQueue", "Arn"]}  # bounded, then kept (issue 29)
        assert props["BisectBatchOnFunctionError"] is True
        assert (props["MaximumRetryAttempts"], props["MaximumRecordAgeInSeconds"]) == (100, 21600)


def test_webhook_queue_dead_letter_queue_and_alarm(generated):
    stage, resources = generated
    queue = resources["WebhookQueue"]["Properties"]
    assert queue["QueueName"] == f"smsgw-{stage}-webhooks"
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    timeout = config["lambda_functions"]["deliver_webhooks"]["lambda_timeout"]
    assert timeout <= 120 and queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}
    assert resources["WebhookDeadLetterQueue"]["Properties"]["QueueName"] == \
        f"smsgw-{stage}-webhooks-dlq"
    alarm = resources["WebhookDeadLetterAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["Threshold"] == 1
    assert "WebhookQueue" in resources["DeliverWebhooks"]["DependsOn"]
    assert resources["DeliverWebhooksErrorsAlarm"]["Properties"]["MetricName"] == "Errors"


def test_the_app_names_the_queue_the_template_makes(aws_mock):
    from app import app
    [sqs] = [s for s in app.event_sources if type(s).__name__ == "SQSEventConfig"]
    assert sqs.queue == settings.current().webhook_queue_name() and sqs.batch_size == 10


def test_event_source_filters_are_in_the_template(generated):
    stage, resources = generated
    from chalicelib.domain.webhooks import events as events
    sources = resources["EmitEvents"]["Properties"]["Events"]
    for source in sources.values():
        table = source["Properties"]["Stream"]["Fn::GetAtt"][0]
        short = resources[table]["Properties"]["TableName"][len(f"smsgw-{stage}-"):]
        assert source["Properties"]["FilterCriteria"] == {"Filters": events.stream_filters(short)}


MISSING = object()


def _leaf(condition, value) -> bool:
    if isinstance(condition, dict):
        if "anything-but" in condition:
            return value is not MISSING and value not in condition["anything-but"]
        if "exists" in condition:
            return (value is not MISSING) == condition["exists"]
        raise AssertionError(f"pattern operator not understood here: {condition}")
    return value is not MISSING and value == condition


def matches(pattern: dict, record) -> bool:
    """Lambda/EventBridge pattern matching for the operators stream_filters uses: nested keys,
    a list of alternatives, exact values, anything-but (the field must exist), exists."""
    for key, condition in pattern.items():
        value = record.get(key, MISSING) if isinstance(record, dict) else MISSING
        if isinstance(condition, dict):
            if not matches(condition, value if isinstance(value, dict) else {}):
                return False
        elif not any(_leaf(c, value) for c in condition):
            return False
    return True


def test_filters_pass_every_event_and_spare_the_heartbeats(aws_mock, monkeypatch,
                                                           settings_override):
    """Every stream record of a busy flow: the filters let through each one that is an event,
    and drop the running phone's heartbeats and the messages' pending/processing writes."""
    from chalicelib.core import clock
    from chalicelib.domain import accounts, devices, incoming, jobs
    from chalicelib.domain.webhooks import events as events
    from localgw import events as local_events
    settings_override(webhook_cache_seconds=0)
    pumps = local_events.EventPumps()
    records = []
    monkeypatch.setattr(pumps.app, "emit_events",
                        lambda event, context: records.extend(event["Records"]))
    account = accounts.create_account("Filters")
    device, _ = devices.register(account.account_id, "Phone", sim_count=1)
    devices.heartbeat(device, "running")
    for _ in range(3):
        devices.heartbeat(device, "running", battery=50)
    for n, outcome in enumerate(("delivered", "failed", "sent")):
        accepted = sending.send(account.account_id, device, f"+1415555010{n}", "x")
        jobs.lease_from_queue(device, 0, 1)
        jobs.report(device, accepted.message.message_id,
                    "failed" if outcome == "failed" else "sent",
                    "No credit." if outcome == "failed" else None)
        if outcome == "delivered":
            jobs.report(device, accepted.message.message_id, "delivered")
    incoming.store(device, "in-1", "+14155550199", "hi", 1, clock.now_ms())
    devices.heartbeat(device, "stopped")
    devices.heartbeat(device, "running")
    pumps.drain()
    from chalicelib.domain import pacing
    pacing.pause(device, 1, 60, "limit exceeded")  # a sim.paused event
    pumps.drain()
    pacing.pause_read(device.device_uid)  # as the stream function does once it read it
    pumps.drain()
    since_read = len(records)
    devices.heartbeat(device, "running", battery=30)
    pumps.drain()
    kinds = {"messages": 0, "incoming": 0, "devices": 0}
    spared = []
    for index, record in enumerate(records):
        short = record["eventSourceARN"].split(":table/")[1].split("/")[0][
            len(settings.current().prefix) + 1:]
        kinds[short] += 1
        passed = any(matches(json.loads(f["Pattern"]), record)
                     for f in events.stream_filters(short))
        if events.from_stream_record(record):
            assert passed, record
        elif not passed:
            spared.append(short)
        if index >= since_read:  # the pause read: the heartbeats are spared again
            assert not passed, record
    assert [e.type for r in records for e in events.from_stream_record(r)].count(
        "sim.paused") == 1
    assert all(kinds.values())
    assert spared.count("devices") >= 3 and spared.count("messages") >= 3


def _stream_of_sends(monkeypatch, api, key, device, token, n=2):
    """The messages stream records of n SMS sent through the API and reported delivered by
    the phone over the device API (the real paths end to end, no direct domain calls)."""
    from localgw import events as local_events
    pumps = local_events.EventPumps()
    pumps.drain()
    records = []
    monkeypatch.setattr(pumps.app, "emit_events",
                        lambda event, context: records.extend(event["Records"]))
    for i in range(n):
        body, _ = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                      phone_number=f"+1415555012{i}", message="hello")
        assert body["status"] == "success", body
    return pumps, records


def test_an_account_without_endpoints_invokes_no_stream_function(api, account, client,
                                                                   monkeypatch, settings_override):
    """The default deployment's lone SMS: for an account that never had a webhook endpoint, no
    record of its messages passes the event filter (so Lambda never invokes the stream
    function for them), and the code makes no event of them either. After its first endpoint
    the next sends are events."""
    from chalicelib.domain import webhooks
    from chalicelib.domain.webhooks import events as events
    settings_override(webhook_allow_private=True)
    acct, key, device, token = account

    def run():
        pumps, records = _stream_of_sends(monkeypatch, api, key, device, token)
        got = client.http.get("/device/jobs?wait=0&max=10",
                              headers={"Authorization": f"Bearer {token}"})
        jobs_ = json.loads(got.body)["jobs"]
        assert len(jobs_) == 2, got.body
        client.http.post("/device/reports", headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            body=json.dumps({"reports": [{"message_id": j["message_id"], "status": s}
                                         for j in jobs_ for s in ("sent", "delivered")]}))
        pumps.drain()
        mine = [r for r in records if ":table/" in r["eventSourceARN"]
                and r["eventSourceARN"].split(":table/")[1].split("/")[0]
                == settings.current().table_name("messages")]
        assert len(mine) >= 4  # the puts and the reports
        passed = [r for r in mine if any(matches(json.loads(f["Pattern"]), r)
                                         for f in events.stream_filters("messages"))]
        return passed, [e for r in mine for e in events.from_stream_record(r)]

    passed, found = run()
    assert passed == [] and found == []
    webhooks.add(acct.account_id, "https://127.0.0.1:9/hook")
    passed, found = run()
    assert len(passed) == 2 and {e.type for e in found} == {"sms.sent", "sms.delivered"}
