"""Phones as a pool (issue 10), measured on the local stack: failover time, pool throughput
against one phone, and the AWS calls of send_sms with automatic choice.

    python bench/pool.py [--quick] [--json] [--grace 10] [--trials 3]

What runs: `local_gateway.py` as a subprocess (as bench/soak.py starts it: moto server, the
Chalice app over HTTP, the schedules every second) and simulated phones (smsgw-agent
subprocesses, simulator backend). Each measurement uses a fresh account made with the admin CLI.

- Failover: three phones; one is SIGKILLed, then messages are sent without naming a device.
  Until the gateway notices, some are chosen for the dead phone; each of those is timed from
  the kill to the moment another phone sent it (its ledger). The gateway moves such a message
  once it is SMSGW_POOL_GRACE_SECONDS past its send time (or at once when the liveness sweep
  stops the phone), at the next outbox sweep: on AWS, worst case ~ grace + the sweep's 1 minute.
- Throughput: the same burst through a pool of N phones and through one, every phone paced at
  the same rate; the ratio of the times until all were sent approaches N.
- AWS calls: bench/aws_calls.py's "send_sms, automatic device choice" row (in-process moto).
"""
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import soak  # noqa: E402

THROUGHPUT_PACE = 2  # parts per SMSGW_PACE_RATE_SECONDS (1 s here) per SIM: 1 bulk per 2 s


class Pool:
    """A fresh account with `n` single-SIM phones, each an agent subprocess."""

    def __init__(self, gw: "soak.Gateway", workdir: Path, n: int, pace: int | None = None):
        self.gw = gw
        self.account_id = json.loads(gw.admin("account", "create", "bench-pool",
                                              "--json"))["account_id"]
        self.key = json.loads(gw.admin("key", "create", self.account_id, "--json"))["api_key"]
        self.slots = []
        for i in range(n):
            device = json.loads(gw.admin("device", "register", self.account_id, f"p{i}",
                                         "--sims", "1", "--json"))
            if pace:
                gw.admin("device", "pace", self.account_id, device["device_uid"], str(pace))
            slot = soak.AgentSlot(gw, device, workdir, 0.0)
            slot.start()
            self.slots.append(slot)
        self.session = requests.Session()
        deadline = time.monotonic() + 30
        while len(self.running()) < n:
            if time.monotonic() > deadline:
                raise RuntimeError("phones did not start")
            time.sleep(0.3)

    def api(self, **params) -> dict:
        return self.session.post(f"{self.gw.url}/myAPI.php", timeout=60,
                                 data={"api_key": self.key, **params}).json()

    def running(self) -> set:
        answer = self.api(action="device_status")
        return {d["device_uid"] for d in answer.get("data") or [] if d["status"] == "running"}

    def send(self, count: int, tag: str) -> dict:
        """Send `count` SMS naming no device: {message_id: (device_uid chosen, accepted at)}."""
        found, lock = {}, threading.Lock()

        def one(n):
            answer = self.api(action="send_sms", phone_number=f"+88017{n:08d}",
                              message=f"{tag} {n}")
            if answer.get("status") != "success":
                raise RuntimeError(f"send_sms failed: {answer}")
            with lock:
                found[answer["data"]["message_id"]] = (answer["data"]["device_uid"], time.time())
        with ThreadPoolExecutor(4) as executor:
            list(executor.map(one, range(count)))
        return found

    def sent_at(self) -> dict:
        """message_id -> (device_uid, time) of every send on the phones' ledgers."""
        return {e["message_id"]: (s.device["device_uid"], e["at"]) for s in self.slots
                for e in s.entries()}

    def wait_sent(self, ids, seconds: float) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            sent = self.sent_at()
            if all(m in sent for m in ids):
                return sent
            time.sleep(0.2)
        missing = [m for m in ids if m not in self.sent_at()]
        states = [self.api(action="check_status", message_id=str(m))["data"] for m in missing]
        raise RuntimeError(f"{len(missing)} messages not sent: {states}")

    def close(self):
        for slot in self.slots:
            slot.kill()
            slot.log.close()


def failover_trial(gw, workdir: Path, count: int, grace: int) -> list:
    pool = Pool(gw, workdir, 3)
    try:
        dead = pool.slots[0]
        dead.kill()
        killed = time.time()
        # A long poll the phone had open when it died may still lease a job for it; such a
        # message stays with that phone (only its journal knows if it went). Let it end first.
        time.sleep(1.5)
        chosen = pool.send(count, "failover")
        theirs = [m for m, (uid, _) in chosen.items() if uid == dead.device["device_uid"]]
        sent = pool.wait_sent(theirs, grace + 60)
        assert all(sent[m][0] != dead.device["device_uid"] for m in theirs)
        return [sent[m][1] - killed for m in theirs]
    finally:
        pool.close()


def throughput(gw, workdir: Path, phones: int, count: int) -> float:
    """Messages per second through `phones` phones paced at THROUGHPUT_PACE."""
    pool = Pool(gw, workdir, phones, pace=THROUGHPUT_PACE)
    try:
        started = time.time()
        chosen = pool.send(count, f"throughput-{phones}")
        sent = pool.wait_sent(list(chosen), count * 2 + 60)
        return count / (max(at for _, at in sent.values()) - started)
    finally:
        pool.close()


def measure(quick: bool = False, grace: int = 10, trials: int | None = None,
            pool_size: int = 3) -> dict:
    trials = trials or (1 if quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="smsgw-pool-bench-"))
    env = {**soak.POOL_ENV, "SMSGW_POOL_GRACE_SECONDS": str(grace),
           "SMSGW_PACE_RATE_SECONDS": "1"}
    gw = soak.Gateway(workdir, devices=0, extra_env=env)
    try:
        times = []
        for _ in range(trials):
            times += failover_trial(gw, workdir, 12 if quick else 30, grace)
        count = 12 if quick else 30
        one = throughput(gw, workdir, 1, count)
        many = throughput(gw, workdir, pool_size, count)
    finally:
        gw.stop()
    from bench import aws_calls
    rows = {r["name"]: r for r in aws_calls.measure(quick=True)["rows"]}
    auto = rows.get("send_sms, automatic device choice", {})
    return {
        "settings": {"pool grace (s)": grace, "sweeps every (s)": 1,
                     "heartbeat window (s)": soak.HEARTBEAT_WINDOW, "trials": trials},
        "failover: messages moved": len(times),
        "failover: median (s)": round(statistics.median(times), 2) if times else None,
        "failover: worst (s)": round(max(times), 2) if times else None,
        "throughput: 1 phone (msg/s)": round(one, 2),
        f"throughput: {pool_size} phones (msg/s)": round(many, 2),
        "throughput: ratio": round(many / one, 2),
        "pace per SIM (parts per second)": THROUGHPUT_PACE,
        "send_sms automatic choice: warm AWS calls": (auto.get("warm") or {}).get("calls"),
        "  of them": ", ".join((auto.get("warm") or {}).get("by_op", {})),
        "send_sms automatic choice: cold AWS calls": (auto.get("cold") or {}).get("calls"),
    }


@click.command(help=__doc__)
@click.option("--quick", is_flag=True, help="One failover trial, smaller bursts.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--grace", default=10, show_default=True,
              help="SMSGW_POOL_GRACE_SECONDS for the run (production default: 60).")
@click.option("--trials", type=int, default=None, help="Failover trials (default 3, quick 1).")
@click.option("--phones", default=3, show_default=True, help="Pool size for throughput.")
def main(quick, as_json, grace, trials, phones):
    figures = measure(quick, grace, trials, phones)
    if as_json:
        click.echo(json.dumps(figures))
        return
    for name, value in figures.items():
        click.echo(f"{name:45} {value}")


if __name__ == "__main__":
    main()
