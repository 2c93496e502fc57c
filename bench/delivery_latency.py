"""Time from send_sms returning to the job reaching a long-polling device, on the local stack.

    python bench/delivery_latency.py [--count 100]

Starts the local gateway in-process (moto server + the Chalice app over HTTP, no demo agent),
runs one device poller in a thread that long-polls GET /device/jobs?wait=20 and reports each job
sent at once, and sends `count` SMS one after another through POST /myAPI.php, each after the
previous job arrived. Prints median, p99 and worst latency. `measure(n)` is what
bench/run_all.py calls.
"""
import os
import statistics
import sys
import time

import click
import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.phone_poller import PhonePoller  # noqa: E402
from local_gateway import LocalGateway  # noqa: E402


def measure(count: int = 200) -> dict:
    """Latencies (ms) of `count` sends: {median_ms, p99_ms, worst_ms}."""
    with LocalGateway(agent=False, schedules=False) as gw:
        demo = gw.demo_info
        session = requests.Session()
        latencies = []
        with PhonePoller(gw.url, demo["device_token"], wait=20) as phone:
            for n in range(count):
                phone.got_one.clear()
                answer = session.post(f"{gw.url}/myAPI.php", data={
                    "api_key": demo["api_key"], "action": "send_sms",
                    "device_uid": demo["device_uid"], "phone_number": "+8801712345678",
                    "message": f"bench {n}"}, timeout=30).json()
                returned = time.perf_counter()
                message_id = answer["data"]["message_id"]
                if not phone.got_one.wait(30) or message_id not in phone.arrived:
                    deadline = time.time() + 30
                    while message_id not in phone.arrived and time.time() < deadline:
                        time.sleep(0.001)
                latencies.append((phone.arrived[message_id] - returned) * 1000)
                time.sleep(0.05)  # let the poller go back to its long poll
    latencies.sort()
    return {"median_ms": statistics.median(latencies),
            "p99_ms": latencies[int(0.99 * (count - 1))], "worst_ms": latencies[-1]}


@click.command()
@click.option("--count", default=200, show_default=True)
def main(count):
    result = measure(count)
    print(f"send_sms -> job at a long-polling device, {count} SMS, local stack (moto server):")
    print(f"  median {result['median_ms']:.1f} ms   p99 {result['p99_ms']:.1f} ms   "
          f"worst {result['worst_ms']:.1f} ms")


if __name__ == "__main__":
    main()
