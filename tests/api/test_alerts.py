"""Alert mails (chalicelib/domain/insight/alerts.py) on moto: a phone that stops mails its
subscribed users once and once more when it is back; a flapping phone does not flood; the
one-click link unsubscribes; SES is called with the template's sender."""
import email
import threading
from pathlib import Path

import pytest

from chalicelib.core import clock, settings
from chalicelib.domain import devices
from chalicelib.domain.insight import alerts
from tests import sending


@pytest.fixture
def mailbox(aws_mock, tmp_path, settings_override):
    settings_override(mail_dir=str(tmp_path / "mail"), alert_sender="")

    def read():
        folder = tmp_path / "mail"
        return [email.message_from_bytes(p.read_bytes())
                for p in sorted(folder.glob("*.eml"))] if folder.exists() else []
    return read


@pytest.fixture
def pumps(aws_mock):
    from localgw import events as local_events
    return local_events.EventPumps()


def stop_and_pump(device, pumps):
    clock.advance(settings.current().heartbeat_window_seconds + 1)
    assert devices.stop_silent() == 1
    pumps.pump_streams()


def test_a_stopped_phone_mails_once_and_its_recovery_once(account, mailbox, pumps):
    acct, _, device, _ = account
    alerts.subscribe(acct.account_id, "owner@example.com")
    clock.freeze()
    devices.heartbeat(device, "running")
    pumps.pump_streams()
    assert mailbox() == []
    stop_and_pump(device, pumps)
    pumps.pump_streams()  # nothing new: no second mail
    [offline] = mailbox()
    assert offline["Subject"] == "[smsgw] Phone Phone 1 is offline"
    assert offline["To"] == "owner@example.com"
    link = "".join(offline["List-Unsubscribe"].split()).strip("<>")
    assert f"/dashboard/unsubscribe/{acct.account_id}/" in link
    devices.heartbeat(device, "running")
    pumps.pump_streams()
    assert [m["Subject"] for m in mailbox()][1:] == ["[smsgw] Phone Phone 1 is back online"]
    # Flapping within the hour: offline and back again, no further mail.
    for _ in range(3):
        stop_and_pump(device, pumps)
        devices.heartbeat(device, "running")
        pumps.pump_streams()
    assert len(mailbox()) == 2
    # An hour on, it mails again.
    clock.advance(settings.current().alert_min_seconds)
    stop_and_pump(device, pumps)
    assert len(mailbox()) == 3


def test_concurrent_problem_reports_mail_once(account, mailbox, atomic_moto):
    acct = account[0]
    alerts.subscribe(acct.account_id, "owner@example.com")
    barrier = threading.Barrier(6)

    def report():
        barrier.wait()
        alerts.problem(acct.account_id, "device_offline#x", "Phone x is offline", "text")
    threads = [threading.Thread(target=report) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(mailbox()) == 1


def test_unsubscribed_users_get_nothing_and_the_link_works(account, mailbox, client):
    acct = account[0]
    alerts.subscribe(acct.account_id, "owner@example.com")
    alerts.expired(acct.account_id, 3)
    [mail] = mailbox()
    assert mail["Subject"] == "[smsgw] 3 messages expired unsent"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    path = "".join(mail["List-Unsubscribe"].split()).strip("<>")
    # A GET only asks (mail scanners open links): still subscribed after two.
    for _ in range(2):
        page = client.http.get(path)
        assert page.status_code == 200 and b"Stop alert mails" in page.body
    assert alerts.subscribed(acct.account_id, "owner@example.com")
    # A mail client's one-click POST (RFC 8058): no cookie, no form token.
    one_click = {"Content-Type": "application/x-www-form-urlencoded"}
    answer = client.http.post(path, body=b"List-Unsubscribe=One-Click", headers={
        **one_click, "Origin": "https://webmail.example.net"})  # a webmail's, from its site
    assert answer.status_code == 200
    assert not alerts.subscribed(acct.account_id, "owner@example.com")
    assert client.http.post(path, body=b"List-Unsubscribe=One-Click",
                            headers=one_click).status_code == 404  # used
    assert client.http.get(path).status_code == 404
    clock.advance(settings.current().alert_min_seconds + 1)
    assert alerts.expired(acct.account_id, 1) is False and len(mailbox()) == 1


def test_racing_unsubscribes_end_one_subscription_once(account, atomic_moto, monkeypatch):
    """Each unsubscribe deletes on the condition that the token it read is still there, which
    DynamoDB checks atomically with the delete. The worst interleaving, forced here, is every
    click reading before any deletes: still exactly one ends the subscription. And an old
    link whose subscription was made again between its read and its delete ends nothing."""
    from chalicelib.storage.insight_tables import AlertSubscription
    acct = account[0]
    alerts.subscribe(acct.account_id, "owner@example.com")
    [sub] = AlertSubscription.query(acct.account_id)
    clicks = 6
    read_all, results = threading.Barrier(clicks), []
    query = AlertSubscription.query

    def read_then_wait(*args, **kwargs):
        found = list(query(*args, **kwargs))
        read_all.wait(timeout=10)  # nobody deletes before everybody has read
        return found
    monkeypatch.setattr(AlertSubscription, "query", read_then_wait)
    threads = [threading.Thread(target=lambda: results.append(
        alerts.unsubscribe(acct.account_id, token=sub.token))) for _ in range(clicks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * (clicks - 1) + [True]

    monkeypatch.setattr(AlertSubscription, "query", query)
    alerts.subscribe(acct.account_id, "owner@example.com")
    [old] = AlertSubscription.query(acct.account_id)

    def read_then_resubscribed(*args, **kwargs):
        found = list(query(*args, **kwargs))
        alerts.subscribe(acct.account_id, "owner@example.com")  # a new token meanwhile
        return found
    monkeypatch.setattr(AlertSubscription, "query", read_then_resubscribed)
    assert alerts.unsubscribe(acct.account_id, token=old.token) is False
    monkeypatch.setattr(AlertSubscription, "query", query)
    assert alerts.subscribed(acct.account_id, "owner@example.com")


def test_on_aws_the_mail_goes_through_ses(account, settings_override, aws_calls):
    acct = account[0]
    settings_override(alert_sender="alerts@example.com")
    from chalicelib.storage import aws
    aws.ses().create_email_identity(EmailIdentity="alerts@example.com")
    alerts.subscribe(acct.account_id, "owner@example.com")
    assert alerts.webhook_disabled(acct.account_id, "wh_1", "https://x.example/h", "dead")
    [request] = [p for s, op, p in aws_calls.requests if op == "SendEmail"]
    assert request["FromEmailAddress"] == "alerts@example.com"
    assert request["Destination"] == {"ToAddresses": ["owner@example.com"]}
    assert Path  # the local folder is not used on AWS


def test_a_paused_sim_mails_once_an_hour(account, mailbox):
    acct, _, device, _ = account
    alerts.subscribe(acct.account_id, "owner@example.com")
    clock.freeze()
    until = clock.now_ms() + 600_000
    for _ in range(3):
        alerts.sim_paused(acct.account_id, device.device_uid, "Phone 1", 2, "No service", until)
    assert [m["Subject"] for m in mailbox()] == ["[smsgw] SIM 2 of Phone 1 is paused"]
    clock.advance(settings.current().alert_min_seconds)
    alerts.sim_paused(acct.account_id, device.device_uid, "Phone 1", 2, "No service", until)
    assert len(mailbox()) == 2


def test_a_sim_paused_for_limit_exceeded_mails_once_and_is_one_event(account, mailbox, pumps,
                                                                     monkeypatch):
    """Issue 24: a phone reporting "limit exceeded" pauses that SIM (pool.on_failure); the
    devices stream turns the pause into one `sim.paused` event and one alert mail, off the
    phone's request; later records of the phone (heartbeats) add neither."""
    from chalicelib.domain import jobs
    from chalicelib.domain.webhooks import events
    from chalicelib.storage.tables import Device
    acct, _, device, _ = account
    alerts.subscribe(acct.account_id, "owner@example.com")
    clock.freeze()
    devices.heartbeat(device, "running")
    pumps.pump_streams()
    found = []
    emit = pumps.app.emit_events

    def seen(event, context):
        found.extend(e for r in event["Records"] for e in events.from_stream_record(r))
        return emit(event, context)
    monkeypatch.setattr(pumps.app, "emit_events", seen)
    accepted = sending.send(acct.account_id, Device.get(device.device_uid), "+14155550100",
                             "x")
    handed = jobs.lease_from_queue(device, 0, 1)
    assert [j["message_id"] for j in handed] == [accepted.message.message_id]
    jobs.report(device, accepted.message.message_id, "failed", "RESULT_ERROR_LIMIT_EXCEEDED")
    assert mailbox() == []  # not on the phone's request: the stream function mails
    for _ in range(3):
        pumps.pump_streams()
        devices.heartbeat(device, "running", battery=40)
    pumps.pump_streams()
    [paused] = [e for e in found if e.type == "sim.paused"]
    until = Device.get(device.device_uid).paused_until_1
    assert until > clock.now_ms()
    assert paused.data["sim_slot"] == 1 and paused.data["reason"] == "limit exceeded"
    assert paused.data["paused_until"] == clock.fmt(until)
    assert paused.data["device_uid"] == device.device_uid
    [mail] = mailbox()
    assert mail["Subject"] == "[smsgw] SIM 1 of Phone 1 is paused"
    assert "limit exceeded" in mail.get_payload(decode=True).decode()
    assert Device.get(device.device_uid).pause_unseen is None  # read: heartbeats stay filtered
