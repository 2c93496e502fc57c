"""Every operation of REST v1's OpenAPI document (/v1/openapi.json) driven with the hostile
alphabet of the other surfaces' property tests (tests/api/test_bad_input_property.py): nasty
text, non-ASCII digits, non-strings, lone surrogates, NaN/Infinity, duplicate keys, deep
nesting, in path ids, query values and bodies. No answer is >= 500, every refusal is
problem+json, and a refused request changes nothing (issue 25)."""
import json
import re
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.storage import tables
from tests.api.test_bad_input_property import nasty_text, not_a_string, unicode_digits

COUNTS = {"examples": 0, "5xx": 0}
PHONE = "+8801712345678"


def _operations(client):
    document = json.loads(client.http.get("/v1/openapi.json").body)
    return [(method.upper(), path, op) for path, ops in sorted(document["paths"].items())
            for method, op in sorted(ops.items())]


hostile_value = st.one_of(nasty_text, unicode_digits, st.just("+5"), st.just(" 5"),
                          st.just("a\ud800b"), st.integers().map(str))


def _surrogate_text(value) -> str:
    text = json.dumps(value)
    return text[:1] + "\\udc00" + text[1:] if text.startswith('"') else '"\\ud800"'


@st.composite
def hostile_request(draw, operations):
    method, path, op = draw(st.sampled_from(operations))
    params = {p["name"]: p for p in op.get("parameters", [])}
    url = path
    for name, param in params.items():
        if param["in"] == "path":
            value = draw(st.one_of(st.just("1"), st.just("wh_0123456789abcdef"), hostile_value))
            url = url.replace("{" + name + "}", quote(value.encode("utf-8", "surrogatepass"),
                                                      safe=""))
    query = {}
    for name, param in params.items():
        if param["in"] == "query" and draw(st.booleans()):
            query[name] = draw(hostile_value)
    if draw(st.integers(0, 5)) == 0:
        query[draw(st.text(alphabet="abcxyz_", min_size=1, max_size=8))] = draw(hostile_value)
    if query:
        url += "?" + urlencode({k: v.encode("utf-8", "surrogatepass") for k, v in query.items()})
    body = None
    if "requestBody" in op or draw(st.integers(0, 4)) == 0:
        fields = {"recipients": [PHONE], "message": "hi {otp}", "phone_number": PHONE,
                  "otp_code": "123456", "url": "http://127.0.0.1:9/h", "enabled": True,
                  "since": "2026-01-01T00:00:00Z", "device_id": 1, "overlap": 60}
        props = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                 .get("schema", {}).get("properties", {}))
        document = {k: v for k, v in fields.items() if k in props} or {"x": 1}
        name = draw(st.sampled_from(sorted(document)))
        how = draw(st.sampled_from(["value", "not_string", "surrogate", "nan", "duplicate",
                                    "nested", "garbage"]))
        items = {k: json.dumps(v) for k, v in document.items()}
        if how == "value":
            items[name] = json.dumps(draw(hostile_value), ensure_ascii=False).encode(
                "utf-8", "surrogatepass").decode("utf-8", "surrogatepass")
        elif how == "not_string":
            items[name] = json.dumps(draw(not_a_string))
        elif how == "surrogate":
            items[name] = _surrogate_text(document[name])
        elif how == "nan":
            items[name] = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]))
        elif how == "nested":
            depth = draw(st.integers(9, 3000))
            items[name] = "[" * depth + "]" * depth
        text = "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in items.items())
        if how == "duplicate":
            text += f", {json.dumps(name)}: {items[name]}"
        body = text + "}"
        if how == "garbage":
            body = draw(st.sampled_from(["", "{", "[]", "null", "\"x\"", "{}}", "\x00"]))
    headers = {"content-type": draw(st.sampled_from(
        ["application/json", "application/json", "text/plain", "application/json; x=1"]))}
    return method, url, body, headers


def _state(device):
    return [model.count() for model in tables.MODELS]


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_every_operation_refuses_hostile_input_without_a_5xx(client, account, data):
    _, key, device, _ = account
    method, url, body, headers = data.draw(hostile_request(_operations(client)))
    headers["authorization"] = f"Bearer {key}"
    before = _state(device)
    raw = body.encode("utf-8", "surrogatepass") if body is not None else None
    response = getattr(client.http, method.lower())(url, headers=headers, body=raw)
    COUNTS["examples"] += 1
    COUNTS["5xx"] += response.status_code >= 500
    assert response.status_code < 500, (method, url, body, response.body[:500])
    if response.status_code >= 400:
        assert response.headers["Content-Type"] == "application/problem+json"
        problem = json.loads(response.body)
        assert problem["status"] == response.status_code and problem["detail"]
        assert "Traceback" not in problem["detail"]
    if response.status_code >= 400 or method == "GET":
        assert _state(device) == before, (method, url, body)


def test_the_fuzz_counts_are_printed(capsys):
    """Prints how many examples ran and how many answered >= 500 (for the report)."""
    with capsys.disabled():
        print(f"\nREST v1 hostile-input property: {COUNTS['examples']} examples, "
              f"{COUNTS['5xx']} answers >= 500")
    assert COUNTS["5xx"] == 0
    assert re.match(r"\d+", str(COUNTS["examples"]))
