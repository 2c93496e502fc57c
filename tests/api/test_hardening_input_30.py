"""Issue 30 (request input and mail): control characters in stored names, alert mails that fail
per recipient, ASCII-only numbers in headers, the private-token throttle, the app-webhook
route's one answer for an unknown device and a bad signature, control characters from CSV
cells, the special-purpose address registry, and the oversize message."""
import json

import pytest
from click.testing import CliRunner

from chalicelib.core import clock
from chalicelib.core.errors import BadRequest, RateLimited
from chalicelib.domain import accounts, devices, pairing, webhooks
from chalicelib.domain.devices import app_phones
from chalicelib.domain.insight import alerts, csv_sends
from chalicelib.domain.webhooks import urls as webhook_urls
from chalicelib.storage.tables import Device
from tests.api import test_alerts
from tests.api.test_mobile_api import call, register, signed

mailbox, pumps = test_alerts.mailbox, test_alerts.pumps  # their fixtures, shared
stop_and_pump = test_alerts.stop_and_pump
HOSTILE_NAMES = ["x\r\nBcc: all@example.com", "tab\there", "nul\x00", "bell\x07", "del\x7f",
                 "c1\x85x", "line\u2028sep"]


@pytest.mark.parametrize("bad", HOSTILE_NAMES)
def test_every_stored_name_refuses_control_characters(account, bad):
    acct = account[0]
    refusals = {
        "name": [lambda: devices.register(acct.account_id, bad),
                 lambda: accounts.create_account(bad),
                 lambda: pairing.create(acct.account_id, bad, "test"),
                 lambda: app_phones.make_token(acct.account_id, bad)],
        "label": [lambda: accounts.create_key(acct.account_id, bad)],
        "description": [lambda: webhooks.add(acct.account_id, "https://example.com/hook",
                                             description=bad)],
    }
    before = [len(devices.list_devices(acct.account_id)), len(accounts.list_keys(acct.account_id))]
    for parameter, attempts in refusals.items():
        for attempt in attempts:
            with pytest.raises(BadRequest) as refused:
                attempt()
            assert refused.value.parameter == parameter
            assert "control character" in refused.value.message
    assert [len(devices.list_devices(acct.account_id)),
            len(accounts.list_keys(acct.account_id))] == before


def test_an_app_phone_cannot_bring_a_mail_header_in_its_name(client, account):
    """The issue's path: a private token without a name, the app names itself."""
    token = app_phones.make_token(account[0].account_id)
    body = {"name": "Pixel\r\nBcc: everyone@example.com", "pushToken": None, "simCards": []}
    status, answer, _ = call(client, "POST", "/device", f"Bearer {token}", body)
    assert status == 400 and answer["parameter"] == "name", answer
    assert "U+000D" in answer["message"]
    assert len(devices.list_devices(account[0].account_id)) == 1
    assert register(client, token)[0] == 201  # the token was not spent


def test_the_cli_refuses_a_control_character_in_a_name(account):
    import cli
    result = CliRunner().invoke(cli.main, ["device", "register", account[0].account_id,
                                          "bad\x1bname"])
    assert result.exit_code != 0
    assert "control character" in result.output


def _stored_with(device, name):
    """A name stored before names were checked (a record written as the old code allowed)."""
    Device(device_uid=device.device_uid).update(actions=[Device.name.set(name)])


def test_a_name_stored_earlier_with_a_line_break_still_mails_everyone(account, mailbox, pumps):
    acct, _, device, _ = account
    for who in ("first@example.com", "second@example.com"):
        alerts.subscribe(acct.account_id, who)
    clock.freeze()
    devices.heartbeat(device, "running")
    pumps.pump_streams()
    _stored_with(device, "Phone\r\nBcc: attacker@example.com")
    stop_and_pump(device, pumps)
    mails = mailbox()
    assert sorted(m["To"] for m in mails) == ["first@example.com", "second@example.com"]
    assert {m["Subject"] for m in mails} == {
        "[smsgw] Phone Phone  Bcc: attacker@example.com is offline"}
    assert all(m["Bcc"] is None for m in mails)


def test_a_recipient_whose_mail_fails_is_retried_and_logged_and_others_get_theirs(
        account, mailbox, monkeypatch, caplog):
    acct = account[0]
    for who in ("broken@example.com", "fine@example.com"):
        alerts.subscribe(acct.account_id, who)
    real, tries = alerts.deliver, []

    def flaky(to, *rest):
        tries.append(to)
        if to == "broken@example.com":
            raise ConnectionError("mail server refused")
        return real(to, *rest)
    monkeypatch.setattr(alerts, "deliver", flaky)
    monkeypatch.setattr(alerts, "MAIL_BACKOFF_SECONDS", 0)
    assert alerts.problem(acct.account_id, "device_offline#x", "Phone x is offline", "text")
    assert [m["To"] for m in mailbox()] == ["fine@example.com"]
    assert tries.count("broken@example.com") == alerts.MAIL_ATTEMPTS
    assert any("b***@example.com" in r.getMessage() for r in caplog.records)


def test_the_alert_state_moves_only_once_its_mail_is_out(account, mailbox, monkeypatch):
    acct = account[0]
    alerts.subscribe(acct.account_id, "owner@example.com")
    real = alerts.deliver
    monkeypatch.setattr(alerts, "MAIL_BACKOFF_SECONDS", 0)
    monkeypatch.setattr(alerts, "deliver", lambda *a: (_ for _ in ()).throw(OSError("down")))
    assert not alerts.problem(acct.account_id, "device_offline#x", "Phone x is offline", "t")
    assert mailbox() == []
    monkeypatch.setattr(alerts, "deliver", real)
    # the same cause again (the next record of the phone going offline): it mails now
    assert alerts.problem(acct.account_id, "device_offline#x", "Phone x is offline", "t")
    assert [m["Subject"] for m in mailbox()] == ["[smsgw] Phone x is offline"]


@pytest.fixture
def app_device(client, account):
    token = app_phones.make_token(account[0].account_id)
    status, body, _ = register(client, token)
    assert status == 201
    return Device.get(body["id"])


@pytest.mark.parametrize("stamp", ["²", "١٧٠٠٠٠٠٠٠٠", "+1700000000", "1_700_000_000", "12.5"])
def test_a_malformed_x_timestamp_is_a_clear_400(client, app_device, stamp):
    body, headers = signed(app_device.signing_key, {"event": "system:ping", "id": "e1",
                                                    "payload": {}})
    headers["X-Timestamp"] = stamp
    status, answer, _ = call(client, "POST", f"/app-webhooks/{app_device.device_uid}",
                             raw=body.decode(), headers=headers)
    assert status == 400, answer
    assert answer["parameter"] == "x-timestamp" and "digits 0-9" in answer["message"]


def test_an_unknown_device_and_a_wrong_signature_get_the_same_answer(client, app_device):
    document = {"event": "system:ping", "id": "e1", "payload": {}}
    body, good = signed(app_device.signing_key, document)
    _, wrong = signed("not the key", document)
    answers = []
    for uid, headers in ((app_device.device_uid, wrong), ("0123456789abcdef", good),
                         ("0123456789abcdef", wrong), ("not-a-uid", good)):
        status, answer, response = call(client, "POST", f"/app-webhooks/{uid}",
                                        raw=body.decode(), headers=headers)
        answers.append((status, json.dumps(answer, sort_keys=True),
                        response.headers.get("WWW-Authenticate")))
    assert len(set(answers)) == 1 and answers[0][0] == 401, answers
    status, _, _ = call(client, "POST", f"/app-webhooks/{app_device.device_uid}",
                        raw=body.decode(), headers=good)
    assert status == 200


def test_only_wrong_tokens_count_toward_the_registration_cap(account):
    acct = account[0]
    for _ in range(app_phones.REGISTER_PER_IP):
        with pytest.raises(Exception) as wrong:
            app_phones.register_with_token("sgw_wrong", "App", 1, None, "203.0.113.7")
        assert wrong.value.code != "rate_limited"
    for n in range(3):  # phones behind the same address, after 20 wrong tokens
        token = app_phones.make_token(acct.account_id, f"Phone {n}")
        device, _ = app_phones.register_with_token(token, "App", 1, None, "203.0.113.7")
        assert device.name == f"Phone {n}"
    with pytest.raises(RateLimited):
        app_phones.register_with_token("sgw_wrong", "App", 1, None, "203.0.113.7")


def test_an_ipv6_64_is_one_address_for_the_registration_cap(account):
    for n in range(app_phones.REGISTER_PER_IP):
        with pytest.raises(Exception) as wrong:
            app_phones.register_with_token("sgw_wrong", "App", 1, None, f"2001:db8:1:2::{n:x}")
        assert wrong.value.code != "rate_limited"
    with pytest.raises(RateLimited):
        app_phones.register_with_token("sgw_wrong", "App", 1, None, "2001:db8:1:2:ffff::9")
    with pytest.raises(Exception) as other:  # another /64 has its own cap
        app_phones.register_with_token("sgw_wrong", "App", 1, None, "2001:db8:1:3::1")
    assert other.value.code != "rate_limited"


@pytest.mark.parametrize("cell, char", [("Hi\x00there", "U+0000"), ("Hi\x1bthere", "U+001B"),
                                        ("Hi\x85there", "U+0085")])
def test_control_characters_from_a_csv_cell_are_refused_per_row(aws_mock, cell, char):
    raw = ("number,message\n+14155550100,Fine\n+14155550101," + cell + "\n"
           "+14155550102,\"Two\nlines\tand a tab\"\n").encode()
    plan = csv_sends.parse(raw)
    assert [row.line for row in plan.rows] == [2, 5]
    [(line, reason)] = plan.invalid
    assert line == 3 and char in reason and "message" in reason


def test_a_csv_template_cannot_bring_a_nul_in_either(aws_mock):
    plan = csv_sends.parse(b"phone,name\n+14155550100,Ann\x00\n", "Hi {name}!")
    assert plan.rows == [] and "U+0000" in plan.invalid[0][1]


def test_the_oversize_file_message_reads_right(aws_mock):
    with pytest.raises(BadRequest) as refused:
        csv_sends.parse(b"number,message\n" + b"x" * (250 * 1024))
    assert refused.value.message == "The file is 251 KB; at most 200 KB."
    with pytest.raises(BadRequest) as refused:
        csv_sends.parse(b"x" * (200 * 1024 + 1))
    assert refused.value.message == "The file is 201 KB; at most 200 KB."


@pytest.mark.parametrize("address", ["192.0.0.8", "192.0.0.9", "192.88.99.1", "192.31.196.1",
                                     "192.52.193.1", "192.175.48.1", "64:ff9b::808:808",
                                     "3fff::1", "5f00::1", "2001:db8::1", "100::1"])
def test_special_purpose_addresses_are_not_public_webhook_targets(address):
    assert webhook_urls._blocked(__import__("ipaddress").ip_address(address))


def test_ordinary_public_addresses_still_pass():
    import ipaddress
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"):
        assert webhook_urls._blocked(ipaddress.ip_address(address)) is None




@pytest.mark.parametrize("raw", ["٣٦", "３６", "3_6", "+36"])
def test_a_pace_is_read_in_ascii_digits_only(account, raw):
    from chalicelib.domain import pool
    acct, _, device, _ = account
    with pytest.raises(BadRequest) as refused:
        pool.set_device_pace(acct.account_id, str(device.device_id), raw)
    assert refused.value.parameter == "pace"


def test_a_message_id_is_read_in_ascii_digits_only(account):
    from chalicelib.core.errors import NotFound
    from chalicelib.domain.messages import search
    from tests import sending
    acct, _, device, _ = account
    sent = sending.send(acct.account_id, device, "+8801712345678", "Hi").message
    assert search.get(acct.account_id, "outgoing", str(sent.message_id)).message_id == \
        sent.message_id
    arabic = str(sent.message_id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    with pytest.raises(NotFound):
        search.get(acct.account_id, "outgoing", arabic)


@pytest.mark.parametrize("stamp", ["2026-01-01T00:00:00Z\n", "٢٠٢٦-01-01T00:00:00Z"])
def test_an_rfc3339_time_takes_ascii_digits_and_no_trailing_newline(stamp):
    from chalicelib.surfaces.rest_v1.validation import parse_time
    with pytest.raises(ValueError):
        parse_time(stamp)
