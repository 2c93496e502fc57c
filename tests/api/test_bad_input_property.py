"""Property-based bad input: hundreds of malformed requests across all actions always get the
error envelope (HTTP 200, never a 5xx or a trace) and leave every table and queue unchanged; on
/device/* the same holds with HTTP 400. Issue 14 added JSON duplicate keys, nesting, lone
surrogates, non-ASCII digits and non-string types."""
import json
from urllib.parse import urlencode

import boto3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.storage import tables

PHONE = "+8801712345678"
ACTIONS = ["send_sms", "send_otp", "verify_otp", "check_status", "get_history", "device_status"]
nasty_text = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["' OR '1'='1", "<script>alert(1)</script>", "${jndi:ldap://x}",
                     "../../etc/passwd", "%00", "\u202e\u0000", "🙂" * 40, "NaN", "1e309",
                     "-0", "0x10", " ", "\t\n"]),
)


def _not_int_in(low, high):
    return st.one_of(st.integers().filter(lambda n: n < low or n > high).map(str),
                     st.text(alphabet="abcxyz.-_ ", min_size=1, max_size=10))


# Digits other than ASCII 0-9 (int() takes them all), and the forms int() accepts besides digits.
unicode_digits = st.one_of(
    st.text(alphabet=st.characters(categories=["Nd"]).filter(lambda c: not c.isascii()),
            min_size=1, max_size=3),
    st.sampled_from(["0_1", "1_0", "+1", "+2", "\u0661", "\uff12", "\u09e8"]))
NUMERIC = {"send_sms": ["sim_slot"], "send_otp": ["length", "expiry"],
           "check_status": ["message_id"], "get_history": ["limit"]}
not_a_string = st.one_of(st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
                         st.lists(st.text(max_size=3), max_size=2),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def malformed(draw):
    """(action, params, how, extra_query) where the params are surely invalid for the action."""
    action = draw(st.sampled_from(ACTIONS))
    base = {
        "send_sms": {"phone_number": PHONE, "message": "hello", "sim_slot": "1"},
        "send_otp": {"phone_number": PHONE, "length": "6", "expiry": "5"},
        "verify_otp": {"phone_number": PHONE, "otp_code": "123456"},
        "check_status": {"message_id": "1"},
        "get_history": {"type": "all", "limit": "5"},
        "device_status": {},
    }[action]
    params = dict(base)
    mutations = {
        "unknown_param": lambda: params.__setitem__(
            draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
                 .filter(lambda n: n not in base and n not in (
                     "api_key", "action", "device_uid", "device_id", "message", "cursor",
                     "idempotency_key", "valid_for", "expires_at", "type", "limit",
                     "length", "expiry", "otp_code", "sim_slot", "message_id",
                     "phone_number"))),
            draw(nasty_text)),
        "bad_action": lambda: params.__setitem__("action", draw(
            st.text(max_size=20).filter(lambda a: a.strip() not in ACTIONS))),
        "bad_key": lambda: params.__setitem__("api_key", draw(
            st.text(max_size=70).filter(lambda k: len(k) != 64))),
    }
    if action in ("send_sms", "send_otp", "verify_otp"):
        mutations["bad_phone"] = lambda: params.__setitem__("phone_number", draw(st.one_of(
            st.text(alphabet="abc-()# ", max_size=20), st.text(alphabet="0123456789", max_size=4),
            st.just(""))))
        mutations["no_phone"] = lambda: params.pop("phone_number")
    if action == "send_sms":
        mutations["bad_slot"] = lambda: params.__setitem__("sim_slot", draw(_not_int_in(1, 2)))
        mutations["long_message"] = lambda: params.__setitem__("message", "x" * draw(
            st.integers(1531, 3900)))
        mutations["empty_message"] = lambda: params.__setitem__("message", draw(
            st.sampled_from(["", " ", "\n\t"])))
    if action == "send_otp":
        mutations["bad_length"] = lambda: params.__setitem__("length", draw(_not_int_in(4, 10)))
        mutations["bad_expiry"] = lambda: params.__setitem__("expiry", draw(_not_int_in(1, 30)))
        mutations["no_placeholder"] = lambda: params.__setitem__("message", draw(
            st.text(min_size=1, max_size=40).filter(lambda t: "{otp}" not in t and t.strip())))
    for name in NUMERIC.get(action, []):
        mutations[f"unicode_digits_{name}"] = lambda name=name: params.__setitem__(
            name, draw(unicode_digits))
    if action == "verify_otp":
        mutations["bad_code"] = lambda: params.__setitem__("otp_code", draw(
            st.text(alphabet="abcXYZ-+. ", min_size=1, max_size=12)))
    if action == "check_status":
        mutations["bad_id"] = lambda: params.__setitem__("message_id", draw(st.one_of(
            st.integers(max_value=-1).map(str), st.integers(min_value=2 ** 53).map(str),
            st.text(alphabet="abc.-", min_size=1, max_size=8))))
    if action == "get_history":
        mutations["bad_limit"] = lambda: params.__setitem__("limit", draw(st.one_of(
            st.integers(max_value=0).map(str), st.text(alphabet="abc.", min_size=1))))
        mutations["bad_type"] = lambda: params.__setitem__("type", draw(
            st.text(max_size=12).filter(lambda t: t.strip().lower() not in (
                "", "all", "incoming", "outgoing"))))
        mutations["bad_cursor"] = lambda: params.__setitem__("cursor", draw(
            st.text(alphabet="abc!@#=", min_size=1, max_size=30)))
    chosen = draw(st.lists(st.sampled_from(sorted(mutations)), min_size=1, max_size=3,
                           unique=True))
    for name in chosen:
        mutations[name]()
    how = draw(st.sampled_from(["query", "form", "json", "json_typed", "duplicate",
                                "json_duplicate", "json_nested", "json_surrogate",
                                "json_not_string"]))
    return action, params, how, chosen, draw(st.data())


def _json_text(values: dict, how: str, data) -> str:
    """A JSON body for `values`, made bad the way `how` says."""
    names = sorted(values)
    items = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in values.items()]
    if how == "json_duplicate":
        name = data.draw(st.sampled_from(names))
        again = data.draw(st.one_of(st.just(values[name]), nasty_text))
        items.insert(data.draw(st.integers(0, len(items))), f"{json.dumps(name)}: "
                     f"{json.dumps(again)}")
    elif how == "json_nested":
        depth = data.draw(st.integers(9, 5000))
        nested = "[" * depth + "1" + "]" * depth
        if data.draw(st.booleans()):
            return nested if data.draw(st.booleans()) else "[" * depth
        items = _with_raw(values, data.draw(st.sampled_from(names)), nested)
    elif how == "json_surrogate":
        name = data.draw(st.sampled_from(names))
        surrogate = f"\\u{data.draw(st.integers(0xD800, 0xDFFF)):04x}"
        text = json.dumps(values[name])
        at = data.draw(st.integers(1, len(text) - 1))
        items = _with_raw(values, name, text[:at] + surrogate + text[at:])
    elif how == "json_not_string":
        name = data.draw(st.sampled_from(names))
        value = data.draw(not_a_string)
        if name in ("sim_slot", "length", "expiry", "limit", "message_id", "device_id"):
            value = data.draw(st.one_of(st.booleans(), st.none(), st.floats(),
                                        st.lists(st.integers(), max_size=2)))
        raw = data.draw(st.sampled_from(["NaN", "Infinity", "-Infinity", json.dumps(value)]))
        items = _with_raw(values, name, raw)
    return "{" + ", ".join(items) + "}"


def _with_raw(values: dict, name: str, raw: str) -> list:
    return [f"{json.dumps(k)}: {raw if k == name else json.dumps(v)}" for k, v in values.items()]


def _state(device):
    sqs = boto3.client("sqs", region_name="us-east-1")
    depth = sqs.get_queue_attributes(QueueUrl=device.queue_url,
                                     AttributeNames=["ApproximateNumberOfMessages"])
    return [model.count() for model in tables.MODELS] + [
        depth["Attributes"]["ApproximateNumberOfMessages"]]


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=malformed())
def test_malformed_requests_get_error_envelopes_and_change_nothing(client, account, case):
    _, key, device, _ = account
    action, params, how, chosen, data = case
    values = {"api_key": key, "action": action, "device_uid": device.device_uid}
    if action in ("verify_otp", "check_status", "get_history", "device_status"):
        values.pop("device_uid")
    values.update(params)
    before = _state(device)
    if how == "query":
        response = client.http.get("/myAPI.php?" + urlencode(values))
    elif how in ("json", "json_typed"):
        if how == "json_typed" and "sim_slot" in values:
            values["sim_slot"] = [values["sim_slot"]]
        response = client.http.post("/myAPI.php", headers={"content-type": "application/json"},
                                    body=json.dumps(values))
    elif how.startswith("json_"):
        response = client.http.post("/myAPI.php", headers={"content-type": "application/json"},
                                    body=_json_text(values, how, data))
    elif how == "duplicate":
        response = client.http.post(
            "/myAPI.php?" + urlencode({"action": action}),
            headers={"content-type": "application/x-www-form-urlencoded"},
            body=urlencode(values))
    else:
        response = client.http.post(
            "/myAPI.php", headers={"content-type": "application/x-www-form-urlencoded"},
            body=urlencode(values))
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    assert set(body) == {"status", "message", "response", "data"}
    assert body["status"] == "error" and body["response"] is False, (chosen, body)
    assert body["message"] and "Traceback" not in body["message"]
    assert body["data"] is None or body["data"]["error_code"] not in (
        "internal_error", "temporarily_unavailable"), body
    assert _state(device) == before


# /device/*: a valid body per endpoint, then one corruption the parser or the field checks must
# refuse. Raw(...) is JSON text spliced in as it is.
class Raw(str):
    pass


def _dump(obj, duplicate=None) -> str:
    if isinstance(obj, Raw):
        return str(obj)
    if isinstance(obj, dict):
        items = [f"{json.dumps(k)}: {_dump(v, duplicate)}" for k, v in obj.items()]
        if duplicate is obj:
            first = next(iter(obj))
            items.append(f"{json.dumps(first)}: {_dump(obj[first])}")
        return "{" + ", ".join(items) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(_dump(v, duplicate) for v in obj) + "]"
    return json.dumps(obj)


DEVICE_BODIES = {
    "heartbeat": lambda: {"app_state": "running", "battery": 50, "signal": 3, "sim_count": 2},
    "reports": lambda: {"reports": [{"message_id": 1, "status": "failed", "reason": "x"}]},
    "incoming": lambda: {"messages": [{"device_message_id": "d-1", "phone_number": PHONE,
                                       "message": "hi", "sim_slot": 1, "received_at": 1}]},
    "claims": lambda: {"claims": [{"message_id": 1, "receipt_handle": "rh"}]},
}
DEVICE_INTS = {"battery", "signal", "sim_count", "message_id", "sim_slot", "received_at"}


@st.composite
def device_case(draw):
    endpoint = draw(st.sampled_from(sorted(DEVICE_BODIES)))
    document = DEVICE_BODIES[endpoint]()
    item = next(iter(document.values()))
    item = item[0] if isinstance(item, list) else document
    field = draw(st.sampled_from(sorted(item)))
    corruption = draw(st.sampled_from(["duplicate", "duplicate_top", "nested", "surrogate",
                                       "not_string" if field not in DEVICE_INTS else "bad_int"]))
    if corruption == "duplicate":
        return endpoint, _dump(document, duplicate=item), corruption
    if corruption == "duplicate_top":
        return endpoint, _dump(document, duplicate=document), corruption
    if corruption == "nested":
        depth = draw(st.integers(9, 5000))
        if draw(st.booleans()):
            return endpoint, "[" * depth, corruption
        item[field] = Raw("[" * depth + "1" + "]" * depth)
    elif corruption == "surrogate":
        text = json.dumps(str(item[field]))
        at = draw(st.integers(1, len(text) - 1))
        item[field] = Raw(text[:at] + f"\\u{draw(st.integers(0xD800, 0xDFFF)):04x}" + text[at:])
    elif corruption == "not_string":
        item[field] = draw(not_a_string)
    else:
        item[field] = draw(st.one_of(unicode_digits, st.floats(), st.booleans(),
                                     st.sampled_from([Raw("NaN"), Raw("Infinity"),
                                                      Raw("-Infinity"), Raw("1e400")])))
    return endpoint, _dump(document), corruption


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=device_case())
def test_malformed_device_requests_get_400_and_change_nothing(client, account, case):
    _, _, device, token = account
    endpoint, body, corruption = case
    before = _state(device)
    response = client.http.post(f"/device/{endpoint}", body=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert response.status_code == 400, (corruption, body[:200], response.body)
    assert json.loads(response.body)["error"]["code"] == "invalid_parameter"
    assert "Retry-After" not in response.headers
    assert _state(device) == before
