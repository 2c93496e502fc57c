"""The deploy rehearsal's offline half: what a first deploy on a fresh account would meet, checked
on a packaged stage (deploy/package.sh) without an account.

    python deploy/check_template.py build/<stage> <stage>   # writes build/<stage>/transformed.json

- the SAM transform (aws-sam-translator, as CloudFormation runs it) of sam.json, written out for
  cfn-lint (deploy/check.sh lints both);
- static rules for what no emulator shows (RULES below, each citing AWS's documented behaviour
  in docs/deploy.md), over the transformed template and the deploy commands of the docs and
  scripts;
- the transformed template created on moto's CloudFormation, for what it supports (tables with
  keys, indexes, streams and TTL; queues; roles; functions; mappings; schedules), and the table,
  index and queue names the code uses checked against what it created;
- the figures: template size, resources, HTTP API route resources, deployment.zip size.

`strip_runtime_packages` is deploy/package.sh's last step: boto3/botocore/s3transfer come with
the Lambda Python runtime, and a vendored copy (22 MB of botocore) would shadow it.
"""
import json
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# CloudFormation takes a template body of at most 51,200 bytes; larger ones (up to 1 MB) must
# be uploaded to S3 first (`aws cloudformation deploy --s3-bucket`).
TEMPLATE_BODY_LIMIT = 51_200
# Lambda keeps 100 of an account's concurrency unreserved; a new account's quota can be 10.
UNRESERVED_MINIMUM, NEW_ACCOUNT_QUOTA = 100, 10
MAX_ROUTES = 20
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer")
DEPLOY_DOCS = ("docs/deploy.md", "README.md")


def strip_runtime_packages(zip_path: Path) -> int:
    """Remove RUNTIME_PACKAGES (and their dist-info) from a Lambda deployment zip; returns how
    many files went."""
    names = "|".join(RUNTIME_PACKAGES)
    pattern = re.compile(rf"^({names})(/|-[^/]*\.dist-info/)")
    with zipfile.ZipFile(zip_path) as source:
        keep = [i for i in source.infolist() if not pattern.match(i.filename)]
        removed = len(source.infolist()) - len(keep)
        if not removed:
            return 0
        slim = zip_path.with_suffix(".slim")
        with zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
            for info in keep:
                target.writestr(info, source.read(info))
    slim.replace(zip_path)
    return removed


def transform(sam: dict) -> dict:
    """The template CloudFormation creates after the AWS::Serverless-2016-10-31 transform."""
    import os

    from samtranslator.translator.transform import transform as sam_transform
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # its pseudo-parameters' region

    class NoManagedPolicies:  # chalice's roles name no AWS managed policy
        def load(self):
            return {}
    sam = json.loads(json.dumps(sam))
    for resource in sam["Resources"].values():  # as `aws cloudformation package` uploads it
        if isinstance(resource.get("Properties", {}).get("CodeUri"), str) and \
                not resource["Properties"]["CodeUri"].startswith("s3://"):
            resource["Properties"]["CodeUri"] = "s3://rehearsal-bucket/deployment.zip"
    return sam_transform(sam, {}, NoManagedPolicies())


# --- the rules -------------------------------------------------------------------------------

def _resources(template, kind):
    return {name: r for name, r in template["Resources"].items() if r.get("Type") == kind}


def rule_route_settings_wait_for_their_routes(template, **_):
    """A stage's RouteSettings may only name routes that exist: the stage DependsOn each."""
    routes = {r["Properties"]["RouteKey"]: name
              for name, r in _resources(template, "AWS::ApiGatewayV2::Route").items()}
    problems = []
    for name, stage in _resources(template, "AWS::ApiGatewayV2::Stage").items():
        depends = stage.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        for key in stage["Properties"].get("RouteSettings", {}):
            if key not in routes:
                problems.append(f"{name}: RouteSettings names {key!r}, which no route has")
            elif routes[key] not in depends:
                problems.append(f"{name}: RouteSettings {key!r} without DependsOn {routes[key]}")
    return problems


def rule_few_route_resources(template, **_):
    count = len(_resources(template, "AWS::ApiGatewayV2::Route"))
    return [f"{count} HTTP API route resources (at most {MAX_ROUTES})"] \
        if count > MAX_ROUTES else []


def rule_large_templates_go_through_s3(template, size=0, root=ROOT, **_):
    """Every `aws cloudformation deploy` the docs and scripts give passes --s3-bucket when the
    template is over the body limit."""
    if size <= TEMPLATE_BODY_LIMIT:
        return []
    problems = []
    for path in [*DEPLOY_DOCS, *sorted(str(p.relative_to(root))
                                       for p in (root / "deploy").glob("*.sh"))]:
        file = root / path
        if not file.exists():
            continue
        text = re.sub(r"\\\n", " ", file.read_text())  # join continued lines
        for line in text.splitlines():
            if re.search(r"\baws cloudformation deploy\b", line) and "--s3-bucket" not in line:
                problems.append(f"{path}: `aws cloudformation deploy` without --s3-bucket "
                                f"for a {size:,}-byte template")
    return problems


def rule_retained_tables_retry_a_failed_create(template, **_):
    return [f"{name}: DeletionPolicy Retain (a failed first create leaves it behind; use "
            "RetainExceptOnCreate)"
            for name, r in _resources(template, "AWS::DynamoDB::Table").items()
            if r.get("DeletionPolicy", "Delete") == "Retain"]


def _default(value, template):
    """A property's value with the parameters at their defaults (Ref, Fn::If)."""
    if isinstance(value, dict) and "Ref" in value:
        if value["Ref"] == "AWS::NoValue":
            return None
        return template.get("Parameters", {}).get(value["Ref"], {}).get("Default")
    if isinstance(value, dict) and "Fn::If" in value:
        condition, yes, no = value["Fn::If"]
        return _default(yes if _condition(condition, template) else no, template)
    return value


def _condition(name, template):
    expression = template["Conditions"][name]

    def evaluate(e):
        if isinstance(e, dict) and "Fn::Not" in e:
            return not evaluate(e["Fn::Not"][0])
        if isinstance(e, dict) and "Fn::Equals" in e:
            left, right = (_default(v, template) for v in e["Fn::Equals"])
            return str(left) == str(right)
        if isinstance(e, dict) and "Condition" in e:
            return _condition(e["Condition"], template)
        raise ValueError(f"condition {name}: {e} is not evaluated here")
    return evaluate(expression)


def rule_defaults_fit_a_quota_of_ten(template, **_):
    reserved = 0
    for r in _resources(template, "AWS::Lambda::Function").values():
        value = _default(r["Properties"].get("ReservedConcurrentExecutions"), template)
        reserved += int(value or 0)
    if reserved and NEW_ACCOUNT_QUOTA - reserved < min(NEW_ACCOUNT_QUOTA, UNRESERVED_MINIMUM):
        return [f"the defaults reserve {reserved} concurrent executions: an account whose quota "
                f"is {NEW_ACCOUNT_QUOTA} cannot keep {UNRESERVED_MINIMUM} unreserved"]
    return []


def _alarmed_queues(template):
    found = set()
    for alarm in _resources(template, "AWS::CloudWatch::Alarm").values():
        for d in alarm["Properties"].get("Dimensions", []):
            value = d.get("Value")
            if d.get("Name") == "QueueName" and isinstance(value, dict) and "Fn::GetAtt" in value:
                found.add(value["Fn::GetAtt"][0])
    return found


def rule_mappings_are_bounded_and_alarmed(template, **_):
    """Stream mappings: bounded retries and record age, an on-failure destination with an
    alarm. Queue mappings: the queue's redrive policy (bounded receives) to a dead-letter
    queue with an alarm."""
    problems, alarmed = [], _alarmed_queues(template)
    queues = _resources(template, "AWS::SQS::Queue")
    for name, mapping in _resources(template, "AWS::Lambda::EventSourceMapping").items():
        p = mapping["Properties"]
        source = json.dumps(p.get("EventSourceArn"))
        if "StreamArn" in source or ":kinesis:" in source:
            for key, low, high in (("MaximumRetryAttempts", 0, 10000),
                                   ("MaximumRecordAgeInSeconds", 60, 604800)):
                if not low <= int(p.get(key, -1)) <= high:
                    problems.append(f"{name}: {key} {p.get(key, -1)} (unbounded)")
            destination = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            if not (isinstance(destination, dict) and "Fn::GetAtt" in destination):
                problems.append(f"{name}: no on-failure destination in the stack")
            elif destination["Fn::GetAtt"][0] not in alarmed:
                problems.append(f"{name}: no alarm on its on-failure destination")
        else:
            queue = next((q for q, r in queues.items()
                          if r["Properties"].get("QueueName") and r["Properties"]["QueueName"]
                          in source), None)
            if queue is None:
                problems.append(f"{name}: its queue is not in the stack")
                continue
            redrive = queues[queue]["Properties"].get("RedrivePolicy", {})
            target = redrive.get("deadLetterTargetArn", {})
            if not redrive.get("maxReceiveCount") or "Fn::GetAtt" not in target:
                problems.append(f"{name}: queue {queue} has no bounded redrive policy")
            elif target["Fn::GetAtt"][0] not in alarmed:
                problems.append(f"{name}: no alarm on {queue}'s dead-letter queue")
    return problems


RULES = [rule_route_settings_wait_for_their_routes, rule_few_route_resources,
         rule_large_templates_go_through_s3, rule_retained_tables_retry_a_failed_create,
         rule_defaults_fit_a_quota_of_ten, rule_mappings_are_bounded_and_alarmed]


def check(template: dict, size: int, root: Path = ROOT) -> list[str]:
    return [p for rule in RULES for p in rule(template, size=size, root=root)]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print(__doc__.splitlines()[3].strip(), file=sys.stderr)
        return 2
    folder, stage = Path(argv[0]), argv[1]
    size = len((folder / "sam.json").read_bytes())
    transformed = transform(json.loads((folder / "sam.json").read_text()))
    (folder / "transformed.json").write_text(json.dumps(transformed, indent=2))
    problems = check(transformed, size) + create_on_emulator(transformed, stage)
    routes = len(_resources(transformed, "AWS::ApiGatewayV2::Route"))
    zip_size = (folder / "deployment.zip").stat().st_size \
        if (folder / "deployment.zip").exists() else 0
    print(f"{folder.name}: sam.json {size:,} bytes, {len(transformed['Resources'])} resources "
          f"after the SAM transform, {routes} HTTP API route resources, deployment.zip "
          f"{zip_size:,} bytes; {len(RULES)} rules, {len(problems)} problems")
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0



# --- the emulator's CloudFormation ------------------------------------------------------------

# What moto's CloudFormation creates (tables with keys, indexes, streams and TTL; queues; roles;
# functions; mappings; schedules; logs; topics); the rest (APIs, URLs, alarms...) is left out,
# and with it whatever refers to what was left out.
EMULATED = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::IAM::Role", "AWS::Lambda::Function",
            "AWS::Lambda::EventSourceMapping", "AWS::Events::Rule", "AWS::Logs::LogGroup",
            "AWS::SNS::Topic"}


def _refs(value) -> set:
    if isinstance(value, list):
        return set().union(*map(_refs, value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = set()
    for key, inner in value.items():
        if key == "Ref" and isinstance(inner, str) and not inner.startswith("AWS::"):
            found.add(inner)
        elif key == "Fn::GetAtt":
            found.add(inner[0] if isinstance(inner, list) else inner.split(".")[0])
        elif key == "Fn::Sub":
            text, local = (inner, {}) if isinstance(inner, str) else inner
            found |= {n.split(".")[0] for n in re.findall(r"\$\{([^}!:]+)\}", text)} - set(local)
            found |= _refs(local)
        else:
            found |= _refs(inner)
    return found


def _stub(value, known: set):
    if isinstance(value, list):
        return [_stub(v, known) for v in value]
    if isinstance(value, dict):
        if not _refs(value) <= known and (set(value) & {"Ref", "Fn::GetAtt", "Fn::Sub"}):
            return "https://emulated.invalid/"
        return {k: _stub(v, known) for k, v in value.items()}
    return value


def emulated_part(template: dict) -> dict:
    """The template less what the emulator cannot create (and what refers to it)."""
    resources = {n: json.loads(json.dumps(r)) for n, r in template["Resources"].items()
                 if r.get("Type") in EMULATED}
    names = set(template.get("Parameters", {}))
    for resource in resources.values():  # a function's URL in its environment: a stand-in
        environment = resource.get("Properties", {}).get("Environment")
        if environment:
            resource["Properties"]["Environment"] = _stub(environment, set(resources) | names)
    while True:
        gone = {n for n, r in resources.items()
                if not _refs({k: v for k, v in r.items() if k != "DependsOn"}) <= set(
                    resources) | names}
        if not gone:
            break
        resources = {n: r for n, r in resources.items() if n not in gone}
    for resource in resources.values():
        depends = resource.get("DependsOn")
        if depends:
            depends = [depends] if isinstance(depends, str) else depends
            resource["DependsOn"] = [d for d in depends if d in resources]
    return {"AWSTemplateFormatVersion": "2010-09-09",
            "Parameters": template.get("Parameters", {}),
            "Conditions": template.get("Conditions", {}), "Resources": resources}


def create_on_emulator(template: dict, stage: str) -> list[str]:
    """Create the emulated part on moto's CloudFormation; check that the tables and indexes the
    code names (chalicelib/storage) exist with their streams and TTL, and the queues it uses.
    Returns the problems (a failed create is one)."""
    import os
    saved = dict(os.environ)
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "SMSGW_STAGE": stage})
    os.environ.pop("SMSGW_PREFIX", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    try:
        return _create_on_emulator(template, stage)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _create_on_emulator(template: dict, stage: str) -> list[str]:
    import boto3
    import moto
    sys.path.insert(0, str(ROOT))
    from chalicelib.core import settings
    from chalicelib.storage import tables
    problems = []
    part = emulated_part(template)
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="rehearsal-bucket")
        s3.put_object(Bucket="rehearsal-bucket", Key="deployment.zip", Body=_tiny_zip())
        cfn = boto3.client("cloudformation")
        cfn.create_stack(StackName=f"smsgw-{stage}", TemplateBody=json.dumps(part),
                         Capabilities=["CAPABILITY_IAM"])
        stack = cfn.describe_stacks(StackName=f"smsgw-{stage}")["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            return [f"the emulator's create ended {stack['StackStatus']}: "
                    f"{stack.get('StackStatusReason')}"]
        dynamodb = boto3.client("dynamodb")
        for model in tables.MODELS:
            try:
                live = dynamodb.describe_table(TableName=model.Meta.table_name)["Table"]
            except dynamodb.exceptions.ResourceNotFoundException:
                problems.append(f"table {model.Meta.table_name} (the code's) is not created")
                continue
            wanted = {i["index_name"] for i in model._get_schema()["global_secondary_indexes"]}
            have = {i["IndexName"] for i in live.get("GlobalSecondaryIndexes", [])}
            if wanted != have:
                problems.append(f"{model.Meta.table_name}: indexes {sorted(have)}, the code "
                                f"queries {sorted(wanted)}")
            if getattr(model.Meta, "stream_view_type", None) and not live.get(
                    "StreamSpecification", {}).get("StreamEnabled"):
                problems.append(f"{model.Meta.table_name}: no stream")
        sqs = boto3.client("sqs")
        for name in (settings.current().webhook_queue_name(),
                     settings.current().webhook_queue_name(True),
                     settings.current().stream_failure_queue_name()):
            try:
                sqs.get_queue_url(QueueName=name)
            except sqs.exceptions.QueueDoesNotExist:
                problems.append(f"queue {name} (the code's) is not created")
        lambda_ = boto3.client("lambda")
        roles = {f["FunctionName"]: f["Role"] for f in lambda_.list_functions()["Functions"]}
        if len(set(roles.values())) != len(roles):
            problems.append(f"functions share a role: {roles}")
        mappings = lambda_.list_event_source_mappings()["EventSourceMappings"]
        wanted = [r for r in part["Resources"].values()
                  if r["Type"] == "AWS::Lambda::EventSourceMapping"]
        if len(mappings) != len(wanted):
            problems.append(f"{len(mappings)} event source mappings created of {len(wanted)}")
        created = {r["LogicalResourceId"] for r in cfn.describe_stack_resources(
            StackName=f"smsgw-{stage}")["StackResources"]}
        print(f"emulator: {len(created)} of {len(template['Resources'])} resources created "
              f"({len(tables.MODELS)} tables checked against the code)")
    return problems


def _tiny_zip() -> bytes:
    import io
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
