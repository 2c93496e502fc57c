"""The generated merge template declares exactly the tables the models create, with their TTL,
and its alarms and function names agree with the code and the IAM policy."""
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from chalicelib.core import metrics, settings
from chalicelib.storage import tables

ROOT = Path(__file__).resolve().parents[2]
# The TTL attributes the models declare (DynamoDB deletes expired items by them).
TTL = {"messages": "retain_until", "incoming": "retain_until", "idempotency": "expires",
       "otps": "expires", "password-links": "expires", "sessions": "expires",
       "throttles": "expires", "pairing-codes": "expires", "webhook-deliveries": "retain_until",
       "counted-windows": "expires"}


@pytest.fixture(scope="module", params=["dev", "prod"])
def generated(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("template") / "resources.json"
    subprocess.run([sys.executable, "deploy/make_template.py", request.param, "--template",
                    str(out)], cwd=ROOT, check=True)
    return request.param, json.loads(out.read_text())


def _short(name, prefix):
    assert name.startswith(prefix + "-"), name
    return name[len(prefix) + 1:]


def _table_defs(template, stage):
    found = {}
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::DynamoDB::Table":
            found[_short(resource["Properties"]["TableName"], f"smsgw-{stage}")] = resource
    return found


def _key_schema(entries):
    return sorted((e["AttributeName"], e["KeyType"]) for e in entries)


def test_tables_match_what_the_models_create(generated, aws_mock):
    """Compared with the tables PynamoDB really creates (in moto), not with the generator."""
    stage, template = generated
    declared = _table_defs(template, stage)
    assert set(declared) == set(settings.TABLES)
    client = boto3.client("dynamodb", region_name=settings.current().region)
    for model in tables.MODELS:
        live = client.describe_table(TableName=model.Meta.table_name)["Table"]
        props = declared[_short(model.Meta.table_name, settings.current().prefix)]["Properties"]
        assert _key_schema(props["KeySchema"]) == _key_schema(live["KeySchema"])
        assert sorted(map(tuple, (d.values() for d in props["AttributeDefinitions"]))) == \
            sorted(map(tuple, (d.values() for d in live["AttributeDefinitions"])))
        live_indexes = {i["IndexName"]: (_key_schema(i["KeySchema"]), i["Projection"])
                        for i in live.get("GlobalSecondaryIndexes", [])}
        assert {i["IndexName"]: (_key_schema(i["KeySchema"]), i["Projection"])
                for i in props.get("GlobalSecondaryIndexes", [])} == live_indexes
        assert props["BillingMode"] == "PAY_PER_REQUEST"


def test_point_in_time_recovery_only_where_data_is_durable(generated):
    """Issue 29: PITR is billed per GB-month; tables of short-lived items need none."""
    stage, template = generated
    pitr = {short: d["Properties"]["PointInTimeRecoverySpecification"][
        "PointInTimeRecoveryEnabled"] for short, d in _table_defs(template, stage).items()}
    assert {short for short, on in pitr.items() if not on} == {
        "idempotency", "otps", "password-links", "sessions", "throttles", "pairing-codes",
        "counted-windows", "alert-states"}
    for durable in ("accounts", "api-keys", "devices", "messages", "incoming", "webhooks",
                    "users", "daily-counts", "alert-subscriptions", "webhook-deliveries"):
        assert pitr[durable] is True, durable


def test_tables_are_encrypted_with_aws_owned_keys(generated):
    """Issue 29: SSEEnabled true means the AWS managed KMS key (aws/dynamodb), billed per
    request; false (or absent) is DynamoDB's AWS owned key, at no charge."""
    stage, template = generated
    for short, resource in _table_defs(template, stage).items():
        assert resource["Properties"]["SSESpecification"] == {"SSEEnabled": False}, short


def test_an_old_stack_can_keep_its_all_projections(tmp_path):
    """CloudFormation cannot change a GSI's projection: SMSGW_KEEP_ALL_PROJECTIONS=1 generates
    the indexes issue 13 made keys-only as they were (ALL); nothing else changes."""
    import os

    def indexes(env):
        out = tmp_path / f"t{len(env)}.json"
        subprocess.run([sys.executable, "deploy/make_template.py", "prod", "--template",
                        str(out)], check=True, env={**os.environ, **env})
        resources = json.loads(out.read_text())["Resources"]
        return {(r["Properties"]["TableName"].rsplit("-", 1)[-1], i["IndexName"]):
                i["Projection"]["ProjectionType"] for r in resources.values()
                if r.get("Type") == "AWS::DynamoDB::Table"
                for i in r["Properties"].get("GlobalSecondaryIndexes", [])}
    new, kept = indexes({}), indexes({"SMSGW_KEEP_ALL_PROJECTIONS": "1"})
    changed = {("devices", "by-account"), ("devices", "live"), ("messages", "open")}
    assert {k: new[k] for k in changed} == dict.fromkeys(changed, "KEYS_ONLY")
    assert {k: kept[k] for k in changed} == dict.fromkeys(changed, "ALL")
    assert {k: v for k, v in new.items() if k not in changed} == {
        k: v for k, v in kept.items() if k not in changed}


def test_ttl_on_the_declared_attributes(generated):
    stage, template = generated
    ttl = {short: d["Properties"].get("TimeToLiveSpecification")
           for short, d in _table_defs(template, stage).items()}
    assert {s: t["AttributeName"] for s, t in ttl.items() if t} == TTL
    assert all(t["Enabled"] for t in ttl.values() if t)


def test_prod_data_outlives_the_stack(generated):
    """Kept when the stack is deleted or a table replaced, but a failed first create rolls its
    new tables back (RetainExceptOnCreate), so the retry does not meet "already exists"."""
    stage, template = generated
    for resource in _table_defs(template, stage).values():
        if stage == "dev":
            assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Delete"
        else:
            assert resource["DeletionPolicy"] == "RetainExceptOnCreate"
            assert resource["UpdateReplacePolicy"] == "Retain"


ROLES = {"api_handler": "ApiHandlerRole", "settle_messages": "SettleMessagesRole",
         "stop_silent_devices": "StopSilentDevicesRole", "emit_events": "EmitEventsRole",
         "count_outcomes": "CountOutcomesRole", "deliver_webhooks": "DeliverWebhooksRole",
         "purge_accounts": "PurgeAccountsRole"}


@pytest.mark.parametrize("function", sorted(ROLES))
def test_functions_are_named_as_the_policy_expects(generated, function):
    """Each function's role carries that function's own policy file, pinned to the stack."""
    stage, template = generated
    resources = template["Resources"]
    api = resources["APIHandler"]["Properties"]
    assert api["FunctionName"] == f"smsgw-{stage}"
    assert resources["ApiHandlerLogGroup"]["Properties"]["LogGroupName"] == \
        f"/aws/lambda/smsgw-{stage}"
    policy = resources[ROLES[function]]["Properties"]["Policies"][0]["PolicyDocument"]
    written = json.loads((ROOT / ".chalice" / f"policy-{stage}-{function}.json").read_text())
    # The same statements, with region and account bound to the stack's own.
    assert [s["Action"] for s in policy["Statement"]] == \
        [s["Action"] for s in written["Statement"]]
    for pinned, loose in zip(policy["Statement"], written["Statement"], strict=True):
        if pinned["Sid"] == "AlertMail":  # the sender's identity and its domain's, exactly
            assert loose["Resource"] == ["arn:aws:ses:*:*:identity/*"]
            address, domain = pinned["Resource"]
            assert address["Fn::Sub"].endswith(":identity/${AlertSender}")
            assert domain["Fn::Sub"][0].endswith(":identity/${Domain}")
            continue
        for sub, arn in zip(pinned["Resource"], loose["Resource"], strict=True):
            if pinned["Sid"] == "DeviceRole":  # exactly the stack's role, under the file's path
                assert sub == {"Fn::GetAtt": ["DeviceRole", "Arn"]}
                assert arn == "arn:aws:iam::*:role" + resources["DeviceRole"]["Properties"][
                    "Path"] + "*"
                continue
            if sub == arn == "*":  # an action without resource-level permissions
                continue
            assert sub["Fn::Sub"].replace("${AWS::Partition}", "aws").replace(
                "${AWS::Region}:${AWS::AccountId}", "*:*") == arn


def test_alarms_watch_errors_and_stuck_messages(generated):
    stage, template = generated
    alarms = {k: r["Properties"] for k, r in template["Resources"].items()
              if r.get("Type") == "AWS::CloudWatch::Alarm"}
    assert alarms["APIHandlerErrorsAlarm"]["MetricName"] == "Errors"
    stuck = alarms["StuckMessagesAlarm"]
    assert (stuck["Namespace"], stuck["MetricName"]) == (metrics.NAMESPACE, metrics.STUCK_MESSAGES)
    assert stuck["Dimensions"] == [{"Name": "Stage", "Value": stage}]
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms.values())


def test_stuck_metric_line_is_embedded_metric_format(capsys, monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    metrics.emit(metrics.STUCK_MESSAGES, 1)
    assert capsys.readouterr().out == ""  # outside Lambda (local gateway, tests): quiet
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "smsgw-test-settle_messages")
    line = json.loads(metrics.emit(metrics.STUCK_MESSAGES, 3))
    assert json.loads(capsys.readouterr().out) == line
    spec = line["_aws"]["CloudWatchMetrics"][0]
    assert spec["Namespace"] == metrics.NAMESPACE
    assert spec["Metrics"] == [{"Name": metrics.STUCK_MESSAGES, "Unit": "Count"}]
    assert line[metrics.STUCK_MESSAGES] == 3 and line["Stage"] == settings.current().stage


def test_device_role_allows_receiving_from_the_stages_device_queues_only(generated):
    """Direct polling: the role devices' credentials come from, and what reaches the code."""
    import fnmatch

    from chalicelib.domain import direct
    stage, template = generated
    resources = template["Resources"]
    role = resources["DeviceRole"]["Properties"]
    assert role["Path"] == f"/smsgw-{stage}/" and role["MaxSessionDuration"] == 3600
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Action"] == "sts:AssumeRole" and trust["Principal"]["AWS"] == {
        "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    [policy] = role["Policies"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["sqs:ReceiveMessage"]
    pattern = statement["Resource"]["Fn::Sub"].replace("${AWS::Partition}", "aws").replace(
        "${AWS::Region}", "eu-west-1").replace("${AWS::AccountId}", "123456789012")
    assert pattern == f"arn:aws:sqs:eu-west-1:123456789012:smsgw-{stage}-device-*"
    # The gateway's session policy for a device of this stage lies inside the role's grant.
    mine = f"https://sqs.eu-west-1.amazonaws.com/123456789012/smsgw-{stage}-device-0123456789abcdef"
    arn = direct.queue_arn(mine).replace(f":{direct.settings.current().region}:", ":eu-west-1:")
    assert fnmatch.fnmatchcase(arn, pattern)
    assert not fnmatch.fnmatchcase(arn.replace(f"smsgw-{stage}-", "smsgw-other-"), pattern)
    env = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert env == {"SMSGW_DEVICE_ROLE_ARN": {"Fn::GetAtt": ["DeviceRole", "Arn"]},
                   "SMSGW_ALERT_SENDER": {"Ref": "AlertSender"},
                   "SMSGW_PUBLIC_URL": {"Fn::If": ["HasPublicUrl", {"Ref": "PublicUrl"}, ""]}}
    assert template["Outputs"]["DeviceRoleArn"] == {"Value": {"Fn::GetAtt": ["DeviceRole",
                                                                            "Arn"]}}


def test_http_api_fronts_every_route_with_two_route_resources(generated):
    """The cheaper front door: a `$default` route takes every request to the API handler in
    payload format 2.0 (converted in app.py as the function URL's: tests/api/test_front_door.py),
    plus the one route the stage throttles on its own, which the stage waits for: created in
    parallel, API Gateway would refuse its RouteSettings ("Unable to find Route by key")."""
    _, template = generated
    resources = template["Resources"]
    integration = resources["HttpApiIntegration"]["Properties"]
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": ["APIHandler", "Arn"]}
    assert integration["TimeoutInMillis"] <= 30000
    routes = {name: r["Properties"]["RouteKey"] for name, r in resources.items()
              if r.get("Type") == "AWS::ApiGatewayV2::Route"}
    assert sorted(routes.values()) == ["$default", "GET /device/jobs"]
    stage_resource = resources["HttpApiStage"]
    stage = stage_resource["Properties"]
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    for key in stage["RouteSettings"]:
        [route] = [name for name, route_key in routes.items() if route_key == key]
        assert route in stage_resource["DependsOn"], key
    # the REST API's throttles (issue 14's stack parameters) hold on this front door too
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRate"}
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurst"}
    assert stage["RouteSettings"]["GET /device/jobs"] == {
        "ThrottlingRateLimit": {"Ref": "DevicePollThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "DevicePollThrottleBurst"}}
    permission = resources["HttpApiInvokePermission"]["Properties"]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"]["Fn::Sub"].endswith(":${HttpApi}/*")
    # README's deploy steps append "myAPI.php" to it, as to the REST API's EndpointURL.
    assert template["Outputs"]["HttpApiUrl"]["Value"]["Fn::Sub"].endswith("}/")


def test_throttles_and_reserved_concurrency(generated):
    """Issue 14: one leaked device token cannot hold the account's Lambda concurrency: the stage
    and the long-poll route are throttled and the API function's concurrency is reserved."""
    _, template = generated
    settings_by_path = {(m["ResourcePath"], m["HttpMethod"]): m
                        for m in template["Resources"]["RestAPI"]["Properties"]["MethodSettings"]}
    assert settings_by_path[("/*", "*")]["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRate"}
    poll = settings_by_path[("/~1device~1jobs", "GET")]
    assert poll["ThrottlingRateLimit"] == {"Ref": "DevicePollThrottleRate"}
    assert poll["ThrottlingBurstLimit"] == {"Ref": "DevicePollThrottleBurst"}
    reserved = template["Resources"]["APIHandler"]["Properties"]["ReservedConcurrentExecutions"]
    condition, when_set, when_not = reserved["Fn::If"]
    assert when_set == {"Ref": "ApiReservedConcurrency"} and when_not == {"Ref": "AWS::NoValue"}
    assert template["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [
        {"Ref": "ApiReservedConcurrency"}, 0]}]}


# Lambda keeps this much of an account's concurrency unreserved (a reservation that would leave
# less fails); a new account's quota can be as low as 10.
UNRESERVED_MINIMUM, NEW_ACCOUNT_QUOTA = 100, 10


def test_default_parameters_deploy_on_an_account_with_a_quota_of_ten(generated):
    """Issue 29: the defaults reserve nothing, so the first deploy on a new account works."""
    _, template = generated
    reserved = 0
    for resource in template["Resources"].values():
        value = resource.get("Properties", {}).get("ReservedConcurrentExecutions")
        if value is None:
            continue
        condition, when_set, _ = value["Fn::If"]
        default = template["Parameters"][when_set["Ref"]]["Default"]
        # the condition is "parameter != 0": at the default 0 nothing is reserved
        reserved += default if default != 0 else 0
    assert NEW_ACCOUNT_QUOTA - reserved >= min(NEW_ACCOUNT_QUOTA, UNRESERVED_MINIMUM)


def test_every_function_logs_json_without_platform_lines_by_default(generated):
    """docs/cost.md: Lambda's START/END/REPORT lines are off at the default PlatformLogLevel
    (WARN) and back at INFO; the gateway's own warnings and errors are kept."""
    from app import app
    _, template = generated
    parameter = template["Parameters"]["PlatformLogLevel"]
    assert parameter["Default"] == "WARN" and "INFO" in parameter["AllowedValues"]
    # the merge template's entries for chalice's functions: no Type, a FunctionName
    functions = {logical_id: resource for logical_id, resource in template["Resources"].items()
                 if "Type" not in resource and "FunctionName" in resource.get("Properties", {})}
    assert len(functions) == 1 + len(app.event_sources)
    for logical_id, resource in functions.items():
        assert resource["Properties"]["LoggingConfig"] == {
            "LogFormat": "JSON", "ApplicationLogLevel": "INFO",
            "SystemLogLevel": {"Ref": "PlatformLogLevel"}}, logical_id
