"""REST v1: AWS calls of a send (single, and per recipient of a bulk send), what holding and
releasing a scheduled send costs, and the time to accept a 1,000-recipient request.

    python bench/rest_v1.py [--quick] [--json]

AWS calls are counted in-process against moto through the real routes (chalice.test.Client),
warm (key and device cached). The scheduled-send cost is the extra over an immediate send: the
release by the outbox sweep (its share of the sweep's Query pages plus one UpdateItem; the
SendMessage is the one an immediate send makes anyway), priced with bench/prices.json. The
1,000-recipient time is measured over HTTP against the local gateway (moto server).
"""
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402

NUMBERS = [f"+49170{n:07d}" for n in range(1000)]


def _counted(calls) -> dict:
    from bench import awsrec
    summary = awsrec.summarize(calls)
    return {"by_op": summary["by_op"], "calls": summary["calls"], "wru": summary["wru"],
            "rru": summary["rru"]}


def aws_calls(bulk: int) -> dict:
    import moto
    from chalice.test import Client

    from bench import awsrec
    with moto.mock_aws():
        from chalicelib.core import clock
        from chalicelib.domain import accounts, devices, messages, sweeps
        from chalicelib.storage import aws, tables
        from chalicelib.storage.tables import Message
        aws.reset()
        tables.create_all()
        awsrec.learn_indexes(tables.MODELS)
        acct = accounts.create_account("bench")
        key, _ = accounts.create_key(acct.account_id)
        devices.register(acct.account_id, "phone", sim_count=1)
        import app as app_module
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        awsrec.install()
        try:
            with Client(app_module.app) as client:
                def send(recipients, **extra):
                    answer = client.http.post("/v1/messages", headers=headers, body=json.dumps(
                        {"recipients": recipients, "message": "bench", "device_id": 1, **extra}))
                    assert answer.status_code == 202, answer.body
                send(NUMBERS[:1])  # warm the caches
                with awsrec.recording() as single_calls:
                    send(NUMBERS[1:2])
                with awsrec.recording() as bulk_calls:
                    send(NUMBERS[2:2 + bulk])
                later = clock.now_ms() + 3 * 3600 * 1000
                with awsrec.recording() as scheduled_calls:
                    send(NUMBERS[:bulk], send_at=clock.fmt(later).replace(" ", "T") + "Z")
                with awsrec.paused():  # the immediate sends are sent: only the held ones wait
                    for message in Message.query(acct.account_id):
                        if message.not_before is None:
                            messages.close(message, "sent")
                clock.freeze(later - 10 * 60 * 1000)  # a sweep 10 minutes before send_at
                with awsrec.recording() as release_calls:
                    outcome = sweeps.settle_due_messages()
                assert outcome["requeued"] == bulk, outcome
        finally:
            awsrec.uninstall()
            clock.reset()
    return {"single": _counted(single_calls), "bulk": _counted(bulk_calls), "bulk_size": bulk,
            "scheduled_accept": _counted(scheduled_calls), "release": _counted(release_calls)}


def scheduled_cost(counts: dict, prices: dict) -> dict:
    """Extra dollars per million scheduled messages over immediate sends (the release)."""
    p = prices["prices_usd"]
    n = counts["bulk_size"]
    release = counts["release"]
    sqs = release["by_op"].get("sqs.SendMessage", 0)
    extra_wru, extra_rru = release["wru"] / n, release["rru"] / n
    per_million = 1e6 * (extra_wru * p["dynamodb_on_demand_per_million_write_request_units"]
                         + extra_rru * p["dynamodb_on_demand_per_million_read_request_units"]
                         ) / 1e6
    return {"extra_wru_per_message": extra_wru, "extra_rru_per_message": extra_rru,
            "sqs_sends_per_message": sqs / n, "extra_usd_per_million": round(per_million, 4),
            "note": "holding costs nothing while waiting: the item is already stored; the sweep "
                    "Lambda runs every minute whatever is scheduled"}


def accept_time(runs: int) -> dict:
    import urllib.request

    from bench.scenarios import reset_caches
    from local_gateway import LocalGateway
    reset_caches()  # connections made under moto's in-process mock must not be reused
    seconds = []
    with LocalGateway(schedules=False) as gw:
        info = gw.demo_info
        for run in range(runs):
            body = json.dumps({"recipients": [f"+4917{run:02d}{n:06d}" for n in range(1000)],
                               "message": "bulk", "device_id": info["device_id"]}).encode()
            request = urllib.request.Request(
                gw.url + "/v1/messages", data=body, method="POST",
                headers={"Authorization": f"Bearer {info['api_key']}",
                         "Content-Type": "application/json"})
            start = time.perf_counter()
            with urllib.request.urlopen(request, timeout=300) as answer:
                accepted = json.loads(answer.read())["messages"]
            seconds.append(time.perf_counter() - start)
            assert len(accepted) == 1000 and all(m["status"] == "pending" for m in accepted)
    return {"runs": runs, "median_s": round(statistics.median(seconds), 2),
            "max_s": round(max(seconds), 2)}


def measure(quick: bool = False) -> dict:
    _env.prepare()
    from bench.cost import load_prices
    counts = aws_calls(bulk=20 if quick else 100)
    return {"aws_calls": counts, "scheduled": scheduled_cost(counts, load_prices()),
            "accept_1000": accept_time(1 if quick else 3)}


def markdown(r: dict) -> str:
    c = r["aws_calls"]
    n = c["bulk_size"]

    def ops(entry, per=1):
        return ", ".join(f"{op} {count / per:g}" for op, count in sorted(entry["by_op"].items()))
    s, a = r["scheduled"], r["accept_1000"]
    return "\n".join([
        "| v1 request (warm) | AWS calls | per recipient |", "|---|---|---|",
        f"| POST /v1/messages, 1 recipient | {c['single']['calls']} | {ops(c['single'])} |",
        f"| POST /v1/messages, {n} recipients | {c['bulk']['calls']} | {ops(c['bulk'], n)} |",
        f"| same, send_at in 3 h | {c['scheduled_accept']['calls']} | "
        f"{ops(c['scheduled_accept'], n)} |",
        f"| sweep releasing those {n} | {c['release']['calls']} | {ops(c['release'], n)} |",
        "",
        f"Scheduled sends: extra per message {s['extra_wru_per_message']:.2f} WRU + "
        f"{s['extra_rru_per_message']:.3f} RRU = ${s['extra_usd_per_million']:.2f} per million "
        f"over immediate sends ({s['note']}).",
        f"Time to accept 1,000 recipients over HTTP (local gateway, moto): median "
        f"{a['median_s']} s, max {a['max_s']} s over {a['runs']} run(s).",
    ])


if __name__ == "__main__":
    _env.run_command(measure, markdown, __doc__, "20-recipient bulk, one 1,000 run")
