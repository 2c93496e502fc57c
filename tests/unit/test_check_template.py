"""deploy/check_template.py's first-deploy rules say no to each mistake issue 29 found (and yes
to the fixed shapes); deploy/check.sh runs them on both stages' transformed templates."""
import zipfile

from deploy import check_template as ct


def stage(depends):
    return {"Resources": {
        "Poll": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {"RouteKey": "GET /jobs"}},
        "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "DependsOn": depends, "Properties": {
            "RouteSettings": {"GET /jobs": {"ThrottlingRateLimit": 1}}}}}}


def test_route_settings_need_their_route_first():
    assert ct.rule_route_settings_wait_for_their_routes(stage([])) != []
    assert ct.rule_route_settings_wait_for_their_routes(stage(["Poll"])) == []
    many = {"Resources": {f"R{i}": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
        "RouteKey": f"GET /{i}"}} for i in range(134)}}
    assert ct.rule_few_route_resources(many) != []


def test_large_templates_are_deployed_through_s3(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "deploy").mkdir()
    (tmp_path / "docs" / "deploy.md").write_text(
        "aws cloudformation deploy --template-file t.yaml \\\n    --stack-name s\n")
    assert ct.rule_large_templates_go_through_s3({}, size=340_343, root=tmp_path) != []
    assert ct.rule_large_templates_go_through_s3({}, size=40_000, root=tmp_path) == []
    (tmp_path / "docs" / "deploy.md").write_text(
        "aws cloudformation deploy --template-file t.yaml \\\n    --s3-bucket b --stack-name s\n")
    assert ct.rule_large_templates_go_through_s3({}, size=340_343, root=tmp_path) == []


def test_the_projects_docs_and_scripts_deploy_through_s3():
    """Issue 29: docs/deploy.md's deploy command had no --s3-bucket for a 340,343-byte template."""
    assert ct.rule_large_templates_go_through_s3({}, size=ct.TEMPLATE_BODY_LIMIT + 1) == []


def test_retained_tables_use_retain_except_on_create():
    table = {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain"}
    assert ct.rule_retained_tables_retry_a_failed_create({"Resources": {"T": table}}) != []
    table["DeletionPolicy"] = "RetainExceptOnCreate"
    assert ct.rule_retained_tables_retry_a_failed_create({"Resources": {"T": table}}) == []


def quota_template(default):
    return {"Parameters": {"Reserved": {"Type": "Number", "Default": default}},
            "Conditions": {"Has": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Reserved"}, 0]}]}},
            "Resources": {"F": {"Type": "AWS::Lambda::Function", "Properties": {
                "ReservedConcurrentExecutions": {"Fn::If": [
                    "Has", {"Ref": "Reserved"}, {"Ref": "AWS::NoValue"}]}}}}}


def test_defaults_deploy_on_an_account_with_a_quota_of_ten():
    assert ct.rule_defaults_fit_a_quota_of_ten(quota_template(100)) != []
    assert ct.rule_defaults_fit_a_quota_of_ten(quota_template(0)) == []


def mappings(retries, destination=True, alarm=True, redrive=True):
    resources = {
        "Failures": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "failures"}},
        "Jobs": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs", **(
            {"RedrivePolicy": {"maxReceiveCount": 5,
                               "deadLetterTargetArn": {"Fn::GetAtt": ["Dead", "Arn"]}}}
            if redrive else {})}},
        "Dead": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "dead"}},
        "Stream": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]},
            "MaximumRetryAttempts": retries, "MaximumRecordAgeInSeconds": 3600, **(
                {"DestinationConfig": {"OnFailure": {"Destination": {
                    "Fn::GetAtt": ["Failures", "Arn"]}}}} if destination else {})}},
        "Queue": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "EventSourceArn": "arn:aws:sqs:eu-west-1:1:jobs"}}}
    if alarm:
        for queue in ("Failures", "Dead"):
            resources[f"{queue}Alarm"] = {"Type": "AWS::CloudWatch::Alarm", "Properties": {
                "Dimensions": [{"Name": "QueueName",
                                "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]}}
    return {"Resources": resources}


def test_every_mapping_is_bounded_with_an_alarmed_destination():
    assert ct.rule_mappings_are_bounded_and_alarmed(mappings(10)) == []
    assert ct.rule_mappings_are_bounded_and_alarmed(mappings(-1)) != []
    assert ct.rule_mappings_are_bounded_and_alarmed(mappings(10, destination=False)) != []
    assert ct.rule_mappings_are_bounded_and_alarmed(mappings(10, alarm=False)) != []
    assert ct.rule_mappings_are_bounded_and_alarmed(mappings(10, redrive=False)) != []


def test_runtime_packages_leave_the_deployment_zip(tmp_path):
    path = tmp_path / "deployment.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name in ("botocore/__init__.py", "botocore-1.44.18.dist-info/METADATA",
                     "boto3/session.py", "s3transfer/x.py", "pynamodb/models.py",
                     "botocorex/keep.py", "app.py"):
            z.writestr(name, "x")
    assert ct.strip_runtime_packages(path) == 4
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["app.py", "botocorex/keep.py", "pynamodb/models.py"]
    assert ct.strip_runtime_packages(path) == 0


def emulated_template(stage, drop=None):
    from chalicelib.core import settings
    from chalicelib.storage import tables
    from deploy import make_template
    resources = {f"{m.__name__}Table": make_template.table_resource(m, stage)
                 for m in tables.MODELS if m.__name__ != drop}
    for logical, name in (("Q1", settings.current().webhook_queue_name()),
                          ("Q2", settings.current().webhook_queue_name(True)),
                          ("Q3", settings.current().stream_failure_queue_name())):
        resources[logical] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name}}
    resources["Api"] = {"Type": "AWS::ApiGatewayV2::Api", "Properties": {"Name": "x"}}
    return {"Resources": resources}


def test_the_emulator_creates_the_stack_and_finds_the_codes_tables():
    """The tables, indexes, streams and queues the code names, created by moto's CloudFormation
    from the template (what it does not emulate, here the API, is left out)."""
    from chalicelib.core import settings
    stage = settings.current().stage
    assert ct.create_on_emulator(emulated_template(stage), stage) == []
    problems = ct.create_on_emulator(emulated_template(stage, drop="Message"), stage)
    messages = settings.current().table_name("messages")
    assert problems == [f"table {messages} (the code's) is not created"]
