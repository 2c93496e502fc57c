"""The compatibility API's core actions through the real handlers (Chalice test client) on moto."""
import json

import boto3
import pytest

from chalicelib.core import settings
from chalicelib.domain import accounts, devices
from chalicelib.storage.tables import Idempotency, Message

PHONE = "+8801712345678"


def queue_jobs(device):
    sqs = boto3.client("sqs", region_name="us-east-1")
    got = sqs.receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                              WaitTimeSeconds=0, VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def stored_messages(account_id):
    return list(Message.query(account_id))


@pytest.mark.parametrize("how", ["form", "query", "json"])
def test_send_sms_is_written_pending_then_queued(api, account, how):
    acct, key, device, _ = account
    body, response = api(how, api_key=key, action="send_sms", device_uid=device.device_uid,
                         phone_number=PHONE, message="Hello World", sim_slot="1")
    assert response.status_code == 200
    assert body["status"] == "success" and body["response"] is True
    assert body["message"] == "SMS queued successfully."
    data = body["data"]
    assert set(data) == {"message_id", "status", "sim_slot"}
    assert isinstance(data["message_id"], int) and 0 < data["message_id"] < 2 ** 53
    assert data["status"] == "pending" and data["sim_slot"] == 1
    [stored] = stored_messages(acct.account_id)
    assert stored.message_id == data["message_id"] and stored.status == "pending"
    [job] = queue_jobs(device)
    assert job["message_id"] == data["message_id"]
    assert (job["phone_number"], job["message"], job["sim_slot"]) == (PHONE, "Hello World", 1)
    assert job["expires_at"] > stored.created_at


def test_check_status_and_history_show_the_send(api, account):
    acct, key, device, _ = account
    sent, _ = api(api_key=key, action="send_sms", device_id=str(device.device_id),
                  phone_number=PHONE, message="Hi")
    mid = sent["data"]["message_id"]
    status, _ = api("query", api_key=key, action="check_status", message_id=mid)
    assert status["status"] == "success" and status["message"] == "Status found."
    assert list(status["data"])[:4] == ["status", "created_at", "processed_at", "phone_number"]
    assert status["data"]["status"] == "pending"
    assert status["data"]["processed_at"] is None
    assert status["data"]["phone_number"] == PHONE
    assert len(status["data"]["created_at"]) == 19
    history, _ = api("query", api_key=key, action="get_history", type="outgoing", limit=5)
    [entry] = history["data"]["messages"]
    assert entry["message_id"] == mid and entry["type"] == "outgoing"
    assert entry["message"] == "Hi" and history["data"]["next_cursor"] is None


def test_device_id_may_carry_a_uid_as_the_reference_allows(api, account):
    _, key, device, _ = account
    ok, _ = api(api_key=key, action="send_sms", device_id=device.device_uid,
                phone_number=PHONE, message="x")
    assert ok["status"] == "success"
    both, _ = api(api_key=key, action="send_sms", device_id=str(device.device_id),
                  device_uid=device.device_uid, phone_number=PHONE, message="x")
    assert both["status"] == "success"


def test_device_id_and_uid_naming_different_devices_is_an_error(api, account):
    acct, key, device, _ = account
    other, _ = devices.register(acct.account_id, "Phone 2")
    body, _ = api(api_key=key, action="send_sms", device_id=str(device.device_id),
                  device_uid=other.device_uid, phone_number=PHONE, message="x")
    assert body["status"] == "error" and body["data"]["parameter"] == "device_uid"
    assert stored_messages(acct.account_id) == []


def test_key_accepted_from_bearer_and_x_api_key_headers(api, account):
    _, key, device, _ = account
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        body, _ = api(headers=headers, action="device_status")
        assert body["status"] == "success", body
    body, _ = api(headers={"X-API-Key": key}, api_key="f" * 64, action="device_status")
    assert body["status"] == "error" and body["data"]["parameter"] == "api_key"


@pytest.mark.parametrize("given,fragment", [
    (None, "Missing API key"),
    ("short", "Malformed API key"),
    ("0" * 64, "Invalid API key"),
])
def test_bad_keys(api, account, given, fragment):
    values = {"action": "device_status"}
    if given:
        values["api_key"] = given
    body, response = api(**values)
    assert response.status_code == 200
    assert body["status"] == "error" and body["response"] is False
    assert fragment in body["message"] and body["data"]["error_code"] == "unauthorized"


def test_revoked_key_stops_working(api, account):
    acct, key, _, _ = account
    assert api(api_key=key, action="device_status")[0]["status"] == "success"
    [record] = accounts.list_keys(acct.account_id)
    accounts.revoke_key(acct.account_id, record.key_id)
    body, _ = api(api_key=key, action="device_status")
    assert body["status"] == "error" and body["message"] == "Invalid API key."


def test_several_keys_per_account_revoked_separately(api, account):
    acct, key, _, _ = account
    second, record = accounts.create_key(acct.account_id, "second")
    accounts.revoke_key(acct.account_id, record.key_id)
    assert api(api_key=key, action="device_status")[0]["status"] == "success"
    assert api(api_key=second, action="device_status")[0]["status"] == "error"


def test_ip_whitelist_uses_the_request_context_not_headers(api, account, from_ip):
    acct, key, _, _ = account
    accounts.set_whitelist(acct.account_id, ["203.0.113.0/24", "2001:db8::/32"])
    from_ip("198.51.100.7")
    body, _ = api(api_key=key, action="device_status",
                  headers={"X-Forwarded-For": "203.0.113.5", "X-Real-IP": "203.0.113.5"})
    assert body["status"] == "error" and body["data"]["error_code"] == "forbidden"
    assert "198.51.100.7" in body["message"]
    from_ip("203.0.113.200")
    assert api(api_key=key, action="device_status")[0]["status"] == "success"
    from_ip("2001:db8:1::5")
    assert api(api_key=key, action="device_status")[0]["status"] == "success"
    accounts.set_whitelist(acct.account_id, [])
    from_ip("198.51.100.7")
    assert api(api_key=key, action="device_status")[0]["status"] == "success"


def _base(key, device):
    return {"api_key": key, "action": "send_sms", "device_uid": device.device_uid,
            "phone_number": PHONE, "message": "Hello"}


@pytest.mark.parametrize("change,parameter", [
    ({"phone_number": None}, "phone_number"),
    ({"phone_number": "12345"}, "phone_number"),
    ({"phone_number": "+1 555 CALL NOW"}, "phone_number"),
    ({"message": None}, "message"),
    ({"message": "   "}, "message"),
    ({"message": "a" * 1531}, "message"),
    ({"message": "ю" * 671}, "message"),
    ({"sim_slot": "3"}, "sim_slot"),
    ({"sim_slot": "0"}, "sim_slot"),
    ({"sim_slot": "one"}, "sim_slot"),
    ({"device_uid": None}, "device_id"),
    ({"device_uid": "zz"}, "device_uid"),
    ({"device_uid": "0123456789abcdef"}, "device_uid"),
    ({"device_uid": None, "device_id": "999"}, "device_id"),
    ({"device_uid": None, "device_id": "-1"}, "device_id"),
    ({"colour": "blue"}, "colour"),
    ({"action": "send_sms_now"}, "action"),
    ({"action": None}, "action"),
    ({"idempotency_key": "has space"}, "idempotency_key"),
])
def test_bad_send_input_is_a_clear_error_that_changes_nothing(api, account, change, parameter):
    acct, key, device, _ = account
    values = {**_base(key, device), **change}
    values = {k: v for k, v in values.items() if v is not None}
    body, response = api(**values)
    assert response.status_code == 200
    assert body["status"] == "error" and body["response"] is False
    assert body["data"]["parameter"] == parameter, body
    assert "Traceback" not in body["message"]
    assert stored_messages(acct.account_id) == []
    assert queue_jobs(device) == []


def test_unknown_action_names_the_valid_ones(api, account):
    body, _ = api(api_key=account[1], action="nope")
    for name in ("send_sms", "send_otp", "verify_otp", "check_status", "get_history",
                 "device_status"):
        assert name in body["message"]


def test_duplicate_parameter_in_query_and_body(client, account):
    _, key, device, _ = account
    response = client.http.post(
        f"/myAPI.php?api_key={key}&message=one",
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=f"action=send_sms&device_uid={device.device_uid}&phone_number=%2B8801712345678"
             "&message=two")
    body = json.loads(response.body)
    assert body["status"] == "error" and body["data"]["parameter"] == "message"
    assert "Duplicate" in body["message"]


def test_oversized_body_rejected(client, account):
    response = client.http.post("/myAPI.php", headers={"content-type": "application/json"},
                                body=json.dumps({"api_key": account[1], "action": "send_sms",
                                                 "message": "x" * 3999, "pad": "y" * 15000}))
    body = json.loads(response.body)
    assert body["status"] == "error" and "too large" in body["message"]


def test_ten_segments_accepted_eleven_rejected(api, account):
    acct, key, device, _ = account
    ok, _ = api(**{**_base(key, device), "message": "a" * 1530})
    assert ok["status"] == "success"
    too_long, _ = api(**{**_base(key, device), "message": "a" * 1531})
    assert "11 SMS segments" in too_long["message"]
    [stored] = stored_messages(acct.account_id)
    assert stored.segments == 10 and stored.encoding == "GSM-7"


def test_sim_slot_beyond_the_devices_sims_rejected(api, account):
    acct, key, _, _ = account
    single, _ = devices.register(acct.account_id, "Single SIM", sim_count=1)
    body, _ = api(**{**_base(key, single), "sim_slot": "2"})
    assert body["status"] == "error" and "only 1 SIM" in body["message"]
    unknown, _ = devices.register(acct.account_id, "Unknown SIMs")
    assert api(**{**_base(key, unknown), "sim_slot": "2"})[0]["status"] == "success"


def test_idempotency_key_returns_the_first_message(api, account):
    acct, key, device, _ = account
    first, _ = api(**_base(key, device), idempotency_key="order-42")
    again, _ = api(**_base(key, device), headers={"Idempotency-Key": "order-42"})
    assert first["status"] == again["status"] == "success"
    assert first["data"]["message_id"] == again["data"]["message_id"]
    assert len(stored_messages(acct.account_id)) == 1
    assert len(queue_jobs(device)) == 1
    other, _ = api(**{**_base(key, device), "message": "different"}, idempotency_key="order-42")
    assert other["status"] == "error" and other["data"]["parameter"] == "idempotency_key"
    assert Idempotency.count() == 1


def test_queue_failure_keeps_the_message_and_does_not_claim_it_queued(api, account):
    acct, key, device, _ = account
    boto3.client("sqs", region_name="us-east-1").delete_queue(QueueUrl=device.queue_url)
    body, _ = api(**_base(key, device))
    assert body["status"] == "success"
    assert "queued successfully" not in body["message"]
    assert "delayed" in body["message"] and body["data"]["status"] == "pending"
    [stored] = stored_messages(acct.account_id)
    assert stored.status == "pending"
    # the sweeps' first look, a minute later, finds it and hands it to the outbox sweep
    from chalicelib.core import clock
    from chalicelib.domain import sweeps
    grace = settings.current().outbox_grace_seconds * 1000
    done = sweeps.settle_due_messages(now_ms=clock.now_ms() + grace + 1)
    assert done["entered"] == 1 and done["retry"] == 1  # its queue is gone: still pending
    [stored] = stored_messages(acct.account_id)
    assert stored.status == "pending" and stored.open_shard and stored.requeues == 1


def test_history_pages_newest_first_with_a_cursor(api, account, aws_calls):
    _, key, device, _ = account
    ids = [api(**_base(key, device))[0]["data"]["message_id"] for _ in range(25)]
    seen, cursor = [], None
    while True:
        values = {"api_key": key, "action": "get_history", "type": "outgoing", "limit": "10"}
        if cursor:
            values["cursor"] = cursor
        body, _ = api("query", **values)
        page = body["data"]["messages"]
        assert len(page) <= 10
        seen += [m["message_id"] for m in page]
        cursor = body["data"]["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids, reverse=True)
    assert ("dynamodb", "Scan") not in aws_calls


def test_history_limit_rules(api, account):
    _, key, device, _ = account
    for _ in range(3):
        api(**_base(key, device))
    assert len(api("query", api_key=key, action="get_history", limit="500")[0]
               ["data"]["messages"]) == 3
    for bad in ("0", "-5", "ten"):
        body, _ = api("query", api_key=key, action="get_history", limit=bad)
        assert body["status"] == "error" and body["data"]["parameter"] == "limit"
    body, _ = api("query", api_key=key, action="get_history", type="sideways")
    assert body["status"] == "error" and body["data"]["parameter"] == "type"
    body, _ = api("query", api_key=key, action="get_history", cursor="garbage!")
    assert body["status"] == "error" and body["data"]["parameter"] == "cursor"
    body, _ = api("query", api_key=key, action="get_history", type="incoming")
    assert body["data"]["messages"] == []
    default, _ = api("query", api_key=key, action="get_history")
    assert [m["type"] for m in default["data"]["messages"]] == ["outgoing"] * 3


def test_check_status_bad_and_unknown_ids(api, account):
    _, key, _, _ = account
    for bad, fragment in (("abc", "Invalid message_id"), ("-3", "Invalid message_id"),
                          ("123", "not found")):
        body, _ = api("query", api_key=key, action="check_status", message_id=bad)
        assert body["status"] == "error" and fragment in body["message"]
        assert body["data"]["parameter"] == "message_id"
    body, _ = api("query", api_key=key, action="check_status")
    assert "Missing required parameter: message_id" in body["message"]


def test_device_status_lists_devices_stopped_until_they_report(api, account):
    acct, key, device, _ = account
    second, _ = devices.register(acct.account_id, "Backup", sim_count=1)
    body, _ = api("query", api_key=key, action="device_status")
    assert body["status"] == "success"
    rows = body["data"]
    assert [r["device_id"] for r in rows] == [device.device_id, second.device_id]
    for row in rows:
        assert row["status"] == "stopped" and row["last_seen"] is None
        assert set(row) >= {"device_id", "device_uid", "name", "status", "last_seen", "sim_count"}
    assert rows[1]["sim_count"] == 1 and rows[1]["name"] == "Backup"


def test_removed_device_and_its_queue_are_gone(api, account):
    acct, key, device, _ = account
    devices.remove(acct.account_id, str(device.device_id))
    sqs = boto3.client("sqs", region_name="us-east-1")
    assert device.queue_url not in sqs.list_queues().get("QueueUrls", [])
    body, _ = api(**_base(key, device))
    assert body["status"] == "error" and body["data"]["error_code"] == "not_found"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_methods_get_an_envelope(client, account, method):
    response = client.http.request(method, f"/myAPI.php?action=device_status&api_key={account[1]}")
    body = json.loads(response.body)
    assert response.status_code == 200 and body["status"] == "error"
    assert body["data"]["error_code"] == "method_not_allowed" and "GET or POST" in body["message"]


def test_an_unpaced_phone_promises_no_send_time_however_the_clock_ticks(api, account,
                                                                        monkeypatch):
    """A send to a phone without pacing has no expected_at: it goes at once. The pacing layer
    read the clock again, and a millisecond's tick between the two reads made the send look
    paced (expected_at/expected_in appeared in about one run in a few hundred)."""
    from chalicelib.core import clock
    ticks = iter(range(1_900_000_000_000, 1_900_000_100_000))
    monkeypatch.setattr(clock, "now_ms", lambda: next(ticks))
    acct, key, device, _ = account
    body, _ = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                  phone_number=PHONE, message="Hello World", sim_slot="1")
    assert body["status"] == "success", body
    assert set(body["data"]) == {"message_id", "status", "sim_slot"}
