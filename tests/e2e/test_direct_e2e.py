"""Direct polling end to end over HTTP: a real gateway process (local_gateway.py, moto server as
AWS) and a real agent process in direct mode (SMSGW_POLL_MODE=direct) that long-polls its SQS
queue with the credentials the gateway vends and claims what it receives. Waits poll with
generous deadlines; nothing asserts how long anything took."""
import os
import time

import pytest
from test_device_e2e import (
    LEASE,
    AgentProcess,
    _gateway,
    api,
    device,
    queue_copy,
    send_sms,
    status,
    until,
)


@pytest.fixture(scope="module")
def direct_gateway():
    """A gateway without an agent, two extra devices and a LEASE-second lease; direct mode is
    on (the local gateway creates the device role in moto's IAM)."""
    yield from _gateway("--no-agent", "--devices", "2", SMSGW_LEASE_SECONDS=str(LEASE))


def direct_agent(gw, token, tmp_path):
    """The agent process, told by its environment to poll SQS directly (-v: it logs that)."""
    os.environ["SMSGW_POLL_MODE"] = "direct"
    try:
        return AgentProcess(gw, token, tmp_path, "-v")
    finally:
        os.environ.pop("SMSGW_POLL_MODE")


def stopped_in_direct_mode(agent):
    assert agent.stop() == 0
    log = agent.proc.stderr.read()
    assert "direct polling" in log and "direct polling credentials valid until" in log, log


def test_credentials_name_the_devices_queue(direct_gateway):
    dev = direct_gateway["devices"][0]
    code, body = device(direct_gateway, dev["device_token"], "POST", "/device/credentials", {})
    assert code == 200, body
    assert body["queue_url"].endswith(f"/smsgw-local-device-{dev['device_uid']}")
    assert body["endpoint_url"] == direct_gateway["aws_endpoint"]
    assert body["expiration"] > time.time() * 1000


def test_direct_agent_sends_and_reports(direct_gateway, tmp_path):
    dev = direct_gateway["devices"][0]
    agent = direct_agent(direct_gateway, dev["device_token"], tmp_path)
    try:
        message_id = send_sms(direct_gateway, dev["device_uid"], "Direct hello")
        data = until(lambda: (lambda d: d if d["status"] == "delivered" else None)(
            status(direct_gateway, message_id)), what="delivered")
        assert data["processed_at"] and data["delivered_at"]
        assert len(agent.sends(message_id)) == 1
        devices = api(direct_gateway, action="device_status")["data"]
        assert [d["status"] for d in devices if d["device_uid"] == dev["device_uid"]] == [
            "running"]
    finally:
        stopped_in_direct_mode(agent)


def test_direct_agent_sends_a_job_queued_twice_once(direct_gateway, tmp_path):
    dev = direct_gateway["devices"][1]
    message_id = send_sms(direct_gateway, dev["device_uid"], "Twice queued, direct")
    sqs, queue_url = queue_copy(direct_gateway, dev["device_uid"], message_id,
                                "Twice queued, direct")
    agent = direct_agent(direct_gateway, dev["device_token"], tmp_path)
    try:
        until(lambda: status(direct_gateway, message_id)["status"] == "delivered",
              what="delivered")

        def queue_empty():
            a = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])[
                "Attributes"]
            return a["ApproximateNumberOfMessages"] == a[
                "ApproximateNumberOfMessagesNotVisible"] == "0"
        # The second copy is skipped while the lease lives, claimed again once its visibility
        # timeout ends and dropped (deleted by the gateway) because the message is settled.
        until(queue_empty, what="both copies consumed")
        assert len(agent.sends(message_id)) == 1
    finally:
        stopped_in_direct_mode(agent)


def test_agent_without_a_mode_discovers_direct_polling(direct_gateway, tmp_path):
    """The default (mode auto): the agent asks the gateway, is offered direct polling, uses it."""
    dev = direct_gateway["devices"][0]
    assert "SMSGW_POLL_MODE" not in os.environ
    agent = AgentProcess(direct_gateway, dev["device_token"], tmp_path, "-v")
    try:
        message_id = send_sms(direct_gateway, dev["device_uid"], "Discovered direct")
        until(lambda: status(direct_gateway, message_id)["status"] == "delivered",
              what="delivered")
        assert len(agent.sends(message_id)) == 1
    finally:
        stopped_in_direct_mode(agent)
