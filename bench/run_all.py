"""Runs every benchmark and writes the results as markdown to bench/RESULTS.md.

    python bench/run_all.py [--quick] [--output PATH]

Each benchmark runs in its own fresh interpreter (in-process moto for call counts, the local
gateway for latency), so none warms another's caches. `--quick` is a CI smoke run: the same
code paths with few repetitions; its timings are not worth quoting.
"""
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env, cost  # noqa: E402

HERE = Path(__file__).resolve().parent


# A bench that runs longer than this is stuck. Generous: in CI (.ci/run) the quick run shares
# the cores with the tests, so its benches can take several times their figures on an idle machine.
HANG_SECONDS = 900


def run_json(args: list[str], timeout: float = HANG_SECONDS) -> dict:
    """Run `python -m <args> --json` from the repository root; the last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMSGW_"))}
    done = subprocess.run([sys.executable, "-m", *args, "--json"], cwd=_env.ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def delivery(quick: bool) -> dict | None:
    """bench/delivery_latency.py's `measure(n)` (from the device branch), if present."""
    source = HERE / "delivery_latency.py"
    if not source.exists():
        return None
    if "def measure(" not in source.read_text():
        return {"error": "bench/delivery_latency.py has no measure(n) -> dict yet"}
    n = 10 if quick else 200
    code = ("import json, sys; from bench import _env; _env.prepare(); "
            f"from bench.delivery_latency import measure; r = measure({n}); "
            "print(); print(json.dumps(r))")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMSGW_"))}
    done = subprocess.run([sys.executable, "-c", code], cwd=_env.ROOT, env=env,
                          capture_output=True, text=True, timeout=HANG_SECONDS)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return {"n": n, **json.loads(done.stdout.strip().splitlines()[-1])}


def delivery_markdown(r: dict | None) -> str:
    if r is None:
        return "not available (bench/delivery_latency.py is not on this branch yet)"
    if "error" in r:
        return f"not available ({r['error']})"
    return ("| n | median | p99 | worst |\n|---:|---:|---:|---:|\n"
            f"| {r['n']} | {r['median_ms']:.1f} ms | {r['p99_ms']:.1f} ms | "
            f"{r['worst_ms']:.1f} ms |")


def goals(calls: dict, latency: dict, cold: dict) -> list[tuple[str, str, str]]:
    out = []
    for row in calls["rows"]:
        if row.get("goal") is None:
            continue
        if "goal_met" not in row:
            out.append((f"{row['name']}: ≤ {row['goal']} AWS calls warm", "not measured",
                        row.get("unavailable", "")))
            continue
        w = row["warm"]
        detail = f"{w['calls']} warm ({row['cold']['calls']} cold)"
        if row["name"].startswith("get_history"):
            detail += f", {w['items_read']} items read, {w['rru']:g} RRU"
        out.append((f"{row['name']}: ≤ {row['goal']} AWS calls warm",
                    "met" if row["goal_met"] else "NOT met", detail))
    measured = [r for r in latency["rows"] if r.get("raw")]
    over = [r for r in measured if r["http_ratio"] > 1.2]
    worst = max(measured, key=lambda r: r["http_ratio"]) if measured else None
    if worst:
        out.append(("handler latency over HTTP ≤ 1.2× the same AWS calls alone (median)",
                    "met" if not over else f"NOT met for {len(over)} of {len(measured)}",
                    f"worst {worst['name']} {worst['http_ratio']:.2f}×; handler-only worst "
                    f"{max(r['handler_ratio'] for r in measured):.2f}×"))
    inside = [r for r in measured if r.get("in_aws") and r["in_aws"]["median_ms"] > 0]
    if inside:
        ratios = {r["name"]: r["handler"]["median_ms"] / r["in_aws"]["median_ms"] for r in inside}
        name = max(ratios, key=ratios.get)
        out.append(("handler ≤ 1.2× the time inside its own AWS calls (same requests, no replay)",
                    "met" if ratios[name] <= 1.2 else "NOT met",
                    f"worst {name} {ratios[name]:.2f}×; own code ≤ "
                    f"{max(r['own']['median_ms'] for r in inside):.1f} ms median"))
    out.append(("cold start: import app ≤ 1.3× import boto3",
                "met" if cold["ratio"] <= 1.3 else "NOT met",
                f"{cold['app_ms']:.0f} ms vs {cold['boto3_ms']:.0f} ms = {cold['ratio']:.2f}×"))
    return out


def main():
    import click

    @click.command()
    @click.option("--quick", is_flag=True, help="CI smoke run: few repetitions, same code paths.")
    @click.option("--output", type=click.Path(dir_okay=False), default=str(HERE / "RESULTS.md"),
                  show_default=True, help="Where to write the markdown.")
    def cli(quick, output):
        """Run all benchmarks; print and write the markdown results."""
        started = time.monotonic()
        flag = ["--quick"] if quick else []
        click.echo("AWS calls per action...", err=True)
        calls = run_json(["bench.aws_calls", *flag])
        click.echo("handler latency over HTTP...", err=True)
        latency = run_json(["bench.latency", *flag])
        click.echo("job delivery latency...", err=True)
        deliv = delivery(quick)
        click.echo("cold start...", err=True)
        cold = run_json(["bench.cold_start", *flag])
        click.echo("scale (idle phones, sweeps with a backlog)...", err=True)
        scale = run_json(["bench.scale", *flag], timeout=1800)
        click.echo("local gateway at scale (bulk sends, memory)...", err=True)
        local = run_json(["bench.local_scale", *flag], timeout=3600)
        costs = cost.compute(calls, latency)
        from bench import aws_calls, cold_start, local_scale
        from bench import latency as latency_mod
        from bench import scale as scale_mod
        elapsed = time.monotonic() - started
        goal_rows = "\n".join(f"| {g} | {v} | {d} |" for g, v, d in goals(calls, latency, cold))
        text = f"""# Benchmark results

`python bench/run_all.py{' --quick' if quick else ''}` — {time.strftime('%Y-%m-%d %H:%M UTC',
time.gmtime())}, Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs,
{elapsed:.0f} s.{' **Quick run: timings are smoke-test figures only.**' if quick else ''}

## Goals

| goal | status | figures |
|---|---|---|
{goal_rows}

## AWS calls per action

Exact counts at botocore level (in-process, moto). Cold = first request with every container
cache dropped; warm = repeated. RRU/WRU are DynamoDB request units estimated from item sizes
(moto reports constants); SQS req counts 64 KB chunks. "cold adds" lists what the cold request
made beyond the warm one.

{aws_calls.markdown(calls)}

## Handler latency (local stack, over HTTP)

{latency_mod.markdown(latency)}

"raw AWS" is the same calls replayed alone with boto3 against the same moto server; "handler"
is the Chalice app's own time (what Lambda bills, API Gateway excluded); HTTP adds the local HTTP
server. moto is not AWS: these ratios show our code's overhead, not AWS latency.

## Job delivery latency (send_sms → job at a long-polling device)

{delivery_markdown(deliv)}

## Cold start

{cold_start.markdown(cold)}

## Cost model

{cost.markdown(costs)}

## Scale (100 → 1,000 phones, 10 messages of backlog each)

{scale_mod.markdown(scale)}

## Local gateway at scale (bench/local_scale.py)

{local_scale.markdown(local)}
"""
        Path(output).write_text(text)
        click.echo(text)
        click.echo(f"written to {output}", err=True)
    cli()


if __name__ == "__main__":
    main()
