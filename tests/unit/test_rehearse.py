"""deploy/rehearse's deploy and teardown sequencing (deploy/rehearse_stack.py), with every AWS CLI
command it runs recorded: `FakeAws` answers as the CLI does (JSON on stdout, the error text on
stderr), fails or is interrupted (Ctrl-C) where a test says. The journey between them is a
stand-in here; tests/e2e/test_rehearse_e2e.py runs the real journey against a local gateway, and
`deploy/rehearse` itself as a process (dry run, and a real Ctrl-C with a recording `aws`).

Every recorded command is checked against botocore's models, the ones the AWS CLI is built on:
the operation or waiter exists and each option is one of its parameters."""
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy"))
import rehearse  # noqa: E402
import rehearse_stack as stack  # noqa: E402
from rehearse_report import FAIL, KEPT, PASS, Report  # noqa: E402

STAGE = "rh0a1b2c"
STACK = f"smsgw-{STAGE}"
RECEIVER = f"{STACK}-receiver"
BUCKET = f"smsgw-{STAGE}-123456789012-eu-west-1"
QUEUES = [f"https://sqs.eu-west-1.amazonaws.com/123456789012/{STACK}-device-{n}" for n in "ab"]


class Fail:
    """An answer: the command exits non-zero with this on stderr."""

    def __init__(self, text):
        self.text = text


def _events(*failed):
    return {"StackEvents": [{"LogicalResourceId": name, "ResourceStatus": "CREATE_FAILED",
                             "ResourceStatusReason": why} for name, why in failed]}


HAPPY = [
    ("sts get-caller-identity", {"Account": "123456789012",
                                 "Arn": "arn:aws:iam::123456789012:user/owner"}),
    (f"--stack-name {RECEIVER} --query Stacks[0].Outputs", [
        {"OutputKey": "ReceiverUrl", "OutputValue": "https://r.lambda-url.eu-west-1.on.aws/"},
        {"OutputKey": "QueueUrl", "OutputValue": "https://sqs/received"}]),
    (f"--stack-name {STACK} --query Stacks[0].Outputs", [
        {"OutputKey": "FunctionUrl", "OutputValue": "https://f.lambda-url.eu-west-1.on.aws/"},
        {"OutputKey": "HttpApiUrl", "OutputValue": "https://h.execute-api.on.aws/"}]),
    ("Stacks[0].StackStatus", "CREATE_COMPLETE"),
    ("sqs list-queues", {"QueueUrls": QUEUES}),
    ("logs describe-log-groups", [f"/aws/lambda/{STACK}-settle_messages"]),
    ("dynamodb list-tables", {"TableNames": [f"{STACK}-accounts", f"{STACK}-messages",
                                             "smsgw-prod-accounts"]}),
]


class FakeAws(stack.Aws):
    """Records each command; the first rule whose words all appear in it answers."""

    def __init__(self, *rules):
        super().__init__("eu-west-1", out=io.StringIO())
        self.rules = list(rules) + HAPPY
        self.calls = []

    def execute(self, argv, cwd=None, env=None, masked=None):
        self._show(argv, masked)
        self.calls.append(list(argv))
        line = " ".join(argv)
        if argv[:2] == ["bash", "deploy/package.sh"]:  # what it leaves: the stack's template
            Path(argv[3]).mkdir(parents=True, exist_ok=True)
            (Path(argv[3]) / "sam.json").write_text('{"Resources": {"APIHandler": {}}}')
        for words, answer in self.rules:
            if all(word in line for word in words.split(" && ")):
                if answer is KeyboardInterrupt:
                    raise KeyboardInterrupt
                if isinstance(answer, Fail):
                    raise stack.CommandFailed(argv, answer.text)
                return answer if isinstance(answer, str) and not line.startswith(
                    "aws") else json.dumps(answer)
        return ""

    def aws_calls(self):
        """The aws commands without the --region/--output every one carries."""
        found = []
        for argv in self.calls:
            if argv[0] != "aws":
                continue
            assert argv[-4:] == ["--region", "eu-west-1", "--output", "json"] or \
                argv[-2:] == ["--region", "eu-west-1"], argv
            found.append(" ".join(argv[1:argv.index("--region")]))
        return found


@pytest.fixture
def run(tmp_path, monkeypatch):
    # the copy of the project is tested in tests/e2e/test_rehearse_e2e.py (it packages for real)
    monkeypatch.setattr(stack, "copy_project", lambda plan, project: None)

    def go(fake, journey=None, keep=False, **plan):
        plan = stack.Plan(STAGE, "eu-west-1", account="123456789012", workdir=tmp_path, **plan)
        report, seen = Report(out=io.StringIO()), []
        rehearse.rehearse(plan, fake, report, journey or seen.append, keep=keep)
        return report, seen
    return go


DEPLOY = [
    f"s3 mb s3://{BUCKET}",
    f"ssm put-parameter --name /smsgw/{STAGE}/otp-secret --type SecureString --value <secret>",
    f"cloudformation deploy --template-file <dir>/receiver.json --stack-name {RECEIVER} "
    "--capabilities CAPABILITY_IAM",
    f"cloudformation describe-stacks --stack-name {RECEIVER} --query Stacks[0].Outputs",
    f"cloudformation package --template-file <dir>/build/sam.json --s3-bucket {BUCKET} "
    f"--s3-prefix {STACK} --output-template-file <dir>/build/packaged.yaml",
    f"cloudformation deploy --template-file <dir>/build/packaged.yaml --stack-name {STACK} "
    f"--s3-bucket {BUCKET} --s3-prefix {STACK} --capabilities CAPABILITY_IAM "
    "CAPABILITY_NAMED_IAM CAPABILITY_AUTO_EXPAND",
    f"cloudformation describe-stacks --stack-name {STACK} --query Stacks[0].Outputs",
]


def delete(name, before=()):
    return [f"cloudformation describe-stacks --stack-name {name} --query Stacks[0].StackStatus",
            *before, f"cloudformation delete-stack --stack-name {name}",
            f"cloudformation wait stack-delete-complete --stack-name {name}"]


TEARDOWN = [f"sqs list-queues --queue-name-prefix {STACK}-device-",
            *[f"sqs delete-queue --queue-url {q}" for q in QUEUES],
            *delete(STACK), *delete(RECEIVER),
            f"ssm delete-parameter --name /smsgw/{STAGE}/otp-secret",
            f"s3 rb s3://{BUCKET} --force",
            f"logs describe-log-groups --log-group-name-prefix /aws/lambda/{STACK} "
            "--query logGroups[].logGroupName",
            f"logs delete-log-group --log-group-name /aws/lambda/{STACK}-settle_messages",
            "dynamodb list-tables"]


def normal(calls, tmp_path):
    return [re.sub(r"--value [0-9a-f]{64}", "--value <secret>", c).replace(str(tmp_path),
                                                                          "<dir>")
            for c in calls]


def test_a_rehearsal_packages_deploys_through_s3_runs_the_journey_and_tears_all_down(
        run, tmp_path):
    fake = FakeAws()
    report, journeys = run(fake)
    packaging = [argv[1:] for argv in fake.calls if argv[0] != "aws"]
    assert packaging == [["deploy/make_template.py", STAGE, "--policy"],
                         ["deploy/package.sh", STAGE, str(tmp_path / "build")]]
    assert normal(fake.aws_calls(), tmp_path) == DEPLOY + TEARDOWN
    assert journeys == [{"ReceiverUrl": "https://r.lambda-url.eu-west-1.on.aws/",
                         "QueueUrl": "https://sqs/received",
                         "FunctionUrl": "https://f.lambda-url.eu-west-1.on.aws/",
                         "HttpApiUrl": "https://h.execute-api.on.aws/"}]
    assert report.rows[0].detail == "sam.json: 1 resources, 33 bytes"
    results = {r.step: r.result for r in report.rows}
    assert results.pop("teardown: retained tables") == KEPT  # two of ours, not prod's
    assert set(results.values()) == {PASS}
    assert report.passed
    secret = next(a for a in fake.calls if "put-parameter" in a)
    value = secret[secret.index("--value") + 1]
    assert re.fullmatch(r"[0-9a-f]{64}", value)
    printed = fake.out.getvalue()
    assert value not in printed
    assert f"--value {stack.MASK} --region" in printed
    template = json.loads((tmp_path / "receiver.json").read_text())
    assert template["Outputs"].keys() == {"ReceiverUrl", "QueueUrl"}
    kept = next(r for r in report.rows if r.step == "teardown: retained tables")
    assert kept.detail.startswith("2 kept") and f"--teardown {STAGE} --delete-retained" in \
        kept.detail


def test_a_failed_deploy_says_why_runs_no_journey_and_still_tears_down(run, tmp_path):
    fake = FakeAws(
        ("cloudformation deploy && packaged.yaml", Fail(
            "\nFailed to create/update the stack. Run the following command to fetch the list "
            "of events leading up to the failure\naws cloudformation describe-stack-events")),
        (f"describe-stack-events --stack-name {STACK}", _events(
            ("HttpApiStage", "Unable to find Route by key GET /device/jobs within the "
                             "provided RouteSettings"),
            ("ApiHandlerRole", "Resource creation cancelled"))),
        (f"--stack-name {STACK} --query Stacks[0].StackStatus", "ROLLBACK_COMPLETE"))
    report, journeys = run(fake)
    assert journeys == []
    failed = [r for r in report.rows if r.result == FAIL]
    assert [r.step for r in failed] == [f"stack {STACK} (package, deploy through S3)"]
    assert "HttpApiStage: Unable to find Route by key GET /device/jobs" in failed[0].detail
    assert "ApiHandlerRole" not in failed[0].detail  # cancelled, not a cause
    calls = normal(fake.aws_calls(), tmp_path)
    assert calls[calls.index(f"cloudformation describe-stack-events --stack-name {STACK}")
                 + 1:] == TEARDOWN
    assert not report.passed


def test_ctrl_c_during_the_deploy_lets_cloudformation_finish_then_deletes(run, tmp_path):
    fake = FakeAws(("cloudformation deploy && packaged.yaml", KeyboardInterrupt),
                   (f"--stack-name {STACK} --query Stacks[0].StackStatus",
                    "CREATE_IN_PROGRESS"))
    report, journeys = run(fake)
    assert journeys == []
    assert [r.step for r in report.rows if r.result == FAIL] == [
        f"stack {STACK} (package, deploy through S3)", "interrupted"]
    calls = normal(fake.aws_calls(), tmp_path)
    assert calls[len(DEPLOY) - 1:] == [
        TEARDOWN[0], *TEARDOWN[1:3],
        *delete(STACK, [f"cloudformation wait stack-create-complete --stack-name {STACK}"]),
        *TEARDOWN[3 + 3:]]


def test_a_stack_cut_short_before_its_change_set_ran_is_deleted_at_once(run, tmp_path):
    fake = FakeAws(("cloudformation deploy && packaged.yaml", KeyboardInterrupt),
                   (f"--stack-name {STACK} --query Stacks[0].StackStatus",
                    "REVIEW_IN_PROGRESS"))
    run(fake)
    calls = normal(fake.aws_calls(), tmp_path)
    assert calls[len(DEPLOY) - 1:] == TEARDOWN  # no waiter: it would wait for an hour
    assert not any(" wait stack-create-complete" in " ".join(c) for c in fake.calls)


def test_ctrl_c_in_the_journey_tears_down_the_same(run, tmp_path):
    def journey(found):
        raise KeyboardInterrupt
    fake = FakeAws()
    report, _ = run(fake, journey=journey)
    assert normal(fake.aws_calls(), tmp_path) == DEPLOY + TEARDOWN
    steps = [r.step for r in report.rows]
    after = steps[steps.index("interrupted") + 1:]
    assert len(after) == 7 and all(step.startswith("teardown: ") for step in after)


def test_a_failing_teardown_step_leaves_the_others_running(run, tmp_path):
    fake = FakeAws(
        (f"stack-delete-complete --stack-name {STACK} ", Fail(
            "Waiter StackDeleteComplete failed: Waiter encountered a terminal failure state")),
        (f"describe-stack-events --stack-name {STACK}", {"StackEvents": [
            {"LogicalResourceId": "MessagesTable", "ResourceStatus": "DELETE_FAILED",
             "ResourceStatusReason": "Table is being updated"}]}))
    report, _ = run(fake)
    calls = normal(fake.aws_calls(), tmp_path)
    after = calls[calls.index(f"cloudformation describe-stack-events --stack-name {STACK}")
                  + 1:]
    assert after == TEARDOWN[TEARDOWN.index(delete(RECEIVER)[0]):]
    row = next(r for r in report.rows if r.step == f"teardown: stack {STACK}")
    assert row.result == FAIL and "MessagesTable: Table is being updated" in row.detail
    assert [r.result for r in report.rows if r.step.startswith("teardown: stack ")] == \
        [FAIL, PASS]


def test_keep_leaves_the_stage_up_and_says_how_to_tear_it_down_later(run, tmp_path):
    fake = FakeAws()
    report, _ = run(fake, keep=True)
    assert normal(fake.aws_calls(), tmp_path) == DEPLOY
    assert report.rows[-1].result == KEPT
    assert f"deploy/rehearse --teardown {STAGE} --region eu-west-1" in report.rows[-1].detail


def test_delete_retained_deletes_the_stages_tables_and_no_other(run, tmp_path):
    fake = FakeAws()
    report, _ = run(fake, delete_retained=True)
    calls = fake.aws_calls()
    assert calls[calls.index("dynamodb list-tables"):] == [
        "dynamodb list-tables",
        f"dynamodb delete-table --table-name {STACK}-accounts",
        f"dynamodb delete-table --table-name {STACK}-messages",
        f"dynamodb wait table-not-exists --table-name {STACK}-accounts",
        f"dynamodb wait table-not-exists --table-name {STACK}-messages"]
    assert report.rows[-1].result == PASS and report.rows[-1].detail == "2 deleted"


def test_an_owners_bucket_gets_only_the_prefix_removed(run, tmp_path):
    fake = FakeAws()
    run(fake, bucket="acme-code")
    calls = fake.aws_calls()
    assert not any(c.startswith("s3 mb") or c.startswith("s3 rb") for c in calls)
    assert f"s3 rm s3://acme-code/{STACK} --recursive" in calls
    assert all("acme-code" in c for c in calls if "--s3-bucket" in c)


def test_a_teardown_of_what_never_was_made_passes(tmp_path):
    fake = FakeAws(("describe-stacks", Fail(
        f"An error occurred (ValidationError) when calling the DescribeStacks operation: Stack "
        f"with id {STACK} does not exist")),
        ("ssm delete-parameter", Fail("An error occurred (ParameterNotFound) when calling the "
                                      "DeleteParameter operation: ")),
        ("s3 rb", Fail("remove_bucket failed: An error occurred (NoSuchBucket)")),
        ("sqs list-queues", ""), ("logs describe-log-groups", []),
        ("dynamodb list-tables", {"TableNames": []}))
    report = Report(out=io.StringIO())
    stack.teardown(stack.Plan(STAGE, "eu-west-1", account="123456789012"), fake, report)
    assert [(r.result, r.detail) for r in report.rows] == [
        (PASS, "0 deleted"), (PASS, "none"), (PASS, "none"), (PASS, "none"), (PASS, "none"),
        (PASS, "0 deleted"), (PASS, "0 deleted")]
    assert not any("delete-stack" in c for c in fake.aws_calls())


def test_only_a_rehearsals_stage_can_be_named():
    for name in ("prod", "dev", "rh0a1b2", "rh0a1b2cd", "RH0A1B2C"):
        with pytest.raises(ValueError, match="'rh' and six hex digits"):
            stack.Plan(name, "eu-west-1")
    done = subprocess.run([str(ROOT / "deploy" / "rehearse"), "--teardown", "prod",
                           "--region", "eu-west-1", "--dry-run"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "rh1a2b3c" in done.stderr


def test_the_throwaway_stage_copies_the_settings_of_prod_under_its_own_names():
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    made = stack.stage_config(config["stages"]["prod"], "prod", STAGE)
    assert made["environment_variables"]["SMSGW_STAGE"] == STAGE
    assert made["environment_variables"]["SMSGW_OTP_SECRET_PARAM"] == \
        f"/smsgw/{STAGE}/otp-secret"
    assert {name: function["iam_policy_file"]
            for name, function in made["lambda_functions"].items()} == {
        name: f"policy-{STAGE}-{name}.json" for name in config["stages"]["prod"][
            "lambda_functions"]}
    assert "prod" not in json.dumps(made)
    assert {k: v for k, v in made["environment_variables"].items() if k not in (
        "SMSGW_STAGE", "SMSGW_OTP_SECRET_PARAM")} == {
        k: v for k, v in config["stages"]["prod"]["environment_variables"].items()
        if k not in ("SMSGW_STAGE", "SMSGW_OTP_SECRET_PARAM")}


# every command, checked against the AWS CLI's own models
GLOBAL = {"region", "output", "query"}
CUSTOM = {  # the CLI's own commands (not API operations) and their options, from its docs
    ("cloudformation", "deploy"): {"template-file", "stack-name", "s3-bucket", "s3-prefix",
                                   "capabilities", "parameter-overrides"},
    ("cloudformation", "package"): {"template-file", "s3-bucket", "s3-prefix",
                                    "output-template-file"},
    ("s3", "mb"): set(), ("s3", "rb"): {"force"}, ("s3", "rm"): {"recursive"}}


SESSION = botocore.session.get_session()


def check_command(argv, session=SESSION):
    assert argv[0] == "aws", argv
    service, command, rest = argv[1], argv[2], argv[3:]
    options = {a[2:] for a in rest if a.startswith("--")}
    if (service, command) in CUSTOM:
        assert options - GLOBAL <= CUSTOM[service, command], argv
        return
    model = session.get_service_model(service)
    if command == "wait":
        waiters = session.get_waiter_model(service)
        names = {xform_name(w, "-"): w for w in waiters.waiter_names}
        assert rest[0] in names, argv
        operation = waiters.get_waiter(names[rest[0]]).operation
    else:
        names = {xform_name(o, "-"): o for o in model.operation_names}
        assert command in names, argv
        operation = names[command]
    shape = model.operation_model(operation).input_shape
    members = {xform_name(m, "-") for m in (shape.members if shape else {})}
    assert options - GLOBAL <= members, (argv, options - GLOBAL - members)


def test_every_command_is_one_the_aws_cli_knows(run):
    fake = FakeAws()
    run(fake, delete_retained=True)
    also = FakeAws(("Stacks[0].StackStatus", "UPDATE_IN_PROGRESS"),
                   ("cloudformation deploy && packaged.yaml", Fail("failed")))
    run(also, bucket="acme-code", params=["ApiReservedConcurrency=5"])
    commands = [argv for argv in fake.calls + also.calls if argv[0] == "aws"]
    assert len(commands) > 40
    for argv in commands + [["aws", "sts", "get-caller-identity"]]:
        check_command(argv)
    assert any("stack-update-complete" in argv for argv in also.calls)
    assert any("--parameter-overrides" in argv for argv in also.calls)


# the webhook receiver (deploy/receiver_lambda.py in its own stack; rehearse_receiver.py reads)
def _signed(event: dict, secret: str) -> tuple[str, dict]:
    sys.path.insert(0, str(ROOT / "clients"))
    import smsgw_webhook
    body, stamp = json.dumps(event), str(int(time.time()))
    return body, {"x-smsgw-signature": smsgw_webhook.sign(secret, stamp, body.encode()),
                  "x-smsgw-timestamp": stamp}


def test_the_receiver_queues_each_request_and_only_a_signed_event_counts(monkeypatch):
    import base64

    import boto3
    import moto
    import receiver_lambda
    import rehearse_receiver
    event = {"id": "evt_1", "type": "sms.delivered", "data": {"message_id": 42}}
    with moto.mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        url = sqs.create_queue(QueueName="received")["QueueUrl"]
        receiver = rehearse_receiver.QueueReceiver("https://r.example", url, sqs)
        body, forged = _signed(event, "not-the-secret")
        answer = receiver_lambda.handler({"headers": forged, "body": body}, None, sqs=sqs,
                                         queue_url=url)
        assert answer["statusCode"] == 200
        with pytest.raises(ValueError, match=r"1 requests received, 1 without a valid sig"):
            receiver.wait("s3cret", "sms.delivered", 42, timeout=1)
        # as on Lambda: the queue from the environment, a base64 body (function URL, binary)
        monkeypatch.setenv("QUEUE_URL", url)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        body, good = _signed(event, "s3cret")
        receiver_lambda.handler({"headers": good, "isBase64Encoded": True,
                                 "body": base64.b64encode(body.encode()).decode()}, None)
        assert receiver.wait("s3cret", "sms.delivered", 42, timeout=5)["id"] == "evt_1"
        with pytest.raises(ValueError, match="no signed sms.delivered for message 43"):
            receiver.wait("s3cret", "sms.delivered", 43, timeout=1)


def test_the_receiver_stack_is_inline_and_lints_clean(tmp_path):
    import rehearse_receiver
    template = rehearse_receiver.template(f"{STACK}-receiver")
    code = template["Resources"]["Receiver"]["Properties"]["Code"]["ZipFile"]
    assert code == (ROOT / "deploy" / "receiver_lambda.py").read_text()
    assert len(code.encode()) <= 4096  # CloudFormation's limit for inline code
    path = tmp_path / "receiver.json"
    path.write_text(json.dumps(template))
    done = subprocess.run([str(Path(sys.executable).parent / "cfn-lint"), "--", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_without_the_aws_cli_the_row_says_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    report = Report(out=io.StringIO())
    with report.step("AWS account"):
        stack.Aws("eu-west-1", out=io.StringIO())("sts", "get-caller-identity", query=True)
    assert report.rows[0].result == FAIL
    assert report.rows[0].detail == ("aws sts get-caller-identity: aws: not found: install the "
                                     "AWS CLI v2 (docs/deploy.md, Prerequisites)")
