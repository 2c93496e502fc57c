"""The local stand-in for API Gateway: Chalice's local HTTP handler, with the caller's real
address as `requestContext.identity.sourceIp`, a listen backlog that takes bursts, and one log
line per request."""
import re
import socket
import ssl
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

from chalice.config import Config
from chalice.local import ChaliceRequestHandler, LocalDevServer, ThreadedHTTPServer

# Connections the kernel holds while every worker thread is busy accepting. Python's default (5)
# resets bursts: 50 concurrent POSTs lost a dozen or more.
LISTEN_BACKLOG = 1024


HANDSHAKE_HINTS = {
    "HTTP_REQUEST": "HTTP_REQUEST (plain HTTP to the HTTPS port: use https://)",
    "TLSV1_ALERT_UNKNOWN_CA": "TLSV1_ALERT_UNKNOWN_CA (the client does not trust the local CA: "
                              "install tls/ca.pem from the data folder on it)",
}


class Server(ThreadedHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    log_stream = sys.stderr

    def handle_error(self, request, client_address):
        """A connection that fails before it is a request (a TLS handshake refused: a client
        that does not trust the local CA, plain HTTP to the HTTPS port; a peer gone) is one log
        line; anything else keeps socketserver's traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            return super().handle_error(request, client_address)
        reason = getattr(error, "reason", None) or error.__class__.__name__
        reason = HANDSHAKE_HINTS.get(reason, reason)
        what = "TLS handshake failed" if isinstance(error, ssl.SSLError) else "connection lost"
        print(f"{time.strftime('%H:%M:%S')} {client_address[0]} {what}: {reason}",
              file=self.log_stream, flush=True)


JSON_ACTION = re.compile(rb'"action"\s*:\s*"([A-Za-z_]{1,40})"')


def request_action(path: str, headers, body: bytes | None) -> str:
    """The `action=` of a compatibility API call (query, form or JSON body), else '-'. Only for
    the log: a glance, never a parse of what the client sent (bodies may be hostile)."""
    action = parse_qs(urlsplit(path).query).get("action")
    if action:
        return action[0][:40]
    if body:
        content_type = (headers.get("content-type") or headers.get("Content-Type") or "").lower()
        if "json" in content_type:
            found = JSON_ACTION.search(body[:4096])
            return found.group(1).decode() if found else "-"
        if "urlencoded" in content_type:
            action = parse_qs(body[:4096].decode("utf-8", "replace")).get("action")
            return action[0][:40] if action else "-"
    return "-"


class Handler(ChaliceRequestHandler):
    disable_nagle_algorithm = True  # else small answers wait ~40 ms for delayed ACKs
    log_requests = True
    log_stream = sys.stderr
    _log_lock = threading.Lock()

    def _parse_payload(self):
        headers, body = super()._parse_payload()
        self._request = (headers, body)
        return headers, body

    def send_response(self, code, message=None):
        self._status = code
        super().send_response(code, message)

    def send_header(self, keyword, value):
        if keyword.lower() == "x-error-code":
            self._error_code = value
        super().send_header(keyword, value)

    def _send_http_response(self, code, headers, body):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body or ""
        self._idle = len(text) < 200 and text.startswith('{"jobs": []')
        super()._send_http_response(code, headers, body)

    def _generic_handle(self):
        # API Gateway's requestContext.identity.sourceIp is the TCP peer: so is ours. The
        # converter belongs to this connection's handler, so threads do not share it.
        self.local_gateway.event_converter.LOCAL_SOURCE_IP = self.client_address[0]
        self._status, self._error_code, self._request = None, None, ({}, None)
        self._idle = False
        started = time.perf_counter()
        try:
            super()._generic_handle()
        finally:
            if self.log_requests and not self._idle:  # idle long-polls would drown the rest
                try:
                    self._log_request((time.perf_counter() - started) * 1000)
                except Exception as exc:  # the log line must never cost the request
                    print(f"(request log failed: {exc!r})", file=self.log_stream)

    # Chalice binds every do_* to its own _generic_handle when its class is created.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _log_request(self, ms: float):
        headers, body = self._request
        path = urlsplit(self.path).path
        action = request_action(self.path, headers, body) if path.endswith(".php") else "-"
        result = self._error_code or ("ok" if (self._status or 500) < 400 else "-")
        line = (f"{time.strftime('%H:%M:%S')} {self.client_address[0]} {self.command} {path} "
                f"{action} {self._status or '-'} {result} {ms:.0f}ms")
        with self._log_lock:
            print(line, file=self.log_stream, flush=True)

    def log_message(self, *args):
        pass

    def __getattr__(self, name):
        # Any other method (TRACE, QUERY, ...) reaches Chalice, which answers 405 as for a
        # method no route declares, where http.server would answer 501.
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)


def thread_local_requests(app) -> None:
    """`app.current_request` per thread, as `chalice local` makes it (create_local_server):
    Lambda runs one request per process, this server one per thread, and a plain attribute let
    a request read another's (a bulk POST answered 400 for the phone's `?wait=` query)."""
    from chalice.local import LocalChalice
    if not isinstance(app, LocalChalice):
        app.__class__ = type("LocalGatewayChalice", (LocalChalice, app.__class__), {})


def serve(app, host: str, port: int, quiet: bool = False) -> LocalDevServer:
    """Start serving `app` on host:port in a daemon thread; returns the server (shutdown())."""
    thread_local_requests(app)
    handler = type("LocalHandler", (Handler,), {"log_requests": not quiet})
    server_cls = Server
    if ":" in host:
        server_cls = type("Server6", (Server,), {"address_family": socket.AF_INET6})
    config = Config.create(chalice_stage="local", app_name="smsgw", lambda_timeout=60)
    server = LocalDevServer(app, config, host, port, handler_cls=handler, server_cls=server_cls)
    threading.Thread(target=server.server.serve_forever, daemon=True,
                     name="local-http").start()
    return server
