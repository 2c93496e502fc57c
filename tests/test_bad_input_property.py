"""Property-based bad input: hundreds of malformed requests across all actions always get the
error envelope (HTTP 200, never a 5xx or a trace) and leave every table and queue unchanged."""
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
    how = draw(st.sampled_from(["query", "form", "json", "json_typed", "duplicate"]))
    return action, params, how, chosen


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
    action, params, how, chosen = case
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
    assert _state(device) == before
