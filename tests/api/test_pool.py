"""Phones as a pool (issue 10) through the real handlers on moto: automatic choice, pacing per
device and SIM, OTPs first, failover by conditional write, SIM pauses, and bad input."""
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.domain import accounts, devices, jobs, pacing, pool, sweeps
from chalicelib.domain.messages import first_look as first_look
from chalicelib.storage.tables import Device, Message
from cli import main as cli_main

PHONE = "+8801712345678"
ROOT = Path(__file__).resolve().parents[2]


def queued(device) -> int:
    """Jobs on a device's queue, visible or delayed."""
    return pool.queue_depth(device)


@pytest.fixture
def fleet(account):
    """The account's first phone plus two more, all running and single-SIM:
    (account, key, [devices])."""
    acct, key, first, _ = account
    first.update(actions=[Device.sim_count.set(1)])
    phones = [first] + [devices.register(acct.account_id, f"Phone {n}", sim_count=1)[0]
                        for n in (2, 3)]
    for phone in phones:
        devices.heartbeat(phone, "running")
    pool.forget_cached()
    devices.forget_cached()
    return acct, key, phones


def send(api, key, **values):
    values = {"message": "Hello", **values}
    body, _ = api(api_key=key, action="send_sms", phone_number=PHONE, **values)
    return body


def test_default_pace_is_safe_for_a_stock_android_phone():
    """Android asks the user before an app's 31st part in 30 minutes (SmsUsageMonitor's
    defaults): the default window is that, with an OTP reserve; the SIM rate is inside
    carriers' usual 30-200 an hour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_") or "PACE" not in k}
    out = subprocess.run([sys.executable, "-c", "from chalicelib.core import settings; "
                          "s = settings.current(); print(s.pace_window_parts, "
                          "s.pace_window_seconds, s.pace_otp_reserve, s.default_pace_per_hour, "
                          "s.pace_rate_seconds)"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    window, seconds, reserve, rate, rate_seconds = map(int, out.split())
    assert window <= 30 and seconds >= 30 * 60 and 0 < reserve < window
    assert 30 <= rate <= 200 and rate_seconds == 3600


def test_automatic_choice_spreads_over_running_devices(api, fleet):
    acct, key, phones = fleet
    for phone in phones:  # a window of 4 parts, 2 for bulk
        pool.set_device_limits(acct.account_id, phone.device_id, window=4)
    clock.freeze()
    answers = [send(api, key) for _ in range(6)]
    assert all(a["status"] == "success" for a in answers), answers
    used = Counter(a["data"]["device_uid"] for a in answers)
    assert sorted(used.values()) == [2, 2, 2]  # all could send now: spread by room
    assert all("expected_at" not in a["data"] for a in answers)  # a burst that fits goes now
    stored = {m.message_id: m for m in Message.query(acct.account_id)}
    for answer in answers:
        m = stored[answer["data"]["message_id"]]
        assert (m.device_uid, m.device_id) == (answer["data"]["device_uid"],
                                              answer["data"]["device_id"])
        assert m.pool_uid == m.device_uid  # may fail over
    # check_status and history show the device and SIM used
    status, _ = api(api_key=key, action="check_status", message_id=answers[0]["data"]["message_id"])
    assert status["data"]["device_uid"] == answers[0]["data"]["device_uid"]
    assert status["data"]["sim_slot"] == 1


def test_automatic_send_sms_costs_three_aws_calls_warm(api, fleet, aws_calls):
    acct, key, phones = fleet
    for phone in phones:
        pool.set_device_pace(acct.account_id, phone.device_id, 3600)
    send(api, key)  # warms the key and the device list
    aws_calls.clear()
    assert send(api, key)["status"] == "success"
    assert sorted(aws_calls) == sorted([("dynamodb", "UpdateItem"), ("dynamodb", "PutItem"),
                                        ("sqs", "SendMessage")])
    settings_pace = settings.current().default_pace_per_hour  # unpaced devices skip the slot write
    assert settings_pace == 0
    for phone in phones:
        pool.set_device_pace(acct.account_id, phone.device_id, "default")
    send(api, key)
    aws_calls.clear()
    send(api, key)
    assert sorted(aws_calls) == [("dynamodb", "PutItem"), ("sqs", "SendMessage")]


def test_choice_errors_say_why(api, account):
    acct, key, device, _ = account
    other = accounts.create_account("Empty")
    other_key, _ = accounts.create_key(other.account_id, "k")
    body = send(api, other_key)
    assert body["data"]["error_code"] == "no_device" and "no registered device" in body["message"]
    body = send(api, key)
    assert body["data"]["error_code"] == "no_device_running"
    assert "none of this account's 1 device" in body["message"]
    devices.heartbeat(device, "running")
    pool.forget_cached()
    pool.set_device_pace(acct.account_id, device.device_id, 1)  # one part an hour per SIM
    clock.freeze()
    first = send(api, key, sim_slot="1")
    assert first["status"] == "success" and "expected_at" not in first["data"]
    second = send(api, key, sim_slot="1", valid_for="600")  # next in an hour: too late
    assert second["data"]["error_code"] == "pool_at_capacity", second
    assert "at capacity (pacing) until" in second["message"]
    assert second["data"]["retry_after"] > 0
    assert len(list(Message.query(acct.account_id))) == 1  # nothing written
    third = send(api, key, sim_slot="1", device_id="1")  # named: waits the hour (whole s)
    assert third["status"] == "success" and 3601 <= third["data"]["expected_in"] <= 3602
    long = send(api, key, sim_slot="1", message="x" * 200)  # 2 parts: more than 1 an hour
    assert long["data"]["error_code"] == "pool_too_long" and long["data"]["parameter"] == \
        "message"


def test_named_device_keeps_todays_answer_and_is_paced(api, account, aws_calls, settings_override):
    acct, key, device, _ = account
    settings_override(pace_rate_seconds=10)  # a SIM rate of N parts per 10 s
    clock.freeze(1_800_000_000_000)
    plain = send(api, key, device_id=str(device.device_id))
    assert set(plain["data"]) == {"message_id", "status", "sim_slot"}  # not paced: as before
    pool.set_device_pace(acct.account_id, device.device_id, 1)
    aws_calls.clear()
    first = send(api, key, device_id=str(device.device_id))
    second = send(api, key, device_id=str(device.device_id))
    assert set(first["data"]) == {"message_id", "status", "sim_slot"}
    assert second["data"]["expected_in"] == 11  # the first leaves the closed 10 s window
    delays = [params.get("DelaySeconds") for service, op, params in aws_calls.requests
              if op == "SendMessage"]
    assert delays == [None, 11]
    stored = Message.get(acct.account_id, second["data"]["message_id"])
    assert stored.pool_uid is None  # named: stays on its device
    assert stored.open_shard is None  # taken within half a minute: the first look decides
    grace = settings.current().outbox_grace_seconds * 1000
    assert first_look.due_at(stored) == stored.not_before + grace


def test_held_beyond_sqs_delay_then_released_by_the_sweep(api, account, aws_calls):
    acct, key, device, _ = account
    pool.set_device_pace(acct.account_id, device.device_id, 1)  # a part an hour per SIM
    clock.freeze(1_800_000_000_000)
    send(api, key, device_id=str(device.device_id))
    second = send(api, key, device_id=str(device.device_id))
    assert second["data"]["expected_in"] == 3601
    assert queued(device) == 1  # the second is held: SQS cannot delay it that long
    clock.advance(3601 - settings.current().max_queue_delay_seconds + 1)
    aws_calls.clear()
    assert sweeps.settle_due_messages()["requeued"] == 2  # the first (untaken) one, too
    bodies = {json.loads(p["MessageBody"])["message_id"]: p.get("DelaySeconds")
              for _, op, p in aws_calls.requests if op == "SendMessage"}
    assert 0 < bodies[second["data"]["message_id"]] <= settings.current().max_queue_delay_seconds
    stored = Message.get(acct.account_id, second["data"]["message_id"])
    assert stored.open_due > stored.not_before  # next look only after its send time


def test_untaken_message_moves_and_the_old_phones_late_lease_fails(api, fleet):
    acct, key, phones = fleet
    clock.freeze()
    body = send(api, key)
    message_id = body["data"]["message_id"]
    silent = next(p for p in phones if p.device_uid == body["data"]["device_uid"])
    assert sweeps.settle_due_messages() == {}  # within its grace
    clock.advance(settings.current().pool_grace_seconds)
    assert sweeps.settle_due_messages()["moved"] == 1
    moved = Message.get(acct.account_id, message_id)
    assert moved.device_uid != silent.device_uid and moved.moves == 1
    assert moved.pool_uid == moved.device_uid and moved.status == "pending"
    # the silent phone wakes up: its stale job is dropped, not leased
    assert jobs.lease_from_queue(silent, 0, 10) == []
    assert queued(silent) == 0
    target = next(p for p in phones if p.device_uid == moved.device_uid)
    [job] = jobs.lease_from_queue(target, 0, 10)
    assert job["message_id"] == message_id
    assert jobs.report(target, message_id, "delivered")["result"] == "ok"
    # the stalled phone rests, so choice routes around it
    assert pacing.is_paused(Device.get(silent.device_uid), 1, clock.now_ms())
    pool.forget_cached()
    assert all(send(api, key)["data"]["device_uid"] != silent.device_uid for _ in range(4))


def test_move_and_lease_race_one_winner_either_order(api, fleet):
    acct, key, phones = fleet
    clock.freeze()
    first = send(api, key)["data"]
    owner = next(p for p in phones if p.device_uid == first["device_uid"])
    [job] = jobs.lease_from_queue(owner, 0, 10)  # the phone takes it first...
    clock.advance(settings.current().pool_grace_seconds)
    message = Message.get(acct.account_id, first["message_id"])
    assert pool.move(message, clock.now_ms()) == "raced"  # ...so it may have sent it: stays
    assert Message.get(acct.account_id, first["message_id"]).device_uid == owner.device_uid
    second = send(api, key)["data"]
    message = Message.get(acct.account_id, second["message_id"])
    old = next(p for p in phones if p.device_uid == second["device_uid"])
    assert pool.move(message, clock.now_ms()) == "moved"  # moved first...
    # ...the late lease fails
    assert jobs.lease_received(old, second["message_id"], "stale-handle") == "drop"
    assert Message.get(acct.account_id, second["message_id"]).attempts == 0


def test_concurrent_failover_moves_each_message_once(api, fleet, atomic_moto):
    acct, key, phones = fleet
    clock.freeze()
    ids = [send(api, key)["data"]["message_id"] for _ in range(6)]
    clock.advance(settings.current().pool_grace_seconds)
    results = []
    threads = [threading.Thread(target=lambda: results.append(sweeps.settle_due_messages()))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    moved = sum(r.get("moved", 0) for r in results)
    stored = [Message.get(acct.account_id, i) for i in ids]
    # each moved once at most (the stalled phones rest, so the last ones may have nowhere to go)
    assert moved >= 3 and moved == sum(m.moves or 0 for m in stored)
    assert all((m.moves or 0) <= 1 for m in stored)


def test_stopped_device_messages_move_at_once(api, fleet):
    acct, key, phones = fleet
    for phone in phones:  # a window of 4 parts, 2 for bulk: the 6 go 2 per phone
        pool.set_device_limits(acct.account_id, phone.device_id, window=4)
    clock.freeze()
    answers = [send(api, key)["data"] for _ in range(6)]
    dead_uid = answers[0]["device_uid"]
    mine = [a["message_id"] for a in answers if a["device_uid"] == dead_uid]
    assert len(mine) == 2
    for phone in phones:
        if phone.device_uid != dead_uid:
            devices.heartbeat(phone, "running")  # the others keep beating
    clock.advance(settings.current().heartbeat_window_seconds + 1)
    for phone in phones:
        if phone.device_uid != dead_uid:
            devices.heartbeat(phone, "running")
    pool.forget_cached()
    assert devices.stop_silent(on_stop=pool.failover_device) == 1
    for message_id in mine:
        m = Message.get(acct.account_id, message_id)
        assert m.device_uid != dead_uid and m.moves == 1


def test_named_message_stays_unless_it_opts_in(api, fleet):
    acct, key, phones = fleet
    clock.freeze()
    named = send(api, key, device_id=str(phones[0].device_id))["data"]
    opted = send(api, key, device_id=str(phones[0].device_id), failover="1")["data"]
    clock.advance(settings.current().pool_grace_seconds)
    sweeps.settle_due_messages()
    assert Message.get(acct.account_id, named["message_id"]).device_uid == phones[0].device_uid
    assert Message.get(acct.account_id, opted["message_id"]).device_uid != phones[0].device_uid


def test_sim_trouble_pauses_that_sim_and_status_shows_it(api, fleet):
    acct, key, phones = fleet
    phones[0].update(actions=[Device.sim_count.set(2)])
    pool.forget_cached()
    devices.forget_cached()
    body = send(api, key, device_id=str(phones[0].device_id), sim_slot="2")["data"]
    phone = devices.authenticate_uid = Device.get(phones[0].device_uid)
    jobs.lease_from_queue(phone, 0, 10)
    result = jobs.report(phone, body["message_id"], "failed",
                         "limit exceeded: termux-sms-send failed (exit 1): "
                         "RESULT_ERROR_LIMIT_EXCEEDED")
    assert result["result"] == "ok"
    stored = Device.get(phones[0].device_uid)
    assert pacing.is_paused(stored, 2, clock.now_ms())
    assert not pacing.is_paused(stored, 1, clock.now_ms())
    status, _ = api(api_key=key, action="device_status")
    entry = next(d for d in status["data"] if d["device_uid"] == phones[0].device_uid)
    assert entry["sims"][1]["paused"] and entry["sims"][1]["pause_reason"] == "limit exceeded"
    assert entry["paused"] is False and entry["queue_depth"] == 0
    assert "pace_per_hour" in entry and entry["status"] == "running"
    for _ in range(6):  # automatic choice routes around the paused SIM
        data = send(api, key)["data"]
        assert (data["device_uid"], data["sim_slot"]) != (phones[0].device_uid, 2)


def test_device_status_shows_queue_depth_and_pace(api, account):
    acct, key, device, _ = account
    pool.set_device_pace(acct.account_id, device.device_id, 120)
    send(api, key, device_id=str(device.device_id))
    send(api, key, device_id=str(device.device_id))
    status, _ = api(api_key=key, action="device_status")
    [entry] = status["data"]
    assert entry["queue_depth"] == 2 and entry["pace_per_hour"] == 120 and entry["paced"]


@pytest.mark.parametrize("value", ["maybe", "2", "-1", "yes please"])
def test_bad_failover_value_is_an_error_that_changes_nothing(api, fleet, value):
    acct, key, phones = fleet
    body = send(api, key, failover=value)
    assert body["status"] == "error" and body["data"]["parameter"] == "failover"
    assert "Invalid failover" in body["message"]
    assert list(Message.query(acct.account_id)) == []
    assert all(Device.get(p.device_uid).pace_log is None for p in phones)


@pytest.mark.parametrize("value", ["0", "-5", "abc", "1.5", "36001"])
def test_bad_pace_is_an_error_that_changes_nothing(account, value):
    acct, _, device, _ = account
    result = CliRunner().invoke(cli_main, ["device", "pace", acct.account_id,
                                           str(device.device_id), value])
    assert result.exit_code != 0 and "Invalid pace" in result.output
    assert Device.get(device.device_uid).pace_per_hour is None
    with pytest.raises(BadRequest) as error:
        pool.set_device_pace(acct.account_id, device.device_id, value)
    assert error.value.parameter == "pace"


def test_pace_on_another_accounts_device_is_unknown_and_changes_nothing(account):
    acct, _, device, _ = account
    other = accounts.create_account("Other")
    result = CliRunner().invoke(cli_main, ["device", "pace", other.account_id,
                                           str(device.device_uid), "30"])
    assert result.exit_code == 1 and "Unknown device" in result.output
    with pytest.raises(NotFound):
        pool.set_device_pace(other.account_id, str(device.device_id), 30)
    assert Device.get(device.device_uid).pace_per_hour is None


def test_cli_sets_and_resets_the_pace(account):
    acct, _, device, _ = account
    shown = json.loads(CliRunner().invoke(cli_main, ["device", "pace", acct.account_id,
                                                     str(device.device_id), "30",
                                                     "--json"]).output)
    assert shown["pace_per_hour"] == 30 and shown["default"] is False
    assert Device.get(device.device_uid).pace_per_hour == 30
    out = CliRunner().invoke(cli_main, ["device", "pace", acct.account_id,
                                        str(device.device_id), "default"]).output
    assert "unpaced" in out or "(default)" in out
    assert Device.get(device.device_uid).pace_per_hour is None


def test_idempotent_retry_of_an_automatic_send_finds_the_first(api, fleet):
    acct, key, phones = fleet
    for phone in phones:
        pool.set_device_pace(acct.account_id, phone.device_id, 3600)
    clock.freeze()
    first = send(api, key, idempotency_key="order-7")
    again = send(api, key, idempotency_key="order-7")  # routed to another (free) phone...
    assert again["status"] == "success", again
    assert again["data"]["message_id"] == first["data"]["message_id"]
    assert again["data"]["device_uid"] == first["data"]["device_uid"]
    assert len(list(Message.query(acct.account_id))) == 1


def test_a_pool_message_with_nowhere_to_go_is_looked_at_again_soon(api, account):
    """Alone in the pool, it is queued again (a queue call may have been lost) without the
    named messages' growing back-off, so it moves soon after another phone appears."""
    acct, key, device, _ = account
    devices.heartbeat(device, "running")
    pool.forget_cached()
    clock.freeze()
    message_id = send(api, key)["data"]["message_id"]
    grace_ms = settings.current().pool_grace_seconds * 1000
    for _ in range(4):
        clock.advance(2 * settings.current().pool_grace_seconds)
        devices.heartbeat(Device.get(device.device_uid), "running")
        assert sweeps.settle_due_messages()["requeued"] == 1
        stored = Message.get(acct.account_id, message_id)
        assert stored.open_due <= clock.now_ms() + 2 * grace_ms
    other, _ = devices.register(acct.account_id, "Phone 2", sim_count=1)
    devices.heartbeat(other, "running")
    pool.forget_cached()
    clock.advance(2 * settings.current().pool_grace_seconds)
    devices.heartbeat(Device.get(device.device_uid), "running")
    assert sweeps.settle_due_messages()["moved"] == 1
    assert Message.get(acct.account_id, message_id).device_uid == other.device_uid
