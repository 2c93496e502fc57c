"""The agent's loop: long-poll jobs, send each once (journal), report outcomes, push received SMS,
heartbeat; back off on network trouble; on stop, report `stopped`.

One thread does everything, so the journal's order of events is simple: a job is written
`sending` before the backend is asked, and its outcome (with its report queued) right after.
"""
import logging
import math
import os
import random
import threading
import time

from smsgw_agent import backends, e2e
from smsgw_agent.client import GatewayClient, Rejected, Retryable, Suspended
from smsgw_agent.journal import Journal

log = logging.getLogger("smsgw_agent")
MAX_BACKOFF = 60.0
# Battery, signal and SIM count are refreshed at least this often even when other calls already
# keep the device alive (those calls postpone the heartbeat; see _heartbeat_due).
STATUS_REFRESH_SECONDS = 900.0
# A `sent` report is never held past this many seconds after its job was received: half the
# gateway's default 60 s lease, whatever else (pacing) delayed the send.
HOLD_WITHIN_LEASE = 30.0
# Longest the agent holds a leased job to keep its SIM's pace (the gateway's lease is 60 s).
MAX_PACE_HOLD = 45.0


class Agent:
    def __init__(self, config, backend=None, journal: Journal | None = None):
        self.config = config
        self.backend = backend or backends.make(config)
        self.journal = journal or Journal(config.journal)
        self.client = GatewayClient(config.url, config.token,
                                    ca_file=getattr(config, "ca_file", None))
        if config.mode == "direct":
            from smsgw_agent.direct import DirectPoller
            self.poller = DirectPoller(self.client)
        elif config.mode == "auto":
            from smsgw_agent.direct import AutoPoller
            self.poller = AutoPoller(self.client)
        else:
            self.poller = self.client
        self.stopping = threading.Event()
        self.polling = False  # a long poll is in flight (safe to interrupt)
        self._failures = 0
        self._last_heartbeat = float("-inf")
        self._heartbeat_interval = float(config.heartbeat_seconds)
        self._next_incoming = 0.0
        self._thread = None
        self._held = {}  # message_id -> time.monotonic() until which its `sent` report waits
        self._received = {}  # message_id -> time.monotonic() this run received the job
        self.sent_count = 0
        self.pace_ms = 0  # from the heartbeat answer: gap per SMS segment on one SIM
        self._sim_free = {}  # sim_slot -> epoch seconds when it may send again (journaled)

    # one job
    def handle(self, job: dict) -> None:
        message_id = job["message_id"]
        known = self.journal.job(message_id)
        if known is not None:
            state, reason = known
            if state == "sending":  # interrupted mid-send: outcome unknown, never send twice
                self.journal.finish(message_id, "failed", "The agent stopped while sending; "
                                    "not retried to avoid a duplicate SMS.")
            else:
                self.journal.queue_report(message_id, state, reason)
            log.info("job %s seen again: re-reporting %s", message_id, state)
            return
        if self.config.crash_after == "take":
            os._exit(3)
        expires_at = job.get("expires_at")
        if isinstance(expires_at, int) and expires_at < time.time() * 1000:
            self.journal.begin(message_id)
            self.journal.finish(message_id, "failed", "Expired before the device could send it.")
            return
        sim_slot = int(job.get("sim_slot") or 1)
        try:
            number, text = e2e.open_job(job, self.config.e2e_passphrase)
        except e2e.CannotDecrypt as exc:
            self.journal.begin(message_id)
            self.journal.finish(message_id, "failed", str(exc))
            log.warning("job %s failed: %s", message_id, exc)
            return
        self.keep_pace(job, sim_slot)
        self.journal.begin(message_id)
        try:
            self.backend.send(number, text, int(job.get("sim_slot") or 1),
                              message_id=message_id)
        except backends.SendError as exc:
            self.journal.finish(message_id, "failed", str(exc)[:500])
            log.warning("job %s failed: %s", message_id, exc)
            return
        if self.config.crash_after == "backend":  # sent, but the journal still says sending
            os._exit(3)
        self.journal.finish(message_id, "sent")
        self.sent_count += 1
        if self.pace_ms:
            free = max(time.time(), self.sim_free(sim_slot)) + (
                self.pace_ms / 1000 * max(1, int(job.get("segments") or 1)))
            self._sim_free[sim_slot] = free
            self.journal.meta(f"sim_free_{sim_slot}", free)  # a restart keeps the pace too
        log.info("job %s sent to %s", message_id,
                 "an encrypted number" if job.get("is_encrypted") else number)
        if self.config.crash_after == "send":
            os._exit(3)

    def keep_pace(self, job: dict, sim_slot: int) -> None:
        """The gateway spaces jobs by the SIM's pace; after an outage several may arrive at
        once, so wait for the SIM (at most MAX_PACE_HOLD, within the lease). OTPs never wait."""
        if job.get("kind") == "otp" or not self.pace_ms:
            return
        wait = self.sim_free(sim_slot) - time.time()
        if wait > 0:
            log.info("job %s waits %.1f s for SIM %s's pace", job["message_id"], wait, sim_slot)
            self.stopping.wait(min(wait, MAX_PACE_HOLD))

    def sim_free(self, sim_slot: int) -> float:
        if sim_slot not in self._sim_free:
            stored = self.journal.meta(f"sim_free_{sim_slot}")
            self._sim_free[sim_slot] = float(stored) if stored else 0.0
        return self._sim_free[sim_slot]

    # outboxes
    def _ready(self, pending: list, force: bool) -> list:
        """The reports to send now: a `sent` waits up to report_hold seconds for its message's
        `delivered` (or `failed`), so both travel in one call and the gateway writes once; but
        never past HOLD_WITHIN_LEASE seconds after the job was received (the lease must not run
        out on an unreported send), and not at all for a job not received by this run."""
        hold = self.config.report_hold
        if force or hold <= 0:
            return pending
        now = time.monotonic()
        settled = {message_id for message_id, status, _ in pending if status != "sent"}
        ready = []
        for item in pending:
            if item[1] == "sent" and item[0] not in settled:
                received = self._received.get(item[0], now - HOLD_WITHIN_LEASE)
                deadline = self._held.setdefault(
                    item[0], min(now + hold, received + HOLD_WITHIN_LEASE))
                if now < deadline:
                    continue
            ready.append(item)
        return ready

    def _hold_ends_in(self) -> float | None:
        if not self._held:
            return None
        return min(self._held.values()) - time.monotonic()

    def flush_reports(self, force: bool = False) -> None:
        for message_id, status, reason in self.backend.events():
            if self.journal.job(message_id) is not None:
                self.journal.queue_report(message_id, status, reason)
        while True:
            pending = self._ready(self.journal.pending_reports(), force)
            if not pending:
                return
            try:
                self.client.report([{"message_id": m, "status": s, **({"reason": r} if r else {})}
                                    for m, s, r in pending])
            except Rejected as exc:  # our bug or a revoked token; do not loop on it
                log.error("gateway rejected reports %s: %s", pending, exc)
                if exc.status == 401:
                    raise
            self.journal.reported(pending)
            for message_id, _, _ in pending:
                self._held.pop(message_id, None)
                self._received.pop(message_id, None)

    def collect_incoming(self) -> None:
        first_run = self.journal.meta("inbox_started") is None
        for sms in self.backend.received():
            skip = first_run and not self.config.push_existing
            self.journal.add_incoming(sms["device_message_id"], sms["phone_number"],
                                      sms["message"], sms.get("sim_slot"), sms["received_at"],
                                      pushed=skip)
        if first_run:
            self.journal.meta("inbox_started", int(time.time()))
        while True:
            unpushed = self.journal.unpushed_incoming()
            if not unpushed:
                return
            try:
                self.client.incoming([{"device_message_id": i, "phone_number": p, "message": t,
                                       "received_at": r, **({"sim_slot": s} if s else {})}
                                      for i, p, t, s, r in unpushed])
            except Rejected as exc:
                log.error("gateway rejected incoming SMS %s: %s", unpushed, exc)
                if exc.status == 401:
                    raise
            self.journal.pushed([row[0] for row in unpushed])

    def heartbeat(self, app_state: str = "running", timeout: float | None = None) -> None:
        status = self.backend.status()
        answer = self.client.heartbeat(app_state, timeout=timeout, sim_count=self.config.sim_count,
                                       e2e=bool(self.config.e2e_passphrase), **status)
        self._last_heartbeat = time.monotonic()
        self._heartbeat_interval = float(answer.get("heartbeat_seconds")
                                         or self.config.heartbeat_seconds)
        pace_ms = answer.get("pace_ms")
        self.pace_ms = pace_ms if isinstance(pace_ms, int) and pace_ms >= 0 else 0

    def _heartbeat_due(self) -> float:
        """Liveness rides on the calls the agent makes anyway (polls, claims, reports,
        credentials): a heartbeat is due one interval after the last of them, and at least every
        STATUS_REFRESH_SECONDS for battery, signal and the SIM's pace."""
        return min(self.client.last_alive + self._heartbeat_interval,
                   self._last_heartbeat + max(STATUS_REFRESH_SECONDS, self._heartbeat_interval))

    # the loop
    def step(self) -> None:
        now = time.monotonic()
        if now >= self._heartbeat_due():
            self.heartbeat()
        if now >= self._next_incoming:
            self._next_incoming = now + self.config.incoming_seconds
            self.collect_incoming()
        self.flush_reports()
        wait = self.config.poll_wait
        for due in (self.backend.next_event_in(), self._heartbeat_due() - now,
                    self._next_incoming - now, self._hold_ends_in()):
            if due is not None:
                wait = min(wait, max(0, math.ceil(due)))
        if self.stopping.is_set():
            return
        self.polling = True
        try:
            # a paced phone holds one job at a time, so keeping pace never outlasts a lease
            jobs = self.poller.jobs(wait, 1 if self.pace_ms else self.config.max_jobs)
        finally:
            self.polling = False
        for job in jobs:
            self._received[job["message_id"]] = time.monotonic()
            self.handle(job)
        self.flush_reports()

    def run(self) -> None:
        """Run until stop(); then report `stopped` (best effort) and close the journal."""
        log.info("agent started for %s (%s backend, %s polling)", self.config.url,
                 self.config.backend, self.config.mode)
        try:
            while not self.stopping.is_set():
                try:
                    self.step()
                    self._failures = 0
                except Retryable as exc:
                    self._failures += 1
                    delay = min(MAX_BACKOFF, 2 ** min(self._failures - 1, 6))
                    delay = exc.retry_after or delay * (0.5 + random.random() / 2)
                    trouble = ("the account is suspended" if isinstance(exc, Suspended)
                               else "gateway unreachable")
                    log.warning("%s (%s); retrying in %.1f s", trouble, exc, delay)
                    self.stopping.wait(delay)
        except KeyboardInterrupt:
            pass
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        for action in (lambda: self.flush_reports(force=True),
                       lambda: self.heartbeat("stopped", timeout=5)):
            try:
                action()
            except (Retryable, Rejected, KeyboardInterrupt) as exc:
                log.warning("on stop: %s", exc)
        self.journal.close()
        log.info("agent stopped")

    def start(self) -> "Agent":
        """Run in a background thread (the local gateway's demo phone)."""
        self._thread = threading.Thread(target=self.run, name="smsgw-agent", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
