"""A real HTTP receiver on 127.0.0.1 for webhook tests and the soak: a threaded http.server that
verifies signatures with the shipped helper (clients/smsgw_webhook.py), deduplicates by event
id, and can be told to be down (connection refused), answer 500 at random, or answer slowly."""
import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from clients import smsgw_webhook


class Receiver:
    def __init__(self, secrets=(), fail_rate: float = 0.0, seed: int = 1, status: int = 200,
                 delay: float = 0.0):
        self.secrets = list(secrets)
        self.fail_rate, self.status, self.delay = fail_rate, status, delay
        self.random = random.Random(seed)
        self.lock = threading.RLock()
        self.requests = []  # (headers, raw body, answered status)
        self.events = {}  # id -> payload (first arrival)
        self.arrivals = Counter()  # id -> accepted (2xx) arrivals
        self.arrived_at = {}  # id -> time.time() of first accepted arrival
        self.bad_signatures = 0
        self.port = None
        self._server = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def up(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items()}
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = receiver.answer(headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port or 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        """Stop listening: connections are refused until up()."""
        self._server.shutdown()
        self._server.server_close()

    def answer(self, headers: dict, body: bytes) -> int:
        with self.lock:
            status = self.status
            if self.fail_rate and self.random.random() < self.fail_rate:
                status = 500
            if self.secrets and not smsgw_webhook.verify(
                    body, headers.get("X-Smsgw-Signature"), headers.get("X-Smsgw-Timestamp"),
                    self.secrets):
                self.bad_signatures += 1
                status = 401
            self.requests.append((headers, body, status))
            if 200 <= status < 300:
                event = json.loads(body)
                self.arrivals[event["id"]] += 1
                self.events.setdefault(event["id"], event)
                self.arrived_at.setdefault(event["id"], time.time())
            return status

    def of_type(self, kind: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events.values() if e["type"] == kind]

    def wait_for(self, predicate, timeout: float = 20.0, poll=None) -> bool:
        end = time.time() + timeout
        while time.time() < end:
            if poll:
                poll()
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        try:
            self.down()
        except Exception:
            pass
