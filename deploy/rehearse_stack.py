"""Deploy and tear down a rehearsal's throwaway stage (deploy/rehearse), with the documented
commands: `deploy/package.sh`, `aws cloudformation package` and `aws cloudformation deploy`
through an S3 bucket (docs/deploy.md), run by the AWS CLI as the owner would run them.

Every name derives from the stage (`rh` and six hex digits; nothing else is accepted), so a
teardown needs nothing but the stage: it is the same sequence after a success, a failure, a
Ctrl-C, or later by hand (`deploy/rehearse --teardown rh1a2b3c`), and each of its steps is
idempotent and runs even when an earlier one failed. `Aws` prints each command as it runs it
(the OTP secret masked); with `dry_run` it only prints, and queries answer placeholders."""
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rehearse_report import KEPT, Report, StepFailed

ROOT = Path(__file__).resolve().parent.parent
STAGE = re.compile(r"^rh[0-9a-f]{6}$")
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
# not copied into the packaging copy of the project (the wheel cache is linked, not copied)
# what a printed command shows instead of the OTP secret: the shell makes one as the run did
MASK = "\"$(python3 -c 'import secrets; print(secrets.token_hex(32))')\""
SKIP = {".git", ".venv", "build", "local-data", "__pycache__", ".pytest_cache", ".ruff_cache",
        ".hypothesis", "node_modules", ".venv-schemathesis", ".schemathesis", "deployments"}


def new_stage() -> str:
    return "rh" + secrets.token_hex(3)


@dataclass
class Plan:
    stage: str
    region: str
    like: str = "prod"  # the stage whose settings the throwaway copies
    bucket: str | None = None  # the owner's; None: one made for the run and removed after
    account: str = "<account-id>"
    params: list = field(default_factory=list)  # KEY=VALUE stack parameter overrides
    delete_retained: bool = False
    receiver: bool = True  # deploy the throwaway webhook receiver stack
    workdir: Path = field(default_factory=lambda: Path("/tmp"))

    def __post_init__(self):
        if not STAGE.match(self.stage):
            raise ValueError(f"stage {self.stage!r}: a rehearsal's stage is 'rh' and six hex "
                             "digits (so a teardown cannot touch another stage)")

    @property
    def stack(self) -> str:
        return f"smsgw-{self.stage}"

    @property
    def receiver_stack(self) -> str:
        return f"smsgw-{self.stage}-receiver"

    @property
    def own_bucket(self) -> bool:
        return self.bucket is None

    @property
    def code_bucket(self) -> str:
        return self.bucket or f"smsgw-{self.stage}-{self.account}-{self.region}"

    @property
    def secret_name(self) -> str:
        return f"/smsgw/{self.stage}/otp-secret"


class CommandFailed(StepFailed):
    def __init__(self, argv, text):
        last = text.strip().splitlines()[-1] if text.strip() else "failed"
        super().__init__(f"{' '.join(argv[:3])}: {last}")
        self.argv, self.text = argv, text


class Aws:
    """Runs commands (the AWS CLI, and the packaging scripts), each printed first."""

    def __init__(self, region: str, dry_run: bool = False, out=None):
        self.region, self.dry_run = region, dry_run
        self.out = out or sys.stdout
        self.env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}

    def _show(self, argv, masked=None) -> None:
        text = shlex.join(argv)
        if masked:
            text = text.replace(masked, MASK)
        print(("" if self.dry_run else "  $ ") + text, file=self.out, flush=True)

    def comment(self, text: str) -> None:
        print(("# " if self.dry_run else "  # ") + text, file=self.out, flush=True)

    def execute(self, argv: list, cwd=None, env=None, masked=None) -> str:
        self._show(argv, masked)
        if self.dry_run:
            return ""
        try:
            done = subprocess.run(argv, cwd=cwd, env={**self.env, **(env or {})}, text=True,
                                  capture_output=True, start_new_session=True)  # Ctrl-C: ours
        except FileNotFoundError:
            raise CommandFailed(argv, f"{argv[0]}: not found" + (
                ": install the AWS CLI v2 (docs/deploy.md, Prerequisites)"
                if argv[0] == "aws" else ""))
        if done.returncode:
            raise CommandFailed(argv, done.stderr or done.stdout)
        return done.stdout

    def __call__(self, *args, query=False, placeholder=None, masked=None):
        """`aws ARGS --region R` ; with query, its JSON answer (dry run: `placeholder`)."""
        argv = ["aws", *args, "--region", self.region] + (["--output", "json"] if query else [])
        out = self.execute(argv, masked=masked)
        if self.dry_run:
            return placeholder
        return json.loads(out) if query and out.strip() else out


def outputs(aws: Aws, stack: str, names: tuple) -> dict:
    found = aws("cloudformation", "describe-stacks", "--stack-name", stack, "--query",
                "Stacks[0].Outputs", query=True,
                placeholder=[{"OutputKey": n, "OutputValue": f"<{n}>"} for n in names])
    return {o["OutputKey"]: o["OutputValue"] for o in found or []}


def failure_reasons(aws: Aws, stack: str) -> str:
    """The first resources that failed, from the stack's events (oldest first)."""
    try:
        events = aws("cloudformation", "describe-stack-events", "--stack-name", stack,
                     query=True, placeholder={"StackEvents": []})["StackEvents"]
    except CommandFailed as error:
        return str(error)
    failed = [e for e in reversed(events) if e.get("ResourceStatus", "").endswith("FAILED")
              and "cancelled" not in e.get("ResourceStatusReason", "")]
    return "; ".join(f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')[:200]}"
                     for e in failed[:3])


# deploy
def copy_project(plan: Plan, project: Path) -> None:
    """The project as it is on disk (uncommitted changes too), with the throwaway stage added
    to .chalice/config.json; chalice's wheel cache is linked, not copied."""
    shutil.copytree(ROOT, project, ignore=lambda d, names: [n for n in names if n in SKIP])
    cache = ROOT / ".chalice" / "deployments"
    cache.mkdir(exist_ok=True)
    (project / ".chalice" / "deployments").symlink_to(cache)
    config_path = project / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    config["stages"][plan.stage] = stage_config(config["stages"][plan.like], plan.like,
                                                plan.stage)
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def package(plan: Plan, aws: Aws) -> Path:
    """The throwaway stage (settings of `plan.like`) packaged by the copy's own
    deploy/package.sh: build/sam.json + deployment.zip."""
    project, build = plan.workdir / "project", plan.workdir / "build"
    aws.comment(f"a copy of the project with stage {plan.stage} (as {plan.like}) in {project}")
    if not aws.dry_run:
        copy_project(plan, project)
    venv = {"VENV": str(ROOT / ".venv")}
    aws.execute([sys.executable, "deploy/make_template.py", plan.stage, "--policy"],
                cwd=project, env=venv)
    aws.execute(["bash", "deploy/package.sh", plan.stage, str(build)], cwd=project, env=venv)
    return build


def stage_config(base: dict, like: str, stage: str) -> dict:
    """`like`'s stage settings with its name replaced by `stage` wherever it is a name."""
    def swap(value):
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if value == like:
            return stage
        if isinstance(value, str):
            return (value.replace(f"/{like}/", f"/{stage}/").replace(f"-{like}.", f"-{stage}.")
                    .replace(f"policy-{like}-", f"policy-{stage}-"))
        return value
    return swap(json.loads(json.dumps(base)))


def deploy(plan: Plan, aws: Aws, report: Report) -> dict | None:
    """The stage, up to its outputs (FunctionUrl, ...) or None if a step failed."""
    with report.step(f"package stage {plan.stage} (as {plan.like})") as note:
        build = package(plan, aws)
        if not aws.dry_run:
            text = (build / "sam.json").read_text()
            note.detail = (f"sam.json: {len(json.loads(text)['Resources'])} resources, "
                           f"{len(text.encode()):,} bytes")
    if note.failed:
        return None
    with report.step("code bucket") as note:
        if plan.own_bucket:
            aws("s3", "mb", f"s3://{plan.code_bucket}")
            note.detail = f"made s3://{plan.code_bucket}"
        else:
            note.detail = f"yours: s3://{plan.code_bucket}/{plan.stack}/"
    if note.failed:
        return None
    with report.step("OTP secret (SSM SecureString)") as note:
        value = secrets.token_hex(32)
        aws("ssm", "put-parameter", "--name", plan.secret_name, "--type", "SecureString",
            "--value", value, masked=value)
        note.detail = plan.secret_name
    if note.failed:
        return None
    found = {}
    if plan.receiver:
        with report.step("webhook receiver stack") as note:
            import rehearse_receiver
            template = plan.workdir / "receiver.json"
            if not aws.dry_run:
                template.write_text(json.dumps(rehearse_receiver.template(
                    f"smsgw-{plan.stage}-receiver"), indent=1))
            try:
                aws("cloudformation", "deploy", "--template-file", str(template),
                    "--stack-name", plan.receiver_stack, "--capabilities", "CAPABILITY_IAM")
            except CommandFailed as error:
                raise StepFailed(f"{error}; {failure_reasons(aws, plan.receiver_stack)}")
            found.update(outputs(aws, plan.receiver_stack, ("ReceiverUrl", "QueueUrl")))
            note.detail = found.get("ReceiverUrl", "")
        if note.failed:
            return None
    with report.step(f"stack {plan.stack} (package, deploy through S3)") as note:
        packaged = build / "packaged.yaml"
        aws("cloudformation", "package", "--template-file", str(build / "sam.json"),
            "--s3-bucket", plan.code_bucket, "--s3-prefix", plan.stack,
            "--output-template-file", str(packaged))
        aws.comment("CloudFormation creates the stack: several minutes")
        try:
            aws("cloudformation", "deploy", "--template-file", str(packaged), "--stack-name",
                plan.stack, "--s3-bucket", plan.code_bucket, "--s3-prefix", plan.stack,
                "--capabilities", *CAPABILITIES,
                *(["--parameter-overrides", *plan.params] if plan.params else []))
        except CommandFailed as error:
            raise StepFailed(f"{error}; {failure_reasons(aws, plan.stack)}")
        found.update(outputs(aws, plan.stack, ("FunctionUrl", "HttpApiUrl", "EndpointURL")))
        if "FunctionUrl" not in found:
            raise StepFailed(f"no FunctionUrl output: {sorted(found)}")
        note.detail = found["FunctionUrl"]
    return None if note.failed else found


# teardown
def _absent(error: CommandFailed, *codes) -> bool:
    return any(code in error.text for code in codes)


def delete_stack(aws: Aws, stack: str) -> str:
    try:
        status = aws("cloudformation", "describe-stacks", "--stack-name", stack, "--query",
                     "Stacks[0].StackStatus", query=True, placeholder="CREATE_COMPLETE")
    except CommandFailed as error:
        if _absent(error, "does not exist"):
            return "none"
        raise
    if status.endswith("_IN_PROGRESS") and not status.startswith(("DELETE", "REVIEW")):
        # a deploy cut short (Ctrl-C) goes on in CloudFormation: let it end, then delete (a
        # stack cut short before its change set ran is in REVIEW_IN_PROGRESS: deleted at once)
        waiter = "stack-update-complete" if status.startswith("UPDATE") else \
            "stack-create-complete"
        try:
            aws("cloudformation", "wait", waiter, "--stack-name", stack)
        except CommandFailed:
            pass  # it ended failed or rolled back: deletable all the same
    aws("cloudformation", "delete-stack", "--stack-name", stack)
    try:
        aws("cloudformation", "wait", "stack-delete-complete", "--stack-name", stack)
    except CommandFailed as error:
        raise StepFailed(f"{error}; {failure_reasons(aws, stack)}")
    return f"deleted ({status} before)"


def _delete(aws: Aws, command: list[str], *, absent: str) -> str:
    """Run a delete command: "deleted", or "none" if AWS says `absent` (nothing was there)."""
    try:
        aws(*command)
    except CommandFailed as error:
        if not _absent(error, absent):
            raise
        return "none"
    return "deleted"


def teardown(plan: Plan, aws: Aws, report: Report) -> None:
    """Everything the stage may have left, each step on its own."""
    with report.step("teardown: device queues") as note:
        urls = aws("sqs", "list-queues", "--queue-name-prefix", f"{plan.stack}-device-",
                   query=True, placeholder={"QueueUrls": ["<each queue url>"]}) or {}
        for url in urls.get("QueueUrls", []):
            aws("sqs", "delete-queue", "--queue-url", url)
        note.detail = f"{len(urls.get('QueueUrls', []))} deleted"
    with report.step(f"teardown: stack {plan.stack}") as note:
        note.detail = delete_stack(aws, plan.stack)
    with report.step(f"teardown: stack {plan.receiver_stack}") as note:
        note.detail = delete_stack(aws, plan.receiver_stack)
    with report.step("teardown: OTP secret") as note:
        note.detail = _delete(aws, ["ssm", "delete-parameter", "--name", plan.secret_name],
                              absent="ParameterNotFound")
    with report.step("teardown: code in S3") as note:
        code = (["s3", "rb", f"s3://{plan.code_bucket}", "--force"] if plan.own_bucket else
                ["s3", "rm", f"s3://{plan.code_bucket}/{plan.stack}", "--recursive"])
        note.detail = _delete(aws, code, absent="NoSuchBucket")
    with report.step("teardown: log groups left") as note:
        groups = aws("logs", "describe-log-groups", "--log-group-name-prefix",
                     f"/aws/lambda/{plan.stack}", "--query", "logGroups[].logGroupName",
                     query=True, placeholder=["<each log group>"]) or []
        for group in groups:
            aws("logs", "delete-log-group", "--log-group-name", group)
        note.detail = f"{len(groups)} deleted"
    with report.step("teardown: retained tables") as note:
        listed = aws("dynamodb", "list-tables", query=True,
                     placeholder={"TableNames": [f"{plan.stack}-<each table>"]}) or {}
        tables = [t for t in listed.get("TableNames", []) if t.startswith(f"{plan.stack}-")]
        if tables and not plan.delete_retained:
            note.result = KEPT
            note.detail = (f"{len(tables)} kept (DeletionPolicy Retain): deploy/rehearse "
                           f"--teardown {plan.stage} --delete-retained deletes them")
        else:
            for table in tables:
                aws("dynamodb", "delete-table", "--table-name", table)
            for table in tables:
                aws("dynamodb", "wait", "table-not-exists", "--table-name", table)
            note.detail = f"{len(tables)} deleted"


def teardown_command(plan: Plan) -> str:
    return shlex.join(["deploy/rehearse", "--teardown", plan.stage, "--region", plan.region]
                      + (["--bucket", plan.bucket] if plan.bucket else [])
                      + (["--delete-retained"] if plan.delete_retained else []))

