"""Cost model: dollars per million outgoing SMS and per idle device-month on AWS, from the
counted AWS calls (bench/aws_calls.py), the measured handler overhead (bench/latency.py) and the
price table bench/prices.json (with its sources and date).

    python bench/cost.py [--json]      (counts calls itself; run_all.py passes its results in)

An outgoing SMS costs: the API's send_sms request + the device poll that returns its job + the
device's reports `sent` and `delivered`. Each request costs its front door (an API Gateway REST
or HTTP API request; nothing for a Lambda function URL), a Lambda request, Lambda duration (wall
time × memory: our own code's time plus the AWS calls' round trips, which Lambda bills while it
waits), the DynamoDB units and SQS requests counted, Lambda's log lines (none when the platform
lines are off, as deployed by default) and the answer's bytes out to the internet.
"""
import json
import math
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402

PRICES = Path(__file__).with_name("prices.json")
SMS_PATH = ["send_sms", "device: jobs poll returning a job", "device: report sent",
            "device: report delivered"]
IDLE_POLL = "device: jobs poll, idle (wait=1 s)"
HEARTBEAT = "device: heartbeat"
# The default configuration (README's deploy steps: the stack's function URL, agents in their
# default mode "auto", which finds direct polling offered by the stack's device role).
CREDENTIALS = "device: credentials (direct)"
DIRECT_SMS_PATH = {1: ["send_sms", "device: claim 1 job (direct)",
                       "device: report sent+delivered, 1 message"],
                   10: ["send_sms", "device: claim 10 jobs, one SQS receive (direct)",
                        "device: report sent+delivered, 10 messages"]}
# The sweeps' first look (chalicelib/domain/messages/first_look.py): a one-minute run reads each
# account's new messages. At a million SMS a month from one account a run finds 23; an idle
# account costs one Query a run and its share of the accounts Scan (counted as half a read
# unit, an eventually consistent Scan's least, per account: the most it can be).
FIRST_LOOK = "sweep: first look, 23 reported messages (one account, one run)"
FIRST_LOOK_IDLE = "sweep: first look, nothing new (one account, one run)"
FIRST_LOOK_MESSAGES = 23
# The owner's insight: count_outcomes sums a 15-minute tumbling window of the messages stream
# (342 outcomes at a million a month) and writes it in one transaction; Lambda invokes it for
# each batch (at most every 5 minutes: 3 a window) and once more at the window's end.
COUNT_WINDOW = "stream: count a 15-minute window of 342 outcomes (one account, one phone)"
COUNT_WINDOW_MESSAGES = 342
COUNT_INVOCATIONS_PER_WINDOW = 4
ACCOUNT_SCAN_RRU = 0.5
# What each front door costs per request (bench/prices.json).
FRONT_DOOR_PRICE = {"rest": "api_gateway_rest_per_million_requests",
                    "http": "api_gateway_http_per_million_requests",
                    "url": "lambda_function_url_per_million_requests"}
FRONT_DOOR_NAME = {"rest": "REST API", "http": "HTTP API", "url": "function URL"}
SQS_LONG_POLL_SECONDS = 20  # the most SQS allows per ReceiveMessage
SWEEP_SECONDS = 60  # stop_silent_devices runs every minute (app.py)
# Used only while the device routes are not on this branch: the calls the design implies
# (device token lookup, then the job/lease/report operations). Replaced by counts once merged.
ASSUMED = {
    "device: jobs poll returning a job": {"dynamodb.GetItem(devices)": 1,
                                          "sqs.ReceiveMessage": 1,
                                          "dynamodb.UpdateItem(messages)": 1},
    "device: report sent": {"dynamodb.GetItem(devices)": 1, "dynamodb.UpdateItem(messages)": 1,
                            "sqs.DeleteMessage": 1},
    "device: report delivered": {"dynamodb.GetItem(devices)": 1,
                                 "dynamodb.UpdateItem(messages)": 1},
    IDLE_POLL: {"dynamodb.GetItem(devices)": 1, "sqs.ReceiveMessage": 1},
    HEARTBEAT: {"dynamodb.GetItem(devices)": 1, "dynamodb.UpdateItem(devices)": 1},
}


def _assumed_summary(by_op: dict) -> dict:
    rru = sum(n * 0.5 for op, n in by_op.items() if ".GetItem" in op)
    wru = sum(n * (2 if "(devices)" in op else 1) for op, n in by_op.items()
              if ".UpdateItem" in op)  # the devices table has one GSI: its writes count twice
    return {"calls": sum(by_op.values()), "by_op": by_op, "rru": rru, "wru": wru,
            "sqs_requests": sum(n for op, n in by_op.items() if op.startswith("sqs."))}


def load_prices(path: Path = PRICES) -> dict:
    prices = json.loads(path.read_text())
    config = _env.ROOT / ".chalice" / "config.json"
    if config.exists():  # the deployment's memory size wins over the stated assumption
        conf = json.loads(config.read_text())
        memory = conf.get("lambda_memory_size") or next(
            (s.get("lambda_memory_size") for s in conf.get("stages", {}).values()
             if s.get("lambda_memory_size")), None)
        if memory:
            prices["assumptions"]["lambda_memory_mb"] = memory
            prices["assumptions"]["memory_from"] = ".chalice/config.json"
    return prices


class Model:
    def __init__(self, calls_result: dict, latency_result: dict | None, prices: dict):
        self.p = prices["prices_usd"]
        self.a = prices["assumptions"]
        self.gb = self.a["lambda_memory_mb"] / 1024
        self.gbs_price = self.p[f"lambda_per_gb_second_{self.a['lambda_architecture']}"]
        self.calls = {r["name"]: r for r in calls_result["rows"]}
        self.latency = {r["name"]: r for r in (latency_result or {}).get("rows", [])}

    def summary(self, name: str) -> tuple[dict, str]:
        row = self.calls.get(name, {})
        if "warm" in row and row.get("ok"):
            return row["warm"], "counted"
        if name in ASSUMED:
            return _assumed_summary(ASSUMED[name]), "assumed (device routes not merged yet)"
        raise KeyError(name)

    def own_ms(self, name: str) -> tuple[float, str]:
        row = self.latency.get(name, {})
        if row.get("own"):
            return max(0.0, row["own"]["median_ms"]), "measured"
        return float(self.a["own_code_ms_if_unmeasured"]), "assumed"

    def duration_ms(self, summary: dict, own_ms: float, wait_s: float = 0) -> float:
        latency = self.a["aws_latency_ms_per_call"]
        aws_ms = sum(n * latency.get(op.split(".")[0], 10) for op, n in summary["by_op"].items())
        return math.ceil(own_ms + aws_ms + wait_s * 1000)

    def request(self, name: str, wait_s: float = 0, api: str = "rest",
                platform_logs: bool = True) -> dict:
        """Dollars for one request of `name` through front door `api` (FRONT_DOOR_PRICE), by
        component; `platform_logs` False: Lambda's START/END/REPORT lines are off."""
        summary, source = self.summary(name)
        own, own_source = self.own_ms(name)
        billed_ms = self.duration_ms(summary, own, wait_s)
        p = self.p
        parts = {
            "api_gateway": p[FRONT_DOOR_PRICE[api]] / 1e6,
            "lambda_requests": p["lambda_per_million_requests"] / 1e6,
            "lambda_duration": billed_ms / 1000 * self.gb * self.gbs_price,
            "dynamodb": (summary["wru"] * p["dynamodb_on_demand_per_million_write_request_units"]
                         + summary["rru"] * p["dynamodb_on_demand_per_million_read_request_units"]
                         ) / 1e6,
            "sqs": summary["sqs_requests"] * p["sqs_standard_per_million_requests"] / 1e6,
            "logs": (self.a["log_bytes_per_invocation"] / 1e9
                     * p["cloudwatch_logs_ingestion_per_gb"]) if platform_logs else 0.0,
            "transfer": self.transfer_per_response(),
        }
        return {"name": name, "calls": summary["calls"], "source": source, "own_ms": own,
                "own_source": own_source, "billed_ms": billed_ms, "parts": parts,
                "total": sum(parts.values()), "wru": summary["wru"], "rru": summary["rru"]}

    def sweep_work(self, name: str, what: str, share: float = 1.0, extra_rru: float = 0.0
                   ) -> dict:
        """`share` of the DynamoDB units and Lambda time of sweep work `name`, done inside a
        run the schedule makes anyway (no request, front door, log line or answer of its
        own)."""
        summary, source = self.summary(name)
        billed_ms = self.duration_ms(summary, 1.0)
        p = self.p
        parts = {"api_gateway": 0.0, "lambda_requests": 0.0,
                 "lambda_duration": billed_ms / 1000 * self.gb * self.gbs_price,
                 "dynamodb": (summary["wru"]
                              * p["dynamodb_on_demand_per_million_write_request_units"]
                              + (summary["rru"] + extra_rru)
                              * p["dynamodb_on_demand_per_million_read_request_units"]) / 1e6,
                 "sqs": 0.0, "logs": 0.0, "transfer": 0.0}
        parts = {k: v * share for k, v in parts.items()}
        return {"name": what, "calls": summary["calls"], "source": source, "own_ms": 1.0,
                "billed_ms": billed_ms, "parts": parts, "total": sum(parts.values()),
                "wru": summary["wru"] * share, "rru": (summary["rru"] + extra_rru) * share}

    def counting_share(self) -> dict:
        """One SMS's share of the insight counters' stream window (COUNT_WINDOW): the
        transaction's units and time, and the window's invocations."""
        share = 1 / COUNT_WINDOW_MESSAGES
        work = self.sweep_work(COUNT_WINDOW, f"insight counters (its share of a 15-minute window "
                               f"of {COUNT_WINDOW_MESSAGES})", share=share)
        invocations = COUNT_INVOCATIONS_PER_WINDOW * share
        work["parts"]["lambda_requests"] = invocations * self.p["lambda_per_million_requests"] / 1e6
        work["parts"]["lambda_duration"] += (invocations * self.a["own_code_ms_if_unmeasured"]
                                             / 1000 * self.gb * self.gbs_price)
        work["total"] = sum(work["parts"].values())
        return work

    def transfer_per_response(self) -> float:
        return self.a["response_bytes_per_request"] / 1e9 * self.p["data_transfer_out_per_gb"]

    def per_million_sms(self) -> dict:
        steps = [self.request(name) for name in SMS_PATH]
        return {"steps": steps, "per_million": sum(s["total"] for s in steps) * 1e6,
                "http_api_per_million": sum(self.request(n, api="http")["total"]
                                            for n in SMS_PATH) * 1e6}

    def idle_device_month(self) -> dict:
        seconds = self.a["hours_per_month"] * 3600
        wait = self.a["device_poll_wait_seconds"]
        polls = seconds / wait
        beats = seconds / self.a["device_heartbeat_interval_seconds"]
        poll = self.request(IDLE_POLL, wait_s=wait)
        beat = self.request(HEARTBEAT)
        waiting_gbs = polls * wait * self.gb
        lines = [{"what": f"job long-polls ({wait} s each)", "per_month": polls, **poll,
                  "monthly": polls * poll["total"]},
                 {"what": f"heartbeats (every {self.a['device_heartbeat_interval_seconds']} s)",
                  "per_month": beats, **beat, "monthly": beats * beat["total"]}]
        total = sum(line["monthly"] for line in lines)
        alternatives = self._alternatives(seconds, beats * beat["total"])
        return {"lines": lines, "total": total, "polls": polls, "waiting_gb_s": waiting_gbs,
                "waiting_usd": waiting_gbs * self.gbs_price, "alternatives": alternatives}

    def default_config(self, deploy: dict, api: str = "url",
                       platform_logs: bool = False) -> dict:
        """The deployed default: function URL front door (`api`), Lambda's platform log lines
        off, direct polling, heartbeats every `heartbeat_seconds` (postponed by any other
        call), credentials every hour, reports of sent+delivered in one call. Per SMS for a
        lone message (batch 1) and for a busy phone (one SQS receive returns 10 jobs: one
        claim, one report call for the 10). The phone's own ReceiveMessage is one SQS request
        and one answer out to the internet."""
        seconds = self.a["hours_per_month"] * 3600
        sqs = self.p["sqs_standard_per_million_requests"] / 1e6 + self.transfer_per_response()
        door = {"api": api, "platform_logs": platform_logs}
        receives = seconds / SQS_LONG_POLL_SECONDS
        beat_s, window = deploy["heartbeat_seconds"], deploy["heartbeat_window_seconds"]
        beats = seconds / beat_s
        renewals = seconds / deploy["credentials_seconds"]
        beat = self.request(HEARTBEAT, **door)
        cred = self.request(CREDENTIALS, **door)
        runs = seconds / SWEEP_SECONDS
        idle_look = self.sweep_work(FIRST_LOOK_IDLE, "", extra_rru=ACCOUNT_SCAN_RRU)
        look = self.sweep_work(FIRST_LOOK, f"sweep's first look (its share of a run that "
                               f"reads {FIRST_LOOK_MESSAGES})", share=1 / FIRST_LOOK_MESSAGES)
        count = self.counting_share()
        lines = [{"what": f"device's own SQS long-polls ({SQS_LONG_POLL_SECONDS} s, no Lambda)",
                  "per_month": receives, "billed_ms": 0, "total": sqs,
                  "monthly": receives * sqs},
                 {"what": f"heartbeats (every {beat_s} s, {FRONT_DOOR_NAME[api]})",
                  "per_month": beats,
                  **beat, "monthly": beats * beat["total"]},
                 {"what": f"credential renewals (every {deploy['credentials_seconds']} s)",
                  "per_month": renewals, **cred, "monthly": renewals * cred["total"]},
                 {"what": "the sweeps' first look at its account, nothing new (one Query "
                          "and a share of the accounts Scan a minute; one account per phone)",
                  "per_month": runs, **idle_look, "monthly": runs * idle_look["total"]}]
        idle = sum(line["monthly"] for line in lines)
        busy_seconds = (beats * beat["billed_ms"] + renewals * cred["billed_ms"]) / 1000
        sms = {}
        for batch, path in DIRECT_SMS_PATH.items():
            steps = [self.request(name, **door) for name in path]
            per_sms = steps[0]["total"] + (sqs + sum(s["total"] for s in steps[1:])) / batch
            per_sms += look["total"] + count["total"]
            steps += [look, count]
            sms[batch] = {"steps": steps, "batch": batch, "per_million": per_sms * 1e6}
        return {
            "idle_lines": lines, "idle_total": idle, "sms": sms,
            "offline_detection_seconds": window + SWEEP_SECONDS,
            "offline_shown_seconds": window,
            "lambda_concurrency_per_1000_idle": 1000 * busy_seconds / seconds,
            "front_door": FRONT_DOOR_NAME[api], "platform_logs": platform_logs, **deploy}

    def before_concurrency_per_1000_idle(self) -> float:
        """Gateway long-polls back to back: each idle phone holds a Lambda for the whole wait."""
        wait = self.a["device_poll_wait_seconds"]
        poll_ms = self.request(IDLE_POLL, wait_s=wait)["billed_ms"]
        beat_ms = self.request(HEARTBEAT)["billed_ms"]
        per_second = poll_ms / 1000 / wait + beat_ms / 1000 / self.a[
            "device_heartbeat_interval_seconds"]
        return 1000 * min(1.0, per_second)

    def _alternatives(self, seconds, heartbeat_monthly) -> list[dict]:
        p = self.p
        out = []
        for wait, pause in ((20, 0), (5, 0), (1, 4), (0, 20)):
            polls = seconds / (wait + pause)
            one = self.request(IDLE_POLL, wait_s=wait)
            out.append({"what": f"Lambda waits {wait} s" + (f", device pauses {pause} s between "
                                                          "polls" if pause else ""),
                        "monthly": polls * one["total"] + heartbeat_monthly,
                        "delivery": "immediate while waiting" if not pause else
                        f"up to {pause} s late"})
        refresh = self.request(HEARTBEAT)["total"] * self.a["hours_per_month"]
        direct = seconds / 20 * p["sqs_standard_per_million_requests"] / 1e6
        out.append({"what": "device long-polls its SQS queue directly (20 s) with vended "
                            "credentials scoped to its queue, refreshed hourly by one Lambda call",
                    "monthly": direct + refresh + heartbeat_monthly,
                    "delivery": "immediate (SQS long poll)"})
        minutes = seconds / 60
        iot = minutes * p["iot_core_connectivity_per_million_minutes"] / 1e6 + (
            seconds / self.a["device_heartbeat_interval_seconds"]
            * p["iot_core_messaging_per_million_messages"] / 1e6)
        out.append({"what": "push over AWS IoT Core MQTT (connection minutes + keep-alive "
                            "messages; heartbeats over MQTT too)",
                    "monthly": iot, "delivery": "immediate (push)"})
        return out


def deployed_settings() -> dict:
    """Heartbeat interval and window, and credential lifetime, of the deployed stage (prod in
    .chalice/config.json, defaults from chalicelib/core/settings.py)."""
    conf = json.loads((_env.ROOT / ".chalice" / "config.json").read_text())
    env = {**conf.get("environment_variables", {}),
           **conf["stages"]["prod"].get("environment_variables", {})}
    window = int(env.get("SMSGW_HEARTBEAT_WINDOW_SECONDS", 120))
    return {"heartbeat_window_seconds": window,
            "heartbeat_seconds": int(env.get("SMSGW_HEARTBEAT_SECONDS", max(1, window // 3))),
            "credentials_seconds": min(3600, max(900, int(env.get(
                "SMSGW_DEVICE_CREDENTIALS_SECONDS", 3600))))}


# Webhooks: what the counts of bench/webhooks.py do not fix. A delivery log item (event body +
# attempts, under 2 KB) is 2 WRU, and its `by-time` index copy 2 more.
WEBHOOK_LOG_WRU = 4
WEBHOOK_RECEIVER_MS = 100  # the receiver's answer time, billed while the queue function waits
WEBHOOK_OWN_MS = 5  # our code per delivery (signing, JSON), like other handlers'
WEBHOOK_BATCHES = {"trickle (every event alone)": (1, 1),
                   "busy (stream batches of 10 records, queue batches of 10)": (10, 10)}


def per_million_events(prices: dict, counted: dict) -> list[dict]:
    """Dollars per million webhook events delivered first time to one endpoint, from the calls
    bench/webhooks.py counted (per event) and the batching each traffic level gets."""
    p, a = prices["prices_usd"], prices["assumptions"]
    gb = a["lambda_memory_mb"] / 1024
    gbs = p[f"lambda_per_gb_second_{a['lambda_architecture']}"]
    latency = a["aws_latency_ms_per_call"]
    records_per_event = counted["stream_records"] / counted["events"]
    rows = []
    for what, (stream_batch, queue_batch) in WEBHOOK_BATCHES.items():
        stream_invocations = records_per_event / stream_batch
        queue_invocations = 1 / queue_batch
        sqs = 1 / queue_batch + 2 / queue_batch  # SendMessageBatch; the mapping's receive+delete
        stream_ms = stream_invocations * (WEBHOOK_OWN_MS + latency["sqs"]) + 0  # one batch send
        queue_ms = WEBHOOK_OWN_MS + WEBHOOK_RECEIVER_MS + latency["dynamodb"]  # per delivery
        parts = {
            "lambda_requests": (stream_invocations + queue_invocations)
            * p["lambda_per_million_requests"],
            "lambda_duration": (stream_ms + queue_ms) / 1000 * gb * gbs * 1e6,
            "dynamodb": WEBHOOK_LOG_WRU * p["dynamodb_on_demand_per_million_write_request_units"],
            "sqs": sqs * p["sqs_standard_per_million_requests"],
            "logs": (stream_invocations + queue_invocations) * a["log_bytes_per_invocation"]
            / 1e9 * p["cloudwatch_logs_ingestion_per_gb"] * 1e6,
        }
        rows.append({"what": what, "parts": parts, "total": sum(parts.values())})
    return rows


# An idle SMSGate app phone (docs/android-app.md): the app reconnects GET /mobile/v1/events 5 s
# after each answer (SSEManager.kt) and pulls GET /message on every connection. The deployed
# default answers /events at once (SMSGW_MOBILE_EVENTS_HOLD_SECONDS=0); a hold waits on the
# queue in Lambda first. Liveness writes and device reads are the surface's caches' (at most one
# `last_seen` write per SEEN_REFRESH_SECONDS, one device read per AUTH_CACHE_SECONDS).
APP_RECONNECT_SECONDS = 5
APP_EVENTS = "app: events, answered at once"
APP_PULL = "app: pull, idle"  # the jobs hint clear: one consistent read, no SQS receive
APP_PULL_CLEARING = "app: pull, empty receive clearing the jobs hint"
APP_CLEAR_WAIT_SECONDS = 1  # job_hint.RECEIVE_SECONDS: that receive long-polls, billed
APP_CACHE_SECONDS = 30  # devices.SEEN_REFRESH_SECONDS and AUTH_CACHE_SECONDS, deployed
APP_HOLDS = (0, 5, 20)


def _app_variants(model: Model, api: str, platform_logs: bool) -> list[dict]:
    seconds = model.a["hours_per_month"] * 3600
    p = model.p
    door = {"api": api, "platform_logs": platform_logs}
    write = p["dynamodb_on_demand_per_million_write_request_units"] / 1e6
    read = 0.5 * p["dynamodb_on_demand_per_million_read_request_units"] / 1e6
    refreshes = seconds / APP_CACHE_SECONDS
    look = model.sweep_work(FIRST_LOOK_IDLE, "", extra_rru=ACCOUNT_SCAN_RRU)
    variants = []
    for hold in APP_HOLDS:
        cycles = seconds / (APP_RECONNECT_SECONDS + hold)
        if hold:  # the hold: one SQS long poll and its poll-slot write, billed while it waits
            events = model.request(APP_PULL, wait_s=hold, **door)
            events_total = events["total"] + write
        else:
            events = model.request(APP_EVENTS, **door)
            events_total = events["total"]
        pull = model.request(APP_PULL, **door)
        lines = [{"what": f"GET /events ({'held ' + str(hold) + ' s' if hold else 'at once'})",
                  "per_month": cycles, "billed_ms": events["billed_ms"],
                  "total": events_total, "monthly": cycles * events_total},
                 {"what": "GET /message on each connection (jobs hint clear: one "
                          "consistent device read, no SQS receive)",
                  "per_month": cycles, "billed_ms": pull["billed_ms"], "total": pull["total"],
                  "monthly": cycles * pull["total"]},
                 {"what": f"liveness write + device read (each every {APP_CACHE_SECONDS} s)",
                  "per_month": refreshes, "billed_ms": 0, "total": write + read,
                  "monthly": refreshes * (write + read)},
                 {"what": "the sweeps' first look at its account (as for an agent)",
                  "per_month": seconds / SWEEP_SECONDS, "billed_ms": look["billed_ms"],
                  "total": look["total"], "monthly": seconds / SWEEP_SECONDS * look["total"]}]
        variants.append({"hold": hold, "lines": lines, "requests": 2 * cycles,
                         "total": sum(line["monthly"] for line in lines)})
    return variants


def app_phone_month(model: Model) -> dict:
    """Per idle app phone-month: the deployed front door (function URL, platform log lines off)
    for each hold, and the default through an HTTP API for comparison."""
    variants = _app_variants(model, "url", False)
    return {"variants": variants, "default": variants[0]["total"],
            "http_api_default": _app_variants(model, "http", False)[0]["total"],
            "hint_per_million_sms": app_hint_per_million_sms(model)}


def app_hint_per_million_sms(model: Model) -> dict:
    """What the jobs hint adds to SMS sent to app phones (agents' sends make no call of it):
    the ring, one UpdateItem of the device before the job is queued, and one later pull that
    receives nothing and clears the hint instead of an idle pull (at most one per send; one per
    burst when sends come closer than the app's 5 s reconnect)."""
    door = {"api": "url", "platform_logs": False}
    p = model.p
    ring = (p["dynamodb_on_demand_per_million_write_request_units"] / 1e6
            + model.a["aws_latency_ms_per_call"]["dynamodb"] / 1000 * model.gb * model.gbs_price)
    clearing = model.request(APP_PULL_CLEARING, wait_s=APP_CLEAR_WAIT_SECONDS, **door)
    idle = model.request(APP_PULL, **door)
    return {"ring": ring * 1e6, "clearing_pull": (clearing["total"] - idle["total"]) * 1e6,
            "total": (ring + clearing["total"] - idle["total"]) * 1e6,
            "clearing_calls": clearing["calls"], "idle_pull_calls": idle["calls"]}


def app_phone_markdown(a: dict) -> str:
    lines = ["**Idle SMSGate app phone, per month** (`/mobile/v1`, function URL, platform "
             "log lines off; the app reconnects 5 s after each answer and pulls on each):\n",
             "| GET /events | requests a month | per app phone-month | goal |",
             "|---|---:|---:|---|"]
    for v in a["variants"]:
        how = f"held {v['hold']} s" if v["hold"] else "**answered at once (default)**"
        lines.append(f"| {how} | {v['requests']:,.0f} | {_usd(v['total'])} | ≤ $0.50 |")
    default = a["variants"][0]
    lines += ["", "The default's lines:\n", "| what | per month | billed ms each | per month |",
              "|---|---:|---:|---:|"]
    for line in default["lines"]:
        lines.append(f"| {line['what']} | {line['per_month']:,.0f} | {line['billed_ms']} | "
                     f"{_usd(line['monthly'])} |")
    lines.append(f"\nThrough an API Gateway HTTP API instead: {_usd(a['http_api_default'])} "
                 "(default, answered at once).")
    hint = a["hint_per_million_sms"]
    lines.append(f"\nThe jobs hint adds to each SMS sent to an app phone (not to an agent's): "
                 f"one UpdateItem of the device after queueing ({_usd(hint['ring'])} per "
                 f"million) and one pull that receives nothing and clears it, in place of an "
                 f"idle pull ({_usd(hint['clearing_pull'])} per million): "
                 f"**{_usd(hint['total'])} per million SMS**, at most.")
    return "\n".join(lines)


# Rows kept next to the default for comparison (issue 13): the HTTP API with platform log lines
# (the default until the function URL), and the function URL with platform log lines on.
DEFAULT_VARIANTS = {"http_api": {"api": "http", "platform_logs": True},
                    "function_url_platform_logs": {"api": "url", "platform_logs": True}}


def compute(calls_result: dict, latency_result: dict | None = None,
            prices: dict | None = None, webhook_calls: dict | None = None) -> dict:
    prices = prices or load_prices()
    model = Model(calls_result, latency_result, prices)
    result = {"prices": prices, "sms": model.per_million_sms(), "idle": model.idle_device_month()}
    if webhook_calls:
        result["webhook_calls"] = webhook_calls
        result["events"] = per_million_events(prices, webhook_calls)
    try:
        deploy = deployed_settings()
        default = model.default_config(deploy)
        variants = {name: model.default_config(deploy, **door)
                    for name, door in DEFAULT_VARIANTS.items()}
    except KeyError as exc:  # a scenario the default needs did not run (unavailable)
        result["default_unavailable"] = f"not counted: {exc}"
        return result
    old_window = int(os.environ.get("SMSGW_HEARTBEAT_WINDOW_SECONDS", 120))
    result.update({
        "default": default,
        # The output contract (issue 13): the configuration README's deploy steps produce.
        "default_idle_device_month_usd": default["idle_total"],
        "default_per_million_sms_usd": default["sms"][1]["per_million"],
        "default_per_million_sms_batched_usd": default["sms"][10]["per_million"],
        # The same deployment through the other front door, or with the platform log lines on.
        "variants": {name: {"idle_device_month_usd": v["idle_total"],
                            "per_million_sms_usd": v["sms"][1]["per_million"],
                            "per_million_sms_batched_usd": v["sms"][10]["per_million"],
                            "front_door": v["front_door"], "platform_logs": v["platform_logs"]}
                     for name, v in variants.items()},
        "before": {"idle_device_month_usd": result["idle"]["total"],
                   "per_million_sms_usd": result["sms"]["per_million"],
                   "offline_detection_seconds": old_window + SWEEP_SECONDS,
                   "lambda_concurrency_per_1000_idle": model.before_concurrency_per_1000_idle()},
    })
    try:
        result["app_phone"] = app_phone_month(model)
    except KeyError as exc:  # the app scenarios did not run
        result["app_phone_unavailable"] = f"not counted: {exc}"
    return result


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 0.1 else f"${x:,.4f}"


def markdown(r: dict) -> str:
    pr, a = r["prices"], r["prices"]["assumptions"]
    sms = r["sms"]
    lines = [f"Prices: `bench/prices.json` ({pr['region']}, recorded {pr['recorded']}; "
             f"sources listed there). Lambda {a['lambda_memory_mb']} MB {a['lambda_architecture']}"
             f"; billed duration = own code (handler time minus its AWS calls, measured locally) + "
             f"{a['aws_latency_ms_per_call']['dynamodb']} ms per DynamoDB call + "
             f"{a['aws_latency_ms_per_call']['sqs']} ms per SQS call (assumed in-region "
             f"latency), rounded up to 1 ms.\n",
             "**Per million outgoing SMS** (API Gateway REST API; data out = the answer's "
             f"{a['response_bytes_per_request']} bytes to the internet):\n",
             _STEP_HEAD + " source |", _STEP_RULE + "---|"]
    for s in sms["steps"]:
        lines.append(f"{_step_row(s)} calls {s['source']}, own time {s['own_source']} |")
    lines.append("| **one SMS, end to end** | | | | | | | | | | "
                 f"**{_usd(sms['per_million'])}** | |")
    lines.append(f"\nWith an HTTP API instead of the REST API: {_usd(sms['http_api_per_million'])}"
                 " per million SMS (API Gateway is the largest line).\n")
    idle = r["idle"]
    lines += ["**Idle device, per month** (a phone connected 24/7 with no traffic):\n",
              "| what | per month | billed ms each | cost per million | per month |",
              "|---|---:|---:|---:|---:|"]
    for line in idle["lines"]:
        lines.append(f"| {line['what']} | {line['per_month']:,.0f} | {line['billed_ms']:,} | "
                     f"{_usd(line['total'] * 1e6)} | {_usd(line['monthly'])} |")
    lines.append(f"| **idle device-month** | | | | **{_usd(idle['total'])}** |")
    lines.append(
        f"\nThe long-poll is billed as Lambda duration while it waits: {idle['polls']:,.0f} "
        f"polls × {a['device_poll_wait_seconds']} s × {a['lambda_memory_mb'] / 1024:g} GB = "
        f"{idle['waiting_gb_s']:,.0f} GB-s = **{_usd(idle['waiting_usd'])} per device-month** "
        f"of the {_usd(idle['total'])}. Shorter Lambda waits do not help while the device "
        "polls back to back (the same seconds are billed, in more requests); only time the "
        "device spends *not* inside a Lambda does, at the price of late jobs — or taking "
        "Lambda out of the wait altogether.\n")
    lines += ["Alternatives for the idle device (same heartbeats unless stated):\n",
              "| how the device waits for jobs | per device-month | job delivery |",
              "|---|---:|---|"]
    for alt in idle["alternatives"]:
        lines.append(f"| {alt['what']} | {_usd(alt['monthly'])} | {alt['delivery']} |")
    if r.get("events"):
        counted = r["webhook_calls"]
        lines += ["", "**Per million webhook events** (one endpoint, answered first time in "
                  f"{WEBHOOK_RECEIVER_MS} ms; calls counted by bench/webhooks.py: "
                  f"{sum(counted['per_event'].values()):.2f} AWS calls per event, "
                  f"{counted['stream_records'] / counted['events']:.1f} stream records per "
                  "event; stream reads by Lambda are free; the request path pays nothing):\n",
                  "| traffic | Lambda req | Lambda GB-s | DynamoDB | SQS | logs | total |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for row in r["events"]:
            q = row["parts"]
            lines.append(f"| {row['what']} | {_usd(q['lambda_requests'])} | "
                         f"{_usd(q['lambda_duration'])} | {_usd(q['dynamodb'])} | "
                         f"{_usd(q['sqs'])} | {_usd(q['logs'])} | **{_usd(row['total'])}** |")
        lines.append("\nA failed attempt costs about the same again (one more delivery); a long "
                     "wait costs one SQS hop per 15 minutes (a 10 h wait: 40 requests, $0.000016).")
    if "default" in r:
        lines.append("\n" + default_markdown(r))
    if "app_phone" in r:
        lines.append("\n" + app_phone_markdown(r["app_phone"]))
    return "\n".join(lines)


_STEP_HEAD = ("| step | AWS calls | billed ms | front door | Lambda req | Lambda GB-s | DynamoDB | "
              "SQS | logs | data out | per call, per million |")
_STEP_RULE = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"


def _step_row(s: dict) -> str:
    p = {k: v * 1e6 for k, v in s["parts"].items()}
    return (f"| {s['name']} | {s['calls']} | {s['billed_ms']} | {_usd(p['api_gateway'])} | "
            f"{_usd(p['lambda_requests'])} | {_usd(p['lambda_duration'])} | "
            f"{_usd(p['dynamodb'])} | {_usd(p['sqs'])} | {_usd(p['logs'])} | "
            f"{_usd(p['transfer'])} | {_usd(s['total'] * 1e6)} |")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min"


def default_markdown(r: dict) -> str:
    """The deployed default next to the old figures (issue 13's before/after table)."""
    d, before = r["default"], r["before"]
    lines = [
        "### The default deployment (README's deploy steps) vs before\n",
        "Default: the Lambda function URL (output `FunctionUrl`, payload 2.0; no charge per "
        "request) for applications and phones, Lambda's START/END/REPORT log lines off "
        "(`PlatformLogLevel=WARN`), agents in mode `auto` find direct polling (the "
        "stack's device role) and long-poll their own SQS queue, heartbeats every "
        f"{d['heartbeat_seconds']} s postponed by any other call, credentials renewed every "
        f"{d['credentials_seconds']} s, `sent`+`delivered` reported in one call. Before: REST "
        "API, gateway long-polls (20 s), heartbeats every 40 s.\n",
        "| figure | before | default now | target |", "|---|---:|---:|---:|",
        f"| idle phone-month | {_usd(before['idle_device_month_usd'])} | "
        f"**{_usd(r['default_idle_device_month_usd'])}** | ≤ $0.10 |",
        f"| per million SMS, one message at a time | {_usd(before['per_million_sms_usd'])} | "
        f"**{_usd(r['default_per_million_sms_usd'])}** | ≤ $5 |",
        f"| per million SMS, busy phone (10 jobs per SQS receive, 10 per report call) | "
        f"{_usd(before['per_million_sms_usd'])} | "
        f"**{_usd(r['default_per_million_sms_batched_usd'])}** | ≤ $5 |",
        f"| offline detection (window + 1-min sweep) | "
        f"{_minutes(before['offline_detection_seconds'])} | "
        f"**{_minutes(d['offline_detection_seconds'])}** | ≤ 10 min |",
        f"| Lambda concurrency held by 1,000 idle phones | "
        f"{before['lambda_concurrency_per_1000_idle']:,.0f} | "
        f"**{d['lambda_concurrency_per_1000_idle']:.3f}** | ≈ 0 |",
        "\nThe same deployment with another front door or the platform log lines on:\n",
        "| variant | idle phone-month | per million SMS, lone | per million SMS, busy |",
        "|---|---:|---:|---:|",
        f"| **default: function URL, platform lines off** | "
        f"**{_usd(r['default_idle_device_month_usd'])}** | "
        f"**{_usd(r['default_per_million_sms_usd'])}** | "
        f"**{_usd(r['default_per_million_sms_batched_usd'])}** |"]
    for v in r["variants"].values():
        lines.append(f"| {v['front_door']}, platform lines "
                     f"{'on' if v['platform_logs'] else 'off'} | "
                     f"{_usd(v['idle_device_month_usd'])} | {_usd(v['per_million_sms_usd'])} | "
                     f"{_usd(v['per_million_sms_batched_usd'])} |")
    lines += [
        "\nIdle phone-month, default:\n",
        "| what | per month | billed ms each | cost per million | per month |",
        "|---|---:|---:|---:|---:|"]
    for line in d["idle_lines"]:
        lines.append(f"| {line['what']} | {line['per_month']:,.0f} | {line['billed_ms']:,} | "
                     f"{_usd(line['total'] * 1e6)} | {_usd(line['monthly'])} |")
    lines.append(f"| **idle phone-month** | | | | **{_usd(d['idle_total'])}** |")
    for batch, sms in d["sms"].items():
        lines += [f"\nOne SMS, default, {batch} job(s) per SQS receive and report call "
                  "(the device's ReceiveMessage adds one SQS request and its answer's bytes "
                  "per receive):\n", _STEP_HEAD, _STEP_RULE]
        lines += [_step_row(s) for s in sms["steps"]]
        lines.append(f"| **per SMS** (claim, receive and report shared by {batch}; the "
                     "sweep's row is per SMS already) | | | | | | "
                     f"| | | | **{_usd(sms['per_million'])}** |")
    return "\n".join(lines)


def main():
    import click

    @click.command()
    @click.option("--json", "as_json", is_flag=True, help="Print the raw figures as JSON.")
    def cli(as_json):
        """Dollars per million SMS and per idle device-month (counts AWS calls first)."""
        from bench import aws_calls, webhooks
        result = compute(aws_calls.measure(quick=True),
                         webhook_calls=webhooks._part("calls", quick=True))
        click.echo(json.dumps(result) if as_json else markdown(result))
    cli()


if __name__ == "__main__":
    main()
