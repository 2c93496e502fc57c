"""The device protocol end to end over HTTP: real gateway processes (local_gateway.py) and real
agent processes (smsgw-agent with the simulator backend). Waits poll with generous deadlines;
nothing asserts how long anything took."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
import requests

from tests.localgw_helpers import gateway_fixture

ROOT = Path(__file__).resolve().parents[2]
LEASE = 2


def until(check, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def api(gw, **params):
    return requests.post(f"{gw['url']}/myAPI.php", data={"api_key": gw["api_key"], **params},
                         timeout=30).json()


def send_sms(gw, device_uid, text="Hello World"):
    answer = api(gw, action="send_sms", device_uid=device_uid, phone_number="+8801712345678",
                 message=text, sim_slot="1")
    assert answer["status"] == "success", answer
    return answer["data"]["message_id"]


def status(gw, message_id):
    return api(gw, action="check_status", message_id=str(message_id))["data"]


def device(gw, token, method, path, body=None):
    answer = requests.request(method, gw["url"] + path, json=body, timeout=40,
                              headers={"Authorization": f"Bearer {token}"})
    return answer.status_code, answer.json()


def _gateway(*args, **env_extra):
    yield from gateway_fixture(*args, env=env_extra)


@pytest.fixture(scope="module")
def demo_gateway():
    """`python local_gateway.py` as the README runs it: with the simulated demo phone."""
    yield from _gateway()


@pytest.fixture(scope="module")
def bare_gateway():
    """A gateway without an agent, three extra devices and a LEASE-second lease."""
    yield from _gateway("--no-agent", "--devices", "3", SMSGW_LEASE_SECONDS=str(LEASE))


class AgentProcess:
    def __init__(self, gw, token, tmp_path, *extra):
        self.ledger = tmp_path / "ledger.jsonl"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "agent"), "SMSGW_URL": gw["url"],
               "SMSGW_DEVICE_TOKEN": token}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smsgw_agent", "--backend", "simulator", "--journal",
             str(tmp_path / "journal.sqlite3"), "--ledger", str(self.ledger), "--poll-wait",
             "1", "--delivery-delay", "0.2", "--inbox", str(tmp_path / "inbox.jsonl"), *extra],
            env=env, stderr=subprocess.PIPE, text=True)

    def sends(self, message_id):
        if not self.ledger.exists():
            return []
        return [e for e in map(json.loads, self.ledger.read_text().splitlines())
                if e["message_id"] == message_id]

    def wait(self, timeout=30):
        return self.proc.wait(timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            return self.proc.wait(30)
        return self.proc.returncode


def test_send_reaches_sent_then_delivered_via_the_demo_agent(demo_gateway):
    message_id = send_sms(demo_gateway, demo_gateway["device_uid"])
    seen = []

    def delivered():
        data = status(demo_gateway, message_id)
        seen.append(data["status"])
        return data if data["status"] == "delivered" else None
    until(delivered, what="delivered")
    # Read again: moto applies an UpdateItem's actions one by one without isolating them from a
    # concurrent GetItem (DynamoDB does), so the poll above may have seen the status before the
    # time stamps written in the same update.
    data = status(demo_gateway, message_id)
    assert data["processed_at"] and data["delivered_at"]
    assert set(seen) <= {"pending", "processing", "sent", "delivered"}
    devices = api(demo_gateway, action="device_status")["data"]
    assert [d["status"] for d in devices if d["device_uid"] == demo_gateway["device_uid"]] == [
        "running"]


def test_incoming_sms_shows_in_history(demo_gateway):
    item = {"device_message_id": "e2e-1", "phone_number": "+8801812345678",
            "message": "Reply from a customer", "sim_slot": 1,
            "received_at": int(time.time() * 1000)}
    for _ in range(2):  # pushed twice, stored once
        code, body = device(demo_gateway, demo_gateway["device_token"], "POST",
                            "/device/incoming", {"messages": [item]})
        assert code == 200, body
    history = api(demo_gateway, action="get_history", type="incoming", limit="50")["data"]
    mine = [m for m in history["messages"] if m["message"] == "Reply from a customer"]
    assert len(mine) == 1 and mine[0]["phone_number"] == "+8801812345678"


def test_agent_pushes_sms_from_its_inbox(bare_gateway, tmp_path):
    token = bare_gateway["devices"][2]["device_token"]
    (tmp_path / "inbox.jsonl").write_text(json.dumps(
        {"phone_number": "+8801912345678", "message": "Arrived on the phone"}) + "\n")
    agent = AgentProcess(bare_gateway, token, tmp_path, "--push-existing")
    try:
        def in_history():
            data = api(bare_gateway, action="get_history", type="incoming", limit="50")["data"]
            return [m for m in data["messages"] if m["message"] == "Arrived on the phone"]
        found = until(in_history, what="incoming SMS in history")
        assert [(m["type"], m["phone_number"]) for m in found] == [("incoming",
                                                                     "+8801912345678")]
    finally:
        assert agent.stop() == 0


def test_agent_killed_after_taking_a_job_sends_it_once(bare_gateway, tmp_path):
    dev = bare_gateway["devices"][0]
    message_id = send_sms(bare_gateway, dev["device_uid"])
    crashed = AgentProcess(bare_gateway, dev["device_token"], tmp_path, "--crash-after", "take")
    assert crashed.wait() == 3
    assert crashed.sends(message_id) == []
    assert status(bare_gateway, message_id)["status"] == "processing"
    agent = AgentProcess(bare_gateway, dev["device_token"], tmp_path)  # same journal
    try:
        until(lambda: status(bare_gateway, message_id)["status"] == "delivered",
              what="delivered after the lease")
        assert len(agent.sends(message_id)) == 1
    finally:
        assert agent.stop() == 0
    # Ctrl-C told the gateway the app stopped.
    devices = api(bare_gateway, action="device_status")["data"]
    assert [d["status"] for d in devices if d["device_uid"] == dev["device_uid"]] == ["stopped"]


def test_agent_killed_after_sending_reports_from_its_journal_not_resends(bare_gateway,
                                                                         tmp_path):
    dev = bare_gateway["devices"][0]
    message_id = send_sms(bare_gateway, dev["device_uid"])
    crashed = AgentProcess(bare_gateway, dev["device_token"], tmp_path, "--crash-after", "send")
    assert crashed.wait() == 3
    assert len(crashed.sends(message_id)) == 1
    assert status(bare_gateway, message_id)["status"] == "processing"
    time.sleep(LEASE + 1)  # let the lease lapse too: the job will be handed out again
    agent = AgentProcess(bare_gateway, dev["device_token"], tmp_path)
    try:
        until(lambda: status(bare_gateway, message_id)["status"] in ("sent", "delivered"),
              what="sent reported from the journal")
        assert len(agent.sends(message_id)) == 1
    finally:
        agent.stop()


def _queue_url(gw, device_uid):
    sqs = boto3.client("sqs", endpoint_url=gw["aws_endpoint"], region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    return sqs, sqs.get_queue_url(QueueName=f"smsgw-local-device-{device_uid}")["QueueUrl"]


def queue_copy(gw, device_uid, message_id, text):
    """A second copy of a sent message's job on its device's queue, as SQS's at-least-once
    delivery may produce. Returns (sqs client, queue url)."""
    data = status(gw, message_id)
    sqs, queue_url = _queue_url(gw, device_uid)
    job = {"message_id": message_id, "device_uid": device_uid,
           "phone_number": data["phone_number"], "message": text, "sim_slot": 1,
           "expires_at": int(time.time() * 1000) + 3600_000, "kind": "sms"}
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(job))
    return sqs, queue_url


def test_the_same_job_delivered_twice_is_sent_once(bare_gateway, tmp_path):
    dev = bare_gateway["devices"][1]
    message_id = send_sms(bare_gateway, dev["device_uid"], "Twice queued")
    sqs, queue_url = queue_copy(bare_gateway, dev["device_uid"], message_id, "Twice queued")
    agent = AgentProcess(bare_gateway, dev["device_token"], tmp_path)
    try:
        until(lambda: status(bare_gateway, message_id)["status"] == "delivered",
              what="delivered")

        def queue_empty():
            attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
            a = attrs["Attributes"]
            return a["ApproximateNumberOfMessages"] == a[
                "ApproximateNumberOfMessagesNotVisible"] == "0"
        until(queue_empty, what="both copies consumed")
        assert len(agent.sends(message_id)) == 1
    finally:
        agent.stop()


def test_a_job_taken_by_a_silent_device_is_sent_after_the_lease(bare_gateway, tmp_path):
    dev = bare_gateway["devices"][1]
    message_id = send_sms(bare_gateway, dev["device_uid"], "Silent first taker")
    code, body = device(bare_gateway, dev["device_token"], "GET", "/device/jobs?wait=5")
    assert code == 200 and [j["message_id"] for j in body["jobs"]] == [message_id]
    # ... and that poller goes silent. The next poll after the lease gets the job.
    agent = AgentProcess(bare_gateway, dev["device_token"], tmp_path)
    try:
        until(lambda: status(bare_gateway, message_id)["status"] == "delivered",
              what="delivered by the next poller")
        assert len(agent.sends(message_id)) == 1
    finally:
        agent.stop()


def test_a_device_token_cannot_report_for_another_devices_message(bare_gateway):
    owner, other = bare_gateway["devices"][2], bare_gateway["devices"][1]
    message_id = send_sms(bare_gateway, owner["device_uid"], "Not yours")
    code, body = device(bare_gateway, owner["device_token"], "GET", "/device/jobs?wait=5")
    assert [j["message_id"] for j in body["jobs"]] == [message_id]
    for token in (other["device_token"], bare_gateway["device_token"]):
        code, body = device(bare_gateway, token, "POST", "/device/reports",
                            {"reports": [{"message_id": message_id, "status": "sent"}]})
        assert code == 200 and body["results"][0]["result"] == "rejected"
    assert status(bare_gateway, message_id)["status"] == "processing"
    code, body = device(bare_gateway, "0123456789abcdef.forged", "POST", "/device/reports",
                        {"reports": [{"message_id": message_id, "status": "sent"}]})
    assert code == 401
    code, body = device(bare_gateway, owner["device_token"], "POST", "/device/reports",
                        {"reports": [{"message_id": message_id, "status": "sent"}]})
    assert body["results"][0]["result"] == "ok"


def operator_cli(gw, *args):
    """`smsgw operator ...` against this gateway's emulated AWS, as an operator runs it."""
    env = {**os.environ, "AWS_ENDPOINT_URL": gw["aws_endpoint"], "SMSGW_STAGE": "local",
           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
    done = subprocess.run([sys.executable, "cli.py", "operator", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_suspended_accounts_phone_waits_and_loses_nothing(bare_gateway, tmp_path):
    """Suspension is the operator's pause, not a revoked token: the agent keeps asking instead
    of exiting, keeps the `delivered` report and the SMS it received meanwhile, and hands them
    over once the account is resumed."""
    dev = bare_gateway["devices"][0]
    agent = AgentProcess(bare_gateway, dev["device_token"], tmp_path, "--delivery-delay", "4")
    message_id = send_sms(bare_gateway, dev["device_uid"], "Before the pause")
    try:
        until(lambda: agent.sends(message_id), what="the phone sent it")
        operator_cli(bare_gateway, "suspend", bare_gateway["account_id"])
        try:
            with open(tmp_path / "inbox.jsonl", "a") as inbox:
                inbox.write(json.dumps({"phone_number": "+8801912345670",
                                        "message": "Received while suspended"}) + "\n")
            time.sleep(8)  # the delivery report fell due and the inbox was read meanwhile
            assert agent.proc.poll() is None, agent.proc.stderr.read()
            refused = api(bare_gateway, action="check_status", message_id=str(message_id))
            assert refused["data"]["error_code"] == "account_suspended", refused
        finally:
            operator_cli(bare_gateway, "resume", bare_gateway["account_id"])
        # the gateway's warm account cache may still say suspended for a few seconds
        until(lambda: status(bare_gateway, message_id).get("status") == "delivered",
              what="the report kept through the suspension")

        def in_history():
            data = api(bare_gateway, action="get_history", type="incoming", limit="50")["data"]
            return [m for m in data["messages"] if m["message"] == "Received while suspended"]
        assert len(until(in_history, what="the SMS received while suspended")) == 1
        assert len(agent.sends(message_id)) == 1
    finally:
        assert agent.stop() == 0
    assert "the account is suspended" in agent.proc.stderr.read()
