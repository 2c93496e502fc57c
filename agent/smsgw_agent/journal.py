"""The agent's local memory (SQLite), so a restart or a job delivered twice never sends an SMS
twice, and no outcome or received SMS is lost while the network is down.

- `jobs`: every job the agent started to send, with its outcome. A job seen again is re-reported
  from here, not re-sent. A job found in state `sending` was interrupted mid-send: whether the SMS
  left is unknown, so it is reported failed rather than risk a duplicate (at most once).
- `reports` and `incoming`: outboxes, emptied once the gateway has answered.
"""
import os
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (message_id INTEGER PRIMARY KEY, state TEXT NOT NULL,
    reason TEXT, started_at REAL NOT NULL, finished_at REAL);
CREATE TABLE IF NOT EXISTS reports (message_id INTEGER NOT NULL, status TEXT NOT NULL,
    reason TEXT, PRIMARY KEY (message_id, status));
CREATE TABLE IF NOT EXISTS incoming (device_message_id TEXT PRIMARY KEY, phone_number TEXT,
    message TEXT, sim_slot INTEGER, received_at INTEGER, pushed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class Journal:
    def __init__(self, path: str):
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            path = str(Path(path).expanduser())
            # messages' numbers and texts: born 0600 (SQLite gives its -wal and -shm files the
            # database's mode)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)

    def _run(self, sql, args=()):
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # jobs
    def job(self, message_id: int):
        rows = self._run("SELECT state, reason FROM jobs WHERE message_id = ?", (message_id,))
        return rows[0] if rows else None

    def begin(self, message_id: int) -> None:
        self._run("INSERT INTO jobs (message_id, state, started_at) VALUES (?, 'sending', ?)",
                  (message_id, time.time()))

    def finish(self, message_id: int, state: str, reason: str | None = None) -> None:
        """Record the outcome and queue its report in one transaction."""
        with self._lock:
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute("UPDATE jobs SET state = ?, reason = ?, finished_at = ? "
                                 "WHERE message_id = ?", (state, reason, time.time(), message_id))
                self._db.execute("INSERT OR REPLACE INTO reports VALUES (?, ?, ?)",
                                 (message_id, state, reason))

    # outbox of reports
    def queue_report(self, message_id: int, status: str, reason: str | None = None) -> None:
        self._run("INSERT OR REPLACE INTO reports VALUES (?, ?, ?)", (message_id, status, reason))

    def pending_reports(self, limit: int = 50) -> list:
        return self._run("SELECT message_id, status, reason FROM reports ORDER BY rowid LIMIT ?",
                         (limit,))

    def reported(self, items) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM reports WHERE message_id = ? AND status = ?",
                                 [(m, s) for m, s, _ in items])

    # received SMS
    def add_incoming(self, device_message_id, phone_number, message, sim_slot, received_at,
                     pushed: bool = False) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO incoming VALUES (?, ?, ?, ?, ?, ?)",
                (device_message_id, phone_number, message, sim_slot, received_at, int(pushed)))
            return cursor.rowcount == 1

    def known_incoming(self, device_message_id) -> bool:
        return bool(self._run("SELECT 1 FROM incoming WHERE device_message_id = ?",
                              (device_message_id,)))

    def unpushed_incoming(self, limit: int = 50) -> list:
        return self._run("SELECT device_message_id, phone_number, message, sim_slot, received_at "
                         "FROM incoming WHERE pushed = 0 ORDER BY received_at LIMIT ?", (limit,))

    def pushed(self, ids) -> None:
        with self._lock:
            self._db.executemany("UPDATE incoming SET pushed = 1 WHERE device_message_id = ?",
                                 [(i,) for i in ids])

    def meta(self, key, value=None):
        if value is not None:
            self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))
            return value
        rows = self._run("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def close(self) -> None:
        with self._lock:
            self._db.close()
