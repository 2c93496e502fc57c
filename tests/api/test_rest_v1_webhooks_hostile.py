"""REST v1 webhook routes fed what an attacker would try: receiver URLs that reach inside the
network (SSRF) however they are spelled, tampered delivery-log cursors, other accounts'
endpoints, absurd times. Real handlers on moto through the `v1` fixture, whose answers are
checked against the served OpenAPI document."""
import base64
import json

import pytest

from chalicelib.domain import accounts
from chalicelib.domain.webhooks import urls as webhook_urls

INSIDE = [
    "http://127.0.0.1/x", "https://127.0.0.1/x", "https://169.254.169.254/latest",
    "https://[::1]/", "https://[::ffff:127.0.0.1]/", "https://[::ffff:7f00:1]/",
    "https://[0:0:0:0:0:ffff:a9fe:a9fe]/", "https://2130706433/", "https://0177.0.0.1/",
    "https://0x7f.0.0.1/", "https://127.1/", "https://good@127.0.0.1/",
    "https://example.com:443@127.0.0.1/", "https://good.com\\@127.0.0.1/",
    "https://127.0.0.1#@good.com/", "https://[fe80::1%25eth0]/", "https://0.0.0.0/",
    "https://[::]/", "https://localhost/", "https://100.64.0.1/", "https://[fd00::1]/",
    "https://10.0.0.1./", "https://[::127.0.0.1]/", "https://192.0.0.1/",
    "https://[64:ff9b::7f00:1]/", "https://\u2460\u2461\u2466.0.0.1/",
    "https://127\u30020\u30020\u30021/", "HTTPS://127.0.0.1/",
    # IPv6 transition addresses that embed an inside IPv4 address
    "https://[2002:7f00:1::]/", "https://[2002:a9fe:a9fe::1]/", "https://[2002:a00:1::]/",
    "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/"]


@pytest.mark.parametrize("url", INSIDE)
def test_receivers_inside_the_network_are_refused_on_aws_stages(v1, url,
                                                                settings_override):  # noqa: F811
    settings_override(webhook_allow_private=False)
    status, problem, _ = v1("POST", "/v1/webhooks", {"url": url})
    assert status in (400, 422) and problem["parameter"] == "url", problem
    assert v1("GET", "/v1/webhooks")[1]["webhooks"] == []


@pytest.mark.parametrize("address", ["2002:7f00:1::", "2002:a9fe:a9fe::1", "2002:c0a8:101::"])
def test_six_to_four_addresses_are_checked_by_their_ipv4_address(address):
    """A 6to4 address names the IPv4 host that receives it: 2002:7f00:1:: is 127.0.0.1."""
    with pytest.raises(webhook_urls.Refused):
        webhook_urls.check(f"https://[{address}]/", allow_private=False)
    webhook_urls.check("https://[2002:5db8:d822::]/", allow_private=False)  # 93.184.216.34


def cursor(position):
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@pytest.fixture
def hook(v1, settings_override):  # noqa: F811
    settings_override(webhook_allow_private=True)
    return lambda: v1("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/h"})[1]["webhook_id"]


@pytest.mark.parametrize("last_at", [10 ** 40, -(10 ** 40), -1, 2 ** 53, 12345678901234567890123])
def test_a_delivery_cursor_with_an_impossible_time_is_refused(v1, hook, last_at):  # noqa: F811
    """DynamoDB refuses numbers beyond 38 digits (moto does not): the cursor must not carry
    one to it."""
    made = hook()
    status, problem, _ = v1("GET", f"/v1/webhooks/{made}/deliveries?cursor=" + cursor(
        {"w": made, "e": "evt_x", "l": last_at, "s": ""}))
    assert (status, problem["parameter"]) == (400, "cursor"), problem


def test_delivery_cursors_do_not_cross_endpoints_or_accounts(v1, hook):  # noqa: F811
    mine, other = hook(), hook()
    forged = cursor({"w": other, "e": "evt_x", "l": 1, "s": ""})
    status, problem, _ = v1("GET", f"/v1/webhooks/{mine}/deliveries?cursor={forged}")
    assert (status, problem["parameter"]) == (400, "cursor")
    stranger = accounts.create_account("Evil")
    key, _ = accounts.create_key(stranger.account_id, "k")
    own = cursor({"w": other, "e": "evt_x", "l": 1, "s": ""})
    for method, path, body in [
            ("GET", f"/v1/webhooks/{other}/deliveries?cursor={own}", None),
            ("GET", f"/v1/webhooks/{other}/deliveries/evt_abc", None),
            ("POST", f"/v1/webhooks/{other}/deliveries/evt_abc/redeliver", None),
            ("POST", f"/v1/webhooks/{other}/redeliver", {"since": "1970-01-01T00:00:00Z"}),
            ("POST", f"/v1/webhooks/{other}/rotate-secret", {}),
            ("PATCH", f"/v1/webhooks/{other}", {"enabled": False}),
            ("DELETE", f"/v1/webhooks/{other}", None)]:
        assert v1(method, path, body, key=key)[0] == 404, (method, path)
    assert v1("GET", f"/v1/webhooks/{other}")[1]["status"] == "enabled"


@pytest.mark.parametrize("since, status", [
    ("0001-01-01T00:00:00Z", 202), ("9999-12-31T23:59:59Z", 202), ("1970-01-01T00:00:00Z", 202),
    ("2026-13-01T00:00:00Z", 400), ("2026-11-27T12:00:00+99:00", 400), ("", 400),
    ("x" * 10_000, 400), ("2026-11-27", 400)])
def test_redeliver_since_absurd_times(v1, hook, since, status):  # noqa: F811
    made = hook()
    assert v1("POST", f"/v1/webhooks/{made}/redeliver", {"since": since})[0] == status


def test_a_deleted_endpoint_cannot_be_rotated_tested_or_redelivered(v1, hook):  # noqa: F811
    made = hook()
    assert v1("DELETE", f"/v1/webhooks/{made}")[0] == 200
    for method, path, body in [("POST", "/rotate-secret", {}), ("POST", "/test", None),
                               ("PATCH", "", {"enabled": True}), ("GET", "/deliveries", None),
                               ("POST", "/redeliver", {"since": "2026-01-01T00:00:00Z"}),
                               ("DELETE", "", None)]:
        assert v1(method, f"/v1/webhooks/{made}{path}", body)[0] == 404, path


@pytest.mark.parametrize("body", [
    {"description": "x" * 201}, {"description": 5}, {"description": None},
    {"events": ["sms.sent"] * 10_000}, {"events": []}, {"events": [1]}, {"url": 5},
    {"events": ["sms.sent", "nope"]}])
def test_oversized_or_odd_create_bodies_are_400(v1, hook, body):  # noqa: F811
    status, problem, _ = v1("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/h", **body})
    assert status == 400 and problem["parameter"].split("[")[0] in body, problem


def test_non_ascii_urls_are_sent_as_ascii():
    assert webhook_urls.parse("https://b\u00fccher.example/caf\u00e9?q=\u00fc&r=%41") == (
        "https", "xn--bcher-kva.example", 443, "/caf%C3%A9?q=%C3%BC&r=%41")
    with pytest.raises(Exception) as bad:
        webhook_urls.parse("https://" + "a" * 70 + ".example/")  # a DNS label of 70
    assert bad.value.parameter == "url"


def test_a_non_ascii_url_is_delivered_not_an_endless_error(v1, webhook_receiver):  # noqa: F811
    """Accepted at add, such a URL used to make http.client raise UnicodeEncodeError at every
    attempt: nothing in the owner's log, five errors, then the operators' dead-letter queue."""
    port = webhook_receiver.port
    made = v1("POST", "/v1/webhooks", {
        "url": f"http://\u2460\u2461\u2466.0.0.1:{port}/caf\u00e9?q=\u00fc"})[1]
    webhook_receiver.secrets = [made["secret"]]
    event_id = v1("POST", f"/v1/webhooks/{made['webhook_id']}/test")[1]["event_id"]
    assert webhook_receiver.wait_for(lambda r: r.arrivals[event_id] == 1, 15)
    assert webhook_receiver.requests[-1][0]["Host"] == f"127.0.0.1:{port}"
    assert webhook_receiver.bad_signatures == 0
    assert webhook_receiver.wait_for(lambda r: v1(
        "GET", f"/v1/webhooks/{made['webhook_id']}/deliveries/{event_id}")[0] == 200, 10)


def test_an_ipv6_receiver_gets_a_valid_host_header(settings_override):
    """RFC 9110: an IPv6 literal in Host is bracketed ("::1:8080" names no host)."""
    import http.server
    import socket
    import threading

    from chalicelib.domain.webhooks import sender as webhook_sender
    settings_override(webhook_allow_private=True)
    hosts = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hosts.append(self.headers["Host"])
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(http.server.HTTPServer):
        address_family = socket.AF_INET6
    server = Server(("::1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        outcome = webhook_sender.post(f"http://[::1]:{port}/h", b"{}", {})
        assert outcome.status_code == 204, outcome
        assert hosts == [f"[::1]:{port}"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("scheme, drip", [
    ("http", b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 100),
    ("https", b"\x16\x03\x03\x00\x7f" + b"\x00" * 110)])  # a TLS record, never complete
def test_a_receiver_dripping_its_answer_is_cut_at_the_timeout(settings_override, scheme, drip):
    """A receiver that sends its answer (or its TLS handshake) a byte at a time, each byte
    well within the socket timeout, must not hold the queue function beyond
    WEBHOOK_TIMEOUT_SECONDS."""
    import socket
    import threading
    import time

    from chalicelib.domain.webhooks import sender as webhook_sender
    settings_override(webhook_allow_private=True, webhook_timeout_seconds=1.0)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            for byte in drip:
                if stop.wait(0.1):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        outcome = webhook_sender.post(f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/h",
                                      b"{}", {})
        took = time.monotonic() - started
        assert outcome.status_code is None and outcome.error.startswith("timeout"), outcome
        assert took < 5.0, took  # the drip alone takes 11 s
    finally:
        stop.set()
        thread.join(5)
        listener.close()
