"""Phones as a pool, end to end (issue 10): the local gateway as a subprocess (moto server, the
Chalice app over HTTP, the schedules every second) and four simulated phones of one account:
two ordinary agents (one of them SIGKILLed mid-run, long enough for the liveness sweep to stop
it, then restarted with its journal), one agent paced low through the admin CLI, and one phone
whose app heartbeats but never polls. Messages are sent without naming a device.

Checks: every message ends delivered, sent by exactly one phone (the one history names); no
message is in two phones' ledgers; the dead and the never-polling phone's messages were moved
and delivered; the paced phone never sent faster than its pace; OTPs went out while the paced
phone still had a bulk backlog."""
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.localgw_helpers import load_soak, wait_for

PACE_PER_HOUR = 2  # parts per SMSGW_PACE_RATE_SECONDS (4 s) per SIM, 1 of them for bulk
HEARTBEAT_WINDOW = 6
POOL_ENV = {"SMSGW_POOL_GRACE_SECONDS": "2", "SMSGW_POOL_CACHE_SECONDS": "1",
            "SMSGW_SIM_PAUSE_SERVICE_SECONDS": "600", "SMSGW_HEARTBEAT_WINDOW_SECONDS":
            str(HEARTBEAT_WINDOW), "SMSGW_PACE_RATE_SECONDS": "4"}
BULK = 48


def busiest_sends(ledgers, device_uid, skip) -> int:
    """Most bulk sends of the phone on one SIM in any closed 4 s (its rate's period)."""
    most = 0
    for sim in (1, 2):
        times = sorted(e["at"] for m, sends in ledgers.items() for uid, e in sends
                       if uid == device_uid and e["sim_slot"] == sim and m not in skip)
        most = max([most] + [sum(1 for t in times if a <= t <= a + 4) for a in times])
    return most


def test_pool_of_phones_with_a_dead_a_silent_and_a_paced_one(tmp_path):
    soak = load_soak()
    gw = soak.Gateway(tmp_path, devices=3, extra_env=POOL_ENV)
    slots, stop_beats = [], threading.Event()
    try:
        info = gw.info
        session = requests.Session()

        def api(**params):
            return gw.api(session, **params)
        steady, victim, paced = (soak.AgentSlot(gw, d, tmp_path, 0.0) for d in info["devices"])
        slots = [steady, victim, paced]
        silent_uid = info["device_uid"]  # heartbeats, never polls
        out = gw.admin("device", "pace", info["account_id"], paced.device["device_uid"],
                       str(PACE_PER_HOUR))
        assert f"{PACE_PER_HOUR} parts per hour per SIM" in out
        for slot in slots:
            slot.start()
        gw.heartbeats(info["device_token"], stop_beats)

        def running():
            answer = api(action="device_status")["data"]
            return {d["device_uid"] for d in answer if d["status"] == "running"}
        wait_for(lambda: len(running()) == 4, 30, "four running phones")

        chosen, accepted_at = {}, {}
        lock = threading.Lock()

        def send(n):
            answer = api(action="send_sms", phone_number=f"+88017{n:08d}",
                         message=f"pool message {n}")
            assert answer["status"] == "success", answer
            with lock:
                chosen[answer["data"]["message_id"]] = answer["data"]["device_uid"]
                accepted_at[answer["data"]["message_id"]] = time.time()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(BULK // 2)))
        time.sleep(1.0)
        victim.kill()  # SIGKILL mid-run; it stays away past the heartbeat window
        killed_at = time.time()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(BULK // 2, BULK)))
        wait_for(lambda: victim.device["device_uid"] not in running(), 30,
                 "the liveness sweep to stop the killed phone")

        # a bulk backlog named to the paced phone's SIM 1 (8, 5 s apart), then OTPs while it is
        # being paced: one the gateway routes, one named to the paced phone itself
        backlog = []
        for n in range(8):
            answer = api(action="send_sms", phone_number=f"+88019{n:08d}", sim_slot="1",
                         message=f"backlog {n}", device_uid=paced.device["device_uid"])
            assert answer["status"] == "success", answer
            chosen[answer["data"]["message_id"]] = paced.device["device_uid"]
            backlog.append(answer["data"]["message_id"])
        assert answer["data"]["expected_in"] >= 10
        otps = {}
        for named in (None, paced.device["device_uid"]):
            params = {"device_uid": named} if named else {}
            answer = api(action="send_otp", phone_number=f"+8801799{len(otps):06d}", **params)
            assert answer["status"] == "success", answer
            assert "expected_at" not in answer["data"]
            otps[answer["data"]["message_id"]] = time.time()

        time.sleep(max(0.0, killed_at + HEARTBEAT_WINDOW + 3 - time.time()))
        victim.start()  # back with its journal: settles what it had taken before the kill

        def receipt_lost(message_id):
            """Sent by the killed agent just before the kill: its receipt died with it."""
            return any(e["message_id"] == message_id and killed_at - 5 <= e["at"] <= killed_at
                       for e in victim.entries())

        def settled():
            found = {e["message_id"]: e for e in soak_history(gw, session)}
            wanted = set(chosen) | set(otps)
            done = all(found.get(m, {}).get("status") in ("delivered", "failed", "expired")
                       or (found.get(m, {}).get("status") == "sent" and receipt_lost(m))
                       for m in wanted)
            return found if done else None
        found = wait_for(settled, 120, "every message to settle")
        for slot in slots:
            slot.stop()

        ledgers = defaultdict(list)
        for slot in slots:
            for entry in slot.entries():
                ledgers[entry["message_id"]].append((slot.device["device_uid"], entry))
        problems = []
        for message_id in list(chosen) + list(otps):
            entry, sends = found[message_id], ledgers.get(message_id, [])
            if len(sends) != 1:
                problems.append(f"{message_id} sent {len(sends)} times: {sends}")
                continue
            if sends[0][0] != entry["device_uid"]:
                problems.append(f"{message_id} sent by {sends[0][0]}, history says "
                                f"{entry['device_uid']}")
            if entry["status"] != "delivered":
                # only a receipt lost with the killed agent may leave it `sent`
                if not (entry["status"] == "sent" and receipt_lost(message_id)):
                    problems.append(f"{message_id} ended {entry['status']}")
        assert problems == []
        assert not set(ledgers) - set(chosen) - set(otps)
        assert silent_uid not in {uid for sends in ledgers.values() for uid, _ in sends}

        moved_from_silent = [m for m, uid in chosen.items() if uid == silent_uid]
        moved_from_dead = [m for m, uid in chosen.items()
                           if uid == victim.device["device_uid"]
                           and found[m]["device_uid"] != uid]
        assert moved_from_silent and all(found[m]["status"] == "delivered"
                                         for m in moved_from_silent)
        assert moved_from_dead and all(found[m]["status"] == "delivered"
                                       for m in moved_from_dead)

        # the pace holds per SIM (the phone has two); OTPs count but are never held back, so
        # the gaps are measured between bulk messages
        paced_sends, gaps = 0, []
        for sim in (1, 2):
            times = sorted(e["at"] for m, sends in ledgers.items() for uid, e in sends
                           if uid == paced.device["device_uid"] and e["sim_slot"] == sim
                           and m not in otps)
            paced_sends += len(times)
            gaps += [b - a for a, b in zip(times, times[1:], strict=False)]
        assert paced_sends >= 4
        # hand-outs 5 s apart (one bulk part per closed 4 s window, the other kept for OTPs);
        # the phone long-polls, so its sends follow within a second or two: never more than
        # the SIM's rate (2) in any 4 s
        assert busiest_sends(ledgers, paced.device["device_uid"], set(otps)) <= PACE_PER_HOUR

        otp_sent = {m: ledgers[m][0][1]["at"] for m in otps}
        assert all(otp_sent[m] - otps[m] < 5 for m in otps), (otp_sent, otps)
        last_bulk = max(ledgers[m][0][1]["at"] for m in backlog)
        assert any(otp_sent[m] < last_bulk for m in otps)  # not behind the paced backlog
        print(f"\nmoved from the dead phone: {len(moved_from_dead)}, from the silent one: "
              f"{len(moved_from_silent)}; paced sends {paced_sends}, smallest gap per SIM "
              f"{min(gaps):.2f} s")
    finally:
        stop_beats.set()
        for slot in slots:
            slot.kill()
            slot.log.close()
        gw.stop()


def soak_history(gw, session):
    cursor, found = None, []
    while True:
        params = {"action": "get_history", "type": "outgoing", "limit": "100"}
        if cursor:
            params["cursor"] = cursor
        answer = gw.api(session, **params)
        found += answer["data"]["messages"]
        cursor = answer["data"]["next_cursor"]
        if not cursor:
            return found


def test_soak_pool_mode_loses_and_doubles_nothing(tmp_path):
    """bench/soak.py --pool at CI size: automatic choice under the soak's crashes, duplicate
    deliveries and abandoned leases (SMSGW_SOAK_FULL=1: 1,000 messages)."""
    import os
    full = os.environ.get("SMSGW_SOAK_FULL") == "1"
    count = 1000 if full else 60
    figures = load_soak().run(messages=count, seed=int(os.environ.get("SMSGW_SOAK_SEED", "2")),
                              workdir=str(tmp_path), settle_seconds=300 if full else 120,
                              pool=True)
    print("\n".join(f"{name}: {value}" for name, value in figures.items()))
    assert figures["problems"] == []
    assert figures["messages accepted"] == count
    assert sum(figures["final states"].values()) == count
    assert figures["duplicates found (a message in ledgers more than once)"] == 0
    assert figures["moved by failover"] >= 1
    assert figures["chosen for the never-polling phone"] >= 1
    assert figures["paced phone sends"] >= 1
    assert figures["app phone sends"] >= 1  # the SMSGate app phone took part
