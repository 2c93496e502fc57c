"""Webhooks end to end on moto: real state changes -> the tables' DynamoDB streams -> the app's
stream function -> the webhook queue -> the app's queue function -> a real HTTP receiver on
127.0.0.1 (bench/webhook_receiver.py), which verifies every signature with the shipped helper
and deduplicates by event id. local_events.EventPumps plays Lambda's event source mappings."""
import json
import subprocess
import time
from pathlib import Path

import pytest

from bench.webhook_receiver import Receiver
from chalicelib.core import clock, settings
from chalicelib.domain import accounts, devices, incoming, jobs, messages, sweeps, webhooks
from chalicelib.domain.webhooks import delivery_log
from chalicelib.domain.webhooks import dispatch as webhook_delivery
from chalicelib.domain.webhooks import events as events
from chalicelib.domain.webhooks import urls as webhook_urls
from chalicelib.storage.webhook_tables import Webhook, WebhookDelivery
from clients import smsgw_webhook
from tests import sending

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def local_settings(settings_override):
    """The local gateway's settings: http and loopback receivers allowed, quick retries."""
    settings_override(webhook_allow_private=True)
    settings_override(webhook_retry_scale=0.001)  # 1 s, 1 s, 1 s, 1 s, 2 s...
    settings_override(webhook_cache_seconds=0)


@pytest.fixture
def pumps(aws_mock, local_settings, atomic_moto):
    """A batch's deliveries run in threads: moto is given DynamoDB's per-item atomicity."""
    from localgw import events as local_events
    webhooks.forget_cached()
    webhook_delivery.forget_cached()
    return local_events.EventPumps()


@pytest.fixture
def receivers():
    made = []

    def make(**kwargs):
        made.append(Receiver(**kwargs))
        return made[-1]
    yield make
    for receiver in made:
        receiver.close()


def setup_account(name="Acme"):
    account = accounts.create_account(name)
    device, _ = devices.register(account.account_id, "Phone", sim_count=2)
    return account, device


def hook(account, receiver, events_=None):
    webhook = webhooks.add(account.account_id, receiver.url, events_)
    receiver.secrets.append(webhook.secret)
    return webhook


def send_and_settle(device, number="+14155550100", text="hello", outcome="delivered"):
    """One message through a real lease and the device's reports; returns its id."""
    accepted = sending.send(device.account_id, device, number, text)
    assert jobs.lease_from_queue(device, 0, 10)
    message_id = accepted.message.message_id
    if outcome == "failed":
        jobs.report(device, message_id, "failed", "No credit.")
    else:
        jobs.report(device, message_id, "sent")
        if outcome == "delivered":
            jobs.report(device, message_id, "delivered")
    return message_id


def pump_until(pumps, receiver, predicate, timeout=30.0):
    return receiver.wait_for(predicate, timeout, poll=pumps.drain)


# --- events and payloads ---------------------------------------------------------------------

def test_lifecycle_events_arrive_signed_with_the_documented_payload(pumps, receivers):
    account, device = setup_account()
    receiver = receivers()
    webhook = hook(account, receiver)
    delivered = send_and_settle(device)
    failed = send_and_settle(device, "+14155550101", "second", outcome="failed")
    devices.heartbeat(device, "running")
    incoming.store(device, "sms-1", "+14155550199", "Hi back", 1, clock.now_ms())
    devices.heartbeat(device, "stopped")
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 6), receiver.events
    assert receiver.bad_signatures == 0
    by_type = {}
    for event in receiver.events.values():
        by_type.setdefault(event["type"], []).append(event)
    assert sorted(by_type) == ["device.offline", "device.online", "sms.delivered", "sms.failed",
                               "sms.received", "sms.sent"]
    sent = by_type["sms.sent"][0]
    assert set(sent) == {"id", "type", "created_at", "created_at_ms", "sequence", "account_id",
                         "data"}
    assert sent["account_id"] == account.account_id
    assert sent["data"] == {"message_id": delivered, "phone_number": "+14155550100",
                            "status": "sent", "device_id": device.device_id,
                            "device_uid": device.device_uid, "sim_slot": 1, "kind": "sms",
                            "segments": 1}
    fail = by_type["sms.failed"][0]["data"]
    assert (fail["message_id"], fail["failed_reason"]) == (failed, "No credit.")
    received = by_type["sms.received"][0]["data"]
    assert (received["message"], received["phone_number"]) == ("Hi back", "+14155550199")
    assert by_type["device.offline"][0]["data"]["status"] == "stopped"
    # One message's events order by `sequence` (string comparison), whatever the arrival order.
    assert by_type["sms.sent"][0]["sequence"] < by_type["sms.delivered"][0]["sequence"]
    assert len(by_type["sms.sent"][0]["sequence"]) == events.SEQUENCE_DIGITS
    headers = receiver.requests[0][0]
    assert headers["X-Smsgw-Webhook-Id"] == webhook.webhook_id
    assert headers["X-Smsgw-Signature"].startswith("v1=") and "," not in \
        headers["X-Smsgw-Signature"]
    assert headers["Content-Type"] == "application/json"


def test_otp_code_is_never_in_an_event(pumps, receivers, api, account):
    acct, key, device, _ = account
    receiver = receivers()
    hook(acct, receiver)
    envelope, _ = api(action="send_otp", api_key=key, device_uid=device.device_uid,
                      phone_number="+14155550123")
    assert envelope["status"] == "success", envelope
    [job] = jobs.lease_from_queue(device, 0, 1)
    code = "".join(ch for ch in job["message"] if ch.isdigit())
    assert len(code) >= 4
    jobs.report(device, job["message_id"], "sent")
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 1)
    [(_, body, _)] = receiver.requests
    assert code.encode() not in body
    assert json.loads(body)["data"]["kind"] == "otp"


def test_subscribed_types_only_and_expiry_event(pumps, receivers, monkeypatch):
    account, device = setup_account()
    only_final = receivers()
    hook(account, only_final, ["sms.delivered", "sms.expired"])
    send_and_settle(device)
    accepted = sending.send(account.account_id, device, "+14155550102", "late",
                             valid_for_seconds=60)
    clock.advance(120)
    assert sweeps.settle_due_messages()["expired"] == 1
    assert pump_until(pumps, only_final, lambda r: len(r.events) == 2)
    pumps.drain()
    assert sorted(e["type"] for e in only_final.events.values()) == ["sms.delivered",
                                                                     "sms.expired"]
    expired = only_final.of_type("sms.expired")[0]["data"]
    assert expired["message_id"] == accepted.message.message_id
    assert expired["failed_reason"] == "Not sent within its validity period."


def test_sent_and_delivered_in_one_write_emit_both_events(pumps, receivers):
    """The agent reports `sent` and `delivered` in one call and the gateway records both in one
    write: the stream shows processing -> delivered, and `sms.sent` still goes out, with the
    id a separate `sent` write would have given it, before `sms.delivered`."""
    from chalicelib.surfaces import device_api
    account, device = setup_account()
    receiver = receivers()
    hook(account, receiver, ["sms.sent", "sms.delivered", "sms.failed"])
    accepted = sending.send(device.account_id, device, "+14155550100", "hello")
    assert jobs.lease_from_queue(device, 0, 10)
    message_id = accepted.message.message_id
    answer = device_api.act_reports(device, [(message_id, "sent", None),
                                             (message_id, "delivered", None)])
    assert [r["status"] for r in answer["results"]] == ["delivered", "delivered"]
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 2), receiver.events
    pumps.drain()
    assert sum(receiver.arrivals.values()) == 2  # once each, nothing doubled
    stored = messages.lookup(account.account_id, message_id)
    by_type = {e["type"]: e for e in receiver.events.values()}
    assert sorted(by_type) == ["sms.delivered", "sms.sent"]
    sent = by_type["sms.sent"]
    assert sent["id"] == events.event_id(account.account_id, "sms.sent", message_id,
                                         stored.processed_at)
    assert sent["created_at_ms"] == stored.processed_at
    assert sent["data"]["status"] == "sent" and sent["data"]["message_id"] == message_id
    assert by_type["sms.delivered"]["data"]["status"] == "delivered"
    # one record (one write); sms.sent orders first
    assert int(sent["sequence"]) == int(by_type["sms.delivered"]["sequence"]) - 1


def test_event_ids_are_stable_across_a_replayed_stream_batch(pumps, receivers):
    """Lambda retries a stream batch after a failure: the same changes give the same ids."""
    account, device = setup_account()
    receiver = receivers()
    hook(account, receiver)
    send_and_settle(device)
    records = []
    original = pumps.app.emit_events

    def capture(event, context):
        records.extend(event["Records"])
        return original(event, context)
    pumps.app.emit_events = capture
    try:
        pumps.drain()
    finally:
        pumps.app.emit_events = original
    first = [e for r in records for e in events.from_stream_record(r)]
    again = [e for r in records for e in events.from_stream_record(json.loads(json.dumps(r)))]
    assert [e.id for e in first] == [e.id for e in again] and first
    pumps.app.emit_events({"Records": records}, None)  # the replay itself
    assert pump_until(pumps, receiver, lambda r: sum(r.arrivals.values()) == 4)
    assert set(receiver.arrivals.values()) == {2}  # each id twice; deduped to 2 events
    assert len(receiver.events) == 2


# --- signatures --------------------------------------------------------------------------------

def first_signed_event(pumps, receivers):
    """An endpoint for sms.sent, and the first such event it got: (account, device, receiver,
    webhook, headers, body)."""
    account, device = setup_account()
    receiver = receivers()
    webhook = hook(account, receiver, ["sms.sent"])
    send_and_settle(device, outcome="sent")
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 1)
    headers, body, _ = receiver.requests[0]
    return account, device, receiver, webhook, headers, body


def test_signature_verification_tampering_replay_and_rotation(pumps, receivers):
    account, device, receiver, webhook, headers, body = first_signed_event(pumps, receivers)
    signature, timestamp = headers["X-Smsgw-Signature"], headers["X-Smsgw-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 30
    assert smsgw_webhook.verify(body, signature, timestamp, [webhook.secret])
    assert not smsgw_webhook.verify(body.replace(b"hello", b"hellp") + b" ", signature,
                                    timestamp, [webhook.secret])
    assert not smsgw_webhook.verify(body[:-1] + b" }", signature, timestamp, [webhook.secret])
    assert not smsgw_webhook.verify(body, signature, timestamp, ["whsec_wrong"])
    old = int(timestamp) + 301
    assert not smsgw_webhook.verify(body, signature, timestamp, [webhook.secret], now=old)
    forged = smsgw_webhook.sign(webhook.secret, old, body)  # a re-timed copy needs the secret
    assert forged != signature

    rotated = webhooks.rotate_secret(account.account_id, webhook.webhook_id, 3600)
    receiver.secrets = [rotated.secret]  # the receiver switched to the new secret at once
    send_and_settle(device, "+14155550111", outcome="sent")
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 2)
    headers, body, status = receiver.requests[-1]
    both = headers["X-Smsgw-Signature"].split(",")
    assert len(both) == 2 and status == 200
    assert smsgw_webhook.verify(body, headers["X-Smsgw-Signature"],
                                headers["X-Smsgw-Timestamp"], [webhook.secret])  # old still ok
    clock.advance(3601)  # overlap over: one signature, the new secret's
    signature = webhooks.signature_header(webhooks.get(account.account_id,
                                                       webhook.webhook_id), 1, b"x")
    assert "," not in signature and signature == smsgw_webhook.sign(rotated.secret, 1, b"x")


def test_php_helper_verifies_what_the_gateway_signs(pumps, receivers, tmp_path):
    import shutil
    if not shutil.which("php"):
        pytest.skip("php-cli is not installed (CI installs it)")
    _, _, _, webhook, headers, body = first_signed_event(pumps, receivers)
    (tmp_path / "body").write_bytes(body)
    script = (f"require '{ROOT / 'clients' / 'smsgw_webhook.php'}';"
              "[$_, $file, $sig, $ts, $secret, $now] = $argv;"
              "echo smsgw_webhook_verify(file_get_contents($file), $sig, $ts, [$secret], 300,"
              " (int) $now) ? 'ok' : 'no';")

    def php(body_file, signature, secret, now):
        return subprocess.run(["php", "-r", script, body_file, signature,
                               headers["X-Smsgw-Timestamp"], secret, str(now)],
                              capture_output=True, text=True, check=True).stdout

    ts = int(headers["X-Smsgw-Timestamp"])
    signature = headers["X-Smsgw-Signature"]
    assert php(str(tmp_path / "body"), signature, webhook.secret, ts + 5) == "ok"
    assert php(str(tmp_path / "body"), signature, "whsec_wrong", ts + 5) == "no"
    assert php(str(tmp_path / "body"), signature, webhook.secret, ts + 301) == "no"
    (tmp_path / "tampered").write_bytes(body.replace(b'"sent"', b'"SENT"'))
    assert php(str(tmp_path / "tampered"), signature, webhook.secret, ts + 5) == "no"
    two = signature + "," + smsgw_webhook.sign("whsec_other", ts, body)
    assert php(str(tmp_path / "body"), two, "whsec_other", ts) == "ok"


# --- delivery: outages, errors, retries -------------------------------------------------------

def test_receiver_down_for_a_while_gets_every_event_once(pumps, receivers):
    account, device = setup_account()
    receiver = receivers()
    hook(account, receiver)
    receiver.down()
    ids = [send_and_settle(device, f"+1415555{n:04d}", f"m{n}") for n in range(15)]
    pumps.drain()
    deadline = time.time() + 2.5
    while time.time() < deadline:  # retries keep failing while it is down
        pumps.drain()
        time.sleep(0.1)
    assert receiver.requests == []
    retrying = [d for d in WebhookDelivery.scan() if d.state == "retrying"]
    assert len(retrying) == 30 and all(d.log[0].error for d in retrying)
    receiver.up()
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 30, timeout=60)
    assert {e["data"]["message_id"] for e in receiver.events.values()} == set(ids)
    assert set(receiver.arrivals.values()) == {1}  # exactly once per id


def test_random_500s_for_200_events_lose_none(pumps, receivers):
    account, device = setup_account()
    receiver = receivers(fail_rate=0.3, seed=11)
    hook(account, receiver, ["sms.received"])
    for n in range(200):
        incoming.store(device, f"in-{n}", "+14155550199", f"text {n}", 1, clock.now_ms())
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 200, timeout=120), \
        len(receiver.events)
    assert sorted(e["data"]["message"] for e in receiver.events.values()) == \
        sorted(f"text {n}" for n in range(200))
    refused = sum(1 for _, _, status in receiver.requests if status == 500)
    assert refused > 30  # the receiver really did fail a lot of first tries
    states = {d.state for d in WebhookDelivery.scan()}
    assert states == {"delivered"}


def test_retry_schedule_spans_a_day_with_hops_of_at_most_15_minutes(aws_mock, monkeypatch):
    monkeypatch.setattr(webhook_delivery, "JITTER", 0)
    waits = [webhook_delivery.retry_delay_ms(n) for n in range(1, 12)]
    assert waits[-1] is None and all(waits[:-1])
    assert sum(waits[:-1]) >= 24 * 3600 * 1000
    job = {"w": "wh_0", "a": "acc", "e": "evt", "t": "sms.sent", "n": 7, "f": 0, "b": "{}",
           "d": clock.now_ms() + 10 * 3600 * 1000}
    hops = 0
    while True:  # a 10 h wait: re-queued with the remaining wait, at most 900 s a time
        what, nxt, delay = webhook_delivery.handle(job)
        if what != "waiting":
            break
        assert nxt == job and 0 < delay <= 900
        hops += 1
        clock.advance(delay)
    assert hops == 40 and what == "gone"  # then due (the endpoint of this unit job is unknown)


def test_dead_letter_record_then_redeliver(pumps, receivers, monkeypatch):
    monkeypatch.setattr(webhook_delivery, "RETRY_DELAYS", (10, 20))
    account, device = setup_account()
    receiver = receivers(status=503)
    webhook = hook(account, receiver, ["sms.sent"])
    send_and_settle(device, outcome="sent")
    assert pump_until(pumps, receiver, lambda r: len(r.requests) == 3)
    time.sleep(0.3)
    pumps.drain()
    [dead] = delivery_log.deliveries(account.account_id, webhook.webhook_id)
    assert (dead.state, dead.attempts) == ("dead", 3)
    assert [a.status_code for a in dead.log] == [503, 503, 503]
    assert all(a.error == "HTTP 503" and a.latency_ms >= 0 for a in dead.log)
    receiver.status = 200
    since = dead.last_at - 1
    assert delivery_log.redeliver(account.account_id, webhook.webhook_id, since_ms=since) == \
        [dead.event_id]
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 1)
    again = delivery_log.delivery(webhook.webhook_id, dead.event_id)
    assert (again.state, again.attempts) == ("delivered", 4)
    assert list(receiver.events) == [dead.event_id]  # the same id as the failed attempts


def test_auto_disable_after_a_failure_stretch_and_back(pumps, receivers, settings_override):
    settings_override(webhook_disable_min_failures=4, webhook_disable_after_seconds=1)
    account, device = setup_account()
    receiver = receivers(status=500)
    webhook = hook(account, receiver, ["sms.received"])
    watcher = receivers()
    hook(account, watcher, ["webhook.disabled"])
    for n in range(3):
        incoming.store(device, f"a-{n}", "+14155550199", f"t{n}", 1, clock.now_ms())
    assert pump_until(pumps, receiver, lambda r: len(r.requests) >= 3)
    assert webhooks.describe(webhooks.get(account.account_id, webhook.webhook_id))[
        "status"] == "failing"
    time.sleep(1.1)
    ok = receiver.wait_for(lambda r: webhooks.get(account.account_id, webhook.webhook_id)
                           .state == "disabled", 30, poll=pumps.drain)
    assert ok
    shown = webhooks.describe(webhooks.get(account.account_id, webhook.webhook_id))
    assert shown["status"] == "disabled" and "Disabled automatically" in \
        shown["disabled_reason"] and "HTTP 500" in shown["disabled_reason"]
    # The account's other endpoint hears of it (issue 24: the alert causes are events too).
    assert pump_until(pumps, watcher, lambda r: r.of_type("webhook.disabled"))
    [notice] = watcher.of_type("webhook.disabled")
    assert notice["data"]["webhook_id"] == webhook.webhook_id
    assert "Disabled automatically" in notice["data"]["reason"]
    requests_then = len(receiver.requests)
    for n in range(3, 5):
        incoming.store(device, f"a-{n}", "+14155550199", f"t{n}", 1, clock.now_ms())
    for _ in range(20):
        pumps.drain()
        time.sleep(0.1)
    assert len(receiver.requests) == requests_then  # nothing more sent while disabled
    assert delivery_log.deliveries(account.account_id, webhook.webhook_id, state="skipped")
    # The owner fixes the receiver, enables the endpoint and asks for what it missed.
    receiver.status = 200
    webhooks.set_enabled(account.account_id, webhook.webhook_id, True)
    delivery_log.redeliver(account.account_id, webhook.webhook_id, since_ms=0)
    # (a job whose attempt met an unexpected error, e.g. the emulator's, comes back in a minute)
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 5,
                      timeout=webhook_delivery.ERROR_RETRY_SECONDS + 30)
    assert webhooks.describe(webhooks.get(account.account_id, webhook.webhook_id))[
        "status"] == "enabled"


def test_timeout_redirect_and_capped_read(pumps, receivers, settings_override):
    from chalicelib.domain.webhooks import sender as webhook_sender
    settings_override(webhook_timeout_seconds=0.5)
    slow = receivers(delay=1.5)
    started = time.monotonic()
    outcome = webhook_sender.post(slow.url, b"{}", {})
    assert outcome.status_code is None and outcome.error.startswith("timeout")
    assert time.monotonic() - started < 1.2
    moved = receivers(status=302)
    outcome = webhook_sender.post(moved.url, b"{}", {})
    assert outcome.status_code == 302 and not outcome.ok and "not followed" in outcome.error
    assert len(moved.requests) == 1


# --- safety -------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
                                 "https://10.0.0.1/", "https://169.254.169.254/",
                                 "https://localhost/hook", "https://[::1]/",
                                 "https://[::ffff:127.0.0.1]/", "https://100.64.0.1/",
                                 "https://0.0.0.0/", "http://example.com/"])
def test_aws_stages_refuse_private_addresses_and_http_at_add(aws_mock, url, monkeypatch,
                                                             settings_override):
    settings_override(webhook_allow_private=False)
    account, _ = setup_account()
    connected = []
    monkeypatch.setattr("socket.create_connection", lambda *a, **k: connected.append(a))
    with pytest.raises(Exception) as refused:
        webhooks.add(account.account_id, url)
    assert getattr(refused.value, "parameter", None) == "url", refused.value
    assert list(Webhook.query(account.account_id)) == [] and connected == []


def test_aws_stages_refuse_at_send_time_too(pumps, receivers, settings_override):
    """Added while allowed (or resolving elsewhere), refused when sending: nothing connects."""
    account, device = setup_account()
    receiver = receivers()
    webhook = hook(account, receiver, ["sms.sent"])
    settings_override(webhook_allow_private=False)
    send_and_settle(device, outcome="sent")
    pumps.drain()
    [item] = delivery_log.deliveries(account.account_id, webhook.webhook_id)
    assert item.state == "retrying" and item.log[0].status_code is None
    assert item.log[0].error == "refused: the URL must be https"
    assert receiver.requests == []


def test_dns_rebinding_is_refused_before_connecting(aws_mock, monkeypatch, settings_override):
    """A name that resolved to a public address at `add` and to 127.0.0.1 at send time."""
    import socket

    from chalicelib.domain.webhooks import sender as webhook_sender
    settings_override(webhook_allow_private=False)
    answers = {"now": "93.184.216.34"}
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers["now"], port))])
    connected = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connected.append(a))
    account, _ = setup_account()
    webhook = webhooks.add(account.account_id, "https://hooks.example.com/in")  # public: ok
    answers["now"] = "127.0.0.1"
    outcome = webhook_sender.post(webhook.url, b"{}", {})
    assert outcome.status_code is None and connected == []
    assert outcome.error == "refused: hooks.example.com resolves to a loopback address " \
                            "(127.0.0.1)"
    answers["now"] = "169.254.169.254"
    assert "link-local" in webhook_sender.post(webhook.url, b"{}", {}).error
    assert connected == []


def test_bad_urls_and_event_names_are_clear_errors(aws_mock, local_settings):
    account, _ = setup_account()
    for url, words in [("ftp://x.example/", "scheme"), ("https://user:pw@x.example/",
                       "credentials"), ("not a url", "absolute"), ("https://", "no host"),
                       ("https://x.example/#frag", "fragment")]:
        with pytest.raises(Exception) as error:
            webhooks.add(account.account_id, url)
        assert words in error.value.message and error.value.parameter == "url"
    with pytest.raises(Exception) as error:
        webhooks.add(account.account_id, "http://127.0.0.1:9/", ["sms.nope"])
    assert error.value.parameter == "events" and "sms.nope" in error.value.message
    assert webhooks.list_all(account.account_id) == []
    with pytest.raises(webhook_urls.Refused):
        webhook_urls.check("http://127.0.0.1/", allow_private=False)


# --- isolation and cost -------------------------------------------------------------------------

def test_account_b_never_receives_account_a_events(pumps, receivers):
    a, device_a = setup_account("A")
    b, device_b = setup_account("B")
    receiver_a, receiver_b = receivers(), receivers()
    hook(a, receiver_a)
    hook(b, receiver_b)
    for n in range(3):
        send_and_settle(device_a, f"+1415555010{n}", "for A")
    send_and_settle(device_b, "+14155550200", "for B")
    assert pump_until(pumps, receiver_a, lambda r: len(r.events) == 6)
    assert pump_until(pumps, receiver_b, lambda r: len(r.events) == 2)
    pumps.drain()
    assert {e["account_id"] for e in receiver_a.events.values()} == {a.account_id}
    assert {e["account_id"] for e in receiver_b.events.values()} == {b.account_id}
    assert not set(receiver_a.events) & set(receiver_b.events)
    assert receiver_b.bad_signatures == receiver_a.bad_signatures == 0


def test_emitting_an_event_costs_the_request_path_no_aws_call(pumps, receivers, aws_calls):
    """The device's `sent` report makes the same calls with or without webhooks: the event is
    the stream record of the write it already makes."""
    account, device = setup_account()

    def report_calls():
        accepted = sending.send(account.account_id, device, "+14155550100", "x")
        jobs.lease_from_queue(device, 0, 1)
        aws_calls.clear()
        jobs.report(device, accepted.message.message_id, "sent")
        return list(aws_calls)
    without = report_calls()
    hook(account, receivers())
    with_hooks = report_calls()
    assert with_hooks == without
    assert not any("webhook" in json.dumps(p, default=str)
                   for _, _, p in aws_calls.requests)


def test_importing_app_loads_no_webhook_sending_code():
    code = ("import sys, app; print(sorted(m for m in sys.modules if m.startswith("
            "'chalicelib.domain.') and ('webhook' in m or m.endswith('.events'))))")
    out = subprocess.run(["python", "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": str(ROOT / ".venv" / "bin") + ":/usr/bin:/bin",
                              "AWS_DEFAULT_REGION": "us-east-1", "SMSGW_STAGE": "test"})
    assert out.stdout.strip() == "[]", out.stderr


def test_a_corrected_presumed_failure_orders_by_sequence_with_distinct_ids(pumps, receivers):
    """Presumed failed (lease ran out), then the phone reports sent, then a delivery failure:
    sms.failed, sms.sent, sms.failed again; the two failures have different ids, and
    `sequence` gives the order whatever order they arrive in."""
    account, device = setup_account()
    receiver = receivers()
    hook(account, receiver)
    accepted = sending.send(account.account_id, device, "+14155550100", "x")
    jobs.lease_from_queue(device, 0, 1)
    message = messages.lookup(account.account_id, accepted.message.message_id)
    assert messages.close(message, "failed", "The device took it 3 times without reporting.",
                          presumed=True, failed_at=clock.now_ms())
    clock.advance(1)
    assert jobs.report(device, message.message_id, "sent")["result"] == "ok"
    clock.advance(1)
    assert jobs.report(device, message.message_id, "failed", "Not delivered.")["result"] == "ok"
    assert pump_until(pumps, receiver, lambda r: len(r.events) == 3)
    ordered = sorted(receiver.events.values(), key=lambda e: e["sequence"])
    assert [e["type"] for e in ordered] == ["sms.failed", "sms.sent", "sms.failed"]
    assert [e["data"]["failed_reason"] for e in ordered if e["type"] == "sms.failed"] == [
        "The device took it 3 times without reporting.", "Not delivered."]


def test_a_job_that_errors_does_not_hold_back_its_batch(pumps, receivers, monkeypatch):
    """An unexpected error retries that job alone in a minute, then dead-letters it; a stream
    record that cannot be read is skipped instead of blocking the records behind it."""
    from chalicelib.domain.webhooks import sender as webhook_sender
    from chalicelib.storage import aws
    account, device = setup_account()
    good, bad = receivers(), receivers()
    hook(account, good, ["sms.received"])
    hook(account, bad, ["sms.received"])
    real_post = webhook_sender.post

    def post(url, body, headers):
        if url == bad.url:
            raise RuntimeError("a bug")
        return real_post(url, body, headers)
    monkeypatch.setattr(webhook_sender, "post", post)
    incoming.store(device, "in-1", "+14155550199", "hello", 1, clock.now_ms())
    records, messages = [], settings.current().table_name("messages")
    original = pumps.app.emit_events
    monkeypatch.setattr(pumps.app, "emit_events", lambda event, context: records.extend(
        event["Records"]) or original({"Records": [{"eventName": "MODIFY", "dynamodb": {
            "NewImage": {"status": {"S": "sent"}}, "SequenceNumber": "1"},  # no ids: unreadable
                                                    "eventSourceARN": ":table/" + messages
                                                    + "/stream/x"},
                                                   *event["Records"]]}, context))
    assert pump_until(pumps, good, lambda r: len(r.events) == 1)
    assert bad.requests == [] and records
    waiting = aws.sqs().get_queue_attributes(
        QueueUrl=webhooks.queue_url(), AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert waiting["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"  # its retry
    job = webhooks.job(webhooks.list_all(account.account_id)[0], "evt_x", "sms.received", "{}")
    job = {**job, "w": next(w.webhook_id for w in webhooks.list_all(account.account_id)
                            if w.url == bad.url), "x": webhook_delivery.MAX_ERRORS - 1}
    assert webhook_delivery.deliver([json.dumps(job), "not json"]) == {"error-dead": 1}
    [dead] = aws.sqs().receive_message(QueueUrl=webhooks.queue_url(dead_letter=True),
                                       MaxNumberOfMessages=10)["Messages"]
    assert json.loads(dead["Body"])["e"] == "evt_x" and "a bug" in json.loads(dead["Body"])[
        "error"]


def test_https_goes_to_the_checked_address_with_the_names_certificate(
        aws_mock, tmp_path, monkeypatch, settings_override):
    """TLS to the pinned address still verifies the certificate for the URL's host name: an
    untrusted certificate is refused, a trusted one for the name works."""
    import shutil
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from chalicelib.domain.webhooks import sender as webhook_sender
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    settings_override(webhook_allow_private=True)
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((self.headers["Host"], self.rfile.read(int(self.headers[
                "Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        refused = webhook_sender.post(f"https://localhost:{port}/in", b"{}", {})
        assert refused.status_code is None and "CERTIFICATE_VERIFY_FAILED" in refused.error
        # now the certificate is trusted: the default context gets it as its CA file (setting
        # SSL_CERT_FILE instead failed in a full parallel run, after other tests in the worker)
        trusted = ssl.create_default_context
        monkeypatch.setattr(ssl, "create_default_context", lambda: trusted(cafile=str(cert)))
        ok = webhook_sender.post(f"https://localhost:{port}/in", b'{"a":1}', {})
        assert ok.status_code == 204 and ok.ok, ok
        assert seen == [(f"localhost:{port}", b'{"a":1}')]
        wrong_name = webhook_sender.post(f"https://127.0.0.1:{port}/in", b"{}", {})
        assert wrong_name.status_code is None  # the certificate names localhost, not the IP
        assert "CERTIFICATE_VERIFY_FAILED" in wrong_name.error
    finally:
        server.shutdown()
        server.server_close()


def test_concurrent_adds_never_pass_the_per_account_cap(aws_mock, monkeypatch, atomic_moto,
                                                        settings_override):
    """Eight real threads add at once, and each counts the endpoints before any of them writes
    (the interleaving a count-then-save lets through: all eight were saved). The add's
    transaction is conditional on the account's add counter being unchanged since the count,
    so whatever the interleaving, exactly the cap is saved and the rest are told why."""
    import threading

    from chalicelib.core.errors import Conflict, QuotaExceeded
    settings_override(webhook_max_per_account=3)
    monkeypatch.setattr(webhook_urls, "check", lambda url: None)  # no DNS in this test
    acct = accounts.create_account("Racers")
    everyone_counted = threading.Barrier(8)
    first_count = threading.local()
    count = webhooks.list_all

    def count_then_wait(account_id):
        found = count(account_id)
        if not getattr(first_count, "done", False):
            first_count.done = True
            everyone_counted.wait(timeout=10)
        return found
    monkeypatch.setattr(webhooks, "list_all", count_then_wait)
    outcomes = []

    def add(n):
        try:
            webhooks.add(acct.account_id, f"https://hooks.example.com/{n}")
            outcomes.append("added")
        except (Conflict, QuotaExceeded) as refused:
            outcomes.append(str(refused))
    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert outcomes.count("added") == 3, outcomes
    assert len(count(acct.account_id)) == 3
    assert all("have 3 webhook endpoints" in o or "same moment" in o
               for o in outcomes if o != "added")


def test_endpoints_from_before_the_counter_get_their_events_after_a_restore(api, account,
                                                                           settings_override):
    """An account whose endpoint was stored before `Account.webhook_adds` existed (old local
    data) would send unstamped messages, i.e. no sms.* events; the local gateway's restore step
    sets the counter, and the next sends are stamped again."""
    from chalicelib.storage.tables import Account, Message
    settings_override(webhook_allow_private=True)
    acct, key, device, _ = account
    webhooks.add(acct.account_id, "https://127.0.0.1:9/hook")
    Account(account_id=acct.account_id).update(actions=[Account.webhook_adds.remove()])
    accounts.forget_cached()

    def send():
        body, _ = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                      phone_number="+14155550123", message="hello")
        return Message.get(acct.account_id, body["data"]["message_id"]).emits_events

    assert send() is None  # what old data did before the restore step
    assert webhooks.count_old_endpoints() == 1
    assert webhooks.count_old_endpoints() == 0  # once
    assert Account.get(acct.account_id).webhook_adds == 1
    assert send() is True


def test_a_batch_for_one_cached_failing_endpoint_tries_every_job(pumps, receivers,
                                                                 settings_override, monkeypatch):
    """A batch's jobs run in parallel threads and, with the endpoint cached (as in a warm
    Lambda), share its record. Each failed attempt counts on the endpoint: no thread may see the
    record half rewritten by another's count (PynamoDB empties an item's values before refilling
    them), which read as an unknown state (the event logged `skipped`, never retried) or no
    URL."""
    settings_override(webhook_cache_seconds=60, webhook_disable_min_failures=1000)
    webhook_delivery.forget_cached()
    set_defaults = Webhook._set_defaults

    def slow_refill(self, *args, **kwargs):  # widens PynamoDB's window of an emptied item
        set_defaults(self, *args, **kwargs)
        time.sleep(0.002)
    monkeypatch.setattr(Webhook, "_set_defaults", slow_refill)
    account, _ = setup_account()
    receiver = receivers(status=500)
    webhook = hook(account, receiver, ["sms.received"])
    counts = {}
    for batch in range(5):
        bodies = [json.dumps(webhooks.job(webhook, f"evt_{batch}_{n}", "sms.received",
                                          json.dumps({"id": f"evt_{batch}_{n}",
                                                      "type": "sms.received", "data": {}})))
                  for n in range(10)]
        for what, count in webhook_delivery.deliver(bodies).items():
            counts[what] = counts.get(what, 0) + count
    assert counts == {"retrying": 50}
    assert len(receiver.requests) == 50
    assert webhooks.get(account.account_id, webhook.webhook_id).failures == 50
