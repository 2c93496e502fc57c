"""Soak run: many messages through the real local stack under faults, then proof that every one
ended in a final state and no SMS was sent twice.

    python bench/soak.py --messages 1000 [--seed 7] [--keep DIR]

What runs: `local_gateway.py --no-agent --devices 3` as a subprocess (moto server + the Chalice
app + the scheduled sweeps every second, 2 s leases), one `smsgw-agent` subprocess per device
(simulator backend: random send failures, delivery receipts after a short delay, a ledger file
of every SMS it "sent", its own SQLite journal), and a fourth device that never polls.

Faults, while the messages are sent:
- agent crashes: SIGKILL at random moments, and restarts with `--crash-after take|backend|send`
  (the agent exits right after leasing a job / after the SMS left but before its journal
  recorded it / after recording it, before reporting); every agent is restarted with the same
  journal and ledger;
- duplicate SQS deliveries: copies of real job bodies (rebuilt from the stored message) put on
  the device's queue, for messages in flight and for settled ones;
- expired leases: a "silent phone" polls jobs with a device's token and never reports, so the
  lease lapses, the sweep releases the message and the real agent gets it again;
- expiry: messages for the offline device with an 8 s validity (SMSGW_MIN_VALIDITY_SECONDS=5):
  requeued once by the outbox sweep, then expired by it.

Webhooks (issue 11): a receiver on 127.0.0.1 (bench/webhook_receiver.py) is subscribed to the
sms.* events with the admin CLI and answers 500 to a fifth of the requests at random; at the end
every message's final state must have produced an event the receiver saw (signature verified),
and the last of a message's events by `sequence` must be its final state.

Then it waits (bounded) until nothing is pending or processing, reads every message back through
`get_history` / `check_status`, the agents' ledgers and the messages table, and checks: final
state (a `failed` or `expired` one has a reason), each message in at most one ledger entry and
on its own device's ledger with its number and text, `sent`/`delivered` sent exactly once,
device failures and expiries not sent at all (a failure whose outcome was unknown, e.g. the
agent died mid-send, may have been sent once), and nothing left in the sweeps' open index. A
message may stay `sent` only when its agent was killed between the send and the delivery
receipt (a real phone loses that receipt too); those are counted apart.

`--pool` (issue 10, docs/pool.md): sends name no device, so the gateway chooses and fails over
(but for PACED_NAMED sends to the paced phone); four agent phones (one paced low through the
admin CLI, its per-SIM gaps checked), an SMSGate
app phone (bench/smsgate_app.py, killed and restarted like the agents) and a phone that
heartbeats but never polls; the checks follow each message to the device it ended on.

`run(...)` is what tests/e2e/test_soak.py calls at a reduced size; it returns the figures and the
list of problems found (empty when everything held).
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import click
import requests

ROOT = Path(__file__).resolve().parent.parent
LEASE_SECONDS = 2
MIN_VALIDITY = 5
GRACE = 3  # a pending message is queued again after 3 s, then 6 s, ...
OFFLINE_VALIDITY = 8  # messages for the offline device: requeued once, then expired
DELIVERY_DELAY = 0.3
# A `sent` message is explained by a crash if its agent was killed this soon after the send.
RECEIPT_WINDOW = DELIVERY_DELAY + 5.0
AGENT_REASONS = ("Simulated send failure.", "Expired before the device could send it.")
# Failures whose SMS may have left once: the agent died mid-send (it reports failed rather than
# risk a second SMS), or its leases ran out MAX_ATTEMPTS times before any outcome came back.
UNKNOWN_OUTCOME = ("The agent stopped while sending", "The device took it ")
HEARTBEAT_WINDOW = 6
LONG_OUTAGE = HEARTBEAT_WINDOW + 4.0
GATEWAY_ENV = {
    "SMSGW_LEASE_SECONDS": str(LEASE_SECONDS), "SMSGW_OUTBOX_GRACE_SECONDS": str(GRACE),
    "SMSGW_LOCAL_SCHEDULE_CAP_SECONDS": "1", "SMSGW_MIN_VALIDITY_SECONDS": str(MIN_VALIDITY),
    "SMSGW_HEARTBEAT_WINDOW_SECONDS": str(HEARTBEAT_WINDOW), "SMSGW_AUTH_CACHE_SECONDS": "300",
    "SMSGW_WEBHOOK_RETRY_SCALE": "0.001",  # retries after 1 s, 1 s, 1 s, 1 s, 2 s, 4 s...
    "SMSGW_DEFAULT_PACE_PER_HOUR": "0",  # the pool mode paces one phone itself
    "SMSGW_PACE_WINDOW_PARTS": "0",
    "SMSGW_FIRST_LOOK_SECONDS": "2",  # the sweeps read new messages 2 s old (60 s deployed)
}
WEBHOOK_FAIL_RATE = 0.2
WEBHOOK_SETTLE_SECONDS = 90


# --pool (issue 10): four agent phones and a fifth that heartbeats but never polls, all sends
# without a named device; one phone paced low through the admin CLI.
POOL_ENV = {"SMSGW_POOL_GRACE_SECONDS": "2", "SMSGW_POOL_CACHE_SECONDS": "1",
            "SMSGW_PACE_RATE_SECONDS": "4",  # a SIM rate per 4 s, so pacing shows in seconds
            "SMSGW_SIM_PAUSE_SERVICE_SECONDS": "4"}
POOL_PACE_PER_HOUR = 2  # the paced phone: 2 parts per 4 s per SIM, 1 of them for bulk
PACED_NAMED = 4  # sends that name the paced phone (pool mode)


def _free_port() -> int:
    sys.path.insert(0, str(ROOT))
    from local_gateway import free_port
    return free_port()


class Gateway:
    def __init__(self, workdir: Path, devices: int = 3, extra_env: dict | None = None):
        self.schedule_log = workdir / "schedules.jsonl"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and not k.startswith("SMSGW_")}
        env.update(GATEWAY_ENV, SMSGW_LOCAL_SCHEDULE_LOG=str(self.schedule_log))
        env.update(extra_env or {})
        self.env = env
        self.log = open(workdir / "gateway.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "local_gateway.py"), "--port", str(_free_port()),
             "--json", "--no-agent", "--devices", str(devices), "--memory", "--quiet"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()  # the gateway prints it once it serves
        if not line:
            self.stop()
            raise RuntimeError(f"local gateway did not start; see {workdir / 'gateway.log'}")
        self.info = json.loads(line)
        self.url = self.info["url"]
        aws = dict(endpoint_url=self.info["aws_endpoint"], region_name="us-east-1",
                   aws_access_key_id="local", aws_secret_access_key="local")
        self.sqs = boto3.client("sqs", **aws)
        self.dynamodb = boto3.client("dynamodb", **aws)

    def api(self, session, **params) -> dict:
        return session.post(f"{self.url}/myAPI.php", timeout=60,
                            data={"api_key": self.info["api_key"], **params}).json()

    def admin(self, *args) -> str:
        """Run the admin CLI (cli.py) against this gateway's emulated AWS."""
        env = {**self.env, "AWS_ENDPOINT_URL": self.info["aws_endpoint"], "SMSGW_STAGE": "local",
               "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
               "AWS_DEFAULT_REGION": "us-east-1"}
        return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=True, timeout=60).stdout

    def heartbeats(self, token: str, stop: threading.Event, every: float = 1.0):
        """A phone whose app says it is running but never polls for jobs (in a thread)."""
        def beat():
            session = requests.Session()
            while not stop.is_set():
                try:
                    session.post(f"{self.url}/device/heartbeat", timeout=10,
                                 json={"app_state": "running"},
                                 headers={"Authorization": f"Bearer {token}"})
                except requests.RequestException:
                    pass
                stop.wait(every)
        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        return thread

    def schedule_runs(self) -> list:
        if not self.schedule_log.exists():
            return []
        return [json.loads(line) for line in self.schedule_log.read_text().splitlines() if line]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.log.close()


class AgentSlot:
    """One simulated phone: an smsgw-agent subprocess, restarted with the same journal/ledger."""

    def __init__(self, gateway: Gateway, device: dict, workdir: Path, failure_rate: float):
        self.device = device
        self.dir = workdir / f"agent-{device['device_uid']}"
        self.dir.mkdir()
        self.ledger = self.dir / "ledger.jsonl"
        self.gateway, self.failure_rate = gateway, failure_rate
        self.proc = None
        self.mode = None
        self.kills = []  # wall-clock times this agent was killed or crashed
        self.exits = Counter()  # crash-after mode -> times the agent took that exit
        self.log = open(self.dir / "agent.log", "a")

    def start(self, crash_after: str | None = None):
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")},
               "PYTHONPATH": str(ROOT / "agent")}
        extra = ["--crash-after", crash_after] if crash_after else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smsgw_agent", "--url", self.gateway.url, "--token",
             self.device["device_token"], "--backend", "simulator", "--journal",
             str(self.dir / "journal.sqlite3"), "--ledger", str(self.ledger), "--poll-wait", "1",
             "--delivery-delay", str(DELIVERY_DELAY), "--failure-rate", str(self.failure_rate),
             *extra], env=env, stdout=self.log, stderr=self.log)
        self.mode = crash_after

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reap(self) -> bool:
        """True (and counted) if the agent exited by itself (a --crash-after exit)."""
        if self.proc is None or self.running():
            return False
        if self.proc.returncode == 3:
            self.kills.append(time.time())
            self.exits[self.mode] += 1
        self.proc = None
        return True

    def kill(self):
        if self.running():
            self.proc.kill()
            self.proc.wait(15)
            self.kills.append(time.time())
            self.exits["sigkill"] += 1
        self.proc = None

    def stop(self):
        """A normal stop (SIGINT): flushes reports and says `stopped`. Killed if it hangs."""
        if self.running():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.proc = None

    def entries(self) -> list:
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines()
                if line.strip()]


class AppSlot:
    """Pool mode's SMSGate app phone (bench/smsgate_app.py), seen by the soak as one more slot:
    paired with the admin CLI's private token, killed and restarted like an agent (the app keeps
    its own database, so it finishes what it had taken). Its reconnect gap is scaled to
    APP_RECONNECT_SCALE of the app's 5 s, to stay inside the soak's 2 s pool grace."""

    def __init__(self, gateway: Gateway):
        from bench.smsgate_app import SmsgateApp
        pairing = json.loads(gateway.admin("device", "app-token", gateway.info["account_id"],
                                           "--url", gateway.url, "--json"))
        self.app = SmsgateApp(pairing["server_url"], pairing["private_token"],
                              reconnect_scale=APP_RECONNECT_SCALE)
        registration = self.app.register()
        self.device = {"device_uid": registration["id"], "device_token": registration["token"]}
        self.mode = None
        self.kills = []
        self.exits = Counter()
        self.log = open(os.devnull, "w")

    def start(self, crash_after: str | None = None):
        self.app.start()

    def running(self) -> bool:
        return bool(self.app.thread and self.app.thread.is_alive()
                    and not self.app.stop_event.is_set())

    def reap(self) -> bool:
        return False

    def kill(self):
        if self.running():
            self.app.kill()
            self.app.join()
            self.kills.append(time.time())
            self.exits["sigkill"] += 1

    def stop(self):
        self.app.kill()
        self.app.join()

    def entries(self) -> list:
        with self.app.lock:
            return list(self.app.ledger)


APP_RECONNECT_SCALE = 0.2


def _phone(rng: random.Random) -> str:
    return f"+8801{rng.choice('3456789')}{rng.randrange(10 ** 8):08d}"


def _text(rng: random.Random, n: int) -> str:
    words = ["soak", "message", "ünïcode" if rng.random() < 0.2 else "plain", str(n),
             rng.choice(["Hello", "Your order shipped", "কোড", "OK"]), f"{rng.random():.6f}"]
    return " ".join(words)


class Soak:
    def __init__(self, messages: int, seed: int, workdir: Path, failure_rate: float,
                 send_seconds: float, fault_seconds: float, settle_seconds: float,
                 offline_share: float = 0.05, pool: bool = False):
        self.pool = pool
        if pool:
            offline_share = 0.0  # the pool routes around a phone that is off
        self.count, self.workdir = messages, workdir
        self.rng = random.Random(seed)
        self.failure_rate = failure_rate
        self.send_seconds, self.fault_seconds = send_seconds, fault_seconds
        self.settle_seconds = settle_seconds
        self.offline_share = offline_share
        self.accepted = {}  # message_id -> dict(device_uid, phone_number, message, sim_slot, ...)
        self.send_errors = []
        self.faults = Counter()
        self.stolen = set()  # message ids leased by the silent poller and never reported
        self._lock = threading.Lock()
        self._sending_done = threading.Event()
        self.problems = []
        self.sending_took = 0.0
        self.receipt_gaps = []  # send -> kill seconds of the `sent` messages whose receipt was lost

    # sending
    def _plan(self):
        devices = [d["device_uid"] for d in self.gateway.info["devices"]]
        plan = []
        for n in range(self.count):
            offline = self.rng.random() < self.offline_share
            if self.pool:  # the gateway chooses device and SIM, but for a few named sends
                # to the paced phone: under load the choice may pass over it for a whole run,
                # and its pace must be seen kept (named sends are paced the same way)
                step = max(1, self.count // PACED_NAMED)
                named = devices[-1] if n % step == 1 else None
                plan.append({"n": n, "device_uid": named, "sim_slot": 1 + n // step % 2
                             if named else None, "valid_for": None,
                             "phone_number": _phone(self.rng), "message": _text(self.rng, n),
                             "key": f"soak-{n}-{self.rng.randrange(10 ** 9)}"
                             if self.rng.random() < 0.2 else None})
                continue
            plan.append({"n": n, "device_uid": self.gateway.info["device_uid"] if offline
                         else self.rng.choice(devices), "phone_number": _phone(self.rng),
                         "message": _text(self.rng, n), "sim_slot": self.rng.choice([1, 2]),
                         "valid_for": OFFLINE_VALIDITY if offline else None,
                         # some with an idempotency key (moto copies a whole table per
                         # transaction, which slows a big run down)
                         "key": f"soak-{n}-{self.rng.randrange(10 ** 9)}"
                         if self.rng.random() < 0.2 else None})
        return plan

    def _send_one(self, session, item):
        params = {"action": "send_sms", "phone_number": item["phone_number"],
                  "message": item["message"]}
        if item["device_uid"]:
            params.update(device_uid=item["device_uid"], sim_slot=str(item["sim_slot"]))
        if item["key"]:
            params["idempotency_key"] = item["key"]
        if item["valid_for"]:
            params["valid_for"] = str(item["valid_for"])
        last = None
        for _ in range(5):
            # An error envelope changed nothing, so a retry is safe; after a lost answer only a
            # send with an idempotency key may be retried (else it could be accepted twice).
            try:
                answer = self.gateway.api(session, **params)
            except (requests.RequestException, ValueError) as exc:
                last = repr(exc)
                if not item["key"]:
                    break
                time.sleep(0.5)
                continue
            if answer.get("status") == "success":
                message_id = answer["data"]["message_id"]
                with self._lock:
                    if message_id in self.accepted:
                        self.problems.append(f"message id {message_id} returned for two sends")
                    self.accepted[message_id] = {**item, "accepted_at": time.time(),
                                                 "chosen": answer["data"].get("device_uid")}
                return
            last = answer
            self.faults["send_sms error answers (retried)"] += 1
            time.sleep(0.5)
        self.send_errors.append((item["n"], last))

    def _send_all(self):
        plan = self._plan()
        start = time.monotonic()
        sessions = threading.local()

        def send(item):
            # paced so the faults overlap the whole sending period
            delay = start + self.send_seconds * item["n"] / max(1, self.count) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if not hasattr(sessions, "s"):
                sessions.s = requests.Session()
            self._send_one(sessions.s, item)
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(send, plan))
        finally:
            self.sending_took = time.monotonic() - start
            self._sending_done.set()

    # faults
    def _duplicate(self):
        with self._lock:
            if not self.accepted:
                return
            ids = list(self.accepted)  # mostly recent ones, likely still in flight
            message_id = self.rng.choice(ids[-20:] if self.rng.random() < 0.7 else ids)
        item = self.gateway.dynamodb.get_item(
            TableName="smsgw-local-messages", ConsistentRead=True,
            Key={"account_id": {"S": self.gateway.info["account_id"]},
                 "message_id": {"N": str(message_id)}}).get("Item")
        plain = {k: list(v.values())[0] for k, v in item.items()}
        job = {"message_id": message_id, "device_uid": plain["device_uid"],
               "phone_number": plain["phone_number"], "message": plain["body"],
               "sim_slot": int(plain["sim_slot"]), "expires_at": int(plain["expires_at"]),
               "kind": plain.get("kind", "sms")}  # = messages.job_payload
        queue = self.gateway.sqs.get_queue_url(
            QueueName=f"smsgw-local-device-{plain['device_uid']}")["QueueUrl"]
        self.gateway.sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(job))
        self.faults["duplicate deliveries injected"] += 1
        if plain["status"] in ("pending", "processing"):
            self.faults["duplicates of in-flight messages"] += 1

    def _steal(self, session):
        # a phone in an outage stays silent (a poll with its token is a sign of life)
        running = [slot for slot in self.slots if slot.running()]
        if not running:
            return
        slot = self.rng.choice(running)
        answer = session.get(f"{self.gateway.url}/device/jobs", params={"wait": 1, "max": 2},
                             timeout=30, headers={
                                 "Authorization": f"Bearer {slot.device['device_token']}"})
        if answer.status_code == 200:
            jobs = [j["message_id"] for j in answer.json()["jobs"]]
            self.stolen.update(jobs)
            self.faults["leases abandoned by a silent poller"] += len(jobs)

    def _enough_faults(self) -> bool:
        exits = Counter()
        for slot in self.slots:
            exits.update(slot.exits)
        return (exits["sigkill"] >= 3 and self.faults["long outages"] >= 1
                and exits["take"] >= 1 and exits["send"] >= 1 and exits["backend"] >= 1
                and self.faults["leases abandoned by a silent poller"] >= 3
                and self.faults["duplicates of in-flight messages"] >= 3)

    def _crash_mode_wanted(self) -> str | None:
        """A restart in a --crash-after mode not yet seen (one at a time, while messages are
        being sent), else a normal one."""
        done = Counter()
        for slot in self.slots:
            done.update(slot.exits)
        if self._sending_done.is_set() or any(slot.mode and slot.running()
                                              for slot in self.slots):
            return None  # (it needs jobs to arrive to take its exit)
        # (only a phone killed before its first job gets here with a mode still to see)
        return next((mode for mode in ("send", "backend", "take") if not done[mode]), None)

    def _inject(self, until: float):
        session = requests.Session()
        started = time.monotonic()
        restart_at = {}
        next_kill = started + 1.0
        while time.monotonic() < until:
            now = time.monotonic()
            # (an outage still running is not cut short: the liveness sweep must see it)
            calm = (self._sending_done.is_set() and now - started >= self.fault_seconds
                    and self._enough_faults()
                    and all(now >= t for t in restart_at.values()))
            if calm:
                break
            for slot in self.slots:
                if slot.reap():  # exited by itself (--crash-after): back with the same journal
                    restart_at[id(slot)] = now + self.rng.uniform(0.2, 1.5)
                if not slot.running() and now >= restart_at.get(id(slot), 0):
                    slot.start(self._crash_mode_wanted())
            if now >= next_kill:
                # an agent in a --crash-after mode is left to crash by itself
                victim = self.rng.choice(self.slots)
                if victim.running() and not victim.mode:
                    victim.kill()
                    outage = self.rng.uniform(0.1, 2.0)
                    if not self.faults["long outages"]:  # once: silent past the heartbeat
                        outage = LONG_OUTAGE  # window, so the liveness sweep stops the device
                        self.faults["long outages"] += 1
                    restart_at[id(victim)] = now + outage
                next_kill = now + self.rng.uniform(1.0, 3.0)
            if self.rng.random() < 0.6:
                self._duplicate()
            if self.rng.random() < 0.25:
                self._steal(session)
            time.sleep(0.2)
        for slot in self.slots:  # calm: every phone back, in normal mode
            slot.reap()
            if slot.mode and slot.running():
                slot.stop()
            if not slot.running():
                slot.start()

    # settling and checks
    def history(self) -> dict:
        session, cursor, found = requests.Session(), None, {}
        while True:
            params = {"action": "get_history", "type": "outgoing", "limit": "100"}
            if cursor:
                params["cursor"] = cursor
            answer = self.gateway.api(session, **params)
            if answer.get("status") != "success":
                raise RuntimeError(f"get_history failed: {answer}")
            for entry in answer["data"]["messages"]:
                if entry["message_id"] in found:
                    self.problems.append(f"history lists {entry['message_id']} twice")
                found[entry["message_id"]] = entry
            cursor = answer["data"]["next_cursor"]
            if not cursor:
                return found

    def ledger(self) -> dict:
        """message_id -> [(device_uid, entry)] over all the agents' ledgers."""
        sends = defaultdict(list)
        for slot in self.slots:
            for entry in slot.entries():
                sends[entry["message_id"]].append((slot.device["device_uid"], entry))
        return sends

    def _receipt_lost(self, message_id, sends) -> bool:
        """`sent` but never `delivered`: allowed only if its agent was killed after the send and
        before the receipt could be reported (the simulator keeps pending receipts in memory, as
        Android delivers them to a live app only)."""
        if len(sends.get(message_id, [])) != 1:
            return False
        device_uid, entry = sends[message_id][0]
        return self._kill_gap(device_uid, entry["at"]) is not None

    def _kill_gap(self, device_uid, at):
        """Seconds from a send at `at` to the next kill of that device's agent (within the
        receipt window), or None."""
        slot = next(s for s in self.slots if s.device["device_uid"] == device_uid)
        gaps = [kill - at for kill in slot.kills if at <= kill <= at + RECEIPT_WINDOW]
        return min(gaps) if gaps else None

    def unsettled(self, found, sends) -> list:
        return sorted(m for m in self.accepted
                      if m not in found or found[m]["status"] in ("pending", "processing")
                      or (found[m]["status"] == "sent" and not self._receipt_lost(m, sends)))

    def settle(self, deadline: float):
        left, found = [], {}
        while time.monotonic() < deadline:
            found, sends = self.history(), self.ledger()
            left = self.unsettled(found, sends)
            if not left:
                return found
            time.sleep(2.0)
        detail = {m: (found.get(m) or {}).get("status") for m in left[:50]}
        self.problems.append(f"{len(left)} messages not settled by the deadline: {detail}")
        return found

    def check(self, found: dict) -> dict:
        sends = self.ledger()
        session = requests.Session()
        states, reasons = Counter(), Counter()
        for extra in set(found) - set(self.accepted):
            self.problems.append(f"history has a message nobody sent: {extra}")
        for message_id, item in self.accepted.items():
            entry = found.get(message_id)
            if entry is None:
                self.problems.append(f"message {message_id} missing from history (lost)")
                continue
            status = entry["status"]
            if self.pool:  # where the pool finally put it (it may have moved)
                item = {**item, "device_uid": entry["device_uid"], "sim_slot": entry["sim_slot"]}
            if (entry["device_uid"], entry["phone_number"], entry["message"]) != (
                    item["device_uid"], item["phone_number"], item["message"]):
                self.problems.append(f"message {message_id} stored differently: {entry}")
            ledger = sends.get(message_id, [])
            if len(ledger) > 1:
                self.problems.append(f"message {message_id} SENT {len(ledger)} TIMES: {ledger}")
            for device_uid, sent in ledger:
                if device_uid != item["device_uid"] or (
                        sent["phone_number"], sent["message"], sent["sim_slot"]) != (
                        item["phone_number"], item["message"], item["sim_slot"]):
                    self.problems.append(f"message {message_id} sent wrongly: {sent} "
                                         f"by {device_uid}, expected {item}")
            reason = None
            if status in ("failed", "expired"):
                reason = self.gateway.api(session, action="check_status",
                                          message_id=str(message_id))["data"]["failed_reason"]
                if not reason:
                    self.problems.append(f"message {message_id} is {status} without a reason")
                reasons[f"{status}: {(reason or '')[:60]}"] += 1
            if status == "sent" and self._receipt_lost(message_id, sends):
                states["sent (receipt lost in a crash)"] += 1
                self.receipt_gaps.append(self._kill_gap(*ledger[0][0:1], ledger[0][1]["at"]))
                continue
            states[status] += 1
            if status not in ("delivered", "failed", "expired"):
                self.problems.append(f"message {message_id} ended {status}")
            elif status == "delivered" and len(ledger) != 1:
                self.problems.append(f"message {message_id} delivered but sent {len(ledger)} "
                                     "times")
            elif status == "expired" and ledger:
                self.problems.append(f"message {message_id} expired but was sent")
            elif status == "failed" and ledger:
                if (reason or "").startswith(UNKNOWN_OUTCOME):
                    self.faults["failed with an unknown outcome, in a ledger"] += 1
                else:  # a device error: it must not have been sent
                    self.problems.append(f"message {message_id} failed ({reason}) but was sent")
            if item["valid_for"] and status != "expired":
                self.problems.append(f"message {message_id} for the offline device ended "
                                     f"{status}")
        for message_id in set(sends) - set(self.accepted):
            self.problems.append(f"a ledger sent an unknown message {message_id}")
        table = self._table()
        if self.pool:
            self._check_pool(table, sends)
        left_open = [m for m, item in table.items() if "open_shard" in item]
        if left_open:
            self.problems.append(f"{len(left_open)} final messages left in the open index: "
                                 f"{left_open[:20]}")
        return {"states": states, "reasons": reasons, "sends": sends, "table": table}

    def _check_pool(self, table: dict, sends: dict) -> None:
        """Pool mode: moved messages counted; the paced phone kept its pace on each SIM."""
        self.faults["moved by failover"] = sum(
            1 for m, item in table.items() if m in self.accepted and "moves" in item)
        self.faults["chosen for the never-polling phone"] = sum(
            1 for item in self.accepted.values() if item["chosen"] == self.silent_uid)
        paced_uid = self.slots[-1].device["device_uid"]
        # one bulk part per closed 4 s window (hand-outs 5 s apart); the phone's sends follow
        # within a second or two, so never more than the SIM's rate (2) in any 4 s
        period = int(POOL_ENV["SMSGW_PACE_RATE_SECONDS"])
        for sim in (1, 2):
            times = sorted(entry["at"] for entries in sends.values()
                           for uid, entry in entries if uid == paced_uid
                           and entry["sim_slot"] == sim)
            self.faults["paced phone sends"] += len(times)
            most = max([0] + [sum(1 for t in times if a <= t <= a + period) for a in times])
            if most > POOL_PACE_PER_HOUR:
                self.problems.append(f"paced phone sent {most} in {period} s on SIM {sim} "
                                     f"(its rate: {POOL_PACE_PER_HOUR})")
        if not self.faults["moved by failover"]:
            self.problems.append("pool mode: no message was moved by failover")

    def _table(self) -> dict:
        items, start = {}, None
        while True:
            page = self.gateway.dynamodb.scan(TableName="smsgw-local-messages",
                                              **({"ExclusiveStartKey": start} if start else {}))
            for item in page["Items"]:
                items[int(item["message_id"]["N"])] = item
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def add_receiver(self):
        """A webhook receiver for the demo account, added with the admin CLI."""
        from bench.webhook_receiver import Receiver
        self.receiver = Receiver(fail_rate=WEBHOOK_FAIL_RATE, seed=self.rng.randrange(10 ** 6))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMSGW_"))}
        env.update({"AWS_ENDPOINT_URL": self.gateway.info["aws_endpoint"],
                    "SMSGW_STAGE": "local", "AWS_ACCESS_KEY_ID": "local",
                    "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"})
        out = subprocess.run([sys.executable, "cli.py", "webhook", "add",
                              self.gateway.info["account_id"], self.receiver.url, "--events",
                              "sms.sent,sms.delivered,sms.failed,sms.expired", "--json"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                             check=True)
        self.receiver.secrets.append(json.loads(out.stdout)["secret"])

    def check_webhooks(self, found: dict) -> dict:
        """Every final state has its event at the receiver, and it is the message's last."""
        def finals():
            return {m: found[m]["status"] for m in self.accepted if m in found}

        def missing(receiver):
            latest = {}
            for event in receiver.events.values():
                mid = event["data"]["message_id"]
                if mid not in latest or event["sequence"] > latest[mid]["sequence"]:
                    latest[mid] = event
            return {m: status for m, status in finals().items()
                    if (latest.get(m) or {}).get("data", {}).get("status") != status}
        self.receiver.wait_for(lambda r: not missing(r), WEBHOOK_SETTLE_SECONDS)
        with self.receiver.lock:
            left = missing(self.receiver)
            if left:
                sample = dict(list(left.items())[:20])
                self.problems.append(f"{len(left)} final states without their webhook event "
                                     f"(as the last by sequence): {sample}")
            unknown = {e["data"]["message_id"] for e in self.receiver.events.values()} - set(
                self.accepted)
            if unknown:
                self.problems.append(f"webhook events for unknown messages: {sorted(unknown)}")
            if self.receiver.bad_signatures:
                self.problems.append(f"{self.receiver.bad_signatures} webhook requests with a "
                                     "bad signature")
            return {"events": len(self.receiver.events),
                    "requests": len(self.receiver.requests),
                    "refused (500)": sum(1 for *_, st in self.receiver.requests if st == 500),
                    "repeated ids (deduped)": sum(n - 1 for n in
                                                  self.receiver.arrivals.values())}

    def run(self) -> dict:
        began = time.monotonic()
        self.gateway = Gateway(self.workdir, devices=4 if self.pool else 3,
                               extra_env=POOL_ENV if self.pool else None)
        self.slots = []
        self.receiver = None
        beats = threading.Event()
        try:
            self.add_receiver()
            self.slots = [AgentSlot(self.gateway, device, self.workdir, self.failure_rate)
                          for device in self.gateway.info["devices"]]
            modes = ("send", "backend", "take")
            if self.pool:
                info = self.gateway.info
                self.gateway.admin("device", "pace", info["account_id"],
                                   self.slots[-1].device["device_uid"], str(POOL_PACE_PER_HOUR))
                self.silent_uid = info["device_uid"]
                self.gateway.heartbeats(info["device_token"], beats)
                modes += (None,)
            # each phone starts in one --crash-after mode: it exits on its first job
            for slot, mode in zip(self.slots, modes, strict=True):
                slot.start(mode)
            if self.pool:  # an SMSGate app phone too (docs/android-app.md)
                self.slots.insert(0, AppSlot(self.gateway))
                self.slots[0].start()
            sender = threading.Thread(target=self._send_all, daemon=True)
            sender.start()
            self._inject(until=time.monotonic() + self.send_seconds + self.fault_seconds + 60)
            sender.join(self.send_seconds + 120)
            if sender.is_alive():
                self.problems.append("sending did not finish")
            sent_at = time.monotonic()
            found = self.settle(deadline=time.monotonic() + self.settle_seconds)
            settled_in = time.monotonic() - sent_at
            for slot in self.slots:
                slot.stop()
            result = self.check(found)
            result["webhooks"] = self.check_webhooks(found)
            return self.figures(result, time.monotonic() - began, settled_in)
        finally:
            if self.receiver is not None:
                self.receiver.close()
            beats.set()
            for slot in self.slots:
                slot.kill()
                slot.log.close()
            self.gateway.stop()

    def figures(self, result, wall, settled_in) -> dict:
        sends, table = result["sends"], result["table"]
        runs = self.gateway.schedule_runs()
        sweep = Counter()
        for run in runs:
            if run["schedule"] == "settle_messages" and isinstance(run["result"], dict):
                sweep.update({k: v for k, v in run["result"].items() if isinstance(v, int)})
        exits = Counter()
        for slot in self.slots:
            exits.update(slot.exits)
        attempts = sum(int(item.get("attempts", {}).get("N", 0)) for item in table.values())
        reported = sum(1 for m, item in table.items() if m in self.accepted and (
            item["status"]["S"] in ("sent", "delivered") or (
                item["status"]["S"] == "failed" and any(
                    item.get("reason", {}).get("S", "").startswith(r)
                    for r in (*AGENT_REASONS, UNKNOWN_OUTCOME[0])))))
        return {
            "messages accepted": len(self.accepted),
            "send_sms errors (not accepted)": len(self.send_errors),
            "send_sms error answers (retried)": self.faults["send_sms error answers (retried)"],
            "sending took (s)": round(self.sending_took, 1),
            "final states": dict(sorted(result["states"].items())),
            "failure reasons": dict(sorted(result["reasons"].items())),
            "sends per ledger": {s.device["device_uid"]: len(s.entries()) for s in self.slots},
            "app phone sends": sum(len(s.entries()) for s in self.slots
                                   if isinstance(s, AppSlot)),
            "failed with an unknown outcome yet sent once (at most once)": self.faults[
                "failed with an unknown outcome, in a ledger"],
            "duplicates found (a message in ledgers more than once)": sum(
                1 for entries in sends.values() if len(entries) > 1),
            "crashes injected": {"total": sum(exits.values()), **dict(exits)},
            "agent outages longer than the heartbeat window": self.faults["long outages"],
            "duplicate deliveries injected": self.faults["duplicate deliveries injected"],
            "  of them for in-flight messages": self.faults["duplicates of in-flight messages"],
            "leases abandoned by a silent poller": self.faults[
                "leases abandoned by a silent poller"],
            "leases taken in all": attempts,
            "leases expired (taken, no outcome reported in time)": attempts - reported,
            "sweep runs": sum(1 for r in runs if r["schedule"] == "settle_messages"),
            "sweep actions": dict(sorted(sweep.items())),
            "stop_silent runs / devices stopped": (
                sum(1 for r in runs if r["schedule"] == "stop_silent_devices"),
                sum(r["result"].get("stopped", 0) for r in runs
                    if r["schedule"] == "stop_silent_devices" and isinstance(r["result"], dict))),
            "sweep errors": sum(1 for r in runs if isinstance(r["result"], dict)
                                and "error" in r["result"]),
            "receipt lost: longest send->kill gap (s)": round(max(self.receipt_gaps, default=0),
                                                              2),
            "webhooks: events received / requests / refused (500) / repeated ids": tuple(
                result["webhooks"].values()),
            "settled after sending (s)": round(settled_in, 1),
            "wall time (s)": round(wall, 1),
            **({"moved by failover": self.faults["moved by failover"],
                "chosen for the never-polling phone": self.faults[
                    "chosen for the never-polling phone"],
                "paced phone sends": self.faults["paced phone sends"]} if self.pool else {}),
            "problems": list(self.problems),
        }


def run(messages: int = 150, seed: int = 1, workdir: str | None = None,
        failure_rate: float = 0.1, send_seconds: float | None = None,
        fault_seconds: float = 8.0, settle_seconds: float = 120.0, pool: bool = False) -> dict:
    """One soak run; returns its figures (figures['problems'] empty when all checks held)."""
    own = workdir is None
    path = Path(workdir or tempfile.mkdtemp(prefix="smsgw-soak-"))
    path.mkdir(parents=True, exist_ok=True)
    if send_seconds is None:
        send_seconds = max(10.0, messages / 40)
    try:
        return Soak(messages, seed, path, failure_rate, send_seconds, fault_seconds,
                    settle_seconds, pool=pool).run()
    finally:
        if own:
            shutil.rmtree(path, ignore_errors=True)


@click.command()
@click.option("--messages", default=1000, show_default=True)
@click.option("--seed", default=1, show_default=True)
@click.option("--failure-rate", default=0.1, show_default=True)
@click.option("--send-seconds", type=float, default=None,
              help="Spread the sends over this long (default: messages/40, at least 10).")
@click.option("--settle-seconds", default=300.0, show_default=True,
              help="Deadline for every message to reach a final state after sending.")
@click.option("--keep", type=click.Path(file_okay=False), default=None,
              help="Keep the logs, journals and ledgers in this directory.")
@click.option("--pool", is_flag=True,
              help="Phones as a pool: sends name no device; 4 agents (one paced low) and a "
                   "phone that heartbeats but never polls.")
def main(messages, seed, failure_rate, send_seconds, settle_seconds, keep, pool):
    """Soak the local stack with faults and check nothing was lost or sent twice."""
    figures = run(messages, seed, keep, failure_rate, send_seconds,
                  settle_seconds=settle_seconds, pool=pool)
    problems = figures.pop("problems")
    for name, value in figures.items():
        click.echo(f"{name:55} {value}")
    click.echo(f"{'problems':55} {len(problems)}")
    for problem in problems[:50]:
        click.echo(f"  - {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
