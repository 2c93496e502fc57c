"""SMSGate-style webhook bodies and signatures (domain/webhooks/smsgate.py), from the app's
WebHookEventDTO and PayloadSingingPlugin: the body's fields, the device filter, our `expired`
as their `sms:failed`, the signature over body + timestamp; and a group's state (states.py)."""
import hashlib
import hmac
import json

import pytest

from chalicelib.core.errors import BadRequest
from chalicelib.domain.webhooks import smsgate
from chalicelib.domain.webhooks.events import Event
from chalicelib.storage.webhook_tables import Webhook
from chalicelib.surfaces.smsgate import webhook_events


def event(kind, **data):
    base = {"message_id": 17, "phone_number": "+8801712000001", "device_uid": "a" * 16,
            "sim_slot": 2, "segments": 1, "failed_reason": "No signal"}
    return Event("acc_1", "evt_1", kind, 1_796_000_000_000, "0" * 40, {**base, **data},
                 {"group_id": "order-9"})


def hook(name="sms:failed", device=None):
    return Webhook(account_id="acc_1", webhook_id="wh_0123456789abcdef", url="https://x",
                   events=webhook_events.our_events(name), secret="k", style="smsgate",
                   smsgate_event=name, device_uid=device, created_at=0)


def test_failed_and_expired_are_their_sms_failed():
    assert webhook_events.our_events("sms:failed") == ["sms.failed", "sms.expired"]
    sent = json.loads(smsgate.body(hook(), event("sms.expired")))
    assert set(sent) == {"id", "webhookId", "event", "deviceId", "payload"}
    assert (sent["event"], sent["deviceId"]) == ("sms:failed", "a" * 16)
    assert sent["payload"]["messageId"] == "order-9"
    assert sent["payload"]["reason"] == "No signal"
    assert sent["payload"]["failedAt"] == "2026-11-30T00:53:20.000Z"


def test_the_device_filter():
    assert smsgate.body(hook(device="b" * 16), event("sms.failed")) is None
    assert smsgate.body(hook(device="a" * 16), event("sms.failed"))


@pytest.mark.parametrize("name", ["system:ping", "mms:received", "nonsense"])
def test_events_we_never_produce_are_refused(name):
    with pytest.raises(BadRequest):
        webhook_events.our_events(name)


def test_signature_is_hmac_sha256_of_body_then_timestamp():
    headers = smsgate.headers("key", 1700000000, b'{"a":1}')
    assert headers["X-Timestamp"] == "1700000000"
    assert headers["X-Signature"] == hmac.new(b"key", b'{"a":1}1700000000',
                                              hashlib.sha256).hexdigest()


@pytest.mark.parametrize("statuses, state", [
    (["pending", "delivered"], "Pending"), (["pending", "cancelled"], "Pending"),
    (["cancelled", "processing"], "Cancelled"), (["processing", "sent"], "Processed"),
    (["delivered", "failed"], "Sent"), (["failed", "expired"], "Failed"),
    (["failed", "expired", "cancelled"], "Cancelled"), (["delivered", "delivered"], "Delivered"),
    (["sent", "delivered", "expired"], "Sent"), (["sent", "failed"], "Sent")])
def test_a_groups_state_follows_smsgates_rule(statuses, state):
    """The app's MessageWithRecipients.state: Pending, Cancelling, Cancelled, Processed if any
    recipient is; Failed or Delivered if all are; else Sent."""
    from chalicelib.surfaces.smsgate import states
    assert states.group_state(statuses) == state
