"""The rehearsal's smoke journey (deploy/rehearse): what an owner does first with a new stage,
over its real URL, each step a row of the report.

It is written against a base URL and an AWS endpoint, so it runs the same against a deployed
stage (endpoint None: AWS itself) and against the local gateway (moto's server), which is how
tests/e2e/test_rehearse_e2e.py proves it. Accounts, keys, phones and the webhook endpoint are made
with the admin CLI (cli.py, SMSGW_STAGE set: it writes the stage's tables and queues with the
caller's credentials, docs/admin-cli.md); everything else goes through the gateway's URL. The
phones are the device agent (agent/) with its simulator backend, as subprocesses in direct mode:
each waits on its own SQS queue with credentials the gateway vends, so a delivered message proves
the device role and the vending too, and a phone can be killed for real (SIGKILL)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from rehearse_report import SKIPPED, Report, StepFailed

ROOT = Path(__file__).resolve().parent.parent
NUMBER = "+8801712345678"  # never dialled: the phones are simulated


@dataclass
class Target:
    url: str  # the gateway's base URL
    stage: str
    region: str
    aws_endpoint: str | None = None  # an emulator; None: AWS
    doors: dict = field(default_factory=dict)  # other front doors: output name -> base URL


@dataclass
class Timeouts:  # seconds; deployed stages sweep every minute after a 60 s grace
    online: float = 90
    delivered: float = 120
    webhook: float = 120
    failover: float = 360


def aws_env(target: Target) -> dict:
    """The environment of the admin CLI and of boto3 calls for this stage."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SMSGW_") and k != "AWS_ENDPOINT_URL"}
    env.update(SMSGW_STAGE=target.stage, AWS_DEFAULT_REGION=target.region,
               AWS_REGION=target.region, PYTHONUNBUFFERED="1")
    if target.aws_endpoint:
        env.update(AWS_ENDPOINT_URL=target.aws_endpoint, AWS_ACCESS_KEY_ID="local",
                   AWS_SECRET_ACCESS_KEY="local")
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
    return env


class Phone:
    """A simulated phone: `python -m smsgw_agent --mode direct --backend simulator`."""

    def __init__(self, name: str, device: dict, url: str, workdir: Path):
        self.name, self.device = name, device
        self.ledger = workdir / f"{name}-ledger.jsonl"
        self.log_path = workdir / f"{name}-agent.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSGW_", "AWS_"))}
        env["PYTHONPATH"] = str(ROOT / "agent")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smsgw_agent", "-v", "--url", url, "--token",
             device["device_token"], "--mode", "direct", "--backend", "simulator",
             "--journal", str(workdir / f"{name}-journal.sqlite3"), "--ledger",
             str(self.ledger), "--poll-wait", "10", "--delivery-delay", "1"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def polls_directly(self) -> bool:
        return "direct polling credentials" in self.log_path.read_text()

    def sent(self, message_id) -> dict | None:
        if not self.ledger.exists():
            return None
        for line in self.ledger.read_text().splitlines():
            entry = json.loads(line)
            if str(entry.get("message_id")) == str(message_id):
                return entry
        return None

    def tail(self) -> str:
        lines = self.log_path.read_text().strip().splitlines()
        return lines[-1][:200] if lines else "no output"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def wait_for(predicate, seconds: float, what: str, every: float = 1.0):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StepFailed(f"{what}: not within {seconds:.0f} s")
        time.sleep(every)


class Journey:
    """run(report): the journey's rows; its account's phones and webhook are removed at the
    end, whatever happened (the stage's teardown removes the rest)."""

    def __init__(self, target: Target, receiver_factory, timeouts: Timeouts | None = None):
        self.target, self.timeouts = target, timeouts or Timeouts()
        self.receiver_factory = receiver_factory  # (cli) -> receiver, or a str: why skipped
        self.receiver = None
        self.url = target.url.rstrip("/")
        self.env = aws_env(target)
        self.http = requests.Session()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"smsgw-rehearse-{target.stage}-"))
        self.phones: list[Phone] = []
        self.account_id = self.api_key = self.webhook = None
        self.message_id = self.code = None
        self.receiver_note = "no receiver"

    # the surfaces
    def cli(self, *args):
        done = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT,
                              env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise StepFailed(f"smsgw {' '.join(args[:2])}: "
                             f"{(done.stderr or done.stdout).strip()[-300:]}")
        return json.loads(done.stdout) if "--json" in args else done.stdout

    def api(self, action: str, url: str | None = None, **params) -> dict:
        answer = self.http.post(f"{(url or self.url).rstrip('/')}/myAPI.php", timeout=60,
                                data={"api_key": self.api_key, "action": action, **params})
        try:
            return answer.json()
        except ValueError:
            raise StepFailed(f"{action}: HTTP {answer.status_code}, not JSON: "
                             f"{answer.text[:200]!r}")

    def ok(self, action: str, **params) -> dict:
        answer = self.api(action, **params)
        if answer.get("status") != "success":
            raise StepFailed(f"{action}: {answer.get('message') or answer}")
        return answer.get("data")

    def status(self, message_id) -> dict:
        return self.ok("check_status", message_id=str(message_id))

    # the journey
    def run(self, report: Report) -> None:
        steps = [("account, API key and webhook endpoint (admin CLI)", self.account),
                 ("two phones polling their own queues (direct mode)", self.online),
                 ("send_sms -> delivered", self.delivered),
                 ("OTP verified once", self.otp),
                 ("OTP verified twice: refused", self.otp_again),
                 ("webhook sms.delivered received, signature valid", self.webhook_received),
                 ("phone killed: the sweep moves its message to the other", self.failover)]
        if self.target.doors:
            steps.append(("other front doors answer", self.doors))
        try:
            needed_ok = True
            for name, step in steps:
                if not needed_ok:
                    report.skip(name, "not run: an earlier step it needs failed")
                    continue
                with report.step(name) as note:
                    note.detail = step() or ""
                    if note.detail.startswith("skipped: "):
                        note.result, note.detail = SKIPPED, note.detail[len("skipped: "):]
                if note.failed and step in (self.account, self.online, self.delivered):
                    needed_ok = False
        finally:
            self.cleanup()
            if report.passed:
                shutil.rmtree(self.workdir, ignore_errors=True)
            else:
                print(f"  the phones' logs and ledgers are kept in {self.workdir}",
                      file=report.out)

    def account(self) -> str:
        made = self.cli("account", "create", f"rehearsal {self.target.stage}", "--json")
        self.account_id = made["account_id"]
        self.api_key = self.cli("key", "create", self.account_id, "--label", "rehearsal",
                                "--json")["api_key"]
        receiver = self.receiver_factory(self.cli)
        if isinstance(receiver, str):
            self.receiver_note = receiver
        else:  # before the first API call, so no container caches the account without it
            self.receiver = receiver
            self.webhook = self.cli("webhook", "add", self.account_id, receiver.url,
                                    "--events", "sms.delivered", "--json")
            if hasattr(receiver, "account_id"):
                receiver.account_id, receiver.webhook_id = self.account_id, \
                    self.webhook["webhook_id"]
        self.ok("device_status")
        return f"account {self.account_id}" + (f", webhook to {self.receiver.url}"
                                               if self.receiver else "")

    def online(self) -> str:
        for name in ("phone-a", "phone-b"):
            device = self.cli("device", "register", self.account_id, name, "--sims", "1",
                              "--json")
            # no pacing: the journey's few messages go at once (the pool's pace is not tested)
            self.cli("device", "pace", self.account_id, device["device_uid"], "36000",
                     "--window", "none")
            self.phones.append(Phone(name, device, self.url, self.workdir))

        def running():
            found = {d["device_uid"]: d["status"] for d in self.ok("device_status")}
            return all(found.get(p.device["device_uid"]) == "running" for p in self.phones)
        try:
            wait_for(running, self.timeouts.online, "both phones running")
        except StepFailed as failed:
            raise StepFailed(f"{failed}; {'; '.join(p.tail() for p in self.phones)}")
        return "both running: " + ", ".join(p.device["device_uid"] for p in self.phones)

    def _delivered(self, message_id, seconds: float, what: str) -> dict:
        last = {}

        def done():
            last.update(self.status(message_id))
            if last.get("status") in ("failed", "expired"):
                raise StepFailed(f"{what}: {last['status']}: {last.get('failed_reason')}")
            return last.get("status") == "delivered"
        try:
            wait_for(done, seconds, what)
        except StepFailed as failed:
            raise StepFailed(f"{failed} (last: {last.get('status')} on "
                             f"{last.get('device_uid')})")
        return last

    def delivered(self) -> str:
        phone = self.phones[0]
        sent = self.ok("send_sms", device_uid=phone.device["device_uid"], phone_number=NUMBER,
                       message=f"rehearsal {self.target.stage}")
        self.message_id = sent["message_id"]
        self._delivered(self.message_id, self.timeouts.delivered, "delivered")
        if not phone.polls_directly():
            raise StepFailed(f"{phone.name} did not poll its queue directly: {phone.tail()}")
        return f"message {self.message_id} by {phone.name}"

    def otp(self) -> str:
        phone = self.phones[0]
        sent = self.ok("send_otp", device_uid=phone.device["device_uid"], phone_number=NUMBER)
        entry = wait_for(lambda: phone.sent(sent["message_id"]), self.timeouts.delivered,
                         f"{phone.name} to send the OTP")
        self.code = re.search(r"\b(\d{4,10})\b", entry["message"]).group(1)
        answer = self.api("verify_otp", phone_number=NUMBER, otp_code=self.code)
        if answer.get("status") != "success":
            raise StepFailed(f"verify_otp: {answer.get('message')}")
        return f"{answer.get('message')} (message {sent['message_id']})"

    def otp_again(self) -> str:
        if not self.code:
            raise StepFailed("no code to try again: the OTP step failed")
        answer = self.api("verify_otp", phone_number=NUMBER, otp_code=self.code)
        if answer.get("status") != "error":
            raise StepFailed(f"the same code verified again: {answer}")
        return answer.get("message", "")

    def webhook_received(self) -> str:
        if self.receiver is None:
            return f"skipped: {self.receiver_note}"
        started = time.monotonic()
        try:
            event = self.receiver.wait(self.webhook["secret"], "sms.delivered",
                                       self.message_id, self.timeouts.webhook)
        except ValueError as error:
            raise StepFailed(str(error))
        return f"event {event.get('id') or event.get('event_id')} after " \
               f"{time.monotonic() - started:.1f} s more"

    def failover(self) -> str:
        dead, alive = self.phones
        dead.kill()
        sent = self.ok("send_sms", device_uid=dead.device["device_uid"], failover="1",
                       phone_number=NUMBER, message=f"rehearsal {self.target.stage} failover")
        final = self._delivered(sent["message_id"], self.timeouts.failover, "moved and delivered")
        if final.get("device_uid") != alive.device["device_uid"] or not alive.sent(
                sent["message_id"]) or dead.sent(sent["message_id"]):
            raise StepFailed(f"delivered on {final.get('device_uid')}, not moved to "
                             f"{alive.name}")
        return f"message {sent['message_id']} moved from {dead.name} to {alive.name}"

    def doors(self) -> str:
        answered = []
        for name, url in self.target.doors.items():
            answer = self.api("device_status", url=url)
            if answer.get("status") != "success":
                raise StepFailed(f"{name} ({url}): {answer.get('message') or answer}")
            answered.append(name)
        return ", ".join(answered)

    def cleanup(self) -> None:
        for phone in self.phones:
            phone.stop()
        for phone in self.phones:
            try:
                self.cli("device", "remove", self.account_id, phone.device["device_uid"])
            except StepFailed:
                pass  # the stage's teardown deletes device queues by name
        if self.webhook:
            try:
                self.cli("webhook", "remove", self.account_id, self.webhook["webhook_id"])
            except StepFailed:
                pass
        if self.receiver is not None:
            self.receiver.close()
