"""Every AWS call the gateway's functions make is allowed by that function's own role, and each
role grants nothing its function does not call: the rehearsal of a deploy's permissions.

The calls are recorded, not listed by hand: a flow runs through the real handlers against moto
(every API surface in use, the two sweeps, the stream functions with the counts' commit and an
alert mail through SES, the webhook queue function, the OTP secret through SSM) while every
botocore operation is captured together with the Lambda function whose handler made it (read
from the call stack: app.py's handler frames; what an event source mapping does with its
function's role, from localgw/events.py's pumps). Each call is turned into the IAM requests AWS
authorises (action and resource ARN, index and stream ARNs included) and decided by
deploy/iam_eval.py against that function's role as the generated template of each stage has it.
A call that cannot be attributed fails; so does a function the flow never ran.
"""
import concurrent.futures
import contextlib
import contextvars
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest

import app as app_module
from chalicelib.core import clock, settings
from chalicelib.domain import accounts, devices
from chalicelib.storage import aws
from deploy import iam_eval

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")
REGION, ACCOUNT = "eu-west-1", "123456789012"
SENDER = "alerts@example.com"
FUNCTIONS = ("api_handler", "settle_messages", "stop_silent_devices", "emit_events",
             "count_outcomes", "deliver_webhooks", "purge_accounts")
ROLES = {"api_handler": "ApiHandlerRole", "settle_messages": "SettleMessagesRole",
         "stop_silent_devices": "StopSilentDevicesRole", "emit_events": "EmitEventsRole",
         "count_outcomes": "CountOutcomesRole", "deliver_webhooks": "DeliverWebhooksRole",
         "purge_accounts": "PurgeAccountsRole", "device": "DeviceRole"}
# Who else calls AWS in the flow, and is not a function: the operator (admin CLI, deploy).
OPERATOR = "operator"
# Actions AWS gives no resource-level permission for, that may therefore use "Resource": "*".
STAR_RESOURCE_ALLOWED = {
    "dynamodb:ListStreams": "IAM has no resource-level permission for it; the stream event "
                            "source mappings need it",
}
# Granted, and not called by the flow: (function or "*", action) -> why. Each names the test
# that runs the path (against moto) or the AWS component that makes the call.
EXPECTED_UNCALLED = {
    ("*", "logs:CreateLogStream"): "the Lambda runtime writing the function's logs",
    ("*", "logs:PutLogEvents"): "the Lambda runtime writing the function's logs",
    ("*", "sqs:SendMessage@stream-failures"): "the stream mapping, for a batch it gave up on",
    ("deliver_webhooks", "sqs:GetQueueAttributes"): "Lambda's SQS event source mapping",
    ("deliver_webhooks", "sqs:SendMessage@webhooks-dlq"): "a delivery out of attempts "
                                                          "(tests/api/test_webhooks.py)",
    ("deliver_webhooks", "sqs:GetQueueUrl@webhooks-dlq"): "the same",
    ("deliver_webhooks", "sqs:SendMessage@webhooks"): "a failed delivery queued again",
    ("deliver_webhooks", "sqs:GetQueueUrl@webhooks"): "the same",
    ("deliver_webhooks", "dynamodb:PutItem"): "the same (its log entry)",
    ("deliver_webhooks", "dynamodb:UpdateItem@webhooks"): "a webhook disabled after failures",
    ("deliver_webhooks", "dynamodb:UpdateItem@alert-states"): "its alert mail",
    ("deliver_webhooks", "dynamodb:Query@alert-subscriptions"): "the same",
    ("deliver_webhooks", "ses:SendEmail"): "the same (tests/api/test_alerts.py)",
    ("stop_silent_devices", "sqs:SendMessage"): "a pool's messages move to a live phone "
                                                "(tests/api/test_pool.py)",
    ("stop_silent_devices", "dynamodb:GetItem"): "the same",
    ("stop_silent_devices", "dynamodb:UpdateItem@messages"): "the same",
    ("stop_silent_devices", "dynamodb:Query@devices/index/by-account"): "the same",
    ("settle_messages", "dynamodb:GetItem"): "a message whose queue send failed, queued again",
    ("api_handler", "ses:SendEmail"): "a paused SIM's alert mail, from a device report "
                                      "(tests/api/test_alerts.py)",
    # The deletion deletes the account's keys, users (sessions) and devices (queues) itself;
    # the purge finds some only when they were made while the account was being deleted
    # (tests/api/test_account_deletion.py, the racing registrations).
    ("purge_accounts", "dynamodb:BatchWriteItem@api-keys"): "a key made during the deletion",
    ("purge_accounts", "dynamodb:BatchWriteItem@users"): "a user added during the deletion",
    ("purge_accounts", "dynamodb:BatchWriteItem@sessions"): "the same user's session",
    ("purge_accounts", "dynamodb:Query@sessions/index/by-user"): "the same",
    ("purge_accounts", "dynamodb:DeleteItem@devices"): "a phone registered during the deletion",
    ("purge_accounts", "dynamodb:GetItem@devices"): "the same",
    ("purge_accounts", "sqs:DeleteQueue"): "the same phone's queue",
    ("purge_accounts", "dynamodb:UpdateItem@accounts"): "the same phone's uid kept, or a run "
                                                        "out of budget (test_account_deletion)",
    ("api_handler", "*"): "the API handler may use every table with the item actions; the "
                          "flow exercises each action on some table",
}
_owner = contextvars.ContextVar("aws_call_owner", default=None)


def _attribute(frame) -> str | tuple | None:
    """The function (or stream mapping) on whose behalf the innermost handler frame runs."""
    app_file = app_module.__file__
    from localgw import events as local_events
    pumps = {local_events.EventPumps.pump_streams.__code__: ("emit_events", "count_outcomes"),
             local_events.EventPumps._stream_arns.__code__: ("emit_events", "count_outcomes"),
             local_events.EventPumps._iterator.__code__: ("emit_events", "count_outcomes"),
             local_events.EventPumps.pump_queue.__code__: "deliver_webhooks"}
    while frame is not None:
        code = frame.f_code
        if code.co_filename == app_file and code.co_name != "<module>":
            return code.co_name if code.co_name in FUNCTIONS else "api_handler"
        if code in pumps:
            return pumps[code]
        frame = frame.f_back
    return _owner.get()


@contextlib.contextmanager
def acting_as(owner):
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


@pytest.fixture
def recorded(aws_mock, monkeypatch):
    """[(owner, service, operation, params)] of every AWS call; worker threads carry the
    owner of the code that started them."""
    import botocore.client
    calls = Recorded()
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        if operation_name in calls.fail_once:
            calls.fail_once.discard(operation_name)
            from botocore.exceptions import ClientError
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "rehearsal"}},
                              operation_name)
        calls.append((_attribute(sys._getframe(1)), self.meta.service_model.service_name,
                      operation_name, api_params))
        return original(self, operation_name, api_params)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    submit = concurrent.futures.ThreadPoolExecutor.submit

    def submit_as_owner(self, fn, /, *args, **kwargs):
        owner = _attribute(sys._getframe(1))
        return submit(self, lambda: _run_as(owner, fn, *args, **kwargs))
    monkeypatch.setattr(concurrent.futures.ThreadPoolExecutor, "submit", submit_as_owner)
    return calls


class Recorded(list):
    fail_once: set  # operations whose next call fails (SQS down for one send)

    def __init__(self):
        super().__init__()
        self.fail_once = set()


def _run_as(owner, fn, *args, **kwargs):
    with acting_as(owner):
        return fn(*args, **kwargs)


def api(client, **params):
    response = client.http.post("/myAPI.php", body=json.dumps(params),
                                headers={"Content-Type": "application/json"})
    envelope = json.loads(response.body)
    assert envelope["status"] == "success", envelope
    return envelope["data"]


SCHEDULED = {"version": "0", "id": "rehearsal", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": ACCOUNT, "time": "2026-01-01T00:00:00Z",
             "region": REGION, "resources": [], "detail": {}}


def run_flow(client, pumps, receiver, recorded):
    """Every function through its handler. The operator's calls (the admin CLI, what the
    template creates) are marked; the phone's own SQS calls are made as the device role."""
    with acting_as(OPERATOR):
        account = accounts.create_account("Policy check")
        key, _ = accounts.create_key(account.account_id, "ci")
        device, token = devices.register(account.account_id, "Phone", sim_count=2)
        from chalicelib.domain import webhooks
        from chalicelib.domain.insight import alerts
        webhooks.add(account.account_id, receiver.url)
        alerts.subscribe(account.account_id, "owner@example.com")
        aws.ses().create_email_identity(EmailIdentity=SENDER)
        aws.ssm().put_parameter(Name=f"/smsgw/{settings.current().stage}/otp-secret",
                                Type="SecureString",
                                Value="s" * 64)
    clock.freeze()
    sent = api(client, action="send_sms", api_key=key, device_uid=device.device_uid,
               phone_number="+14155550100", message="hello")
    api(client, action="send_sms", api_key=key, device_id=str(device.device_id),
        phone_number="+14155550101", message="again", idempotency_key="k-1")
    api(client, action="check_status", api_key=key, message_id=str(sent["message_id"]))
    api(client, action="get_history", api_key=key, type="all", limit="5")
    assert api(client, action="device_status", api_key=key)[0]["device_uid"] == device.device_uid
    # The OTP secret comes from SSM (SMSGW_OTP_SECRET_PARAM), once per container.
    response = client.http.get("/myAPI.php?" + urlencode({
        "action": "send_otp", "api_key": key, "device_uid": device.device_uid,
        "phone_number": "+14155550102", "message": "Code {otp}"}))
    assert json.loads(response.body)["status"] == "success", response.body
    # Direct polling: the device's credentials (STS), then a claim of what it received.
    response = client.http.post("/device/credentials", body=b"",
                                headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.body
    with acting_as("device"):
        received = aws.sqs().receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                                             VisibilityTimeout=settings.current().lease_seconds)["Messages"]
    bodies = [json.loads(m["Body"]) for m in received]
    claims = [{"message_id": b["message_id"], "receipt_handle": m["ReceiptHandle"]}
              for b, m in zip(bodies, received, strict=True)]
    response = client.http.post("/device/claims", body=json.dumps({"claims": claims}),
                                headers={"Authorization": f"Bearer {token}",
                                         "Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    code = next(b["message"] for b in bodies if b.get("kind") == "otp").split()[-1]
    api(client, action="verify_otp", api_key=key, phone_number="+14155550102", otp_code=code)
    # A batch of reports: one write per message, the SQS deletes in one DeleteMessageBatch.
    response = client.http.post("/device/reports", body=json.dumps({"reports": [
        {"message_id": c["message_id"], "status": s} for c in claims
        for s in ("sent", "delivered")]}), headers={"Authorization": f"Bearer {token}",
                                                    "Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    # The stream functions (webhooks out; every outcome counted and committed) and the queue
    # function (deliveries to the receiver).
    pumps.drain()
    assert receiver.of_type("sms.delivered"), "the webhook flow delivered no sms.delivered"
    # A message no phone takes: the minute sweep's first look (the accounts' list) enters it
    # and, past its validity, expires it; the liveness sweep stops the silent phone, whose
    # record mails the subscribed owner through SES.
    webhook_id = receiver_webhook_id(account.account_id)
    from chalicelib.domain import webhooks
    webhooks.queue_url.cache_clear()  # each function resolves it in its own containers
    response = client.http.post(f"/v1/webhooks/{webhook_id}/test",
                                headers={"Authorization": f"Bearer {key}"})
    assert response.status_code < 300, response.body
    # A message accepted while SQS refused its job: the minute sweep's first look (the
    # accounts' list) finds it and queues it; the phone long-polls it and never reports it;
    # past its validity the sweep expires it.
    recorded.fail_once.add("SendMessage")
    late = api(client, action="send_sms", api_key=key, device_uid=device.device_uid,
               phone_number="+14155550103", message="never reported")
    clock.advance(max(settings.current().first_look_seconds,
                      settings.current().outbox_grace_seconds) + 1)
    assert app_module.settle_messages(SCHEDULED, None).get("entered") == 1
    response = client.http.get("/device/jobs?wait=0", headers={"Authorization":
                                                              f"Bearer {token}"})
    assert json.loads(response.body)["jobs"], response.body
    clock.advance(settings.current().heartbeat_window_seconds + 1)
    assert app_module.stop_silent_devices(SCHEDULED, None)["stopped"] == 1
    clock.advance(settings.current().message_validity_seconds + 1)
    app_module.settle_messages(SCHEDULED, None)
    pumps.drain()
    from chalicelib.storage.tables import Message
    with acting_as(OPERATOR):
        assert Message.get(account.account_id, int(late["message_id"])).status in (
            "expired", "failed")
    run_opt_out_flow(client, key, token, account.account_id, pumps)
    run_operator_flow(client, key, account.account_id, device.device_uid)
    run_dashboard_flow(client, account.account_id, device.device_uid)
    run_leaving_flow(client, key, account.account_id)


def run_leaving_flow(client, key, account_id):
    """Leaving with the data: the export (REST v1 and the dashboard), the deletion by the owner
    in the dashboard, and past PURGE_AFTER_SECONDS the purge of every table (purge_accounts)."""
    from tests.dashboard_helpers import Visitor, owner
    response = client.http.get("/v1/export", headers={"Authorization": f"Bearer {key}",
                                                      "Accept": "application/zip"})
    assert response.status_code == 200, response.body
    with acting_as(OPERATOR):
        owner(account_id, "leaving@example.com")
    visitor = Visitor(client)
    assert visitor.sign_in("leaving@example.com").status_code == 303
    assert visitor.get("/dashboard/account/export").status_code == 200
    account_name = "Policy check"
    assert visitor.submit("/dashboard/account/delete", {"name": account_name},
                          page="/dashboard/account/delete").status_code == 303
    clock.advance(settings.current().purge_after_seconds + 1)
    assert app_module.purge_accounts(SCHEDULED, None)["accounts"] == 1


def run_operator_flow(client, key, account_id, device_uid):
    """The operator's console: an operator made by the CLI signs in, lists the accounts (a Scan
    page of the accounts table), sets a messages-per-day quota (it counts today's messages; a
    send's transaction then raises the day's counter), suspends the account (its key is
    refused) and resumes it."""
    from chalicelib.domain import operators, users
    from tests.dashboard_helpers import PASSWORD, Visitor
    with acting_as(OPERATOR):
        _, link = operators.grant("ops@example.com")
        users.set_password(link, PASSWORD, PASSWORD)
    visitor = Visitor(client)
    assert visitor.sign_in("ops@example.com").status_code == 303
    page = "/dashboard/operator"
    assert visitor.get(page).status_code == 200
    quota = {"quota": "messages_per_day", "value": "1000"}
    assert visitor.submit(f"{page}/{account_id}/quota", quota, page=page).status_code == 200
    api(client, action="send_sms", api_key=key, device_uid=device_uid,
        phone_number="+14155550107", message="counted")
    assert visitor.submit(f"{page}/{account_id}/suspend", page=page).status_code == 200
    refused = json.loads(client.http.post("/myAPI.php", body=json.dumps(
        {"action": "device_status", "api_key": key}),
        headers={"Content-Type": "application/json"}).body)
    assert refused["data"]["error_code"] == "account_suspended", refused
    assert visitor.submit(f"{page}/{account_id}/resume", page=page).status_code == 200


def run_opt_out_flow(client, key, token, account_id, pumps):
    """A message scheduled on a paced phone, whose number then replies STOP: the phone's
    incoming SMS (the API handler) lists it, the opt-outs stream emits contact.opted_out, and
    the minute sweep's release (settle_messages) reads the account's list and fails it."""
    from chalicelib.domain import pool
    from chalicelib.storage.tables import Message
    with acting_as(OPERATOR):
        pool.set_device_pace(account_id, "1", 60)
    number, send_at = "+14155550104", clock.now_ms() + 3 * 3600 * 1000
    response = client.http.post("/v1/messages", body=json.dumps({
        "recipients": [number], "message": "Later", "device_id": 1, "sim_slot": 1,
        "send_at": clock.fmt(send_at).replace(" ", "T") + "Z"}), headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status_code < 300, response.body
    later = json.loads(response.body)["messages"][0]["id"]
    response = client.http.post("/device/incoming", body=json.dumps({"messages": [{
        "device_message_id": "in-stop", "phone_number": number, "message": "STOP",
        "sim_slot": 1, "received_at": clock.now_ms()}]}), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    pumps.drain()
    clock.freeze(send_at)
    app_module.settle_messages(SCHEDULED, None)
    with acting_as(OPERATOR):
        message = Message.get(account_id, int(later))
        assert message.pace_at_release and message.status == "failed", message.status


def receiver_webhook_id(account_id):
    from chalicelib.domain import webhooks
    with acting_as(OPERATOR):
        return webhooks.list_all(account_id)[0].webhook_id


def run_dashboard_flow(client, account_id, device_uid):
    """The dashboard's calls: a user set up by link, sign-in (throttle, session), its pages
    (queue depth, message search), a key, pairing a phone, sign out everywhere, removal."""
    from chalicelib.domain import users
    from tests.dashboard_helpers import Visitor, owner
    with acting_as(OPERATOR):
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
    with acting_as(OPERATOR):
        devices.remove(account_id, json.loads(response.body)["device_uid"])
    assert visitor.submit(f"/dashboard/phones/{device_uid}/remove", {}).status_code == 303
    visitor.submit("/dashboard/signout", {"everywhere": "1"})
    with acting_as(OPERATOR):
        users.remove(account_id, "policy@example.com")


# --- from botocore operations to IAM requests ----------------------------------------------

def _for_stage(name: str, stage: str) -> str:
    """A name the tests' stage produced, as `stage` would spell it."""
    for ours, theirs in ((settings.current().prefix + "-", f"smsgw-{stage}-"),
                         (f"role{settings.current().device_role_path()}", f"role/smsgw-{stage}/"),
                         (f"/smsgw/{settings.current().stage}/", f"/smsgw/{stage}/")):
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
    if service == "sesv2" and operation == "SendEmail":
        # SES authorises a send against the From address's identity when that address is
        # verified, else its domain's: the role must allow both (docs/deploy.md, SES).
        sender = params["FromEmailAddress"]
        return [("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{identity}")
                for identity in (sender, sender.split("@", 1)[1])]
    if service == "ssm" and operation == "GetParameter":
        return [("ssm:GetParameter",
                 f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{_for_stage(params['Name'], stage)}")]
    raise AssertionError(f"no IAM mapping for {service}:{operation}; add one to this test")



# --- the roles, as the generated template of a stage has them --------------------------------

_templates = {}


def template(stage):
    if stage not in _templates:
        out = subprocess.run([sys.executable, "deploy/make_template.py", stage, "--template",
                              "/dev/stdout"], cwd=ROOT, check=True, capture_output=True,
                             text=True).stdout
        _templates[stage] = json.loads(out)
    return _templates[stage]


def resolve(value, stage, parameters):
    """The template's intrinsic functions as CloudFormation would evaluate them here."""
    if isinstance(value, list):
        return [resolve(v, stage, parameters) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
        return {k: resolve(v, stage, parameters) for k, v in value.items()}
    (function, argument), = value.items()
    names = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
             **parameters}
    if function == "Ref":
        return names[argument]
    if function == "Fn::GetAtt":
        assert argument == ["DeviceRole", "Arn"], argument
        return f"arn:aws:iam::{ACCOUNT}:role/smsgw-{stage}/smsgw-DeviceRole-X1"
    if function == "Fn::Sub":
        text, more = (argument, {}) if isinstance(argument, str) else argument
        more = {k: resolve(v, stage, parameters) for k, v in more.items()}
        for name, replacement in {**names, **more}.items():
            text = text.replace("${" + name + "}", str(replacement))
        assert "${" not in text, text
        return text
    if function == "Fn::Join":
        return argument[0].join(resolve(argument[1], stage, parameters))
    if function == "Fn::Split":
        return resolve(argument[1], stage, parameters).split(argument[0])
    if function == "Fn::Select":
        return resolve(argument[1], stage, parameters)[argument[0]]
    raise AssertionError(f"unresolved {function}")


def roles(stage):
    """{function: [policy documents]} with every ARN resolved (AlertSender = SENDER)."""
    resources = template(stage)["Resources"]
    return {function: [resolve(p["PolicyDocument"], stage, {"AlertSender": SENDER})
                       for p in resources[logical_id]["Properties"]["Policies"]]
            for function, logical_id in ROLES.items()}


def requests_of(calls, stage):
    """[(function, action, arn)] for every call; a stream mapping's read counts for each
    function whose mapping reads that table's stream."""
    from chalicelib.domain.insight import stats
    reads = {"emit_events": set(settings.EVENT_SOURCE_TABLES),
             "count_outcomes": set(stats.COUNTED_TABLES)}
    found = []
    for owner, service, operation, params in calls:
        for action, arn in iam_requests(service, operation, params, stage):
            for function in (owner if isinstance(owner, tuple) else (owner,)):
                if isinstance(owner, tuple) and arn != "*" and not any(
                        f":table/smsgw-{stage}-{short}/" in arn for short in reads[function]):
                    continue
                found.append((function, action, arn))
    return found


# --- the checks -----------------------------------------------------------------------------

@pytest.fixture
def flow(client, recorded, settings_override):
    from bench.webhook_receiver import Receiver
    from chalicelib.domain import otp
    from localgw import events as local_events
    settings_override(webhook_allow_private=True)  # the receiver is local
    settings_override(alert_sender=SENDER, otp_secret="")  # read from SSM, as deployed
    settings_override(otp_secret_param=f"/smsgw/{settings.current().stage}/otp-secret")
    otp.forget_secret()
    import boto3
    with acting_as(OPERATOR):
        arn = boto3.client("iam", region_name=REGION).create_role(
            RoleName="smsgw-DeviceRole-X1", Path=settings.current().device_role_path(),
            AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        settings_override(device_role_arn=arn)
        pumps = local_events.EventPumps()  # the template makes the webhook queue
        receiver = Receiver()
    recorded.clear()  # table creation by the fixture is the deployment's job, not the code's
    try:
        run_flow(client, pumps, receiver, recorded)
    finally:
        receiver.close()
        otp.forget_secret()
    assert recorded, "the flow made no AWS call: the recorder is not attached"
    return recorded


def test_every_call_is_made_by_a_function_and_allowed_by_its_own_role(flow, capsys):
    unattributed = sorted({(s, o) for owner, s, o, _ in flow if owner is None})
    assert unattributed == [], f"AWS calls no handler made: {unattributed}"
    checked = [c for c in flow if c[0] != OPERATOR]
    for stage in STAGES:
        policies = roles(stage)
        requests = requests_of(checked, stage)
        denied = sorted({(function, action, arn) for function, action, arn in requests
                         if not iam_eval.allows(policies[function], action, arn)})
        assert denied == [], f"{stage}: calls a function's own role denies: {denied}"
        if stage == "dev":
            with capsys.disabled():
                print(f"\nrehearsal: {len(checked)} calls ({len(requests)} IAM requests) "
                      f"checked per stage, {len(flow) - len(checked)} operator calls; "
                      f"functions: {sorted({f for f, _, _ in requests})}")
    functions = {f for f, _, _ in requests_of(checked, "dev")}
    assert functions == set(FUNCTIONS) | {"device"}, f"never ran: {set(FUNCTIONS) - functions}"


def _short(arn, stage):
    resource = arn.split(":", 5)[-1]
    return resource.replace("table/", "").replace(f"smsgw-{stage}-", "")


def _expected_uncalled(function, action, arn, stage):
    names = [action, f"{action}@{_short(arn, stage)}"]
    return any((who, name) in EXPECTED_UNCALLED for who in (function, "*") for name in names) \
        or (function == "api_handler" and action.startswith("dynamodb:"))


def test_each_role_grants_only_what_its_function_calls(flow):
    for stage in STAGES:
        called = set()
        for function, action, arn in requests_of([c for c in flow if c[0] != OPERATOR], stage):
            called.add((function, action, arn))
        for function, policies in roles(stage).items():
            granted = {(a, r) for p in policies for st in p["Statement"]
                       for a in _list(st["Action"]) for r in _list(st["Resource"])}
            unused = sorted(
                (a, r) for a, r in granted
                if not any(f == function and iam_eval.action_matches(a, ca)
                           and iam_eval.resource_matches(r, carn) for f, ca, carn in called)
                and not _expected_uncalled(function, a, r, stage))
            assert unused == [], f"{stage} {function} is granted, never calls: {unused}"


def test_the_flow_covers_queues_tables_indexes_streams_ses_and_ssm(flow):
    """Guards the flow itself: if it stopped reaching these, the checks above would be hollow."""
    called = {(owner if isinstance(owner, str) else "mapping", s, o) for owner, s, o, _ in flow}
    for needed in [("api_handler", "sqs", "CreateQueue"), ("api_handler", "sqs", "SendMessage"),
                   ("operator", "sqs", "DeleteQueue"), ("api_handler", "sts", "AssumeRole"),
                   ("api_handler", "dynamodb", "TransactWriteItems"),
                   ("api_handler", "ssm", "GetParameter"), ("device", "sqs", "ReceiveMessage"),
                   ("mapping", "dynamodbstreams", "GetRecords"),
                   ("mapping", "dynamodbstreams", "ListStreams"),
                   ("settle_messages", "dynamodb", "Scan"),
                   ("stop_silent_devices", "dynamodb", "Query"),
                   ("emit_events", "sesv2", "SendEmail"),
                   ("emit_events", "sqs", "SendMessageBatch"),
                   ("count_outcomes", "dynamodb", "TransactWriteItems"),
                   ("deliver_webhooks", "dynamodb", "UpdateItem"),
                   ("settle_messages", "sqs", "SendMessage"),
                   ("api_handler", "sqs", "DeleteMessageBatch")]:
        assert needed in called, needed
    assert any(p.get("IndexName") for _, s, o, p in flow if o == "Query")


def test_a_denied_call_is_reported():
    """The evaluator says no: another stage's table, a foreign queue, another function's
    grant, an unlisted action."""
    policies = roles("dev")
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/smsgw-"
    api_role, sweep = policies["api_handler"], policies["settle_messages"]
    assert iam_eval.allows(api_role, "dynamodb:GetItem", table + "dev-accounts")
    assert not iam_eval.allows(api_role, "dynamodb:GetItem", table + "prod-accounts")
    assert not iam_eval.allows(api_role, "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:x")
    assert iam_eval.allows(api_role, "dynamodb:Scan", table + "dev-accounts")  # the console
    assert not iam_eval.allows(api_role, "dynamodb:Scan", table + "dev-messages")
    assert iam_eval.allows(sweep, "dynamodb:Scan", table + "dev-accounts")
    assert not iam_eval.allows(sweep, "dynamodb:Scan", table + "dev-messages")
    device_role = f"arn:aws:iam::{ACCOUNT}:role/smsgw-dev/smsgw-DeviceRole-X1"
    assert iam_eval.allows(api_role, "sts:AssumeRole", device_role)
    for function in FUNCTIONS[1:]:
        other = policies[function]
        assert not iam_eval.allows(other, "sts:AssumeRole", device_role), function
        assert not iam_eval.allows(other, "ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:"
                                   "parameter/smsgw/dev/otp-secret"), function
        assert not iam_eval.allows(other, "sqs:CreateQueue", f"arn:aws:sqs:{REGION}:{ACCOUNT}:"
                                   "smsgw-dev-device-x"), function
    assert not iam_eval.allows(api_role, "dynamodb:DeleteTable", table + "dev-accounts")


def _list(value):
    return value if isinstance(value, list) else [value]


def load_config():
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def load_policy(stage, function):
    return json.loads((ROOT / ".chalice" / f"policy-{stage}-{function}.json").read_text())


@pytest.mark.parametrize("stage", STAGES)
def test_statements_are_narrow(stage):
    for function in FUNCTIONS:
        for st in load_policy(stage, function)["Statement"]:
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
                    assert f"smsgw-{stage}" in resource or "/smsgw/" + stage in resource \
                        or resource.endswith("identity/*"), resource


@pytest.mark.parametrize("stage", STAGES)
def test_policy_files_are_generated_output(stage):
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
    for function in FUNCTIONS:  # one role per function, each with its own policy
        assert stage_config["lambda_functions"][function]["iam_policy_file"] == \
            f"policy-{stage}-{function}.json"
    assert env["SMSGW_STAGE"] == stage and "SMSGW_PREFIX" not in env  # names the policy grants
    assert env["SMSGW_OTP_SECRET_PARAM"] == f"/smsgw/{stage}/otp-secret"
    poll = int(env.get("SMSGW_MAX_POLL_WAIT_SECONDS", settings.current().max_poll_wait_seconds))
    # chalice's lookup: the stage's function entry, the stage, the global function entry, global
    chain = [stage_config["lambda_functions"]["api_handler"], stage_config,
             config["lambda_functions"]["api_handler"], config]
    api_timeout = next(level["lambda_timeout"] for level in chain if "lambda_timeout" in level)
    # The long poll and a few seconds of work fit; the Lambda ends before API Gateway's 29 s.
    assert poll + 5 <= api_timeout < 29


@pytest.mark.parametrize("stage", STAGES)
def test_offline_detection_of_the_deployed_stage_is_within_ten_minutes(stage):
    """docs/cost.md: a silent phone is shown stopped after the heartbeat window and written
    `stopped` by the next run of the one-minute sweep; the suggested heartbeat leaves room for
    one lost heartbeat inside the window."""
    env = load_config()["stages"][stage]["environment_variables"]
    window = int(env.get("SMSGW_HEARTBEAT_WINDOW_SECONDS",
                         settings.current().heartbeat_window_seconds))
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
    granted = {a for function in FUNCTIONS for st in load_policy(stage, function)["Statement"]
               for a in _list(st["Action"])}
    assert not any(a.startswith(("apigateway:", "lambda:")) for a in granted)
