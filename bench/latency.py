"""Handler latency per action on the local stack, over HTTP, next to the same AWS calls alone.

    python bench/latency.py [--quick] [--n 300] [--json]

Starts the local gateway in-process (moto's server as AWS, the Chalice app on 127.0.0.1, free
ports). For each action it times:
  - HTTP: the whole request as a client sees it (local HTTP server + Chalice + handler);
  - handler: the Chalice app's own time for the request (an http middleware around it), i.e.
    what Lambda would bill, without API Gateway;
  - raw AWS: the very AWS calls one warm request made (recorded at botocore level), replayed
    with a plain boto3 client against the same moto server, in the same order, with the same
    payloads. Conditions on puts are dropped so the replays succeed (same item sizes);
    long-poll waits are replayed as 0.
The ratios handler/raw and HTTP/raw show what the gateway's own code adds to its AWS calls.
Replays of conditional writes that fail the second time (a report on a message already
reported) can be quicker than the original, so the table also gives, per request, the handler's
time minus the time spent inside its own AWS calls ("own code"): that needs no replay.
"""
import copy
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402

HANDLER_TIMES: list[float] = []


def _percentile(values, q):
    values = sorted(values)
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[index]


def stats(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {"median_ms": statistics.median(ms), "p99_ms": _percentile(ms, 99), "n": len(ms)}


def _timing_middleware(event, get_response):
    start = time.perf_counter()
    try:
        return get_response(event)
    finally:
        HANDLER_TIMES.append(time.perf_counter() - start)


class Replayer:
    """Plays recorded AWS calls again with plain boto3 clients against the same endpoint."""

    def __init__(self, endpoint):
        import boto3

        from chalicelib.storage.aws import RETRY_CONFIG
        session = boto3.session.Session()
        self.clients = {s: session.client(s, endpoint_url=endpoint, region_name="us-east-1",
                                          config=RETRY_CONFIG) for s in ("dynamodb", "sqs")}

    @staticmethod
    def prepared(calls):
        plan = []
        for call in calls:
            params = copy.deepcopy(call.params)
            if call.operation == "PutItem":
                _drop_condition(params)
            elif call.operation == "TransactWriteItems":
                for entry in params["TransactItems"]:
                    if "Put" in entry:
                        _drop_condition(entry["Put"])
            elif call.operation == "ReceiveMessage":
                params["WaitTimeSeconds"] = 0
            plan.append((call.service, call.operation, params))
        return plan

    def play(self, plan):
        from botocore.exceptions import ClientError
        for service, operation, params in plan:
            try:
                self.clients[service]._make_api_call(operation, copy.deepcopy(params))
            except ClientError:
                pass  # e.g. a stale receipt handle: the round trip is what we time


def _drop_condition(put):
    for key in ("ConditionExpression", "ExpressionAttributeNames", "ExpressionAttributeValues"):
        put.pop(key, None)


def measure(quick: bool = False, n: int | None = None) -> dict:
    _env.prepare()
    from bench import awsrec, scenarios
    from local_gateway import LocalGateway
    n = n or (20 if quick else 300)
    gw = LocalGateway(port=0, demo=False, schedules=False, agent=False).start()
    try:
        import app as app_module
        from chalicelib.storage import tables
        app_module.app.register_middleware(_timing_middleware, "http")
        awsrec.learn_indexes(tables.MODELS)
        awsrec.install()
        fx = scenarios.Fixture(history=100)
        inv = scenarios.HttpInvoker(gw.url)
        replayer = Replayer(gw.aws_endpoint)
        rows = [_floor(inv, n)]
        for sc in scenarios.SCENARIOS:
            if not sc.latency:
                continue
            rows.append(_measure_one(sc, fx, inv, replayer, n, 2 if quick else 8))
        return {"n": n, "rows": rows}
    finally:
        awsrec.uninstall()
        gw.stop()


def _floor(inv, n):
    """A request that touches no AWS service (no action given): the HTTP + framework floor."""
    http, handler = [], []
    for _ in range(n):
        HANDLER_TIMES.clear()
        start = time.perf_counter()
        inv.request("GET", "/myAPI.php")
        http.append(time.perf_counter() - start)
        handler.append(HANDLER_TIMES[-1] if HANDLER_TIMES else float("nan"))
    return {"name": "no AWS call (error envelope)", "http": stats(http),
            "handler": stats(handler), "raw": None, "calls": 0}


def _measure_one(sc, fx, inv, replayer, n, budget_s):
    from bench import awsrec
    row = {"name": sc.name, "group": sc.group}
    reason = sc.missing() if sc.missing else None
    if reason:
        return {**row, "unavailable": reason}
    heavy = sc.prepare is not None
    count = max(10, n // 3) if heavy else n
    http, handler, in_aws = [], [], []
    try:
        for _ in range(3):  # warm the caches
            if sc.prepare:
                sc.prepare(fx, inv)
            sc.run(fx, inv)
        if sc.prepare:
            sc.prepare(fx, inv)
        with awsrec.recording() as calls:
            reply = sc.run(fx, inv)
        if not reply.ok:
            return {**row, "unavailable": f"answered an error: {reply.problem()}"}
        plan = replayer.prepared(calls)
        raw = []
        deadline = time.monotonic() + budget_s
        for i in range(count):  # interleaved, so load from elsewhere hits both sides alike
            if i >= min(count, 30) and time.monotonic() > deadline:
                break  # slow actions (moto's Query of 100 items) stop at the time budget
            if sc.prepare:
                sc.prepare(fx, inv)
            HANDLER_TIMES.clear()
            with awsrec.recording() as inside:
                start = time.perf_counter()
                sc.run(fx, inv)
                http.append(time.perf_counter() - start)
            handler.append(HANDLER_TIMES[-1])
            in_aws.append(sum(c.seconds for c in inside))
            start = time.perf_counter()
            replayer.play(plan)
            raw.append(time.perf_counter() - start)
    except Exception as exc:
        return {**row, "unavailable": f"failed: {exc!r}"[:200]}
    row.update(http=stats(http), handler=stats(handler), raw=stats(raw), calls=len(plan),
               ops=[f"{s}.{o}" for s, o, _ in plan], in_aws=stats(in_aws),
               own=stats([h - a for h, a in zip(handler, in_aws, strict=True)]))
    row["handler_ratio"] = row["handler"]["median_ms"] / row["raw"]["median_ms"]
    row["http_ratio"] = row["http"]["median_ms"] / row["raw"]["median_ms"]
    return row


def markdown(result: dict) -> str:
    lines = [f"Up to {result['n']} requests per action (n/3 for actions needing per-call set-up; "
             "fewer, at least 30, when an action exceeds its time budget).\n",
             "| action | n | AWS calls | raw AWS median | handler median / p99 | "
             "HTTP median / p99 | handler ÷ raw | HTTP ÷ raw (goal ≤ 1.2×) | "
             "own code (handler − its AWS calls) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in result["rows"]:
        if "unavailable" in r:
            lines.append(f"| {r['name']} | | | {r['unavailable']} | | | | | |")
            continue
        h, x = r["handler"], r["http"]
        raw = f"{r['raw']['median_ms']:.2f} ms" if r["raw"] else "—"
        hr = f"{r['handler_ratio']:.2f}×" if r.get("raw") else "—"
        own = f"{r['own']['median_ms']:.2f} ms" if r.get("own") else "—"
        xr = (f"{r['http_ratio']:.2f}× {'met' if r['http_ratio'] <= 1.2 else 'NOT met'}"
              if r.get("raw") else "—")
        lines.append(f"| {r['name']} | {x['n']} | {r['calls']} | {raw} | {h['median_ms']:.2f} / "
                     f"{h['p99_ms']:.2f} ms | {x['median_ms']:.2f} / {x['p99_ms']:.2f} ms | "
                     f"{hr} | {xr} | {own} |")
    return "\n".join(lines)


def main():
    import click

    @click.command()
    @click.option("--quick", is_flag=True, help="20 requests per action instead of 300.")
    @click.option("--n", type=int, default=None, help="Requests per action.")
    @click.option("--json", "as_json", is_flag=True, help="Print the raw figures as JSON.")
    def cli(quick, n, as_json):
        """Handler latency per action vs the same AWS calls alone."""
        result = measure(quick, n)
        click.echo(json.dumps(result) if as_json else markdown(result))
    cli()


if __name__ == "__main__":
    main()
