"""Pacing with Android's shape (issue 21) through the real handlers and conditional writes on
moto: a burst that fits goes at once, the phone's window and each SIM's rate hold under real
threads and under random arrivals with stale cached devices (other containers), OTPs use the
reserve, a 3-part SMS counts 3, expected_at is never earlier than the real hand-out, owners set
both limits, and the CSV preview's estimate matches what sending does."""
import json
import random
import threading
import time

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.domain import accounts, devices, jobs, pacing, pool
from chalicelib.domain.pacing import log as pace_log
from chalicelib.storage.tables import Device, Message
from cli import main as cli_main
from tests import sending
from tests.concurrency import run_together
from tests.pacing_replay import busiest, check_limits

PHONE = "+8801712345678"


@pytest.fixture
def defaults(settings_override):
    """The deployed defaults (the tests' environment turns pacing off)."""
    settings_override(pace_window_parts=30, default_pace_per_hour=60)


@pytest.fixture
def phone(account, defaults):
    acct, key, device, _ = account
    devices.heartbeat(device, "running")
    pool.forget_cached()
    return acct, key, Device.get(device.device_uid)


def send(api, key, **values):
    values = {"message": "Hello", **values}
    body, _ = api(api_key=key, action="send_sms", phone_number=PHONE, **values)
    return body


def test_a_burst_that_fits_goes_at_once(api, phone, aws_calls):
    acct, key, device = phone
    clock.freeze()
    answers = [send(api, key) for _ in range(5)]
    assert all(a["status"] == "success" for a in answers), answers
    assert [a["data"].get("expected_in", 0) for a in answers] == [0, 0, 0, 0, 0]
    delays = [p.get("DelaySeconds") for _, op, p in aws_calls.requests if op == "SendMessage"]
    assert delays == [None] * 5  # every job visible to the phone at once
    assert pacing.window_state(Device.get(device.device_uid))["window_used"] == 5


def test_the_window_is_full_for_bulk_but_an_otp_goes_at_once(api, phone, aws_calls):
    acct, key, device = phone
    clock.freeze()
    bulk = [send(api, key, device_id="1", sim_slot=str(1 + n % 2)) for n in range(26)]
    assert [b["data"].get("expected_in", 0) for b in bulk[:25]] == [0] * 25
    # the 26th: all 30 but the OTP reserve of 5 are used; it waits until the first leaves
    # (whole seconds: up to one more than the window)
    assert 1801 <= bulk[25]["data"]["expected_in"] <= 1802
    aws_calls.clear()
    body, _ = api(api_key=key, action="send_otp", phone_number=PHONE)
    assert body["status"] == "success" and "expected_at" not in body["data"], body
    [job] = [p for _, op, p in aws_calls.requests if op == "SendMessage"]
    assert "DelaySeconds" not in job
    replay = [(m.not_before or m.created_at, m.sim_slot, m.segments, m.kind == "otp")
              for m in Message.query(acct.account_id)]
    assert busiest(replay,
                   settings.current().pace_window_seconds) == 26  # 25 bulk + the OTP, at now


def test_a_three_part_sms_counts_three(api, phone):
    acct, key, device = phone
    clock.freeze()
    body = send(api, key, device_id="1", message="x" * 400)  # 3 GSM-7 parts
    assert body["status"] == "success"
    assert pacing.window_state(Device.get(device.device_uid))["window_used"] == 3
    for _ in range(22):
        assert "expected_at" not in send(api, key, device_id="1")["data"]
    # 25 bulk parts used: a 1-part SMS on the other SIM waits for the window too
    assert send(api, key, device_id="1", sim_slot="2")["data"]["expected_in"] > 0


def test_a_named_send_too_long_or_beyond_a_full_log_is_a_clear_error(api, phone, settings_override):
    acct, key, device = phone
    pool.set_device_limits(acct.account_id, "1", pace="1")  # one part an hour per SIM
    body = send(api, key, device_id="1", message="x" * 200)  # 2 parts
    assert body["status"] == "error" and body["data"]["parameter"] == "message", body
    assert "too long for this phone's pacing" in body["message"]
    settings_override(pace_log_entries=2)
    pool.set_device_limits(acct.account_id, "1", pace="default")
    clock.freeze()
    for sim in ("1", "2"):  # two entries: the log is full, nothing settled to compact
        assert send(api, key, device_id="1", sim_slot=sim)["status"] == "success"
    clock.advance(1)
    body = send(api, key, device_id="1", sim_slot="1")
    assert body["status"] == "error" and body["data"]["error_code"] == "device_at_capacity"
    assert body["data"]["retry_after"] > 0 and "at capacity (pacing) until" in body["message"]
    assert len(list(Message.query(acct.account_id))) == 2  # nothing written


def test_window_and_rate_hold_under_real_threads(account, atomic_moto, monkeypatch,
                                                 settings_override):
    """Sixteen threads, each with its own copy of the device (as separate Lambdas have), book
    random lengths and kinds on one phone at once. Every booking is one conditional write on
    the log's version; losers retry with the item DynamoDB returns. Replaying what was handed
    out, every window of the phone and of each SIM holds and nothing was lost."""
    settings_override(pace_window_parts=10, default_pace_per_hour=7)
    monkeypatch.setattr(pacing, "PACE_TRIES", 100)  # a 16-way pile-up on moto may lose often
    acct, _, device, _ = account
    now = clock.now_ms()
    booked, errors = [], []
    start = threading.Barrier(16)

    def book(n):
        rng = random.Random(n)
        mine = Device.get(device.device_uid)
        start.wait()
        for _ in range(3):
            sim, parts, otp = rng.choice((1, 2)), rng.randint(1, 3), rng.random() < 0.3
            try:
                booking = pacing.book(mine, sim, parts, now, urgent=otp)
                booked.append((booking.at, sim, parts, otp))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
    threads = [threading.Thread(target=book, args=(n,)) for n in range(16)]
    run_together(threads)
    assert errors == []
    assert len(booked) == 48
    check_limits(booked, 10, settings.current().pace_window_seconds, 7,
                 settings.current().pace_rate_seconds, 5, 3)
    logged = pace_log.decode(Device.get(device.device_uid).pace_log)
    assert sum(e.parts for e in logged) == sum(b[2] for b in booked)  # every booking is logged


@pytest.fixture(scope="module")
def shared_phone():
    """One account and phone for all the property test's examples (moto per module)."""
    import moto

    from chalicelib.storage import aws, tables
    with moto.mock_aws():
        aws.reset()
        tables.create_all()
        acct = accounts.create_account("Property")
        device, _ = devices.register(acct.account_id, "Phone", sim_count=2)
        yield device
        aws.reset()


arrivals = st.lists(st.tuples(st.integers(0, 30),  # seconds after the previous arrival
                              st.integers(1, 4),   # parts
                              st.integers(1, 2),   # SIM
                              st.booleans(),       # OTP
                              st.integers(0, 3)),  # how stale the sender's copy is
                    min_size=1, max_size=25)


@hypothesis_settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arrivals=arrivals)
def test_random_arrivals_keep_every_window(shared_phone, settings_override, arrivals):
    """Random arrivals, lengths and OTP mixes, each sent from a copy of the device read up to
    three bookings ago (another container's cache): replaying the hand-outs, every window holds,
    each booking is at or after its arrival, and an OTP inside the reserve never waited."""
    settings_override(pace_window_parts=8, pace_window_seconds=60, default_pace_per_hour=6)
    settings_override(pace_rate_seconds=120, pace_otp_reserve=2)
    uid = shared_phone.device_uid
    Device(device_uid=uid).update(actions=[Device.pace_log.remove(), Device.pace_ver.add(1)])
    copies = [Device.get(uid)]
    now, handouts = 2_000_000_000_000 + random.randrange(10**9) * 1000, []
    for gap, parts, sim, otp, stale in arrivals:
        now += gap * 1000
        copy = copies[max(0, len(copies) - 1 - stale)]
        otp_used = max(busiest([h for h in handouts if h[3] and abs(h[0] - now) <= 60_000], 60),
                       busiest([h for h in handouts if h[3] and abs(h[0] - now) <= 120_000],
                               120, sim))
        booking = pacing.book(copy, sim, parts, now, urgent=otp)
        assert booking.at >= now
        if otp and otp_used + parts <= 2:
            assert booking.at == now
        handouts.append((booking.at, sim, parts, otp))
        copies.append(Device.get(uid))
    check_limits(handouts, 8, 60, 6, 120, 2, 2)


def test_expected_at_is_never_earlier_than_the_real_hand_out(account, settings_override):
    """Real time, real SQS delays (moto honours them): a window of 2 parts per 2 s; the third
    of three SMS is announced for when the first leaves the window, and the phone cannot get
    its job any earlier."""
    settings_override(pace_window_parts=2, pace_window_seconds=2, pace_otp_reserve=0)
    acct, key, device, _ = account
    sent = [sending.send(acct.account_id, Device.get(device.device_uid), PHONE, f"n{n}")
            for n in range(3)]
    expected = {a.message.message_id: a.expected_at or a.message.created_at for a in sent}
    assert sent[2].expected_at is not None and sent[2].expected_at > sent[0].message.created_at
    seen = {}
    deadline = time.time() + 15
    while len(seen) < 3 and time.time() < deadline:
        for job in jobs.lease_from_queue(Device.get(device.device_uid), 0, 10):
            seen.setdefault(job["message_id"], clock.now_ms())
        time.sleep(0.2)
    assert set(seen) == set(expected)
    for message_id, at in seen.items():
        assert at >= expected[message_id], (message_id, at, expected[message_id])


def test_owners_set_both_limits_and_bad_values_change_nothing(account):
    acct, _, device, _ = account
    run = CliRunner().invoke
    out = run(cli_main, ["device", "pace", acct.account_id, "1", "120", "--window", "none",
                         "--json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["pace_per_hour"] == 120 and shown["window_parts"] is None
    stored = Device.get(device.device_uid)
    assert (stored.pace_per_hour, stored.pace_window) == (120, 0)
    out = run(cli_main, ["device", "pace", acct.account_id, "1", "--window", "45"])
    assert out.exit_code == 0 and "45 parts per 30 min" in out.output, out.output
    assert Device.get(device.device_uid).pace_per_hour == 120  # left as it was
    for bad in (["0"], ["-3"], ["abc"], ["1.5"], ["36001"], ["--window", "0"],
                ["--window", "10001"], ["--window", "x"], ["10", "--window", "-1"], []):
        out = run(cli_main, ["device", "pace", acct.account_id, "1", *bad])
        assert out.exit_code != 0, bad
        assert "Invalid" in out.output or "Give a pace" in out.output, (bad, out.output)
        stored = Device.get(device.device_uid)
        assert (stored.pace_per_hour, stored.pace_window) == (120, 45), bad
    with pytest.raises(BadRequest) as error:
        pool.set_device_limits(acct.account_id, "1", window="-1")
    assert error.value.parameter == "window"
    other = accounts.create_account("Other")
    with pytest.raises(NotFound):
        pool.set_device_limits(other.account_id, device.device_uid, pace="5", window="5")
    out = run(cli_main, ["device", "pace", acct.account_id, "1", "default", "--window",
                         "default"])
    assert out.exit_code == 0, out.output
    stored = Device.get(device.device_uid)
    assert (stored.pace_per_hour, stored.pace_window) == (None, None)


def test_estimate_reads_only_and_matches_what_sending_does(api, phone, aws_calls, monkeypatch):
    acct, key, device = phone
    monkeypatch.setattr(pool.random, "random", lambda: 0.5)  # choice's ties without chance
    other, _ = devices.register(acct.account_id, "Phone 2", sim_count=1)
    devices.heartbeat(other, "running")
    pool.forget_cached()
    clock.freeze()
    for _ in range(10):
        send(api, key)  # some of the window already used
    phones = devices.list_devices(acct.account_id)
    lengths = [1, 3, 1, 2] * 12
    aws_calls.clear()
    estimated = pacing.estimate(phones, lengths, clock.now_ms())
    assert aws_calls == []  # read-only: from the devices as given
    last = 0
    for parts in lengths:
        route = pool.choose(acct.account_id, parts, book=True)
        last = max(last, route.booking.at)
    assert estimated == last
    assert estimated > clock.now_ms()  # 48 messages do not fit two phones' windows at once


def test_a_moved_message_counts_on_its_new_phone(api, phone):
    acct, key, device = phone
    other, _ = devices.register(acct.account_id, "Phone 2", sim_count=1)
    devices.heartbeat(other, "running")
    pool.forget_cached()
    clock.freeze()
    body = send(api, key)["data"]
    clock.advance(settings.current().pool_grace_seconds)
    for phone_ in (device, other):
        devices.heartbeat(Device.get(phone_.device_uid), "running")
    message = Message.get(acct.account_id, body["message_id"])
    assert pool.move(message, clock.now_ms()) == "moved"
    target = Message.get(acct.account_id, body["message_id"]).device_uid
    assert target != body["device_uid"]
    assert pacing.window_state(Device.get(target))["window_used"] == 1
