"""SMSGate's own Python client (android-sms-gateway on PyPI, pinned, unmodified) against a local
gateway over real HTTP, with simulated phones (our agent) taking and reporting the jobs: send,
state, list, cancel, idempotent ids, webhooks (SMSGate's body and signature, checked on a
receiver on 127.0.0.1), devices; and end-to-end encryption with the client's own Encryptor:
the phone with the passphrase sends the plaintext, a wrong passphrase fails clearly, and no
table, queue body, log line or API answer of the gateway holds the plaintext."""
import contextlib
import hashlib
import hmac
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
import requests
from android_sms_gateway import APIClient, Encryptor, domain, errors
from android_sms_gateway.enums import WebhookEvent
from test_device_e2e import AgentProcess, until

from tests.localgw_helpers import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
PASSPHRASE = "correct horse battery staple"
SECRET_TEXT = "Vault code is 7731-ALPHA, tell nobody"
SECRET_NUMBER = "+8801712987654"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """A local gateway (no demo phone, one extra device) whose log goes to a file we search."""
    log = tmp_path_factory.mktemp("gw") / "gateway.log"
    gateway = GatewayProcess("--no-agent", "--devices", "1", log=log)
    info = gateway.info
    info["log"] = log
    info["base"] = info["url"] + "/3rdparty/v1"
    yield info
    gateway.stop()


@pytest.fixture(scope="module")
def phones(gw, tmp_path_factory):
    """Device 1's agent holds the passphrase; device 2 says (by heartbeat) it can decrypt but
    never polls, so its jobs stay on its queue for us to read."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SMSGW_E2E_PASSPHRASE", PASSPHRASE)
        env.setenv("SMSGW_REPORT_HOLD", "0")
        agent = AgentProcess(gw, gw["device_token"], tmp_path_factory.mktemp("phone1"))
    yield agent
    agent.stop()


def client(gw, encryptor=None, **kw):
    return APIClient(gw["account_id"], gw["api_key"], base_url=gw["base"],
                     encryptor=encryptor, **kw)


def schedule_in_an_hour(gw, number, text, message_id):
    """Accepted for an hour from now (scheduleAt through raw JSON: the 4.3.3 client has no field
    for it)."""
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    answer = requests.post(gw["base"] + "/messages", json={
        "phoneNumbers": [number], "textMessage": {"text": text}, "scheduleAt": later,
        "id": message_id}, auth=(gw["account_id"], gw["api_key"]), timeout=10)
    assert answer.status_code == 202, answer.text


def settled(c, message_id, states=("Delivered", "Failed")):
    return until(lambda: (lambda s: s if s.state.value in states else None)(
        c.get_state(message_id)), timeout=60, what=f"{message_id} in {states}")


def heartbeat(gw, token, e2e):
    answer = requests.post(gw["url"] + "/device/heartbeat", timeout=10,
                           headers={"Authorization": f"Bearer {token}"},
                           json={"app_state": "running", "e2e": e2e})
    assert answer.status_code == 200, answer.text


def test_send_state_list_cancel_and_idempotent_ids(gw, phones):
    with client(gw) as c:
        assert c.health_check().status.value == "pass"
        assert c.readiness_check().status.value == "pass"
        assert c.liveness_check().status.value == "pass"
        devices = {d.id for d in c.list_devices()}
        assert gw["device_uid"] in devices
        sent = c.send(domain.Message(phone_numbers=["+8801712000001", "+8801712000002"],
                                     text_message=domain.TextMessage("Hello from SMSGate"),
                                     id="order-1001", device_id=gw["device_uid"]))
        assert sent.id == "order-1001" and sent.state.value == "Pending"
        assert [r.phone_number for r in sent.recipients] == ["+8801712000001", "+8801712000002"]
        state = settled(c, "order-1001")
        assert state.state.value == "Delivered"
        assert {r.state.value for r in state.recipients} == {"Delivered"}
        assert {"Pending", "Processed", "Sent", "Delivered"} <= set(state.states)
        # the same id and content: the same message, not a second send
        again = c.send(domain.Message(phone_numbers=["+8801712000001", "+8801712000002"],
                                      text_message=domain.TextMessage("Hello from SMSGate"),
                                      id="order-1001", device_id=gw["device_uid"]))
        assert again.id == "order-1001" and again.state.value == "Delivered"
        assert [e["message"] for e in _ledger(phones)].count("Hello from SMSGate") == 2
        # the same id, other content: their 409, nothing stored
        with pytest.raises(errors.APIError) as caught:
            c.send(domain.Message(phone_numbers=["+8801712000001"],
                                  text_message=domain.TextMessage("Something else"),
                                  id="order-1001"))
        assert caught.value.status_code == 409 and "order-1001" in caught.value.response[
            "message"]
        listed = c.get_messages(query=domain.MessagesQueryFilter(state="Delivered"),
                                pagination=domain.QueryPagination(limit=10))
        assert "order-1001" in [m.id for m in listed]
        assert all(m.state.value == "Delivered" for m in listed)
        # scheduled, then cancelled before any phone takes it
        schedule_in_an_hour(gw, "+8801712000003", "Later", "later-1")
        c.cancel_message("later-1")
        cancelled = c.get_state("later-1")
        assert cancelled.state.value == "Cancelled"
        assert [r.state.value for r in cancelled.recipients] == ["Cancelled"]
        # the server's "message is not pending" (the 4.3.3 client's DELETE raises requests')
        with pytest.raises(requests.HTTPError) as caught:
            c.cancel_message("later-1")
        assert caught.value.response.status_code == 409
        assert caught.value.response.json()["data"]["code"] == "not_cancellable"
        assert [m.id for m in c.get_messages(query=domain.MessagesQueryFilter(
            state="Cancelled"))] == ["later-1"]
        # ordering and paging
        oldest_first = c.get_messages(sort="created_at", pagination=domain.QueryPagination(
            limit=1))
        assert [m.id for m in oldest_first] == ["order-1001"]
        assert [m.id for m in c.get_messages(pagination=domain.QueryPagination(
            limit=1, offset=1))] == ["order-1001"]


def _ledger(agent):
    if not agent.ledger.exists():
        return []
    return [json.loads(line) for line in agent.ledger.read_text().splitlines()]


def test_clear_errors_in_their_shape(gw, phones):
    with client(gw) as c:
        with pytest.raises(errors.BadRequestError) as caught:
            c.send(domain.Message(phone_numbers=["not a number"],
                                  text_message=domain.TextMessage("x")))
        assert caught.value.response["data"]["parameter"] == "phoneNumbers[0]"
        with pytest.raises(errors.BadRequestError) as caught:
            c.send(domain.Message(phone_numbers=["+8801712000004"], mms_message=domain.MmsMessage(
                text="picture")))
        assert "MMS" in caught.value.response["message"]
        with pytest.raises(errors.BadRequestError):
            c.generate_token(domain.TokenRequest(scopes=["messages:send"]))
        with pytest.raises(errors.NotFoundError):
            c.get_state("no-such-message")
    bad = APIClient(gw["account_id"], "0" * 64, base_url=gw["base"])
    with bad, pytest.raises(errors.UnauthorizedError):
        bad.list_devices()
    other = APIClient("acc_000000000000", gw["api_key"], base_url=gw["base"])
    with other, pytest.raises(errors.UnauthorizedError):  # Basic login must be the account
        other.list_devices()
    with APIClient(None, gw["api_key"], base_url=gw["base"]) as bearer:  # Bearer <api key>
        assert bearer.list_devices()
    # a wrong type: SMSGate's shape, nothing stored
    answer = requests.post(gw["base"] + "/messages", timeout=10,
                           auth=(gw["account_id"], gw["api_key"]),
                           json={"phoneNumbers": "+8801712000005", "textMessage": {"text": "x"}})
    assert answer.status_code == 400
    assert set(answer.json()) == {"message", "code", "data"}


def _signed_by(key, headers, body):
    expected = hmac.new(key.encode(), body + headers["X-Timestamp"].encode(),
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Signature"])


@contextlib.contextmanager
def subscribed(gw, event):
    """A webhook receiver subscribed to `event` through the client: (client, receiver, webhook)."""
    from bench.webhook_receiver import Receiver
    receiver = Receiver()
    try:
        with client(gw) as c:
            yield c, receiver, c.create_webhook(domain.Webhook(id=None, url=receiver.url,
                                                               event=event))
    finally:
        receiver.close()


def first_request(receiver, what):
    """The first webhook request `receiver` got, once it came: (headers, body, its JSON)."""
    until(lambda: receiver.requests, timeout=60, what=what)
    headers, body, _ = receiver.requests[0]
    return headers, body, json.loads(body)


def test_webhooks_in_their_body_and_signature(gw, phones):
    with subscribed(gw, WebhookEvent.SMS_DELIVERED) as (c, receiver, made):
        assert made.event.value == "sms:delivered" and made.id
        assert made.id in [w.id for w in c.get_webhooks()]
        key = "receiver-key-" + "x" * 20
        c.patch_settings(domain.DeviceSettings(webhooks=domain.SettingsWebhooks(
            signing_key=key)))
        assert c.get_settings().webhooks.signing_key == key
        c.send(domain.Message(phone_numbers=["+8801712000006"], id="hooked-1",
                              text_message=domain.TextMessage("Watch me")))
        settled(c, "hooked-1")
        headers, body, event = first_request(receiver, "a webhook")
        assert set(event) == {"id", "webhookId", "event", "deviceId", "payload"}
        assert (event["event"], event["webhookId"]) == ("sms:delivered", made.id)
        assert event["payload"]["messageId"] == "hooked-1"
        assert event["payload"]["phoneNumber"] == "+8801712000006"
        assert _signed_by(key, headers, body)
        assert not _signed_by("another key entirely", headers, body)
        with pytest.raises(errors.BadRequestError):
            c.create_webhook(domain.Webhook(id=None, url=receiver.url,
                                            event=WebhookEvent.SYSTEM_PING))
        c.delete_webhook(made.id)
        assert made.id not in [w.id for w in c.get_webhooks()]


def test_sms_cancelled_webhooks(gw, phones):
    with subscribed(gw, WebhookEvent.SMS_CANCELLED) as (c, receiver, made):
        assert made.event.value == "sms:cancelled"
        key = c.get_settings().webhooks.signing_key
        schedule_in_an_hour(gw, "+8801712000031", "Never mind", "never-1")
        c.cancel_message("never-1")
        headers, body, event = first_request(receiver, "an sms:cancelled webhook")
        assert (event["event"], event["webhookId"]) == ("sms:cancelled", made.id)
        assert event["payload"]["messageId"] == "never-1"
        assert event["payload"]["phoneNumber"] == "+8801712000031"
        assert event["payload"]["cancelledAt"]
        assert _signed_by(key, headers, body)
        c.delete_webhook(made.id)


# Every public method of the 4.3.3 client, and what this gateway answers it (docs/smsgate.md).
NOT_SUPPORTED = {"export_inbox", "refresh_inbox", "get_logs", "generate_token",
                 "refresh_token", "revoke_token", "download_attachment"}
WORKS = {"send", "cancel_message", "get_state", "get_messages", "get_webhooks",
         "create_webhook", "delete_webhook", "list_devices", "remove_device", "get_settings",
         "update_settings", "patch_settings", "health_check", "liveness_check",
         "readiness_check", "startup_check", "list_inbox_messages"}


def test_every_method_works_or_is_a_clear_not_supported(gw, phones):
    public = {name for name in vars(APIClient) if not name.startswith("_")}
    assert public == NOT_SUPPORTED | WORKS
    docs = (ROOT / "docs" / "smsgate.md").read_text()
    assert all(f"`{name}`" in docs for name in public)
    day = datetime(2026, 1, 1, tzinfo=UTC)
    calls = {
        "export_inbox": lambda c: c.export_inbox(domain.MessagesExportRequest(
            device_id=gw["device_uid"], since=day, until=day + timedelta(days=1))),
        "refresh_inbox": lambda c: c.refresh_inbox(domain.InboxRefreshRequest(
            since=day, until=day + timedelta(days=1))),
        "get_logs": lambda c: c.get_logs(from_=day.isoformat()),
        "generate_token": lambda c: c.generate_token(domain.TokenRequest(scopes=["all:any"])),
        "refresh_token": lambda c: c.refresh_token("a.b.c"),
        "revoke_token": lambda c: c.revoke_token("jti-1"),
        "download_attachment": lambda c: c.download_attachment("1", 0)}
    with client(gw) as c:
        for name in sorted(NOT_SUPPORTED):  # its DELETEs raise requests' HTTPError
            with pytest.raises((errors.BadRequestError, requests.HTTPError)) as caught:
                calls[name](c)
            shown = caught.value.response
            if isinstance(shown, requests.Response):
                assert shown.status_code == 400
                shown = shown.json()
            assert shown["data"]["code"] == "not_supported", name
        for event in (WebhookEvent.SMS_DATA_RECEIVED, WebhookEvent.SYSTEM_PING,
                      WebhookEvent.SMS_BATCH_RECEIVED, WebhookEvent.MMS_DOWNLOADED):
            with pytest.raises(errors.BadRequestError) as caught:
                c.create_webhook(domain.Webhook(id=None, url="http://127.0.0.1:9/x",
                                                event=event))
            assert caught.value.response["data"]["code"] == "not_supported", event
        assert c.startup_check().status.value == "pass"
        assert isinstance(c.list_inbox_messages(), list)
        with pytest.raises(requests.HTTPError) as caught:
            c.remove_device("0" * 16)
        assert caught.value.response.status_code == 404
        c.update_settings(domain.DeviceSettings(webhooks=domain.SettingsWebhooks(
            signing_key=c.get_settings().webhooks.signing_key)))


def _everything_stored(gw) -> str:
    """Every item of every table and every body waiting on every queue, as text."""
    session = boto3.session.Session(aws_access_key_id="testing",
                                    aws_secret_access_key="testing", region_name="us-east-1")
    dynamodb = session.client("dynamodb", endpoint_url=gw["aws_endpoint"])
    sqs = session.client("sqs", endpoint_url=gw["aws_endpoint"])
    found = []
    for table in dynamodb.list_tables()["TableNames"]:
        found += dynamodb.scan(TableName=table)["Items"]
    for url in sqs.list_queues().get("QueueUrls", []):
        found += [m["Body"] for m in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])]
    return json.dumps(found, ensure_ascii=False)


def test_end_to_end_encryption_with_their_encryptor(gw, phones):
    from bench.webhook_receiver import Receiver
    secret_digits = SECRET_NUMBER.lstrip("+")
    receiver = Receiver()
    with client(gw) as c:  # its events are delivered too: their bodies are searched below
        hook = c.create_webhook(domain.Webhook(id=None, url=receiver.url,
                                               event=WebhookEvent.SMS_DELIVERED))
    with client(gw, Encryptor(PASSPHRASE)) as c:
        sent = c.send(domain.Message(phone_numbers=[SECRET_NUMBER], id="secret-1",
                                     text_message=domain.TextMessage(SECRET_TEXT)))
        assert sent.recipients[0].phone_number == SECRET_NUMBER  # the client decrypted it
        assert settled(c, "secret-1").state.value == "Delivered"
        # the phone with the passphrase sent the plaintext
        assert any(e["message"] == SECRET_TEXT and e["phone_number"] == SECRET_NUMBER
                   for e in _ledger(phones))
        # a job held on a queue: device 2 says it can decrypt but never polls
        heartbeat(gw, gw["devices"][0]["device_token"], True)
        c.send(domain.Message(phone_numbers=[SECRET_NUMBER], id="secret-queued",
                              device_id=gw["devices"][0]["device_uid"],
                              text_message=domain.TextMessage(SECRET_TEXT)))
    # with a wrong passphrase the phone refuses and says why
    with client(gw, Encryptor("not the passphrase")) as wrong:
        wrong.send(domain.Message(phone_numbers=["+8801712000008"], id="secret-wrong",
                                  device_id=gw["device_uid"],
                                  text_message=domain.TextMessage("Cannot be read")))
    with client(gw) as plain:  # no Encryptor: the raw answers the gateway gives
        with pytest.raises(ValueError):  # the client will not show ciphertext as plaintext
            plain.get_state("secret-1")
        failed = until(lambda: (lambda s: s if s["state"] == "Failed" else None)(requests.get(
            gw["base"] + "/messages/secret-wrong", auth=(gw["account_id"], gw["api_key"]),
            timeout=10).json()), what="the wrong passphrase's failure")
        assert "wrong passphrase" in failed["recipients"][0]["error"]
    answers = [requests.get(gw["base"] + path, auth=(gw["account_id"], gw["api_key"]),
                            timeout=10).text
               for path in ("/messages/secret-1?includeContent=true",
                            "/messages/secret-queued", "/messages?includeContent=true")]
    answers.append(requests.get(gw["url"] + "/v1/messages", timeout=10, headers={
        "Authorization": f"Bearer {gw['api_key']}"}).text)
    answers.append(requests.post(gw["url"] + "/myAPI.php", timeout=10, data={
        "api_key": gw["api_key"], "action": "get_history"}).text)
    assert "$aes-256-cbc/pbkdf2-sha1$" in answers[0]
    until(lambda: receiver.requests, what="the encrypted message's webhook")
    answers += [body.decode() for _, body, _ in receiver.requests]
    receiver.close()
    with client(gw) as c:
        c.delete_webhook(hook.id)
    stored = _everything_stored(gw)
    assert "$aes-256-cbc/pbkdf2-sha1$" in stored  # the queued job and the items: ciphertext
    log = gw["log"].read_text()
    assert "/3rdparty/v1/messages" in log
    for where, text in [("stored", stored), ("log", log), *[("answer", a) for a in answers]]:
        assert SECRET_TEXT not in text, where
        assert secret_digits not in text, where
    # an encrypted message to a phone that cannot decrypt: refused, nothing stored
    heartbeat(gw, gw["devices"][0]["device_token"], False)
    with client(gw, Encryptor(PASSPHRASE)) as c, pytest.raises(errors.BadRequestError) as caught:
        c.send(domain.Message(phone_numbers=[SECRET_NUMBER], id="secret-nowhere",
                              device_id=gw["devices"][0]["device_uid"],
                              text_message=domain.TextMessage(SECRET_TEXT)))
    assert "passphrase" in caught.value.response["message"]
    with client(gw) as plain, pytest.raises(errors.NotFoundError):
        plain.get_state("secret-nowhere")


def test_rest_v1_and_our_client_send_the_same_format(gw, phones):
    sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))
    from smsgw_client import Client
    ours = Client(gw["url"], gw["api_key"])
    accepted, = ours.send("+8801712000123", "Sealed by our client", passphrase=PASSPHRASE,
                          device_id=gw["device_id"])
    until(lambda: ours.get(accepted["id"])["status"] == "delivered", what="delivered")
    shown = ours.get(accepted["id"])
    assert shown["message"].startswith("$aes-256-cbc/pbkdf2-sha1$i=75000$")
    assert "8801712000123" not in json.dumps(shown)
    assert any(e["message"] == "Sealed by our client" and e["phone_number"] == "+8801712000123"
               for e in _ledger(phones))
