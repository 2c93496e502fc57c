"""OTP domain: codes, expiry, single use, abuse limits, scoping, secret handling, against moto."""
import hashlib
import hmac
import json
import logging
import re
import threading
from collections import Counter

import boto3
import pytest

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, InvalidOtp, RateLimited, Unavailable
from chalicelib.domain import accounts, devices, otp
from chalicelib.storage import aws
from chalicelib.storage.tables import Message, Otp

NUMBER = "+8801712345678"


def jobs(device):
    """Every job on the device's queue (as the device would receive them)."""
    sqs = boto3.client("sqs", region_name=settings.current().region)
    found = []
    while True:
        got = sqs.receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                                  VisibilityTimeout=600).get("Messages", [])
        if not got:
            return found
        found += [json.loads(m["Body"]) for m in got]


def sent_code(device) -> str:
    """The code of the newest OTP job on the device's queue."""
    job = [j for j in jobs(device) if j["kind"] == "otp"][-1]
    return re.search(r"\d{4,10}", job["message"]).group(0)


def issue(account_id, device, **kw):
    sent = otp.send(account_id, device, kw.pop("number", NUMBER), **kw)
    return sent, sent_code(device)


def item(account_id, number=NUMBER) -> Otp:
    return Otp.get(f"{account_id}#{number}", consistent_read=True)


@pytest.fixture
def frozen():
    clock.freeze(1_767_225_600_000)  # 2026-01-01 00:00:00 UTC
    yield


def test_send_queues_the_code_and_stores_it_only_redacted(account, frozen):
    acct, _, device, _ = account
    sent = otp.send(acct.account_id, device, NUMBER, "Code {otp} for you", 6, 5)
    [job] = jobs(device)
    code = re.fullmatch(r"Code (\d{6}) for you", job["message"]).group(1)
    assert job["kind"] == "otp" and job["phone_number"] == NUMBER
    assert sent.expires_at == clock.now_ms() + 5 * 60 * 1000 and sent.expires_in() == 300
    stored = Message.get(acct.account_id, sent.message.message_id)
    assert stored.body == "Code ****** for you" and stored.kind == "otp"
    assert stored.expires_at == sent.expires_at  # an OTP SMS is useless after its code expires
    record = item(acct.account_id)
    raw = json.dumps(record.attribute_values, default=str)
    assert code not in raw
    expected = hmac.new(settings.current().otp_secret.encode(),
                        f"{acct.account_id}#{NUMBER}\n{code}"
                        .encode(), hashlib.sha256).hexdigest()
    assert record.code_hmac == expected


def test_default_template_and_code_alphabet():
    assert "{otp}" in otp.render_template(None, 5) and "5 minutes" in otp.render_template("", 5)
    with pytest.raises(BadRequest) as err:
        otp.render_template("Your code is ready", 5)
    assert err.value.parameter == "message"
    codes = [otp.new_code(4) for _ in range(3000)]
    assert all(len(c) == 4 and c.isdigit() for c in codes)
    for position in range(4):  # every digit, leading zero included, shows up in every place
        assert set(c[position] for c in codes) == set("0123456789")


def test_tables_have_ttl_on_the_otp_expiry(aws_mock):
    ttl = boto3.client("dynamodb", region_name=settings.current().region).describe_time_to_live(
        TableName=settings.current().table_name("otps"))["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}


def test_ttl_outlives_the_code_by_the_capped_hour(account, frozen):
    acct, _, device, _ = account
    otp.send(acct.account_id, device, NUMBER, None, 6, 2)
    record = item(acct.account_id)
    assert record.expires_at == clock.now_ms() + 120_000
    assert record.expires == clock.at(clock.now_ms() + 3600_000)


def test_verify_once_then_never_again(account, frozen):
    acct, _, device, _ = account
    _, code = issue(acct.account_id, device)
    otp.verify(acct.account_id, NUMBER, code)
    for _ in range(settings.current().otp_max_tries + 2):
        with pytest.raises(InvalidOtp):
            otp.verify(acct.account_id, NUMBER, code)
    assert item(acct.account_id).tries == 1  # the right guess counted; its repeats burn nothing


def test_expiry_follows_the_clock(account, frozen):
    acct, _, device, _ = account
    _, code = issue(acct.account_id, device, expiry_minutes=1)
    clock.advance(60)
    with pytest.raises(InvalidOtp):
        otp.verify(acct.account_id, NUMBER, code)
    clock.advance(-0.001)  # one millisecond before expiry the same code is still good
    otp.verify(acct.account_id, NUMBER, code)


def test_wrong_tries_cap_kills_the_code(account, frozen):
    acct, _, device, _ = account
    _, code = issue(acct.account_id, device, length=8)
    for k in range(1, settings.current().otp_max_tries + 1):
        with pytest.raises(InvalidOtp):
            otp.verify(acct.account_id, NUMBER, str((int(code) + k) % 10 ** 8).zfill(8))
    assert item(acct.account_id).tries == settings.current().otp_max_tries
    with pytest.raises(RateLimited) as err:
        otp.verify(acct.account_id, NUMBER, code)
    assert err.value.code == "rate_limited" and err.value.parameter == "otp_code"
    # when a new send is allowed:
    assert err.value.retry_after == settings.current().otp_cooldown_seconds
    clock.advance(settings.current().otp_cooldown_seconds)
    _, fresh = issue(acct.account_id, device)  # a new code starts with its own tries
    otp.verify(acct.account_id, NUMBER, fresh)


def test_a_repeated_wrong_guess_is_counted_once(account, frozen):
    """Retyping the same wrong code tells a guesser nothing new, so it burns no further try."""
    acct, _, device, _ = account
    _, code = issue(acct.account_id, device, length=8)
    wrong = str((int(code) + 1) % 10 ** 8).zfill(8)
    for _ in range(settings.current().otp_max_tries + 3):
        with pytest.raises(InvalidOtp):
            otp.verify(acct.account_id, NUMBER, wrong)
    assert item(acct.account_id).tries == 1
    otp.verify(acct.account_id, NUMBER, code)


def test_cooldown_between_sends(account, frozen):
    acct, _, device, _ = account
    issue(acct.account_id, device)
    clock.advance(10)
    with pytest.raises(RateLimited) as err:
        otp.send(acct.account_id, device, NUMBER)
    assert err.value.retry_after == settings.current().otp_cooldown_seconds - 10
    assert len(jobs(device)) == 0  # refused sends queue nothing
    clock.advance(settings.current().otp_cooldown_seconds - 10)
    issue(acct.account_id, device)
    # the cooldown is per number: another number is not held back
    issue(acct.account_id, device, number="+8801712345679")


def test_hourly_cap_per_number(account, frozen):
    acct, _, device, _ = account
    step = settings.current().otp_cooldown_seconds + 1
    for _ in range(settings.current().otp_hourly_cap):
        issue(acct.account_id, device)
        clock.advance(step)
    with pytest.raises(RateLimited) as err:
        otp.send(acct.account_id, device, NUMBER)
    wait = 3600 - settings.current().otp_hourly_cap * step
    assert err.value.retry_after == wait and "per hour" in err.value.message
    clock.advance(wait - 1)
    with pytest.raises(RateLimited):
        otp.send(acct.account_id, device, NUMBER)
    clock.advance(1)  # the first send has left the sliding hour
    issue(acct.account_id, device)


def only_the_new_code_verifies(account_id, old, new):
    """`new` replaced `old`: the old code is refused, the new one verifies."""
    assert new != old
    with pytest.raises(InvalidOtp):
        otp.verify(account_id, NUMBER, old)
    otp.verify(account_id, NUMBER, new)


def test_new_send_replaces_the_previous_code(account, frozen):
    acct, _, device, _ = account
    _, first = issue(acct.account_id, device, length=10)
    clock.advance(settings.current().otp_cooldown_seconds)
    _, second = issue(acct.account_id, device, length=10)
    only_the_new_code_verifies(acct.account_id, first, second)


def test_another_account_cannot_verify(account, frozen):
    acct, _, device, _ = account
    _, code = issue(acct.account_id, device)
    other = accounts.create_account("Other")
    for _ in range(settings.current().otp_max_tries + 1):
        with pytest.raises(InvalidOtp):
            otp.verify(other.account_id, NUMBER, code)
    otp.verify(acct.account_id, NUMBER, code)  # A's code neither used nor burnt by B


def _race(n, fn):
    start = threading.Barrier(n)
    outcomes = []

    def run():
        start.wait()
        try:
            fn()
            outcomes.append("ok")
        except (InvalidOtp, RateLimited) as error:
            outcomes.append(error.code)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counter(outcomes)


def test_fifty_concurrent_right_codes_verify_once(account, atomic_moto):
    acct, _, device, _ = account
    _, code = issue(acct.account_id, device)
    outcomes = _race(50, lambda: otp.verify(acct.account_id, NUMBER, code))
    assert outcomes == Counter({"ok": 1, "invalid_otp": 49})
    assert item(acct.account_id).tries == 1


def test_fifty_concurrent_wrong_codes_count_exactly_the_cap(account, atomic_moto):
    acct, _, device, _ = account
    _, code = issue(acct.account_id, device, length=8)
    wrong = iter(str((int(code) + k) % 10 ** 8).zfill(8) for k in range(1, 51))
    lock = threading.Lock()

    def guess():
        with lock:
            value = next(wrong)
        otp.verify(acct.account_id, NUMBER, value)
    outcomes = _race(50, guess)
    assert outcomes["invalid_otp"] + outcomes["rate_limited"] == 50
    assert item(acct.account_id).tries == settings.current().otp_max_tries
    with pytest.raises(RateLimited):
        otp.verify(acct.account_id, NUMBER, code)


def test_concurrent_sends_issue_one_code(account, atomic_moto):
    acct, _, device, _ = account
    outcomes = _race(10, lambda: otp.send(acct.account_id, device, NUMBER))
    assert outcomes == Counter({"ok": 1, "rate_limited": 9})
    assert len(jobs(device)) == 1


def test_failed_queueing_changes_nothing_and_costs_no_cooldown(account, frozen):
    acct, _, device, _ = account
    _, code = issue(acct.account_id, device, length=10)
    before = item(acct.account_id).attribute_values
    clock.advance(settings.current().otp_cooldown_seconds)
    sqs = boto3.client("sqs", region_name=settings.current().region)
    sqs.delete_queue(QueueUrl=device.queue_url)
    with pytest.raises(Unavailable):
        otp.send(acct.account_id, device, NUMBER)
    assert item(acct.account_id).attribute_values == before  # old code, old send times
    failed = [m for m in Message.query(acct.account_id) if m.status == "failed"]
    assert [(m.kind, m.reason) for m in failed] == [("otp", "otp_not_queued")]
    sqs.create_queue(QueueName=settings.current().queue_name(device.device_uid))
    otp.send(acct.account_id, device, NUMBER, length=10)  # no cooldown charged for the failure
    new = sent_code(device)
    only_the_new_code_verifies(acct.account_id, code, new)


def test_failed_first_send_leaves_no_item(account, frozen):
    acct, _, device, _ = account
    boto3.client("sqs",
                 region_name=settings.current().region).delete_queue(QueueUrl=device.queue_url)
    with pytest.raises(Unavailable):
        otp.send(acct.account_id, device, NUMBER)
    assert list(Otp.scan()) == []


def test_bad_parameters_change_nothing(account):
    acct, _, device, _ = account
    for kw, parameter in [({"length": 3}, "length"), ({"length": 11}, "length"),
                          ({"expiry_minutes": 0}, "expiry"), ({"expiry_minutes": 31}, "expiry"),
                          ({"template": "no placeholder"}, "message")]:
        with pytest.raises(BadRequest) as err:
            otp.send(acct.account_id, device, NUMBER, **kw)
        assert err.value.parameter == parameter
    for code in ("12a4", "", "123", "12345678901", "１２３４"):
        with pytest.raises(BadRequest) as err:
            otp.verify(acct.account_id, NUMBER, code)
        assert err.value.parameter == "otp_code"
    assert list(Otp.scan()) == [] and jobs(device) == []


def test_secret_from_ssm_is_fetched_once(account, settings_override, aws_calls):
    acct, _, device, _ = account
    boto3.client("ssm", region_name=settings.current().region).put_parameter(
        Name="/smsgw/test/otp-secret", Value="s" * 48, Type="SecureString")
    settings_override(otp_secret="", otp_secret_param="/smsgw/test/otp-secret")
    otp.forget_secret()
    try:
        _, code = issue(acct.account_id, device)
        otp.verify(acct.account_id, NUMBER, code)
        assert aws_calls.count(("ssm", "GetParameter")) == 1
        expected = hmac.new(b"s" * 48, f"{acct.account_id}#{NUMBER}\n{code}".encode(),
                            hashlib.sha256).hexdigest()
        assert item(acct.account_id).code_hmac == expected
    finally:
        otp.forget_secret()


def test_no_secret_refuses_otp(account, settings_override):
    acct, _, device, _ = account
    settings_override(otp_secret="", otp_secret_param="")
    with pytest.raises(Unavailable) as err:
        otp.send(acct.account_id, device, NUMBER)
    assert err.value.code == "not_configured"
    settings_override(otp_secret="too-short")
    with pytest.raises(Unavailable):
        otp.send(acct.account_id, device, NUMBER)
    assert list(Otp.scan()) == [] and jobs(device) == []


def test_code_never_logged(account, frozen, caplog):
    acct, _, device, _ = account
    caplog.set_level(logging.INFO)
    _, code = issue(acct.account_id, device)
    otp.verify(acct.account_id, NUMBER, code)
    clock.advance(settings.current().otp_cooldown_seconds)
    aws.sqs().delete_queue(QueueUrl=device.queue_url)
    with pytest.raises(Unavailable):
        otp.send(acct.account_id, device, NUMBER)
    assert code not in caplog.text
    devices.forget_cached()
