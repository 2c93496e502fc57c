"""Pacing with Android's shape (issue 21, docs/pool.md): bursts, the busiest window, before/after.

    python bench/pacing.py            # --skip-local: only the simulated 200-SMS run

1. Local stack (in-process local gateway, a device poller long-polling GET /device/jobs, the
   deployed default limits): a 5-SMS burst to one phone (its send_sms answers' expected_in), and
   20 one-part SMS to another, idle, phone: time from the first send to the 20th job in the
   phone's hands.
2. Simulated time (moto in-process, the clock frozen): 200 one-part SMS at once to one running
   dual-SIM phone at the default, by automatic choice (backlog unlimited for the run): the most
   parts handed out in any 30-minute window (<= the window), in any hour per SIM, and the
   total time against the theoretical minimum for that window.

"Before" is the rule this replaced (each SIM 50 segments an hour, one every 72 s, a next-free
slot per SIM), computed from that rule: what issue 21 measured on ./run-local.
"""
import json
import math
import os
import subprocess
import sys
import time

import click

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEFAULTS = {"SMSGW_PACE_WINDOW_PARTS": "30", "SMSGW_DEFAULT_PACE_PER_HOUR": "60"}
os.environ.update(DEFAULTS)  # the deployed defaults, before settings is first imported
OLD_GAP_S = 3600 / 50  # the old rule: 50 segments an hour per SIM, back to back


def old_rule(count: int, sims: int) -> list[float]:
    """Hand-out offsets (s) under the old rule: each message on the SIM free soonest."""
    free = [0.0] * sims
    out = []
    for _ in range(count):
        sim = min(range(sims), key=lambda s: free[s])
        out.append(free[sim])
        free[sim] += OLD_GAP_S
    return out


def busiest(times_s: list[float], window_s: float) -> int:
    times = sorted(times_s)
    return max(sum(1 for t in times if start <= t <= start + window_s) for start in times)


def simulated(count: int = 200) -> dict:
    import moto

    from chalicelib.core import clock, settings
    from chalicelib.domain import accounts, devices, pool
    from chalicelib.storage import aws, tables
    with moto.mock_aws():
        aws.reset()
        tables.create_all()
        acct = accounts.create_account("Bench")
        device, _ = devices.register(acct.account_id, "Dual SIM", sim_count=2)
        clock.freeze(1_800_000_000_000)
        devices.heartbeat(device, "running")
        pool.forget_cached()
        # take them all: the run measures the schedule
        settings.install(settings.current().replace(pool_backlog_seconds=10**7))
        now = clock.now_ms()
        handed = []
        for _ in range(count):
            route = pool.choose(acct.account_id, 1, validity_seconds=10**7, now=now)
            handed.append(((route.booking.at - now) / 1000, route.sim_slot))
        clock.reset()
        aws.reset()
    window_s, parts = (settings.current().pace_window_seconds,
                       settings.current().pace_window_parts)
    bulk = parts - min(settings.current().pace_otp_reserve, parts // 2)
    # the most bulk a window may hold, each batch as soon as the last leaves the closed window
    minimum = (math.ceil(count / bulk) - 1) * (window_s + 1)
    old = old_rule(count, 2)
    return {"count": count, "window": parts, "window_bulk": bulk, "window_s": window_s,
            "busiest_window": busiest([t for t, _ in handed], window_s),
            "busiest_sim_hour": max(busiest([t for t, s in handed if s == sim], 3600)
                                    for sim in (1, 2)),
            "rate": settings.current().default_pace_per_hour,
            "total_s": max(t for t, _ in handed), "minimum_s": minimum,
            "old_busiest_window": busiest(old, window_s), "old_total_s": max(old)}


def local_bursts() -> dict:
    import requests

    from bench.phone_poller import PhonePoller
    from local_gateway import LocalGateway
    with LocalGateway(agent=False, schedules=False, extra_devices=1, env=DEFAULTS) as gw:
        demo = gw.demo_info
        session = requests.Session()

        def send(device_uid, n):
            return session.post(f"{gw.url}/myAPI.php", data={
                "api_key": demo["api_key"], "action": "send_sms", "device_uid": device_uid,
                "phone_number": "+8801712345678", "message": f"bench {n}"}, timeout=30).json()

        five = [send(demo["devices"][0]["device_uid"], n)["data"].get("expected_in", 0)
                for n in range(5)]
        with PhonePoller(gw.url, demo["device_token"], wait=5) as phone:
            first = time.perf_counter()
            ids = [send(demo["device_uid"], n)["data"]["message_id"] for n in range(20)]
            deadline = time.time() + 120
            while not set(ids) <= set(phone.arrived) and time.time() < deadline:
                time.sleep(0.01)
        arrived = phone.arrived
        last = max(arrived[i] for i in ids) if set(ids) <= set(arrived) else None
    return {"five_expected_in": five,
            "twenty_seconds": None if last is None else last - first}


def simulated_apart() -> dict:
    """simulated() in a process of its own: moto in-process and the local stack's moto server
    do not mix in one process (PynamoDB keeps its connections)."""
    out = subprocess.run([sys.executable, __file__, "--simulated-json"], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@click.command()
@click.option("--skip-local", is_flag=True, help="Only the simulated 200-SMS run.")
@click.option("--simulated-json", is_flag=True, hidden=True)
def main(skip_local, simulated_json):
    if simulated_json:
        print(json.dumps(simulated()))
        return
    sim = simulated_apart()
    print("Pacing (docs/pool.md), deployed defaults: window "
          f"{sim['window']} parts per {sim['window_s'] // 60} min per phone ({sim['window_bulk']} "
          f"for bulk), {sim['rate']} parts per hour per SIM")
    if not skip_local:
        local = local_bursts()
        old5 = [round(t) for t in old_rule(5, 1)]
        print(f"  5-SMS burst to one phone (SIM 1), expected_in s: before {old5}, "
              f"after {local['five_expected_in']}")
        twenty = local["twenty_seconds"]
        print(f"  20 one-part SMS to an idle phone, first send -> 20th job in the phone's hands: "
              f"before {old_rule(20, 1)[-1]:.0f} s (SIM 1), after "
              + ("not all arrived" if twenty is None else f"{twenty:.2f} s (local stack)"))
    print(f"  {sim['count']} one-part SMS at once to one dual-SIM phone (automatic choice):")
    print(f"    busiest {sim['window_s'] // 60}-minute window: before {sim['old_busiest_window']} "
          f"parts (Android asks after 30), after {sim['busiest_window']} (<= {sim['window']})")
    print(f"    busiest hour on one SIM: after {sim['busiest_sim_hour']} (<= {sim['rate']})")
    print(f"    last hand-out: before {sim['old_total_s'] / 60:.0f} min, after "
          f"{sim['total_s'] / 60:.1f} min; theoretical minimum for {sim['window_bulk']} bulk "
          f"parts per window {sim['minimum_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
