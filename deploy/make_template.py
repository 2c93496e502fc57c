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

The IAM policy is written from the same names: `.chalice/policy-<stage>.json` is this script's
output, committed so `chalice` and reviewers read it; tests/api/test_policy.py checks it is current
and that it allows every AWS call the handlers make.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQS_ACTIONS = ["sqs:ChangeMessageVisibility", "sqs:CreateQueue", "sqs:DeleteMessage",
               "sqs:DeleteQueue", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
               "sqs:ReceiveMessage", "sqs:SendMessage", "sqs:TagQueue"]
# TransactWriteItems/TransactGetItems are authorised per item as these actions.
TABLE_ACTIONS = ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:DeleteItem",
                 "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]
INDEX_ACTIONS = ["dynamodb:Query"]
# The stream function's event source mapping reads the streams (AWS's action names).
STREAM_ACTIONS = ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"]
WEBHOOK_QUEUE_ACTIONS = ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
                         "sqs:ReceiveMessage", "sqs:SendMessage"]
# A webhook job that makes the queue function fail this often goes to the dead-letter queue.
WEBHOOK_MAX_RECEIVES = 5
# API Gateway's integration timeout is 29 s; the API handler must end before it.
API_GATEWAY_TIMEOUT_SECONDS = 29


def _load(stage: str):
    """Import the gateway with `stage`'s names (settings read the environment at import)."""
    if "chalicelib.core.settings" in sys.modules:
        from chalicelib.core import settings
        if settings.STAGE != stage or settings.PREFIX != f"smsgw-{stage}":
            raise SystemExit(f"chalicelib already imported for stage {settings.STAGE}; run "
                             "this script in its own process")
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


def policy(stage: str) -> dict:
    settings, tables, _ = _load(stage)
    table_arns, index_arns = [], []
    for model in tables.MODELS:
        table_arns.append(_arn("dynamodb", f"table/{model.Meta.table_name}"))
        for index in model._get_schema()["global_secondary_indexes"]:
            index_arns.append(_arn("dynamodb", f"table/{model.Meta.table_name}/index/"
                                               f"{index['index_name']}"))
    prefix = settings.PREFIX
    functions = f"/aws/lambda/{prefix}"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "Tables", "Effect": "Allow", "Action": TABLE_ACTIONS, "Resource": table_arns},
        {"Sid": "TableIndexes", "Effect": "Allow", "Action": INDEX_ACTIONS,
         "Resource": index_arns},
        {"Sid": "DeviceQueues", "Effect": "Allow", "Action": SQS_ACTIONS,
         "Resource": [_arn("sqs", settings.queue_name("*"))]},
        # Direct polling: vend device credentials (chalicelib/domain/direct.py). The stack's
        # DeviceRole is the one role under this path; the merge template names it exactly.
        {"Sid": DEVICE_ROLE_SID, "Effect": "Allow", "Action": ["sts:AssumeRole"],
         "Resource": [_arn("iam", f"role{settings.device_role_path()}*")]},
        # Webhooks: the stream function reads the event tables' streams (ListStreams has no
        # resource-level permission), queues deliveries; the queue function sends them.
        {"Sid": "EventStreams", "Effect": "Allow", "Action": STREAM_ACTIONS,
         "Resource": [_arn("dynamodb", f"table/{settings.table_name(short)}/stream/*")
                      for short in settings.EVENT_SOURCE_TABLES]},
        {"Sid": "ListEventStreams", "Effect": "Allow", "Action": ["dynamodb:ListStreams"],
         "Resource": ["*"]},
        {"Sid": "WebhookQueue", "Effect": "Allow", "Action": WEBHOOK_QUEUE_ACTIONS,
         "Resource": [_arn("sqs", settings.webhook_queue_name()),
                      _arn("sqs", settings.webhook_queue_name(dead_letter=True))]},
        # Alert mails (chalicelib/domain/insight/alerts.py): SES, from the AlertSender
        # identity; the merge template narrows the resource to that one identity.
        {"Sid": ALERT_MAIL_SID, "Effect": "Allow", "Action": ["ses:SendEmail"],
         "Resource": [_arn("ses", "identity/*")]},
        {"Sid": "OtpSecret", "Effect": "Allow", "Action": ["ssm:GetParameter"],
         "Resource": [_arn("ssm", "parameter" + otp_secret_parameter(stage))]},
        {"Sid": "Logs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [_arn("logs", f"log-group:{functions}:log-stream:*"),
                      _arn("logs", f"log-group:{functions}-*:log-stream:*")]},
    ]}


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


def table_resource(model, stage: str) -> dict:
    """CloudFormation for one PynamoDB model, from the schema PynamoDB itself creates. Tables
    outlive their stack (deleted or replaced) except in `dev`."""
    schema = model._get_schema()
    definitions = {d["AttributeName"]: d["AttributeType"] for d in schema["attribute_definitions"]}
    properties = {
        "TableName": model.Meta.table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": _hash_first(schema["key_schema"]),
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "SSESpecification": {"SSEEnabled": True},
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
    keep = "Delete" if stage == "dev" else "Retain"
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": keep,
            "UpdateReplacePolicy": keep, "Properties": properties}


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
             f"{settings.queue_name('*')}"
    return {"Type": "AWS::IAM::Role", "Properties": {
        "Path": settings.device_role_path(),
        "MaxSessionDuration": 3600,
        "Description": f"{settings.PREFIX}: devices long-polling their own SQS queue",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
        }]},
        "Policies": [{"PolicyName": "receive-from-device-queues", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": ["sqs:ReceiveMessage"],
                "Resource": {"Fn::Sub": queues}}]}}]}}


def http_api(app, stage: str, prefix: str) -> dict:
    """An HTTP API in front of the API handler: $1.00 instead of $3.50 per million requests.
    Payload format 1.0 gives the handler the REST API's event shape, so chalice routes it
    unchanged (by requestContext.resourcePath, the route's path) and the IP whitelist reads
    requestContext.identity.sourceIp, which API Gateway sets from the TCP connection."""
    resources = {
        "HttpApi": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
            "Name": f"{prefix}-http", "ProtocolType": "HTTP",
            "Description": f"{prefix}: compatibility API and device protocol (HTTP API)"}},
        "HttpApiIntegration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
            "ApiId": {"Ref": "HttpApi"}, "IntegrationType": "AWS_PROXY",
            "IntegrationUri": {"Fn::GetAtt": ["APIHandler", "Arn"]},
            "PayloadFormatVersion": "1.0",
            "TimeoutInMillis": API_GATEWAY_TIMEOUT_SECONDS * 1000}},
        "HttpApiStage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {
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
    for path, methods in sorted(app.routes.items()):
        for method in sorted(methods):
            words = re.sub(r"[^A-Za-z0-9]+", " ", f"{method} {path}").title().replace(" ", "")
            resources[f"HttpApiRoute{words}"] = {
                "Type": "AWS::ApiGatewayV2::Route", "Properties": {
                    "ApiId": {"Ref": "HttpApi"}, "RouteKey": f"{method} {path}",
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
            "QueueName": settings.webhook_queue_name(dead_letter=True),
            "MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True}},
        "WebhookQueue": {"Type": "AWS::SQS::Queue", "Properties": {
            "QueueName": settings.webhook_queue_name(), "VisibilityTimeout": visibility,
            "MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True,
            "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["WebhookDeadLetterQueue",
                                                                     "Arn"]},
                              "maxReceiveCount": WEBHOOK_MAX_RECEIVES}}},
        "WebhookDeadLetterAlarm": _alarm(
            "Webhook jobs or stream batches the functions could not process (dead-letter "
            "queue not empty).",
            {"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible",
             "Statistic": "Maximum",
             "Dimensions": [{"Name": "QueueName", "Value": {
                 "Fn::GetAtt": ["WebhookDeadLetterQueue", "QueueName"]}}]}),
    }
    models = {model.Meta.table_name: model for model in tables.MODELS}
    sources = {}
    for short in settings.EVENT_SOURCE_TABLES:
        model = models[settings.table_name(short)]
        name = ("emit_events-dynamodb-event-source" if short == "messages"
                else f"emit_events-{short}-stream")
        sources[to_cfn_resource_name(name)] = {"Type": "DynamoDB", "Properties": {
            "Stream": {"Fn::GetAtt": [f"{model.__name__}Table", "StreamArn"]},
            "StartingPosition": "TRIM_HORIZON", "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 1, "BisectBatchOnFunctionError": True,
            # Retried until the record leaves the stream (24 h); then its batch's location
            # goes to the dead-letter queue (and its alarm), never silently.
            "MaximumRetryAttempts": -1, "MaximumRecordAgeInSeconds": -1,
            "FilterCriteria": {"Filters": events.stream_filters(short)},
            "DestinationConfig": {"OnFailure": {"Destination": {
                "Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}}}}}
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
    a million lone SMS a month invoke it about 3,000 times instead of a million."""
    from chalice.utils import to_cfn_resource_name

    from chalicelib.domain.insight import stats
    sources = {}
    for short in stats.COUNTED_TABLES:
        model = models[settings.table_name(short)]
        name = ("count_outcomes-dynamodb-event-source" if short == "messages"
                else f"count_outcomes-{short}-stream")
        sources[to_cfn_resource_name(name)] = {"Type": "DynamoDB", "Properties": {
            "Stream": {"Fn::GetAtt": [f"{model.__name__}Table", "StreamArn"]},
            "StartingPosition": "TRIM_HORIZON", "BatchSize": 1000,
            "MaximumBatchingWindowInSeconds": 300,
            "TumblingWindowInSeconds": stats.WINDOW_SECONDS,
            "MaximumRetryAttempts": -1, "MaximumRecordAgeInSeconds": -1,
            "FilterCriteria": {"Filters": stats.stream_filters(short)},
            "DestinationConfig": {"OnFailure": {"Destination": {
                "Fn::GetAtt": ["WebhookDeadLetterQueue", "Arn"]}}}}}
    return sources


# CloudFormation parameters of the limits: (name, default, description).
LIMITS = [
    ("ApiThrottleRate", 50, "API Gateway stage: steady requests per second, all routes."),
    ("ApiThrottleBurst", 100, "API Gateway stage: burst of requests, all routes."),
    ("DevicePollThrottleRate", 4, "GET /device/jobs: long polls per second (x 20 s wait = "
                                  "concurrent polls, so 4/s holds at most 80 Lambdas)."),
    ("DevicePollThrottleBurst", 20, "GET /device/jobs: burst of long polls."),
    ("ApiReservedConcurrency", 100, "Concurrent executions reserved for (and capping) the API "
                                    "function; 0: none reserved (accounts with a low limit)."),
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
    pinned_policy = _pinned(policy(stage))
    for statement in pinned_policy["Statement"]:
        if statement["Sid"] == DEVICE_ROLE_SID:  # exactly the stack's role, not the path
            statement["Resource"] = [{"Fn::GetAtt": ["DeviceRole", "Arn"]}]
        if statement["Sid"] == ALERT_MAIL_SID:  # exactly the sender's identity (its domain)
            statement["Resource"] = [{"Fn::Sub": ["arn:${AWS::Partition}:ses:${AWS::Region}:"
                                                  "${AWS::AccountId}:identity/${Identity}",
                                                  {"Identity": {"Fn::Select": [1, {
                                                      "Fn::Split": ["@", {"Fn::Join": [
                                                          "", [{"Ref": "AlertSender"},
                                                               "@none"]]}]}]}}]}]
    resources = {"DeviceRole": device_role(settings)}
    limit_parameters, api_limits, function_limits = limits()
    for model in tables.MODELS:
        resources[f"{model.__name__}Table"] = table_resource(model, stage)
    webhook_parts = webhook_resources(settings, tables, stage)
    webhook_functions = {name: webhook_parts.pop(to_cfn_resource_name(name))
                         for name in ("emit_events", "count_outcomes", "deliver_webhooks")}
    resources.update(webhook_parts)
    resources["AlarmTopic"] = {"Type": "AWS::SNS::Topic",
                               "Properties": {"TopicName": f"{settings.PREFIX}-alarms"}}
    resources["AlarmEmailSubscription"] = {
        "Type": "AWS::SNS::Subscription", "Condition": "HasAlarmEmail",
        "Properties": {"TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email",
                       "Endpoint": {"Ref": "AlarmEmail"}}}
    for name, logical_id, function_name in functions(app, settings.PREFIX):
        log_group = to_cfn_resource_name(f"{name}_log_group")
        resources[logical_id] = {"DependsOn": [log_group],
                                 "Properties": {"FunctionName": function_name}}
        resources[logical_id]["Properties"]["LoggingConfig"] = LOGGING
        if name in webhook_functions:
            resources[logical_id]["DependsOn"] += webhook_functions[name].get("DependsOn", [])
            resources[logical_id]["Properties"].update(
                webhook_functions[name].get("Properties", {}))
        # merged into the environment chalice writes: alert mails' sender (empty: none)
        resources[logical_id]["Properties"]["Environment"] = {"Variables": {
            "SMSGW_ALERT_SENDER": {"Ref": "AlertSender"}}}
        if name == "api_handler":
            resources[logical_id]["Properties"]["Environment"]["Variables"][
                "SMSGW_DEVICE_ROLE_ARN"] = {"Fn::GetAtt": ["DeviceRole", "Arn"]}
            resources[logical_id]["Properties"].update(function_limits)
            resources["RestAPI"] = {"Properties": api_limits}
        resources[log_group] = {
            "Properties": {"LogGroupName": f"/aws/lambda/{function_name}"}}
        resources[to_cfn_resource_name(f"{name}_role")] = {"Properties": {"Policies": [{
            "PolicyName": f"{function_name}-least-privilege",
            "PolicyDocument": pinned_policy}]}}
        resources[f"{logical_id}ErrorsAlarm"] = _alarm(
            f"{function_name}: a Lambda invocation failed (exception or timeout).",
            {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Statistic": "Sum",
             "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]})
    resources.update(http_api(app, stage, settings.PREFIX))
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
            **limit_parameters,
            "PlatformLogLevel": {
                "Type": "String", "Default": PLATFORM_LOG_LEVELS[0],
                "AllowedValues": PLATFORM_LOG_LEVELS,
                "Description": "Lambda's own log lines (START/END/REPORT: INFO) written from this "
                               "level; WARN drops them (their figures stay in CloudWatch "
                               "metrics)."}},
        "Conditions": {
            "HasAlarmEmail": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]},
            "HasReservedConcurrency": {"Fn::Not": [{"Fn::Equals": [
                {"Ref": "ApiReservedConcurrency"}, 0]}]}},
        "Resources": resources,
        "Outputs": outputs,
    }


def policy_path(stage: str) -> Path:
    return ROOT / ".chalice" / f"policy-{stage}.json"


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
        policy_path(args.stage).write_text(render(policy(args.stage)))
    if args.check_policy:
        path = policy_path(args.stage)
        if not path.exists() or path.read_text() != render(policy(args.stage)):
            print(f"{path} is stale: run python deploy/make_template.py {args.stage} --policy",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
