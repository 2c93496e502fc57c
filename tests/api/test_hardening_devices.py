"""Issue 14, part 3: one device token cannot hold more than MAX_LIVE_POLLS polls, and a removed
device is refused (401 device_removed) on its next request, with nothing stored, even by a
container that still has it cached."""
import json
import logging
import threading
import time
from collections import Counter

import boto3
import pytest

from chalicelib.core import settings
from chalicelib.domain import devices
from chalicelib.storage import tables
from chalicelib.storage.tables import Message
from chalicelib.surfaces import device_api
from chalicelib.surfaces.request import HttpRequest
from tests import sending

PHONE = "+8801712345678"


def auth(token):
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def device_call(endpoint, headers, query, body):
    """/device/<endpoint> as app.py hands it over; the JSON body decoded."""
    method = "GET" if endpoint == "jobs" else "POST"
    status, answer_headers, text = device_api.handle(HttpRequest.of(
        method, f"/device/{endpoint}", headers=headers, query=query, body=body))
    return status, answer_headers, json.loads(text)


def poll(token, wait):
    return device_call("jobs", auth(token), {"wait": [str(wait)]}, None)


def test_at_most_max_live_polls_per_device(account, atomic_moto):
    """Real threads, each a poll as its own Lambda would make it: only MAX_LIVE_POLLS wait, the
    others are refused at once with 429 and a Retry-After."""
    _, _, device, token = account
    results = []
    start = threading.Barrier(6)

    def one():
        start.wait()
        began = time.monotonic()
        status, headers, body = poll(token, 2)
        results.append((status, time.monotonic() - began, headers, body))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = Counter(status for status, *_ in results)
    assert statuses == Counter({200: settings.current().max_live_polls,
                                429: 6 - settings.current().max_live_polls})
    for status, took, headers, body in results:
        if status == 429:
            assert took < 1.5 and 1 <= int(headers["Retry-After"]) <= 3
            assert body["error"]["code"] == "rate_limited"
        else:
            assert took >= 1.9 and body["jobs"] == []
    assert poll(token, 0)[0] == 200  # the held slots expired with their polls


def test_a_poll_that_ends_early_gives_its_slot_back(account):
    acct, key, device, token = account
    for _ in range(4):  # more polls in a row than slots: each returns a job at once
        sending.send(acct.account_id, device, PHONE, "hi")
        status, _, body = poll(token, 20)
        assert status == 200 and len(body["jobs"]) == 1
    record = tables.Device.get(device.device_uid, consistent_read=True)
    assert all(getattr(record, name) is None for name in tables.POLL_SLOTS)


def test_idle_poll_costs_one_write_and_one_receive(account, aws_calls):
    _, _, device, token = account
    poll(token, 0)
    aws_calls.clear()
    assert poll(token, 1)[0] == 200
    assert list(aws_calls) == [("dynamodb", "UpdateItem"), ("sqs", "ReceiveMessage")]
    record = tables.Device.get(device.device_uid, consistent_read=True)
    assert record.app_state == "running" and record.live == "live"  # the slot write marks it seen


def remove_elsewhere(device):
    """Remove the device as the admin CLI in another process does: this process's caches keep
    the device (a warm Lambda container)."""
    boto3.client("dynamodb", region_name=settings.current().region).delete_item(
        TableName=settings.current().table_name("devices"),
        Key={"device_uid": {"S": device.device_uid}})
    boto3.client("sqs",
                 region_name=settings.current().region).delete_queue(QueueUrl=device.queue_url)


@pytest.fixture
def quiet_log(caplog):
    caplog.set_level(logging.INFO, logger="smsgw")
    yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def assert_removed(response):
    status, headers, body = response
    assert status == 401, body
    assert body["error"]["code"] == "device_removed" and "removed" in body["error"]["message"]
    assert "Retry-After" not in headers


@pytest.mark.parametrize("endpoint,body", [
    ("jobs", None),
    ("heartbeat", {"app_state": "running"}),
    ("incoming", {"messages": [{"device_message_id": "m-1", "phone_number": PHONE,
                                "message": "hi", "received_at": 1}]}),
])
def test_removed_device_is_refused_on_its_next_request(client, account, quiet_log, endpoint,
                                                       body):
    _, _, device, token = account
    assert poll(token, 0)[0] == 200  # cached as a warm container would have it
    remove_elsewhere(device)
    if endpoint == "jobs":
        assert_removed(poll(token, 0))
    else:
        assert_removed(device_call(endpoint, auth(token), None,
                                         json.dumps(body).encode()))
    assert tables.IncomingMessage.count() == 0
    assert tables.Device.count() == 0  # nothing wrote the device back
    assert poll(token, 0)[0] == 401  # and every request after it


def test_send_to_a_removed_device_is_a_clear_error(api, account, quiet_log):
    acct, key, device, _ = account
    assert api(api_key=key, action="send_sms", device_uid=device.device_uid,
               phone_number=PHONE, message="warm")[0]["status"] == "success"
    remove_elsewhere(device)
    answer, _ = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                    phone_number=PHONE, message="hello")
    assert answer["status"] == "error" and answer["data"]["error_code"] == "device_removed"
    assert "removed" in answer["message"] and "retry_after" not in answer["data"]
    failed = [m for m in Message.query(acct.account_id) if m.body == "hello"]
    assert [(m.status, m.reason) for m in failed] == [("failed", "device_removed")]
    again, _ = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                   phone_number=PHONE, message="hello")  # the cache was dropped: not found
    assert again["data"]["error_code"] == "not_found"


def test_removal_through_the_domain_keeps_warm_call_counts(account, aws_calls):
    """The warm paths make the calls they made before removal was checked: heartbeat one
    UpdateItem, incoming one TransactWriteItems (the existence check rides in it). The
    account's opt-out keywords are read once per container and AUTH_CACHE_SECONDS (the
    first incoming SMS below warms them)."""
    _, _, device, token = account
    devices.authenticate(token)
    device_call("incoming", auth(token), None, json.dumps({"messages": [
        {"device_message_id": "m-1", "phone_number": PHONE, "message": "warm",
         "received_at": 1}]}).encode())
    aws_calls.clear()
    device_call("heartbeat", auth(token), None, b'{"app_state": "running"}')
    assert list(aws_calls) == [("dynamodb", "UpdateItem")]
    aws_calls.clear()
    device_call("incoming", auth(token), None, json.dumps({"messages": [
        {"device_message_id": "m-2", "phone_number": PHONE, "message": "hi",
         "received_at": 1}]}).encode())
    assert list(aws_calls) == [("dynamodb", "TransactWriteItems")]
