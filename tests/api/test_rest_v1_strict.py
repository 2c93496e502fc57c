"""REST v1 held to the hardening rules (issue 25): every JSON body goes through the one strict
parser (surfaces/jsonbody.py), refusals are 400 problem+json that change nothing, and the
errors are the documented ones: 415 for a body that is not JSON, 405 with Allow for a method a
path does not serve, 400 for a cursor made for another query, integers in one spelling only."""
import json

import pytest

from chalicelib.storage import tables

PHONE = "+8801712345678"
SURROGATE = "\\ud800"


@pytest.fixture
def call(client, account):
    def request(method, path, raw=None, headers=None, key=account[1]):
        sent = {"content-type": "application/json", "authorization": f"Bearer {key}",
                **(headers or {})}
        response = getattr(client.http, method.lower())(path, headers=sent, body=raw)
        return response.status_code, json.loads(response.body), response.headers
    return request


def _state():
    return [model.count() for model in tables.MODELS]


def _webhook(call, settings_override):
    settings_override(webhook_allow_private=True)
    status, made, _ = call("POST", "/v1/webhooks", json.dumps({"url": "http://127.0.0.1:9/h"}))
    assert status == 201, made
    return made["webhook_id"]


def _bodies(device_id, hook):
    """(path, JSON text with {S} where a lone surrogate goes) for every string a body holds."""
    return [
        ("/v1/messages", '{"recipients": ["+8801712345678"], "message": "a{S}b"}'),
        ("/v1/messages", '{"recipients": ["+88017{S}12345678"], "message": "hi"}'),
        ("/v1/messages", '{"recipients": ["+8801712345678"], "message": "hi", '
                         '"idempotency_key": "k{S}"}'),
        ("/v1/messages", '{"recipients": ["+8801712345678"], "message": "hi", '
                         '"send_at": "2030{S}"}'),
        ("/v1/otp", '{"phone_number": "+8801712345678", "device_id": DEVICE, '
                    '"message": "code {otp}{S}"}'.replace("DEVICE", str(device_id))),
        ("/v1/otp", '{"phone_number": "+8801712345678{S}"}'),
        ("/v1/otp/verify", '{"phone_number": "+8801712345678", "otp_code": "12{S}34"}'),
        ("/v1/webhooks", '{"url": "http://127.0.0.1:9/{S}"}'),
        ("/v1/webhooks", '{"url": "http://127.0.0.1:9/h", "description": "x{S}"}'),
        ("/v1/webhooks", '{"url": "http://127.0.0.1:9/h", "events": ["message.sent{S}"]}'),
        (f"/v1/webhooks/{hook}/redeliver", '{"since": "2026-01-01T00:00:00Z{S}"}'),
        ('/v1/messages', '{"recipients": ["+8801712345678"], "message": "hi", "k{S}": 1}'),
    ]


def test_a_lone_surrogate_anywhere_in_any_body_is_400_and_changes_nothing(
        call, account, settings_override):
    hook = _webhook(call, settings_override)
    for path, template in _bodies(account[2].device_id, hook):
        before = _state()
        status, problem, headers = call("POST", path, template.replace("{S}", SURROGATE))
        assert status == 400, (path, template, problem)
        assert headers["Content-Type"] == "application/problem+json"
        assert problem["code"] == "invalid_request" and "surrogate" in problem["detail"]
        assert _state() == before, (path, template)


@pytest.mark.parametrize("raw, says", [
    ('{"recipients": ["+8801712345678"], "message": "hi", "sim_slot": NaN}', "NaN"),
    ('{"recipients": ["+8801712345678"], "message": "hi", "sim_slot": Infinity}', "Infinity"),
    ('{"recipients": ["+8801712345678"], "message": "hi", "message": "other"}', "Duplicate"),
    ('{"recipients": ' + "[" * 20 + "]" * 20 + ', "message": "hi"}', "nested"),
    ('{"recipients": ["+8801712345678"], "message": "' + "x" * 300_000 + '"}', "too large"),
    ('{"recipients": ["+8801712345678"], "message": "hi"', "Malformed"),
])
def test_non_strict_json_is_400_and_changes_nothing(call, raw, says):
    before = _state()
    status, problem, _ = call("POST", "/v1/messages", raw)
    assert (status, problem["code"]) == (400, "invalid_request"), problem
    assert says in problem["detail"]
    assert _state() == before


def test_a_body_that_is_not_json_is_415(call):
    status, problem, headers = call("POST", "/v1/messages", "recipients=1",
                                    headers={"content-type": "application/x-www-form-urlencoded"})
    assert (status, problem["code"]) == (415, "unsupported_media_type"), problem
    assert headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("method, path, allow", [
    ("PUT", "/v1/messages", "GET, POST"),
    ("PATCH", "/v1/messages/5", "DELETE, GET"),
    ("DELETE", "/v1/otp", "POST"),
    ("PUT", "/v1/webhooks/wh_0123456789abcdef", "DELETE, GET, PATCH"),
    ("DELETE", "/v1/devices/1", "GET, PATCH"),
])
def test_a_method_a_path_does_not_serve_is_405_problem_json_with_allow(call, method, path,
                                                                       allow):
    status, problem, headers = call(method, path, "{}")
    assert (status, problem["code"]) == (405, "method_not_allowed"), problem
    assert headers["Allow"] == allow
    assert headers["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("given", ["+5", " 5", "05", "5_0", "\u0665", "5 ", "0x5", "-0"])
def test_path_and_query_integers_have_one_spelling(call, given):
    from urllib.parse import quote
    status, problem, _ = call("GET", f"/v1/messages/{quote(given)}")
    assert (status, problem.get("parameter")) == (400, "message_id"), problem
    status, problem, _ = call("GET", f"/v1/messages?limit={quote(given)}")
    assert (status, problem.get("parameter")) == (400, "limit"), problem


def test_a_cursor_made_for_other_filters_is_400(call, account):
    status, sent, _ = call("POST", "/v1/messages", json.dumps(
        {"recipients": [f"+49170{n:07d}" for n in range(3)], "message": "hi",
         "device_id": account[2].device_id}))
    assert status == 202, sent
    status, page, _ = call("GET", "/v1/messages?limit=1&status=pending")
    assert status == 200 and page["next_cursor"], page
    status, problem, _ = call("GET", f"/v1/messages?limit=1&cursor={page['next_cursor']}")
    assert (status, problem["code"], problem["parameter"]) == (400, "invalid_cursor", "cursor")
    assert "get_history" not in problem["detail"]


def test_the_openapi_document_lists_the_new_errors(client):
    document = json.loads(client.http.get("/v1/openapi.json").body)
    send = document["paths"]["/v1/messages"]["post"]["responses"]
    assert {"400", "415"} <= set(send)
    assert "Allow" in document["components"]["responses"]["MethodNotAllowed"]["headers"]
