"""deploy/rehearse: the owner's first command on a real AWS account. It deploys a throwaway
stage (deploy/rehearse_stack.py), runs the smoke journey over its URL
(deploy/rehearse_journey.py), prints a pass/fail table with timings, and tears everything down,
also after a failure or Ctrl-C. docs/deploy.md, "Rehearse on a real account", is its manual.

    deploy/rehearse [--region R] [--bucket B] [--like prod|dev] [--param K=V] [--keep]
                    [--delete-retained] [--webhook-url URL | --no-webhook] [--dry-run]
    deploy/rehearse --teardown rh1a2b3c [--region R] [--bucket B] [--delete-retained]
    deploy/rehearse --local          the journey only, against the running ./run-local
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(HERE), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

from rehearse_report import FAIL, KEPT, Report  # noqa: E402
from rehearse_stack import (  # noqa: E402
    STAGE,
    Aws,
    Plan,
    deploy,
    new_stage,
    teardown,
    teardown_command,
)


def _interrupt(*_):
    raise KeyboardInterrupt


def resolve_region(region: str | None) -> str:
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        done = subprocess.run(["aws", "configure", "get", "region"], capture_output=True,
                              text=True)
        region = done.stdout.strip() if done.returncode == 0 else ""
    if not region:
        raise click.UsageError("no AWS region: pass --region (or set AWS_REGION)")
    return region


def receiver_factory(found: dict, region: str, webhook_url, no_webhook, endpoint=None):
    """(cli) -> the journey's webhook receiver, or why there is none."""
    def make(cli):
        import boto3
        import rehearse_receiver
        if no_webhook:
            return "--no-webhook"
        if webhook_url:
            return rehearse_receiver.DeliveryLog(webhook_url, cli)
        if endpoint:  # the local gateway can reach 127.0.0.1
            sqs = boto3.client("sqs", region_name=region, endpoint_url=endpoint,
                               aws_access_key_id="local", aws_secret_access_key="local")
            return rehearse_receiver.LocalReceiver(sqs)
        return rehearse_receiver.QueueReceiver(found["ReceiverUrl"], found["QueueUrl"],
                                               boto3.client("sqs", region_name=region))
    return make


def guarded_teardown(plan: Plan, aws: Aws, report: Report) -> None:
    """The teardown; one Ctrl-C is ignored (it says so), a second abandons it."""
    presses = []

    def on_interrupt(*_):
        presses.append(time.monotonic())
        if len(presses) > 1:
            raise KeyboardInterrupt
        print("  tearing down: Ctrl-C again abandons the teardown", file=sys.stderr,
              flush=True)
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        teardown(plan, aws, report)
    except KeyboardInterrupt:
        report.add("teardown abandoned", FAIL, 0, f"finish it with: {teardown_command(plan)}")
    finally:
        signal.signal(signal.SIGINT, previous)


def rehearse(plan: Plan, aws: Aws, report: Report, journey, keep: bool = False) -> None:
    """Deploy, `journey(found)`, teardown: the teardown runs whatever happened before it."""
    try:
        found = deploy(plan, aws, report)
        if found and aws.dry_run:
            aws.comment("the smoke journey runs here, over <FunctionUrl>: admin CLI with "
                        f"SMSGW_STAGE={plan.stage}, two simulated phones (agent/), send_sms, "
                        "OTP, webhook, a killed phone")
        elif found:
            journey(found)
    except KeyboardInterrupt:
        report.add("interrupted", FAIL, 0, "Ctrl-C: tearing down what was made")
    finally:
        if keep:
            report.add("teardown", KEPT, 0, f"--keep: later, {teardown_command(plan)}")
        else:
            guarded_teardown(plan, aws, report)


def run_local(webhook_url, no_webhook) -> Report:
    from rehearse_journey import Journey, Target

    from localgw.data import data_dir, running_gateway
    state = running_gateway()
    if not state:
        raise click.ClickException(f"no local gateway runs on {data_dir()}: start ./run-local "
                                   "(or set SMSGW_DATA to its --data folder)")
    region = state.get("region", "us-east-1")
    target = Target(state["url"], state.get("stage", "local"), region, state["aws_endpoint"])
    report = Report()
    print(f"rehearsal journey against the local gateway at {target.url}")
    try:
        Journey(target, receiver_factory({}, region, webhook_url, no_webhook,
                                         state["aws_endpoint"])).run(report)
    except KeyboardInterrupt:
        report.add("interrupted", FAIL, 0, "Ctrl-C")
    return report


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--region", help="AWS region  [default: AWS_REGION, or the AWS CLI's]")
@click.option("--bucket", help="An S3 bucket of yours (same region) for the code; only the "
                               "rehearsal's prefix is removed after.  [default: one made for "
                               "the run, removed after]")
@click.option("--like", type=click.Choice(["prod", "dev"]), default="prod", show_default=True,
              help="The stage whose settings the throwaway stage copies.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A stack parameter override (repeatable), e.g. ApiReservedConcurrency=5.")
@click.option("--webhook-url", help="Send the journey's webhook to your own receiver (checked "
                                    "in the delivery log) instead of a throwaway one.")
@click.option("--no-webhook", is_flag=True, help="No webhook step (a 'skipped' row).")
@click.option("--delete-retained", is_flag=True,
              help="Also delete the tables the stack retains (DeletionPolicy Retain).")
@click.option("--keep", is_flag=True, help="Leave the stage up; print its teardown command.")
@click.option("--stage", help="The throwaway stage's name, rh + 6 hex digits  [default: new]")
@click.option("--teardown", "teardown_stage", metavar="STAGE",
              help="Only tear down an earlier rehearsal's stage (after --keep or a lost run).")
@click.option("--dry-run", is_flag=True, help="Print the exact commands; run none.")
@click.option("--local", is_flag=True, help="Only the journey, against the running ./run-local.")
def main(region, bucket, like, params, webhook_url, no_webhook, delete_retained, keep, stage,
         teardown_stage, dry_run, local):
    """Deploy a throwaway stage, run a smoke journey over its URL, tear it all down."""
    signal.signal(signal.SIGTERM, _interrupt)
    if local:
        report = run_local(webhook_url, no_webhook)
        print("\n" + report.table())
        sys.exit(0 if report.passed else 1)
    if os.environ.get("AWS_ENDPOINT_URL"):
        raise click.UsageError("AWS_ENDPOINT_URL is set (the local gateway's shell?): unset it "
                               "to rehearse on AWS, or use --local")
    stage = teardown_stage or stage or new_stage()
    if not STAGE.match(stage):
        raise click.BadParameter("a rehearsal's stage is 'rh' and six hex digits, e.g. rh1a2b3c",
                                 param_hint="--teardown" if teardown_stage else "--stage")
    if webhook_url and no_webhook:
        raise click.UsageError("--webhook-url and --no-webhook exclude each other")
    for param in params:
        if "=" not in param:
            raise click.BadParameter(f"{param!r}: KEY=VALUE", param_hint="--param")
    region = resolve_region(region)
    workdir = Path(tempfile.mkdtemp(prefix=f"smsgw-rehearse-{stage}-"))
    plan = Plan(stage, region, like=like, bucket=bucket, params=list(params),
                delete_retained=delete_retained, receiver=not (webhook_url or no_webhook),
                workdir=workdir)
    aws = Aws(region, dry_run=dry_run)
    report = Report(out=open(os.devnull, "w") if dry_run else None)
    print(f"{'teardown of' if teardown_stage else 'rehearsal'} stage {stage} in {region}"
          + (" (dry run: the commands, in order)" if dry_run else ""))
    try:
        with report.step("AWS account") as note:
            who = aws("sts", "get-caller-identity", query=True,
                      placeholder={"Account": "<account-id>", "Arn": "<you>"})
            plan.account = who["Account"]
            note.detail = f"{who['Account']} as {who['Arn']}"
        if note.failed:
            pass
        elif teardown_stage:
            guarded_teardown(plan, aws, report)
        else:
            from rehearse_journey import Journey, Target

            def journey(found):
                doors = {k: found[k] for k in ("HttpApiUrl", "EndpointURL") if found.get(k)}
                target = Target(found["FunctionUrl"], stage, region, None, doors)
                Journey(target, receiver_factory(found, region, webhook_url,
                                                 no_webhook)).run(report)
            rehearse(plan, aws, report, journey, keep=keep)
    except KeyboardInterrupt:
        report.add("interrupted", FAIL, 0, "Ctrl-C")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if dry_run:
        return
    print("\n" + report.table())
    if any(r.result == FAIL and r.step.startswith("teardown") for r in report.rows):
        print(f"Something may be left: {teardown_command(plan)}")
    sys.exit(0 if report.passed else 1)


if __name__ == "__main__":
    main(prog_name="deploy/rehearse")
