"""A stand-in for AWS's Lambda function URL service on loopback, for end-to-end tests of the
function URL front door: each real HTTP request is turned into the payload-2.0 event Lambda
builds (sourceIp from the TCP connection, lower-cased headers with repeats joined by commas,
cookies in their own list, the raw query string, text bodies as text and others base64), the
real Lambda entry point `app.app` is called with it in this process, and its 2.0 answer is
written back (each `cookies` entry as a Set-Cookie header). Nothing of the gateway is replaced:
this plays AWS's part, as moto does for DynamoDB and SQS."""
import base64
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript")


class _Context:
    function_name = "smsgw-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self):
        return 25000


def event_for(handler: BaseHTTPRequestHandler, body: bytes) -> dict:
    host = handler.headers.get("host", "")
    path, _, query = handler.path.partition("?")
    headers, cookies = {}, []
    for name, value in handler.headers.items():
        if name.lower() == "cookie":
            cookies += [part.strip() for part in value.split(";") if part.strip()]
            continue
        name = name.lower()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    parsed = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parsed[key] = f"{parsed[key]},{value}" if key in parsed else value
    kind = headers.get("content-type", "")
    text = any(kind.startswith(t) or t in kind for t in TEXT_TYPES)
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": "local", "domainName": host.split(":")[0],
            "domainPrefix": "local", "requestId": "local", "routeKey": "$default",
            "stage": "$default", "timeEpoch": 0,
            "http": {"method": handler.command, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": handler.client_address[0],
                     "userAgent": headers.get("user-agent", "")}},
        "isBase64Encoded": bool(body) and not text}
    if parsed:
        event["queryStringParameters"] = parsed
    if cookies:
        event["cookies"] = cookies
    if body:
        event["body"] = body.decode() if text else base64.b64encode(body).decode()
    return event


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        from app import app
        length = int(self.headers.get("content-length") or 0)
        answer = app(event_for(self, self.rfile.read(length) if length else b""), _Context())
        body = answer.get("body") or ""
        body = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
        self.send_response(answer["statusCode"])
        for name, value in (answer.get("headers") or {}).items():
            self.send_header(name, value)
        for cookie in answer.get("cookies", []):
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def serve(host: str = "127.0.0.1"):
    """(server, base URL) on a free port of `host` (127.0.0.1 or ::1); stop with shutdown()."""
    server = (_Server6 if ":" in host else _Server)((host, 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shown = f"[{host}]" if ":" in host else host
    return server, f"http://{shown}:{server.server_address[1]}/"
