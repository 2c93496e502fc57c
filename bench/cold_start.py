"""Cold start: the time to import `app` (what a new Lambda container pays before its first
request) in fresh interpreters, next to a bare `import boto3`, and what dominates it.

    python bench/cold_start.py [--quick] [--json]
"""
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402

TIMER = ("import time as _t; _s = _t.perf_counter(); import {module}; "
         "print(_t.perf_counter() - _s)")
# The settings alone: define the frozen Settings and read the environment once (dataclasses and
# re are loaded by app's other imports anyway).
SETTINGS_TIMER = ("import dataclasses, re, time as _t; _s = _t.perf_counter(); "
                  "from chalicelib.core import settings; settings.current(); "
                  "print(_t.perf_counter() - _s)")


def _env_vars():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_DEFAULT_REGION": "us-east-1", "SMSGW_STAGE": "bench",
                "PYTHONDONTWRITEBYTECODE": "0"})
    return env


def import_seconds(module: str, timer: str = TIMER) -> float:
    out = subprocess.run([sys.executable, "-c", timer.format(module=module)], cwd=_env.ROOT,
                         env=_env_vars(), capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def importtime(module: str = "app") -> list[dict]:
    """`python -X importtime -c 'import app'`: every module with self and cumulative µs."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         cwd=_env.ROOT, env=_env_vars(), capture_output=True, text=True,
                         check=True)
    rows = []
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append({"module": m.group(4), "self_us": int(m.group(1)),
                         "cumulative_us": int(m.group(2)), "depth": len(m.group(3)) // 2})
    return rows


def measure(quick: bool = False) -> dict:
    runs = 3 if quick else 9
    import_seconds("app")  # compile .pyc files once, as a deployed package ships them
    app_s, boto_s, settings_s = [], [], []
    for _ in range(runs):  # interleaved, so machine load hits both alike
        app_s.append(import_seconds("app"))
        boto_s.append(import_seconds("boto3"))
        settings_s.append(import_seconds("", SETTINGS_TIMER))
    rows = importtime("app")
    top = sorted(rows, key=lambda r: -r["cumulative_us"])[:10]
    # What `import app` loads that a bare `import boto3` does not, by top-level package.
    boto_modules = {r["module"] for r in importtime("boto3")}
    extra = {}
    for r in rows:
        if r["module"] not in boto_modules:
            root = r["module"].split(".")[0]
            extra[root] = extra.get(root, 0) + r["self_us"]
    beyond = sorted(extra.items(), key=lambda kv: -kv[1])[:12]
    app_ms, boto_ms = statistics.median(app_s) * 1000, statistics.median(boto_s) * 1000
    return {"runs": runs, "app_ms": app_ms, "boto3_ms": boto_ms, "ratio": app_ms / boto_ms,
            "app_runs_ms": [s * 1000 for s in app_s], "top_cumulative": top,
            "settings_ms": statistics.median(settings_s) * 1000,
            "beyond_boto3_ms": [(k, v / 1000) for k, v in beyond]}


def markdown(r: dict) -> str:
    verdict = "met" if r["ratio"] <= 1.3 else "NOT met"
    lines = [f"Median of {r['runs']} fresh interpreters: `import app` **{r['app_ms']:.0f} ms**, "
             f"bare `import boto3` **{r['boto3_ms']:.0f} ms**, ratio **{r['ratio']:.2f}×** "
             f"(goal ≤ 1.3×: {verdict}).\n",
             f"The settings (the frozen `Settings` defined, the environment read and checked "
             f"once): **{r['settings_ms']:.1f} ms** of it.\n",
             "Top 10 by cumulative import time (`python -X importtime -c 'import app'`):\n",
             "| module | cumulative ms | self ms |", "|---|---:|---:|"]
    for row in r["top_cumulative"]:
        lines.append(f"| {'  ' * row['depth']}{row['module']} | {row['cumulative_us'] / 1000:.1f}"
                     f" | {row['self_us'] / 1000:.1f} |")
    lines += ["", "What `import app` loads beyond a bare `import boto3` (self time of the modules "
              "boto3 does not import, by top-level package, one -X importtime run):\n",
              "| package | self ms |", "|---|---:|"]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in r["beyond_boto3_ms"]]
    total = sum(ms for _, ms in r["beyond_boto3_ms"])
    lines.append(f"| **total beyond boto3** | **{total:.1f}** |")
    return "\n".join(lines)


def main():
    _env.run_command(measure, markdown, "Import time of app vs boto3 in fresh interpreters.",
                     "3 runs instead of 9.")


if __name__ == "__main__":
    main()
