"""Scale on the local stack: N idle phones and a backlog of messages for phones that are offline,
in-process against moto through the real handlers (chalice.test.Client) and the real sweeps.

    python bench/scale.py [--quick] [--json]     (full: 100, 300, 1,000 phones, 10 messages each;
                                                  --quick: 10 and 30 phones, for CI)

For each size it reports:
- idle Lambda concurrency: what the phones' own gateway calls keep busy in the default (direct)
  mode: one credential renewal an hour and one heartbeat per interval each, every call made for
  real once per phone and timed; the average concurrency is the handler seconds they take per
  hour / 3,600. In gateway long-poll mode every idle phone holds one Lambda the whole time: N.
- credential-vending calls per hour (STS AssumeRole behind POST /device/credentials), from the
  agent's own renewal schedule (smsgw_agent.direct.DirectPoller, run on a simulated clock);
- the message sweep with the backlog: run after run until nothing is due, each run's time, AWS
  calls and messages settled; and the same run's time estimated on AWS (its calls × the in-region
  latencies of bench/prices.json), next to the function's 120 s timeout and the sweep's budget;
- the device sweep (stop_silent) when every phone has gone silent: time and AWS calls.
moto is not AWS: local times show how the work grows with N, the AWS estimate whether it fits.
"""
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402

PHONE = "+8801712345678"
MESSAGES_PER_PHONE = 10
FUNCTION_TIMEOUT_SECONDS = 120  # .chalice/config.json lambda_timeout of the scheduled functions


def renewals_per_hour(credentials_seconds: int) -> float:
    """Credential calls one agent makes per hour in direct mode: the real DirectPoller, driven by
    a simulated clock for a day, against a stand-in gateway that counts what it vends."""
    sys.path.insert(0, str(_env.ROOT / "agent"))
    from smsgw_agent.direct import DirectPoller
    now = [0.0]

    class Gateway:
        vended = 0

        def credentials(self):
            Gateway.vended += 1
            return {"expiration": int((now[0] + credentials_seconds) * 1000), "queue_url": "q",
                    "lease_seconds": 60}

    class Sqs:
        def receive_message(self, **params):
            now[0] += params["WaitTimeSeconds"]  # an empty long poll
            return {}

    poller = DirectPoller(Gateway(), clock=lambda: now[0], sqs_factory=lambda c, t: Sqs())
    while now[0] < 24 * 3600:
        poller.jobs(20, 10)
    return Gateway.vended / 24


def _aws_seconds(summary: dict, latency: dict) -> float:
    return sum(n * latency.get(op.split(".")[0], 10) for op, n in summary["by_op"].items()) / 1000


def _timed_calls(client, requests) -> tuple[float, dict]:
    """Make every (path, token, body) request; total handler seconds and the AWS calls."""
    from bench import awsrec
    spent = 0.0
    with awsrec.recording() as calls:
        for path, token, body in requests:
            start = time.perf_counter()
            answer = client.http.post(path, body=json.dumps(body), headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            spent += time.perf_counter() - start
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: HTTP {answer.status_code} {answer.body[:200]}")
    return spent, awsrec.summarize(calls)


def one_size(n: int, backlog: int, deploy: dict, latency: dict) -> dict:
    import boto3
    import moto
    from chalice.test import Client

    from bench import awsrec
    with moto.mock_aws():
        from chalicelib.core import clock, settings
        from chalicelib.domain import accounts, devices, outbox, sweeps
        from chalicelib.storage import aws, tables
        aws.reset()
        devices.forget_cached()
        accounts.forget_cached()
        clock.reset()
        tables.create_all()
        role = boto3.client("iam", region_name=settings.current().region).create_role(
            RoleName="ScaleDeviceRole", Path=settings.current().device_role_path(),
            AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        settings.install(settings.current().replace(device_role_arn=role))
        account = accounts.create_account("Scale")
        start = time.perf_counter()
        phones = [devices.register(account.account_id, f"phone {i}", sim_count=1)
                  for i in range(n)]
        register_s = time.perf_counter() - start
        import app as app_module
        row = {"phones": n, "backlog": backlog, "register_s": register_s}
        with Client(app_module.app) as client:
            # One hour of an idle phone in direct mode, made for real once per phone.
            cred_s, cred_calls = _timed_calls(client, [("/device/credentials", token, {})
                                                       for _, token in phones])
            beat_s, beat_calls = _timed_calls(client, [
                ("/device/heartbeat", token, {"app_state": "running"}) for _, token in phones])
        renewals = renewals_per_hour(deploy["credentials_seconds"])
        beats = 3600 / deploy["heartbeat_seconds"]
        local_busy = renewals * cred_s + beats * beat_s  # handler seconds per hour, all phones
        aws_busy = n * (renewals * (_aws_seconds(cred_calls, latency) / n + 0.005)
                        + beats * (_aws_seconds(beat_calls, latency) / n + 0.005))
        row.update({
            "credential_calls_per_hour": n * renewals,
            "heartbeat_calls_per_hour": n * beats,
            "idle_concurrency_direct_local": local_busy / 3600,
            "idle_concurrency_direct_aws_estimate": aws_busy / 3600,
            "idle_concurrency_gateway_polls": float(n),
            "credentials_aws_calls_per_phone": cred_calls["calls"] / n,
            "heartbeat_aws_calls_per_phone": beat_calls["calls"] / n,
        })
        # The backlog: messages for phones that never poll (their queue call counts as lost
        # after the grace period, so every message is due for the sweep).
        start = time.perf_counter()
        with awsrec.paused():
            for i in range(backlog):
                device = phones[i % n][0]
                outbox.submit(account.account_id, outbox.SendRequest(
                    device=device, phone_number=PHONE, text=f"Backlog {i}"))
        row["backlog_write_s"] = time.perf_counter() - start
        clock.freeze()
        clock.advance(settings.current().outbox_grace_seconds + 1)
        runs = []
        while len(runs) < 50:
            with awsrec.recording() as calls:
                start = time.perf_counter()
                done = sweeps.settle_due_messages()
                spent = time.perf_counter() - start
            if not done:
                break
            summary = awsrec.summarize(calls)
            runs.append({"settled": sum(v for k, v in done.items()
                                        if k not in ("deferred", "entered")),
                         "outcomes": dict(done), "local_s": spent, "aws_calls": summary["calls"],
                         "by_op": summary["by_op"],
                         "aws_estimate_s": _aws_seconds(summary, latency)})
        row["sweep_runs"] = runs
        row["sweep_budget_s"] = settings.current().sweep_budget_seconds
        row["first_look_page"] = settings.current().first_look_page
        row["function_timeout_s"] = FUNCTION_TIMEOUT_SECONDS
        # Every phone falls silent: the device sweep marks them stopped.
        clock.advance(settings.current().heartbeat_window_seconds + 1)
        with awsrec.recording() as calls:
            start = time.perf_counter()
            stopped = devices.stop_silent()
            spent = time.perf_counter() - start
        summary = awsrec.summarize(calls)
        row["stop_silent"] = {"stopped": stopped, "local_s": spent, "aws_calls": summary["calls"],
                              "aws_estimate_s": _aws_seconds(summary, latency)}
        clock.reset()
        settings.install(settings.current().replace(device_role_arn=""))
        aws.reset()
    return row


def measure(quick: bool = False) -> dict:
    _env.prepare("scale")
    from bench import awsrec, cost
    from chalicelib.storage import tables
    awsrec.learn_indexes(tables.MODELS)
    awsrec.install()
    deploy = cost.deployed_settings()
    latency = cost.load_prices()["assumptions"]["aws_latency_ms_per_call"]
    sizes = (10, 30) if quick else (100, 300, 1000)
    try:
        rows = [one_size(n, n * MESSAGES_PER_PHONE, deploy, latency) for n in sizes]
    finally:
        awsrec.uninstall()
    return {"quick": quick, "deploy": deploy, "rows": rows}


def markdown(r: dict) -> str:
    d = r["deploy"]
    lines = [f"Idle phones in direct mode (the default): a credential renewal about every "
             f"{d['credentials_seconds'] // 60} min and a heartbeat every "
             f"{d['heartbeat_seconds']} s each; backlog {MESSAGES_PER_PHONE} messages per phone "
             "for phones that are offline, all due for the sweep. In-process, moto as AWS.\n",
             "| phones | backlog | credential calls / h | heartbeats / h | idle concurrency, "
             "direct (local / AWS est.) | idle concurrency, gateway polls | sweep runs to clear "
             "| 1st run: settled, AWS calls, local s, AWS est. s | stop_silent: stopped, AWS "
             "calls, local s, AWS est. s |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for row in r["rows"]:
        runs = row["sweep_runs"]
        first = runs[0] if runs else {"settled": 0, "aws_calls": 0, "local_s": 0,
                                      "aws_estimate_s": 0}
        stop = row["stop_silent"]
        lines.append(
            f"| {row['phones']:,} | {row['backlog']:,} | {row['credential_calls_per_hour']:,.0f} "
            f"| {row['heartbeat_calls_per_hour']:,.0f} | "
            f"{row['idle_concurrency_direct_local']:.3f} / "
            f"{row['idle_concurrency_direct_aws_estimate']:.3f} | "
            f"{row['idle_concurrency_gateway_polls']:,.0f} | {len(runs)} | "
            f"{first['settled']:,}, {first['aws_calls']:,}, {first['local_s']:.1f} s, "
            f"{first['aws_estimate_s']:.1f} s | {stop['stopped']:,}, {stop['aws_calls']:,}, "
            f"{stop['local_s']:.1f} s, {stop['aws_estimate_s']:.1f} s |")
    last = r["rows"][-1]
    worst = max((run["aws_estimate_s"] for run in last["sweep_runs"]), default=0)
    lines.append(
        f"\nA sweep run reads at most 200 due messages per shard (8 shards) from the `open` "
        f"index, and at most {last['first_look_page']:,} new messages per account in its "
        "first look (the backlog here is new: it enters the index that way, one conditional "
        "UpdateItem each, and is settled in the same run), and stops taking "
        f"new ones after {last['sweep_budget_s']} s; the longest run at {last['phones']:,} "
        f"phones is estimated at {worst:.1f} s on AWS against a {last['function_timeout_s']} s "
        "timeout. What a run leaves stays due and the next minute's run takes it. Each "
        "requeued message costs one GetItem (its device), one conditional UpdateItem and one "
        "SendMessage.")
    return "\n".join(lines)


def main():
    _env.run_command(measure, markdown, __doc__.splitlines()[0],
                     "10 and 30 phones only (CI-sized).")


if __name__ == "__main__":
    main()
