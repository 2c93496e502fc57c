"""GET and PATCH /mobile/v1/message: the SMSGate app takes its jobs and reports their states.

GET leases jobs from the device's queue exactly as an agent's poll does (jobs.lease_from_queue),
unless the device's "jobs may be waiting" hint is clear (job_hint.py: then no SQS receive); each
job is one SMSGate message whose id is our message id, so the app's own duplicate check (it skips
an id it already has) and ours (the lease) agree. PATCH maps the app's per-recipient states through
states.py, the one translation, into the domain's report path (jobs.report: conditional
forward-only writes, SIM pause on "limit exceeded", webhooks from the stream).

A PATCH is checked whole before anything is written: an unknown or foreign id, an unknown state
or a malformed item changes nothing. Repeating a report the message already has (the app retries
a PATCH whose answer it lost, SendStateWorker.kt) answers 204 and writes nothing, so no event is
doubled; a report that contradicts the recorded outcome answers 409.
"""
import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock
from chalicelib.core.errors import BadRequest, Conflict, NotFound
from chalicelib.domain import devices, encryption, jobs
from chalicelib.domain.messages import DIGITS, cancelling
from chalicelib.storage import aws
from chalicelib.storage.tables import Message, update_if
from chalicelib.surfaces.smsgate import states
from chalicelib.surfaces.smsgate.mobile_request import AppRequest, answer

MAX_JOBS = 10  # one SQS receive
MAX_PATCH = 100
MAX_ERROR = 500
FORWARD = {"processing": 1, "sent": 2, "delivered": 3}  # our states a report may only advance
OTP_PRIORITY = 100  # SMSGate: priority >= 100 skips the app's own send delays and limits


def handle(request: AppRequest):
    return get_messages(request) if request.method == "GET" else patch_messages(request)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+00:00"


def to_app(job: dict) -> dict:
    """One of our jobs as the app's GatewayApi.Message: `Pending` to send, `Cancelling` for a
    cancel notice (domain/messages/cancelling.py: GatewayService.processMessage cancels it)."""
    return {"id": str(job["message_id"]), "textMessage": {"text": job["message"]},
            "phoneNumbers": [job["phone_number"]], "simNumber": job.get("sim_slot"),
            "withDeliveryReport": True, "isEncrypted": bool(job.get("is_encrypted")),
            "validUntil": iso(job.get("expires_at")),
            "priority": OTP_PRIORITY if job.get("kind") == "otp" else 0,
            "state": states.State.CANCELLING if cancelling.is_notice(job)
            else states.State.PENDING}


def get_messages(request: AppRequest):
    device = request.device()
    unknown = sorted(set(request.query) - {"order"})
    if unknown:
        raise BadRequest(f"Unknown parameter: {unknown[0]}. Allowed: order.", unknown[0])
    order = request.query.get("order", "lifo")
    if order not in ("lifo", "fifo"):
        raise BadRequest("Invalid order: lifo or fifo.", "order")
    devices.seen(device)
    try:
        found = jobs.lease_if_hinted(device, MAX_JOBS)
    except Exception as exc:
        if aws.queue_missing(exc):
            devices.removed(device)
        raise
    found.sort(key=lambda job: job["message_id"], reverse=order == "lifo")
    return answer(200, [to_app(job) for job in found])


def _text(value, name: str, max_chars: int, required: bool = True):
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()) \
            or len(value) > max_chars or "\x00" in value:
        raise BadRequest(f"Invalid {name}: a string of at most {max_chars} characters.", name)
    return value


def _state(value, name: str) -> str:
    if value not in states.STATES:
        raise BadRequest(f"Invalid {name}: {str(value)[:20]!r} is not one of "
                         f"{', '.join(states.STATES)}.", name)
    return value


def _number(value) -> str:
    """A recipient as the app stored it: a number, or for an encrypted message the ciphertext
    we handed it (the id names the recipient: our messages have one each)."""
    if isinstance(value, str) and value.startswith("$"):
        encryption.check(value, "phoneNumber")
        return value
    return _text(value, "phoneNumber", 32)


def parse_item(item) -> tuple[int, str, str | None]:
    """(message id, the state its recipient reached, error text) of one item."""
    if not isinstance(item, dict):
        raise BadRequest("Each item must be a JSON object.", None)
    raw_id = _text(item.get("id"), "id", 36)
    if not DIGITS.fullmatch(raw_id):
        raise NotFound(f"Unknown message id {raw_id[:36]!r}: not a message of this gateway.",
                       "id")
    state = _state(item.get("state"), "state")
    recipients = item.get("recipients") if item.get("recipients") is not None else []
    if not isinstance(recipients, list) or len(recipients) > 1:
        raise BadRequest("recipients: our messages have one recipient each.", "recipients")
    error = None
    for recipient in recipients:
        if not isinstance(recipient, dict):
            raise BadRequest("Each recipient must be a JSON object.", "recipients")
        _number(recipient.get("phoneNumber"))
        state = _state(recipient.get("state"), "recipients.state")
        error = _text(recipient.get("error"), "error", MAX_ERROR, required=False)
    if state == states.State.CANCELLING:
        raise BadRequest("state Cancelling is not a report: send Cancelled once it is.", "state")
    if item.get("states") is not None and not isinstance(item["states"], dict):
        raise BadRequest("states must be an object of state -> time.", "states")
    return int(raw_id), state, error


def _outcome(state: str, error: str | None) -> tuple[str | None, str | None]:
    """Our report for the app's state (states.py), and the reason a failure carries."""
    status = states.from_smsgate(state)
    if status == "cancelled":
        return status, "Cancelled on the phone." + (f" {error.strip()}" if error else "")
    if status != "failed":
        return status, None
    return "failed", (error or "").strip() or "Failed on the phone (no reason given)."


def _conflict(current: str | None, status: str) -> str | None:
    """Why reporting `status` contradicts the recorded `current` (None: it repeats or trails
    what is recorded, which is fine)."""
    if current == status or current is None:
        return None
    if status in FORWARD and current in FORWARD:
        return None  # an earlier state arriving late
    return f"it is already {current}"


def _check_all(device, work) -> None:
    """A batch: every id must be a message of this device before anything is written."""
    keys = [(device.account_id, message_id) for message_id, _, _ in work]
    found = {m.message_id: m for m in Message.batch_get(keys, consistent_read=True)}
    for message_id, _, _ in work:
        message = found.get(message_id)
        if message is None or message.device_uid != device.device_uid:
            raise NotFound(f"Unknown message id {message_id}: not a message of this device.",
                           "id")


def _check_one(device, message_id: int):
    try:
        message = Message.get(device.account_id, message_id, consistent_read=True)
    except DoesNotExist:
        message = None
    if message is None or message.device_uid != device.device_uid:
        raise NotFound(f"Unknown message id {message_id}: not a message of this device.", "id")


def _processed(device, message_id: int) -> None:
    """The app handed it to the radio (Processed): from now a cancel is too late, as on
    SMSGate's server, which cancels only a message not yet reported (cancelling.py)."""
    key = Message(account_id=device.account_id, message_id=message_id)
    if not update_if(key, [Message.app_processed_at.set(
            Message.app_processed_at | clock.now_ms())], Message.device_uid == device.device_uid):
        _check_one(device, message_id)  # raises NotFound


def patch_messages(request: AppRequest):
    device = request.device()
    request.no_query()
    document = request.json()
    if not isinstance(document, list) or not 1 <= len(document) <= MAX_PATCH:
        raise BadRequest(f"The body must be a list of 1-{MAX_PATCH} message states.", None)
    work = []
    for item in document:
        message_id, state, error = parse_item(item)
        work.append((message_id, *_outcome(state, error)))
    if len({message_id for message_id, _, _ in work}) != len(work):
        raise BadRequest("A message id is given twice.", "id")
    if len(work) > 1:
        _check_all(device, work)
    devices.seen(device)
    conflicts, deletes = [], []
    for message_id, status, reason in work:
        if status is None:  # the app has it; nothing to record
            _check_one(device, message_id)
            continue
        if status == "processing":
            _processed(device, message_id)
            continue
        result = jobs.report(device, message_id, status, reason, deletes=deletes)
        if result["result"] == "rejected":
            raise NotFound(f"Unknown message id {message_id}: not a message of this device.",
                           "id")
        why = _conflict(result["status"], status) if result["result"] == "ignored" else None
        if why:
            conflicts.append(f"message {message_id} cannot become {status}: {why}")
    if deletes:
        jobs.delete_batch(device.queue_url, deletes)
    if conflicts:
        raise Conflict("; ".join(conflicts) + ".", "state", code="state_conflict")
    return answer(204)

