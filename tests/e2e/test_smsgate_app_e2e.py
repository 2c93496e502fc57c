"""Conformance: SMSGate's Android app, played from its source (bench/smsgate_app.py: its
requests, User-Agent, JSON, reconnect timings), against the local gateway over real sockets.
Pairing through the admin CLI, registration, wake-up and pull, every state, the app's own
webhooks (incoming SMS, ping), a cancel, registering again after a 401; then a pool of the app
phone and an agent phone with the app killed mid-run: every message delivered exactly once."""
import json
import time

import pytest
import requests

from bench.smsgate_app import SmsgateApp
from tests.localgw_helpers import load_soak, wait_for

HEARTBEAT_WINDOW = 12  # > the app's 5 s reconnect gap, with room for a loaded machine
# The pool moves a message no phone took within its grace (and rests that phone): the grace
# must exceed the app's wake-up time (its 5 s reconnect gap; 60 s by default).
ENV = {"SMSGW_HEARTBEAT_WINDOW_SECONDS": str(HEARTBEAT_WINDOW), "SMSGW_POOL_GRACE_SECONDS": "15",
       "SMSGW_POOL_CACHE_SECONDS": "1", "SMSGW_SIM_PAUSE_SERVICE_SECONDS": "600"}
FAIL_TEXT = "please fail"
FAIL_REASON = "RESULT_ERROR_GENERIC_FAILURE (Generic failure cause)"


@pytest.fixture(scope="module")
def soak():
    return load_soak()


@pytest.fixture(scope="module")
def gw(soak, tmp_path_factory):
    gateway = soak.Gateway(tmp_path_factory.mktemp("smsgate"), devices=1, extra_env=ENV)
    yield gateway
    gateway.stop()


def app_token(gw) -> dict:
    out = gw.admin("device", "app-token", gw.info["account_id"], "--url", gw.url, "--json")
    return json.loads(out)


def api(gw, **params):
    return gw.api(requests.Session(), **params)


def running(gw) -> set:
    return {d["device_uid"] for d in api(gw, action="device_status")["data"]
            if d["status"] == "running"}


def history(gw, kind="outgoing") -> dict:
    answer = api(gw, action="get_history", type=kind, limit="100")
    return {m["message_id"]: m for m in answer["data"]["messages"]}


def test_the_app_end_to_end(gw):
    pairing = app_token(gw)
    assert pairing["server_url"] == f"{gw.url}/mobile/v1"
    app = SmsgateApp(pairing["server_url"], pairing["private_token"])
    app.fail[FAIL_TEXT] = FAIL_REASON
    app.start()
    try:
        uid = wait_for(lambda: app.registration and app.registration["id"], 20, "registration")
        wait_for(lambda: uid in running(gw), 20, "the app phone to be running")
        assert {h["event"] for h in app.webhooks} == {"sms:received", "sms:data-received",
                                                      "system:ping"}
        assert all(h["url"].startswith(f"{gw.url}/mobile/v1/") for h in app.webhooks)
        assert app.signing_key

        accepted = {}
        for text in ("hello from the gateway", FAIL_TEXT):
            answer = api(gw, action="send_sms", device_uid=uid, phone_number="+8801712345678",
                         message=text)
            assert answer["status"] == "success", answer
            accepted[answer["data"]["message_id"]] = time.time()
        ok_id, failed_id = accepted

        def settled():
            found = history(gw)
            return found if {found[m]["status"] for m in accepted} == {"delivered",
                                                                      "failed"} else None
        found = wait_for(settled, 30, "both messages to settle")
        assert found[ok_id]["status"] == "delivered" and found[ok_id]["device_uid"] == uid
        assert found[failed_id]["status"] == "failed"
        status = api(gw, action="check_status", message_id=str(failed_id))["data"]
        assert FAIL_REASON in (status["failed_reason"] or "")
        assert [e["message_id"] for e in app.ledger] == [ok_id]
        latency = {m: app.pulled_at[str(m)] - at for m, at in accepted.items()}
        assert all(0 <= seconds < 15 for seconds in latency.values()), latency

        answer = app.receive_sms("+8801711111111", "Hi from a real-ish phone", sim=2)
        assert answer.status_code == 200 and answer.json()["result"] == "stored"
        incoming = history(gw, "incoming")
        assert [(m["phone_number"], m["message"]) for m in incoming.values()] == [
            ("+8801711111111", "Hi from a real-ish phone")]
        assert app.ping().status_code == 200

        app.kill()  # off while a message waits: the sender cancels it
        app.join()
        answer = api(gw, action="send_sms", device_uid=uid, phone_number="+8801712345678",
                     message="cancel me")
        cancelled = answer["data"]["message_id"]
        cancel = requests.delete(f"{gw.url}/v1/messages/{cancelled}", timeout=30,
                                 headers={"Authorization": f"Bearer {gw.info['api_key']}"})
        assert cancel.status_code == 200, cancel.text
        pulls = app.requests[("GET", "/message")]
        app.start()
        wait_for(lambda: app.requests[("GET", "/message")] > pulls + 1, 20, "two pulls")
        assert str(cancelled) not in app.pulled_at
        assert history(gw)[cancelled]["status"] == "cancelled"

        # The same token registers the phone again (the app reinstalled): the same device with
        # a new device token; the running app's old token gets a 401 and it registers again.
        first_token = app.registration["token"]
        reinstalled = SmsgateApp(pairing["server_url"], pairing["private_token"])
        assert reinstalled.register()["id"] == uid
        wait_for(lambda: app.registration["token"] != first_token, 20, "re-registration")
        assert app.registration["id"] == uid
        answer = api(gw, action="send_sms", device_uid=uid, phone_number="+8801712345678",
                     message="after the 401")
        again = answer["data"]["message_id"]
        wait_for(lambda: history(gw)[again]["status"] == "delivered", 30, "delivery after 401")
        assert app.errors == []
    finally:
        app.kill()


def test_pool_of_an_app_phone_and_an_agent_with_the_app_killed(gw, soak, tmp_path):
    pairing = app_token(gw)
    app = SmsgateApp(pairing["server_url"], pairing["private_token"]).start()
    agent = soak.AgentSlot(gw, gw.info["devices"][0], tmp_path, 0.0)
    agent.start()
    try:
        uid = wait_for(lambda: app.registration and app.registration["id"], 20, "registration")
        wait_for(lambda: {uid, agent.device["device_uid"]} <= running(gw), 30,
                 "both phones running")
        chosen = {}

        def send(n):
            answer = api(gw, action="send_sms", phone_number=f"+88017{n:08d}",
                         message=f"pool message {n}")
            assert answer["status"] == "success", answer
            chosen[answer["data"]["message_id"]] = answer["data"]["device_uid"]
        for n in range(8):
            send(n)
        wait_for(lambda: app.ledger, 20, "the app phone to send one")
        app.kill()  # mid-run: what it had taken it finishes when it comes back
        for n in range(8, 16):
            send(n)
        wait_for(lambda: uid not in running(gw), HEARTBEAT_WINDOW + 20,
                 "the liveness sweep to stop the app phone")
        app.join()
        app.start()

        def settled():
            found = history(gw)
            return found if all(found.get(m, {}).get("status") == "delivered"
                                for m in chosen) else None
        found = wait_for(settled, 90, "every message delivered")
        senders = {}
        for entry in app.ledger:
            senders.setdefault(entry["message_id"], []).append(uid)
        for entry in agent.entries():
            senders.setdefault(entry["message_id"], []).append(agent.device["device_uid"])
        assert {m: len(s) for m, s in senders.items() if len(s) != 1} == {}
        assert set(senders) == set(chosen)
        assert all(found[m]["device_uid"] == senders[m][0] for m in chosen)
        assert any(s == [uid] for s in senders.values())  # the app phone did send
        moved = [m for m, first in chosen.items() if first == uid and senders[m] != [uid]]
        print(f"\napp phone sent {len(app.ledger)}, agent {len(agent.entries())}, "
              f"moved off the killed app phone: {len(moved)}")
    finally:
        app.kill()
        agent.kill()
        agent.log.close()


def test_encrypted_messages_through_the_app_and_a_cancel_it_answers(gw):
    """The app reports each recipient by the number it stored, for an encrypted message the
    ciphertext: every state reaches SMSGate's client API. A message waiting in the app's queue
    is cancelled through it: Cancelling, then the app's Cancelled (processMessage)."""
    from android_sms_gateway import Encryptor
    pairing = app_token(gw)
    app = SmsgateApp(pairing["server_url"], pairing["private_token"]).start()
    base, auth = f"{gw.url}/3rdparty/v1", (gw.info["account_id"], gw.info["api_key"])
    cipher = Encryptor("the app's passphrase")
    texts = {name: cipher.encrypt(name) for name in ("deliver", "fail", "hold")}
    app.fail[texts["fail"]] = FAIL_REASON
    app.hold.add(texts["hold"])
    try:
        uid = wait_for(lambda: app.registration and app.registration["id"], 20, "registration")
        wait_for(lambda: uid in running(gw), 20, "the app phone to be running")

        def send(name, *numbers):
            answer = requests.post(f"{base}/messages", auth=auth, timeout=30, json={
                "id": f"enc-{name}", "deviceId": uid, "isEncrypted": True,
                "phoneNumbers": [cipher.encrypt(n) for n in numbers],
                "textMessage": {"text": texts[name]}})
            assert answer.status_code == 202, answer.text
            return answer.json()

        def state(name):
            answer = requests.get(f"{base}/messages/enc-{name}", auth=auth, timeout=30)
            assert answer.status_code == 200, answer.text
            return answer.json()
        sent = {name: send(name, *numbers) for name, numbers in (
            ("deliver", ["+8801712000011", "+8801712000012"]), ("fail", ["+8801712000013"]),
            ("hold", ["+8801712000014"]))}
        done = wait_for(lambda: (lambda s: s if s["state"] == "Delivered" else None)(
            state("deliver")), 30, "the encrypted message delivered")
        assert [r["phoneNumber"] for r in done["recipients"]] == [
            r["phoneNumber"] for r in sent["deliver"]["recipients"]]
        assert {"Pending", "Processed", "Sent", "Delivered"} <= set(done["states"])
        failed = wait_for(lambda: (lambda s: s if s["state"] == "Failed" else None)(
            state("fail")), 30, "the encrypted message failed")
        assert FAIL_REASON in failed["recipients"][0]["error"]
        wait_for(lambda: any(i["message"]["textMessage"]["text"] == texts["hold"]
                             for i in list(app.local.values())), 30, "the app to take it")
        assert state("hold")["state"] == "Processed"  # taken, waiting in the app's queue
        cancel = requests.delete(f"{base}/messages/enc-hold", auth=auth, timeout=30)
        assert cancel.status_code == 200 and cancel.json()["state"] == "Cancelling", cancel.text
        wait_for(lambda: state("hold")["state"] == "Cancelled", 30, "the app's Cancelled")
        assert state("hold")["recipients"][0]["state"] == "Cancelled"
        assert requests.delete(f"{base}/messages/enc-hold", auth=auth,
                               timeout=30).status_code == 409
        assert [e["message"] for e in app.ledger if e["message"] in texts.values()] == [
            texts["deliver"], texts["deliver"]]
        assert app.errors == []
    finally:
        app.kill()
