"""Outgoing messages: accepting a send (write first, then queue), cancel, status.

Lifecycle: pending -> processing -> sent -> delivered; any non-terminal state may end
`failed` (with a reason) or `expired`. A message is written before its job is queued; if the
queue call fails the message stays `pending` (the answer says queueing was delayed), and the
outbox sweep queues it later. Devices may see a job twice; the conditional lease makes it sent once.
"""
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, Conflict, NotFound
from chalicelib.domain import devices, idempotency, pacing
from chalicelib.domain.devices import job_hint
from chalicelib.domain.segments import SegmentCount, count
from chalicelib.storage import aws, records
from chalicelib.storage.tables import Device, Message, update_if

TERMINAL = ("delivered", "failed", "expired", "cancelled")
OPEN = ("pending", "processing")  # what the sweeps must still settle; `sent` awaits only a receipt
DIGITS = re.compile(r"[0-9]{1,16}")  # ASCII only: int() would also take '٢', '1_000', '+1'


@dataclass
class Accepted:
    message: Message
    queued: bool
    replayed: bool = False
    expected_at: int | None = None  # a paced message's expected send time (epoch ms)


def check_text(text: str, parameter: str = "message"):
    if text is None or not text.strip():
        raise BadRequest(f"Missing required parameter: {parameter} (the SMS text must not be "
                         "empty).", parameter)
    counted = count(text)
    if counted.segments > settings.MAX_SEGMENTS:
        raise BadRequest(
            f"Message too long: {counted.segments} SMS segments ({counted.encoding}); at most "
            f"{settings.MAX_SEGMENTS} are allowed.", parameter)
    return counted


def check_sim_slot(device: Device, sim_slot: int) -> int:
    if sim_slot not in (1, 2):
        raise BadRequest("Invalid sim_slot: must be 1 or 2.", "sim_slot")
    if device.sim_count is not None and sim_slot > device.sim_count:
        raise BadRequest(f"Invalid sim_slot: device {device.device_id} has only "
                         f"{device.sim_count} SIM.", "sim_slot")
    return sim_slot


def check_content(text: str, encrypted: bool = False) -> SegmentCount:
    """A text's segments; for an end-to-end encrypted one, a safe bound from its ciphertext."""
    if encrypted:  # imported on use: `import app` does not load it
        from chalicelib.domain import encryption
        return SegmentCount("encrypted", encryption.check_text(text), 0)
    return check_text(text)


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
    if wait_ms > settings.MAX_QUEUE_DELAY_SECONDS * 1000:
        return None
    return max(0, -(-wait_ms // 1000))


RELEASE_LEAD_SECONDS = 120  # a message paced at release is looked at this long before send_at


def first_look_due(not_before: int | None, now: int, grace_seconds: int) -> int:
    """When the sweeps should first look at a message to be sent at `not_before`."""
    if not_before is None:
        return now + grace_seconds * 1000
    if not_before - now > settings.MAX_QUEUE_DELAY_SECONDS * 1000:
        return not_before - settings.MAX_QUEUE_DELAY_SECONDS * 1000 + 1000
    return not_before + grace_seconds * 1000


def grace_seconds(pool_uid: str | None) -> int:
    """How long a message may wait untaken before the sweeps look at it: shorter for one the
    pool may move to another phone."""
    return settings.POOL_GRACE_SECONDS if pool_uid else settings.OUTBOX_GRACE_SECONDS


def enqueue(device: Device, message: Message, text: str) -> bool:
    """Put the job on the device's queue, hidden until its paced send time; False (and nothing
    recorded) if SQS refused. A job paced beyond SQS's delay limit is held (True)."""
    delay = queue_delay(message, clock.now_ms())
    if delay is None:
        return True
    try:
        _send_job(device, message, text, delay)
        return True
    except (BotoCoreError, ClientError, PynamoDBException):
        return False


def _send_job(device: Device, message: Message, text: str, delay: int = 0) -> None:
    """Queue the job; an app phone's hint is rung once it is on the queue (job_hint.py says why
    after, not before). A failed ring raises as a failed queue write does: the outbox sweep
    queues the job again (a copy is harmless: a job is leased before it is sent)."""
    aws.sqs().send_message(QueueUrl=device.queue_url,
                           MessageBody=json.dumps(job_payload(message, text)),
                           **({"DelaySeconds": delay} if delay else {}))
    if job_hint.rings(device):
        job_hint.ring(device, delay)


def _queue_first(device: Device, message: Message, text: str) -> bool:
    """Queue the job of a message just accepted (hidden until its paced send time, or held
    for the outbox sweep beyond SQS's delay limit). A queue that no longer exists means the
    device was removed (the caller's cached lookup is older): the message ends `failed` and the
    caller gets a clear error instead of a promise to retry."""
    delay = queue_delay(message, clock.now_ms())
    if delay is None:
        return True
    try:
        _send_job(device, message, text, delay)
        return True
    except PynamoDBException:
        return False  # the hint could not be rung: the outbox sweep queues it later
    except (BotoCoreError, ClientError) as exc:
        if not aws.queue_missing(exc) or devices.exists(device.device_uid):
            return False  # the outbox sweep queues it later
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


def _stored_for(account_id, message_id, request, chosen: bool = False) -> Message:
    message = Message.get(account_id, message_id, consistent_read=True)
    differ = [name for name in SAME_REQUEST
              if getattr(message, name) != getattr(request, name)
              and not (chosen and name in CHOSEN_ROUTE)]
    if differ:
        raise Conflict(f"idempotency_key was already used for a different request (it differs "
                       f"in {', '.join(differ)}).", "idempotency_key")
    return message


def send(account_id: str, device: Device, phone_number: str, text: str, sim_slot: int = 1,
         idempotency_key: str | None = None, kind: str = "sms", stored_text: str | None = None,
         valid_for_seconds: int | None = None, requested_validity: str | None = None,
         slot: pacing.Slot | None = None, movable: bool = False,
         chosen: bool = False, send_at: int | None = None, urgent: bool = False,
         events: bool = True, encrypted: bool = False, group_id: str | None = None,
         key_space: str = "compat") -> Accepted:
    """Accept one SMS: validate, take its paced send slot, write it `pending`, queue its job.
    `stored_text` replaces the text in the stored record (OTP codes are never stored in clear).
    `requested_validity` is how the caller asked for the validity (see `parse_validity`), kept
    to compare retries. `slot`: already reserved (automatic choice); `movable`: failover may
    move it (pool.py); `chosen`: the gateway chose the device (a retry may be routed elsewhere).
    `send_at` (epoch ms): scheduled; the paced slot's offset from now is kept after send_at (so a
    scheduled bulk keeps its pace) and validity counts from send_at. `urgent`: ahead of the
    SIM's paced backlog, as OTPs are. `events`: its changes may be webhook events (the account
    has had an endpoint); False spares the stream function every record of it. `encrypted`:
    number and text are end-to-end ciphertext (domain/encryption.py), for a phone that can
    decrypt. `group_id`: the SMSGate message this recipient belongs to (messages/groups.py).
    `key_space`: the surface whose idempotency key this is (domain/idempotency.py: keys never
    collide across surfaces)."""
    if encrypted and kind == "otp":
        from chalicelib.domain import encryption
        encryption.refuse_otp()
    counted = check_content(text, encrypted)
    if encrypted and not devices.can_decrypt(device):
        raise BadRequest(f"Device {device.device_id} ({device.device_uid}) cannot decrypt: its "
                         "agent has no passphrase (isEncrypted needs one).", "isEncrypted")
    check_sim_slot(device, sim_slot)
    now = clock.now_ms()
    validity = valid_for_seconds or settings.MESSAGE_VALIDITY_SECONDS
    later = max(0, (send_at or now) - now)
    expires_at = now + later + validity * 1000
    # Held until send_at on a paced phone: its slot is taken at release (scheduling.release),
    # so a burst scheduled for tomorrow does not use up today's pace.
    deferred = slot is None and later > settings.MAX_QUEUE_DELAY_SECONDS * 1000 and not (
        urgent or kind == "otp") and pacing.is_paced(device)
    if deferred:
        slot = pacing.Slot(now)
    elif slot is None:
        slot = pacing.reserve(device, sim_slot, counted.segments, now,
                              urgent=urgent or kind == "otp")
    not_before = slot.at + later if slot.at + later > now else None
    pool_uid = device.device_uid if movable and kind != "otp" else None
    grace = grace_seconds(pool_uid)

    # A message its phone may take within half a minute enters the sweeps' index only if it
    # is still open at their first look from the table, a minute on (first_look.py): nearly
    # all are reported before, and an entry costs 2 write units (in, then out at the report).
    due = None
    if not_before is not None and not_before - now > settings.FIRST_LOOK_SECONDS * 1000 // 2:
        due = min(not_before - RELEASE_LEAD_SECONDS * 1000 if deferred
                  else first_look_due(not_before, now, grace), expires_at)

    def make(message_id):
        return Message(
            open_shard=open_shard(message_id) if due is not None else None, open_due=due,
            pace_at_release=True if deferred else None,
            scheduled_for=send_at if later else None,
            account_id=account_id, message_id=message_id, device_uid=device.device_uid,
            device_id=device.device_id, phone_number=phone_number,
            body=stored_text if stored_text is not None else text, sim_slot=sim_slot,
            segments=counted.segments, encoding=counted.encoding, kind=kind, status="pending",
            created_at=now, expires_at=expires_at, attempts=0,
            idempotency_key=idempotency_key, requested_validity=requested_validity,
            not_before=not_before, pool_uid=pool_uid, emits_events=True if events else None,
            encrypted=True if encrypted else None, group_id=group_id,
            retain_until=clock.at(now + settings.RETENTION_DAYS * 86400 * 1000))

    claim = idempotency.claim_key(account_id, idempotency_key, key_space) \
        if idempotency_key else None
    message, first_id = records.save_new(make, claim)
    if message is None:
        return Accepted(_stored_for(account_id, first_id, make(first_id), chosen), queued=True,
                        replayed=True)
    return Accepted(message, queued=_queue_first(device, message, text),
                    expected_at=not_before)


def open_shard(message_id: int) -> str:
    return f"open#{message_id % settings.OPEN_SHARDS}"


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
    message = get(account_id, message_id)
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
    shortest, limit = settings.MIN_VALIDITY_SECONDS, settings.MAX_VALIDITY_SECONDS
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


def get(account_id: str, message_id) -> Message:
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
        "status": message.status,
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
