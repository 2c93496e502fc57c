"""Direct polling through the real handlers (chalice.test.Client on moto): POST /device/credentials
vends STS credentials scoped to the device's own queue, POST /device/claims leases what the
device received itself with the very lease rules of GET /device/jobs."""
import json

import boto3
import pytest

from chalicelib.core import settings
from chalicelib.domain import direct, messages
from chalicelib.storage import aws
from chalicelib.storage.tables import Message
from tests import sending

ROLE_PATH = settings.current().device_role_path()


def _auth(token):
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def post(client, path, token, body=None):
    raw = b"" if body is None else body if isinstance(body, (bytes, str)) else json.dumps(body)
    answer = client.http.post(path, headers=_auth(token), body=raw)
    return answer.status_code, json.loads(answer.body)


def send(account, text="Hello"):
    acct, _, device, _ = account
    return sending.send(acct.account_id, device, "+8801712345678", text).message


def stored(account, message_id):
    return Message.get(account[0].account_id, message_id, consistent_read=True)


def receive(device, n=10):
    """What a device in direct mode does on its queue (the gateway's credentials are moto's)."""
    return aws.sqs().receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=n,
                                     WaitTimeSeconds=0,
                                     VisibilityTimeout=settings.current().lease_seconds
                                     ).get("Messages", [])


def queue_counts(device):
    attrs = aws.sqs().get_queue_attributes(QueueUrl=device.queue_url,
                                           AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def role(aws_mock, settings_override):
    """The stage's device role, as the stack creates it (in moto's IAM), and direct mode on."""
    iam = boto3.client("iam", region_name="us-east-1")
    arn = iam.create_role(RoleName="DeviceRole", Path=ROLE_PATH,
                          AssumeRolePolicyDocument=json.dumps({
                              "Version": "2012-10-17", "Statement": [{
                                  "Effect": "Allow", "Action": "sts:AssumeRole",
                                  "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}),
                          )["Role"]["Arn"]
    settings_override(device_role_arn=arn)
    return arn


def sts_only(aws_calls):
    """The STS calls among those recorded, with their parameters as botocore sends them."""
    return [(operation, params) for service, operation, params in aws_calls.requests
            if service == "sts"]


# --- credentials -----------------------------------------------------------------------------

def test_credentials_when_direct_mode_is_off_is_a_clear_409(client, account, aws_calls):
    assert settings.current().device_role_arn == ""
    status, body = post(client, "/device/credentials", account[3])
    assert status == 409
    assert body["error"]["code"] == "direct_polling_disabled"
    assert "not enabled on this stage" in body["error"]["message"]
    assert sts_only(aws_calls) == []


def test_credentials_are_scoped_to_this_devices_queue(client, account, role, aws_calls):
    from chalicelib.domain import devices
    device, token = account[2], account[3]
    other, _ = devices.register(account[0].account_id, "Phone 2")
    status, body = post(client, "/device/credentials", token, {})
    assert status == 200, body
    assert body["queue_url"] == device.queue_url and body["region"] == settings.current().region
    assert body["lease_seconds"] == settings.current().lease_seconds
    assert body["access_key_id"] and body["secret_access_key"] and body["session_token"]
    assert isinstance(body["expiration"], int)

    [(operation, params)] = sts_only(aws_calls)
    assert operation == "AssumeRole"
    assert params["RoleArn"] == role
    assert params["RoleSessionName"] == device.device_uid
    assert params["DurationSeconds"] == 3600
    policy = json.loads(params["Policy"])
    [statement] = policy["Statement"]
    queue_name = settings.current().queue_name(device.device_uid)
    assert statement == {"Effect": "Allow", "Action": ["sqs:ReceiveMessage"],
                         "Resource": f"arn:aws:sqs:{settings.current().region}:123456789012:"
                                     f"{queue_name}"}
    assert other.device_uid not in params["Policy"]
    assert direct.queue_arn(other.queue_url).endswith(
        settings.current().queue_name(other.device_uid))


def test_credentials_reach_the_queue(client, account, role):
    """The vended credentials, queue URL and region are all a device needs (moto does not
    evaluate the session policy; AWS does)."""
    device, token = account[2], account[3]
    message = send(account)
    _, creds = post(client, "/device/credentials", token)
    sqs = boto3.session.Session().client(
        "sqs", region_name=creds["region"], endpoint_url=creds["endpoint_url"],
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
        aws_session_token=creds["session_token"])
    [received] = sqs.receive_message(QueueUrl=creds["queue_url"], WaitTimeSeconds=0,
                                     VisibilityTimeout=creds["lease_seconds"])["Messages"]
    assert json.loads(received["Body"])["message_id"] == message.message_id
    assert device.queue_url == creds["queue_url"]


@pytest.mark.parametrize("body", ['{"device_uid": "x"}', "[]", "not json"])
def test_bad_credentials_requests(client, account, role, body, aws_calls):
    status, answer = post(client, "/device/credentials", account[3], body)
    assert status == 400 and answer["error"]["code"] == "invalid_parameter"
    assert sts_only(aws_calls) == []


def test_credentials_need_a_device_token(client, account, role, aws_calls):
    answer = client.http.post("/device/credentials", headers={"Content-Type": "application/json"},
                              body=b"")
    assert answer.status_code == 401
    status, _ = post(client, "/device/credentials", account[3].split(".")[0] + ".wrong")
    assert status == 401 and sts_only(aws_calls) == []


def test_credentials_aws_calls(client, account, role, aws_calls):
    post(client, "/device/credentials", account[3])  # cold: + the device lookup
    aws_calls.clear()
    post(client, "/device/credentials", account[3])
    assert aws_calls == [("sts", "AssumeRole")]


# --- claims ----------------------------------------------------------------------------------

def claim(client, token, *claims):
    return post(client, "/device/claims", token,
                {"claims": [{"message_id": m, "receipt_handle": r} for m, r in claims]})


def test_claim_leases_and_report_deletes_with_the_devices_receipt_handle(client, account,
                                                                         aws_calls):
    device, token = account[2], account[3]
    message = send(account)
    [received] = receive(device)
    aws_calls.clear()
    status, body = claim(client, token, (message.message_id, received["ReceiptHandle"]))
    assert status == 200, body
    assert body == {"results": [{"message_id": message.message_id, "result": "leased"}],
                    "lease_seconds": settings.current().lease_seconds}
    # Warm: one conditional UpdateItem (the device record is cached, last_seen fresh or set).
    assert aws_calls.count(("dynamodb", "UpdateItem")) in (1, 2)
    assert ("sqs", "DeleteMessage") not in aws_calls
    leased = stored(account, message.message_id)
    assert (leased.status, leased.attempts) == ("processing", 1)
    assert leased.receipt_handle == received["ReceiptHandle"]
    status, body = post(client, "/device/reports", token,
                        {"reports": [{"message_id": message.message_id, "status": "sent"}]})
    assert body["results"][0]["result"] == "ok"
    assert queue_counts(device) == (0, 0)


def test_warm_claim_is_one_aws_call(client, account, aws_calls):
    device, token = account[2], account[3]
    first, second = send(account, "one"), send(account, "two")
    received = {json.loads(m["Body"])["message_id"]: m["ReceiptHandle"] for m in receive(device)}
    claim(client, token, (first.message_id, received[first.message_id]))  # cold, sets last_seen
    aws_calls.clear()
    claim(client, token, (second.message_id, received[second.message_id]))
    assert aws_calls == [("dynamodb", "UpdateItem")]


def test_duplicate_claim_is_skipped_and_left_on_the_queue(client, account):
    device, token = account[2], account[3]
    message = send(account)
    [first] = receive(device)
    # A second copy of the job, as SQS's at-least-once delivery may produce.
    aws.sqs().send_message(QueueUrl=device.queue_url, MessageBody=first["Body"])
    [second] = receive(device)
    _, body = claim(client, token, (message.message_id, first["ReceiptHandle"]),
                    (message.message_id, second["ReceiptHandle"]))
    assert [r["result"] for r in body["results"]] == ["leased", "skip"]
    assert stored(account, message.message_id).receipt_handle == first["ReceiptHandle"]
    assert stored(account, message.message_id).attempts == 1
    assert queue_counts(device) == (0, 2)  # the copy is not deleted: the lease holder may die
    _, body = claim(client, token, (message.message_id, second["ReceiptHandle"]))
    assert body["results"][0]["result"] == "skip"


def test_claim_of_a_settled_message_drops_and_deletes_it(client, account):
    device, token = account[2], account[3]
    message = send(account)
    stored(account, message.message_id).update(actions=[Message.status.set("failed")])
    [received] = receive(device)
    _, body = claim(client, token, (message.message_id, received["ReceiptHandle"]))
    assert body["results"] == [{"message_id": message.message_id, "result": "drop"}]
    assert queue_counts(device) == (0, 0)
    assert stored(account, message.message_id).status == "failed"


def test_claim_of_another_devices_message_is_dropped_and_leaves_it_alone(client, account):
    from chalicelib.domain import accounts, devices
    owner = account[2]
    message = send(account)
    other, other_token = devices.register(account[0].account_id, "Phone 2")
    stranger = accounts.create_account("Other")
    foreign, foreign_token = devices.register(stranger.account_id, "Their phone")
    for thief, token in ((other, other_token), (foreign, foreign_token)):
        # The thief's own queue holds a job naming the owner's message.
        aws.sqs().send_message(QueueUrl=thief.queue_url, MessageBody=json.dumps(
            messages.job_payload(message, "Hello")))
        [received] = receive(thief)
        status, body = claim(client, token, (message.message_id, received["ReceiptHandle"]))
        assert status == 200 and body["results"][0]["result"] == "drop"
        assert queue_counts(thief) == (0, 0)
    untouched = stored(account, message.message_id)
    assert (untouched.status, untouched.attempts, untouched.receipt_handle) == (
        "pending", 0, None)
    assert queue_counts(owner) == (1, 0)


def test_claim_of_a_body_that_is_no_job_deletes_it(client, account):
    device, token = account[2], account[3]
    aws.sqs().send_message(QueueUrl=device.queue_url, MessageBody="garbage")
    [received] = receive(device)
    _, body = claim(client, token, (None, received["ReceiptHandle"]))
    assert body["results"] == [{"message_id": None, "result": "drop"}]
    assert queue_counts(device) == (0, 0)


def test_claim_of_an_expired_job_expires_the_message(client, account):
    from chalicelib.core import clock
    device, token = account[2], account[3]
    message = send(account)
    [received] = receive(device)
    clock.freeze(message.expires_at + 1)
    _, body = claim(client, token, (message.message_id, received["ReceiptHandle"]))
    assert body["results"][0]["result"] == "drop"
    assert stored(account, message.message_id).status == "expired"


BAD_CLAIMS = [
    ({}, "claims"), ({"claims": []}, "claims"), ({"claims": "x"}, "claims"),
    ({"claims": [{"message_id": 1, "receipt_handle": "r"}] * 11}, "claims"),
    ({"claims": [{"message_id": 1, "receipt_handle": "r"}], "extra": 1}, "extra"),
    ({"claims": [{"receipt_handle": "r"}]}, "message_id"),
    ({"claims": [{"message_id": "1", "receipt_handle": "r"}]}, "message_id"),
    ({"claims": [{"message_id": True, "receipt_handle": "r"}]}, "message_id"),
    ({"claims": [{"message_id": -1, "receipt_handle": "r"}]}, "message_id"),
    ({"claims": [{"message_id": 1}]}, "receipt_handle"),
    ({"claims": [{"message_id": 1, "receipt_handle": ""}]}, "receipt_handle"),
    ({"claims": [{"message_id": 1, "receipt_handle": 5}]}, "receipt_handle"),
    ({"claims": [{"message_id": 1, "receipt_handle": "r" * 5000}]}, "receipt_handle"),
    ({"claims": [{"message_id": 1, "receipt_handle": "r", "status": "sent"}]}, "status"),
    ({"claims": [{"message_id": 1, "receipt_handle": "r"}, 7]}, "a claim"),
]


@pytest.mark.parametrize("body,parameter", BAD_CLAIMS)
def test_bad_claims_change_nothing(client, account, body, parameter):
    device, token = account[2], account[3]
    message = send(account)
    [received] = receive(device)
    # A valid first claim in the batch must not be applied either.
    if isinstance(body.get("claims"), list) and body["claims"] and len(body["claims"]) <= 10:
        body = {**body, "claims": [{"message_id": message.message_id,
                                    "receipt_handle": received["ReceiptHandle"]},
                                   *body["claims"]]}
    status, answer = post(client, "/device/claims", token, body)
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_parameter"
    assert answer["error"]["parameter"] == parameter
    assert stored(account, message.message_id).status == "pending"
    assert queue_counts(device) == (0, 1)
