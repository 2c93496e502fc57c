"""One signed HTTP POST to a webhook receiver, safely: to the address that was checked (no
second DNS lookup), at most WEBHOOK_TIMEOUT_SECONDS (<= 10 s) for the whole exchange, no
redirects followed, and at most READ_CAP bytes of the answer read. Imported only by the queue
function that delivers webhooks, never on the API's request path.
"""
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from chalicelib.core import settings
from chalicelib.domain.webhooks import urls as webhook_urls

READ_CAP = 4096
USER_AGENT = "smsgw-webhooks/1"


@dataclass
class Outcome:
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a fixed address, with SNI and certificate checks for the URL's host name."""

    def __init__(self, address, host, port, timeout, context):
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, address, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the receiver took too long")
    return left


def post(url: str, body: bytes, headers: dict) -> Outcome:
    started = time.monotonic()

    def done(code=None, error=None):
        return Outcome(code, int((time.monotonic() - started) * 1000), error)

    try:
        (scheme, host, port, path), address = webhook_urls.check(url)
    except webhook_urls.Refused as refused:
        return done(error=f"refused: {refused}")
    except Exception as exc:  # a URL that became invalid (e.g. settings changed)
        return done(error=f"refused: {getattr(exc, 'message', exc)}")
    timeout = settings.current().webhook_timeout_seconds
    if scheme == "https":
        connection = _PinnedHTTPS(address, host, port, timeout, ssl.create_default_context())
    else:
        connection = _PinnedHTTP(address, host, port, timeout)
    # Socket timeouts bound each read, not the exchange: a receiver dripping a byte a second
    # would hold the queue function. At the deadline the socket is shut, ending any read.
    cut = threading.Event()
    guard = threading.Timer(timeout, _cut, (connection, cut))
    guard.daemon = True
    guard.start()
    try:
        connection.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
        default_port = 443 if scheme == "https" else 80
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal
        connection.putheader("Host", name if port == default_port else f"{name}:{port}")
        for name, value in {"User-Agent": USER_AGENT, "Content-Type": "application/json",
                            "Content-Length": str(len(body)), "Connection": "close",
                            **headers}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        deadline = started + timeout
        connection.sock.settimeout(_left(deadline))
        response = connection.getresponse()
        code, read = response.status, 0
        while read < READ_CAP and not response.isclosed():  # up to the cap; the rest never
            if connection.sock:
                connection.sock.settimeout(_left(deadline))
            chunk = response.read1(READ_CAP - read)
            if not chunk:
                break
            read += len(chunk)
        if 300 <= code < 400:
            return done(code, f"redirect to {response.getheader('Location', '?')[:200]} "
                              "not followed")
        return done(code, None if 200 <= code < 300 else f"HTTP {code}")
    except (OSError, http.client.HTTPException) as exc:
        if cut.is_set():
            return done(error="timeout: the receiver took too long")
        kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
        return done(error=f"{kind}: {exc}"[:300])
    finally:
        guard.cancel()
        connection.close()


def _cut(connection, cut: threading.Event) -> None:
    cut.set()
    try:
        if connection.sock:
            connection.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
