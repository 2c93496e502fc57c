"""Generates the deployment's infrastructure from the code, so names cannot drift apart.

    python deploy/make_template.py STAGE --template OUT.json   # merge template for chalice package
    python deploy/make_template.py STAGE --policy              # writes .chalice/policy-STAGE.json
    python deploy/make_template.py STAGE --check-policy        # fails if that file is stale

The merge template (`chalice package --merge-template`) holds:
- one DynamoDB table per PynamoDB model in chalicelib/storage/tables.py: its name, key schema,
  GSIs and TTL attribute read from the model itself, on-demand billing, point-in-time recovery;
- fixes to what chalice generates: fixed function names (`smsgw-<stage>[-<function>]`, which the
  IAM policy's log-group ARNs name), the API handler's log group name (chalice 1.34 refers to a
  resource that does not exist), and each role's policy pinned to the stack's region and account;
- alarms (to an SNS topic, optionally mailed): errors of every Lambda function, and stuck
  messages as reported by the cleanup sweeps (chalicelib/core/metrics.py);
- the cheaper front door (docs/cost.md): an API Gateway HTTP API (AWS::ApiGatewayV2) with one
  route per chalice route, integrated with the API handler in payload format 1.0, which is the
  event shape chalice reads (requestContext.identity.sourceIp included); its URL is the output
  HttpApiUrl, the alternative for owners who want API Gateway's throttles or a custom domain.
  The REST API chalice generates stays (same handler), at 3.5x the price per request;
- the cheapest front door, the default: a Lambda function URL on the API handler (payload
  format 2.0, converted in app.py; no charge per request); its URL is the output FunctionUrl,
  the base URL README's deploy steps give to applications and devices;
- Lambda's advanced logging controls on every function (JSON logs; the platform's
  START/END/REPORT lines off unless the parameter PlatformLogLevel says INFO): docs/cost.md;
- limits so one leaked device token cannot exhaust the account (docs/hardening.md): API
  Gateway stage throttling, a tighter throttle on the long-poll route, and reserved concurrency
  for the API function (so it can neither starve nor be starved by the account's other
  functions); all parameters;
- the role devices assume in direct polling mode (DeviceRole: sqs:ReceiveMessage on the stage's
  device queues; the gateway narrows each session to one queue), its ARN in the API handler's
  SMSGW_DEVICE_ROLE_ARN, and sts:AssumeRole on exactly that role in the functions' policy;
- webhooks (docs/webhooks.md): streams on the event tables feeding the `emit_events` function
  (chalice names one stream; the others are added here, all from the tables' own StreamArn),
  the webhook queue with its dead-letter queue and an alarm on it.

Each function's IAM policy is written from the same names (GRANTS: one role per function):
`.chalice/policy-<stage>-<function>.json` is this script's output, committed so `chalice` and
reviewers read it; tests/api/test_policy.py checks it is current, that each function's role allows
every AWS call its handler makes, and grants nothing it does not.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# TransactWriteItems/TransactGetItems are authorised per item as these actions.
TABLE_ACTIONS = ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
                 "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
# The stream functions' event source mappings read the streams (AWS's action names).
STREAM_ACTIONS = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
# What Lambda's SQS event source mapping does with the function's role.
QUEUE_MAPPING_ACTIONS = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
# A webhook job that makes the queue function fail this often goes to the dead-letter queue.
WEBHOOK_MAX_RECEIVES = 5
# Every stream mapping's bound (AWS's default is -1 for both: retried until the record leaves
# the stream, 24 h later, holding back the shard all that time): 100 retries of a batch, and
# no record older than 6 hours, then the batch goes to the on-failure destination.
STREAM_RETRY = {"MaximumRetryAttempts": 100, "MaximumRecordAgeInSeconds": 6 * 3600}
# API Gateway's integration timeout is 29 s; the API handler must end before it.
API_GATEWAY_TIMEOUT_SECONDS = 29


def _load(stage: str):
    """Import the gateway with `stage`'s names (settings read the environment once, at first
    use)."""
    if "chalicelib.core.settings" in sys.modules:
        from chalicelib.core import settings
        if settings.current().stage != stage or settings.current().prefix != f"smsgw-{stage}":
            raise SystemExit(f"chalicelib already imported for stage "
                             f"{settings.current().stage}; run this script in its own process")
    os.environ["SMSGW_STAGE"] = stage
    os.environ.pop("SMSGW_PREFIX", None)
    sys.path.insert(0, str(ROOT))
    from chalicelib.core import metrics, settings
    from chalicelib.storage import tables
    return settings, tables, metrics


def otp_secret_parameter(stage: str) -> str:
    return f"/smsgw/{stage}/otp-secret"


def _arn(service: str, resource: str) -> str:
    """Region and account are left open here (chalice deploy reads this file as is); the
    merge template pins them to the stack's own with Fn::Sub."""
    if service == "iam":  # global: no region
        return f"arn:aws:iam::*:{resource}"
    return f"arn:aws:{service}:*:*:{resource}"


DEVICE_ROLE_SID = "DeviceRole"
ALERT_MAIL_SID = "AlertMail"
ALL_TABLES = "*"
# One role per function, each with only what its handler calls (tests/api/test_policy.py runs
# every function against moto and checks each call against that function's own role):
#   tables: short table name -> actions (ALL_TABLES: every table of the stage);
#   indexes: the tables whose GSIs it queries; queues: device/webhook queue actions;
#   and the single grants it needs (device role, OTP secret, alert mail, streams, ...).
GRANTS = {
    "api_handler": {
        "tables": {ALL_TABLES: TABLE_ACTIONS},
        "indexes": [ALL_TABLES],
        "device_queues": ["sqs:CreateQueue", "sqs:DeleteMessage", "sqs:DeleteQueue",
                          "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage",
                          "sqs:TagQueue"],
        "webhook_queue": ["sqs:GetQueueUrl", "sqs:SendMessage"],
        "device_role": True, "otp_secret": True, "alert_mail": True,
        # the operator's console lists every account, a Scan page at a time (operators.py)
        "scan": ["accounts"],
    },
    "settle_messages": {
        # the account's opt-out list, read when a scheduled message is released
        # (messages/scheduling.py: a number that replied STOP since is not sent)
        "tables": {"accounts": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                   "opt-outs": ["dynamodb:Query"],
                   "devices": ["dynamodb:GetItem"],
                   "messages": ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query",
                                "dynamodb:UpdateItem"]},
        # the first look's list of accounts (messages/first_look.py): the accounts table only
        "scan": ["accounts"],
        "indexes": ["messages/open"],
        "device_queues": ["sqs:SendMessage"],
    },
    "stop_silent_devices": {
        "tables": {"devices": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                   "messages": ["dynamodb:GetItem", "dynamodb:UpdateItem"]},
        "indexes": ["devices/live", "messages/pool", "devices/by-account"],
        "device_queues": ["sqs:SendMessage"],
    },
    "emit_events": {
        "tables": {"webhooks": ["dynamodb:Query"],
                   "alert-states": ["dynamodb:UpdateItem"],
                   "alert-subscriptions": ["dynamodb:Query"]},
        "streams": "emit_events",
        "webhook_queue": ["sqs:GetQueueUrl", "sqs:SendMessage"],
        "alert_mail": True,
    },
    "count_outcomes": {
        "tables": {"daily-counts": ["dynamodb:UpdateItem"],
                   "counted-windows": ["dynamodb:PutItem"],
                   "alert-states": ["dynamodb:UpdateItem"],
                   "alert-subscriptions": ["dynamodb:Query"]},
        "streams": "count_outcomes",
        "alert_mail": True,
    },
    "purge_accounts": {
        # deleted accounts (domain/purge.py): the only role that deletes from every table;
        # the account item and its devices one conditional DeleteItem each, every other item
        # 25 to a BatchWriteItem
        "tables": {"accounts": ["dynamodb:DeleteItem", "dynamodb:GetItem",
                                "dynamodb:UpdateItem"],
                   "devices": ["dynamodb:DeleteItem", "dynamodb:GetItem"],
                   **{short: ["dynamodb:BatchWriteItem", "dynamodb:Query"] for short in (
                       "messages", "incoming", "opt-outs", "webhooks", "webhook-deliveries",
                       "daily-counts", "alert-states", "alert-subscriptions")},
                   **{short: ["dynamodb:BatchWriteItem"] for short in (
                       "api-keys", "users", "sessions", "idempotency", "otps",
                       "password-links", "pairing-codes", "throttles")}},
        # the tables with no index by account (their keys or an attribute name it)
        "scan": ["idempotency", "otps", "password-links", "pairing-codes"],
        "indexes": ["accounts/deleted", "devices/by-account", "api-keys/by-account",
                    "users/by-account", "sessions/by-user"],
        "device_queues": ["sqs:DeleteQueue"],
    },
    "deliver_webhooks": {
        "tables": {"webhooks": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                   "webhook-deliveries": ["dynamodb:PutItem", "dynamodb:UpdateItem"],
                   "alert-states": ["dynamodb:UpdateItem"],
                   "alert-subscriptions": ["dynamodb:Query"]},
        # the SQS event source mapping's actions, and the jobs it queues again (a retry) or
        # gives up on (to the dead-letter queue)
        "webhook_queue": QUEUE_MAPPING_ACTIONS + ["sqs:GetQueueUrl", "sqs:SendMessage"],
        "webhook_dead_letters": ["sqs:GetQueueUrl", "sqs:SendMessage"],
        "alert_mail": True,
    },
}


def function_names() -> list[str]:
    return list(GRANTS)


def _stream_tables(settings, function: str) -> list[str]:
    if function == "count_outcomes":
        from chalicelib.domain.insight import stats
        return list(stats.COUNTED_TABLES)
    return list(settings.EVENT_SOURCE_TABLES)


def policy(stage: str, function: str) -> dict:
    """The least-privilege policy of one function's role (region and account left open)."""
    settings, tables, _ = _load(stage)
    grants = GRANTS[function]
    cut = len(settings.current().prefix) + 1
    models = {model.Meta.table_name[cut:]: model for model in tables.MODELS}
    by_actions: dict[tuple, list[str]] = {}
    for short, actions in grants["tables"].items():
        for name in (sorted(models) if short == ALL_TABLES else [short]):
            by_actions.setdefault(tuple(sorted(actions)), []).append(name)
    statements = []
    for n, (actions, shorts) in enumerate(sorted(by_actions.items())):
        statements.append({"Sid": "Tables" + (str(n + 1) if len(by_actions) > 1 else ""),
                           "Effect": "Allow", "Action": list(actions),
                           "Resource": [_arn("dynamodb",
                                             f"table/{settings.current().table_name(short)}")
                                        for short in sorted(shorts)]})
    if grants.get("scan"):
        statements.append({"Sid": "Scan", "Effect": "Allow", "Action": ["dynamodb:Scan"],
                           "Resource": [_arn("dynamodb",
                                             f"table/{settings.current().table_name(short)}")
                                        for short in grants["scan"]]})
    wanted = grants.get("indexes", [])
    index_arns = [_arn("dynamodb", f"table/{settings.current().table_name(short)}/index/"
                                   f"{index['index_name']}")
                  for short in sorted(models)
                  for index in models[short]._get_schema()["global_secondary_indexes"]
                  if ALL_TABLES in wanted or f"{short}/{index['index_name']}" in wanted]
    unknown = set(wanted) - {ALL_TABLES} - {
        f"{short}/{i['index_name']}" for short in models
        for i in models[short]._get_schema()["global_secondary_indexes"]}
    if unknown:
        raise SystemExit(f"{function}: no such index {sorted(unknown)}")
    if index_arns:
        statements.append({"Sid": "TableIndexes", "Effect": "Allow",
                           "Action": ["dynamodb:Query"], "Resource": index_arns})
    if grants.get("device_queues"):
        statements.append({"Sid": "DeviceQueues", "Effect": "Allow",
                           "Action": grants["device_queues"],
                           "Resource": [_arn("sqs", settings.current().queue_name("*"))]})
    if grants.get("device_role"):
        # Direct polling: vend device credentials (chalicelib/domain/direct.py). The stack's
        # DeviceRole is the one role under this path; the merge template names it exactly.
        statements.append({"Sid": DEVICE_ROLE_SID, "Effect": "Allow",
                           "Action": ["sts:AssumeRole"],
                           "Resource": [_arn("iam",
                                             f"role{settings.current().device_role_path()}*")]})
    if grants.get("streams"):
        # The mapping reads the tables' streams (ListStreams has no resource-level
        # permission) and records a batch it gives up on in the stream-failure queue.
        statements += [
            {"Sid": "EventStreams", "Effect": "Allow", "Action": STREAM_ACTIONS,
             "Resource": [_arn("dynamodb", f"table/{settings.current().table_name(short)}/stream/*")
                          for short in _stream_tables(settings, grants["streams"])]},
            {"Sid": "ListEventStreams", "Effect": "Allow", "Action": ["dynamodb:ListStreams"],
             "Resource": ["*"]},
            {"Sid": "StreamFailures", "Effect": "Allow", "Action": ["sqs:SendMessage"],
             "Resource": [_arn("sqs", settings.current().stream_failure_queue_name())]}]
    if grants.get("webhook_queue"):
        statements.append({"Sid": "WebhookQueue", "Effect": "Allow",
                           "Action": sorted(grants["webhook_queue"]),
                           "Resource": [_arn("sqs", settings.current().webhook_queue_name())]})
    if grants.get("webhook_dead_letters"):
        statements.append({"Sid": "WebhookDeadLetters", "Effect": "Allow",
                           "Action": sorted(grants["webhook_dead_letters"]),
                           "Resource": [_arn("sqs", settings.current().webhook_queue_name(
                               dead_letter=True))]})
    if grants.get("alert_mail"):
        # Alert mails (chalicelib/domain/insight/alerts.py): SES authorises a send against
        # the From address's identity if it is verified, else its domain's: the merge
        # template narrows these to the AlertSender address and its domain.
        statements.append({"Sid": ALERT_MAIL_SID, "Effect": "Allow",
                           "Action": ["ses:SendEmail"],
                           "Resource": [_arn("ses", "identity/*")]})
    if grants.get("otp_secret"):
        statements.append({"Sid": "OtpSecret", "Effect": "Allow",
                           "Action": ["ssm:GetParameter"],
                           "Resource": [_arn("ssm", "parameter" + otp_secret_parameter(stage))]})
    function_name = settings.current().prefix if function == "api_handler" \
        else f"{settings.current().prefix}-{function}"
    statements.append({"Sid": "Logs", "Effect": "Allow",
                       "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                       "Resource": [_arn("logs", f"log-group:/aws/lambda/{function_name}"
                                                 ":log-stream:*")]})
    return {"Version": "2012-10-17", "Statement": statements}


def _pinned(value):
    """The policy with `arn:aws:<service>:*:*:` bound to the stack's partition/region/account."""
    if isinstance(value, list):
        return [_pinned(v) for v in value]
    if isinstance(value, dict):
        return {k: _pinned(v) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("arn:aws:iam::*:"):
        return {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:"
                           + value[len("arn:aws:iam::*:"):]}
    if isinstance(value, str) and value.startswith("arn:aws:"):
        match = re.match(r"^arn:aws:([a-z0-9-]+):\*:\*:(.*)$", value)
        if not match:
            raise ValueError(f"unexpected ARN in policy: {value}")
        return {"Fn::Sub": f"arn:${{AWS::Partition}}:{match[1]}:${{AWS::Region}}:"
                           f"${{AWS::AccountId}}:{match[2]}"}
    return value


def pinned_policy(stage: str, function: str) -> dict:
    """A function's policy as its role in the template has it: region and account the stack's
    own, the device role exactly the stack's, alert mail exactly the sender's identities."""
    pinned = _pinned(policy(stage, function))
    ses_identity = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/"
    for statement in pinned["Statement"]:
        if statement["Sid"] == DEVICE_ROLE_SID:  # exactly the stack's role, not the path
            statement["Resource"] = [{"Fn::GetAtt": ["DeviceRole", "Arn"]}]
        if statement["Sid"] == ALERT_MAIL_SID:  # the From address's identity, and its domain's
            statement["Resource"] = [
                {"Fn::Sub": ses_identity + "${AlertSender}"},
                {"Fn::Sub": [ses_identity + "${Domain}", {"Domain": {"Fn::Select": [1, {
                    "Fn::Split": ["@", {"Fn::Join": ["", [{"Ref": "AlertSender"},
                                                           "@none"]]}]}]}}]}]
    return pinned


def _hash_first(key_schema: list) -> list:
    """CloudFormation wants the HASH key first (PynamoDB lists keys by attribute name)."""
    return sorted(key_schema, key=lambda key: key["KeyType"] != "HASH")


# Indexes made keys-only by issue 13 (they projected ALL before). CloudFormation cannot change a
# projection in place: a stack deployed before keeps ALL with SMSGW_KEEP_ALL_PROJECTIONS=1
# (the code reads the items itself, so it works with either; docs/deploy.md, "Upgrading").
KEYS_ONLY_SINCE_ISSUE_13 = {("devices", "by-account"), ("devices", "live"), ("messages", "open")}


def _projection(model, index: dict) -> dict:
    if os.environ.get("SMSGW_KEEP_ALL_PROJECTIONS") == "1" and any(
            model.Meta.table_name.endswith("-" + short) and index["index_name"] == name
            for short, name in KEYS_ONLY_SINCE_ISSUE_13):
        return {"ProjectionType": "ALL"}
    return index["projection"]


# Tables whose items are short-lived or can be made again, so a restore would bring nothing
# back worth its price: no point-in-time recovery (billed per GB-month of the table).
EPHEMERAL_TABLES = {
    "idempotency": "answers kept 24 h to repeat a retried send",
    "otps": "codes valid for minutes",
    "password-links": "sign-in links valid for minutes",
    "sessions": "dashboard sessions: a restore would only sign people in again",
    "throttles": "sign-in attempt counters and quotas' daily counters",
    "pairing-codes": "pairing codes valid for minutes",
    "counted-windows": "marks of stream windows counted (kept a few days)",
    "alert-states": "when an alert was last mailed (at worst one mail again)",
}


def table_resource(model, stage: str) -> dict:
    """CloudFormation for one PynamoDB model, from the schema PynamoDB itself creates. Tables
    outlive their stack (deleted or replaced) except in `dev`."""
    schema = model._get_schema()
    definitions = {d["AttributeName"]: d["AttributeType"] for d in schema["attribute_definitions"]}
    properties = {
        "TableName": model.Meta.table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": _hash_first(schema["key_schema"]),
        "PointInTimeRecoverySpecification": {
            "PointInTimeRecoveryEnabled": model.Meta.table_name[len(f"smsgw-{stage}-"):]
            not in EPHEMERAL_TABLES},
        # Encrypted at rest with an AWS owned key: no KMS key, no KMS request charges
        # (SSEEnabled true would use the AWS managed key aws/dynamodb, billed per request).
        "SSESpecification": {"SSEEnabled": False},
    }
    indexes = []
    for index in schema["global_secondary_indexes"]:
        for d in index["attribute_definitions"]:
            definitions[d["AttributeName"]] = d["AttributeType"]
        indexes.append({"IndexName": index["index_name"],
                        "KeySchema": _hash_first(index["key_schema"]),
                        "Projection": _projection(model, index)})
    if schema["local_secondary_indexes"]:
        raise SystemExit(f"{model.__name__}: local secondary indexes are not generated yet")
    properties["AttributeDefinitions"] = [{"AttributeName": name, "AttributeType": kind}
                                          for name, kind in definitions.items()]
    if indexes:
        properties["GlobalSecondaryIndexes"] = indexes
    ttl = [a.attr_name for a in model.get_attributes().values()
           if type(a).__name__ == "TTLAttribute"]
    if len(ttl) > 1:
        raise SystemExit(f"{model.__name__}: DynamoDB allows one TTL attribute, found {ttl}")
    if ttl:
        properties["TimeToLiveSpecification"] = {"AttributeName": ttl[0], "Enabled": True}
    if getattr(model.Meta, "stream_view_type", None):
        properties["StreamSpecification"] = {"StreamViewType": model.Meta.stream_view_type}
    # Kept when the stack is deleted or the table replaced, except in `dev`; and deleted when
    # the stack operation that created it rolls back (RetainExceptOnCreate), so a failed first
    # create can be retried without meeting "already exists" (UpdateReplacePolicy has no such
    # value: a replacement is never a create).
    if stage == "dev":
        return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Delete",
                "UpdateReplacePolicy": "Delete", "Properties": properties}
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "RetainExceptOnCreate",
            "UpdateReplacePolicy": "Retain", "Properties": properties}


def functions(app, prefix: str) -> list[tuple[str, str, str]]:
    """(chalice name, CloudFormation logical id, Lambda function name) of every function
    `chalice package` generates for `app`, named as `chalice deploy` names them."""
    from chalice.utils import to_cfn_resource_name
    found = []
    if app.routes:
        found.append(("api_handler", "APIHandler", prefix))
    for name in [s.name for s in app.event_sources] + [f.name for f in
                                                          app.pure_lambda_functions]:
        found.append((name, to_cfn_resource_name(name), f"{prefix}-{name}"))
    return found


def _alarm(description: str, properties: dict) -> dict:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description, "ActionsEnabled": True,
        "AlarmActions": [{"Ref": "AlarmTopic"}], "OKActions": [{"Ref": "AlarmTopic"}],
        "ComparisonOperator": "GreaterThanOrEqualToThreshold", "Threshold": 1,
        "EvaluationPeriods": 1, "Period": 300, "TreatMissingData": "notBreaching",
        **properties}}


def device_role(settings) -> dict:
    """The role a device's credentials come from (POST /device/credentials). Anyone in the
    account may assume it whose own policy allows it: only the gateway's functions' roles do.
    Each session is narrowed further to one device's queue by the gateway's session policy."""
    queues = f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:" \
             f"{settings.current().queue_name('*')}"
    return {"Type": "AWS::IAM::Role", "Properties": {
        "Path": settings.current().device_role_path(),
        "MaxSessionDuration": 3600,
        "Description": f"{settings.current().prefix}: devices long-polling their own SQS queue",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
        }]},
        "Policies": [{"PolicyName": "receive-from-device-queues", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": ["sqs:ReceiveMessage"],
                "Resource": {"Fn::Sub": queues}}]}}]}}


# The HTTP API's routes: `$default` takes every request (chalicelib/surfaces/function_url.py
# routes it, as for the function URL); a route of its own only where the stage sets a limit for
# it (RouteSettings), and the stage waits for each such route (DependsOn): CloudFormation
# creates a stage and routes in parallel, and API Gateway refuses RouteSettings for a route
# key that does not exist yet ("Unable to find Route by key").
HTTP_API_ROUTES = {"$default": "HttpApiRouteDefault", "GET /device/jobs": "HttpApiRoutePoll"}


def http_api(app, stage: str, prefix: str) -> dict:
    """An HTTP API in front of the API handler: $1.00 instead of $3.50 per million requests.
    Payload format 2.0, as the function URL's: app.py converts it to the REST API's event shape
    chalice routes (by the path), and the IP whitelist reads requestContext.http.sourceIp, which
    API Gateway sets from the TCP connection. Two route resources, not one per chalice route."""
    resources = {
        "HttpApi": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
            "Name": f"{prefix}-http", "ProtocolType": "HTTP",
            "Description": f"{prefix}: compatibility API and device protocol (HTTP API)"}},
        "HttpApiIntegration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
            "ApiId": {"Ref": "HttpApi"}, "IntegrationType": "AWS_PROXY",
            "IntegrationUri": {"Fn::GetAtt": ["APIHandler", "Arn"]},
            "PayloadFormatVersion": "2.0",
            "TimeoutInMillis": API_GATEWAY_TIMEOUT_SECONDS * 1000}},
        "HttpApiStage": {"Type": "AWS::ApiGatewayV2::Stage",
                         "DependsOn": [HTTP_API_ROUTES["GET /device/jobs"]],
                         "Properties": {
            "ApiId": {"Ref": "HttpApi"}, "StageName": "$default", "AutoDeploy": True,
            # the same stack parameters as the REST API's stage (limits())
            "DefaultRouteSettings": {"ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
                                     "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"}},
            "RouteSettings": {"GET /device/jobs": {
                "ThrottlingRateLimit": {"Ref": "DevicePollThrottleRate"},
                "ThrottlingBurstLimit": {"Ref": "DevicePollThrottleBurst"}}}}},
        "HttpApiInvokePermission": {"Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "APIHandler"},
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:"
                                     "${AWS::AccountId}:${HttpApi}/*"}}},
    }
    for route_key, logical_id in HTTP_API_ROUTES.items():
        resources[logical_id] = {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
            "ApiId": {"Ref": "HttpApi"}, "RouteKey": route_key,
            "Target": {"Fn::Sub": "integrations/${HttpApiIntegration}"}}}
    return resources


def function_url() -> dict:
    """A Lambda function URL on the API handler: the default front door (docs/cost.md), with
    no charge per request. Public (AuthType NONE: the gateway authenticates every request
    itself). Since October 2025 a public URL needs two grants to anyone: InvokeFunctionUrl
    for URLs of AuthType NONE, and InvokeFunction only when invoked through a function URL;
    neither lets anyone call the function's Invoke API. Requests arrive in payload format
    2.0; app.py converts them (chalicelib/surfaces/function_url.py), and the IP whitelist
    reads requestContext.http.sourceIp, which Lambda sets from the connection. No CORS: the
    dashboard is served from the same origin and the APIs are called by servers and phones."""
    return {
        "ApiFunctionUrl": {"Type": "AWS::Lambda::Url", "Properties": {
            "TargetFunctionArn": {"Fn::GetAtt": ["APIHandler", "Arn"]},
            "AuthType": "NONE", "InvokeMode": "BUFFERED"}},
        "ApiFunctionUrlPermission": {"Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunctionUrl", "FunctionName": {"Ref": "APIHandler"},
            "Principal": "*", "FunctionUrlAuthType": "NONE"}},
        "ApiFunctionUrlInvokePermission": {"Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "APIHandler"},
            "Principal": "*", "InvokedViaFunctionUrl": True}},
    }


def _function_timeout(name: str, stage: str) -> int:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    merged = {**config, **config["stages"].get(stage, {})}
    per_function = {**config.get("lambda_functions", {}),
                    **config["stages"].get(stage, {}).get("lambda_functions", {})}
    return per_function.get(name, {}).get("lambda_timeout", merged.get("lambda_timeout", 60))


def webhook_resources(settings, tables, stage: str) -> dict:
    """The webhook queue (visibility 6x the queue function's timeout, as AWS advises), its
    dead-letter queue, an alarm on the latter, and the stream sources of `emit_events`."""
    from chalice.utils import to_cfn_resource_name

    from chalicelib.domain.webhooks import events
    visibility = 6 * _function_timeout("deliver_webhooks", stage)
    resources = {
        "WebhookDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": settings.current().webhook_queue_name(dead_letter=True),
            "MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}},
        "WebhookQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": settings.current().webhook_queue_name(), "VisibilityTimeout": visibility,
            "MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["WebhookDeadLetterQueue",
                                                                     "Arn"]},
                              "maxReceiveCount": WEBHOOK_MAX_RECEIVES}}},
        "WebhookDeadLetterAlarm": _alarm(
            "Webhook jobs the queue function could not process (dead-letter queue not empty).",
            {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
             "Statistic": "Maximum",
             "Dimensions": [{"Name": "QueueName", "Value": {
                 "Fn::GetAtt": ["WebhookDeadLetterQueue", "QueueName"]}}]}),
        # The stream mappings' on-failure destination: where each batch given up on is
        # recorded (which shard, which sequence numbers), to replay from the stream within
        # its 24 hours (docs/deploy.md).
        "StreamFailureQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": settings.current().stream_failure_queue_name(),
            "MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}},
        "StreamFailureAlarm": _alarm(
            "Stream batches a stream function gave up on (retries or record age exhausted).",
            {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
             "Statistic": "Maximum",
             "Dimensions": [{"Name": "QueueName", "Value": {
                 "Fn::GetAtt": ["StreamFailureQueue", "QueueName"]}}]}),
    }
    models = {model.Meta.table_name: model for model in tables.MODELS}
    sources = stream_sources(
        settings, models, "emit_events", settings.EVENT_SOURCE_TABLES, events.stream_filters,
        # A failing batch is halved until the bad record stands alone, then retried as every
        # stream source is (stream_sources).
        BatchSize=100, MaximumBatchingWindowInSeconds=1, BisectBatchOnFunctionError=True)
    resources[to_cfn_resource_name("emit_events")] = {"Properties": {"Events": sources}}
    resources[to_cfn_resource_name("count_outcomes")] = {"Properties": {
        "Events": counting_sources(settings, models)}}
    # chalice names the queue by an ARN string: the function (which its event source mapping
    # references) waits for the queue.
    resources[to_cfn_resource_name("deliver_webhooks")] = {"DependsOn": ["WebhookQueue"]}
    return resources


def counting_sources(settings, models) -> dict:
    """The stream sources of `count_outcomes` (chalicelib/domain/insight/stats.py): every
    outcome and incoming SMS, in 15-minute tumbling windows read at most every 5 minutes, so
    a million lone SMS a month invoke it about 3,000 times instead of a million. A window is
    retried whole (its state is built batch by batch), so it is not bisected."""
    from chalicelib.domain.insight import stats
    return stream_sources(settings, models, "count_outcomes", stats.COUNTED_TABLES,
                          stats.stream_filters, BatchSize=1000,
                          MaximumBatchingWindowInSeconds=300,
                          TumblingWindowInSeconds=stats.WINDOW_SECONDS)


def stream_sources(settings, models, function: str, shorts, filters, **batching) -> dict:
    """`function`'s DynamoDB stream event sources, one per table in `shorts` (the messages
    table's named as chalice names its own event source), each reading as `batching` says and
    filtered by `filters(short)`. Bounded: a failing batch is retried STREAM_RETRIES times, then
    its location (shard, sequence numbers) goes to the stream-failure queue and its alarm, and
    the shard moves on (never silently)."""
    from chalice.utils import to_cfn_resource_name
    sources = {}
    for short in shorts:
        model = models[settings.current().table_name(short)]
        name = (f"{function}-dynamodb-event-source" if short == "messages"
                else f"{function}-{short}-stream")
        sources[to_cfn_resource_name(name)] = {"Type": "DynamoDB", "Properties": {
            "Stream": {"Fn::GetAtt": [f"{model.__name__}Table", "StreamArn"]},
            "StartingPosition": "TRIM_HORIZON", **batching, **STREAM_RETRY,
            "FilterCriteria": {"Filters": filters(short)},
            "DestinationConfig": {"OnFailure": {"Destination": {
                "Fn::GetAtt": ["StreamFailureQueue", "Arn"]}}}}}
    return sources


# CloudFormation parameters of the limits: (name, default, description).
LIMITS = [
    ("ApiThrottleRate", 50, "API Gateway stage: steady requests per second, all routes."),
    ("ApiThrottleBurst", 100, "API Gateway stage: burst of requests, all routes."),
    ("DevicePollThrottleRate", 4, "GET /device/jobs: long polls per second (x 20 s wait = "
                                  "concurrent polls, so 4/s holds at most 80 Lambdas)."),
    ("DevicePollThrottleBurst", 20, "GET /device/jobs: burst of long polls."),
    # 0 by default: Lambda keeps 100 of the account's concurrency unreserved, and a new
    # account's quota can be 10, so any reservation would fail the first deploy (docs/deploy.md).
    ("ApiReservedConcurrency", 0, "Concurrent executions reserved for (and capping) the API "
                                  "function; 0 (default): none reserved. Reserve only what "
                                  "leaves 100 of the account's quota unreserved."),
]
POLL_ROUTE = "/~1device~1jobs"  # MethodSettings' encoding of /device/jobs
# Lambda's advanced logging controls, on every function: JSON logs, and Lambda's own
# START/END/REPORT lines (about 300 bytes per invocation, bench/cost.py) only from the level the
# stack parameter sets. At WARN they are not written: per-invocation duration and memory are
# then in CloudWatch metrics (Duration, Errors, Throttles...), not in the logs. INFO brings them
# back. ApplicationLogLevel stays INFO: the sweeps' metric lines (chalicelib/core/metrics.py,
# printed JSON without a "level", which Lambda files as INFO) feed StuckMessagesAlarm.
PLATFORM_LOG_LEVELS = ["WARN", "INFO", "DEBUG"]
LOGGING = {"LogFormat": "JSON", "ApplicationLogLevel": "INFO",
           "SystemLogLevel": {"Ref": "PlatformLogLevel"}}


def limits() -> tuple[dict, dict, dict]:
    """(parameters, RestAPI properties, API function properties) of the throttles and the
    reserved concurrency."""
    parameters = {name: {"Type": "Number", "Default": default, "MinValue": 0,
                         "Description": text} for name, default, text in LIMITS}
    api = {"MethodSettings": [
        {"ResourcePath": "/*", "HttpMethod": "*",
         "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
         "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"}},
        {"ResourcePath": POLL_ROUTE, "HttpMethod": "GET",
         "ThrottlingRateLimit": {"Ref": "DevicePollThrottleRate"},
         "ThrottlingBurstLimit": {"Ref": "DevicePollThrottleBurst"}}]}
    function = {"ReservedConcurrentExecutions": {"Fn::If": [
        "HasReservedConcurrency", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}}
    return parameters, api, function


def template(stage: str) -> dict:
    settings, tables, metrics = _load(stage)
    from chalice.utils import to_cfn_resource_name

    from app import app
    resources = {"DeviceRole": device_role(settings)}
    limit_parameters, api_limits, function_limits = limits()
    for model in tables.MODELS:
        resources[f"{model.__name__}Table"] = table_resource(model, stage)
    webhook_parts = webhook_resources(settings, tables, stage)
    webhook_functions = {name: webhook_parts.pop(to_cfn_resource_name(name))
                         for name in ("emit_events", "count_outcomes", "deliver_webhooks")}
    resources.update(webhook_parts)
    resources["AlarmTopic"] = {"Type": "AWS::SNS::Topic",
                               "Properties": {"TopicName": f"{settings.current().prefix}-alarms"}}
    resources["AlarmEmailSubscription"] = {
        "Type": "AWS::SNS::Subscription", "Condition": "HasAlarmEmail",
        "Properties": {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email",
                       "Endpoint": {"Ref": "AlarmEmail"}}}
    for name, logical_id, function_name in functions(app, settings.current().prefix):
        log_group = to_cfn_resource_name(f"{name}_log_group")
        resources[logical_id] = {"DependsOn": [log_group],
                                 "Properties": {"FunctionName": function_name}}
        resources[logical_id]["Properties"]["LoggingConfig"] = LOGGING
        if name in webhook_functions:
            resources[logical_id]["DependsOn"] += webhook_functions[name].get("DependsOn", [])
            resources[logical_id]["Properties"].update(
                webhook_functions[name].get("Properties", {}))
        # merged into the environment chalice writes: alert mails' sender (empty: none) and
        # the public URL their links use (the API handler answers on it, so it reads it from
        # each request when PublicUrl is empty: its own URL would be a circular reference)
        resources[logical_id]["Properties"]["Environment"] = {"Variables": {
            "SMSGW_ALERT_SENDER": {"Ref": "AlertSender"},
            "SMSGW_PUBLIC_URL": {"Fn::If": ["HasPublicUrl", {"Ref": "PublicUrl"}, (
                "" if name == "api_handler"
                else {"Fn::GetAtt": ["ApiFunctionUrl", "FunctionUrl"]})]}}}
        if name == "api_handler":
            resources[logical_id]["Properties"]["Environment"]["Variables"][
                "SMSGW_DEVICE_ROLE_ARN"] = {"Fn::GetAtt": ["DeviceRole", "Arn"]}
            resources[logical_id]["Properties"].update(function_limits)
            resources["RestAPI"] = {"Properties": api_limits}
        resources[log_group] = {
            "Properties": {"LogGroupName": f"/aws/lambda/{function_name}"}}
        resources[to_cfn_resource_name(f"{name}_role")] = {"Properties": {"Policies": [{
            "PolicyName": f"{function_name}-least-privilege",
            "PolicyDocument": pinned_policy(stage, name)}]}}
        resources[f"{logical_id}ErrorsAlarm"] = _alarm(
            f"{function_name}: a Lambda invocation failed (exception or timeout).",
            {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Statistic": "Sum",
             "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]})
    resources.update(http_api(app, stage, settings.current().prefix))
    resources.update(function_url())
    resources["StuckMessagesAlarm"] = _alarm(
        "Messages the cleanup sweeps found stuck (never queued, or leased and never reported).",
        {"Namespace": metrics.NAMESPACE, "MetricName": metrics.STUCK_MESSAGES,
         "Statistic": "Maximum", "EvaluationPeriods": 2, "DatapointsToAlarm": 2,
         "Dimensions": [{"Name": "Stage", "Value": stage}]})
    outputs = {f"{model.__name__}TableName": {"Value": {"Ref": f"{model.__name__}Table"}}
               for model in tables.MODELS}
    outputs["AlarmTopicArn"] = {"Value": {"Ref": "AlarmTopic"}}
    outputs["DeviceRoleArn"] = {"Value": {"Fn::GetAtt": ["DeviceRole", "Arn"]}}
    outputs["FunctionUrl"] = {
        "Description": "Base URL for applications and devices (the Lambda function URL: no "
                       "charge per request).",
        "Value": {"Fn::GetAtt": ["ApiFunctionUrl", "FunctionUrl"]}}
    outputs["HttpApiUrl"] = {
        "Description": "Alternative base URL through API Gateway's HTTP API (throttling, custom "
                       "domains; $1.00 per million requests).",
        "Value": {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/"}}
    outputs["WebhookQueueUrl"] = {"Value": {"Ref": "WebhookQueue"}}
    return {
        "Parameters": {"AlarmEmail": {
            "Type": "String", "Default": "",
            "Description": "Address mailed when an alarm fires (empty: no subscription)."},
            "AlertSender": {
                "Type": "String", "Default": "",
                "Description": "SES-verified address alert mails to the account's users come "
                               "from (empty: no alert mails)."},
            "PublicUrl": {
                "Type": "String", "Default": "",
                "Description": "Base URL the gateway is reached at, for the links in alert "
                               "mails and pairing codes (empty: the function URL; set it when "
                               "applications use HttpApiUrl or a domain of your own)."},
            **limit_parameters,
            "PlatformLogLevel": {
                "Type": "String", "Default": PLATFORM_LOG_LEVELS[0],
                "AllowedValues": PLATFORM_LOG_LEVELS,
                "Description": "Lambda's own log lines (START/END/REPORT: INFO) written from this "
                               "level; WARN drops them (their figures stay in CloudWatch "
                               "metrics)."}},
        "Conditions": {
            "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
            "HasPublicUrl": {"Fn::Not": [{"Fn::Equals": [{"Ref": "PublicUrl"}, ""]}]},
            "HasReservedConcurrency": {"Fn::Not": [{"Fn::Equals": [
                {"Ref": "ApiReservedConcurrency"}, 0]}]}},
        "Resources": resources,
        "Outputs": outputs,
    }


def policy_path(stage: str, function: str) -> Path:
    """The file .chalice/config.json names as the function's iam_policy_file in `stage`."""
    return ROOT / ".chalice" / f"policy-{stage}-{function}.json"


def render(document: dict) -> str:
    return json.dumps(document, indent=2) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage")
    parser.add_argument("--template", metavar="OUT", help="write the merge template here")
    parser.add_argument("--policy", action="store_true", help="write .chalice/policy-STAGE.json")
    parser.add_argument("--check-policy", action="store_true",
                        help="fail if .chalice/policy-STAGE.json differs from the generated one")
    args = parser.parse_args(argv)
    if not re.match(r"^[a-z][a-z0-9]{0,15}$", args.stage):
        parser.error("stage: 1-16 lowercase letters/digits, starting with a letter")
    if args.template:
        Path(args.template).parent.mkdir(parents=True, exist_ok=True)
        Path(args.template).write_text(render(template(args.stage)))
    if args.policy:
        for function in function_names():
            policy_path(args.stage, function).write_text(render(policy(args.stage, function)))
    if args.check_policy:
        for function in function_names():
            path = policy_path(args.stage, function)
            if not path.exists() or path.read_text() != render(policy(args.stage, function)):
                print(f"{path} is stale: run python deploy/make_template.py {args.stage} "
                      "--policy", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
