"""The stages' IAM policies allow every AWS call the handlers really make, and nothing more.

The calls are recorded, not listed by hand: a representative flow runs through the real handlers
against moto while every botocore operation (PynamoDB's included) is captured; each is turned
into the IAM actions and resource ARNs AWS would authorise, and checked against the policy file
of each stage.
"""
import fnmatch
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from chalicelib.core import settings
from chalicelib.domain import accounts, devices
from chalicelib.storage import aws, tables

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")
REGION, ACCOUNT = "eu-west-1", "123456789012"
# Actions AWS gives no resource-level permission for, that may therefore use "Resource": "*".
# Empty: metrics go out as log lines (chalicelib/core/metrics.py), so even cloudwatch:PutMetricData
# is not needed. Add here only with a reason.
STAR_RESOURCE_ALLOWED: dict[str, str] = {
    "dynamodb:ListStreams": "IAM has no resource-level permission for it; Lambda's stream "
                            "event source mapping (emit_events) needs it",
}
# Granted before the code on main calls them: what the OTP and device long-poll/report work
# will call. Everything else granted must be exercised by the recorded flow below.
EXPECTED_SOON = {
    "ses:SendEmail": "alert mails, only with an AlertSender (tests/api/test_alerts.py)",
    "ssm:GetParameter": "OTP HMAC secret (SecureString, AWS-managed key)",
    "sqs:ReceiveMessage": "GET /device/jobs long-poll",
    "sqs:DeleteMessage": "device reports a job done",
    "sqs:ChangeMessageVisibility": "lease extension / release of a job",
    "sqs:GetQueueAttributes": "queue depth in device status",
    "sqs:GetQueueUrl": "re-resolving a device queue",
    "dynamodb:ConditionCheckItem": "transactional report/OTP writes",
    "logs:CreateLogStream": "the Lambda runtime writing logs",
    "logs:PutLogEvents": "the Lambda runtime writing logs",
}


def load_policy(stage):
    return json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())


def load_config():
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def statements(policy):
    found = policy["Statement"]
    return found if isinstance(found, list) else [found]


def _list(value):
    return value if isinstance(value, list) else [value]


def allowed(policy, action, resource) -> bool:
    """IAM's evaluation for our policies: Allow statements only, no conditions (checked below)."""
    for st in statements(policy):
        if st["Effect"] != "Allow":
            continue
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _list(st["Action"])) \
                and any(fnmatch.fnmatchcase(resource, r) for r in _list(st["Resource"])):
            return True
    return False


# --- recording the calls ---------------------------------------------------------------------

@pytest.fixture
def recorded(aws_calls):
    """(service, operation, params) of every AWS call, from conftest's recorder."""
    return aws_calls.requests


def api(client, **params):
    response = client.http.post("/myAPI.php", body=json.dumps(params),
                                headers={"Content-Type": "application/json"})
    envelope = json.loads(response.body)
    assert envelope["status"] == "success", envelope
    return envelope["data"]


def run_flow(client, device_role, pumps=None, receiver=None):
    """Register a device, use every API action that exists on main, remove the device. With
    `pumps`, a webhook endpoint on `receiver` gets the flow's events through the stream and
    queue functions (the calls their event source mappings make on AWS included)."""
    account = accounts.create_account("Policy check")
    key, _ = accounts.create_key(account.account_id, "ci")
    device, token = devices.register(account.account_id, "Phone", sim_count=2)
    if receiver is not None:
        from chalicelib.domain import webhooks
        webhooks.add(account.account_id, receiver.url)
    sent = api(client, action="send_sms", api_key=key, device_uid=device.device_uid,
               phone_number="+14155550100", message="hello")
    api(client, action="send_sms", api_key=key, device_id=str(device.device_id),
        phone_number="+14155550101", message="again", idempotency_key="k-1")
    api(client, action="check_status", api_key=key, message_id=str(sent["message_id"]))
    api(client, action="get_history", api_key=key, type="all", limit="5")
    assert api(client, action="device_status", api_key=key)[0]["device_uid"] == device.device_uid
    # Direct polling: the device's credentials (STS), then a claim of what it received.
    response = client.http.post("/device/credentials", body=b"",
                                headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.body
    received = aws.sqs().receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                                         VisibilityTimeout=settings.LEASE_SECONDS)["Messages"]
    claims = [{"message_id": json.loads(m["Body"])["message_id"],
               "receipt_handle": m["ReceiptHandle"]} for m in received]
    response = client.http.post("/device/claims", body=json.dumps({"claims": claims}),
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    # A batch of reports: one write per message, the SQS deletes in one DeleteMessageBatch.
    response = client.http.post("/device/reports", body=json.dumps({"reports": [
        {"message_id": c["message_id"], "status": s} for c in claims
        for s in ("sent", "delivered")]}), headers={"Authorization": f"Bearer {token}",
                                                    "Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    if pumps is not None:
        # sent+delivered in one write: the stream shows processing -> delivered, and both
        # events still go out.
        pumps.drain()
        assert receiver.of_type("sms.sent"), "the webhook flow delivered no sms.sent"
        assert receiver.of_type("sms.delivered"), "the webhook flow delivered no sms.delivered"
    run_dashboard_flow(client, account.account_id)
    devices.remove(account.account_id, str(device.device_id))


def run_dashboard_flow(client, account_id):
    """The dashboard's calls: a user set up by link, sign-in (throttle, session), its pages
    (queue depth, message search), a key, pairing a phone, sign out everywhere, removal."""
    from chalicelib.domain import users
    from tests.dashboard_helpers import Visitor, owner
    owner(account_id, "policy@example.com")
    visitor = Visitor(client)
    assert visitor.sign_in("policy@example.com").status_code == 303
    for page in ("/dashboard/", "/dashboard/phones", "/dashboard/messages", "/dashboard/keys"):
        assert visitor.get(page).status_code == 200, page
    assert visitor.submit("/dashboard/keys", {"label": "rotated"}).status_code == 200
    location = visitor.submit("/dashboard/phones", {"name": "Paired"}).headers["Location"]
    code = location.rsplit("/", 1)[1]
    response = client.http.post("/device/pair", body=json.dumps({"code": code}),
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    devices.remove(account_id, json.loads(response.body)["device_uid"])
    visitor.submit("/dashboard/signout", {"everywhere": "1"})
    users.remove(account_id, "policy@example.com")


# --- from botocore operations to IAM requests ----------------------------------------------

def _for_stage(name: str, stage: str) -> str:
    """A name the tests' stage produced, as `stage` would spell it."""
    for ours, theirs in ((settings.PREFIX + "-", f"smsgw-{stage}-"),
                         (f"role{settings.device_role_path()}", f"role/smsgw-{stage}/"),
                         (f"/smsgw/{settings.STAGE}/", f"/smsgw/{stage}/")):
        if name.startswith(ours):
            return theirs + name[len(ours):]
    raise AssertionError(f"resource {name!r} is not named from settings")


def _table(name, stage, index=None):
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{_for_stage(name, stage)}"
    return arn + (f"/index/{index}" if index else "")


def _stream(arn_or_iterator, stage):
    """The stage's stream ARN named by a stream ARN or (moto's) shard iterator."""
    table = arn_or_iterator.split(":table/", 1)[1].split("/", 1)[0]
    return f"{_table(table, stage)}/stream/*"


SQS_BATCH_ACTIONS = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}
TRANSACT_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                         "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def iam_requests(service, operation, params, stage):
    """[(action, resource ARN)] that AWS authorises for one API call."""
    if service == "dynamodb":
        if operation in ("TransactWriteItems", "TransactGetItems"):
            return [(f"dynamodb:{TRANSACT_ITEM_ACTIONS[kind]}", _table(body["TableName"], stage))
                    for item in params["TransactItems"] for kind, body in item.items()]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", _table(name, stage))
                    for name in params["RequestItems"]]
        return [(f"dynamodb:{operation}",
                 _table(params["TableName"], stage, params.get("IndexName")))]
    if service == "sqs":
        name = params.get("QueueName") or urlparse(params["QueueUrl"]).path.rsplit("/", 1)[-1]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{_for_stage(name, stage)}"
        found = [(f"sqs:{SQS_BATCH_ACTIONS.get(operation, operation)}", arn)]
        if operation == "CreateQueue" and params.get("tags"):
            found.append(("sqs:TagQueue", arn))  # tagging on creation needs both
        return found
    if service == "dynamodbstreams":  # authorised as dynamodb:* on the stream
        if operation == "ListStreams":
            return [("dynamodb:ListStreams", "*")]
        return [(f"dynamodb:{operation}",
                 _stream(params.get("StreamArn") or params["ShardIterator"], stage))]
    if service == "sts" and operation == "AssumeRole":
        account, resource = params["RoleArn"].split(":", 5)[4:]
        return [("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:{_for_stage(resource, stage)}")]
    if service == "ssm" and operation == "GetParameter":
        return [("ssm:GetParameter",
                 f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{_for_stage(params['Name'], stage)}")]
    raise AssertionError(f"no IAM mapping for {service}:{operation}; add one to this test")


@pytest.fixture
def device_role(aws_mock, monkeypatch):
    """The stack's DeviceRole (in moto's IAM), named by SMSGW_DEVICE_ROLE_ARN."""
    import boto3
    arn = boto3.client("iam", region_name=REGION).create_role(
        RoleName="smsgw-DeviceRole-X1", Path=settings.device_role_path(),
        AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    monkeypatch.setattr(settings, "DEVICE_ROLE_ARN", arn)
    return arn


@pytest.fixture
def flow_requests(client, device_role, recorded, monkeypatch):
    from bench.webhook_receiver import Receiver
    from localgw import events as local_events
    monkeypatch.setattr(settings, "WEBHOOK_ALLOW_PRIVATE", True)  # the receiver is local
    pumps = local_events.EventPumps()  # makes the webhook queue, as the template does
    receiver = Receiver()
    recorded.clear()  # table creation by the fixture is the deployment's job, not the code's
    try:
        run_flow(client, device_role, pumps, receiver)
    finally:
        receiver.close()
    assert recorded, "the flow made no AWS call: the recorder is not attached"
    return recorded


# --- the checks -----------------------------------------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_every_recorded_call_is_allowed(flow_requests, stage):
    policy = load_policy(stage)
    denied = sorted({(action, arn) for service, operation, params in flow_requests
                     for action, arn in iam_requests(service, operation, params, stage)
                     if not allowed(policy, action, arn)})
    assert denied == [], f"policy-{stage}.json denies calls the handlers make: {denied}"


@pytest.mark.parametrize("stage", STAGES)
def test_nothing_granted_that_is_neither_called_nor_expected(flow_requests, stage):
    called = {action for s, o, p in flow_requests for action, _ in iam_requests(s, o, p, stage)}
    granted = {a for st in statements(load_policy(stage)) for a in _list(st["Action"])}
    assert granted - called - set(EXPECTED_SOON) == set()


def test_the_flow_covers_queues_tables_and_indexes(flow_requests):
    """Guards the flow itself: if it stopped reaching these, the checks above would be hollow."""
    called = {(s, o) for s, o, _ in flow_requests}
    for needed in [("sqs", "CreateQueue"), ("sqs", "SendMessage"), ("sqs", "DeleteQueue"),
                   ("sqs", "GetQueueAttributes"),
                   ("dynamodb", "TransactWriteItems"), ("dynamodb", "Query"),
                   ("dynamodb", "GetItem"), ("dynamodb", "PutItem"), ("dynamodb", "DeleteItem"),
                   ("sts", "AssumeRole"), ("sqs", "ReceiveMessage"),
                   ("dynamodbstreams", "GetRecords"), ("dynamodbstreams", "ListStreams"),
                   ("sqs", "SendMessageBatch"), ("sqs", "DeleteMessageBatch")]:
        assert needed in called, needed
    assert any(p.get("IndexName") for s, o, p in flow_requests if o == "Query")


def test_a_denied_call_is_reported(flow_requests):
    """The evaluator can say no: another stage's table, a foreign queue, an unlisted action."""
    policy = load_policy("dev")
    assert not allowed(policy, "dynamodb:GetItem",
                       f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/smsgw-prod-accounts")
    assert not allowed(policy, "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:other-queue")
    assert not allowed(policy, "dynamodb:Scan",
                       f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/smsgw-dev-accounts")
    assert not allowed(policy, "sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/admin")
    assert not allowed(policy, "sts:AssumeRole",
                       f"arn:aws:iam::{ACCOUNT}:role/smsgw-prod/smsgw-DeviceRole-X1")
    assert not allowed(policy, "dynamodb:DeleteTable",
                       f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/smsgw-dev-accounts")


@pytest.mark.parametrize("stage", STAGES)
def test_statements_are_narrow(stage):
    for st in statements(load_policy(stage)):
        assert set(st) <= {"Sid", "Effect", "Action", "Resource"}, st  # no Not*/Condition
        assert st["Effect"] == "Allow"
        for action in _list(st["Action"]):
            assert "*" not in action and "?" not in action, action
        for resource in _list(st["Resource"]):
            if resource == "*":
                assert set(_list(st["Action"])) <= set(STAR_RESOURCE_ALLOWED), st
            else:
                service = resource.split(":")[2]
                service = {"iam": "sts"}.get(service, service)  # roles are assumed via STS
                assert st["Action"] and all(a.startswith(service + ":")
                                            for a in _list(st["Action"])), st


@pytest.mark.parametrize("stage", STAGES)
def test_resources_are_this_stages_own(stage):
    prefix = f"smsgw-{stage}"
    tables_ = {f"arn:aws:dynamodb:*:*:table/{prefix}-{short}" for short in settings.TABLES}
    indexes = {f"arn:aws:dynamodb:*:*:table/{prefix}-{short}/index/{index['index_name']}"
               for model in tables.MODELS
               for short in [model.Meta.table_name[len(settings.PREFIX) + 1:]]
               for index in model._get_schema()["global_secondary_indexes"]}
    expected = tables_ | indexes | {
        f"arn:aws:sqs:*:*:{prefix}-device-*",
        f"arn:aws:ssm:*:*:parameter/smsgw/{stage}/otp-secret",
        f"arn:aws:iam::*:role/smsgw-{stage}/*",
        f"arn:aws:logs:*:*:log-group:/aws/lambda/{prefix}:log-stream:*",
        f"arn:aws:logs:*:*:log-group:/aws/lambda/{prefix}-*:log-stream:*",
        f"arn:aws:sqs:*:*:{prefix}-webhooks", f"arn:aws:sqs:*:*:{prefix}-webhooks-dlq", "*",
        "arn:aws:ses:*:*:identity/*",
    } | {f"arn:aws:dynamodb:*:*:table/{prefix}-{short}/stream/*"
         for short in settings.EVENT_SOURCE_TABLES}
    granted = {r for st in statements(load_policy(stage)) for r in _list(st["Resource"])}
    assert granted == expected


@pytest.mark.parametrize("stage", STAGES)
def test_policy_file_is_generated_output(stage):
    result = subprocess.run([sys.executable, "deploy/make_template.py", stage, "--check-policy"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_stage_config(stage):
    config = load_config()
    stage_config = config["stages"][stage]
    merged = {**config, **stage_config}
    env = stage_config["environment_variables"]
    assert merged["lambda_architecture"] == "arm64"
    assert merged["autogen_policy"] is False
    assert merged["iam_policy_file"] == f"policy-{stage}.json"
    assert env["SMSGW_STAGE"] == stage and "SMSGW_PREFIX" not in env  # names the policy grants
    assert env["SMSGW_OTP_SECRET_PARAM"] == f"/smsgw/{stage}/otp-secret"
    poll = int(env.get("SMSGW_MAX_POLL_WAIT_SECONDS", settings.MAX_POLL_WAIT_SECONDS))
    api_timeout = {**merged, **merged["lambda_functions"]["api_handler"]}["lambda_timeout"]
    # The long poll and a few seconds of work fit; the Lambda ends before API Gateway's 29 s.
    assert poll + 5 <= api_timeout < 29


@pytest.mark.parametrize("stage", STAGES)
def test_offline_detection_of_the_deployed_stage_is_within_ten_minutes(stage):
    """docs/cost.md: a silent phone is shown stopped after the heartbeat window and written
    `stopped` by the next run of the one-minute sweep; the suggested heartbeat leaves room for
    one lost heartbeat inside the window."""
    env = load_config()["stages"][stage]["environment_variables"]
    window = int(env.get("SMSGW_HEARTBEAT_WINDOW_SECONDS", settings.HEARTBEAT_WINDOW_SECONDS))
    beat = int(env.get("SMSGW_HEARTBEAT_SECONDS", window // 3))
    assert window + 60 <= 600
    assert 2 * beat <= window


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_front_doors_are_the_only_new_callers_of_the_api_handler(stage, tmp_path):
    """The merge template's resource-based grants: API Gateway may invoke the API handler only
    through this stack's own HTTP API; anyone may call its function URL (AuthType NONE: the
    gateway authenticates each request), and InvokeFunction to anyone holds only for calls
    through a function URL, so nobody gains the Invoke API. No function gains an IAM action
    for any of it."""
    out = tmp_path / "resources.json"
    subprocess.run([sys.executable, "deploy/make_template.py", stage, "--template", str(out)],
                   cwd=ROOT, check=True)
    template = json.loads(out.read_text())
    resources = template["Resources"]
    grants = {name: r["Properties"] for name, r in resources.items()
              if r.get("Type") == "AWS::Lambda::Permission"}
    assert grants == {
        "HttpApiInvokePermission": {
            "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "APIHandler"},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                                     "${AWS::AccountId}:${HttpApi}/*"}},
        "ApiFunctionUrlPermission": {
            "Action": "lambda:InvokeFunctionUrl", "FunctionName": {"Ref": "APIHandler"},
            "Principal": "*", "FunctionUrlAuthType": "NONE"},
        "ApiFunctionUrlInvokePermission": {
            "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "APIHandler"},
            "Principal": "*", "InvokedViaFunctionUrl": True}}
    [url] = [r["Properties"] for r in resources.values() if r.get("Type") == "AWS::Lambda::Url"]
    assert url == {"TargetFunctionArn": {"Fn::GetAtt": ["APIHandler", "Arn"]},
                   "AuthType": "NONE", "InvokeMode": "BUFFERED"}  # no CORS: same origin
    assert template["Outputs"]["FunctionUrl"]["Value"] == {
        "Fn::GetAtt": ["ApiFunctionUrl", "FunctionUrl"]}
    granted = {a for st in statements(load_policy(stage)) for a in _list(st["Action"])}
    assert not any(a.startswith(("apigateway:", "lambda:")) for a in granted)
