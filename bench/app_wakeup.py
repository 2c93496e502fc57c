"""Wake-up of an SMSGate app phone on the local gateway: time from send_sms to the app having the
message (its GET /message answered), with the app played from its source (bench/smsgate_app.py:
5 s reconnect after each /events answer, a pull on each connection), and the requests an idle
app phone makes. Sends come at random moments, so they land anywhere in the app's cycle.

    python bench/app_wakeup.py [--messages 40] [--holds 0,20] [--idle-seconds 60] [--json]

Goal (issue 22): p99 <= 10 s locally. Figures, not a timed test. Takes about 4 minutes
without a hold, 10 with --holds 20.
"""
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests  # noqa: E402

from bench.smsgate_app import SmsgateApp  # noqa: E402


def _soak():
    import importlib.util
    spec = importlib.util.spec_from_file_location("soak", Path(__file__).with_name("soak.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wait(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    raise RuntimeError("timed out")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def measure_hold(hold: int, messages: int, idle_seconds: float, seed: int = 7) -> dict:
    soak = _soak()
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="smsgw-wakeup-") as workdir:
        gw = soak.Gateway(Path(workdir), devices=0, extra_env={
            "SMSGW_MOBILE_EVENTS_HOLD_SECONDS": str(hold),
            "SMSGW_HEARTBEAT_WINDOW_SECONDS": "60", "SMSGW_LEASE_SECONDS": "60"})
        app = None
        try:
            pairing = json.loads(gw.admin("device", "app-token", gw.info["account_id"],
                                          "--url", gw.url, "--json"))
            app = SmsgateApp(pairing["server_url"], pairing["private_token"]).start()
            _wait(lambda: app.registration, 20)
            uid = app.registration["id"]
            session = requests.Session()
            time.sleep(2)
            before, started = sum(app.requests.values()), time.monotonic()
            time.sleep(idle_seconds)
            idle_per_minute = (sum(app.requests.values()) - before) * 60 / (
                time.monotonic() - started)
            sent = {}
            # With a hold, each wake restarts the app's cycle: sends come at least one
            # reconnect gap apart, at any point of the next cycle (else most would land in the
            # gap after the previous wake). Without, the cycle ignores them.
            low, high = (6, hold + 6) if hold else (0, 7)
            for n in range(messages):
                time.sleep(rng.uniform(low, high))
                at = time.time()
                answer = gw.api(session, action="send_sms", device_uid=uid,
                                phone_number=f"+88017{n:08d}", message=f"wake-up {n}")
                sent[str(answer["data"]["message_id"])] = at
            _wait(lambda: set(sent) <= set(app.pulled_at), 60)
            latency = [app.pulled_at[m] - at for m, at in sent.items()]
            return {"hold_seconds": hold, "messages": messages,
                    "median_s": statistics.median(latency), "p99_s": percentile(latency, 0.99),
                    "max_s": max(latency), "idle_requests_per_minute": idle_per_minute,
                    "idle_requests_per_month": idle_per_minute * 60 * 730,
                    "errors": len(app.errors)}
        finally:
            if app:
                app.kill()
            gw.stop()


def markdown(rows: list[dict]) -> str:
    lines = ["| GET /events | messages | median | p99 | max | idle requests/min (a month) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        how = f"held {r['hold_seconds']} s" if r["hold_seconds"] else "answered at once"
        lines.append(f"| {how} | {r['messages']} | {r['median_s']:.2f} s | {r['p99_s']:.2f} s | "
                     f"{r['max_s']:.2f} s | {r['idle_requests_per_minute']:.1f} "
                     f"({r['idle_requests_per_month']:,.0f}) |")
    lines.append("\nGoal: p99 <= 10 s locally (send_sms -> the app's GET /message answered).")
    return "\n".join(lines)


def main():
    import click

    @click.command()
    @click.option("--messages", default=40, show_default=True)
    @click.option("--holds", default="0,20", show_default=True,
                  help="SMSGW_MOBILE_EVENTS_HOLD_SECONDS values to compare.")
    @click.option("--idle-seconds", default=60.0, show_default=True)
    @click.option("--json", "as_json", is_flag=True)
    def cli(messages, holds, idle_seconds, as_json):
        """Wake-up latency and idle requests of an SMSGate app phone (local gateway)."""
        rows = [measure_hold(int(h), messages, idle_seconds) for h in holds.split(",")]
        click.echo(json.dumps(rows) if as_json else markdown(rows))
    cli()


if __name__ == "__main__":
    main()
