"""The generated template wires webhooks as the code expects: streams on exactly the tables the
events are read from, every stream feeding `emit_events`, the queue `deliver_webhooks` reads
(named as settings name it) with a dead-letter queue and an alarm, and the cold-start rule."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.core import settings

ROOT = Path(__file__).resolve().parent.parent


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
            "Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}


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
    assert sqs.queue == settings.webhook_queue_name() and sqs.batch_size == 10
