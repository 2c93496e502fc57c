"""The agent's default mode ("auto"): it asks the gateway whether direct polling is offered
(POST /device/credentials) and falls back to gateway long-polls when it is not, in both
directions: direct -> gateway when credentials stop being offered (stage turned it off, or an
older gateway without the route), gateway -> direct at the next probe once they are offered.

First against fakes (every branch), then over real HTTP: the real handlers served by chalice's
local server on loopback, moto as AWS, the agent's real GatewayClient and boto3 SQS client."""
import json
import sys
import threading
from pathlib import Path

import boto3
import pytest

from tests import sending

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))

from smsgw_agent import config  # noqa: E402
from smsgw_agent.agent import Agent  # noqa: E402
from smsgw_agent.client import GatewayClient, Rejected, Retryable  # noqa: E402
from smsgw_agent.direct import (  # noqa: E402
    DIRECT_FAILURES_BEFORE_FALLBACK,
    PROBE_SECONDS,
    AutoPoller,
    DirectPoller,
)

TOKEN = "0123456789abcdef.secret"


class FakeClient:
    """A gateway: offers direct polling while `offered` is None, else answers that status."""

    def __init__(self):
        self.offered = None
        self.failing = False
        self.asked = 0
        self.polls = 0

    def credentials(self):
        self.asked += 1
        if self.failing:
            raise Retryable("HTTP 503")
        if self.offered is not None:
            raise Rejected(self.offered, "not offered")
        return {"access_key_id": "AK", "secret_access_key": "s", "session_token": "t",
                "expiration": 2 ** 50, "queue_url": "https://sqs.us-east-1.amazonaws.com/1/q",
                "region": "us-east-1", "endpoint_url": None, "lease_seconds": 60}

    def jobs(self, wait, max_jobs):
        self.polls += 1
        return []


class FakeSqs:
    def __init__(self):
        self.receives = 0

    def receive_message(self, **params):
        self.receives += 1
        return {}


@pytest.fixture
def auto():
    now = [1000.0]
    client, sqs = FakeClient(), FakeSqs()
    direct = DirectPoller(client, clock=lambda: 0, sqs_factory=lambda c, t: sqs)
    poller = AutoPoller(client, clock=lambda: now[0], direct=direct, has_boto3=lambda: True)
    return poller, client, sqs, now


def test_direct_is_used_when_the_gateway_offers_it(auto):
    poller, client, sqs, _ = auto
    poller.jobs(0, 10)
    poller.jobs(0, 10)
    assert (poller.mode, client.asked, sqs.receives, client.polls) == ("direct", 1, 2, 0)


@pytest.mark.parametrize("status", [409, 404, 403, 405])
def test_not_offered_falls_back_to_gateway_polls_and_probes_again_later(auto, status):
    poller, client, sqs, now = auto
    client.offered = status
    poller.jobs(0, 10)
    assert (poller.mode, client.asked, client.polls, sqs.receives) == ("gateway", 1, 1, 0)
    now[0] += PROBE_SECONDS - 1
    poller.jobs(0, 10)
    assert client.asked == 1  # no probe before PROBE_SECONDS
    client.offered = None  # the stage turns direct polling on: gateway -> direct
    now[0] += 1
    poller.jobs(0, 10)
    assert (poller.mode, client.asked, client.polls, sqs.receives) == ("direct", 2, 2, 1)


def test_direct_falls_back_when_renewal_is_refused(auto):
    poller, client, sqs, now = auto
    poller.jobs(0, 10)
    poller.direct.credentials = None  # credentials due for renewal
    client.offered = 404  # ... and the gateway no longer offers them: direct -> gateway
    poller.jobs(0, 10)
    assert (poller.mode, client.polls, sqs.receives) == ("gateway", 1, 1)


def test_direct_polling_that_keeps_failing_falls_back_until_the_next_probe(auto):
    poller, client, sqs, now = auto
    client.failing = True  # e.g. the device role is broken: credentials answer 503
    for _ in range(DIRECT_FAILURES_BEFORE_FALLBACK - 1):
        with pytest.raises(Retryable):  # the agent backs off and retries
            poller.jobs(0, 10)
    poller.jobs(0, 10)
    assert (poller.mode, client.polls) == ("gateway", 1)
    client.failing = False
    now[0] += PROBE_SECONDS
    poller.jobs(0, 10)
    assert (poller.mode, sqs.receives) == ("direct", 1)


def test_a_bad_token_is_not_mistaken_for_no_direct_mode(auto):
    poller, client, _, _ = auto
    client.offered = 401
    with pytest.raises(Rejected):
        poller.jobs(0, 10)


def test_without_boto3_auto_polls_the_gateway_and_never_probes():
    client = FakeClient()
    poller = AutoPoller(client, has_boto3=lambda: False)
    poller.jobs(0, 10)
    assert (client.asked, client.polls) == (0, 1)


def test_auto_is_the_default_mode(tmp_path):
    loaded = config.load(None, {"SMSGW_URL": "http://x", "SMSGW_DEVICE_TOKEN": TOKEN})
    assert loaded.mode == "auto"
    agent = Agent(config.AgentConfig(url="http://x", token=TOKEN, backend="simulator",
                                     journal=str(tmp_path / "j.sqlite3")).check())
    assert isinstance(agent.poller, AutoPoller)


# --- over HTTP ---------------------------------------------------------------------------------

def _serve(chalice_app):
    from chalice.config import Config
    from chalice.local import LocalDevServer

    from local_gateway import free_port
    port = free_port()
    server = LocalDevServer(chalice_app, Config.create(chalice_stage="local", app_name="smsgw",
                                                       lambda_timeout=60), "127.0.0.1", port)
    threading.Thread(target=server.server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
def role_arn(aws_mock):
    from chalicelib.core import settings
    return boto3.client("iam", region_name="us-east-1").create_role(
        RoleName="DeviceRole", Path=settings.current().device_role_path(),
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]


def _send(account, text):
    acct, _, device, _ = account
    return sending.send(acct.account_id, device, "+8801712345678", text).message.message_id


def test_over_http_direct_then_gateway_then_direct(account, role_arn, settings_override):
    from app import app
    settings_override(device_role_arn=role_arn)
    server, url = _serve(app)
    try:
        now = [0.0]
        client = GatewayClient(url, account[3])
        poller = AutoPoller(client, clock=lambda: now[0])
        first = _send(account, "one")
        assert [j["message_id"] for j in poller.jobs(0, 10)] == [first]
        assert poller.mode == "direct"
        # The stage stops offering direct polling; the credentials come up for renewal.
        settings_override(device_role_arn="")
        poller.direct.credentials = None
        second = _send(account, "two")
        assert [j["message_id"] for j in poller.jobs(0, 10)] == [second]
        assert poller.mode == "gateway"
        settings_override(device_role_arn=role_arn)
        now[0] += PROBE_SECONDS
        third = _send(account, "three")
        assert [j["message_id"] for j in poller.jobs(0, 10)] == [third]
        assert poller.mode == "direct"
    finally:
        server.server.shutdown()


def test_over_http_an_older_gateway_without_the_route_gets_gateway_polls(
        account, role_arn, monkeypatch, settings_override):
    """A gateway from before direct polling: the same handlers without /device/credentials and
    /device/claims."""
    from app import app
    settings_override(device_role_arn=role_arn)
    monkeypatch.setattr(app, "routes", {
        path: methods for path, methods in app.routes.items()
        if path not in ("/device/credentials", "/device/claims")})
    server, url = _serve(app)
    try:
        poller = AutoPoller(GatewayClient(url, account[3]))
        message_id = _send(account, "old gateway")
        assert [j["message_id"] for j in poller.jobs(0, 10)] == [message_id]
        assert poller.mode == "gateway"
    finally:
        server.server.shutdown()


# --- liveness rides on other calls ---------------------------------------------------------------

class AliveClient:
    """The gateway as the agent's loop sees it; polls show liveness like heartbeats do."""

    def __init__(self, clock, polls_show_liveness):
        self.clock = clock
        self.polls_show_liveness = polls_show_liveness
        self.last_alive = float("-inf")
        self.beats = []

    def heartbeat(self, app_state, timeout=None, **status):
        self.beats.append(self.clock[0])
        self.last_alive = self.clock[0]
        return {"heartbeat_seconds": 240}

    def jobs(self, wait, max_jobs):
        if self.polls_show_liveness:
            self.last_alive = self.clock[0]
        return []


@pytest.mark.parametrize("polls_show_liveness,expected", [
    (True, [0, 900]),  # busy: only the 15-minute status refresh
    (False, [0, 250, 500, 750, 1000]),  # idle in direct mode: every interval
])
def test_heartbeats_are_skipped_while_other_calls_show_liveness(tmp_path, monkeypatch,
                                                                 polls_show_liveness, expected):
    import smsgw_agent.agent as agent_module
    now = [0.0]
    monkeypatch.setattr(agent_module.time, "monotonic", lambda: now[0])
    agent = Agent(config.AgentConfig(url="http://x", token=TOKEN, backend="simulator",
                                     mode="gateway", journal=str(tmp_path / "j.sqlite3")).check())
    agent.client = agent.poller = AliveClient(now, polls_show_liveness)
    for t in range(0, 1001, 50):
        now[0] = float(t)
        agent.step()
    assert agent.client.beats == expected
