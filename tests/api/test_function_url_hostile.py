"""The function URL front door fed what a careless client or an attacker can make Lambda put in
a payload 2.0 event (and a few things only a broken integration could): each request gets a
plain 4xx or the right answer from the real handlers on moto, never a 500 or a traceback, and
the IP whitelist only ever reads requestContext.http.sourceIp."""
import json

import pytest

from chalicelib.domain import accounts
from tests.api.test_front_door import call, function_url_event

IP = "198.51.100.7"
SEND = '{"to": ["+8801712345678"], "text": "hi"}'


def plain(answer, status):
    assert answer["statusCode"] == status, answer
    assert "Traceback" not in answer["body"] and "InternalServerError" not in answer["body"]
    return json.loads(answer["body"]) if answer["body"] else None


@pytest.mark.parametrize("path, body", [
    ("/v1/messages", "!!!notbase64"), ("/myAPI.php", "abc"), ("/device/reports", "abcde"),
    ("/dashboard/signin", "a")])
def test_body_flagged_base64_that_is_not_is_a_400(account, path, body):
    _, key, _, token = account
    event = function_url_event("POST", path, IP, {
        "authorization": f"Bearer {token if path.startswith('/device') else key}",
        "content-type": "application/octet-stream"}, body="x")
    event["isBase64Encoded"], event["body"] = True, body
    assert "base64" in plain(call(event), 400)["message"]


def test_event_without_a_method_is_a_400(aws_mock):
    event = function_url_event("GET", "/v1/devices", IP)
    del event["requestContext"]["http"]["method"]
    plain(call(event), 400)


@pytest.mark.parametrize("path, status", [
    ("/v1//devices", 404), ("//v1/devices", 404), ("/v1/./devices", 404),
    ("/v1/devices/", 200), ("/v1/%64evices", 200), ("/v1/messages/a%2Fb", 400),
    ("/v1/messages/..", 400), ("/v1/messages/%2e%2e", 400),
    ("/v1/webhooks/wh_0123456789abcdef%2F..", 400), ("/v1/messages/" + "9" * 100_000, 400)])
def test_odd_paths(account, path, status):
    _, key, _, _ = account
    plain(call(function_url_event("GET", path, IP, {"authorization": f"Bearer {key}"})), status)


@pytest.mark.parametrize("raw, status", [
    ("a=%zz", 400), ("&&", 200), ("=x", 400), ("a", 400), ("limit=%ff", 400),
    ("limit=%00", 400), ("limit=1&limit=2", 400), ("cursor=%zz", 400),
    ("limit=1;direction=all", 400), ("a=b&" * 20_000, 400), ("limit=" + "9" * 100_000, 400)])
def test_malformed_query_strings(account, raw, status):
    _, key, _, _ = account
    plain(call(function_url_event("GET", "/v1/messages", IP, {"authorization": f"Bearer {key}"},
                                  raw_query=raw)), status)


@pytest.mark.parametrize("cookies", [
    ["a=b,c=d"], ["a=b; c=d"], [""], ["=", ";", ","], ["smsgw_session=x;y"], ['"'],
    ["smsgw_session"], ["smsgw_session=" + "x" * 10_000]])
def test_odd_cookies_are_simply_not_a_session(aws_mock, cookies):
    answer = call(function_url_event("GET", "/dashboard/account", IP, cookies=cookies))
    assert answer["statusCode"] == 303 and "signin" in answer["headers"]["Location"], answer


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "TRACE", "FOO", "CONNECT", ""])
@pytest.mark.parametrize("path", ["/v1/devices", "/myAPI.php", "/dashboard/signin"])
def test_other_methods_are_405(aws_mock, method, path):
    plain(call(function_url_event(method, path, IP)), 405)


def test_joined_duplicate_headers_are_refused_not_merged(account):
    """2.0 joins a header sent twice with a comma: neither value may win."""
    _, key, _, token = account
    plain(call(function_url_event("GET", "/v1/devices", IP,
                                  {"authorization": f"Bearer {key},Bearer {key}"})), 401)
    plain(call(function_url_event("GET", "/device/jobs", IP,
                                  {"authorization": f"Bearer {token}, Bearer {token}"})), 401)
    plain(call(function_url_event("POST", "/v1/messages", IP, {
        "authorization": f"Bearer {key}", "content-type": "application/json,text/plain"},
        body=SEND)), 415)


def test_missing_optional_keys(account):
    _, key, _, _ = account
    event = function_url_event("GET", "/v1/devices", IP, {"authorization": f"Bearer {key}"})
    del event["rawQueryString"], event["rawPath"]
    assert "cookies" not in event and "queryStringParameters" not in event
    plain(call(event), 200)
    event = function_url_event("GET", "/v1/devices", IP)
    del event["headers"]
    plain(call(event), 401)
    plain(call(function_url_event("POST", "/v1/messages", IP, {
        "authorization": f"Bearer {key}", "content-type": "application/json"})), 400)


@pytest.mark.parametrize("source", [
    None, "", "203.0.113.5, 198.51.100.7", " 203.0.113.5", "203.0.113.5%eth0", "garbage",
    "[203.0.113.5]", "203.0.113.005", "fe80::1%eth0"])
def test_whitelist_only_trusts_a_clean_source_ip(account, source):
    """Whatever sourceIp holds, an address the whitelist allows in a header never gets in."""
    acct, key, _, _ = account
    accounts.set_whitelist(acct.account_id, ["203.0.113.0/24"])
    spoof = {"authorization": f"Bearer {key}", "x-forwarded-for": "203.0.113.5",
             "forwarded": "for=203.0.113.5", "x-real-ip": "203.0.113.5"}
    event = function_url_event("GET", "/v1/devices", "x", spoof)
    event["requestContext"]["http"]["sourceIp"] = source
    if source is None:
        del event["requestContext"]["http"]["sourceIp"]
    plain(call(event), 403)
    event["requestContext"]["http"]["sourceIp"] = "203.0.113.5"
    plain(call(event), 200)


@pytest.mark.parametrize("stray", [
    'prefs={"theme":"dark"}', 'a="', "note=two words", "ga=GA1.2.3, x=y"])
def test_a_stray_cookie_of_another_app_does_not_sign_the_owner_out(account, stray):
    """Browsers send every cookie of the host (127.0.0.1 on the local gateway is shared by
    all a developer's apps): one that Python's strict SimpleCookie cannot parse used to hide
    the session cookie after it, so the signed-in owner was sent back to sign-in."""
    from chalicelib.domain import sessions, users
    from tests.dashboard_helpers import owner
    owner(account[0].account_id, "owner@example.com")
    token = sessions.start(users.get("owner@example.com"))
    for cookies in ([f"smsgw_session={token}", stray], [stray, f"smsgw_session={token}"]):
        answer = call(function_url_event("GET", "/dashboard/account", IP, cookies=cookies))
        assert answer["statusCode"] == 200 and "owner@example.com" in answer["body"], cookies


def test_of_two_session_cookies_the_last_is_read(account):
    """As before (SimpleCookie): the browser sends a cookie with a longer Path first, so one
    tossed from a sibling domain for /dashboard loses to the gateway's own."""
    from chalicelib.domain import sessions, users
    from tests.dashboard_helpers import owner
    owner(account[0].account_id, "owner@example.com")
    token = sessions.start(users.get("owner@example.com"))
    answer = call(function_url_event("GET", "/dashboard/account", IP, cookies=[
        f"smsgw_session={token}", "smsgw_session=tossed"]))
    assert answer["statusCode"] == 303, answer["statusCode"]
    answer = call(function_url_event("GET", "/dashboard/account", IP, cookies=[
        "smsgw_session=tossed", f"smsgw_session={token}"]))
    assert answer["statusCode"] == 200, answer["statusCode"]
