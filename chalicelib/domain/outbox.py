"""The one way to send: `submit(account_id, SendRequest)` makes one SMS of a send.

Every surface (the compat API's send_sms and send_otp, REST v1, SMSGate's client API, the
dashboard's "Try it" and CSV sends) and every domain flow that sends (OTPs, groups) calls it,
and nothing else writes a `Message` of a send (tests/api/test_outbox.py holds that). In order:
refuse a number on the account's opt-out list (nothing written, booked or queued); resolve the
named device, or choose one from the pool (pool.choose books its pace); book the pace of a
named device (a message scheduled beyond SQS's delay is paced at its release instead,
messages/scheduling.py); write the message `pending`, once per idempotency key; queue its job.
The answer is a `SendResult`. Lifecycle and queueing rules: domain/messages/__init__.py.
"""
from dataclasses import dataclass

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest
from chalicelib.domain import (
    accounts,
    devices,
    idempotency,
    messages,
    opt_outs,
    pacing,
    pool,
    quotas,
    segments,
)
from chalicelib.domain.segments import SegmentCount
from chalicelib.storage import records
from chalicelib.storage.tables import Device, Message


@dataclass(frozen=True, kw_only=True)
class SendRequest:
    """One SMS to send. The device: `device` (already resolved), or `device_id`/`device_uid`
    (resolved here), or none of them: the pool chooses (docs/pool.md). `sim_slot`: None is
    SIM 1 on a named device, any SIM in the pool. `failover`: may the pool move it to another
    phone; None is yes for the pool's choice, no for a named device. `stored_text` replaces
    the text in the stored record (OTP codes are never stored in clear). `requested_validity`
    is how the caller asked for the validity, compared on retries. `send_at` (epoch ms):
    scheduled; the pace booking's offset from now is kept after it, and validity counts from it.
    `urgent`: ahead of the SIM's paced backlog, as OTPs always are. `events`: its changes may
    be webhook events. `encrypted`: number and text are end-to-end ciphertext
    (domain/encryption.py). `group_id`: its SMSGate message (messages/groups.py). `key_space`:
    the surface whose idempotency key it is (domain/idempotency.py)."""
    phone_number: str
    text: str
    device: Device | None = None
    device_id: str | None = None
    device_uid: str | None = None
    sim_slot: int | None = None
    failover: bool | None = None
    kind: str = "sms"
    stored_text: str | None = None
    valid_for_seconds: int | None = None
    requested_validity: str | None = None
    idempotency_key: str | None = None
    key_space: str = "compat"
    send_at: int | None = None
    urgent: bool = False
    events: bool = True
    encrypted: bool = False
    group_id: str | None = None
    despite_opt_out: bool = False  # only the confirmation of an opt-out (opt_outs.py)

    @property
    def named(self) -> bool:
        return self.device is not None or bool(self.device_id or self.device_uid)


@dataclass(frozen=True)
class SendResult:
    """What became of a send: its message, whether its job is on the queue (False: the outbox
    sweep queues it later), a replay of an earlier request under the same key, a paced
    message's expected send time (epoch ms), and whether the gateway chose the device."""
    message: Message
    queued: bool
    replayed: bool = False
    expected_at: int | None = None
    chosen: bool = False


def submit(account_id: str, request: SendRequest) -> SendResult:
    """Accept one SMS, or raise the GatewayError that says why not (then nothing is kept)."""
    if request.encrypted and request.kind == "otp":
        from chalicelib.domain import encryption
        encryption.refuse_otp()
    counted = segments.check(request.text, encrypted=request.encrypted)
    account = accounts.cached_account(account_id)  # warm: as authenticate read it, no call
    accounts.refuse_suspended(account)
    tally = quotas.day_count(account)
    quotas.check_spent(account)
    if not (request.encrypted or request.despite_opt_out):
        opt_outs.refuse(account_id, request.phone_number, otp=request.kind == "otp")
    if request.named:
        device = _named_device(account_id, request)
        sim_slot = devices.check_sim_slot(device, request.sim_slot or 1)
        return _write(account_id, device, request, counted, sim_slot=sim_slot, booking=None,
                      chosen=False, tally=tally)
    route = pool.choose(account_id, counted.segments, kind=request.kind, sim_slot=request.sim_slot,
                        validity_seconds=request.valid_for_seconds, urgent=request.urgent,
                        book=not _held(request), e2e=request.encrypted)
    return _write(account_id, route.device, request, counted, sim_slot=route.sim_slot,
                  booking=route.booking, chosen=True, tally=tally)


def _held(request: SendRequest) -> bool:
    """Scheduled beyond SQS's delay: its pace is booked at release, not now."""
    return request.send_at is not None and not (request.urgent or request.kind == "otp") and \
        request.send_at - clock.now_ms() > settings.current().max_queue_delay_seconds * 1000


def _named_device(account_id: str, request: SendRequest) -> Device:
    """The device the request names, resolved; for an encrypted message, one that can decrypt."""
    device = request.device or devices.resolve(account_id, request.device_id, request.device_uid)
    if request.encrypted and not devices.can_decrypt(device):
        device = Device.get(device.device_uid, consistent_read=True)  # as of now, not cached
        if not devices.can_decrypt(device):
            raise BadRequest(f"Device {device.device_id} ({device.device_uid}) cannot decrypt: "
                             "its agent has no passphrase (isEncrypted needs one).",
                             "isEncrypted")
    return device


def _write(account_id: str, device: Device, request: SendRequest, counted: SegmentCount, *,
           sim_slot: int, booking: pacing.Booking | None, chosen: bool,
           tally: quotas.DayCount | None) -> SendResult:
    """Book the pace (unless the pool did), write the message `pending` (counted against the
    account's messages per day in the same transaction, if it has that quota), queue it."""
    kind, now = request.kind, clock.now_ms()
    urgent = request.urgent or kind == "otp"
    validity = request.valid_for_seconds or settings.current().message_validity_seconds
    later = max(0, (request.send_at or now) - now)
    expires_at = now + later + validity * 1000
    # Held until send_at on a paced phone: its pace is booked at release (scheduling.release),
    # so a burst scheduled for tomorrow does not use up today's pace.
    deferred = booking is None and later > settings.current().max_queue_delay_seconds * 1000 and \
        not urgent and pacing.is_paced(device)
    if deferred:
        booking = pacing.Booking(now)
    elif booking is None:
        booking = pacing.book(device, sim_slot, counted.segments, now, urgent=urgent)
    not_before = booking.at + later if booking.at + later > now else None
    movable = request.failover if request.failover is not None else chosen
    pool_uid = device.device_uid if movable and kind != "otp" else None
    grace = messages.grace_seconds(pool_uid)

    # A message its phone may take within half a minute enters the sweeps' index only if it
    # is still open at their first look from the table, a minute on (first_look.py): nearly
    # all are reported before, and an entry costs 2 write units (in, then out at the report).
    due = None
    half_look = settings.current().first_look_seconds * 1000 // 2
    if not_before is not None and not_before - now > half_look:
        due = min(not_before - messages.RELEASE_LEAD_SECONDS * 1000 if deferred
                  else messages.first_look_due(not_before, now, grace), expires_at)

    def make(message_id):
        return Message(
            open_shard=messages.open_shard(message_id) if due is not None else None,
            open_due=due, pace_at_release=True if deferred else None,
            scheduled_for=request.send_at if later else None,
            account_id=account_id, message_id=message_id, device_uid=device.device_uid,
            device_id=device.device_id, phone_number=request.phone_number,
            body=request.stored_text if request.stored_text is not None else request.text,
            sim_slot=sim_slot, segments=counted.segments, encoding=counted.encoding, kind=kind,
            status="pending", created_at=now, expires_at=expires_at, attempts=0,
            idempotency_key=request.idempotency_key,
            requested_validity=request.requested_validity, not_before=not_before,
            pool_uid=pool_uid, emits_events=True if request.events else None,
            encrypted=True if request.encrypted else None, group_id=request.group_id,
            retain_until=clock.at(now + settings.current().retention_days * 86400 * 1000))

    claim = idempotency.claim_key(account_id, request.idempotency_key, request.key_space) \
        if request.idempotency_key else None
    try:
        message, first_id = records.save_new(
            make, claim, count=(tally.item, tally.actions, tally.condition) if tally else None)
    except records.CountRefused:
        quotas.note_spent(account_id, tally)
        raise tally.refused
    if message is None:
        return SendResult(messages.stored_for(account_id, first_id, make(first_id), chosen),
                          queued=True, replayed=True, chosen=chosen)
    queued = messages.enqueue(device, message, request.text, just_accepted=True)
    return SendResult(message, queued=queued, expected_at=not_before, chosen=chosen)
