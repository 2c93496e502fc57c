"""The requests the benchmarks make: every public action and every device call, each with the
set-up it needs before it (not measured) and a way to say "not available" when the code that
answers it is not on this branch yet.

The same scenarios run in-process (chalice.test.Client, for exact AWS call counts) and over HTTP
against the local gateway (for latency). Device-protocol payloads are written from the design
of the device branch (chalicelib/surfaces/device_api.py): batches `{"reports": [...]}`,
`{"messages": [...]}`, `GET /device/jobs?wait=&max=` answering `{"jobs": [...]}`.
"""
import itertools
import json
import re
import sys
from dataclasses import dataclass
from urllib.parse import urlencode

PHONE = "+8801712345678"
_numbers = itertools.count(100000)
DEVICE_JOBS = "/device/jobs"
DEVICE_REPORTS = "/device/reports"
DEVICE_INCOMING = "/device/incoming"
DEVICE_HEARTBEAT = "/device/heartbeat"
DEVICE_CREDENTIALS = "/device/credentials"
DEVICE_CLAIMS = "/device/claims"


def fresh_number() -> str:
    """A different valid mobile number per call (OTP sends have per-number cooldowns and caps)."""
    return f"+88017{next(_numbers) % 100000000:08d}"


@dataclass
class Reply:
    status: int
    body: object
    text: str

    @property
    def ok(self) -> bool:
        if not 200 <= self.status < 300:
            return False
        if isinstance(self.body, dict) and "response" in self.body and "status" in self.body:
            return self.body["status"] == "success"
        return True

    def problem(self) -> str:
        if isinstance(self.body, dict) and self.body.get("message"):
            return f"HTTP {self.status}: {self.body['message']}"[:160]
        return f"HTTP {self.status}: {self.text[:120]}"


class ChaliceInvoker:
    """Requests through chalice.test.Client: the real app, in-process."""

    def __init__(self, client):
        self.client = client

    def request(self, method, path, query=None, form=None, json_body=None, headers=None):
        headers = dict(headers or {})
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        if query:
            path = f"{path}?{urlencode(query)}"
        answer = self.client.http.request(method, path, headers=headers, body=body)
        text = answer.body.decode() if isinstance(answer.body, bytes) else str(answer.body)
        return Reply(answer.status_code, _json(text), text)


class HttpInvoker:
    """Requests over HTTP (the local gateway), one keep-alive session."""

    def __init__(self, base_url):
        import requests
        self.base = base_url
        self.session = requests.Session()

    def request(self, method, path, query=None, form=None, json_body=None, headers=None):
        answer = self.session.request(method, self.base + path, params=query, data=form,
                                      json=json_body, headers=headers, timeout=60)
        return Reply(answer.status_code, _json(answer.text), answer.text)


def _json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass
class Device:
    device_id: int
    device_uid: str
    token: str
    queue_url: str


class Fixture:
    """One account, its key, four devices (sends, OTP, device protocol, idle) and seeded
    history: `history` outgoing and incoming messages (100: get_history limit=100 reads full
    pages). Built with the domain modules directly, before any measurement."""

    def __init__(self, history: int = 100):
        from chalicelib.core import ids
        from chalicelib.domain import accounts, devices, outbox
        from chalicelib.storage import tables
        self.account = accounts.create_account("Bench")
        self.account_id = self.account.account_id
        self.api_key, _ = accounts.create_key(self.account_id, "bench")
        self.dev = {}
        for role in ("send", "otp", "proto", "idle"):
            device, token = devices.register(self.account_id, f"bench-{role}", sim_count=2)
            self.dev[role] = Device(device.device_id, device.device_uid, token, device.queue_url)
        send_device = devices.resolve(self.account_id, device_uid=self.dev["send"].device_uid)
        # Sends are counted with pacing on (as deployed, docs/pool.md), at a pace these runs
        # never wait on; the other devices are unpaced (SMSGW_DEFAULT_PACE_PER_HOUR=0 here).
        from chalicelib.domain import pacing
        pacing.set_pace(send_device, 36000)
        for i in range(max(1, history)):
            self.message_id = outbox.submit(self.account_id, outbox.SendRequest(
                device=send_device, phone_number=PHONE, text=f"Seeded message {i}")
            ).message.message_id
        now = __import__("time").time_ns() // 1_000_000
        for i in range(history):
            tables.IncomingMessage(
                account_id=self.account_id, message_id=ids.new_message_id(),
                device_uid=send_device.device_uid, device_id=send_device.device_id,
                device_message_id=f"seed-{i}", phone_number=PHONE, body=f"Incoming {i}",
                sim_slot=1, received_at=now, created_at=now).save()
        self.idem = itertools.count()
        self.leased = None
        self.otp_code = None
        self.otp_number = None
        self.claims = []
        self.leased_all = []

    def api(self, inv, action, method="POST", **params):
        params = {"api_key": self.api_key, "action": action, **params}
        if method == "GET":
            return inv.request("GET", "/myAPI.php", query=params)
        return inv.request("POST", "/myAPI.php", form=params)

    def device(self, inv, role, method, path, query=None, json_body=None):
        headers = {"Authorization": f"Bearer {self.dev[role].token}"}
        return inv.request(method, path, query=query, json_body=json_body, headers=headers)


# --- availability ------------------------------------------------------------------------------

def _otp_missing():
    from chalicelib.surfaces import compat_api
    if compat_api.ACTIONS.get("send_otp", (None,))[0] is getattr(compat_api, "_not_yet", 0):
        return "not available (OTP code not merged)"
    return None


def _route_missing(path):
    def check():
        app = sys.modules.get("app") or __import__("app")
        if path not in app.app.routes:
            return f"not available (no {path} route yet)"
        return None
    return check


# --- scenarios ---------------------------------------------------------------------------------

@dataclass
class Scenario:
    name: str
    run: object                     # fn(fixture, invoker) -> Reply
    prepare: object = None          # fn(fixture, invoker), before each run, not measured
    missing: object = None          # fn() -> reason or None
    group: str = "public"
    goal: int | None = None         # warm AWS calls allowed
    latency: bool = True            # also timed over HTTP


def _prepare_opt_outs(fx, inv):
    """100 numbers (never PHONE) on the account's opt-out list: the send's check reads its
    cached list (docs/opt-outs.md), so the warm calls stay those of send_sms."""
    from chalicelib.domain import opt_outs
    for n in range(100):
        opt_outs.add(fx.account_id, f"+1415555{n:04d}")


def _send(fx, inv, **extra):
    return fx.api(inv, "send_sms", device_uid=fx.dev["send"].device_uid, phone_number=PHONE,
                  message="Hello World", sim_slot="1", **extra)


def _prepare_auto(fx, inv):
    from chalicelib.domain import devices
    from chalicelib.storage.tables import Device as DeviceItem
    devices.heartbeat(DeviceItem.get(fx.dev["send"].device_uid), "running")


def _send_auto(fx, inv):
    """No device named: the gateway chooses one (docs/pool.md)."""
    return fx.api(inv, "send_sms", phone_number=PHONE, message="Hello World")


def _send_idem(fx, inv):
    return _send(fx, inv, idempotency_key=f"bench-{next(fx.idem)}-{id(fx)}")


def _send_idem_replay(fx, inv):
    return _send(fx, inv, idempotency_key="bench-replayed-key")


def _prepare_replay(fx, inv):
    _send(fx, inv, idempotency_key="bench-replayed-key")


def _history(limit):
    return lambda fx, inv: fx.api(inv, "get_history", "GET", limit=str(limit))


def _send_otp(fx, inv):
    return fx.api(inv, "send_otp", device_uid=fx.dev["otp"].device_uid,
                  phone_number=fresh_number(), message="Your code is {otp}.")


def _prepare_verify(fx, inv):
    """Send an OTP to a fresh number and read the code from the OTP device's queue."""
    from chalicelib.storage import aws
    number = fresh_number()
    reply = fx.api(inv, "send_otp", device_uid=fx.dev["otp"].device_uid, phone_number=number,
                   message="Your code is {otp}.")
    if not reply.ok:
        raise RuntimeError(f"send_otp failed: {reply.problem()}")
    sqs = aws.sqs()
    queue = fx.dev["otp"].queue_url
    for _ in range(500):  # the queue may also hold the jobs of earlier send_otp runs
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        for m in got:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
            job = json.loads(m["Body"])
            if job.get("phone_number") == number:
                fx.otp_number = number
                fx.otp_code = re.search(r"\d{4,10}", job["message"]).group(0)
                return
    raise RuntimeError("OTP job not found on the device queue")


def _verify(fx, inv):
    return fx.api(inv, "verify_otp", phone_number=fx.otp_number, otp_code=fx.otp_code)


def _queue_job(fx, role="proto"):
    from chalicelib.domain import devices, outbox
    device = devices.resolve(fx.account_id, device_uid=fx.dev[role].device_uid)
    return outbox.submit(fx.account_id, outbox.SendRequest(
        device=device, phone_number=PHONE, text="Job for the device")).message.message_id


def _poll(fx, inv, role="proto", wait="1"):
    return fx.device(inv, role, "GET", DEVICE_JOBS, query={"wait": wait, "max": "1"})


def _message_ids(body):
    found = []
    if isinstance(body, dict):
        if isinstance(body.get("message_id"), int):
            found.append(body["message_id"])
        for value in body.values():
            found += _message_ids(value)
    elif isinstance(body, list):
        for value in body:
            found += _message_ids(value)
    return found


def _poll_with_job(fx, inv):
    reply = _poll(fx, inv)
    ids = _message_ids(reply.body)
    fx.leased = ids[0] if ids else None
    return reply


def _prepare_leased(fx, inv):
    _queue_job(fx)
    reply = _poll_with_job(fx, inv)
    if fx.leased is None:
        raise RuntimeError(f"the job poll returned no job: {reply.problem()}")


def _report(status):
    def run(fx, inv):
        return fx.device(inv, "proto", "POST", DEVICE_REPORTS,
                         json_body={"reports": [{"message_id": fx.leased, "status": status}]})
    return run


def _prepare_sent(fx, inv):
    _prepare_leased(fx, inv)
    reply = _report("sent")(fx, inv)
    if not reply.ok:
        raise RuntimeError(f"report sent failed: {reply.problem()}")


def _incoming(fx, inv):
    import time
    return fx.device(inv, "proto", "POST", DEVICE_INCOMING, json_body={"messages": [{
        "device_message_id": f"bench-{next(fx.idem)}-{id(fx)}", "phone_number": PHONE,
        "message": "Incoming hello", "sim_slot": 1, "received_at": int(time.time() * 1000)}]})


def _heartbeat(fx, inv):
    return fx.device(inv, "proto", "POST", DEVICE_HEARTBEAT,
                     json_body={"app_state": "running", "battery": 80, "signal": 4})


# --- direct polling (the default on AWS): the device receives from SQS itself, then claims ----

def _direct_on(fx) -> None:
    """The stack's device role (in moto's IAM) and SMSGW_DEVICE_ROLE_ARN, as deployed."""
    from chalicelib.core import settings
    if not settings.current().device_role_arn:
        import boto3
        role = boto3.client("iam", region_name=settings.current().region).create_role(
            RoleName="BenchDeviceRole", Path=settings.current().device_role_path(),
            AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        settings.install(settings.current().replace(device_role_arn=role))


def _credentials(fx, inv):
    return fx.device(inv, "proto", "POST", DEVICE_CREDENTIALS, json_body={})


def _received(fx, n: int) -> None:
    """Queue n jobs and receive them as the device does (one SQS receive, not measured)."""
    from chalicelib.core import settings
    from chalicelib.storage import aws
    for _ in range(n):
        _queue_job(fx)
    got = aws.sqs().receive_message(QueueUrl=fx.dev["proto"].queue_url, MaxNumberOfMessages=n,
                                    VisibilityTimeout=settings.current().lease_seconds
                                    ).get("Messages", [])
    if len(got) != n:
        raise RuntimeError(f"received {len(got)} of {n} jobs")
    fx.claims = [{"message_id": json.loads(m["Body"])["message_id"],
                  "receipt_handle": m["ReceiptHandle"]} for m in got]


def _claim(fx, inv):
    reply = fx.device(inv, "proto", "POST", DEVICE_CLAIMS, json_body={"claims": fx.claims})
    fx.leased_all = [r["message_id"] for r in (reply.body or {}).get("results", [])
                     if r.get("result") == "leased"]
    return reply


def _prepare_claimed(n):
    def prepare(fx, inv):
        _received(fx, n)
        reply = _claim(fx, inv)
        if len(fx.leased_all) != n:
            raise RuntimeError(f"claim leased {fx.leased_all}: {reply.problem()}")
    return prepare


def _report_pairs(fx, inv):
    return fx.device(inv, "proto", "POST", DEVICE_REPORTS, json_body={"reports": [
        {"message_id": m, "status": s} for m in fx.leased_all for s in ("sent", "delivered")]})


# A million SMS a month from one account is 23 a minute: what each one-minute sweep run's
# first look (chalicelib/domain/messages/first_look.py) finds, already reported, in the lone case.
MINUTE_AT_A_MILLION = 23


def _first_look_account(fx):
    """An account of its own (the fixture's has seeded history) with one unpaced phone."""
    from chalicelib.domain import accounts, devices
    if getattr(fx, "look_account", None) is None:
        account = accounts.create_account("Bench first look")
        fx.look_device, _ = devices.register(account.account_id, "bench-look", sim_count=1)
        fx.look_account = account.account_id
    return fx.look_account


def _prepare_look(n):
    """n messages sent, leased and reported sent+delivered (the lone path), or none."""
    def prepare(fx, inv):
        from chalicelib.domain import jobs, outbox
        from chalicelib.storage.tables import Account
        account_id = _first_look_account(fx)
        __import__("time").sleep(0.002)  # after the last run's watermark (its "now", to the ms)
        for i in range(n):
            mid = outbox.submit(account_id, outbox.SendRequest(
                device=fx.look_device, phone_number=PHONE, text=f"look {i}")).message.message_id
            jobs.lease_received(fx.look_device, mid, "bench-receipt")
            jobs.report(fx.look_device, mid, "delivered", deletes=[])
        fx.look = Account.get(account_id, consistent_read=True)
    return prepare


def _look(fx, inv):
    """One run's first look over that account, a minute after the sends."""
    import time

    from chalicelib.core import clock, settings
    from chalicelib.domain.messages import first_look as first_look
    # the sends are a minute old
    now = clock.now_ms() + settings.current().first_look_seconds * 1000
    entered = list(first_look.look(now, time.monotonic() + 60, accounts=[fx.look]))
    return Reply(200 if not entered else 500, {"entered": len(entered)}, "")


# The owner's insight (chalicelib/domain/insight/stats.py): a stats page, and the counting
# stream function's work per 15-minute window at a million SMS a month from one account.
WINDOW_AT_A_MILLION = 342  # 1,000,000 / (30.4 days x 96 windows)
_windows = itertools.count()


def _prepare_stats(fx, inv):
    from chalicelib.domain.insight import stats
    if getattr(fx, "stats_seeded", False):
        return
    now = __import__("time").time_ns() // 1_000_000
    for back in range(stats.DAYS):
        day = stats.day_of(now - back * 86400_000)
        counts = {"sent": 900, "delivered": 880, "failed": 12, "r:No service": 12, "h0": 900}
        stats.commit(f"bench-seed-{back}", {f"{fx.account_id}|{day}": counts,
                                            f"{fx.account_id}|{day}#1": counts,
                                            f"{fx.account_id}|{day}#2": counts})
    fx.stats_seeded = True


def _stats_page(fx, inv):
    return inv.request("GET", "/v1/stats", headers={"Authorization": f"Bearer {fx.api_key}"})


def _prepare_window(fx, inv):
    from chalicelib.core import clock, settings
    now = clock.now_ms()
    names = settings.current()
    arn = f"arn:aws:dynamodb:{names.region}:0:table/{names.table_name('messages')}/stream/x"
    image = {"account_id": {"S": fx.account_id}, "device_id": {"N": str(fx.dev["send"].device_id)},
             "created_at": {"N": str(now - 1500)}, "processed_at": {"N": str(now - 1000)},
             "delivered_at": {"N": str(now)}}
    fx.window = {"eventSourceARN": arn, "shardId": "bench", "isFinalInvokeForWindow": True,
                 "window": {"start": f"bench-{next(_windows)}"}, "state": {}, "Records": [
                     {"eventName": "MODIFY", "eventSourceARN": arn, "dynamodb": {
                         "ApproximateCreationDateTime": now / 1000, "SequenceNumber": str(i),
                         "OldImage": {**image, "message_id": {"N": str(i)},
                                      "status": {"S": "processing"}},
                         "NewImage": {**image, "message_id": {"N": str(i)},
                                      "status": {"S": "delivered"}}}}
                     for i in range(WINDOW_AT_A_MILLION)]}


def _count_window(fx, inv):
    from chalicelib.domain.insight import stats
    return Reply(200, stats.count_window(fx.window), "")


SCENARIOS = [
    # pacing's slot write (docs/pool.md) is the third call; an unpaced device makes two
    Scenario("send_sms", _send, goal=3),
    Scenario("send_sms, account with 100 opt-outs", _send, prepare=_prepare_opt_outs, goal=3),
    Scenario("send_sms, automatic device choice", _send_auto, prepare=_prepare_auto, goal=3),
    Scenario("send_sms + idempotency_key", _send_idem),
    Scenario("send_sms idempotent replay", _send_idem_replay, prepare=_prepare_replay),
    Scenario("check_status", lambda fx, inv: fx.api(inv, "check_status", "GET",
                                                    message_id=str(fx.message_id)), goal=2),
    Scenario("get_history limit=1", _history(1), goal=2),
    Scenario("get_history limit=20", _history(20), goal=2),
    Scenario("get_history limit=100", _history(100), goal=2),
    Scenario("device_status", lambda fx, inv: fx.api(inv, "device_status", "GET")),
    Scenario("send_otp", _send_otp, missing=_otp_missing),
    Scenario("verify_otp", _verify, prepare=_prepare_verify, missing=_otp_missing, goal=2),
    Scenario("device: jobs poll returning a job", _poll_with_job,
             prepare=lambda fx, inv: _queue_job(fx), missing=_route_missing(DEVICE_JOBS),
             group="device"),
    Scenario("device: jobs poll, idle (wait=1 s)",
             lambda fx, inv: _poll(fx, inv, role="idle"), missing=_route_missing(DEVICE_JOBS),
             group="device", latency=False),
    Scenario("device: report sent", _report("sent"), prepare=_prepare_leased,
             missing=_route_missing(DEVICE_REPORTS), group="device"),
    Scenario("device: report delivered", _report("delivered"), prepare=_prepare_sent,
             missing=_route_missing(DEVICE_REPORTS), group="device"),
    Scenario("device: incoming SMS", _incoming, missing=_route_missing(DEVICE_INCOMING),
             group="device"),
    Scenario("device: heartbeat", _heartbeat, missing=_route_missing(DEVICE_HEARTBEAT),
             group="device"),
    Scenario("device: credentials (direct)", _credentials,
             prepare=lambda fx, inv: _direct_on(fx), missing=_route_missing(DEVICE_CREDENTIALS),
             group="device", latency=False),
    Scenario("device: claim 1 job (direct)", _claim, prepare=lambda fx, inv: _received(fx, 1),
             missing=_route_missing(DEVICE_CLAIMS), group="device", latency=False),
    Scenario("device: claim 10 jobs, one SQS receive (direct)", _claim,
             prepare=lambda fx, inv: _received(fx, 10), missing=_route_missing(DEVICE_CLAIMS),
             group="device", latency=False),
    Scenario("device: report sent+delivered, 1 message", _report_pairs,
             prepare=_prepare_claimed(1), missing=_route_missing(DEVICE_REPORTS),
             group="device", latency=False),
    Scenario("device: report sent+delivered, 10 messages", _report_pairs,
             prepare=_prepare_claimed(10), missing=_route_missing(DEVICE_REPORTS),
             group="device", latency=False),
    Scenario(f"sweep: first look, {MINUTE_AT_A_MILLION} reported messages (one account, "
             "one run)", _look, prepare=_prepare_look(MINUTE_AT_A_MILLION), group="sweep",
             latency=False),
    Scenario("sweep: first look, nothing new (one account, one run)", _look,
             prepare=_prepare_look(0), group="sweep", latency=False),
    Scenario("GET /v1/stats (30 days, 2 phones)", _stats_page, prepare=_prepare_stats,
             goal=2),
    Scenario(f"stream: count a 15-minute window of {WINDOW_AT_A_MILLION} outcomes (one account, "
             "one phone)", _count_window, prepare=_prepare_window, group="sweep",
             latency=False),
]


# --- SMSGate app phones (/mobile/v1, docs/android-app.md) --------------------------------------
APP_UA = {"User-Agent": "me.capcom.smsgateway/1.68.0"}


def _app(fx):
    """The fixture's app phone, registered on first use (as the app does, with a token)."""
    if getattr(fx, "app", None) is None:
        from chalicelib.domain.devices import app_phones
        device, token = app_phones.register_with_token(
            app_phones.make_token(fx.account_id), "bench-app", 2, "1.68.0", "127.0.0.1")
        fx.app = Device(device.device_id, device.device_uid, token, device.queue_url)
        fx.app_leased = None
    return fx.app


def _app_call(fx, inv, method, path, json_body=None, query=None):
    headers = {"Authorization": f"Bearer {_app(fx).token}", **APP_UA}
    return inv.request(method, "/mobile/v1" + path, query=query, json_body=json_body,
                       headers=headers)


def _app_queue_job(fx):
    from chalicelib.domain import devices, outbox
    device = devices.resolve(fx.account_id, device_uid=_app(fx).device_uid)
    return outbox.submit(fx.account_id, outbox.SendRequest(
        device=device, phone_number=PHONE, text="Job for the app")).message.message_id


def _app_pull_with_job(fx, inv):
    reply = _app_call(fx, inv, "GET", "/message", query={"order": "lifo"})
    fx.app_leased = int(reply.body[0]["id"]) if reply.ok and reply.body else None
    return reply


def _app_patch(state):
    def run(fx, inv):
        return _app_call(fx, inv, "PATCH", "/message", json_body=[{
            "id": str(fx.app_leased), "state": state,
            "recipients": [{"phoneNumber": PHONE, "state": state}],
            "states": {state: "2026-12-04T10:00:00.000+00:00"}}])
    return run


def _app_prepare_leased(fx, inv):
    _app_queue_job(fx)
    if _app_pull_with_job(fx, inv).body == [] or fx.app_leased is None:
        raise RuntimeError("the app's pull returned no job")


def _app_prepare_sent(fx, inv):
    _app_prepare_leased(fx, inv)
    if not _app_patch("Sent")(fx, inv).ok:
        raise RuntimeError("PATCH Sent failed")


# The pull after the app took its jobs: the hint is set, one receive (1 s long poll) finds
# nothing and clears it (domain/devices/job_hint.py); once per burst of sends.
APP_PULL_CLEARING = "app: pull, empty receive clearing the jobs hint"
APP_SCENARIOS = [
    Scenario("app: events, answered at once", lambda fx, inv: _app_call(fx, inv, "GET",
                                                                        "/events"),
             prepare=lambda fx, inv: _app(fx), group="device", latency=False),
    Scenario("app: pull, idle", lambda fx, inv: _app_call(fx, inv, "GET", "/message",
                                                          query={"order": "lifo"}),
             prepare=lambda fx, inv: _app(fx), group="device", latency=False),
    Scenario(APP_PULL_CLEARING, lambda fx, inv: _app_call(fx, inv, "GET", "/message",
                                                          query={"order": "lifo"}),
             prepare=_app_prepare_leased, group="device", latency=False),
    Scenario("send_sms to an app phone", lambda fx, inv: fx.api(
        inv, "send_sms", device_uid=_app(fx).device_uid, phone_number=PHONE,
        message="Hello World", sim_slot="1"), prepare=lambda fx, inv: _app(fx), latency=False),
    Scenario("app: pull returning a job", _app_pull_with_job,
             prepare=lambda fx, inv: _app_queue_job(fx), group="device", latency=False),
    Scenario("app: PATCH Sent", _app_patch("Sent"), prepare=_app_prepare_leased,
             group="device", latency=False),
    Scenario("app: PATCH Delivered", _app_patch("Delivered"), prepare=_app_prepare_sent,
             group="device", latency=False),
]
SCENARIOS += APP_SCENARIOS


def reset_caches() -> None:
    """What a new Lambda container starts with: no cached keys, devices, clients, connections."""
    from chalicelib.storage import tables
    for name, module in list(sys.modules.items()):
        if not name.startswith("chalicelib"):
            continue
        for attr, value in list(vars(module).items()):
            if attr in ("forget_cached", "forget_secret") and callable(value):
                value()
            elif hasattr(value, "cache_clear") and callable(value.cache_clear):
                value.cache_clear()
            elif attr == "_connection":
                setattr(module, attr, None)
    for model in tables.MODELS:
        model._connection = None


def _prepare_day_quota(fx, inv):
    """The operator's messages-per-day quota on the account (domain/quotas.py): the message's
    PutItem becomes a TransactWriteItems that also raises the day's counter, so the warm calls
    stay those of send_sms. Last in the list: the account keeps the quota. Set once (setting it
    drops this container's caches, as the operator's console does in its own container)."""
    from chalicelib.domain import operators
    from chalicelib.storage.tables import Account
    if Account.get(fx.account_id).quota_messages_per_day is None:
        operators.set_quota(operators.CLI, fx.account_id, "messages_per_day", 1_000_000)


SCENARIOS.append(Scenario("send_sms, account with a messages-per-day quota", _send,
                          prepare=_prepare_day_quota, goal=3))
