"""Outgoing messages: their lifecycle, queueing, cancel, status (a send is accepted by
domain/outbox.py: write first, then queue).

Lifecycle: pending -> processing -> sent -> delivered; any non-terminal state may end
`failed` (with a reason) or `expired`. A message is written before its job is queued; if the
queue call fails the message stays `pending` (the answer says queueing was delayed), and the
outbox sweep queues it later. Devices may see a job twice; the conditional lease makes it sent once.
"""
import json
import re
from datetime import UTC, datetime
from enum import StrEnum

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, Conflict, NotFound
from chalicelib.domain import devices
from chalicelib.domain.devices import job_hint
from chalicelib.storage import aws
from chalicelib.storage.tables import Device, Message, update_if


class Status(StrEnum):
    """A message's lifecycle state. Its values are the stored text, so a Status and the string
    read from the table compare and hash alike; other APIs' names for them live with those
    surfaces (SMSGate's: surfaces/smsgate/states.py)."""
    PENDING = "pending"
    PROCESSING = "processing"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TERMINAL = (Status.DELIVERED, Status.FAILED, Status.EXPIRED, Status.CANCELLED)
OPEN = (Status.PENDING, Status.PROCESSING)  # the sweeps must settle these; `sent` awaits a receipt
DIGITS = re.compile(r"[0-9]{1,16}")  # ASCII only: int() would also take '٢', '1_000', '+1'


def job_payload(message: Message, text: str) -> dict:
    """What a device needs to send one SMS; self-contained so devices could read SQS directly.
    An end-to-end encrypted one carries `is_encrypted`: its number and text are ciphertext."""
    extra = {"is_encrypted": True} if message.encrypted else {}
    return {**extra,
        "message_id": message.message_id,
        "device_uid": message.device_uid,
        "phone_number": message.phone_number,
        "message": text,
        "sim_slot": message.sim_slot,
        "expires_at": message.expires_at,
        "kind": message.kind,
        "segments": message.segments,
    }


def queue_delay(message: Message, now: int) -> int | None:
    """Seconds SQS should hide a paced message's job (0 for now), or None while its send time
    is beyond SQS's longest delay: the outbox sweep releases it nearer the time."""
    wait_ms = (message.not_before or 0) - now
    if wait_ms > settings.current().max_queue_delay_seconds * 1000:
        return None
    return max(0, -(-wait_ms // 1000))


RELEASE_LEAD_SECONDS = 120  # a message paced at release is looked at this long before send_at


def first_look_due(not_before: int | None, now: int, grace_seconds: int) -> int:
    """When the sweeps should first look at a message to be sent at `not_before`."""
    if not_before is None:
        return now + grace_seconds * 1000
    if not_before - now > settings.current().max_queue_delay_seconds * 1000:
        return not_before - settings.current().max_queue_delay_seconds * 1000 + 1000
    return not_before + grace_seconds * 1000


def grace_seconds(pool_uid: str | None) -> int:
    """How long a message may wait untaken before the sweeps look at it: shorter for one the
    pool may move to another phone."""
    limits = settings.current()
    return limits.pool_grace_seconds if pool_uid else limits.outbox_grace_seconds


def enqueue(device: Device, message: Message, text: str, *, just_accepted: bool = False) -> bool:
    """Put the job on the device's queue, hidden until its paced send time (a job paced beyond
    SQS's delay limit is held for the outbox sweep: True). False, and nothing recorded, if it
    could not be queued: the outbox sweep queues it later. An app phone's hint is rung once the
    job is on the queue (job_hint.py says why after, not before); a failed ring counts as a
    failed queue write (a copy is harmless: a job is leased before it is sent).
    `just_accepted` (outbox.submit): a queue that no longer exists means the device was removed
    (the caller's cached lookup is older): the message ends `failed` and the caller gets a
    clear error instead of a promise to retry."""
    delay = queue_delay(message, clock.now_ms())
    if delay is None:
        return True
    try:
        aws.sqs().send_message(QueueUrl=device.queue_url,
                               MessageBody=json.dumps(job_payload(message, text)),
                               **({"DelaySeconds": delay} if delay else {}))
        if job_hint.rings(device):
            job_hint.ring(device, delay)
        return True
    except PynamoDBException:
        return False  # the hint could not be rung
    except (BotoCoreError, ClientError) as exc:
        if not (just_accepted and aws.queue_missing(exc)) or devices.exists(device.device_uid):
            return False
    close(message, "failed", "device_removed", failed_at=clock.now_ms())
    devices.forget_cached()
    raise NotFound(f"Device {device.device_id} ({device.device_uid}) was removed: message "
                   f"{message.message_id} was not sent (it is marked failed).", "device_id",
                   code="device_removed")


# Everything of a stored message that changes what is sent, where or until when: a retry under
# the same idempotency key must match all of it (where the gateway chose the device and SIM, a
# retry may be routed elsewhere: those two are not compared).
SAME_REQUEST = ("phone_number", "device_uid", "body", "sim_slot", "kind", "requested_validity")
CHOSEN_ROUTE = ("device_uid", "sim_slot")


def stored_for(account_id, message_id, request, chosen: bool = False) -> Message:
    message = Message.get(account_id, message_id, consistent_read=True)
    differ = [name for name in SAME_REQUEST
              if getattr(message, name) != getattr(request, name)
              and not (chosen and name in CHOSEN_ROUTE)]
    if differ:
        raise Conflict(f"idempotency_key was already used for a different request (it differs "
                       f"in {', '.join(differ)}).", "idempotency_key")
    return message


def open_shard(message_id: int) -> str:
    return f"open#{message_id % settings.current().open_shards}"


def close(message: Message, status: str, reason: str | None = None, **stamps) -> bool:
    """Move a non-terminal message to `status` (sent, delivered, failed or expired) if it is
    still in the state this caller read; leaves the sweeps' index when it stops being open.
    Returns False when another writer got there first (the caller re-reads if it cares)."""
    actions = [Message.status.set(status)]
    actions += [getattr(Message, name).set(value) for name, value in stamps.items()
                if value is not None]
    if reason is not None:
        actions.append(Message.reason.set(reason[:500]))
    if status not in OPEN:
        actions += [Message.open_shard.remove(), Message.open_due.remove(),
                    Message.pool_uid.remove()]
    return update_if(message, actions, Message.status == message.status)


def device_gone(message: Message, now: int) -> str:
    """A pending message whose device was removed before sending it ends `failed` (the sweeps'
    requeue and scheduled release). 'failed', or 'raced' if something else settled it first."""
    done = close(message, "failed", "The device was removed before sending it.", failed_at=now)
    return "failed" if done else "raced"


def cancel(account_id: str, message_id, *, again_ok: bool = True) -> Message:
    """Cancel a message no phone has taken yet: one conditional write (pending and never leased)
    that races a device's lease, so exactly one of them wins. Raises Conflict carrying the
    current status when the message was already taken or is final (also when it was already
    cancelled, unless `again_ok`: then a repeated cancel answers the same)."""
    message = lookup(account_id, message_id)
    taken = Message(account_id=account_id, message_id=message.message_id)
    if update_if(taken, [Message.status.set("cancelled"), Message.reason.set("Cancelled by the "
                         "sender."), Message.open_shard.remove(), Message.open_due.remove()],
                 (Message.status == "pending") & (Message.attempts == 0)):
        message.status = "cancelled"
        message.reason = "Cancelled by the sender."
        return message
    current = Message.get(account_id, message.message_id, consistent_read=True)
    if current.status == "cancelled" and again_ok:
        return current  # a repeated cancel answers the same
    why = "a phone has already taken it" if current.attempts else f"it is {current.status}"
    raise Conflict(f"Message {current.message_id} cannot be cancelled: {why} "
                   f"(status {current.status}).", "message_id", code="not_cancellable",
                   status=current.status)


def parse_validity(valid_for: str | None, expires_at: str | None) -> int | None:
    """Seconds a message may wait to be sent, from `valid_for` (seconds) or `expires_at`
    ('YYYY-MM-DD HH:MM:SS' UTC or epoch seconds); None for the default."""
    return parse_validity_request(valid_for, expires_at)[0]


def parse_validity_request(valid_for: str | None, expires_at: str | None):
    """(seconds or None, the request in canonical form: "for:<s>", "until:<epoch s>" or None).
    The canonical form is what identifies the request: `expires_at` in either notation is the
    same instant, and a retry later on asks for the same instant, not the same duration."""
    if valid_for and expires_at:
        raise BadRequest("Give valid_for or expires_at, not both.", "expires_at")
    shortest = settings.current().min_validity_seconds
    limit = settings.current().max_validity_seconds
    if valid_for:
        if not DIGITS.fullmatch(valid_for.strip()):
            raise BadRequest("Invalid valid_for: a whole number of seconds (digits 0-9).",
                             "valid_for")
        seconds = int(valid_for.strip())
        if not shortest <= seconds <= limit:
            raise BadRequest(f"Invalid valid_for: between {shortest} and {limit} seconds.",
                             "valid_for")
        return seconds, f"for:{seconds}"
    if expires_at:
        text = expires_at.strip()
        try:
            if not text.isascii():
                raise ValueError
            at = int(text) if DIGITS.fullmatch(text) else int(
                datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                .timestamp())
        except ValueError:
            raise BadRequest("Invalid expires_at: 'YYYY-MM-DD HH:MM:SS' (UTC) or epoch seconds.",
                             "expires_at")
        seconds = at - int(clock.now())
        if not shortest <= seconds <= limit:
            raise BadRequest(f"Invalid expires_at: between {shortest} seconds and "
                             f"{limit // 86400} days from now.", "expires_at")
        return seconds, f"until:{at}"
    return None, None


def lookup(account_id: str, message_id) -> Message:
    """The caller's message by the id it gave (digits, checked), or NotFound: what the
    surfaces' status and cancel calls read; Message.get is the storage read."""
    text = str(message_id).strip()
    if not DIGITS.fullmatch(text) or int(text) >= 2 ** 53:
        raise BadRequest("Invalid message_id: expected a positive integer (digits 0-9).",
                         "message_id")
    number = int(text)
    try:
        return Message.get(account_id, number)
    except DoesNotExist:
        raise NotFound(f"Message not found: no message {number} in this account.", "message_id")


def status_of(message: Message) -> dict:
    """`check_status` data: the reference's four fields first, then our extras."""
    return {
        "status": Status(message.status),
        "created_at": clock.fmt(message.created_at),
        "processed_at": clock.fmt(message.processed_at),
        "phone_number": message.phone_number,
        "message_id": message.message_id,
        "device_id": message.device_id,
        "device_uid": message.device_uid,
        "sim_slot": message.sim_slot,
        "segments": message.segments,
        "delivered_at": clock.fmt(message.delivered_at),
        "failed_reason": message.reason if message.status in ("failed", "expired", "cancelled")
        else None,
    }
