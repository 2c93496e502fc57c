"""Issue 14, part 2: bad input that used to be a server error or silently accepted. Each answer is
`invalid_parameter` (HTTP 400 on /device/*), without retry_after, logs no traceback and changes
nothing."""
import base64
import json
import logging

import boto3
import pytest
from click.testing import CliRunner

from chalicelib.core.errors import BadRequest
from chalicelib.domain import accounts
from chalicelib.storage import tables
from chalicelib.storage.tables import Message

PHONE = "+8801712345678"
OTHER = "+8801712345679"


def state(device):
    depth = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=device.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return [model.count() for model in tables.MODELS] + [
        depth["Attributes"]["ApproximateNumberOfMessages"]]


def post_raw(client, body, content_type="application/json"):
    response = client.http.post("/myAPI.php", headers={"content-type": content_type},
                                body=body if isinstance(body, bytes) else body.encode())
    assert response.status_code == 200
    return json.loads(response.body)


def assert_refused(answer, parameter="__any__"):
    assert answer["status"] == "error", answer
    assert answer["data"]["error_code"] == "invalid_parameter", answer
    assert "retry_after" not in answer["data"]
    if parameter != "__any__":
        assert answer["data"].get("parameter") == parameter, answer


@pytest.fixture
def quiet_log(caplog):
    caplog.set_level(logging.INFO, logger="smsgw")
    yield caplog
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        [r.getMessage() for r in caplog.records]


def send_body(key, device, **extra):
    return {"api_key": key, "action": "send_sms", "device_uid": device.device_uid,
            "phone_number": PHONE, "message": "hello", **extra}


@pytest.mark.parametrize("duplicate", ["phone_number", "api_key", "message"])
def test_duplicate_json_keys_are_refused(client, account, quiet_log, duplicate):
    acct, key, device, _ = account
    other_key, _ = accounts.create_key(acct.account_id, "second")
    values = send_body(key, device)
    second = {"phone_number": OTHER, "api_key": other_key, "message": "other"}[duplicate]
    text = json.dumps(values)[:-1] + f', "{duplicate}": {json.dumps(second)}}}'
    before = state(device)
    assert_refused(post_raw(client, text), duplicate)
    assert state(device) == before


def test_deep_nesting_is_refused_before_parsing(client, account, quiet_log):
    _, _, device, token = account
    before = state(device)
    for body in ("[" * 5000, '{"a":' * 5000, "[" * 5000 + "]" * 5000):
        assert_refused(post_raw(client, body), None)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for endpoint in ("reports", "incoming", "heartbeat", "claims", "credentials"):
        response = client.http.post(f"/device/{endpoint}", headers=headers, body="[" * 5000)
        assert response.status_code == 400, (endpoint, response.body)
        assert json.loads(response.body)["error"]["code"] == "invalid_parameter"
        assert "Retry-After" not in response.headers
    assert state(device) == before


def test_oversized_body_is_refused(client, account, quiet_log):
    _, key, device, _ = account
    body = json.dumps(send_body(key, device, message="x" * 20000))
    assert_refused(post_raw(client, body), None)


def test_history_cursor_with_a_boolean_position(api, account, quiet_log):
    _, key, _, _ = account
    for position in ({"t": "all", "o": True}, {"t": "all", "i": False}, {"t": "all", "o": 1.5},
                     {"t": "all", "o": 2 ** 60}, {"t": "all", "x": 1}):
        cursor = base64.urlsafe_b64encode(json.dumps(position).encode()).decode()
        answer, _ = api(api_key=key, action="get_history", cursor=cursor)
        assert_refused(answer, "cursor")


def test_lone_surrogate_in_a_json_message(client, account, quiet_log):
    _, key, device, _ = account
    before = state(device)
    text = json.dumps(send_body(key, device)).replace('"hello"', '"hi \\ud800"')
    assert_refused(post_raw(client, text), "message")
    text = json.dumps(send_body(key, device)).replace('"message"', '"mess\\udfffage"')
    assert_refused(post_raw(client, text))
    assert state(device) == before


@pytest.mark.parametrize("name,value", [
    ("sim_slot", "\u0662"),  # Arabic-Indic two
    ("sim_slot", "+1"),
    ("sim_slot", "0_1"),
    ("sim_slot", "\uff11"),  # fullwidth one
])
def test_number_parameters_take_ascii_digits_only(api, account, quiet_log, name, value):
    _, key, device, _ = account
    before = state(device)
    for how in ("form", "query", "json"):
        answer, _ = api(how=how, **send_body(key, device, **{name: value}))
        assert_refused(answer, name)
    assert state(device) == before


@pytest.mark.parametrize("params", [
    {"action": "check_status", "message_id": "1_000"},
    {"action": "check_status", "message_id": "+1"},
    {"action": "check_status", "message_id": "\u0661"},
    {"action": "get_history", "limit": "\u0665"},
    {"action": "send_otp", "phone_number": PHONE, "length": "\u0666"},
])
def test_other_number_parameters(api, account, quiet_log, params):
    _, key, device, _ = account
    if params["action"] == "send_otp":
        params = {**params, "device_uid": device.device_uid}
    answer, _ = api(api_key=key, **params)
    assert_refused(answer)


def test_valid_for_and_expires_at_take_ascii_digits_only(api, account, quiet_log):
    _, key, device, _ = account
    for extra in ({"valid_for": "\u0663\u0666\u0660\u0660"}, {"valid_for": "3_600"},
                  {"expires_at": "\u0662\u0660\u0663\u0660-01-01 00:00:00"}):
        answer, _ = api(**send_body(key, device, **extra))
        assert_refused(answer, next(iter(extra)))


@pytest.mark.parametrize("raw,parameter", [
    ('"sim_slot": NaN', None),
    ('"sim_slot": Infinity', None),
    ('"message": Infinity', None),
    ('"sim_slot": 1.0', "sim_slot"),
    ('"sim_slot": true', "sim_slot"),
    ('"sim_slot": [1]', "sim_slot"),
    ('"message": 12345', "message"),
    ('"phone_number": 8801712345678', "phone_number"),
    ('"device_uid": null', "device_uid"),
    ('"message": {"a": 1}', "message"),
])
def test_json_types_are_checked(client, account, quiet_log, raw, parameter):
    _, key, device, _ = account
    values = send_body(key, device)
    values.pop(raw.split('"')[1], None)
    text = json.dumps(values)[:-1] + ", " + raw + "}"
    before = state(device)
    assert_refused(post_raw(client, text), parameter)
    assert state(device) == before


def test_json_numbers_still_work_where_a_number_is_expected(client, account):
    _, key, device, _ = account
    text = json.dumps(send_body(key, device, sim_slot=2, valid_for=3600))
    answer = post_raw(client, text)
    assert answer["status"] == "success" and answer["data"]["sim_slot"] == 2


@pytest.mark.parametrize("body", [
    '{"app_state": "running", "app_state": "stopped"}',
    '{"app_state": "running", "battery": NaN}',
    '{"app_state": "running", "sim_count": 1.0}',
    '{"app_state": "running\\ud800"}',
])
def test_device_heartbeat_refuses_bad_json(client, account, quiet_log, body):
    _, _, device, token = account
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    response = client.http.post("/device/heartbeat", headers=headers, body=body)
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"]["code"] == "invalid_parameter"


def test_device_incoming_refuses_duplicate_keys_inside_an_item(client, account, quiet_log):
    acct, _, device, token = account
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    item = ('{"device_message_id": "a1", "phone_number": "+8801712345678", "message": "hi", '
            '"message": "other", "received_at": 1}')
    response = client.http.post("/device/incoming", headers=headers,
                                body='{"messages": [' + item + "]}")
    assert response.status_code == 400 and b"message" in response.body
    assert tables.IncomingMessage.count() == 0


def test_whitelist_refuses_wide_ranges_unless_allowed(aws_mock):
    acct = accounts.create_account("W")
    for entry in ("203.0.113.7/0", "0.0.0.0/0", "10.0.0.0/7", "::/0", "2001:db8::/31"):
        with pytest.raises(BadRequest) as error:
            accounts.set_whitelist(acct.account_id, [entry])
        assert "--allow-wide" in error.value.message
    assert accounts.get_account(acct.account_id).ip_whitelist == []
    assert accounts.set_whitelist(acct.account_id, ["203.0.113.7/0"], allow_wide=True) == [
        "0.0.0.0/0"]
    assert accounts.parse_whitelist(["10.0.0.0/8", "2001:db8::/32"]) == [
        "10.0.0.0/8", "2001:db8::/32"]


def test_whitelist_cli_allow_wide(aws_mock):
    from cli import main
    acct = accounts.create_account("W")
    refused = CliRunner().invoke(main, ["whitelist", "set", acct.account_id, "0.0.0.0/0"])
    assert refused.exit_code == 1 and "--allow-wide" in refused.output
    allowed = CliRunner().invoke(main, ["whitelist", "set", acct.account_id, "0.0.0.0/0",
                                        "--allow-wide", "--json"])
    assert json.loads(allowed.output)["ip_whitelist"] == ["0.0.0.0/0"]


def test_ipv4_mapped_ipv6_entries_are_stored_as_ipv4_and_match(api, account, from_ip):
    acct, key, _, _ = account
    assert accounts.parse_whitelist(["::ffff:1.2.3.4", "::ffff:198.51.100.0/120"]) == [
        "1.2.3.4/32", "198.51.100.0/24"]
    with pytest.raises(BadRequest):  # all of IPv4, mapped
        accounts.parse_whitelist(["::ffff:0.0.0.0/96"])
    accounts.set_whitelist(acct.account_id, ["::ffff:203.0.113.9"])
    from_ip("203.0.113.9")
    assert api(api_key=key, action="device_status")[0]["status"] == "success"
    from_ip("203.0.113.10")
    assert api(api_key=key, action="device_status")[0]["data"]["error_code"] == "forbidden"


@pytest.mark.parametrize("change", [{"sim_slot": "2"}, {"valid_for": "7200"},
                                    {"expires_at": "2100-01-01 00:00:00"},
                                    {"phone_number": OTHER}, {"message": "other"}])
def test_idempotency_key_reused_for_a_different_send_is_a_conflict(api, account, change):
    from chalicelib.core import clock
    clock.freeze(4_102_358_400_000 - 3 * 86400 * 1000)  # three days before 2100-01-01
    acct, key, device, _ = account
    first = send_body(key, device, idempotency_key="k-1", valid_for="3600")
    assert api(**first)[0]["status"] == "success"
    again = {**first, **change}
    if "expires_at" in change:
        again.pop("valid_for")
    answer, _ = api(**again)
    assert answer["data"]["error_code"] == "conflict", answer
    assert answer["data"]["parameter"] == "idempotency_key"
    assert len(list(Message.query(acct.account_id))) == 1
    assert api(**first)[0]["status"] == "success"  # the same request still replays


def test_idempotency_with_expires_at_replays_later_in_either_notation(api, account):
    from chalicelib.core import clock
    clock.freeze(4_102_358_400_000 - 3 * 86400 * 1000)
    acct, key, device, _ = account
    first = api(**send_body(key, device, idempotency_key="k-2",
                            expires_at="2100-01-01 00:00:00"))[0]
    clock.advance(7)  # a retry seconds later asks for the same instant
    again = api(**send_body(key, device, idempotency_key="k-2", expires_at="4102444800"))[0]
    assert again["status"] == "success"
    assert again["data"]["message_id"] == first["data"]["message_id"]
    assert len(list(Message.query(acct.account_id))) == 1
