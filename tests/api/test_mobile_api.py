"""SMSGate's app API (/mobile/v1) through the real handlers on moto: registration and pairing,
jobs and state reports, the app's signed webhooks, and bad input that changes nothing."""
import datetime
import hashlib
import hmac
import json
import time

import pytest

from chalicelib.core import clock
from chalicelib.core.errors import Conflict
from chalicelib.domain import devices, pacing, pairing
from chalicelib.domain.devices import app_phones
from chalicelib.storage.tables import Device, IncomingMessage, Message
from tests import sending

UA = {"User-Agent": "me.capcom.smsgateway/1.68.0"}


def call(client, method, path, auth=None, body=None, headers=None, raw=None):
    sent = dict(UA)
    if auth:
        sent["Authorization"] = auth
    if body is not None or raw is not None:
        sent["Content-Type"] = "application/json; charset=UTF-8"
    sent.update(headers or {})
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    answer = client.http.request(method, "/mobile/v1" + path, headers=sent, body=data)
    text = answer.body.decode() if isinstance(answer.body, bytes) else answer.body
    return answer.status_code, (json.loads(text) if text and text[0] in "[{" else text), answer


def register(client, token, sims=2):
    body = {"name": "Google/sdk_gphone64", "pushToken": None,
            "simCards": [{"slotIndex": i, "simNumber": i + 1, "phoneNumber": "****5678",
                          "carrierName": "****", "iccid": None} for i in range(sims)]}
    return call(client, "POST", "/device", f"Bearer {token}", body)


@pytest.fixture
def app_phone(client, account):
    acct = account[0]
    token = app_phones.make_token(acct.account_id)
    status, body, _ = register(client, token)
    assert status == 201, body
    return acct, token, body


def all_devices(account_id):
    return [d.device_uid for d in devices.list_devices(account_id)]


def send(acct, device, text="Hello"):
    return sending.send(acct.account_id, device, "+8801712345678", text).message


def test_register_pull_and_report_every_state(client, app_phone):
    acct, _, reg = app_phone
    device = Device.get(reg["id"])
    assert (device.kind, device.app_version, device.sim_count) == ("app", "1.68.0", 2)
    assert reg["token"].startswith(device.device_uid + ".") and reg["login"]
    auth = f"Bearer {reg['token']}"
    message = send(acct, device)
    status, jobs, _ = call(client, "GET", "/message?order=fifo", auth)
    assert status == 200
    assert jobs == [{"id": str(message.message_id), "textMessage": {"text": "Hello"},
                     "phoneNumbers": ["+8801712345678"], "simNumber": 1,
                     "withDeliveryReport": True, "isEncrypted": False,
                     "validUntil": jobs[0]["validUntil"], "priority": 0, "state": "Pending"}]
    assert jobs[0]["validUntil"].endswith("+00:00")
    assert call(client, "GET", "/message", auth)[1] == []  # leased: not handed out twice

    def patch(state, error=None):
        return call(client, "PATCH", "/message", auth, [
            {"id": str(message.message_id), "state": state,
             "recipients": [{"phoneNumber": "+8801712345678", "state": state, "error": error}],
             "states": {state: "2026-12-04T10:00:00.000+00:00"}}])[0]

    def status_now():
        return Message.get(acct.account_id, message.message_id, consistent_read=True).status
    assert patch("Pending") == 204 and status_now() == "processing"
    assert patch("Processed") == 204 and status_now() == "processing"
    assert patch("Sent") == 204 and status_now() == "sent"
    assert patch("Delivered") == 204 and status_now() == "delivered"
    assert patch("Delivered") == 204 and status_now() == "delivered"  # a retried PATCH
    assert patch("Sent") == 204 and status_now() == "delivered"  # late, changes nothing
    assert patch("Failed", "RESULT_ERROR_GENERIC_FAILURE") == 409
    assert status_now() == "delivered"


def test_a_failure_with_limit_exceeded_pauses_the_sim(client, app_phone):
    acct, _, reg = app_phone
    device = Device.get(reg["id"])
    message = send(acct, device)
    auth = f"Bearer {reg['token']}"
    call(client, "GET", "/message", auth)
    reason = "RESULT_ERROR_LIMIT_EXCEEDED (Failed because we reached the sending queue limit)"
    status, _, _ = call(client, "PATCH", "/message", auth, [
        {"id": str(message.message_id), "state": "Failed",
         "recipients": [{"phoneNumber": "+8801712345678", "state": "Failed", "error": reason}],
         "states": {}}])
    assert status == 204
    stored = Message.get(acct.account_id, message.message_id, consistent_read=True)
    assert (stored.status, stored.reason) == ("failed", reason)
    assert pacing.is_paused(Device.get(reg["id"]), 1, clock.now_ms())


def test_tokens_bind_registrations_to_the_account(client, account):
    acct = account[0]
    before = all_devices(acct.account_id)
    for bad in ("sgw_" + "x" * 24, "", "garbage token"):
        status, body, _ = register(client, bad)
        assert status == 401 and "private token" in body["message"].lower() or status == 401
    token = app_phones.make_token(acct.account_id)
    app_phones.revoke_token(acct.account_id, token)
    status, body, _ = register(client, token)
    assert status == 401 and "revoked" in body["message"]
    assert all_devices(acct.account_id) == before


def test_registering_again_gives_the_same_phone_and_removal_ends_it(client, app_phone):
    acct, token, first = app_phone
    status, again, _ = register(client, token)
    assert status == 201 and again["id"] == first["id"] and again["token"] != first["token"]
    assert call(client, "GET", "/message", f"Bearer {first['token']}")[0] == 401
    assert call(client, "GET", "/message", f"Bearer {again['token']}")[0] == 200
    devices.remove(acct.account_id, again["id"])
    assert call(client, "GET", "/message", f"Bearer {again['token']}")[0] == 401
    assert call(client, "GET", "/settings", f"Bearer {again['token']}")[0] == 401
    status, body, _ = register(client, token)  # the app's re-registration after the 401
    assert status == 401 and body["code"] == "device_removed"
    assert first["id"] not in all_devices(acct.account_id)


def test_pairing_code_registers_an_app(client, account):
    acct = account[0]
    item = pairing.create(acct.account_id, "Shop phone", "owner@example.com")
    status, body, _ = call(client, "POST", "/device", f"Code {pairing.display(item.code)}",
                           {"name": "Xiaomi/xyz", "pushToken": None, "simCards": []})
    assert status == 201
    device = Device.get(body["id"])
    assert (device.name, device.kind, device.account_id) == ("Shop phone", "app",
                                                              acct.account_id)
    status, _, _ = call(client, "POST", "/device", f"Code {item.code}",
                        {"name": "x", "pushToken": None, "simCards": []})
    assert status == 401  # one-use


def test_old_app_versions_are_refused_with_a_message(client, account):
    acct = account[0]
    token = app_phones.make_token(acct.account_id)
    before = all_devices(acct.account_id)
    status, body, _ = call(client, "POST", "/device", f"Bearer {token}",
                           {"name": "x", "simCards": []},
                           headers={"User-Agent": "me.capcom.smsgateway/1.52.1"})
    assert status == 426 and "1.53.0" in body["message"] and "1.52.1" in body["message"]
    assert all_devices(acct.account_id) == before


def test_settings_webhooks_and_events(client, app_phone):
    _, _, reg = app_phone
    auth = f"Bearer {reg['token']}"
    status, settings_body, _ = call(client, "GET", "/settings", auth)
    assert status == 200
    assert settings_body["webhooks"]["signing_key"] == Device.get(reg["id"]).signing_key
    status, hooks, _ = call(client, "GET", "/webhooks", auth)
    assert status == 200 and {h["event"] for h in hooks} == {
        "sms:received", "sms:data-received", "system:ping"}
    assert {h["url"] for h in hooks} == {
        f"http://localhost/mobile/v1/app-webhooks/{reg['id']}"}
    status, text, answer = call(client, "GET", "/events", auth,
                                headers={"User-Agent": "okhttp/4.12.0"})
    assert status == 200 and answer.headers["Content-Type"] == "text/event-stream"
    assert call(client, "GET", "/events", "Bearer nope.nope")[0] == 401


@pytest.mark.parametrize("raw, status", [
    ("not json", 400),
    ('[{"id": "1", "id": "2", "state": "Sent", "recipients": []}]', 400),
    (json.dumps([{"id": "5", "state": "Sent", "recipients": []}] * 101), 400),
    (json.dumps([]), 400),
    (json.dumps({"id": "5"}), 400),
    (json.dumps([{"id": "MSG", "state": "Sent", "recipients": []}]), 404),
    (json.dumps([{"id": "{mid}", "state": "Exploded", "recipients": []}]), 400),
    (json.dumps([{"id": "{mid}", "state": "Cancelling", "recipients": []}]), 400),
    (json.dumps([{"id": "{mid}", "state": "Sent", "recipients": [{}, {}]}]), 400),
    (json.dumps([{"id": "{mid}", "state": "Sent", "recipients": []},
                 {"id": "{mid}", "state": "Sent", "recipients": []}]), 400),
    (json.dumps([{"id": "{mid}", "state": "Sent", "recipients": []},
                 {"id": "{other}", "state": "Sent", "recipients": []}]), 404),
    (json.dumps([{"id": "{other}", "state": "Sent", "recipients": []}]), 404),
    (json.dumps([{"id": "{other}", "state": "Processed", "recipients": []}]), 404),
])
def test_bad_patches_change_nothing(client, app_phone, account, raw, status):
    acct, _, reg = app_phone
    mine = send(acct, Device.get(reg["id"]))
    other = send(acct, account[2])  # the agent's message, same account
    auth = f"Bearer {reg['token']}"
    call(client, "GET", "/message", auth)
    raw = raw.replace("{mid}", str(mine.message_id)).replace("{other}", str(other.message_id))
    got, body, _ = call(client, "PATCH", "/message", auth, raw=raw)
    assert got == status, body
    assert body["message"]
    assert Message.get(acct.account_id, mine.message_id, consistent_read=True).status == \
        "processing"
    assert Message.get(acct.account_id, other.message_id, consistent_read=True).status == \
        "pending"


def signed(key, document, stamp=None):
    body = json.dumps(document).encode()
    stamp = str(int(time.time()) if stamp is None else stamp)
    signature = hmac.new(key.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
    return body, {"X-Timestamp": stamp, "X-Signature": signature}


def hook(client, device_uid, body, headers):
    return call(client, "POST", f"/app-webhooks/{device_uid}", raw=body.decode(),
                headers=headers)


def test_incoming_sms_by_webhook_once_and_replays_refused(client, app_phone):
    acct, _, reg = app_phone
    key = Device.get(reg["id"]).signing_key
    document = {"id": "Vq3N5k2lHCzL1x0aYp7sA", "webhookId": "smsgw-sms-received",
                "event": "sms:received", "deviceId": reg["id"],
                "payload": {"messageId": "1a2b3c4d", "message": "Your code 1234",
                            "sender": "+8801711111111", "recipient": None, "simNumber": 2,
                            "receivedAt": "2026-12-04T10:00:00.000+06:00",
                            "phoneNumber": "+8801711111111"}}
    body, headers = signed(key, document)
    status, answer, _ = hook(client, reg["id"], body, headers)
    assert status == 200 and answer["result"] == "stored"
    assert hook(client, reg["id"], body, headers)[0] == 409  # replayed as is
    body2, headers2 = signed(key, document, int(time.time()) + 1)  # the app's own retry
    status, answer, _ = hook(client, reg["id"], body2, headers2)
    assert status == 200 and answer["result"] == "duplicate"
    stale_body, stale = signed(key, document, int(time.time()) - 600)
    assert hook(client, reg["id"], stale_body, stale)[0] == 401
    forged_body, forged = signed("not-the-key", document)
    assert hook(client, reg["id"], forged_body, forged)[0] == 401
    stored = list(IncomingMessage.query(acct.account_id))
    assert [(m.phone_number, m.body, m.sim_slot) for m in stored] == [
        ("+8801711111111", "Your code 1234", 2)]
    assert stored[0].received_at == int(datetime.datetime(
        2026, 12, 4, 4, 0, tzinfo=datetime.UTC).timestamp() * 1000)


def test_report_and_ping_webhooks(client, app_phone):
    acct, _, reg = app_phone
    device = Device.get(reg["id"])
    message = send(acct, device)
    call(client, "GET", "/message", f"Bearer {reg['token']}")
    body, headers = signed(device.signing_key, {
        "id": "e1", "webhookId": "smsgw-sms-sent", "event": "sms:sent", "deviceId": reg["id"],
        "payload": {"messageId": str(message.message_id), "recipient": "+8801712345678",
                    "partsCount": 1, "sentAt": "2026-12-04T10:00:00.000+00:00"}})
    assert hook(client, reg["id"], body, headers)[0] == 200
    assert Message.get(acct.account_id, message.message_id).status == "sent"
    body, headers = signed(device.signing_key, {
        "id": "e2", "webhookId": "x", "event": "sms:sent", "deviceId": reg["id"],
        "payload": {"messageId": "LocalApiMsg1", "recipient": "+1", "partsCount": 1,
                    "sentAt": "2026-12-04T10:00:00.000+00:00"}})
    status, answer, _ = hook(client, reg["id"], body, headers)
    assert status == 202 and answer["result"] == "ignored"
    body, headers = signed(device.signing_key, {
        "id": "e3", "webhookId": "x", "event": "system:ping", "deviceId": reg["id"],
        "payload": {"health": {}}})
    assert hook(client, reg["id"], body, headers)[0] == 200
    assert devices.is_running(Device.get(reg["id"]))
    devices.remove(acct.account_id, reg["id"])
    body, headers = signed(device.signing_key, {
        "id": "e4", "webhookId": "x", "event": "system:ping", "deviceId": reg["id"],
        "payload": {}})
    assert hook(client, reg["id"], body, headers)[0] == 401


def test_aws_calls_per_app_patch(client, app_phone, aws_calls):
    acct, _, reg = app_phone
    message = send(acct, Device.get(reg["id"]))
    auth = f"Bearer {reg['token']}"
    call(client, "GET", "/message", auth)
    call(client, "GET", "/message", auth)  # warm: device record cached, seen recently
    aws_calls.clear()
    status, _, _ = call(client, "PATCH", "/message", auth, [
        {"id": str(message.message_id), "state": "Sent",
         "recipients": [{"phoneNumber": "+8801712345678", "state": "Sent", "error": None}],
         "states": {}}])
    assert status == 204
    assert sorted(aws_calls) == [("dynamodb", "UpdateItem"), ("sqs", "DeleteMessageBatch")]


def test_the_pair_a_phone_page_shows_the_app_url_and_a_token_that_registers(client, account):
    from tests.dashboard_helpers import Visitor, owner, text
    acct = account[0]
    owner(acct.account_id, "owner@example.com")
    visitor = Visitor(client)
    visitor.sign_in("owner@example.com")
    answer = visitor.submit("/dashboard/phones", {"name": "Till phone"}, page="/dashboard/phones")
    page_path = answer.headers["Location"].split("localhost", 1)[-1]
    page = text(visitor.get(page_path))
    assert "http://localhost/mobile/v1" in page and "Make a private token" in page
    code = page_path.rsplit("/", 1)[1]
    shown = text(visitor.submit(f"/dashboard/pair/{code}/app-token", page=page_path))
    token = __import__("re").search(r'id="app-token" class="mono" readonly value="([^"]+)"',
                                    shown)[1]
    assert 'data-refresh' not in shown  # the page would reload and lose the token
    status, body, _ = register(client, token)
    assert status == 201 and Device.get(body["id"]).name == "Till phone"


def test_racing_registrations_with_one_token_make_one_phone(account, atomic_moto):
    """The claim is one conditional write (used_at and device_uid absent): whatever order
    DynamoDB applies the racing writes in, one wins; the others re-read and either wait (409,
    the winner has not bound its device yet) or get that same device with a new token."""
    import threading

    acct = account[0]
    token = app_phones.make_token(acct.account_id)
    before = set(all_devices(acct.account_id))
    start, outcomes = threading.Barrier(6), []

    def register_one(n):
        start.wait()
        try:
            device, device_token = app_phones.register_with_token(
                token, "Racer", 1, "1.68.0", f"192.0.2.{n}")
            outcomes.append((device.device_uid, device_token))
        except Conflict:
            outcomes.append(("wait", None))

    threads = [threading.Thread(target=register_one, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = set(all_devices(acct.account_id)) - before
    assert len(created) == 1
    assert {uid for uid, _ in outcomes} - {"wait"} == created
    devices.forget_cached()
    working = []
    for _, device_token in outcomes:
        if device_token:
            try:
                devices.authenticate(device_token)
                working.append(device_token)
            except Exception:
                pass
    assert len(working) == 1  # the last new secret written; the others register again


def test_a_claim_left_by_a_dead_registration_is_taken_over(account):
    acct = account[0]
    token = app_phones.make_token(acct.account_id)
    item = app_phones.PairingCode.get(app_phones._key(token))
    item.update(actions=[app_phones.PairingCode.used_at.set(clock.now_ms())])
    with pytest.raises(Conflict):
        app_phones.register_with_token(token, "x", 1, None, "192.0.2.1")
    clock.freeze()
    clock.advance(app_phones.CLAIM_SECONDS + 1)
    device, _ = app_phones.register_with_token(token, "x", 1, None, "192.0.2.1")
    assert device.account_id == acct.account_id


def test_a_held_events_request_rings_on_a_job_and_leaves_it_for_the_pull(client, app_phone,
                                                                         settings_override):
    settings_override(mobile_events_hold_seconds=1)
    acct, _, reg = app_phone
    auth = f"Bearer {reg['token']}"
    started = time.monotonic()
    status, text, _ = call(client, "GET", "/events", auth)
    assert status == 200 and "MessageEnqueued" not in text and time.monotonic() - started >= 0.9
    message = send(acct, Device.get(reg["id"]))
    status, text, _ = call(client, "GET", "/events", auth)
    assert status == 200 and "event: MessageEnqueued\ndata: {}\n\n" in text
    status, jobs, _ = call(client, "GET", "/message", auth)
    assert [job["id"] for job in jobs] == [str(message.message_id)]
