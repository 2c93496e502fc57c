"""Batching of reports: the agent holds a `sent` report briefly so that the same message's
`delivered` travels with it, and the gateway records the pair with one write (and one SQS
delete), answering both. Exactly-once is unchanged: the soak (tests/e2e/test_soak.py) runs agents
with this batching on."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))

from smsgw_agent import config  # noqa: E402
from smsgw_agent.agent import Agent  # noqa: E402

from chalicelib.storage import aws  # noqa: E402
from chalicelib.storage.tables import Message  # noqa: E402
from tests import sending

TOKEN = "0123456789abcdef.secret"
JOB = {"message_id": 7, "phone_number": "+8801712345678", "message": "Hi", "sim_slot": 1,
       "expires_at": 2 ** 52, "kind": "sms"}


class RecordingClient:
    def __init__(self):
        self.calls = []
        self.last_alive = float("-inf")

    def report(self, reports):
        self.calls.append(reports)
        return [{"message_id": r["message_id"], "result": "ok"} for r in reports]


def _agent(tmp_path, **overrides):
    cfg = config.AgentConfig(url="http://127.0.0.1:9", token=TOKEN, backend="simulator",
                             journal=str(tmp_path / "j.sqlite3"), **overrides).check()
    agent = Agent(cfg)
    agent.client = RecordingClient()
    return agent


def _take(agent, job=JOB):
    """What Agent.step does with a job it received."""
    import time
    agent._received[job["message_id"]] = time.monotonic()
    agent.handle(job)


def test_sent_waits_for_delivered_and_both_go_in_one_call(tmp_path):
    agent = _agent(tmp_path, delivery_delay=0.0, report_hold=30)
    _take(agent)
    agent.flush_reports()  # the delivery receipt is picked up from the backend here
    assert agent.client.calls == [[{"message_id": 7, "status": "sent"},
                                   {"message_id": 7, "status": "delivered"}]]


def test_sent_alone_is_held_then_reported(tmp_path, monkeypatch):
    import time
    agent = _agent(tmp_path, delivery_delay=-1, report_hold=10)  # never delivered
    _take(agent)
    agent.flush_reports()
    assert agent.client.calls == [] and 0 < agent._hold_ends_in() <= 10
    later = time.monotonic() + 10
    monkeypatch.setattr(time, "monotonic", lambda: later)
    agent.flush_reports()
    assert agent.client.calls == [[{"message_id": 7, "status": "sent"}]]
    assert agent._hold_ends_in() is None


def test_the_hold_ends_within_the_lease_whatever_delayed_the_send(tmp_path, monkeypatch):
    """A job received 25 s ago (e.g. held for its SIM's pace) is held 5 s more at most; one not
    received by this run (re-reported from the journal after a restart) is not held at all."""
    import time

    from smsgw_agent.agent import HOLD_WITHIN_LEASE
    agent = _agent(tmp_path, delivery_delay=-1, report_hold=30)
    start = time.monotonic()
    agent._received[7] = start - (HOLD_WITHIN_LEASE - 5)
    agent.handle(JOB)
    agent.flush_reports()
    assert agent.client.calls == [] and 0 < agent._hold_ends_in() <= 5
    monkeypatch.setattr(time, "monotonic", lambda: start + 5)
    agent.flush_reports()
    assert agent.client.calls == [[{"message_id": 7, "status": "sent"}]]
    agent.handle(dict(JOB, message_id=8))  # never received by this run
    agent.flush_reports()
    assert agent.client.calls[-1] == [{"message_id": 8, "status": "sent"}]


def test_stopping_flushes_held_reports(tmp_path):
    agent = _agent(tmp_path, delivery_delay=-1, report_hold=30)
    _take(agent)
    agent.flush_reports(force=True)
    assert agent.client.calls == [[{"message_id": 7, "status": "sent"}]]


def test_report_hold_is_bounded(tmp_path):
    with pytest.raises(config.ConfigError, match="report_hold"):
        config.AgentConfig(url="http://x", token=TOKEN, report_hold=61).check()


def _post(client, token, body):
    answer = client.http.post("/device/reports", body=json.dumps(body), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return answer.status_code, json.loads(answer.body)


def test_gateway_records_sent_and_delivered_with_one_write(client, account, aws_calls):
    acct, _, device, token = account
    message_id = sending.send(acct.account_id, device, "+8801712345678", "Hi").message.message_id
    assert client.http.get("/device/jobs?wait=0&max=10", headers={
        "Authorization": f"Bearer {token}"}).status_code == 200
    _post(client, token, {"reports": [{"message_id": 1, "status": "delivered"}]})  # warm up
    aws_calls.clear()
    status, body = _post(client, token, {"reports": [
        {"message_id": message_id, "status": "sent"},
        {"message_id": message_id, "status": "delivered"}]})
    assert status == 200
    assert body["results"] == [{"message_id": message_id, "result": "ok", "status": "delivered"}
                               ] * 2
    assert [op for op in aws_calls if op[0] != "dynamodb" or op[1] != "GetItem"] == [
        ("dynamodb", "UpdateItem"), ("sqs", "DeleteMessageBatch")]
    done = Message.get(acct.account_id, message_id, consistent_read=True)
    assert done.status == "delivered" and done.processed_at and done.delivered_at
    assert done.open_due is None
    attrs = aws.sqs().get_queue_attributes(QueueUrl=device.queue_url,
                                           AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == attrs[
        "ApproximateNumberOfMessagesNotVisible"] == "0"


def test_a_batch_of_reports_deletes_its_sqs_messages_in_one_request(client, account, aws_calls):
    acct, _, device, token = account
    sent = [sending.send(acct.account_id, device, "+8801712345678", f"m{n}").message.message_id
            for n in range(12)]
    for _ in range(2):
        client.http.get("/device/jobs?wait=0&max=10", headers={"Authorization": f"Bearer {token}"})
    aws_calls.clear()
    status, body = _post(client, token, {"reports": [
        {"message_id": m, "status": s} for m in sent for s in ("sent", "delivered")]})
    assert status == 200 and {r["result"] for r in body["results"]} == {"ok"}
    deletes = [params for service, op, params in aws_calls.requests if service == "sqs"]
    assert [len(p["Entries"]) for p in deletes] == [10, 2]  # 12 messages, two requests
    assert [op for op in aws_calls if op == ("dynamodb", "UpdateItem")] == [
        ("dynamodb", "UpdateItem")] * 12
    attrs = aws.sqs().get_queue_attributes(QueueUrl=device.queue_url,
                                           AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == attrs[
        "ApproximateNumberOfMessagesNotVisible"] == "0"
