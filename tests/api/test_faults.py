"""Injected storage and queue faults: the client gets a retryable error envelope, never a 500 or
a trace, and no half-written state is left behind."""
import json

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.storage import records, tables
from chalicelib.storage.tables import Idempotency, Message

PHONE = "+8801712345678"


def dynamodb_events():
    """The event systems of the gateway's DynamoDB clients (each model's, and transactions')."""
    clients = {id(c): c for c in [model._get_connection().connection.client
                                  for model in tables.MODELS]
               + [records.transaction_connection().client]}
    return [client.meta.events for client in clients.values()]


@pytest.fixture
def dynamodb_fault():
    """dynamodb_fault("PutItem", code) makes every such call on the gateway's DynamoDB client
    fail as AWS would (hooked on botocore's event system)."""
    hooks = []

    def inject(operation, code="ProvisionedThroughputExceededException"):
        def refuse(**kwargs):
            raise ClientError({"Error": {"Code": code, "Message": "injected"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        added = [(events, f"before-call.dynamodb.{operation}", refuse)
                 for events in dynamodb_events()]
        for events, name, handler in added:
            events.register(name, handler)
        hooks.extend(added)
        return lambda: [events.unregister(name, handler) for events, name, handler in added]
    yield inject
    for events, name, handler in hooks:
        events.unregister(name, handler)


def queue_depth(device):
    attrs = boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
        QueueUrl=device.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.parametrize("operation,extra", [
    ("PutItem", {}),
    ("TransactWriteItems", {"idempotency_key": "k-1"}),
])
def test_throttled_write_is_a_retryable_envelope_and_writes_nothing(
        api, account, dynamodb_fault, operation, extra):
    acct, key, device, _ = account
    api(api_key=key, action="device_status")  # warm the key cache: the fault hits the write
    dynamodb_fault(operation)
    body, response = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                         phone_number=PHONE, message="Hi", **extra)
    assert response.status_code == 200
    assert body["status"] == "error" and body["data"]["error_code"] == "temporarily_unavailable"
    assert body["data"]["retry_after"] >= 1 and response.headers["Retry-After"]
    assert "Traceback" not in json.dumps(body)
    assert list(Message.query(acct.account_id)) == [] and Idempotency.count() == 0
    assert queue_depth(device) == 0


def test_retry_after_a_throttle_with_the_same_key_sends_once(api, account, dynamodb_fault):
    acct, key, device, _ = account
    values = dict(api_key=key, action="send_sms", device_uid=device.device_uid,
                  phone_number=PHONE, message="Hi", idempotency_key="retry-me")
    heal = dynamodb_fault("TransactWriteItems")
    assert api(**values)[0]["status"] == "error"
    heal()  # the storm passes
    first = api(**values)[0]
    second = api(**values)[0]
    assert first["data"]["message_id"] == second["data"]["message_id"]
    assert queue_depth(device) == 1


def test_unexpected_storage_error_is_an_internal_error_envelope(api, account, dynamodb_fault):
    _, key, _, _ = account
    api(api_key=key, action="device_status")
    dynamodb_fault("Query", code="InternalFailure")
    body, response = api(api_key=key, action="get_history")
    assert response.status_code == 200 and body["status"] == "error"
    assert body["data"]["error_code"] in ("internal_error", "temporarily_unavailable")
    assert "Traceback" not in body["message"]


def test_device_api_answers_a_throttle_as_503_retry_soon(client, account, dynamodb_fault):
    _, _, device, token = account
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    client.http.get("/device/jobs?wait=0", headers=headers)  # warm the device cache
    dynamodb_fault("UpdateItem")
    response = client.http.post("/device/heartbeat", headers=headers,
                                body=json.dumps({"app_state": "running"}))
    assert response.status_code == 503
    assert json.loads(response.body)["error"]["code"] == "temporarily_unavailable"
    assert response.headers["Retry-After"] == "1"


@pytest.fixture
def transaction_cancelled():
    """transaction_cancelled(["TransactionConflict", "None"], times=n): the next n
    TransactWriteItems calls are cancelled as DynamoDB cancels them, with those reasons."""
    hooks = []

    def inject(reasons, times=1):
        left = [times]

        def cancel(**kwargs):
            if left[0] <= 0:
                return None
            left[0] -= 1
            raise ClientError({"Error": {"Code": "TransactionCanceledException",
                                         "Message": "Transaction cancelled (injected)"},
                               "CancellationReasons": [{"Code": code} for code in reasons],
                               "ResponseMetadata": {"HTTPStatusCode": 400}},
                              "TransactWriteItems")
        for events in dynamodb_events():
            events.register("before-call.dynamodb.TransactWriteItems", cancel)
            hooks.append((events, cancel))
        return left
    yield inject
    for events, handler in hooks:
        events.unregister("before-call.dynamodb.TransactWriteItems", handler)


@pytest.mark.parametrize("reasons", [["TransactionConflict", "None"],
                                     ["None", "TransactionConflict"],
                                     ["TransactionConflict", "TransactionConflict"]])
def test_transaction_conflict_is_retried(api, account, transaction_cancelled, reasons):
    acct, key, device, _ = account
    api(api_key=key, action="device_status")
    left = transaction_cancelled(reasons, times=2)
    body, _ = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                  phone_number=PHONE, message="Hi", idempotency_key="k-conflict")
    assert body["status"] == "success", body
    assert left == [0]
    assert len(list(Message.query(acct.account_id))) == 1 and queue_depth(device) == 1


def test_transaction_conflict_then_the_winner_is_answered(api, account, transaction_cancelled):
    """The request that lost a conflict retries, meets the winner's claim and answers with the
    winner's message: one message, one job."""
    acct, key, device, _ = account
    values = dict(api_key=key, action="send_sms", device_uid=device.device_uid,
                  phone_number=PHONE, message="Hi", idempotency_key="k-winner")
    winner = api(**values)[0]["data"]["message_id"]
    transaction_cancelled(["TransactionConflict", "None"])
    body, _ = api(**values)
    assert body["status"] == "success" and body["data"]["message_id"] == winner
    assert len(list(Message.query(acct.account_id))) == 1 and queue_depth(device) == 1


def test_endless_transaction_conflicts_are_a_retryable_answer(api, account,
                                                               transaction_cancelled):
    acct, key, device, _ = account
    api(api_key=key, action="device_status")
    transaction_cancelled(["TransactionConflict", "None"], times=100)
    body, response = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                         phone_number=PHONE, message="Hi", idempotency_key="k-busy")
    assert body["data"]["error_code"] == "temporarily_unavailable" and body["data"]["retry_after"]
    assert list(Message.query(acct.account_id)) == [] and Idempotency.count() == 0


def test_incoming_sms_survives_a_transaction_conflict(client, account, transaction_cancelled):
    _, _, device, token = account
    # items: the device's existence check, the claim, the record
    transaction_cancelled(["None", "TransactionConflict", "None"])
    response = client.http.post("/device/incoming", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        body=json.dumps({"messages": [{"device_message_id": "m-1", "phone_number": PHONE,
                                       "message": "hi", "received_at": 1}]}))
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["results"][0]["result"] == "stored"
    assert tables.IncomingMessage.count() == 1
