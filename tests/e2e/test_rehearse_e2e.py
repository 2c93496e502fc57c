"""deploy/rehearse as the owner runs it, as far as this machine allows (no AWS account here):

- the smoke journey, every step, against a local gateway (`deploy/rehearse --local`: the same
  code, over HTTP, moto's server as AWS, the sweeps on timers, phones as agent subprocesses in
  direct mode, the webhook receiver's Lambda handler on 127.0.0.1 writing to an SQS queue);
  then again, with a Ctrl-C once its phones are up: they are stopped and removed;
- the whole command on "AWS" with a recording `aws` on PATH: the throwaway stage really packaged
  (a copy of the project, deploy/package.sh), then a real Ctrl-C (SIGINT to the process) while
  the receiver stack deploys, and the teardown that follows;
- `--dry-run`: the exact commands, none run, each one the AWS CLI knows.
tests/unit/test_rehearse.py has the sequencing in detail."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.localgw_helpers import GatewayProcess, wait_for
from tests.unit.test_rehearse import check_command

ROOT = Path(__file__).resolve().parents[2]
REHEARSE = str(ROOT / "deploy" / "rehearse")
STEPS = ["account, API key and webhook endpoint (admin CLI)",
         "two phones polling their own queues (direct mode)", "send_sms -> delivered",
         "OTP verified once", "OTP verified twice: refused",
         "webhook sms.delivered received, signature valid",
         "phone killed: the sweep moves its message to the other"]
# the local gateway sweeps every second and moves a message 2 s after its phone did not take
# it (60 s and every minute on AWS)
STAGE = "rh5161e7"
QUICK = {"SMSGW_POOL_GRACE_SECONDS": "2", "SMSGW_FIRST_LOOK_SECONDS": "2",
         "SMSGW_LOCAL_SCHEDULE_CAP_SECONDS": "1"}


def user_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMSGW_"))}
    env.update(extra)
    return env


def table(out: str) -> dict:
    """The final table's rows: step -> (result, detail)."""
    rows, started = {}, False
    for line in out.splitlines():
        if line.startswith("step "):
            started = True
            continue
        found = re.match(r"^(.+?)\s{2,}(pass|FAIL|skipped|kept)\s+([\d.]+)\s\s(.*)$", line)
        if started and found:
            rows[found.group(1)] = (found.group(2), found.group(4))
    return rows


def test_the_smoke_journey_passes_every_step_against_a_local_gateway(tmp_path):
    gateway = GatewayProcess("--no-agent", "--quiet", data=tmp_path / "data",
                             log=tmp_path / "gateway.log", env=QUICK)
    try:
        started = time.monotonic()
        done = subprocess.run([REHEARSE, "--local"], cwd=ROOT, capture_output=True, text=True,
                              env=user_env(SMSGW_DATA=str(tmp_path / "data")), timeout=600)
        print(f"\n$ deploy/rehearse --local   ({time.monotonic() - started:.0f} s)\n"
              + done.stdout[done.stdout.index("step "):])
        rows = table(done.stdout)
        assert list(rows) == STEPS, done.stdout + done.stderr
        assert {result for result, _ in rows.values()} == {"pass"}, done.stdout
        assert done.returncode == 0
        assert rows["phone killed: the sweep moves its message to the other"][1].endswith(
            "moved from phone-a to phone-b")
        assert "webhook to http://127.0.0.1:" in rows[STEPS[0]][1]
        # its phones and webhook endpoint are removed at the end
        account = re.search(r"account (acc_\w+)", rows[STEPS[0]][1]).group(1)
        env = user_env(SMSGW_DATA=str(tmp_path / "data"))
        left = subprocess.run([sys.executable, "cli.py", "device", "list", account, "--json"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert json.loads(left.stdout) == []
        interrupted_once_the_phones_are_up(tmp_path)
    finally:
        gateway.stop()


def command_lines() -> list[bytes]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError:  # it ended meanwhile
            pass
    return found


def interrupted_once_the_phones_are_up(tmp_path):
    """Ctrl-C (SIGINT to the process) mid-journey: a FAIL row, the phones stopped, the
    account's phones removed."""
    import threading
    env = user_env(SMSGW_DATA=str(tmp_path / "data"))
    proc = subprocess.Popen([REHEARSE, "--local"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("pass    two phones" in line for line in lines), 300,
                 "the phones to be up")
        proc.send_signal(signal.SIGINT)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(10)
    out = "".join(lines)
    assert proc.returncode == 1, out
    rows = table(out)
    assert rows["interrupted"] == ("FAIL", "Ctrl-C"), out
    assert ("FAIL", "interrupted (Ctrl-C)") in rows.values(), out
    kept = Path(re.search(r"logs and ledgers are kept in (\S+)", out).group(1))
    journals = [str(p) for p in kept.glob("*-journal.sqlite3*")]
    assert journals
    assert not [c for c in command_lines() if str(kept).encode() in c]  # no phone running
    shutil.rmtree(kept)
    account = re.search(r"account (acc_\w+)", rows[STEPS[0]][1]).group(1)
    left = subprocess.run([sys.executable, "cli.py", "device", "list", account, "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert json.loads(left.stdout) == []


FAKE_AWS = r'''#!{python}
"""A recording stand-in for the AWS CLI: logs argv, answers as the CLI does."""
import json, os, shutil, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_AWS_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
line = " ".join(args)
if line.startswith("sts get-caller-identity"):
    print(json.dumps({{"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/o"}}))
elif line.startswith("cloudformation deploy") and "receiver.json" in line:
    template = args[args.index("--template-file") + 1]
    build = os.path.join(os.path.dirname(template), "build")
    shutil.copy(os.path.join(build, "sam.json"), os.environ["FAKE_AWS_KEEP"])
    shutil.copy(template, os.environ["FAKE_AWS_KEEP"] + ".receiver")
    time.sleep(300)  # CloudFormation at work: the test presses Ctrl-C now
elif "Stacks[0].StackStatus" in line:
    if "receiver" in line:
        print('"CREATE_IN_PROGRESS"')
    else:
        sys.stderr.write("An error occurred (ValidationError) when calling the DescribeStacks "
                         "operation: Stack with id x does not exist\n")
        sys.exit(254)
elif line.startswith("logs describe-log-groups"):
    print("[]")
elif line.startswith("dynamodb list-tables"):
    print('{{"TableNames": []}}')
'''


def test_ctrl_c_while_deploying_tears_down_what_was_made(tmp_path):
    """The real command, packaging for real, a recording `aws`; SIGINT mid-deploy."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "aws"
    fake.write_text(FAKE_AWS.format(python=sys.executable))
    fake.chmod(0o755)
    log, kept = tmp_path / "aws.jsonl", tmp_path / "sam.json"
    env = user_env(PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_AWS_LOG=str(log),
                   FAKE_AWS_KEEP=str(kept))
    proc = subprocess.Popen([REHEARSE, "--region", "eu-west-1", "--stage", STAGE],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for(lambda: kept.exists() and Path(str(kept) + ".receiver").exists(), 400,
                 "packaging, then the receiver stack's deploy")
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, out + err
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    for argv in calls:
        check_command(["aws", *argv])
    words = [" ".join(a[:a.index("--region")]) for a in calls]
    stack, receiver = f"smsgw-{STAGE}", f"smsgw-{STAGE}-receiver"
    deploy = words.index(f"cloudformation deploy --template-file "
                         f"{calls[3][calls[3].index('--template-file') + 1]} --stack-name "
                         f"{receiver} --capabilities CAPABILITY_IAM")
    assert words[:deploy] == [
        "sts get-caller-identity", f"s3 mb s3://smsgw-{STAGE}-123456789012-eu-west-1",
        words[2]]
    assert words[2].startswith(f"ssm put-parameter --name /smsgw/{STAGE}/otp-secret")
    assert words[deploy + 1:] == [
        f"sqs list-queues --queue-name-prefix {stack}-device-",
        f"cloudformation describe-stacks --stack-name {stack} --query Stacks[0].StackStatus",
        f"cloudformation describe-stacks --stack-name {receiver} --query "
        "Stacks[0].StackStatus",
        f"cloudformation wait stack-create-complete --stack-name {receiver}",
        f"cloudformation delete-stack --stack-name {receiver}",
        f"cloudformation wait stack-delete-complete --stack-name {receiver}",
        f"ssm delete-parameter --name /smsgw/{STAGE}/otp-secret",
        f"s3 rb s3://smsgw-{STAGE}-123456789012-eu-west-1 --force",
        f"logs describe-log-groups --log-group-name-prefix /aws/lambda/{stack} --query "
        "logGroups[].logGroupName",
        "dynamodb list-tables"]
    rows = table(out)
    assert rows["webhook receiver stack"][0] == "FAIL"
    assert rows["interrupted"] == ("FAIL", "Ctrl-C: tearing down what was made")
    assert all(result == "pass" for step, (result, _) in rows.items()
               if step.startswith("teardown"))
    # the stage it packaged is the throwaway one, with prod's settings, under its own names
    template = json.loads(kept.read_text())
    resources = template["Resources"]
    names = [r["Properties"]["TableName"] for r in resources.values()
             if r["Type"] == "AWS::DynamoDB::Table"]
    assert len(names) >= 18 and all(n.startswith(f"smsgw-{STAGE}-") for n in names)
    variables = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert variables["SMSGW_STAGE"] == STAGE
    assert variables["SMSGW_OTP_SECRET_PARAM"] == f"/smsgw/{STAGE}/otp-secret"
    assert variables["SMSGW_RETENTION_DAYS"] == "90"  # prod's
    assert "smsgw-prod" not in kept.read_text() and "smsgw-dev" not in kept.read_text()
    # its workdir is gone, and the project is untouched
    assert not list(Path(tempfile.gettempdir()).glob(f"smsgw-rehearse-{STAGE}-*"))
    assert not (ROOT / ".chalice" / f"policy-{STAGE}.json").exists()


def test_dry_run_prints_the_exact_commands_and_runs_none(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text("#!/bin/sh\ntouch \"$0.ran\"\nexit 1\n")
    (bin_dir / "aws").chmod(0o755)
    done = subprocess.run([REHEARSE, "--dry-run", "--region", "eu-west-1", "--stage",
                           "rh0a1b2c", "--bucket", "acme-code", "--param",
                           "ApiReservedConcurrency=5", "--delete-retained"], cwd=ROOT,
                          env=user_env(PATH=f"{bin_dir}:{os.environ['PATH']}"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (bin_dir / "aws.ran").exists()
    lines = done.stdout.splitlines()
    commands = [line for line in lines if line.startswith("aws ")]
    for line in commands:
        check_command(shlex.split(line))
    assert any(line.startswith("aws cloudformation deploy --template-file ")
               and "/build/packaged.yaml --stack-name smsgw-rh0a1b2c --s3-bucket acme-code "
                   "--s3-prefix smsgw-rh0a1b2c " in line
               and "--parameter-overrides ApiReservedConcurrency=5" in line for line in lines)
    assert "aws s3 rm s3://acme-code/smsgw-rh0a1b2c --recursive --region eu-west-1" in lines
    assert "aws dynamodb delete-table --table-name 'smsgw-rh0a1b2c-<each table>' " \
           "--region eu-west-1" in lines
    assert [line for line in lines if line.startswith("bash deploy/package.sh rh0a1b2c ")]
