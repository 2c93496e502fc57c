"""SMSGate's states and cancel, through the real handlers on moto, as its server and app use
them (docs/smsgate.md cites the sources): a cancel moves a pending message and its recipients to
Cancelled; a second one, or one of a message that has left Pending, is the server's 409; a
message an SMSGate app phone holds becomes Cancelling and the app answers through /mobile/v1;
a message's state from its recipients follows the app's rule; the app reports an encrypted
message by its ciphertext numbers through every state; `sms:cancelled` webhooks are delivered.
The compat API and REST v1 read a cancelled message as `cancelled`."""
import base64
import json

import pytest

from chalicelib.core import clock, settings
from chalicelib.domain import devices, jobs, pool, webhooks
from chalicelib.domain.devices import app_phones
from chalicelib.domain.messages import cancelling
from chalicelib.domain.webhooks import dispatch as webhook_delivery
from chalicelib.storage.tables import Device, Message
from tests.api.test_mobile_api import call as app_call
from tests.api.test_mobile_api import register

CIPHER_A = ("$aes-256-cbc/pbkdf2-sha1$i=75000$" + base64.b64encode(b"a" * 16).decode() + "$"
            + base64.b64encode(b"A" * 32).decode())
CIPHER_B = ("$aes-256-cbc/pbkdf2-sha1$i=75000$" + base64.b64encode(b"b" * 16).decode() + "$"
            + base64.b64encode(b"B" * 32).decode())


@pytest.fixture
def sg(client, account):
    acct, key, device, _ = account
    devices.heartbeat(device, "running", e2e=True)
    pool.forget_cached()
    devices.forget_cached()

    def call(method, path, body=None, query=""):
        headers = {"content-type": "application/json", "authorization": "Basic " +
                   base64.b64encode(f"{acct.account_id}:{key}".encode()).decode()}
        response = getattr(client.http, method.lower())(
            "/3rdparty/v1/" + path + query, headers=headers,
            body=json.dumps(body) if body is not None else None)
        decoded = json.loads(response.body) if response.body else None
        if response.status_code >= 400:  # SMSGate's error shape
            assert set(decoded) == {"message", "code", "data"}, decoded
            assert decoded["code"] == response.status_code
        return response.status_code, decoded
    return call


@pytest.fixture
def app(client, account):
    """An SMSGate app phone of the account, the only running phone: (device, its auth)."""
    acct, _, agent, _ = account
    devices.heartbeat(agent, "stopped")
    status, reg, _ = register(client, app_phones.make_token(acct.account_id))
    assert status == 201, reg
    device = Device.get(reg["id"])
    devices.heartbeat(device, "running")
    pool.forget_cached()
    devices.forget_cached()
    return device, f"Bearer {reg['token']}"


def in_an_hour() -> str:
    from chalicelib.surfaces.smsgate.thirdparty_request import iso
    return iso(clock.now_ms() + 3600 * 1000)


def two(body="Hello", **more):
    return {"phoneNumbers": ["+8801712000001", "+8801712000002"],
            "textMessage": {"text": body}, **more}


def compat(client, account, action, **params):
    query = "&".join(f"{k}={v}" for k, v in {"action": action, "api_key": account[1],
                                             **params}.items())
    return json.loads(client.http.get("/myAPI.php?" + query).body)


def test_cancel_gives_cancelled_and_a_second_cancel_is_409(sg, client, account, v1):
    status, sent = sg("POST", "messages", two(scheduleAt=in_an_hour(), id="later"))
    assert status == 202 and sent["state"] == "Pending"
    status, cancelled = sg("DELETE", "messages/later")
    assert status == 200
    assert cancelled["state"] == "Cancelled"
    assert [r["state"] for r in cancelled["recipients"]] == ["Cancelled", "Cancelled"]
    assert all("error" not in r for r in cancelled["recipients"])
    assert sg("GET", "messages/later")[1]["state"] == "Cancelled"
    status, again = sg("DELETE", "messages/later")  # the server's ErrMessageNotPending
    assert status == 409 and again["data"]["code"] == "not_cancellable"
    assert "not pending" in again["message"]
    status, listed = sg("GET", "messages", query="?state=Cancelled")
    assert status == 200 and [m["id"] for m in listed] == ["later"]
    assert sg("GET", "messages", query="?state=Pending")[1] == []
    assert sg("GET", "messages", query="?state=Cancelling")[0] == 200
    assert sg("GET", "messages", query="?state=Gone")[0] == 400
    # our other APIs read it as cancelled, with the reason
    member = Message.get(account[0].account_id, min(
        m.message_id for m in Message.scan()), consistent_read=True)
    envelope = compat(client, account, "check_status", message_id=member.message_id)
    assert envelope["status"] == "success", envelope
    assert (envelope["data"]["status"], envelope["data"]["failed_reason"]) == (
        "cancelled", "Cancelled by the sender.")
    status, rest, _ = v1("GET", f"/v1/messages/{member.message_id}")  # its schema checked
    assert status == 200, rest
    assert (rest["status"], rest["reason"]) == (
        "cancelled", "Cancelled by the sender.")


def test_a_message_that_left_pending_is_409_and_unchanged(sg, account):
    acct, _, device, _ = account
    sg("POST", "messages", {"phoneNumbers": ["+8801712000001"], "textMessage": {"text": "x"},
                            "id": "taken"})
    [job] = jobs.lease_from_queue(device, 0, 1)  # an agent took it: it sends at once
    status, answer = sg("DELETE", "messages/taken")
    assert status == 409 and answer["data"]["code"] == "not_cancellable"
    assert sg("GET", "messages/taken")[1]["state"] == "Processed"
    jobs.report(device, job["message_id"], "sent")
    assert sg("DELETE", "messages/taken")[0] == 409
    assert sg("GET", "messages/taken")[1]["state"] == "Sent"


@pytest.mark.parametrize("outcomes, state", [
    (("delivered", "failed"), "Sent"), (("delivered", "delivered"), "Delivered"),
    (("failed", "failed"), "Failed"), (("sent", "failed"), "Sent")])
def test_a_messages_state_follows_the_apps_rule(sg, account, outcomes, state):
    device = account[2]
    sg("POST", "messages", two(id="pair"))
    for job, outcome in zip(jobs.lease_from_queue(device, 0, 2), outcomes, strict=True):
        jobs.report(device, job["message_id"], outcome, "x" if outcome == "failed" else None)
    assert sg("GET", "messages/pair")[1]["state"] == state
    assert [m["id"] for m in sg("GET", "messages", query=f"?state={state}")[1]] == ["pair"]


def patch(client, auth, message_id, state, number, error=None):
    return app_call(client, "PATCH", "/message", auth, [
        {"id": str(message_id), "state": state,
         "recipients": [{"phoneNumber": number, "state": state, "error": error}],
         "states": {state: "2026-12-07T10:00:00.000+00:00"}}])[0]


def test_a_message_the_app_holds_is_cancelling_until_the_app_answers(sg, client, app):
    """GatewayService.processMessage: a Cancelling message is cancelled in the app's queue,
    which reports Cancelled; one it already sent is reported Sent (the cancel was too late)."""
    device, auth = app
    sg("POST", "messages", two(id="held"))
    taken = app_call(client, "GET", "/message", auth)[1]
    assert [j["state"] for j in taken] == ["Pending", "Pending"]
    status, asked = sg("DELETE", "messages/held")
    assert status == 200 and asked["state"] == "Cancelling"
    assert [r["state"] for r in asked["recipients"]] == ["Cancelling", "Cancelling"]
    assert sg("DELETE", "messages/held")[0] == 409  # asked once
    assert [m["id"] for m in sg("GET", "messages", query="?state=Cancelling")[1]] == ["held"]
    notices = app_call(client, "GET", "/message", auth)[1]
    assert sorted(j["id"] for j in notices) == sorted(j["id"] for j in taken)
    assert [j["state"] for j in notices] == ["Cancelling", "Cancelling"]
    first, second = sorted(taken, key=lambda j: j["phoneNumbers"][0])
    assert patch(client, auth, first["id"], "Cancelled", first["phoneNumbers"][0]) == 204
    assert patch(client, auth, second["id"], "Sent", second["phoneNumbers"][0]) == 204
    shown = sg("GET", "messages/held")[1]
    assert [r["state"] for r in shown["recipients"]] == ["Cancelled", "Sent"]
    assert shown["state"] == "Cancelled"
    stored = Message.get(device.account_id, int(first["id"]), consistent_read=True)
    assert (stored.status, stored.reason) == ("cancelled", "Cancelled on the phone.")
    # answered: a notice received again is dropped, the app is not asked again
    assert not cancelling.take_notice(device, int(first["id"]))
    assert not cancelling.take_notice(device, int(second["id"]))


def test_after_the_app_reported_processed_a_cancel_is_too_late(sg, client, app):
    device, auth = app
    sg("POST", "messages", {"phoneNumbers": ["+8801712000001"], "textMessage": {"text": "x"},
                            "id": "radio"})
    [job] = app_call(client, "GET", "/message", auth)[1]
    assert patch(client, auth, job["id"], "Processed", job["phoneNumbers"][0]) == 204
    status, answer = sg("DELETE", "messages/radio")
    assert status == 409 and sg("GET", "messages/radio")[1]["state"] == "Processed"
    assert app_call(client, "GET", "/message", auth)[1] == []  # no notice


def test_the_app_reports_an_encrypted_message_by_its_ciphertext_through_every_state(
        sg, client, app):
    """The app (GatewayService/SendStateWorker) stores the numbers it was handed and reports
    each recipient by them: for an encrypted message, the ciphertext."""
    device, auth = app
    status, sent = sg("POST", "messages", {"phoneNumbers": [CIPHER_A, CIPHER_B],
                                           "textMessage": {"text": CIPHER_A},
                                           "isEncrypted": True, "id": "secret"})
    assert status == 202 and sent["state"] == "Pending"
    jobs_ = app_call(client, "GET", "/message", auth)[1]
    assert all(j["isEncrypted"] for j in jobs_)
    by_number = {j["phoneNumbers"][0]: j["id"] for j in jobs_}
    assert set(by_number) == {CIPHER_A, CIPHER_B}

    def states():
        shown = sg("GET", "messages/secret")[1]
        return shown["state"], {r["phoneNumber"]: r["state"] for r in shown["recipients"]}
    for state in ("Pending", "Processed"):
        for number, message_id in by_number.items():
            assert patch(client, auth, message_id, state, number) == 204
    assert states() == ("Processed", {CIPHER_A: "Processed", CIPHER_B: "Processed"})
    assert patch(client, auth, by_number[CIPHER_A], "Sent", CIPHER_A) == 204
    assert states() == ("Processed", {CIPHER_A: "Sent", CIPHER_B: "Processed"})
    assert patch(client, auth, by_number[CIPHER_B], "Failed", CIPHER_B,
                 "RESULT_ERROR_GENERIC_FAILURE") == 204
    assert states() == ("Sent", {CIPHER_A: "Sent", CIPHER_B: "Failed"})
    assert patch(client, auth, by_number[CIPHER_A], "Delivered", CIPHER_A) == 204
    assert states() == ("Sent", {CIPHER_A: "Delivered", CIPHER_B: "Failed"})
    # a third, cancelled in the app's queue after our cancel: Cancelling, then Cancelled
    sg("POST", "messages", {"phoneNumbers": [CIPHER_A], "textMessage": {"text": CIPHER_B},
                            "isEncrypted": True, "id": "secret-2"})
    [job] = app_call(client, "GET", "/message", auth)[1]
    assert sg("DELETE", "messages/secret-2")[1]["state"] == "Cancelling"
    [notice] = app_call(client, "GET", "/message", auth)[1]
    assert (notice["id"], notice["state"], notice["phoneNumbers"]) == (
        job["id"], "Cancelling", [CIPHER_A])
    assert patch(client, auth, job["id"], "Cancelled", CIPHER_A) == 204
    assert sg("GET", "messages/secret-2")[1]["state"] == "Cancelled"


@pytest.mark.parametrize("number", ["$aes-256-cbc/pbkdf2-sha1$i=75000$bad", "x" * 33, 5])
def test_a_malformed_number_in_a_report_is_400_and_changes_nothing(sg, client, app, number):
    device, auth = app
    sg("POST", "messages", {"phoneNumbers": ["+8801712000001"], "textMessage": {"text": "x"}})
    [job] = app_call(client, "GET", "/message", auth)[1]
    assert patch(client, auth, job["id"], "Sent", number) == 400
    assert Message.get(device.account_id, int(job["id"]), consistent_read=True).status == \
        "processing"


def test_sms_cancelled_webhooks_are_registered_and_delivered(sg, account, settings_override):
    from bench.webhook_receiver import Receiver
    from localgw import events as local_events
    settings_override(webhook_allow_private=True, webhook_cache_seconds=0)
    webhooks.forget_cached()
    webhook_delivery.forget_cached()
    pumps = local_events.EventPumps()
    receiver = Receiver()
    try:
        status, made = sg("POST", "webhooks", {"url": receiver.url, "event": "sms:cancelled"})
        assert status == 201 and made["event"] == "sms:cancelled"
        sg("POST", "messages", two(scheduleAt=in_an_hour(), id="bye"))
        assert sg("DELETE", "messages/bye")[0] == 200
        assert receiver.wait_for(lambda r: len(r.requests) >= 2, 30, poll=pumps.drain)
        bodies = [json.loads(body) for _, body, _ in receiver.requests]
        assert {b["event"] for b in bodies} == {"sms:cancelled"}
        assert sorted(b["payload"]["phoneNumber"] for b in bodies) == [
            "+8801712000001", "+8801712000002"]
        assert all(b["payload"]["messageId"] == "bye" and b["payload"]["cancelledAt"]
                   for b in bodies)
    finally:
        receiver.close()


def test_an_agent_cannot_report_cancelled(client, account):
    """Only an SMSGate app phone cancels what it took (its own queue); the agent's report
    statuses stay sent, delivered and failed."""
    from tests import sending
    from tests.api.test_device_api import post
    acct, _, device, token = account
    message = sending.send(acct.account_id, device, "+8801712000001", "x").message
    jobs.lease_from_queue(device, 0, 1)
    status, body = post(client, "/device/reports", token,
                        {"reports": [{"message_id": message.message_id, "status": "cancelled"}]})
    assert status == 400 and "status" in json.dumps(body), body
    assert Message.get(acct.account_id, message.message_id, consistent_read=True).status == \
        "processing"


def test_a_cancelling_message_is_not_released_to_another_phone(sg, client, app, account):
    """Past its lease a taken message is released (pending) and may move to another phone;
    one its app phone was asked to cancel waits for the phone's answer instead."""
    from chalicelib.domain import sweeps
    device, auth = app
    sg("POST", "messages", {"phoneNumbers": ["+8801712000001"], "textMessage": {"text": "x"},
                            "id": "silent"})  # the pool's: it may move
    [job] = app_call(client, "GET", "/message", auth)[1]
    devices.heartbeat(account[2], "running")  # another phone the pool could move it to
    pool.forget_cached()
    assert sg("DELETE", "messages/silent")[1]["state"] == "Cancelling"
    for _ in range(3):  # past its lease, and its sweep's look
        clock.advance(max(settings.current().lease_seconds,
                          settings.current().outbox_grace_seconds) + 5)
        sweeps.settle_due_messages()
    stored = Message.get(device.account_id, int(job["id"]), consistent_read=True)
    assert (stored.status, stored.device_uid) == ("processing", device.device_uid)
    assert sg("GET", "messages/silent")[1]["state"] == "Cancelling"
    assert patch(client, auth, job["id"], "Cancelled", job["phoneNumbers"][0]) == 204
    assert sg("GET", "messages/silent")[1]["state"] == "Cancelled"
