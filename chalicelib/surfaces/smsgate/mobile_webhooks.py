"""POST /mobile/v1/app-webhooks/{device_uid}: the webhooks the SMSGate app sends us, at the URL
GET /webhooks hands it, signed with the key GET /settings hands it (PayloadSingingPlugin.kt:
X-Signature = hex HMAC-SHA256(key, body + X-Timestamp), X-Timestamp in Unix seconds).

Refused before anything is written: a malformed X-Timestamp (400), one more than
MAX_SKEW_SECONDS away (401: stale or from the future), an unknown or removed device or a bad
signature (401, one answer for both: the route does not tell which phones exist), and a replay, the
same event id with the same signed timestamp (409). The app's own retry of an event whose answer
it lost carries a fresh timestamp: it is answered 200 and changes nothing, as each effect is
idempotent (incoming SMS stored once per device message id, reports forward-only).

Effects: `sms:received` and `sms:data-received` store an incoming SMS (incoming.store: webhooks
and history as for an agent's); `sms:sent|delivered|failed` are reports of our messages (the
same path as PATCH /message); `system:ping` is a sign of life. The app also reports messages it
was given by other sources (its local server): ids that are not ours are answered 202 ignored,
so the app does not retry them.
"""
import datetime
import hashlib
import hmac
import re
import secrets
import time

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.core import clock
from chalicelib.core.errors import BadRequest, Conflict, Forbidden, Unauthorized
from chalicelib.domain import devices, incoming, jobs
from chalicelib.domain.messages import DIGITS
from chalicelib.storage.tables import Device, Idempotency
from chalicelib.surfaces import jsonbody
from chalicelib.surfaces.smsgate import states
from chalicelib.surfaces.smsgate.mobile_request import APP_EVENTS, AppRequest, answer

MAX_BODY_BYTES = 64 * 1024
MAX_SKEW_SECONDS = 300
SEEN_SECONDS = 2 * MAX_SKEW_SECONDS  # an event id is remembered past the window it can replay in
MAX_TEXT = 5000
REPORTS = {"sms:sent": states.State.SENT, "sms:delivered": states.State.DELIVERED,
           "sms:failed": states.State.FAILED}
IGNORED = ("sms:cancelled", "mms:received", "mms:downloaded", "app:started")


DENIED = ("Unknown device or invalid X-Signature: the URL and key are those GET /webhooks and "
          "GET /settings hand this phone.")
STAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() also takes '²' and '٣'


def handle(request: AppRequest):
    body = request.body or b""
    jsonbody.check_size(body, MAX_BODY_BYTES)
    stamp, signature = _signed_headers(request.headers)
    device = _verified(request.path_params.get("device_uid", ""), stamp, signature, body)
    document = jsonbody.parse(body, MAX_BODY_BYTES)
    if not isinstance(document, dict):
        raise BadRequest("The body must be a JSON object.", None)
    event, event_id, payload = _envelope(device, document)
    if event in IGNORED:
        return answer(202, {"result": "ignored", "reason": f"{event} is not used"})
    _remember(device, event_id, int(stamp))
    return EFFECTS[event](device, payload)


def _signed_headers(headers: dict) -> tuple[str, str]:
    """X-Timestamp and X-Signature, checked for form and freshness before any device is looked
    up, so these answers say nothing about the device."""
    stamp, signature = headers.get("x-timestamp", "").strip(), headers.get("x-signature", "")
    if not stamp or not signature:
        raise Unauthorized("Missing X-Timestamp or X-Signature.", "x-signature")
    if not STAMP.fullmatch(stamp):
        raise BadRequest(f"Invalid X-Timestamp {stamp[:20]!r}: Unix seconds in digits 0-9.",
                         "x-timestamp")
    if abs(time.time() - int(stamp)) > MAX_SKEW_SECONDS:
        raise Unauthorized(f"Stale or future X-Timestamp: more than {MAX_SKEW_SECONDS} s from "
                           "the gateway's clock.", "x-timestamp")
    return stamp, signature


def _verified(device_uid: str, stamp: str, signature: str, body: bytes) -> Device:
    """The device whose key signed `body`. An unknown, removed or keyless device and a wrong
    signature get one answer (DENIED), so the route tells no one which phones exist."""
    device = None
    if devices.UID_PATTERN.match(device_uid):
        try:  # consistent: a removed phone's webhooks stop at once
            device = Device.get(device_uid, consistent_read=True)
        except DoesNotExist:
            pass
    key = device.signing_key if device is not None and device.signing_key else ""
    expected = hmac.new((key or secrets.token_hex(16)).encode(), body + stamp.encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()) or not key:
        raise Unauthorized(DENIED, "x-signature")
    return device


def _envelope(device: Device, document: dict) -> tuple[str, str, dict]:
    event, event_id = document.get("event"), document.get("id")
    if event not in APP_EVENTS + IGNORED:
        raise BadRequest(f"Unknown event {str(event)[:40]!r}.", "event")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 64:
        raise BadRequest("id must be the event's id (1-64 characters).", "id")
    if document.get("deviceId") not in (None, device.device_uid):
        raise Forbidden("deviceId is not the device of this URL.", "deviceId")
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise BadRequest("payload must be a JSON object.", "payload")
    return event, event_id, payload


def _remember(device: Device, event_id: str, stamp: int) -> None:
    """Refuse a replay: the same event id signed at the same second (a retry re-signs)."""
    now = clock.now_ms()
    key = f"appwh#{device.device_uid}#{event_id}"
    record = Idempotency(key=key, message_id=stamp, created_at=now,
                         expires=clock.at(now + SEEN_SECONDS * 1000))
    try:
        record.save(Idempotency.key.does_not_exist() | (Idempotency.message_id != stamp))
    except PutError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        raise Conflict(f"Replayed webhook: event {event_id} with this signature was already "
                       "received.", "id", code="replayed")


def _string(payload: dict, name: str, max_chars: int, required: bool = True):
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > max_chars or "\x00" in value:
        raise BadRequest(f"Invalid payload.{name}: a string of 1-{max_chars} characters.", name)
    return value


def _ms(payload: dict, name: str) -> int:
    """An ISO 8601 time of the app (GsonBuilder.configure: yyyy-MM-dd'T'HH:mm:ss.SSSXXX)."""
    value = _string(payload, name, 40)
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid payload.{name}: an ISO 8601 time.", name)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp() * 1000)


def _sim(payload: dict) -> int | None:
    sim = payload.get("simNumber")
    if sim is None:
        return None
    if isinstance(sim, bool) or not isinstance(sim, int) or sim < 1:
        raise BadRequest("Invalid payload.simNumber.", "simNumber")
    return sim if sim <= 2 else None


def received(device: Device, payload: dict, text: str):
    sender = _string(payload, "sender", 64, required=False) or _string(payload, "phoneNumber", 64)
    at = _ms(payload, "receivedAt")
    if at > clock.now_ms() + 86400 * 1000:
        raise BadRequest("Invalid payload.receivedAt: more than a day ahead.", "receivedAt")
    # the app's id is a 32-bit hash of the SMS: with the time it names one SMS
    device_message_id = f"app-{_string(payload, 'messageId', 32)}-{at}"
    message_id, stored = incoming.store(device, device_message_id, sender, text, _sim(payload),
                                        at)
    return answer(200, {"result": "stored" if stored else "duplicate", "message_id": message_id})


def sms_received(device: Device, payload: dict):
    return received(device, payload, _string(payload, "message", MAX_TEXT))


def data_received(device: Device, payload: dict):
    return received(device, payload, "[data SMS, base64] " + _string(payload, "data", MAX_TEXT))


def report(event: str):
    def apply(device: Device, payload: dict):
        raw_id = _string(payload, "messageId", 36)
        if not DIGITS.fullmatch(raw_id):
            return answer(202, {"result": "ignored", "reason": "not a message of this gateway"})
        status = states.from_smsgate(REPORTS[event])
        reason = None
        if status == "failed":
            reason = (_string(payload, "reason", 500, required=False) or "").strip() or \
                "Failed on the phone (no reason given)."
        result = jobs.report(device, int(raw_id), status, reason)
        if result["result"] == "rejected":
            return answer(202, {"result": "ignored", "reason": "not a message of this device"})
        return answer(200, {"result": result["result"], "status": result["status"]})
    return apply


def ping(device: Device, payload: dict):
    devices.seen(device)
    return answer(200, {"result": "ok"})


EFFECTS = {"sms:received": sms_received, "sms:data-received": data_received,
           "system:ping": ping, **{event: report(event) for event in REPORTS}}
