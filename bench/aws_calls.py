"""AWS calls per action, exact, counted at botocore level, cold and warm, with estimated
DynamoDB read/write units and SQS requests. In-process against moto (`moto.mock_aws`) through
chalice.test.Client, i.e. the real routes and handlers.

    python bench/aws_calls.py [--quick] [--json]

Cold = the first request after every cache a Lambda container keeps (API key and device
lookups, AWS clients, PynamoDB connections) was dropped; warm = the same request repeated.
"""
import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402

GOAL_NOTE = "warm AWS calls ≤ {goal}"


def measure(quick: bool = False) -> dict:
    _env.prepare()
    # Each scenario's cold run starts like a new container (scenarios.reset_caches: new
    # clients and PynamoDB connections), and botocore's new sessions parsed its JSON models
    # again each time: most of this bench's CPU, and never an AWS call. This bench counts calls,
    # not time: one parsed copy serves every session (localgw/botocore_models.py).
    from localgw.botocore_models import share_loader
    share_loader()
    # As deployed: the OTP secret comes from SSM on a container's first OTP request.
    os.environ.pop("SMSGW_OTP_SECRET", None)
    os.environ["SMSGW_OTP_SECRET_PARAM"] = "/smsgw/bench/otp-secret"
    import moto
    from chalice.test import Client

    from bench import awsrec, scenarios
    with moto.mock_aws():
        from chalicelib.storage import aws, tables
        aws.reset()
        tables.create_all()
        aws.ssm().put_parameter(Name=os.environ["SMSGW_OTP_SECRET_PARAM"], Type="SecureString",
                                Value="bench-otp-secret-" + "x" * 48)
        awsrec.learn_indexes(tables.MODELS)
        awsrec.install(exact_units=True)
        try:
            import app as app_module
            fx = scenarios.Fixture(history=100)
            with Client(app_module.app) as client:
                inv = scenarios.ChaliceInvoker(client)
                rows = [_measure_one(sc, fx, inv, repeats=2 if quick else 3)
                        for sc in scenarios.SCENARIOS]
        finally:
            awsrec.uninstall()
    return {"rows": rows}


def _measure_one(sc, fx, inv, repeats: int) -> dict:
    from bench import awsrec, scenarios
    row = {"name": sc.name, "group": sc.group, "goal": sc.goal}
    reason = sc.missing() if sc.missing else None
    if reason:
        return {**row, "unavailable": reason}
    try:
        if sc.prepare:
            sc.prepare(fx, inv)
        scenarios.reset_caches()
        with awsrec.recording() as cold:
            reply = sc.run(fx, inv)
        warm_runs = []
        for _ in range(repeats):
            if sc.prepare:
                sc.prepare(fx, inv)
            with awsrec.recording() as warm:
                reply = sc.run(fx, inv)
            warm_runs.append(warm)
    except Exception as exc:  # a scenario whose set-up fails is reported, not fatal
        return {**row, "unavailable": f"failed: {exc!r}"[:200]}
    summaries = [awsrec.summarize(w) for w in warm_runs]
    stable = len({json.dumps(s["by_op"], sort_keys=True) for s in summaries}) == 1
    warm = summaries[-1]
    row.update(cold=awsrec.summarize(cold), warm=warm, stable=stable,
               ok=reply.ok, problem=None if reply.ok else reply.problem())
    if sc.goal is not None:
        row["goal_met"] = reply.ok and stable and warm["calls"] <= sc.goal
    return row


def ops(by_op: dict) -> str:
    return ", ".join(f"{n}× {op}" if n > 1 else op for op, n in by_op.items()) or "—"


def markdown(result: dict) -> str:
    lines = ["| action | cold calls | warm calls | warm calls (service.operation) | cold adds | "
             "items read | RRU | WRU | SQS req | goal |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        if "unavailable" in r:
            lines.append(f"| {r['name']} | — | — | {r['unavailable']} | | | | | | "
                         f"{_goal(r)} |")
            continue
        w, c = r["warm"], r["cold"]
        note = "" if r["ok"] else f" ⚠ answered an error: {r['problem']}"
        note += "" if r["stable"] else " (varies between warm runs)"
        extra = {op: n - w["by_op"].get(op, 0) for op, n in c["by_op"].items()
                 if n > w["by_op"].get(op, 0)}
        lines.append(f"| {r['name']} | {c['calls']} | {w['calls']} | {ops(w['by_op'])}{note} | "
                     f"{ops(extra)} | {w['items_read']} | {w['rru']:g} | {w['wru']:g} | "
                     f"{w['sqs_requests']} | {_goal(r)} |")
    return "\n".join(lines)


def _goal(r) -> str:
    if r.get("goal") is None:
        return ""
    if "goal_met" not in r:
        return f"≤ {r['goal']}: not measured"
    return f"≤ {r['goal']}: {'met' if r['goal_met'] else 'NOT met'}"


def main():
    _env.run_command(measure, markdown, "AWS calls per action, cold and warm.",
                     "Fewer warm repeats.")


if __name__ == "__main__":
    main()
