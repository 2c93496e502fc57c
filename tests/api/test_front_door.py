"""The API handler behind each front door the stack puts before it: the REST API chalice
generates, the HTTP API (payload format 2.0 since issue 29; 1.0 still read), and the Lambda
function URL (payload format 2.0, converted by chalicelib/surfaces/function_url.py; the default
base URL).
Each test builds the Lambda event exactly as that integration produces it (AWS's documented
shapes) and calls the real Lambda entry point, `app(event, context)`: routing, bodies, query
strings, cookies and, above all, the IP whitelist, which must read the address the integration
took from the connection (requestContext.identity.sourceIp; requestContext.http.sourceIp for
the function URL) and never a header the client controls."""
import base64
import json
from urllib.parse import parse_qsl, urlencode

import pytest

from chalicelib.domain import accounts
from tests import sending

SPOOF = {"X-Forwarded-For": "203.0.113.5", "X-Real-IP": "203.0.113.5",
         "Forwarded": "for=203.0.113.5"}


def rest_event(method, path, source_ip, headers=None, query=None, body=None):
    """API Gateway REST API, Lambda proxy integration (stage `api`)."""
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "curl/8.5",
               "X-Forwarded-For": source_ip, "X-Forwarded-Proto": "https", **(headers or {})}
    return {
        "resource": path, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {
            "resourceId": "x1y2z3", "resourcePath": path, "httpMethod": method,
            "extendedRequestId": "abc=", "requestTime": "27/Nov/2026:12:00:00 +0000",
            "path": f"/api{path}", "accountId": "123456789012", "protocol": "HTTP/1.1",
            "stage": "api", "domainPrefix": "abc123", "requestTimeEpoch": 1795780800000,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"cognitoIdentityPoolId": None, "accountId": None,
                         "cognitoIdentityId": None, "caller": None, "sourceIp": source_ip,
                         "principalOrgId": None, "accessKey": None,
                         "cognitoAuthenticationType": None,
                         "cognitoAuthenticationProvider": None, "userArn": None,
                         "userAgent": "curl/8.5", "user": None},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "apiId": "abc123"},
        "body": body, "isBase64Encoded": False}


def http_api_v1_event(method, path, source_ip, headers=None, query=None, body=None):
    """API Gateway HTTP API, Lambda integration with payload format 1.0 (stage $default), as
    in AWS's example of that format (http-api-develop-integrations-lambda).
    Header names arrive lower-cased and bodies base64-encoded."""
    headers = {"host": "def456.execute-api.us-east-1.amazonaws.com", "user-agent": "curl/8.5",
               "x-forwarded-for": source_ip, "x-forwarded-proto": "https",
               **{k.lower(): v for k, v in (headers or {}).items()}}
    return {
        "version": "1.0", "resource": path, "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query or None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "def456", "authorizer": None,
            "domainName": "def456.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "def456", "extendedRequestId": "def=", "httpMethod": method,
            "identity": {"accessKey": None, "accountId": None, "caller": None,
                         "cognitoAuthenticationProvider": None,
                         "cognitoAuthenticationType": None, "cognitoIdentityId": None,
                         "cognitoIdentityPoolId": None, "principalOrgId": None,
                         "sourceIp": source_ip, "user": None, "userAgent": "curl/8.5",
                         "userArn": None},
            "path": path, "protocol": "HTTP/1.1", "requestId": "def=",
            "requestTime": "27/Nov/2026:12:00:00 +0000", "requestTimeEpoch": 1795780800000,
            "resourceId": None, "resourcePath": path, "stage": "$default"},
        "pathParameters": None, "stageVariables": None,
        "body": base64.b64encode(body.encode()).decode() if body else None,
        "isBase64Encoded": bool(body)}


URL_DOMAIN = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"


def function_url_event(method, path, source_ip, headers=None, query=None, body=None,
                       cookies=None, raw_query=None, base64_body=None):
    """A Lambda function URL request (payload format 2.0), as in AWS's example of that format
    (urls-invocation, "Request payload format"): lower-cased headers, repeated values joined
    by commas, cookies in their own list, the query string raw and, joined by commas,
    parsed; text bodies as they came, others base64-encoded."""
    headers = {"host": URL_DOMAIN, "user-agent": "curl/8.5", "x-amzn-trace-id": "Root=1-abc",
               "x-forwarded-for": source_ip, "x-forwarded-proto": "https",
               **{k.lower(): v for k, v in (headers or {}).items()}}
    raw_query = urlencode(query or {}, doseq=True) if raw_query is None else raw_query
    parsed = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        parsed[key] = f"{parsed[key]},{value}" if key in parsed else value
    if base64_body is None:
        base64_body = bool(body) and "json" not in headers.get("content-type", "json")
    event = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous", "apiId": URL_DOMAIN.split(".")[0], "authentication": None,
            "authorizer": None, "domainName": URL_DOMAIN, "domainPrefix": URL_DOMAIN.split(".")[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": "curl/8.5"},
            "requestId": "f2e1d0c9-0000-4000-8000-000000000000", "routeKey": "$default",
            "stage": "$default", "time": "27/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795780800000},
        "pathParameters": None, "isBase64Encoded": base64_body, "stageVariables": None}
    if parsed:
        event["queryStringParameters"] = parsed
    if cookies:
        event["cookies"] = cookies
    if body:
        event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    return event


def http_api_v2_event(method, path, source_ip, headers=None, query=None, body=None):
    """API Gateway HTTP API, payload format 2.0, as the template integrates it (issue 29): the
    function URL's shape, with the API's domain, a real account id and the matched route key
    (`$default`, or `GET /device/jobs`, the one route of its own)."""
    event = function_url_event(method, path, source_ip, headers, query, body)
    domain = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
    route = f"{method} {path}" if f"{method} {path}" == "GET /device/jobs" else "$default"
    event["headers"]["host"] = domain
    event["routeKey"] = route
    event["requestContext"].update({"accountId": "123456789012", "apiId": "a1b2c3d4e5",
                                    "domainName": domain, "domainPrefix": "a1b2c3d4e5",
                                    "routeKey": route})
    return event


FRONT_DOORS = {"rest": rest_event, "http-api-v1": http_api_v1_event,
               "http-api-v2": http_api_v2_event, "function-url": function_url_event}


class LambdaContext:
    function_name = "smsgw-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self):
        return 25000


def call(event):
    """The Lambda entry point chalice deploys (`app.app`), as Lambda calls it."""
    from app import app
    return app(event, LambdaContext())


def invoke(event):
    answer = call(event)
    return answer["statusCode"], json.loads(answer["body"])


def compat(make_event, source_ip, key, headers=None, how="form"):
    values = {"api_key": key, "action": "device_status"}
    if how == "query":
        return invoke(make_event("GET", "/myAPI.php", source_ip, headers,
                                 {k: [v] for k, v in values.items()}))
    return invoke(make_event("POST", "/myAPI.php", source_ip, {
        "Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        body=urlencode(values)))


@pytest.mark.parametrize("door", sorted(FRONT_DOORS))
@pytest.mark.parametrize("how", ["form", "query"])
def test_whitelist_reads_the_request_context_not_headers(door, how, account):
    make_event = FRONT_DOORS[door]
    acct, key, _, _ = account
    accounts.set_whitelist(acct.account_id, ["203.0.113.0/24", "2001:db8::/32"])
    status, body = compat(make_event, "198.51.100.7", key, SPOOF, how)
    assert status == 200 and body["status"] == "error", body
    assert body["data"]["error_code"] == "forbidden" and "198.51.100.7" in body["message"]
    for allowed in ("203.0.113.200", "2001:db8:1::5"):
        status, body = compat(make_event, allowed, key, how=how)
        assert body["status"] == "success", (door, allowed, body)
    accounts.set_whitelist(acct.account_id, [])
    assert compat(make_event, "198.51.100.7", key, how=how)[1]["status"] == "success"


@pytest.mark.parametrize("door", sorted(FRONT_DOORS))
def test_device_protocol_through_each_front_door(door, account):
    make_event = FRONT_DOORS[door]
    acct, _, device, token = account
    sent = sending.send(acct.account_id, device, "+8801712345678", "Hi").message.message_id
    auth = {"Authorization": f"Bearer {token}"}
    status, body = invoke(make_event("GET", "/device/jobs", "198.51.100.7", auth,
                                     {"wait": ["0"], "max": ["10"]}))
    assert status == 200 and [j["message_id"] for j in body["jobs"]] == [sent], body
    status, body = invoke(make_event("POST", "/device/reports", "198.51.100.7", {
        **auth, "Content-Type": "application/json"}, body=json.dumps(
            {"reports": [{"message_id": sent, "status": "sent"},
                         {"message_id": sent, "status": "delivered"}]})))
    assert status == 200 and [r["result"] for r in body["results"]] == ["ok", "ok"], body
    status, body = invoke(make_event("POST", "/device/heartbeat", "198.51.100.7", auth,
                                     body=json.dumps({"app_state": "running"})))
    assert status == 200 and body["status"] == "running", body


# --- the function URL (payload format 2.0) in particular ------------------------------------

def test_function_url_whitelist_denies_ipv6_whatever_the_headers_say(account):
    acct, key, _, _ = account
    accounts.set_whitelist(acct.account_id, ["2001:db8::/32"])
    spoof = {"X-Forwarded-For": "2001:db8::1", "X-Real-IP": "2001:db8::1",
             "Forwarded": 'for="[2001:db8::1]"'}
    status, body = compat(function_url_event, "2001:db9::7", key, spoof)
    assert body["status"] == "error" and "2001:db9::7" in body["message"], body
    assert compat(function_url_event, "2001:db8:ffff::7", key)[1]["status"] == "success"


def test_function_url_compat_send_then_device_claim_and_report(account):
    """An application sends through /myAPI.php (form body, base64 as the URL delivers it), the
    phone takes the job from its own queue (direct polling), claims and reports it: all
    through the function URL's events and the real handlers."""
    from chalicelib.core import settings
    from chalicelib.storage import aws
    from chalicelib.storage.tables import Message
    acct, key, device, token = account
    form = urlencode({"api_key": key, "action": "send_sms", "device_uid": device.device_uid,
                      "phone_number": "+8801712345678", "message": "Hi & bye, 100% +1"})
    status, body = invoke(function_url_event("POST", "/myAPI.php", "198.51.100.7", {
        "Content-Type": "application/x-www-form-urlencoded"}, body=form))
    assert status == 200 and body["status"] == "success", body
    sent = body["data"]["message_id"]
    [received] = aws.sqs().receive_message(
        QueueUrl=device.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
        VisibilityTimeout=settings.current().lease_seconds)["Messages"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status, body = invoke(function_url_event("POST", "/device/claims", "198.51.100.7", auth,
                                             body=json.dumps({"claims": [{
                                                 "message_id": sent,
                                                 "receipt_handle": received["ReceiptHandle"]}]})))
    assert status == 200 and body["results"] == [{"message_id": sent, "result": "leased"}], body
    stored = Message.get(acct.account_id, sent)
    assert (stored.status, stored.body) == ("processing", "Hi & bye, 100% +1")
    # a JSON body base64-encoded (a client sending it as application/octet-stream would get
    # it so) reads the same
    status, body = invoke(function_url_event("POST", "/device/reports", "198.51.100.7", auth,
                                             body=json.dumps({"reports": [
                                                 {"message_id": sent, "status": "sent"}]}),
                                             base64_body=True))
    assert status == 200 and body["results"][0]["result"] == "ok", body
    assert Message.get(acct.account_id, sent).status == "sent"


def test_function_url_repeated_query_keys_and_exact_values(account):
    acct, key, device, token = account
    auth = {"Authorization": f"Bearer {token}"}
    # 2.0's queryStringParameters would say wait="0,5"; the raw query keeps both values
    status, body = invoke(function_url_event("GET", "/device/jobs", "198.51.100.7", auth,
                                             raw_query="wait=0&max=10&wait=5"))
    assert status == 400 and body["error"]["parameter"] == "wait", body
    assert "Duplicate" in body["error"]["message"]
    status, body = invoke(function_url_event("GET", "/device/jobs", "198.51.100.7", auth,
                                             raw_query="wait=0&max=10"))
    assert status == 200 and body["jobs"] == [], body
    # percent-escapes decoded exactly: a comma, an ampersand and a plus inside one value
    raw = urlencode({"api_key": key, "action": "send_sms", "device_uid": device.device_uid,
                     "phone_number": "+8801712345678", "message": "a,b&c+d=e"})
    status, body = invoke(function_url_event("GET", "/myAPI.php", "198.51.100.7",
                                             raw_query=raw))
    assert body["status"] == "success", body
    from chalicelib.storage.tables import Message
    assert Message.get(acct.account_id, body["data"]["message_id"]).body == "a,b&c+d=e"


def test_function_url_rest_v1_path_parameter_and_whitelist(account):
    acct, key, device, _ = account
    sent = sending.send(acct.account_id, device, "+8801712345678", "Hi").message.message_id
    auth = {"Authorization": f"Bearer {key}"}
    status, body = invoke(function_url_event("GET", f"/v1/messages/{sent}", "198.51.100.7",
                                             auth))
    assert status == 200 and body["id"] == sent and body["message"] == "Hi", body
    assert invoke(function_url_event("GET", "/v1/messages/123", "198.51.100.7", auth))[0] == 404
    accounts.set_whitelist(acct.account_id, ["203.0.113.0/24"])
    status, body = invoke(function_url_event("GET", f"/v1/messages/{sent}", "198.51.100.7",
                                             {**auth, **SPOOF}))
    assert status == 403 and body["code"] == "forbidden", body
    status, _ = invoke(function_url_event("GET", f"/v1/messages/{sent}/", "203.0.113.9", auth))
    assert status == 200  # a trailing slash names the same route, as on API Gateway


def test_function_url_rest_v1_webhook_routes_two_path_parameters_and_patch(account,
                                                                           settings_override):
    from chalicelib.domain import webhooks
    settings_override(webhook_allow_private=True)
    webhooks.ensure_queue()
    auth = {"Authorization": f"Bearer {account[1]}", "Content-Type": "application/json"}
    status, made = invoke(function_url_event("POST", "/v1/webhooks", "198.51.100.7", auth,
                                             body=json.dumps({"url": "http://127.0.0.1:9/h"})))
    assert status == 201 and made["secret"], made
    hook = f"/v1/webhooks/{made['webhook_id']}"
    status, off = invoke(function_url_event("PATCH", hook, "198.51.100.7", auth,
                                            body='{"enabled": false}'))
    assert (status, off["status"]) == (200, "disabled"), off
    status, tested = invoke(function_url_event("POST", f"{hook}/test", "198.51.100.7", auth))
    assert status == 202, tested
    status, problem = invoke(function_url_event(
        "GET", f"{hook}/deliveries/{tested['event_id']}", "198.51.100.7", auth))
    assert (status, problem["parameter"]) == (404, "event_id")  # not attempted yet
    status, page = invoke(function_url_event("GET", f"{hook}/deliveries", "198.51.100.7", auth,
                                             raw_query="limit=5&state=dead"))
    assert (status, page["deliveries"]) == (200, []), page


def test_function_url_dashboard_sign_in_cookies_both_ways(account):
    """Cookies arrive in 2.0's `cookies` list and leave in it; links and redirects have no
    stage prefix and cookies are Secure (the URL is https)."""
    import re
    from http.cookies import SimpleCookie

    from tests.dashboard_helpers import PASSWORD, owner
    acct = account[0]
    owner(acct.account_id, "owner@example.com")
    jar = {}

    def page(method, path, form=None):
        answer = call(function_url_event(
            method, path, "198.51.100.7",
            {"Content-Type": "application/x-www-form-urlencoded",
             "Origin": f"https://{URL_DOMAIN}"} if form else None,
            body=urlencode(form) if form else None,
            cookies=[f"{k}={v}" for k, v in jar.items()]))
        assert "set-cookie" not in {k.lower() for k in answer["headers"]}, answer["headers"]
        for value in answer.get("cookies", []):
            morsel = next(iter(SimpleCookie(value).values()))
            assert "Secure" in value and "HttpOnly" in value, value
            jar[morsel.key] = morsel.value
        return answer

    assert page("GET", "/dashboard/keys")["headers"]["Location"] == "/dashboard/signin"
    signin = page("GET", "/dashboard/signin")
    assert signin["statusCode"] == 200 and jar, signin
    assert 'action="/dashboard/signin"' in signin["body"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', signin["body"])[1]
    answer = page("POST", "/dashboard/signin", {"csrf": csrf, "email": "owner@example.com",
                                                "password": PASSWORD})
    assert answer["statusCode"] == 303, answer
    assert answer["headers"]["Location"].startswith("/dashboard")
    assert len(answer["cookies"]) >= 1
    home = page("GET", "/dashboard/account")
    assert home["statusCode"] == 200 and "owner@example.com" in home["body"], home["statusCode"]
    jar.clear()  # without the cookies, signed out again
    assert page("GET", "/dashboard/keys")["statusCode"] == 303


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nowhere", 404), ("GET", "/", 404), ("GET", "/device", 404),
    ("POST", "/dashboard/a/b/c/d", 404), ("GET", "//device/jobs", 404),
    ("GET", "/myapi.php", 404), ("DELETE", "/device/jobs", 405),
    ("GET", "/v1/otp/verify", 405)])
def test_function_url_unknown_paths_and_methods_answer_plainly(aws_mock, method, path, status):
    answer = call(function_url_event(method, path, "198.51.100.7"))
    assert answer["statusCode"] == status, answer
    assert "Traceback" not in answer["body"] and json.loads(answer["body"])
    assert set(answer) <= {"statusCode", "headers", "body", "isBase64Encoded", "cookies"}


# --- end to end: real HTTP on loopback through a function URL stand-in ----------------------

@pytest.fixture
def url_server(aws_mock):
    from tests.function_url_server import serve
    servers = []

    def start(host="127.0.0.1"):
        server, base = serve(host)
        servers.append(server)
        return base
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _compat_from(base, source, key, headers=None):
    """device_status over a real TCP connection from the loopback address `source`."""
    import http.client
    from urllib.parse import urlsplit
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10,
                                            source_address=(source, 0))
    try:
        connection.request("POST", "/myAPI.php", body=urlencode(
            {"api_key": key, "action": "device_status"}), headers={
            "Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def test_function_url_end_to_end_whitelist_reads_the_connection(url_server, account):
    """The address is the TCP peer's: a request from 127.0.0.1 claiming 127.0.0.2 in every
    forwarding header is refused; one really from 127.0.0.2 is served (and over IPv6, ::1)."""
    acct, key, _, _ = account
    base = url_server()
    accounts.set_whitelist(acct.account_id, ["127.0.0.2/32"])
    claim = {"X-Forwarded-For": "127.0.0.2", "X-Real-IP": "127.0.0.2",
             "Forwarded": "for=127.0.0.2"}
    refused = _compat_from(base, "127.0.0.1", key, claim)
    assert refused["data"]["error_code"] == "forbidden" and "127.0.0.1" in refused["message"]
    assert _compat_from(base, "127.0.0.2", key)["status"] == "success"
    if not socket_has_ipv6():
        pytest.skip("no IPv6 loopback here")
    base6 = url_server("::1")
    refused = _compat_from(base6, "::1", key, claim)
    assert refused["data"]["error_code"] == "forbidden" and "::1" in refused["message"]
    accounts.set_whitelist(acct.account_id, ["::1/128"])
    assert _compat_from(base6, "::1", key)["status"] == "success"


def socket_has_ipv6() -> bool:
    import socket
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_function_url_end_to_end_send_poll_report_and_dashboard(url_server, account):
    """An application, the phone agent's own HTTP client and a browser-like session, all with
    the function URL as their base URL."""
    import sys
    from pathlib import Path

    import requests
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))
    from smsgw_agent.client import GatewayClient

    from chalicelib.storage.tables import Message
    from tests.dashboard_helpers import PASSWORD, owner
    acct, key, device, token = account
    base = url_server()
    sent = requests.post(base + "myAPI.php", data={
        "api_key": key, "action": "send_sms", "device_uid": device.device_uid,
        "phone_number": "+8801712345678", "message": "end to end"}, timeout=10).json()
    assert sent["status"] == "success", sent
    phone = GatewayClient(base, token)
    [job] = phone.jobs(wait=0, max_jobs=10)
    assert job["message_id"] == sent["data"]["message_id"] and job["message"] == "end to end"
    results = phone.report([{"message_id": job["message_id"], "status": "sent"},
                            {"message_id": job["message_id"], "status": "delivered"}])
    assert [r["result"] for r in results] == ["ok", "ok"]
    assert Message.get(acct.account_id, job["message_id"]).status == "delivered"

    owner(acct.account_id, "owner@example.com")
    browser = requests.Session()
    signin = browser.get(base + "dashboard/signin", timeout=10)
    import re
    csrf = re.search(r'name="csrf" value="([^"]+)"', signin.text)[1]
    answer = browser.post(base + "dashboard/signin", data={
        "csrf": csrf, "email": "owner@example.com", "password": PASSWORD},
        headers={"Origin": base.rstrip("/")}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text[:500]
    assert answer.headers["Location"].startswith("/dashboard")
    page = browser.get(base + "dashboard/account", timeout=10)
    assert page.status_code == 200 and "owner@example.com" in page.text
    assert browser.get(base + "nowhere", timeout=10).status_code == 404
