"""SMSGate's client API (/3rdparty/v1) through the real Chalice handlers on moto: auth (Basic,
Bearer, revoked keys, IP whitelist), bad input in their error shape with nothing stored,
idempotent client ids (replay, conflict, concurrent twins on real threads), all-or-nothing
groups, end-to-end encrypted sends (form, phones that cannot decrypt, pool choice, failover,
OTPs refused), and account isolation."""
import base64
import json
import threading

import pytest

from chalicelib.core import clock
from chalicelib.domain import accounts, devices, outbox, pool
from chalicelib.storage.tables import Device, Message
from tests import sending

CIPHER = ("$aes-256-cbc/pbkdf2-sha1$i=75000$" + base64.b64encode(b"s" * 16).decode() + "$"
          + base64.b64encode(b"c" * 32).decode())


@pytest.fixture
def sg(client, account, atomic_moto):
    acct, key, device, token = account
    devices.heartbeat(device, "running", e2e=True)
    pool.forget_cached()
    devices.forget_cached()

    def call(method, path, body=None, auth=(acct.account_id, key), raw=None, query=""):
        headers = {"content-type": "application/json"}
        if auth is not None:
            login, password = auth
            headers["authorization"] = ("Bearer " + password) if login is None else (
                "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode())
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(client.http, method.lower())(
            "/3rdparty/v1/" + path + query, headers=headers, body=payload)
        decoded = json.loads(response.body) if response.body else None
        if response.status_code >= 400:
            assert set(decoded) == {"message", "code", "data"}, decoded
            assert decoded["code"] == response.status_code
        return response.status_code, decoded
    return call


def stored():
    return list(Message.scan())


def text(body="Hello", **more):
    return {"phoneNumbers": ["+8801712000001"], "textMessage": {"text": body}, **more}


def test_basic_and_bearer_auth_revocation_and_whitelist(sg, account):
    acct, key, _, _ = account
    assert sg("GET", "devices")[0] == 200
    assert sg("GET", "devices", auth=(None, key))[0] == 200
    assert sg("GET", "devices", auth=("acc_other", key))[0] == 401
    assert sg("GET", "devices", auth=None)[0] == 401
    status, answer = sg("GET", "devices", auth=(None, "a.b.c"))
    assert status == 400 and "JWT" in answer["message"]
    accounts.set_whitelist(acct.account_id, ["203.0.113.0/24"])
    accounts.forget_cached()
    assert sg("GET", "devices")[0] == 403
    accounts.set_whitelist(acct.account_id, [])
    accounts.revoke_key(acct.account_id, accounts.list_keys(acct.account_id)[0].key_id)
    accounts.forget_cached()
    assert sg("GET", "devices")[0] == 401


@pytest.mark.parametrize("body, parameter", [
    ({"phoneNumbers": "+8801712000001", "textMessage": {"text": "x"}}, "phoneNumbers"),
    ({"phoneNumbers": [1], "textMessage": {"text": "x"}}, "phoneNumbers[0]"),
    (text(simNumber="1"), "simNumber"),
    (text(simNumber=True), "simNumber"),
    (text(priority=1.5), "priority"),
    (text(ttl=5, validUntil="2030-01-01T00:00:00Z"), "validUntil"),
    (text(scheduleAt="yesterday"), "scheduleAt"),
    (text(isEncrypted="yes"), "isEncrypted"),
    (text(colour="red"), "colour"),
    (text(id="has spaces"), "id"),
    (text(deviceId="not-a-device"), "deviceId"),
    (text(deviceId="0123456789abcdef"), "deviceId"),
    ({"phoneNumbers": ["+8801712000001"], "dataMessage": {"data": "AA==", "port": 53739}},
     "dataMessage"),
    ({"phoneNumbers": ["+8801712000001"], "mmsMessage": {"text": "x"}}, "mmsMessage"),
    (text(body="$aes-256-cbc/pbkdf2-sha1$i=1$bad$", isEncrypted=True), "textMessage.text"),
    (text(body="plain words", isEncrypted=True), "textMessage.text"),
    ({"phoneNumbers": ["+8801712000001"], "textMessage": {"text": CIPHER},
      "isEncrypted": True}, "phoneNumbers[0]"),
])
def test_bad_input_is_their_400_and_stores_nothing(sg, body, parameter):
    status, answer = sg("POST", "messages", body)
    assert status == 400, answer
    assert answer["data"]["parameter"] == parameter, answer
    assert stored() == []


def test_malformed_json_and_duplicate_keys(sg):
    assert sg("POST", "messages", raw='{"phoneNumbers": [')[0] == 400
    status, answer = sg("POST", "messages", raw='{"phoneNumbers": ["+8801712000001"], '
                        '"phoneNumbers": ["+8801712000002"], "textMessage": {"text": "x"}}')
    assert status == 400 and "Duplicate" in answer["message"]
    assert stored() == []


def test_group_replay_and_conflict(sg):
    body = {"phoneNumbers": ["+8801712000001", "+8801712000002"], "id": "g-1",
            "textMessage": {"text": "Hi both"}}
    status, first = sg("POST", "messages", body)
    assert status == 202 and first["id"] == "g-1" and len(first["recipients"]) == 2
    assert sorted(m.group_id for m in stored()) == ["g-1", "g-1"]
    status, again = sg("POST", "messages", body)
    assert status == 202 and again["recipients"] == first["recipients"]
    assert len(stored()) == 2
    status, answer = sg("POST", "messages", {**body, "textMessage": {"text": "Changed"}})
    assert status == 409 and answer["data"]["parameter"] == "id"
    assert len(stored()) == 2
    assert sg("GET", "messages/g-1")[1]["state"] == "Pending"


def test_ids_and_other_apis_keys_never_meet(sg, client, account, api):
    """The same words as an SMSGate id, a REST v1 idempotency_key and a compat one: three
    sends, none a replay or a conflict of another."""
    acct, key, device, _ = account
    assert sg("POST", "messages", text(id="same"))[0] == 202
    answer = client.http.post("/v1/messages", headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"},
        body=json.dumps({"recipients": ["+8801712000001"], "message": "Other words",
                         "idempotency_key": "same"}))
    assert answer.status_code == 202, answer.body
    envelope, _ = api(api_key=key, action="send_sms", phone_number="+8801712000001",
                      message="Third", device_id=str(device.device_id),
                      idempotency_key="same")
    assert envelope["status"] == "success", envelope
    assert sorted(m.body for m in stored()) == ["Hello", "Other words", "Third"]


def test_concurrent_twins_make_one_group(sg):
    body = {"phoneNumbers": ["+8801712000001", "+8801712000002", "+8801712000003"],
            "id": "twin", "textMessage": {"text": "Once"}}
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(sg("POST", "messages", body)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _ in answers} <= {202, 503}
    assert any(status == 202 for status, _ in answers)
    assert len(stored()) == 3
    assert len(sg("GET", "messages/twin")[1]["recipients"]) == 3


def test_a_refused_recipient_undoes_the_group(sg, account, monkeypatch):
    real = outbox.submit
    calls = []

    def refuse_second(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            from chalicelib.core.errors import RateLimited
            raise RateLimited("At capacity.", "device_id", retry_after=5)
        return real(*args, **kw)
    monkeypatch.setattr(outbox, "submit", refuse_second)
    status, answer = sg("POST", "messages", {
        "phoneNumbers": ["+8801712000001", "+8801712000002"], "id": "half",
        "textMessage": {"text": "All or nothing"}, "deviceId": account[2].device_uid})
    assert status == 429 and answer["message"].startswith("phoneNumbers[1]")
    assert [m.status for m in stored()] == ["cancelled"]
    monkeypatch.setattr(outbox, "submit", real)
    assert sg("POST", "messages", {"phoneNumbers": ["+8801712000001"], "id": "half",
                                   "textMessage": {"text": "Another try"}})[0] == 202


def test_encrypted_send_is_stored_as_ciphertext_and_bounded(sg, account):
    status, answer = sg("POST", "messages", {"phoneNumbers": [CIPHER], "isEncrypted": True,
                                             "textMessage": {"text": CIPHER}})
    assert status == 202 and answer["isEncrypted"] is True
    assert answer["recipients"][0]["phoneNumber"] == CIPHER
    message, = stored()
    assert (message.phone_number, message.body, message.encrypted) == (CIPHER, CIPHER, True)
    assert message.segments == 1  # 32 cipher bytes: at most 31 UTF-8 bytes of text


def test_no_aws_call_carries_the_plaintext(sg, account, aws_calls):
    """Every parameter of every AWS call of an encrypted send (items written, the queued job):
    ciphertext only. The real format, from SMSGate's own client's Encryptor."""
    from android_sms_gateway import Encryptor
    sealer = Encryptor("phone passphrase", iterations=10)
    status, answer = sg("POST", "messages", {
        "phoneNumbers": [sealer.encrypt("+8801712999888")], "isEncrypted": True,
        "textMessage": {"text": sealer.encrypt("The plaintext secret")}, "id": "sealed"})
    assert status == 202
    sent = json.dumps([str(p) for _, _, p in aws_calls.requests])
    assert "SendMessage" in {op for _, op in aws_calls} and "aes-256-cbc" in sent
    assert "plaintext secret" not in sent and "8801712999888" not in sent
    assert "plaintext secret" not in json.dumps(answer)


def test_encrypted_needs_a_phone_that_can_decrypt(sg, account):
    _, _, device, _ = account
    devices.heartbeat(device, "running", e2e=False)
    pool.forget_cached()
    status, answer = sg("POST", "messages", {"phoneNumbers": [CIPHER], "isEncrypted": True,
                                             "textMessage": {"text": CIPHER}})
    assert status == 400 and answer["data"]["parameter"] == "isEncrypted"
    status, answer = sg("POST", "messages", {"phoneNumbers": [CIPHER], "isEncrypted": True,
                                             "textMessage": {"text": CIPHER},
                                             "deviceId": device.device_uid})
    assert status == 400 and "passphrase" in answer["message"]
    assert stored() == []


def test_pool_sends_encrypted_only_to_decrypting_phones_and_failover_keeps_that(sg, account):
    acct, _, able, _ = account
    unable, _ = devices.register(acct.account_id, "No passphrase", sim_count=1)
    other_able, _ = devices.register(acct.account_id, "Also able", sim_count=1)
    devices.heartbeat(unable, "running", e2e=False)
    devices.heartbeat(other_able, "running", e2e=True)
    pool.forget_cached()
    for _ in range(6):
        assert sg("POST", "messages", {"phoneNumbers": [CIPHER], "isEncrypted": True,
                                       "textMessage": {"text": CIPHER}})[0] == 202
    assert unable.device_uid not in {m.device_uid for m in stored()}
    pool.forget_cached()
    moved = [pool.move(m, clock.now_ms()) for m in stored()]
    assert set(moved) == {"moved"}
    assert unable.device_uid not in {m.device_uid for m in stored()}
    assert Device.get(unable.device_uid).e2e is None


def test_otps_refuse_encryption(sg, account):
    from chalicelib.core.errors import BadRequest
    with pytest.raises(BadRequest) as caught:
        sending.send(account[0].account_id, account[2], CIPHER, CIPHER, kind="otp",
                      encrypted=True)
    assert "OTP" in caught.value.message and stored() == []


def test_accounts_are_isolated(sg, client):
    assert sg("POST", "messages", text(id="mine"))[0] == 202
    other = accounts.create_account("Other")
    key, _ = accounts.create_key(other.account_id)
    assert sg("GET", "messages/mine", auth=(other.account_id, key))[0] == 404
    assert sg("DELETE", "messages/mine", auth=(other.account_id, key))[0] == 404
    assert sg("GET", "messages", auth=(other.account_id, key))[1] == []
    # the same client id in another account is another message (it has no phone: refused)
    status, answer = sg("POST", "messages", text(id="mine", textMessage={"text": "x"}),
                        auth=(other.account_id, key))
    assert status == 400 and answer["data"]["code"] == "no_device"
    assert sg("GET", "messages/mine")[1]["recipients"][0]["state"] == "Pending"


def test_unsupported_is_a_clear_4xx(sg):
    for method, path in [("POST", "auth/token"), ("GET", "logs"), ("POST", "inbox/refresh"),
                         ("POST", "messages/inbox/export")]:
        status, answer = sg(method, path, {})
        assert status == 400 and answer["data"]["code"] == "not_supported", (path, answer)
    assert sg("GET", "nothing/here")[0] == 404
    assert sg("PUT", "devices")[0] == 400
    status, answer = sg("PATCH", "settings", {"encryption": {"passphrase": "no"}})
    assert status == 400 and "never" in answer["message"]


def test_the_dashboard_shows_encrypted_instead_of_content(sg, client, account, monkeypatch):
    from argon2 import PasswordHasher

    from chalicelib.domain import users
    from tests.dashboard_helpers import Visitor, owner
    from tests.dashboard_helpers import text as page_text
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))
    monkeypatch.setattr(users, "_DUMMY_HASH", None)
    status, sent = sg("POST", "messages", {"phoneNumbers": [CIPHER], "isEncrypted": True,
                                           "textMessage": {"text": CIPHER}})
    assert status == 202
    owner(account[0].account_id, "owner@example.com")
    visitor = Visitor(client)
    assert visitor.sign_in("owner@example.com").status_code == 303
    message_id = stored()[0].message_id
    for path in ("/dashboard", "/dashboard/messages",
                 f"/dashboard/messages/outgoing/{message_id}"):
        shown = page_text(visitor.get(path))
        assert "encrypted" in shown and CIPHER not in shown and "aes-256" not in shown, path


def test_aws_calls_of_a_send(sg, account, aws_calls):
    uid = account[2].device_uid
    sg("POST", "messages", text(deviceId=uid))  # warm: key and device cached
    aws_calls.clear()
    sg("POST", "messages", text(deviceId=uid))  # no client id: nothing to claim
    assert sorted(op for _, op in aws_calls) == ["PutItem", "PutItem", "SendMessage"]
    aws_calls.clear()
    sg("POST", "messages", text(deviceId=uid, id="claimed-1"))
    assert sorted(op for _, op in aws_calls) == ["PutItem", "SendMessage", "TransactWriteItems",
                                                 "UpdateItem"]


def test_the_inbox_lists_received_sms(sg, account):
    from chalicelib.domain import incoming
    incoming.store(account[2], "in-1", "+8801712000050", "Hi there", 1, clock.now_ms())
    status, found = sg("GET", "inbox")
    assert status == 200
    assert [(m["sender"], m["contentPreview"], m["type"]) for m in found] == [
        ("+8801712000050", "Hi there", "SMS")]
    assert sg("GET", "inbox", query="?type=MMS")[0] == 400


def test_devices_are_listed_and_removed(sg, account):
    acct = account[0]
    spare, _ = devices.register(acct.account_id, "Spare", sim_count=1)
    status, listed = sg("GET", "devices")
    assert status == 200 and {d["id"] for d in listed} == {account[2].device_uid,
                                                          spare.device_uid}
    assert sg("DELETE", f"devices/{spare.device_uid}")[0] == 204
    assert [d["id"] for d in sg("GET", "devices")[1]] == [account[2].device_uid]
    assert sg("DELETE", f"devices/{spare.device_uid}")[0] == 404
    status, answer = sg("POST", "messages", text(body=""))
    assert status == 400 and answer["data"]["parameter"] == "textMessage.text"


def test_their_old_singular_paths_still_answer(sg, account):
    """SMSGate's server keeps /message and /device (its npm client 3.x calls /message)."""
    status, sent = sg("POST", "message", text(id="old-path"))
    assert status == 202
    assert sg("GET", "message/old-path")[1]["id"] == "old-path"
    assert sg("GET", "device")[1][0]["id"] == account[2].device_uid


def test_a_retry_later_with_valid_until_is_the_same_request(sg):
    clock.freeze()
    until = clock.fmt(clock.now_ms() + 3600 * 1000).replace(" ", "T") + "Z"
    body = text(id="until-1", validUntil=until)
    assert sg("POST", "messages", body)[0] == 202
    clock.advance(30)
    assert sg("POST", "messages", body)[0] == 202
    assert len(stored()) == 1


def test_webhooks_are_added_replaced_filtered_and_refused(sg, account, settings_override):
    settings_override(webhook_allow_private=True)
    status, made = sg("POST", "webhooks", {"url": "http://127.0.0.1:9/a", "event": "sms:sent",
                                           "deviceId": account[2].device_uid})
    assert status == 201 and made["deviceId"] == account[2].device_uid
    status, swapped = sg("POST", "webhooks", {"id": made["id"], "url": "http://127.0.0.1:9/b",
                                              "event": "sms:failed"})
    assert status == 201
    assert [(w["id"], w["url"]) for w in sg("GET", "webhooks")[1]] == [
        (swapped["id"], "http://127.0.0.1:9/b")]
    bad = sg("POST", "webhooks", {"id": swapped["id"], "url": "ftp://x", "event": "sms:sent"})
    assert bad[0] == 400 and [w["id"] for w in sg("GET", "webhooks")[1]] == [swapped["id"]]
    assert sg("POST", "webhooks", {"url": "http://127.0.0.1:9/c", "event": 5})[0] == 400
    assert sg("DELETE", f"webhooks/{swapped['id']}")[0] == 204
    assert sg("GET", "webhooks")[1] == []


def test_list_filters(sg, account, client):
    acct, key, first, _ = account
    second, _ = devices.register(acct.account_id, "Second", sim_count=1)
    devices.heartbeat(second, "running")
    clock.freeze()
    sg("POST", "messages", text(id="early", deviceId=first.device_uid))
    clock.advance(60)
    middle = clock.now_ms()
    sg("POST", "messages", text(body="Later", id="late", deviceId=second.device_uid))
    since = clock.fmt(middle).replace(" ", "T") + "Z"
    assert [m["id"] for m in sg("GET", "messages", query=f"?from={since}")[1]] == ["late"]
    assert [m["id"] for m in sg("GET", "messages", query=f"?to={since}")[1]] == ["early"]
    found = sg("GET", "messages", query=f"?deviceId={first.device_uid}&includeContent=true")[1]
    assert [(m["id"], m["textMessage"]["text"]) for m in found] == [("early", "Hello")]
    response = client.http.get("/3rdparty/v1/messages?limit=1", headers={
        "authorization": f"Bearer {key}"})
    assert len(json.loads(response.body)) == 1
    assert response.headers["X-Total-Count"] == "2"  # the whole match was read
    for bad in ("?limit=0", "?limit=101", "?offset=-1", "?sort=name", "?state=Sending",
                "?from=yesterday", "?limit=1&limit=2", "?colour=red"):
        assert sg("GET", "messages", query=bad)[0] == 400, bad


def test_a_twin_that_undid_the_group_meanwhile_is_retryable(sg, account, monkeypatch):
    """A same-content twin refused mid-send freed the id while this request was sending: this
    one does not write a group record without its claim; it answers 503 (retry)."""
    from chalicelib.domain.messages import groups
    from chalicelib.storage.tables import Idempotency
    real = groups._send_one

    def then_undone(caller, *args):
        accepted = real(caller, *args)
        Idempotency(key=groups._key(caller.account_id, "twin-undo")).delete()
        return accepted
    monkeypatch.setattr(groups, "_send_one", then_undone)
    status, answer = sg("POST", "messages", text(id="twin-undo"))
    assert status == 503 and answer["data"]["parameter"] == "id"
    assert not [i for i in Idempotency.scan() if i.key.endswith("#twin-undo")]
