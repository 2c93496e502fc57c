"""SMSGate-style webhook endpoints: registered through SMSGate's client API, delivered by our
durable queue (retries, delivery log, dashboard) with SMSGate's event names, body and signature.

Body (the app's WebHookEventDTO): `{"id", "webhookId", "event", "deviceId", "payload"}`.
Signature (the app's PayloadSingingPlugin): `X-Signature: hex(HMAC-SHA256(signing key, body +
timestamp))` and `X-Timestamp: <unix seconds>`. The signing key is the account's
(`Account.smsgate_signing_key`, as SMSGate's `webhooks.signing_key` setting is the phone's):
made on first use, replaceable through the client API's settings, copied to every SMSGate-style
endpoint so the queue function signs without another read. Imported only by webhook code.
SMSGate's event names (an endpoint stores the one it was made for, `smsgate_event`) are the
client API's: surfaces/smsgate/webhook_events.py.
"""
import hashlib
import hmac
import json
import secrets

from chalicelib.core.errors import BadRequest
from chalicelib.domain.accounts import get_account
from chalicelib.storage.model_base import update_if
from chalicelib.storage.tables import Account
from chalicelib.storage.webhook_tables import Webhook

MIN_KEY, MAX_KEY = 16, 256


def signing_key(account_id: str) -> str:
    """The account's signing key, made (once, conditionally) if it has none."""
    account = get_account(account_id, consistent=True)
    if account.smsgate_signing_key:
        return account.smsgate_signing_key
    made = secrets.token_urlsafe(32)
    if update_if(Account(account_id=account_id), [Account.smsgate_signing_key.set(made)],
                 Account.smsgate_signing_key.does_not_exist()):
        return made
    return get_account(account_id, consistent=True).smsgate_signing_key


def set_signing_key(account_id: str, key) -> str:
    """Replace the account's signing key, and re-key its SMSGate-style endpoints."""
    if not isinstance(key, str) or not MIN_KEY <= len(key) <= MAX_KEY or not key.isprintable():
        raise BadRequest(f"Invalid webhooks.signing_key: {MIN_KEY}-{MAX_KEY} printable "
                         "characters.", "webhooks.signing_key")
    get_account(account_id)
    Account(account_id=account_id).update(actions=[Account.smsgate_signing_key.set(key)])
    for webhook in Webhook.query(account_id, consistent_read=True):
        if webhook.style == "smsgate":
            webhook.update(actions=[Webhook.secret.set(key)],
                           condition=Webhook.webhook_id.exists())
    from chalicelib.domain import webhooks
    webhooks.forget_cached()
    return key


def _stamp(ms) -> str | None:
    from datetime import UTC, datetime
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def payload(event) -> dict:
    data = event.data
    number = data.get("phone_number")
    message_id = event.extra.get("group_id") or str(data.get("message_id"))
    common = {"messageId": message_id, "phoneNumber": number, "simNumber": data.get("sim_slot")}
    if event.type == "sms.received":
        return {**common, "sender": number, "message": data.get("message"),
                "receivedAt": data.get("received_at") and data["received_at"].replace(
                    " ", "T") + "Z"}
    common["recipient"] = number
    if event.type == "sms.sent":
        return {**common, "partsCount": data.get("segments"), "sentAt": _stamp(
            event.created_at)}
    if event.type == "sms.delivered":
        return {**common, "deliveredAt": _stamp(event.created_at)}
    if event.type == "sms.cancelled":  # the app's SmsEventPayload.SmsCancelled
        return {**common, "cancelledAt": _stamp(event.created_at)}
    return {**common, "failedAt": _stamp(event.created_at),
            "reason": data.get("failed_reason") or data.get("status")}


def body(webhook: Webhook, event) -> str | None:
    """The event as this endpoint's body; None if the endpoint is for another device."""
    if webhook.device_uid and event.data.get("device_uid") != webhook.device_uid:
        return None
    return json.dumps({"id": event.id, "webhookId": webhook.webhook_id,
                       "event": webhook.smsgate_event,
                       "deviceId": event.data.get("device_uid"), "payload": payload(event)},
                      separators=(",", ":"), ensure_ascii=False)


def signature(key: str, timestamp: int, body_bytes: bytes) -> str:
    return hmac.new(key.encode(), body_bytes + str(timestamp).encode(),
                    hashlib.sha256).hexdigest()


def headers(key: str, timestamp: int, body_bytes: bytes) -> dict:
    return {"X-Signature": signature(key, timestamp, body_bytes),
            "X-Timestamp": str(timestamp)}
