"""Webhooks: AWS calls per event (counted, in-process on moto), time from a device's report to
the webhook arriving at a receiver on 127.0.0.1 (the local gateway, median and p99), and the
inputs of the cost model's "per million events" (bench/cost.py).

    python bench/webhooks.py [--quick] [--json]

Calls are counted inside the two functions only (emit_events on stream batches, deliver_webhooks
on queue batches); the reads of the streams and the queue are what Lambda's event source
mappings do (stream reads are free; SQS receives/deletes are billed and counted apart).
"""
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402

MESSAGES = 20  # each: pending, processing, sent, delivered = 4 stream records, 2 events


def _recording(counter: Counter):
    import botocore.client
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation, params):
        table = params.get("TableName", "").rsplit("-", 1)[-1] if isinstance(params, dict) \
            else ""
        name = f"{self.meta.service_model.service_name}.{operation}"
        counter[name + (f"({table})" if table else "")] += 1
        return original(self, operation, params)
    return botocore.client.BaseClient, original, recording


def count_calls(messages: int = MESSAGES) -> dict:
    """Calls made by the stream and queue functions for `messages` delivered SMS (2 events
    each) to one endpoint, with warm caches as in a busy container, and per event."""
    _env.prepare()
    import moto

    from bench.webhook_receiver import Receiver
    from chalicelib.core import settings
    from chalicelib.domain import accounts, devices, jobs, outbox, webhooks
    from localgw import events as local_events
    settings.install(settings.current().replace(webhook_allow_private=True))
    receiver = Receiver()
    stream_calls, queue_calls, esm = Counter(), Counter(), Counter()
    try:
        with moto.mock_aws():
            from chalicelib.storage import aws, tables
            aws.reset()
            tables.create_all()
            pumps = local_events.EventPumps()
            account = accounts.create_account("Bench")
            device, _ = devices.register(account.account_id, "Phone", sim_count=1)
            webhooks.add(account.account_id, receiver.url, ["sms.sent", "sms.delivered"])
            for n in range(messages):
                accepted = outbox.submit(account.account_id, outbox.SendRequest(
                    device=device, phone_number=f"+1415555{n:04d}", text="hi"))
                jobs.lease_from_queue(device, 0, 1)
                jobs.report(device, accepted.message.message_id, "sent")
                jobs.report(device, accepted.message.message_id, "delivered")
            webhooks.subscribers(account.account_id)  # a warm container's cache
            webhooks.queue_url()
            stream_records = _through(pumps, "emit_events", pumps.pump_streams, stream_calls)
            deliveries = 0
            while True:
                handled = _through(pumps, "deliver_webhooks", pumps.pump_queue, queue_calls)
                if not handled:
                    break
                deliveries += handled
                esm["sqs.ReceiveMessage"] += 1
                esm["sqs.DeleteMessageBatch"] += 1
    finally:
        receiver.close()
    events = len(receiver.events)
    return {"messages": messages, "stream_records": stream_records, "events": events,
            "deliveries": deliveries, "stream_function": dict(stream_calls),
            "queue_function": dict(queue_calls), "event_source_sqs": dict(esm),
            "per_event": {name: n / events for name, n in
                          (stream_calls + queue_calls + esm).items()}}


def _through(pumps, handler_name, step, counter) -> int:
    """Run one pump step, counting only the calls the app's handler makes."""
    base, original, recording = _recording(counter)
    handler = getattr(pumps.app, handler_name)

    def counted(event, context):
        base._make_api_call = recording
        try:
            return handler(event, context)
        finally:
            base._make_api_call = original
    setattr(pumps.app, handler_name, counted)
    try:
        return step()
    finally:
        setattr(pumps.app, handler_name, handler)


def report_to_arrival(samples: int) -> dict:
    """Seconds from a device's `sent` report (HTTP answer received) to the signed webhook
    arriving at a receiver, through the local gateway (moto server, event pumps)."""
    import os
    _env.prepare("benchwh")
    import requests

    from bench.webhook_receiver import Receiver
    from local_gateway import LocalGateway
    receiver = Receiver()
    gateway = LocalGateway(demo=True, agent=False,
                           env={"SMSGW_WEBHOOK_ALLOW_PRIVATE": "1",
                                "SMSGW_LOCAL_SCHEDULE_CAP_SECONDS": "60"})
    try:
        gateway.start()
        os.environ["SMSGW_WEBHOOK_ALLOW_PRIVATE"] = "1"
        from chalicelib.core import settings
        from chalicelib.domain import webhooks
        settings.install(settings.current().replace(webhook_allow_private=True))
        info = gateway.demo_info
        hook = webhooks.add(info["account_id"], receiver.url, ["sms.sent"])
        receiver.secrets.append(hook.secret)
        auth = {"Authorization": f"Bearer {info['device_token']}"}
        session = requests.Session()
        latencies = []
        for n in range(samples):
            sent = session.post(f"{gateway.url}/myAPI.php", data={
                "api_key": info["api_key"], "action": "send_sms",
                "device_uid": info["device_uid"], "phone_number": f"+1415555{n:04d}",
                "message": f"bench {n}"}, timeout=10).json()
            message_id = sent["data"]["message_id"]
            jobs = session.get(f"{gateway.url}/device/jobs?wait=5", headers=auth,
                               timeout=15).json()["jobs"]
            assert jobs and jobs[0]["message_id"] == message_id, jobs
            session.post(f"{gateway.url}/device/reports", json={"reports": [
                {"message_id": message_id, "status": "sent"}]}, headers=auth, timeout=10)
            reported = time.time()

            def arrived(r, mid=message_id):
                return any(e["data"]["message_id"] == mid for e in r.events.values())
            assert receiver.wait_for(arrived, 30), f"event for {message_id} never arrived"
            event = next(e for e in receiver.events.values()
                         if e["data"]["message_id"] == message_id)
            latencies.append(receiver.arrived_at[event["id"]] - reported)
        assert receiver.bad_signatures == 0
    finally:
        gateway.stop()
        receiver.close()
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return {"samples": samples, "median_s": statistics.median(ordered), "p99_s": p99,
            "max_s": ordered[-1]}


def _part(name: str, quick: bool) -> dict:
    """One part in a fresh interpreter (moto in-process and the local gateway's moto server
    cannot share one process's cached AWS connections)."""
    import json
    import subprocess
    out = subprocess.run([sys.executable, __file__, "--part", name, "--json"]
                         + (["--quick"] if quick else []), cwd=_env.ROOT, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


PARTS = {"calls": lambda quick: count_calls(10 if quick else MESSAGES),
         "latency": lambda quick: report_to_arrival(20 if quick else 100)}


def measure(quick: bool = False) -> dict:
    return {name: _part(name, quick) for name in PARTS}


def markdown(r: dict) -> str:
    c, lat = r["calls"], r["latency"]
    lines = [f"{c['messages']} SMS sent and delivered -> {c['stream_records']} stream records -> "
             f"{c['events']} events (sms.sent, sms.delivered) -> {c['deliveries']} deliveries to "
             "one endpoint, all answered 200, warm caches.\n",
             "| AWS call | stream function | queue function | SQS event source | per event |",
             "|---|---:|---:|---:|---:|"]
    names = sorted(set(c["stream_function"]) | set(c["queue_function"])
                   | set(c["event_source_sqs"]))
    for name in names:
        lines.append(f"| {name} | {c['stream_function'].get(name, 0)} | "
                     f"{c['queue_function'].get(name, 0)} | "
                     f"{c['event_source_sqs'].get(name, 0)} | {c['per_event'][name]:.2f} |")
    lines.append(f"| **total** | | | | **{sum(c['per_event'].values()):.2f}** |")
    lines.append("\nThe request path (the device's report) makes **0** extra AWS calls: the "
                 "event is the stream record of the write it already makes.\n")
    lines.append(f"Device report -> webhook arrival on the local gateway, {lat['samples']} "
                 f"sequential SMS: median **{lat['median_s'] * 1000:.0f} ms**, p99 "
                 f"**{lat['p99_s'] * 1000:.0f} ms**, max {lat['max_s'] * 1000:.0f} ms.")
    return "\n".join(lines)


def main():
    import json

    import click

    @click.command(help=__doc__.splitlines()[0])
    @click.option("--quick", is_flag=True, help="10 SMS / 20 samples.")
    @click.option("--json", "as_json", is_flag=True, help="Print the raw figures as JSON.")
    @click.option("--part", type=click.Choice(sorted(PARTS)), hidden=True)
    def cli(quick, as_json, part):
        result = PARTS[part](quick) if part else measure(quick)
        click.echo(json.dumps(result) if as_json or part else markdown(result))
    cli()


if __name__ == "__main__":
    main()
