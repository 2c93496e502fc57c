"""The operator's quotas per account (chalicelib/domain/quotas.py, docs/operator.md): messages
per day, phones, webhook endpoints and API requests per minute, each refused on every surface
with the quota named and, for a quota of a period, when it resets; and the counters that must
hold under concurrency tested with real threads (`atomic_moto` gives moto DynamoDB's per-item
and per-transaction atomicity)."""
import base64
import json
import threading
from urllib.parse import urlencode

import pytest

from chalicelib.core import clock
from chalicelib.core.errors import QuotaExceeded
from chalicelib.domain import accounts, devices, operators, outbox, quotas, webhooks
from chalicelib.domain.devices import app_phones
from chalicelib.domain.webhooks import urls as webhook_urls
from chalicelib.storage import aws
from chalicelib.storage.tables import Account, Message
from tests.api.test_mobile_api import register as mobile_register

NUMBER = "+14155550123"
DAY_MS = 86_400_000


def quota(account_id, name, value):
    operators.set_quota(operators.CLI, account_id, name, value)


def compat(client, key, action="send_sms", **values):
    params = {"action": action, **values}
    if action == "send_sms":
        params = {"phone_number": NUMBER, "message": "Hi", **params}
    return json.loads(client.http.post("/myAPI.php", headers={
        "authorization": f"Bearer {key}", "content-type": "application/x-www-form-urlencoded"},
        body=urlencode(params)).body)


def v1_send(client, key, recipients=(NUMBER,)):
    answer = client.http.post("/v1/messages", headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"},
        body=json.dumps({"recipients": list(recipients), "message": "Hi"}))
    return answer.status_code, json.loads(answer.body), answer.headers


def smsgate_send(client, account_id, key):
    auth = "Basic " + base64.b64encode(f"{account_id}:{key}".encode()).decode()
    answer = client.http.post("/3rdparty/v1/messages", headers={
        "authorization": auth, "content-type": "application/json"},
        body=json.dumps({"phoneNumbers": [NUMBER], "textMessage": {"text": "Hi"}}))
    return answer.status_code, json.loads(answer.body)


def messages(account_id):
    return list(Message.query(account_id))


def queued(device):
    found = aws.sqs().get_queue_attributes(QueueUrl=device.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return sum(int(v) for v in found.values())


def tomorrow():
    now = clock.now_ms()
    return now - now % DAY_MS + DAY_MS


# --- messages per day -------------------------------------------------------------------------

def test_messages_per_day_on_every_surface(client, running_account):
    account, key, device, _ = running_account
    quota(account.account_id, "messages_per_day", 2)
    assert compat(client, key)["status"] == "success"
    assert v1_send(client, key)[0] == 202
    before, in_queue = len(messages(account.account_id)), queued(device)

    refused = compat(client, key)
    assert refused["data"]["error_code"] == "quota_exceeded"
    assert (refused["data"]["quota"], refused["data"]["limit"]) == ("messages_per_day", 2)
    assert refused["data"]["resets_at"] == tomorrow()
    assert "2 messages per day" in refused["message"] and "resets at" in refused["message"]

    status, problem, headers = v1_send(client, key)
    assert status == 429 and headers["Content-Type"] == "application/problem+json"
    assert (problem["code"], problem["quota"], problem["resets_at"]) == (
        "quota_exceeded", "messages_per_day", tomorrow())
    assert int(headers["Retry-After"]) == problem["retry_after"] > 0

    status, answer = smsgate_send(client, account.account_id, key)
    assert status == 429 and answer["data"]["quota"] == "messages_per_day"
    assert answer["data"]["resetsAt"].startswith(clock.fmt(tomorrow())[:10])

    # a refused send wrote nothing and queued nothing
    assert len(messages(account.account_id)) == before and queued(device) == in_queue
    # the next UTC day, the count starts again
    clock.advance((tomorrow() - clock.now_ms()) / 1000 + 1)  # (the phone is silent by then)
    assert compat(client, key, device_uid=device.device_uid)["status"] == "success"


def test_a_bulk_send_past_the_quota_is_accepted_up_to_it(client, running_account):
    """REST v1 writes a bulk's recipients from 8 threads: exactly the quota's are accepted, the
    rest are rejected one by one with the quota named."""
    account, key, _, _ = running_account
    quota(account.account_id, "messages_per_day", 3)
    numbers = [f"+1415555{n:04d}" for n in range(10)]
    status, answer, _ = v1_send(client, key, numbers)
    assert status == 202
    rejected = [m for m in answer["messages"] if m["status"] == "rejected"]
    assert len(answer["messages"]) - len(rejected) == 3 == len(messages(account.account_id))
    assert {m["error"]["quota"] for m in rejected} == {"messages_per_day"}


def test_an_idempotent_retry_is_not_counted_twice(client, running_account):
    account, key, _, _ = running_account
    quota(account.account_id, "messages_per_day", 1)
    first = compat(client, key, idempotency_key="same-1")
    again = compat(client, key, idempotency_key="same-1")
    assert first["status"] == again["status"] == "success", again
    assert first["data"]["message_id"] == again["data"]["message_id"]
    assert compat(client, key, idempotency_key="other")["data"]["error_code"] == "quota_exceeded"
    assert quotas.sent_today(account.account_id) == 1


def test_raising_the_quota_lets_sends_through_again(client, running_account):
    account, key, _, _ = running_account
    quota(account.account_id, "messages_per_day", 1)
    assert compat(client, key)["status"] == "success"
    assert compat(client, key)["data"]["error_code"] == "quota_exceeded"
    quota(account.account_id, "messages_per_day", 0)  # no limit
    assert compat(client, key)["status"] == "success"
    quota(account.account_id, "messages_per_day", "default")
    assert accounts.get_account(account.account_id).quota_messages_per_day is None


def test_eight_threads_sending_past_a_quota_of_five_get_exactly_five_through(running_account):
    """The message's write and the day counter's conditional ADD are one transaction: whatever
    the interleaving, a message is stored if and only if it was counted below the limit."""
    account, _, device, _ = running_account
    quota(account.account_id, "messages_per_day", 5)
    start = threading.Barrier(8)
    outcomes = []

    def send(n):
        start.wait(timeout=30)
        try:
            outbox.submit(account.account_id, outbox.SendRequest(
                phone_number=NUMBER, text=f"n{n}", device=device, urgent=True))
            outcomes.append("sent")
        except QuotaExceeded as refused:
            outcomes.append(refused.extra["quota"])
    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(outcomes) == ["messages_per_day"] * 3 + ["sent"] * 5
    assert len(messages(account.account_id)) == 5
    assert quotas.sent_today(account.account_id) == 5


def test_the_stage_default_applies_to_accounts_without_their_own(client, running_account,
                                                                 settings_override):
    account, key, _, _ = running_account
    settings_override(quota_messages_per_day=1)
    assert compat(client, key)["status"] == "success"
    assert compat(client, key)["data"]["error_code"] == "quota_exceeded"
    quota(account.account_id, "messages_per_day", 3)  # the account's own wins
    assert compat(client, key)["status"] == "success"


# --- phones -----------------------------------------------------------------------------------

def test_phones_quota_in_every_registration(client, running_account):
    account, _, device, _ = running_account  # one phone already
    quota(account.account_id, "phones", 2)
    devices.register(account.account_id, "Second")
    with pytest.raises(QuotaExceeded, match="2 phones") as refused:
        devices.register(account.account_id, "Third")
    assert refused.value.http_status == 403 and refused.value.extra["quota"] == "phones"
    # an SMSGate app registering with its token is refused the same way, as SMSGate answers
    token = app_phones.make_token(account.account_id)
    status, body, _ = mobile_register(client, token)
    assert status == 403 and "2 phones" in body["message"], body
    assert len(devices.list_devices(account.account_id)) == 2
    # removing one frees its place, and the same token may try again
    devices.remove(account.account_id, str(device.device_id))
    assert mobile_register(client, token)[0] == 201
    assert Account.get(account.account_id).phone_count == 2


def test_eight_threads_registering_past_a_phones_quota_get_exactly_the_quota(running_account):
    account = running_account[0]
    quota(account.account_id, "phones", 4)  # one exists: three more
    start = threading.Barrier(8)
    outcomes = []

    def register(n):
        start.wait(timeout=30)
        try:
            devices.register(account.account_id, f"Phone {n}")
            outcomes.append("registered")
        except QuotaExceeded:
            outcomes.append("refused")
    threads = [threading.Thread(target=register, args=(n,)) for n in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(outcomes) == ["refused"] * 5 + ["registered"] * 3
    assert len(devices.list_devices(account.account_id)) == 4


def test_an_account_older_than_the_phone_counter_is_counted_once(running_account):
    account = running_account[0]
    Account(account_id=account.account_id).update(actions=[Account.phone_count.remove()])
    quota(account.account_id, "phones", 2)
    devices.register(account.account_id, "Second")
    with pytest.raises(QuotaExceeded):
        devices.register(account.account_id, "Third")


# --- webhook endpoints ------------------------------------------------------------------------

def test_webhook_endpoints_quota(client, running_account, monkeypatch):
    account, key, _, _ = running_account
    monkeypatch.setattr(webhook_urls, "check", lambda url: None)
    quota(account.account_id, "webhook_endpoints", 1)
    hooks = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    first = client.http.post("/v1/webhooks", headers=hooks,
                             body=json.dumps({"url": "https://hooks.example.com/a"}))
    assert first.status_code == 201, first.body
    second = client.http.post("/v1/webhooks", headers=hooks,
                              body=json.dumps({"url": "https://hooks.example.com/b"}))
    problem = json.loads(second.body)
    assert second.status_code == 403 and problem["quota"] == "webhook_endpoints"
    assert "1 webhook endpoints" in problem["detail"] and "resets_at" not in problem
    assert len(webhooks.list_all(account.account_id)) == 1


# --- API requests per minute -------------------------------------------------------------------

def test_api_requests_per_minute(client, running_account):
    account, key, _, _ = running_account
    quota(account.account_id, "api_requests_per_minute", 3)
    now = clock.now_ms()  # read once: two reads may straddle a minute's turn
    clock.freeze(now - now % 60_000 + 1_000)  # early in a minute
    for _ in range(3):
        assert compat(client, key, action="device_status")["status"] == "success"
    refused = compat(client, key, action="device_status")
    assert refused["data"]["quota"] == "api_requests_per_minute"
    assert refused["data"]["resets_at"] == clock.now_ms() - 1_000 + 60_000
    status = client.http.get("/v1/devices", headers={"authorization": f"Bearer {key}"})
    assert status.status_code == 429
    clock.advance(60)
    assert compat(client, key, action="device_status")["status"] == "success"
