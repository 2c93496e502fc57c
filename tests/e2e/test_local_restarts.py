"""Restarts of the local gateway replay nothing (issue 30, item 8): a real `local_gateway.py
--data DIR` process, stopped (Ctrl-C) and started again twice on the same folder, with a real
webhook receiver and alert mails turned on. Every stream consumer (count_outcomes: /v1/stats;
emit_events: webhooks and alert mails) must see each change once: before the fix, restoring the
snapshot re-fed every restored record to them (delivered 3, then 6, then 9).

Each gateway after the first also delivers one new message, so the pumps are seen working after
a restore (the counts that must not move are not silent because nothing runs)."""
import signal
import time
from collections import Counter

import requests
from test_alerts_e2e import mails, opt_in, wait_for

from bench.webhook_receiver import Receiver
from tests.localgw_helpers import GatewayProcess

WINDOW = 3  # the first gateway's heartbeat window: the phone goes offline once, mailed once
OFFLINE, BACK = "[smsgw] Phone Demo phone is offline", "[smsgw] Phone Demo phone is back online"


def start(data, window):
    return GatewayProcess("--no-agent", data=data, user=True, env={
        "SMSGW_HEARTBEAT_WINDOW_SECONDS": window, "SMSGW_LOCAL_SCHEDULE_CAP_SECONDS": 1,
        "SMSGW_WEBHOOK_RETRY_SCALE": 0.01})


def stop(gateway):
    assert gateway.stop(signal.SIGINT, timeout=30) == 0


def deliver_one(info, text):
    """Send through the REST API; the phone takes the job and reports it sent, then delivered."""
    key = {"Authorization": f"Bearer {info['api_key']}"}
    phone = {"Authorization": f"Bearer {info['device_token']}"}
    answer = requests.post(f"{info['url']}/v1/messages", headers=key, timeout=10, json={
        "recipients": ["+14155550100"], "message": text, "device_id": info["device_id"]})
    assert answer.status_code in (200, 201, 202), answer.text
    message_id = answer.json()["messages"][0]["id"]
    deadline = time.time() + 20
    while time.time() < deadline:
        jobs = requests.get(f"{info['url']}/device/jobs?wait=2", headers=phone,
                            timeout=15).json()["jobs"]
        if any(j["message_id"] == message_id for j in jobs):
            break
    else:
        raise AssertionError(f"job {message_id} never reached the phone")
    for status in ("sent", "delivered"):
        assert requests.post(f"{info['url']}/device/reports", headers=phone, timeout=10, json={
            "reports": [{"message_id": message_id, "status": status}]}).status_code == 200
    return message_id


def delivered(info):
    answer = requests.get(f"{info['url']}/v1/stats", timeout=10,
                          headers={"Authorization": f"Bearer {info['api_key']}"})
    return answer.json()["totals"]["delivered"]


def events_per_message(receiver):
    """(event type, message id) -> deliveries accepted by the receiver, duplicates included:
    a replayed change is a new event (a new id) for the same message."""
    with receiver.lock:
        seen = Counter()
        for event_id, payload in receiver.events.items():
            data = payload.get("data") or {}
            subject = data.get("message_id") or data.get("id") or data.get("device_uid")
            seen[(payload["type"], str(subject))] += receiver.arrivals[event_id]
        return seen


def state(info, receiver):
    return {"delivered": delivered(info), "mails": mails(info),
            "webhooks": events_per_message(receiver)}


def stays(expected, info, receiver, seconds):
    """The state stays `expected` for `seconds` (a replay lands within a second of the
    start)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert state(info, receiver) == expected
        time.sleep(0.5)


def restart_once(data, restart, receiver, before):
    """Start again on `data`: nothing repeated; one new message counted and announced once."""
    expected_mails = [OFFLINE, BACK]  # the phone reports again after the first restart
    gateway = start(data, 3600)
    info = gateway.info
    try:
        assert info["restored"]
        stays({"delivered": 2 + restart, "mails": expected_mails[:restart],
               "webhooks": before}, info, receiver, seconds=4)
        fresh = deliver_one(info, f"after restart {restart}")
        assert wait_for(lambda: delivered(info) == 3 + restart)
        assert wait_for(lambda: events_per_message(receiver).get(
            ("sms.delivered", str(fresh))) == 1)
        assert wait_for(lambda: mails(info) == expected_mails)
        time.sleep(1)
        now = events_per_message(receiver)
        new = {("sms.sent", str(fresh)): 1, ("sms.delivered", str(fresh)): 1}
        if restart == 1:  # the phone came back: one device.online, as its mail
            new[("device.online", info["device_uid"])] = 1
        assert dict(now - before) == new
        assert set(receiver.arrivals.values()) == {1}  # no event id twice either
        stays({"delivered": 3 + restart, "mails": expected_mails, "webhooks": now},
              info, receiver, seconds=3)
        return now
    finally:
        stop(gateway)


def test_two_restarts_repeat_no_count_webhook_or_mail(tmp_path):
    data = tmp_path / "data"
    receiver = Receiver()
    try:
        gateway = start(data, WINDOW)
        info = gateway.info
        try:
            opt_in(info)
            answer = requests.post(f"{info['url']}/v1/webhooks", timeout=10, json={
                "url": receiver.url}, headers={"Authorization": f"Bearer {info['api_key']}"})
            assert answer.status_code == 201, answer.text
            receiver.secrets.append(answer.json()["secret"])
            for n in range(3):
                deliver_one(info, f"before any restart {n}")
            assert wait_for(lambda: delivered(info) == 3)
            assert wait_for(lambda: mails(info) == [OFFLINE])  # silent past the window
            assert wait_for(lambda: sum(1 for (kind, _) in events_per_message(receiver)
                                        if kind == "sms.delivered") == 3)
            time.sleep(2)
            before = events_per_message(receiver)
            assert before and set(before.values()) == {1}, before
        finally:
            stop(gateway)

        for restart in (1, 2):
            before = restart_once(data, restart, receiver, before)
    finally:
        receiver.close()
