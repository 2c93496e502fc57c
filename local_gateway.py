"""One-command local gateway: moto's server as AWS, the gateway's tables, the very same Chalice
app, a demo account, key and device, the scheduled functions on timers, and the data kept in a
folder across restarts (localgw/).

    python local_gateway.py [--host 127.0.0.1] [--port 8000] [--memory] [--quiet]

Tests start the same thing in-process through `LocalGateway` (ports picked free).
"""
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

import click

LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION":
    "us-east-1", "SMSGW_STAGE": "local",
}
# Locally a revoked key or a whitelist change works within 2 s (AWS stages: 30 s, see docs);
# anyone may sign up, so the journey can be tried (AWS stages: closed, docs/dashboard.md).
LOCAL_DEFAULTS = {"SMSGW_AUTH_CACHE_SECONDS": "2", "SMSGW_SIGNUP": "open"}
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def free_port(host: str = "127.0.0.1", preferred: int = 0) -> int:
    """A port free on host: `preferred` if it is, else one the system picks."""
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port")


def lan_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, best guess first (nothing is sent: a UDP
    socket's connect() only picks the route)."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            found.append(s.getsockname()[0])
        except OSError:
            pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(info[4][0])
    except OSError:
        pass
    return [a for n, a in enumerate(found) if not a.startswith("127.") and a not in found[:n]]


def loopback_only(host: str) -> bool:
    """Whether listening on `host` serves this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: whatever it resolves to may be on the network


def private_webhooks_allowed(host: str, opted_in: bool = False) -> bool:
    """Webhook receivers on loopback and private addresses: yes on a gateway only this machine
    reaches (a developer's own receiver); on one that listens on the network only if its owner
    opts in, else any account holder there could make it POST to the AWS emulator on
    127.0.0.1 (no signature asked) or to other hosts of the LAN."""
    return opted_in or loopback_only(host)


def schedule_seconds(expression) -> float:
    """Seconds between runs of a Chalice schedule, capped locally so sweeps settle things fast."""
    cap = float(os.environ.get("SMSGW_LOCAL_SCHEDULE_CAP_SECONDS", "10"))
    seconds = 60.0
    value, unit = getattr(expression, "value", None), getattr(expression, "unit", "")
    if value is not None:
        seconds = value * {"MINUTES": 60, "HOURS": 3600, "DAYS": 86400}.get(unit, 60)
    return min(seconds, cap)


class LocalGateway:
    """The local stack, started and stopped as a whole (also a context manager). With `data`
    (a folder) its state is restored at start and snapshotted every `snapshot_seconds` and at
    stop; without, everything lives in memory."""

    def __init__(self, port: int = 0, demo: bool = True, schedules: bool = True,
                 agent: bool = False, env: dict | None = None, extra_devices: int = 0,
                 host: str = "127.0.0.1", quiet: bool = True, data: str | None = None,
                 snapshot_seconds: float = 5.0, allow_private_webhooks: bool = False):
        self.host, self.quiet = host, quiet
        self.private_webhooks = private_webhooks_allowed(host, allow_private_webhooks)
        self.port = port or free_port("" if host in WILDCARD_HOSTS else host)
        self.demo, self.schedules, self.agent = demo, schedules, agent
        self.echo = False  # the demo phone prints what it sends
        self.inbox = None
        self.extra_env = env or {}
        self.extra_devices = extra_devices
        local_host = "127.0.0.1" if host in WILDCARD_HOSTS else host
        if ":" in local_host:
            local_host = f"[{local_host}]"
        self.url = f"http://{local_host}:{self.port}"
        self.lan_urls = [f"http://{a}:{self.port}" for a in lan_addresses()] \
            if host in WILDCARD_HOSTS else []
        self.data_path, self.snapshot_seconds = data, snapshot_seconds
        self.data = self.restored = None
        self.demo_info = None
        self._started = False  # a stop before this never overwrites the snapshot
        self._last_snapshot = None
        self._stop = threading.Event()
        self._snapshot_lock = threading.Lock()
        self._threads = []
        self._temp = None
        self._carried = []  # stream records a snapshot kept unhandled (localgw/events.py)
        self._moto = self._http = self._agent = self._events = None

    def start(self) -> "LocalGateway":
        from moto.server import ThreadedMotoServer

        from localgw.data import DataDir
        if self.data_path:
            self.data = DataDir(self.data_path)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_port = free_port(preferred=(self.data.config.get("moto_port", 0) if self.data
                                         else 0))
        from localgw.atomic import serialise_moto_dynamodb
        serialise_moto_dynamodb()  # per-item atomicity, as DynamoDB gives (localgw/atomic.py)
        from localgw.streams import bound_iterators
        bound_iterators()  # streams that do not grow for ever (localgw/streams.py)
        from localgw.models import untrack_instances
        untrack_instances()  # no register of every model moto ever made (localgw/models.py)
        from localgw.queues import lazy_queue_attributes
        lazy_queue_attributes()  # a send does not count the queue (localgw/queues.py)
        from localgw.dispatch import remember_backends
        remember_backends()  # a request's service found once per host (localgw/dispatch.py)
        from localgw.botocore_models import share_loader
        share_loader()  # botocore's JSON parsed once, not per session (localgw/botocore_models.py)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self._moto.start()
        os.environ.update(LOCAL_ENV)
        for name, value in LOCAL_DEFAULTS.items():
            os.environ.setdefault(name, value)
        os.environ.setdefault("SMSGW_OTP_SECRET", self._otp_secret())
        os.environ.update(self.extra_env)
        self._webhook_policy()
        # Alert mails (chalicelib/domain/insight/alerts.py) are written under the data folder.
        if not self.data:  # removed at stop, with the demo phone's files
            self._temp = tempfile.mkdtemp(prefix="smsgw-demo-")
        os.environ.setdefault("SMSGW_MAIL_DIR", os.path.join(
            str(self.data.path) if self.data else self._temp, "mail"))
        self.mail_dir = os.environ["SMSGW_MAIL_DIR"]
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{moto_port}"
        self.aws_endpoint = os.environ["AWS_ENDPOINT_URL"]
        if self.data:
            self.data.remember(moto_port=moto_port)
        if not os.environ.get("SMSGW_DEVICE_ROLE_ARN"):
            os.environ["SMSGW_DEVICE_ROLE_ARN"] = create_device_role()
        # The settings are read at their first use, after this; when tests or a bench used them
        # before, the values this start sets are read again (names stay: tables were named).
        from chalicelib.core import settings
        settings.refresh("mail_dir", "signup")

        from chalicelib.storage import tables
        tables.create_all(wait=True)
        self._restore()
        if self.demo:
            self.demo_info = self.data.demo() if self.data and self.restored else None
            if not self.demo_info:
                self.demo_info = create_demo(self.extra_devices)
                if self.data:
                    self.data.save_demo(self.demo_info)
        self._serve_http()
        if self.schedules:
            self._start_schedules()
            from localgw.events import EventPumps  # webhooks: streams and queue, as on AWS
            self._events = EventPumps(trim_streams=True, carried=self._carried).start()
        if self.agent and self.demo_info:
            self._start_demo_phone()
        self._started = True
        if self.data:
            self.data.announce({"url": self.url, "lan_urls": self.lan_urls,
                                "aws_endpoint": self.aws_endpoint, "stage": "local",
                                "tls_ca": str(self.tls_files["ca"]) if self.tls_files else None,
                                "region": os.environ["AWS_DEFAULT_REGION"]})
            self._timer(self.snapshot_seconds, self.snapshot, "snapshot")
        return self

    def _webhook_policy(self):
        """Refuse webhook receivers on loopback and private addresses when listening on the
        network (checked when added and before every attempt: chalicelib/domain/webhooks/urls.py).
        An explicit SMSGW_WEBHOOK_ALLOW_PRIVATE is the owner's choice and wins."""
        explicit = os.environ.get("SMSGW_WEBHOOK_ALLOW_PRIVATE", "").strip().lower()
        if explicit:
            self.private_webhooks = explicit in ("1", "true", "yes", "on")
        if self.private_webhooks:
            return
        os.environ["SMSGW_WEBHOOK_ALLOW_PRIVATE"] = "0"
        from chalicelib.core import settings
        settings.refresh("webhook_allow_private")  # read already (tests): else at the first use

    def _otp_secret(self) -> str:
        if self.data and self.data.config.get("otp_secret"):
            return self.data.config["otp_secret"]
        secret = secrets.token_hex(32)
        if self.data:
            self.data.remember(otp_secret=secret)
        return secret

    def _restore(self):
        from localgw import snapshot
        saved = snapshot.load(str(self.data.path)) if self.data else None
        if saved:
            self.restored = snapshot.restore(saved, self.aws_endpoint)
            self.restored["taken_at"] = saved["taken_at"]
            # The restore's own stream records are no changes: handled once is enough.
            from localgw.events import forget_restored
            forget_restored()
            self._carried = saved.get("streams") or []
            from chalicelib.domain import webhooks  # data from before Account.webhook_adds
            webhooks.count_old_endpoints()

    def snapshot(self, *_):
        """Copy the emulated AWS state to the data folder (no-op without one)."""
        if not self.data:
            return None
        from contextlib import nullcontext

        from localgw import snapshot
        events = self._events
        with self._snapshot_lock, events.paused() if events else nullcontext():
            taken = snapshot.take(self.aws_endpoint, self._last_snapshot, streams=events)
            if taken is None:
                return None
            self._last_snapshot = taken
            return snapshot.save(str(self.data.path), taken)

    def _start_demo_phone(self):
        if self.data:
            self.inbox, journal = self.data.file("inbox.jsonl"), self.data.file("demo-phone.db")
            ledger = self.data.file("sent.jsonl")
            from localgw.data import create_private
            os.close(create_private(self.inbox, os.O_WRONLY))  # `echo >>` appends to a 0600 file
        else:
            self._temp = self._temp or tempfile.mkdtemp(prefix="smsgw-demo-")
            self.inbox, journal = os.path.join(self._temp, "inbox.jsonl"), ":memory:"
            ledger = None
        self._agent = start_demo_agent(self.url, self.demo_info["device_token"], self.inbox,
                                       echo=self.echo, journal=journal, ledger=ledger,
                                       ca_file=str(self.tls_files["ca"]) if self.tls_files
                                       else None)  # it trusts the CA the gateway made

    def _serve_http(self):
        from app import app
        from localgw.server import serve
        self._http = serve(app, self.host, self.port, quiet=self.quiet)
        if self.tls:
            self._start_tls()

    # HTTPS on the LAN for SMSGate's app (localgw/tls.py, docs/android-app.md)
    tls = False
    tls_files = None

    def _start_tls(self):
        from pathlib import Path

        from chalicelib.core import settings
        from localgw import tls
        hosts = lan_addresses() if self.host in WILDCARD_HOSTS else [self.host]
        folder = Path(self.data.path if self.data else tempfile.mkdtemp(prefix="smsgw-tls-"))
        self.tls_files = tls.ensure(folder / "tls", hosts or ["127.0.0.1"])
        tls.wrap(self._http.server, self.tls_files)
        self.url = self.url.replace("http://", "https://", 1)
        self.lan_urls = [u.replace("http://", "https://", 1) for u in self.lan_urls]
        public = (self.lan_urls or [self.url])[0]
        os.environ["SMSGW_PUBLIC_URL"] = public
        settings.refresh("public_url")

    def _start_schedules(self):
        from chalice.app import ScheduledEventConfig

        import app as app_module
        for source in app_module.app.event_sources:
            if isinstance(source, ScheduledEventConfig):
                self._timer(schedule_seconds(source.schedule_expression),
                            getattr(app_module, source.name), source.name)

    def _timer(self, interval, handler, name):
        thread = threading.Thread(target=self._every, args=(interval, handler, name),
                                  daemon=True, name=f"schedule-{name}")
        thread.start()
        self._threads.append(thread)

    def _every(self, interval, handler, name="schedule"):
        # SMSGW_LOCAL_SCHEDULE_LOG: a JSON-lines file of every run and what it returned (soak
        # runs count sweeps and what they settled from it).
        log_path = os.environ.get("SMSGW_LOCAL_SCHEDULE_LOG")
        while not self._stop.wait(interval):
            result = None
            try:
                result = handler({
                    "version": "0", "id": secrets.token_hex(8), "account": "local",
                    "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "resources": [], "detail-type": "Scheduled Event",
                    "source": "local", "detail": {}}, None)
            except Exception as exc:  # a failed sweep is retried at the next tick, as on AWS
                print(f"scheduled {name} failed: {exc!r}", file=sys.stderr)
                result = {"error": repr(exc)}
            if log_path:
                from localgw.data import create_private
                with os.fdopen(create_private(log_path, os.O_WRONLY | os.O_APPEND), "a",
                               encoding="utf-8") as handle:
                    handle.write(json.dumps({"schedule": name, "at": time.time(),
                                             "result": result}, default=str) + "\n")

    def stop(self):
        """Stop taking requests, let running sweeps finish, snapshot, then stop the emulator."""
        self._stop.set()
        if self._events is not None:
            self._events.stop()
        if self._agent is not None:
            self._agent.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        try:
            if self._started and self.data is not None:
                self.snapshot()
        finally:
            if self._moto is not None:
                self._moto.stop()
            if self.data is not None:
                self.data.close()
            if self._temp:
                shutil.rmtree(self._temp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def create_device_role() -> str:
    """The role devices assume in direct polling mode, as the stack creates it, in moto's IAM.
    Locally this only makes the flow work: moto's server accepts any credentials and does not
    evaluate the session policy that limits a device to its own queue (AWS does)."""
    import boto3
    iam = boto3.client("iam", region_name=os.environ["AWS_DEFAULT_REGION"])
    prefix = os.environ.get("SMSGW_PREFIX", f"smsgw-{os.environ['SMSGW_STAGE']}")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}
    return iam.create_role(RoleName="DeviceRole", Path=f"/{prefix}/",
                           AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


def create_demo(extra_devices: int = 0) -> dict:
    from chalicelib.domain import accounts, devices, users
    account = accounts.create_account("Demo")
    key, _ = accounts.create_key(account.account_id, "demo")
    device, token = devices.register(account.account_id, "Demo phone", sim_count=2)
    info = {"account_id": account.account_id, "api_key": key, "device_id": device.device_id,
            "device_uid": device.device_uid, "device_token": token,
            "dashboard_email": "demo@example.com",  # its one-time set-password path (24 h):
            "dashboard_set_password": "/dashboard/set-password?token="
            + users.add(account.account_id, "demo@example.com")[1]}
    if extra_devices:
        info["devices"] = []
        for n in range(extra_devices):  # more phones without an agent (tests drive them)
            extra, extra_token = devices.register(account.account_id, f"Phone {n + 2}",
                                                  sim_count=2)
            info["devices"].append({"device_id": extra.device_id,
                                    "device_uid": extra.device_uid,
                                    "device_token": extra_token})
    return info


def start_demo_agent(url: str, token: str, inbox: str | None = None, echo: bool = False,
                     journal: str = ":memory:", ledger: str | None = None,
                     ca_file: str | None = None):
    """A simulated phone for the demo device: the device agent (./agent) with its simulator
    backend, in a thread, polling with short waits so the demo settles within seconds. It reads
    "received" SMS from the JSON-lines file `inbox` and, with `echo`, prints what it "sends"."""
    try:
        import smsgw_agent  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent"))
    from smsgw_agent import Agent, AgentConfig
    from smsgw_agent.backends import SimulatorBackend
    from smsgw_agent.journal import Journal

    class DemoPhone(SimulatorBackend):
        def send(self, phone_number, text, sim_slot, message_id=None):
            super().send(phone_number, text, sim_slot, message_id)
            if echo:
                print(f"[demo phone] SIM {sim_slot} -> {phone_number}: {text}", flush=True)

    config = AgentConfig(url=url, token=token, backend="simulator", journal=journal,
                         mode=os.environ.get("SMSGW_LOCAL_AGENT_MODE", "gateway"),
                         poll_wait=int(os.environ.get("SMSGW_LOCAL_AGENT_WAIT", "1")),
                         sim_count=2, delivery_delay=float(
                             os.environ.get("SMSGW_LOCAL_AGENT_DELIVERY_DELAY", "1")),
                         incoming_seconds=2.0, inbox=inbox, ca_file=ca_file,
                         push_existing=True).check()  # the journal knows what was pushed
    phone = DemoPhone(config.failure_rate, config.delivery_delay, ledger=ledger, inbox=inbox)
    return Agent(config, backend=phone, journal=Journal(journal)).start()


LAN_WARNING = """
  !!!  PLAIN HTTP on {where}: API keys, device tokens and SMS texts cross the network
  !!!  unencrypted. Use it only on a LAN you trust; never forward this port to the internet.
"""


def demo_link_state(gw: LocalGateway) -> str:
    """The demo user's set-password link: live, used or expired (chalicelib/domain/users)."""
    from chalicelib.domain import users
    return users.link_state(gw.demo_info["dashboard_set_password"].rsplit("token=", 1)[-1])


def dashboard_line(gw: LocalGateway) -> str:
    """The demo user's set-password link while it works; once used (or expired), how to sign
    in or get a new one instead (a spent link printed at every restart only misleads)."""
    d, state = gw.demo_info, demo_link_state(gw)
    if state == "live":
        return (f"Dashboard: set the password of {d['dashboard_email']} (link works once) at\n"
                f"  {gw.url}{d['dashboard_set_password']}")
    done = "its password is set" if state == "used" else "its set-password link has expired"
    return (f"Dashboard: {d['dashboard_email']} ({done}) signs in at {gw.url}/dashboard/signin\n"
            f"  a new set-password link: .venv/bin/smsgw user link {d['dashboard_email']}")


def banner(gw: LocalGateway) -> str:
    d = gw.demo_info
    phone = "No phone is polling (--no-agent): messages stay pending until a device agent runs."
    if gw.inbox:
        phone = (f"A simulated phone sends for the demo device and prints each SMS below (OTP "
                 f"codes too, to try verify_otp).\nTo make it receive an SMS (get_history "
                 f"type=incoming), append a line to {gw.inbox}:\n  echo '{{\"phone_number\": "
                 f"\"+8801712345678\", \"message\": \"Hi there\"}}' >> {gw.inbox}")
    if gw.data:
        kept = (f"Data is kept in {gw.data.path} (snapshot every {gw.snapshot_seconds:g} s and at "
                f"Ctrl-C; restored at the next start).")
        if gw.restored:
            taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(gw.restored["taken_at"]))
            kept += (f"\nRestored {gw.restored['items']} records and {gw.restored['jobs']} "
                     f"queued jobs from the snapshot of {taken}.")
        cli = (".venv/bin/smsgw account list      (it finds this gateway by itself)\n"
               "Shell variables for the demo account (SMSGW_URL, API_KEY, DEVICE_UID, ...):\n"
               "  eval \"$(.venv/bin/smsgw local env)\"")
    else:
        kept = "In-memory run (--memory): everything is gone when it stops."
        cli = (f"AWS_ENDPOINT_URL={gw.aws_endpoint} SMSGW_STAGE=local AWS_ACCESS_KEY_ID=local \\\n"
               f"  AWS_SECRET_ACCESS_KEY=local .venv/bin/smsgw account list")
    where = ""
    if gw.tls_files:
        from localgw import tls
        where = "\n" + tls.android_steps(gw.tls_files["ca"], (gw.lan_urls or [gw.url])[0]) + "\n"
    elif gw.host not in ("127.0.0.1", "localhost", "::1"):
        phones = "\n".join(f"  {u}" for u in (gw.lan_urls or [gw.url]))
        where = (LAN_WARNING.format(where=f"{gw.host}:{gw.port}")
                 + f"\nA phone on the same network runs the agent with this URL:\n{phones}\n")
    if not gw.private_webhooks:
        where += ("Webhooks to loopback and private addresses are refused (listening beyond "
                  "loopback;\n--allow-private-webhooks allows them).\n")
    return f"""
SMS gateway running at {gw.url}  (AWS emulated by moto at {gw.aws_endpoint})
{where}
  account     {d['account_id']}
  API key     {d['api_key']}
  device      device_id={d['device_id']}  device_uid={d['device_uid']}
  device token (for the agent)  {d['device_token']}

Send an SMS:
  curl -X POST {gw.url}/myAPI.php \\
    -d "api_key={d['api_key']}" \\
    -d "action=send_sms" \\
    -d "device_uid={d['device_uid']}" \\
    -d "phone_number=+8801712345678" \\
    -d "message=Hello World" \\
    -d "sim_slot=1"

Then: curl "{gw.url}/myAPI.php?action=get_history&api_key={d['api_key']}&limit=5"
{dashboard_line(gw)}
{phone}
{kept}
Admin CLI: {cli}
Ctrl-C stops everything.
"""


@click.command()
@click.option("--host", default=lambda: os.environ.get("SMSGW_HOST", "127.0.0.1"),
              show_default="127.0.0.1 or $SMSGW_HOST",
              help="Address to listen on: 0.0.0.0 (or a LAN address) lets phones on your network "
                   "reach it. Plain HTTP: only on a LAN you trust.")
@click.option("--port", type=int, default=lambda: int(os.environ.get("SMSGW_PORT", 8000)),
              show_default="8000 or $SMSGW_PORT", help="Port of the gateway.")
@click.option("--no-agent", is_flag=True, help="Do not start the simulated demo phone.")
@click.option("--devices", "extra_devices", type=click.IntRange(0, 20), default=0,
              help="Register this many more devices (no agent) in the demo account.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False),
              help="Folder that keeps the data across restarts  [default: local-data/ or "
                   "$SMSGW_DATA]")
@click.option("--memory", is_flag=True,
              help="Keep nothing: a throwaway in-memory run (also $SMSGW_LOCAL_MEMORY=1 when "
                   "--data is not given).")
@click.option("--snapshot-seconds", type=click.FloatRange(0.5, 3600), default=5.0,
              show_default=True, help="How often the data is snapshotted (a kill -9 loses at "
                                      "most this much).")
@click.option("--quiet", is_flag=True, help="No log line per request.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the gateway's URL and demo credentials as one JSON line (for scripts).")
@click.option("--allow-private-webhooks", is_flag=True,
              help="Listening beyond loopback, still let webhooks go to loopback and private "
                   "addresses (refused by default there: anyone with an account on the network "
                   "could reach this machine's emulator and LAN through them).")
@click.option("--tls", is_flag=True,
              help="HTTPS with a local CA kept in the data folder (for SMSGate's app on a "
                   "phone: it refuses plain HTTP except to 127.0.0.1).")
def main(host, port, no_agent, extra_devices, data_dir, memory, snapshot_seconds, quiet,
         as_json, allow_private_webhooks, tls):
    """Start the local SMS gateway with a demo account and device."""
    from chalicelib.core.settings import Settings, SettingsError
    from localgw.data import DataDirBusy
    from localgw.data import data_dir as resolve_data_dir
    try:  # a bad variable stops the start, named, before anything runs
        Settings.from_environ({**os.environ, **LOCAL_ENV})
    except SettingsError as exc:
        raise click.ClickException(str(exc))
    memory = memory or (os.environ.get("SMSGW_LOCAL_MEMORY") == "1" and not data_dir)
    data = None if memory else str(resolve_data_dir(data_dir))
    gw = LocalGateway(port=port, agent=not no_agent, extra_devices=extra_devices, host=host,
                      quiet=quiet, data=data, snapshot_seconds=snapshot_seconds,
                      allow_private_webhooks=allow_private_webhooks)
    gw.echo = not as_json
    gw.tls = tls
    os.umask(0o077)  # whatever a library creates in the data folder is its owner's only
    # A plain `kill` stops as cleanly as Ctrl-C (snapshot included); so does SIGINT when the
    # gateway was started in the background (`./run-local &` in a script): the shell then
    # starts it with SIGINT ignored, and Python keeps it ignored unless told otherwise.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    from localgw import memtrace
    memtrace.install()  # debug only: SMSGW_LOCAL_TRACEMALLOC
    try:  # a signal at any point below still ends in gw.stop()
        try:
            gw.start()
        except DataDirBusy as exc:
            raise click.ClickException(str(exc))
        except OSError as exc:
            raise click.ClickException(f"cannot start on {host}:{port}: {exc}")
        if as_json:
            click.echo(json.dumps({"url": gw.url, "aws_endpoint": gw.aws_endpoint,
                                   "tls_ca": str(gw.tls_files["ca"]) if gw.tls_files else None,
                                   "lan_urls": gw.lan_urls, "inbox": gw.inbox,
                                   "data": data, "restored": gw.restored, "mail": gw.mail_dir,
                                   "private_webhooks": gw.private_webhooks,
                                   "dashboard_link": demo_link_state(gw),
                                   **gw.demo_info}))
        else:
            click.echo(banner(gw))
        while True:  # short sleeps: a signal that lands on another thread only sets a flag
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\nstopping...", err=as_json)
    finally:
        gw.stop()
        if gw._started:
            click.echo("stopped." + (f" Data kept in {data}." if data else ""), err=as_json)


if __name__ == "__main__":
    main()
