"""What actually sends SMS: termux-api's commands on an Android phone, or a simulator.

A backend has `send(phone_number, text, sim_slot)` (raises SendError on failure), `events()`
(delivery outcomes that became known: [(message_id, status, reason)]), `next_event_in()`
(seconds until the next one, or None), `received()` (SMS in the phone's inbox: dicts with
device_message_id, phone_number, message, sim_slot, received_at in epoch ms) and `status()`
(battery 0-100 / signal 0-4 / None).
"""
import json
import logging
import os
import random
import shutil
import subprocess
import threading
import time
from datetime import datetime

log = logging.getLogger("smsgw_agent")


class SendError(Exception):
    """The SMS was not sent; the message is the reason reported to the gateway."""


# Android's SmsManager result codes as they appear in termux-api's output, and the kind the
# agent reports first in the reason: the gateway rests a SIM on "limit exceeded" and
# "no service" (docs/pool.md).
FAILURE_KINDS = (
    ("RESULT_ERROR_LIMIT_EXCEEDED", "limit exceeded"),
    ("RESULT_ERROR_NO_SERVICE", "no service"),
    ("RESULT_ERROR_RADIO_OFF", "no service (radio off)"),
    ("RESULT_ERROR_NULL_PDU", "null PDU"),
    ("RESULT_ERROR_GENERIC_FAILURE", "generic failure"),
)


def failure_kind(detail: str) -> str | None:
    upper = detail.upper()
    for code, kind in FAILURE_KINDS:
        if code in upper or code.removeprefix("RESULT_ERROR_").replace("_", " ") in upper:
            return kind
    return None


class TermuxBackend:
    """termux-api (the Termux:API app plus `pkg install termux-api`).

    `termux-sms-send -n NUMBER -s SLOT` with the text on stdin: `-s` is Android's 0-based SIM slot
    index (SubscriptionInfo.getSimSlotIndex), so the gateway's sim_slot 1 is `-s 0`. The text goes
    through stdin, not arguments, because the script re-echoes arguments through `sh`'s echo,
    which would rewrite backslashes. termux-api hands the SMS to Android without delivery
    callbacks, so this backend reports `sent` (handed to Android) and never `delivered`.
    """

    def __init__(self, timeout: float = 60.0, inbox_limit: int = 50):
        self.timeout = timeout
        self.inbox_limit = inbox_limit

    def _run(self, args, stdin: str | None = None) -> str:
        if shutil.which(args[0]) is None:
            raise SendError(f"{args[0]} not found: install termux-api (pkg install termux-api) "
                            "and the Termux:API app.")
        try:
            done = subprocess.run(args, input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise SendError(f"{args[0]} did not answer within {self.timeout:.0f} s.")
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[:200]
            kind = failure_kind(detail)
            raise SendError(f"{kind + ': ' if kind else ''}{args[0]} failed "
                            f"(exit {done.returncode}): {detail}")
        return done.stdout

    def send(self, phone_number: str, text: str, sim_slot: int, message_id=None) -> None:
        self._run(["termux-sms-send", "-n", phone_number, "-s", str(sim_slot - 1)], stdin=text)

    def events(self) -> list:
        return []

    def next_event_in(self):
        return None

    def received(self) -> list:
        try:
            listed = json.loads(self._run(["termux-sms-list", "-t", "inbox", "-l",
                                           str(self.inbox_limit)]) or "[]")
        except (SendError, ValueError):
            return []
        found = []
        for sms in listed if isinstance(listed, list) else []:
            try:
                # termux-sms-list prints the phone's local time, 'YYYY-MM-DD HH:MM:SS'.
                received = datetime.strptime(sms["received"], "%Y-%m-%d %H:%M:%S")
                found.append({"device_message_id": str(sms["_id"]),
                              "phone_number": str(sms.get("number") or sms["address"]),
                              "message": sms.get("body") or "", "sim_slot": None,
                              "received_at": int(received.timestamp() * 1000)})
            except (KeyError, TypeError, ValueError):
                continue
        return found

    def status(self) -> dict:
        try:
            battery = json.loads(self._run(["termux-battery-status"])).get("percentage")
        except (SendError, ValueError, AttributeError):
            battery = None
        return {"battery": battery if isinstance(battery, int) and 0 <= battery <= 100
                else None, "signal": None}


class SimulatorBackend:
    """A pretend phone: 'sends' by writing a ledger, fails at `failure_rate`, reports delivery
    `delivery_delay` seconds later, and 'receives' SMS appended to an inbox JSON-lines file."""

    def __init__(self, failure_rate: float = 0.0, delivery_delay: float = 2.0,
                 ledger: str | None = None, inbox: str | None = None, seed=None):
        self.failure_rate = failure_rate
        self.delivery_delay = delivery_delay
        self.ledger_path = ledger
        self.inbox_path = inbox
        self.ledger = []  # (message_id, phone_number, text, sim_slot, time) of every send
        self._pending = []  # (due, message_id)
        self._inbox = []
        self._bad_lines = set()  # inbox file lines already reported as malformed
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def send(self, phone_number: str, text: str, sim_slot: int, message_id=None) -> None:
        if self._random.random() < self.failure_rate:
            raise SendError("Simulated send failure.")
        entry = {"message_id": message_id, "phone_number": phone_number, "message": text,
                 "sim_slot": sim_slot, "at": time.time()}
        with self._lock:
            self.ledger.append(entry)
            if self.ledger_path:
                with os.fdopen(os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                       0o600), "a", encoding="utf-8") as handle:  # numbers, texts
                    handle.write(json.dumps(entry) + "\n")
                    handle.flush()
            if self.delivery_delay >= 0 and message_id is not None:
                self._pending.append((time.monotonic() + self.delivery_delay, message_id))

    def events(self) -> list:
        now = time.monotonic()
        with self._lock:
            due = [m for t, m in self._pending if t <= now]
            self._pending = [(t, m) for t, m in self._pending if t > now]
        return [(m, "delivered", None) for m in due]

    def next_event_in(self):
        with self._lock:
            if not self._pending:
                return None
            return max(0.0, min(t for t, _ in self._pending) - time.monotonic())

    def receive(self, phone_number: str, text: str, sim_slot: int | None = 1) -> None:
        """Pretend an SMS arrived (in-process use)."""
        with self._lock:
            self._inbox.append({"device_message_id": f"sim-{len(self._inbox) + 1}",
                                "phone_number": phone_number, "message": text,
                                "sim_slot": sim_slot, "received_at": int(time.time() * 1000)})

    def received(self) -> list:
        with self._lock:
            found = list(self._inbox)
        if self.inbox_path:
            try:
                with open(self.inbox_path, encoding="utf-8", errors="replace") as handle:
                    for number, line in enumerate(handle, 1):
                        sms = self._inbox_line(number, line)
                        if sms is not None:
                            found.append(sms)
            except OSError:
                pass
        return found

    def _inbox_line(self, number: int, line: str):
        """One line of the inbox file as an SMS, or None (blank, or malformed: logged once and
        skipped, so one bad line does not hide the lines after it)."""
        if not line.strip():
            return None
        try:
            sms = json.loads(line)
            if not isinstance(sms, dict):
                raise ValueError("not a JSON object")
            for field in ("phone_number", "message"):
                if not isinstance(sms.get(field), str) or not sms[field]:
                    raise ValueError(f'"{field}" must be a non-empty string')
        except ValueError as exc:
            if number not in self._bad_lines:
                self._bad_lines.add(number)
                log.warning("inbox %s line %d skipped (%s): %s", self.inbox_path, number, exc,
                            line.strip()[:200])
            return None
        sms.setdefault("device_message_id", f"file-{number}")
        sms.setdefault("sim_slot", 1)
        sms.setdefault("received_at", int(time.time() * 1000))
        return sms

    def status(self) -> dict:
        return {"battery": 100, "signal": 4}


def make(config):
    if config.backend == "simulator":
        return SimulatorBackend(config.failure_rate, config.delivery_delay, config.ledger,
                                config.inbox)
    return TermuxBackend()
