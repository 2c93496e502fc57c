"""The local gateway at scale: bulk sends through `POST /v1/messages`, a phone taking and
reporting every message, the gateway process's resident memory sampled throughout, and a
replayed bulk (same idempotency_key) timed against the original.

    python bench/local_scale.py [--quick] [--json] [--bulks N] [--size N]

The gateway is `local_gateway.py --memory` as a user starts it (moto's server, the app and the
simulated demo phone in one process); RSS is read from /proc/PID/status every 0.2 s. Per bulk:
the time to accept it (one HTTP request), the RSS after it, and the time until the phone has
reported all of it delivered. Default: 10 bulks of 1,000; --quick: 3 bulks of 40 (a CI smoke
run of the same path; its figures are not worth quoting).
"""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """The process's peak RSS since the last `take()`, sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.overall = pid, every, 0.0, 0.0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.every):
            try:
                now = rss_mb(self.pid)
            except OSError:
                return
            self.peak, self.overall = max(self.peak, now), max(self.overall, now)

    def take(self) -> float:
        peak, self.peak = self.peak, rss_mb(self.pid)
        return max(peak, self.peak)


def _post(url: str, key: str, body: dict, timeout: float = 600) -> tuple[int, dict, float]:
    import requests
    started = time.monotonic()
    answer = requests.post(url + "/v1/messages", json=body, timeout=timeout,
                           headers={"Authorization": f"Bearer {key}"})
    return answer.status_code, answer.json(), time.monotonic() - started


POLL_SECONDS = 5


def _delivered(url: str, key: str, ids: set, since: str, deadline: float) -> bool:
    """Waits until every message in `ids` is delivered (pages of messages delivered, created
    since the bulk was sent: the earlier bulks' would make each look slower than the last).
    Every POLL_SECONDS: each look lists up to the whole bulk, and at one a second the looks
    took a sixth of the gateway's time from the phone (py-spy, bulks of 1,000)."""
    import requests
    waiting = set(ids)
    while waiting and time.monotonic() < deadline:
        cursor, seen = None, set()
        while True:
            query = {"status": "delivered", "direction": "outgoing", "limit": 100,
                     "since": since}
            if cursor:
                query["cursor"] = cursor
            page = requests.get(url + "/v1/messages", params=query, timeout=120,
                                headers={"Authorization": f"Bearer {key}"}).json()
            seen.update(m["id"] for m in page["messages"])
            cursor = page.get("next_cursor")
            if not cursor or not (waiting - seen):
                break
        waiting -= seen
        if waiting:
            time.sleep(POLL_SECONDS)
    return not waiting


def measure(quick: bool, bulks: int | None = None, size: int | None = None) -> dict:
    bulks = bulks or (3 if quick else 10)
    size = size or (40 if quick else 1000)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "SMSGW_")) or k == "SMSGW_LOCAL_TRACEMALLOC"}
    # The demo phone as fast as it goes: the bench times the gateway, not a carrier nor
    # Android's 30-part window (docs/pool.md; with it a bulk waits 30 minutes after 25 parts).
    env.update({"SMSGW_LOCAL_AGENT_DELIVERY_DELAY": "0", "SMSGW_DEFAULT_PACE_PER_HOUR": "0",
                "SMSGW_PACE_WINDOW_PARTS": "0"})
    from local_gateway import free_port
    proc = subprocess.Popen([sys.executable, str(_env.ROOT / "local_gateway.py"), "--json",
                             "--memory", "--quiet", "--port", str(free_port())],
                            cwd=_env.ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        url, key = info["url"], info["api_key"]
        sampler = Sampler(proc.pid)
        sampler.start()
        rows, first_body = [], None
        for n in range(bulks):
            body = {"recipients": [f"+49170{n:03d}{i:04d}" for i in range(size)],
                    "message": f"bulk {n}", "idempotency_key": f"local-scale-{n}"}
            first_body = first_body or body
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
            status, answer, took = _post(url, key, body)
            if status != 202:
                print(f"bulk {n + 1}: HTTP {status} {answer}", file=sys.stderr)
            accepted = rss_mb(proc.pid)
            ids = {m["id"] for m in answer.get("messages", []) if m.get("id")}
            started = time.monotonic()
            done = _delivered(url, key, ids, since, time.monotonic() + max(300, size * 0.6))
            rows.append({"bulk": n + 1, "status": status, "accepted": len(ids),
                         "accept_s": round(took, 2), "rss_after_accept_mb": round(accepted),
                         "delivered_all": done,
                         "deliver_s": round(time.monotonic() - started, 1),
                         "peak_rss_mb": round(sampler.take())})
            if os.environ.get("SMSGW_LOCAL_TRACEMALLOC"):  # localgw/memtrace.py
                import signal
                proc.send_signal(signal.SIGUSR1)
        status, answer, replay = _post(url, key, first_body)
        replayed = sum(1 for m in answer.get("messages", []) if m.get("replayed"))
        sampler.stopped.set()
        return {"bulks": bulks, "size": size, "rows": rows,
                "replay": {"status": status, "seconds": round(replay, 2),
                           "replayed": replayed},
                "peak_rss_mb": round(sampler.overall),
                "last_over_first": round(rows[-1]["accept_s"] / rows[0]["accept_s"], 2)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def markdown(r: dict) -> str:
    lines = [f"{r['bulks']} bulk sends of {r['size']} recipients through `POST /v1/messages` "
             "on `local_gateway.py --memory` (demo phone taking and reporting each):", "",
             "| bulk | accepted | accept time | RSS after accept | all delivered after | "
             "peak RSS |", "|---:|---:|---:|---:|---:|---:|"]
    for row in r["rows"]:
        delivered = f"{row['deliver_s']} s" if row["delivered_all"] else "NOT ALL"
        lines.append(f"| {row['bulk']} | {row['accepted']} | {row['accept_s']} s | "
                     f"{row['rss_after_accept_mb']} MB | {delivered} | {row['peak_rss_mb']} MB |")
    first = r["rows"][0]["accept_s"]
    lines += ["", f"Peak RSS {r['peak_rss_mb']} MB; last bulk / first bulk accept time: "
              f"{r['last_over_first']}x; replay of bulk 1 (same idempotency_key): "
              f"{r['replay']['seconds']} s (HTTP {r['replay']['status']}, "
              f"{r['replay']['replayed']} replayed) vs {first} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    import click

    @click.command(help=__doc__)
    @click.option("--quick", is_flag=True, help="3 bulks of 40: a CI smoke run.")
    @click.option("--json", "as_json", is_flag=True, help="Print the raw figures as JSON.")
    @click.option("--bulks", type=int, help="How many bulk sends.")
    @click.option("--size", type=int, help="Recipients per bulk.")
    def cli(quick, as_json, bulks, size):
        _env.prepare()
        result = measure(quick, bulks, size)
        click.echo(json.dumps(result) if as_json else markdown(result))
    cli()
