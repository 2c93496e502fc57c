"""One-command local gateway: moto's server as AWS, the gateway's tables, the very same Chalice
app on 127.0.0.1, a demo account, key and device, and the scheduled functions on timers.

    python local_gateway.py [--port 8000]

Tests start the same thing in-process through `LocalGateway` (ports picked free).
"""
import json
import logging
import os
import secrets
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def schedule_seconds(expression) -> float:
    """Seconds between runs of a Chalice schedule, capped locally so sweeps settle things fast."""
    cap = float(os.environ.get("SMSGW_LOCAL_SCHEDULE_CAP_SECONDS", "10"))
    seconds = 60.0
    value, unit = getattr(expression, "value", None), getattr(expression, "unit", "")
    if value is not None:
        seconds = value * {"MINUTES": 60, "HOURS": 3600, "DAYS": 86400}.get(unit, 60)
    return min(seconds, cap)


class LocalGateway:
    """The local stack, started and stopped as a whole (also a context manager)."""

    def __init__(self, port: int = 0, demo: bool = True, schedules: bool = True,
                 agent: bool = False, env: dict | None = None, extra_devices: int = 0):
        self.port = port or free_port()
        self.demo, self.schedules, self.agent = demo, schedules, agent
        self.echo = False  # the demo phone prints what it sends
        self.inbox = None
        self.extra_env = env or {}
        self.extra_devices = extra_devices
        self.url = f"http://127.0.0.1:{self.port}"
        self.demo_info = None
        self._stop = threading.Event()
        self._threads = []
        self._moto = self._http = self._agent = self._events = None

    def start(self) -> "LocalGateway":
        from moto.server import ThreadedMotoServer
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_port = free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self._moto.start()
        os.environ.update(LOCAL_ENV)
        os.environ.setdefault("SMSGW_OTP_SECRET", secrets.token_hex(32))
        os.environ.update(self.extra_env)
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{moto_port}"
        self.aws_endpoint = os.environ["AWS_ENDPOINT_URL"]
        if not os.environ.get("SMSGW_DEVICE_ROLE_ARN"):
            os.environ["SMSGW_DEVICE_ROLE_ARN"] = create_device_role()

        from chalicelib.storage import tables
        tables.create_all(wait=True)
        if self.demo:
            self.demo_info = create_demo(self.extra_devices)
        self._serve_http()
        if self.schedules:
            self._start_schedules()
            from local_events import EventPumps  # webhooks: streams and queue, as on AWS
            self._events = EventPumps().start()
        if self.agent and self.demo_info:
            self.inbox = os.path.join(tempfile.mkdtemp(prefix="smsgw-demo-"), "inbox.jsonl")
            self._agent = start_demo_agent(self.url, self.demo_info["device_token"], self.inbox,
                                           echo=self.echo)
        return self

    def _serve_http(self):
        from chalice.config import Config
        from chalice.local import ChaliceRequestHandler, LocalDevServer

        from app import app

        class Handler(ChaliceRequestHandler):
            disable_nagle_algorithm = True  # else small answers wait ~40 ms for delayed ACKs

            def _generic_handle(self):
                # The local stand-in for API Gateway's requestContext.identity.sourceIp.
                self.local_gateway.event_converter.LOCAL_SOURCE_IP = self.client_address[0]
                super()._generic_handle()

            def log_message(self, *args):
                pass

        config = Config.create(chalice_stage="local", app_name="smsgw", lambda_timeout=60)
        self._http = LocalDevServer(app, config, "127.0.0.1", self.port, handler_cls=Handler)
        thread = threading.Thread(target=self._http.server.serve_forever, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_schedules(self):
        from chalice.app import ScheduledEventConfig

        import app as app_module
        for source in app_module.app.event_sources:
            if isinstance(source, ScheduledEventConfig):
                handler = getattr(app_module, source.name)
                interval = schedule_seconds(source.schedule_expression)
                thread = threading.Thread(target=self._every, args=(interval, handler, source.name),
                                          daemon=True, name=f"schedule-{source.name}")
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
                print(f"scheduled {handler} failed: {exc!r}", file=sys.stderr)
                result = {"error": repr(exc)}
            if log_path:
                with open(log_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"schedule": name, "at": time.time(),
                                             "result": result}, default=str) + "\n")

    def stop(self):
        self._stop.set()
        if self._events is not None:
            self._events.stop()
        if self._agent is not None:
            self._agent.stop()
        if self._http is not None:
            self._http.shutdown()
            self._http.server.server_close()
        if self._moto is not None:
            self._moto.stop()

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


def start_demo_agent(url: str, token: str, inbox: str | None = None, echo: bool = False):
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

    config = AgentConfig(url=url, token=token, backend="simulator", journal=":memory:",
                         mode=os.environ.get("SMSGW_LOCAL_AGENT_MODE", "gateway"),
                         poll_wait=int(os.environ.get("SMSGW_LOCAL_AGENT_WAIT", "1")),
                         sim_count=2, delivery_delay=float(
                             os.environ.get("SMSGW_LOCAL_AGENT_DELIVERY_DELAY", "1")),
                         incoming_seconds=2.0, inbox=inbox).check()
    phone = DemoPhone(config.failure_rate, config.delivery_delay, inbox=inbox)
    return Agent(config, backend=phone, journal=Journal(":memory:")).start()


def banner(gw: LocalGateway) -> str:
    d = gw.demo_info
    phone = "No phone is polling (--no-agent): messages stay pending until a device agent runs."
    if gw.inbox:
        phone = (f"A simulated phone sends for the demo device and prints each SMS below (OTP "
                 f"codes too, to try verify_otp).\nTo make it receive an SMS (get_history "
                 f"type=incoming), append a line to {gw.inbox}:\n  echo '{{\"phone_number\": "
                 f"\"+8801712345678\", \"message\": \"Hi there\"}}' >> {gw.inbox}")
    return f"""
SMS gateway running at {gw.url}  (AWS emulated by moto at {gw.aws_endpoint})

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
Dashboard: set the password of {d['dashboard_email']} (link works once) at
  {gw.url}{d['dashboard_set_password']}
{phone}
Admin CLI against this gateway: AWS_ENDPOINT_URL={gw.aws_endpoint} SMSGW_STAGE=local \\
  AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local python cli.py account list
Ctrl-C stops everything.
"""


@click.command()
@click.option("--port", type=int, default=lambda: int(os.environ.get("SMSGW_PORT", 8000)),
              show_default="8000 or $SMSGW_PORT", help="Port of the gateway on 127.0.0.1.")
@click.option("--no-agent", is_flag=True, help="Do not start the simulated demo phone.")
@click.option("--devices", "extra_devices", type=click.IntRange(0, 20), default=0,
              help="Register this many more devices (no agent) in the demo account.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the gateway's URL and demo credentials as one JSON line (for scripts).")
def main(port, no_agent, extra_devices, as_json):
    """Start the local SMS gateway with a demo account and device."""
    gw = LocalGateway(port=port, agent=not no_agent, extra_devices=extra_devices)
    gw.echo = not as_json
    try:
        gw.start()
    except OSError as exc:
        gw.stop()
        raise click.ClickException(f"cannot start on port {port}: {exc}")
    if as_json:
        click.echo(json.dumps({"url": gw.url, "aws_endpoint": gw.aws_endpoint, **gw.demo_info}))
    else:
        click.echo(banner(gw))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("\nstopping...", err=as_json)
    finally:
        gw.stop()
        click.echo("stopped.", err=as_json)


if __name__ == "__main__":
    main()
