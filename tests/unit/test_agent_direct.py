"""The agent's direct polling (smsgw_agent.direct) against a fake gateway client and a fake SQS
client: when credentials are fetched and renewed, what is received, what is claimed, and that
only leased jobs reach the sender."""
import json
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))

from smsgw_agent import config  # noqa: E402
from smsgw_agent.agent import Agent  # noqa: E402
from smsgw_agent.client import Retryable  # noqa: E402
from smsgw_agent.direct import REFRESH_MARGIN, DirectPoller  # noqa: E402

TOKEN = "0123456789abcdef.secret"
HOUR_MS = 3600_000


class FakeGateway:
    def __init__(self, now):
        self.now = now
        self.issued = 0
        self.claims = []
        self.verdicts = {}  # message_id -> result; default leased

    def credentials(self):
        self.issued += 1
        return {"access_key_id": f"AK{self.issued}", "secret_access_key": "s",
                "session_token": "t", "expiration": int(self.now[0] * 1000) + HOUR_MS,
                "queue_url": "https://sqs.us-east-1.amazonaws.com/1/smsgw-x-device-ab",
                "region": "us-east-1", "endpoint_url": None, "lease_seconds": 60}

    def claim(self, claims):
        self.claims.append(claims)
        return [{"message_id": c["message_id"],
                 "result": "drop" if c["message_id"] is None
                 else self.verdicts.get(c["message_id"], "leased")} for c in claims]


class FakeSqs:
    def __init__(self, credentials):
        self.credentials = credentials
        self.calls = []
        self.queue = []
        self.error = None

    def receive_message(self, **params):
        self.calls.append(params)
        if self.error:
            raise self.error
        batch, self.queue = self.queue, []
        return {"Messages": batch} if batch else {}


@pytest.fixture
def direct():
    now = [1_000_000.0]
    gateway = FakeGateway(now)
    made = []

    def factory(credentials, read_timeout):
        made.append(FakeSqs(credentials))
        return made[-1]
    poller = DirectPoller(gateway, clock=lambda: now[0], sqs_factory=factory)
    return poller, gateway, made, now


def job(message_id):
    return {"message_id": message_id, "phone_number": "+8801712345678", "message": "Hi",
            "sim_slot": 1, "expires_at": 2 ** 52, "kind": "sms"}


def sqs_message(body, handle):
    return {"Body": body if isinstance(body, str) else json.dumps(body), "ReceiptHandle": handle,
            "MessageId": handle}


def test_credentials_are_fetched_once_and_renewed_before_they_expire(direct):
    poller, gateway, made, now = direct
    assert poller.jobs(20, 10) == []
    assert gateway.issued == 1 and made[0].credentials["access_key_id"] == "AK1"
    assert gateway.claims == []  # an idle poll is one SQS call and no gateway call
    now[0] += 3600 - REFRESH_MARGIN - 1  # just inside the validity minus the margin
    poller.jobs(20, 10)
    assert gateway.issued == 1 and len(made) == 1 and len(made[0].calls) == 2
    now[0] += 1  # REFRESH_MARGIN seconds before expiry: renewed
    poller.jobs(20, 10)
    assert gateway.issued == 2 and made[-1].credentials["access_key_id"] == "AK2"
    assert len(made[-1].calls) == 1


def test_receive_asks_for_the_lease_as_visibility_timeout(direct):
    poller, _, made, _ = direct
    poller.jobs(7, 10)
    assert made[0].calls == [{
        "QueueUrl": "https://sqs.us-east-1.amazonaws.com/1/smsgw-x-device-ab",
        "MaxNumberOfMessages": 10, "WaitTimeSeconds": 7, "VisibilityTimeout": 60}]


def receive_fails_once(poller, made, code):
    """The first receive works; the next answers the SQS error `code`: Retryable."""
    poller.jobs(0, 10)
    made[0].error = ClientError({"Error": {"Code": code, "Message": "x"}}, "ReceiveMessage")
    with pytest.raises(Retryable):
        poller.jobs(0, 10)


def test_expired_credentials_are_retried_with_new_ones(direct):
    poller, gateway, made, _ = direct
    receive_fails_once(poller, made, "ExpiredToken")
    poller.jobs(0, 10)
    assert gateway.issued == 2 and len(made) == 2


def test_other_sqs_errors_are_retryable_and_keep_the_credentials(direct):
    poller, gateway, made, _ = direct
    receive_fails_once(poller, made, "ServiceUnavailable")
    assert gateway.issued == 1


def test_only_leased_jobs_are_returned_and_every_message_is_claimed(direct):
    poller, gateway, made, _ = direct
    poller.jobs(0, 10)
    gateway.verdicts = {2: "skip", 3: "drop"}
    made[0].queue = [sqs_message(job(1), "h1"), sqs_message(job(2), "h2"),
                     sqs_message(job(3), "h3"), sqs_message("garbage", "h4"),
                     sqs_message({"message_id": True}, "h5")]
    assert poller.jobs(0, 10) == [job(1)]
    assert gateway.claims == [[{"message_id": 1, "receipt_handle": "h1"},
                               {"message_id": 2, "receipt_handle": "h2"},
                               {"message_id": 3, "receipt_handle": "h3"},
                               {"message_id": None, "receipt_handle": "h4"},
                               {"message_id": None, "receipt_handle": "h5"}]]


def test_agent_in_direct_mode_sends_leased_jobs_once(tmp_path, direct):
    poller, gateway, made, _ = direct
    cfg = config.AgentConfig(url="http://127.0.0.1:9", token=TOKEN, backend="simulator",
                             mode="direct", journal=str(tmp_path / "j.sqlite3")).check()
    agent = Agent(cfg)
    assert type(agent.poller).__name__ == "DirectPoller"
    agent.poller = poller
    poller.jobs(0, 10)
    made[0].queue = [sqs_message(job(5), "a"), sqs_message(job(5), "b")]  # two copies
    gateway.verdicts = {}
    for job_ in poller.jobs(0, 10):
        agent.handle(job_)
    assert [e["message_id"] for e in agent.backend.ledger] == [5]  # journal: sent once


def test_mode_setting(tmp_path):
    loaded = config.load(None, {"SMSGW_URL": "http://x", "SMSGW_DEVICE_TOKEN": TOKEN,
                                "SMSGW_POLL_MODE": "direct"})
    assert loaded.mode == "direct"
    assert config.load(None, {"SMSGW_URL": "http://x", "SMSGW_DEVICE_TOKEN": TOKEN}).mode == \
        "auto"
    with pytest.raises(config.ConfigError, match="mode"):
        config.load(None, {"SMSGW_URL": "http://x", "SMSGW_DEVICE_TOKEN": TOKEN,
                           "SMSGW_POLL_MODE": "push"})
