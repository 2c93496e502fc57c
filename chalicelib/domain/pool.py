"""Phones as a pool: choosing a device when the caller names none, moving a message off a phone
that stopped or does not take it (failover), and resting a SIM that reports carrier trouble.

Choice rule (docs/pool.md): among the account's devices that are running (heartbeat within the
window) and the SIMs of each that are not paused, take the SIM that can send the message
soonest under both pacing limits (its phone's window and its own rate; ties broken at random),
and book it with pacing's conditional write; if that SIM filled up meanwhile, try the next.
The account's device list is read with one Query and kept POOL_CACHE_SECONDS per warm
container, so a warm automatic send costs the same PutItem and SendMessage as a named one plus
the booking's UpdateItem.

Failover moves a message only while it is `pending` and was never taken (attempts == 0), by a
conditional write on its current device: a phone that took it may have sent it, and only that
phone's journal knows, so such a message stays. The old phone's late lease then fails its
condition (device_uid) and drops the stale job, so no message is sent by two phones.
"""
import logging
import random
import re
from dataclasses import dataclass

from chalicelib.core import clock, settings
from chalicelib.core.cache import TTLCache
from chalicelib.core.errors import BadRequest, NotFound, RateLimited, Unavailable
from chalicelib.domain import devices, messages, pacing
from chalicelib.storage import aws
from chalicelib.storage.tables import Device, Message, update_if

log = logging.getLogger("smsgw")
_cache = TTLCache(lambda: settings.current().pool_cache_seconds)
FAILOVER_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
STALL_REASON = "not taking jobs (messages moved to other devices)"
# Failure reasons (as the agent reports Android's result codes, or free text) that mean the SIM
# itself is in trouble: (pattern, pause seconds setting, kind shown in device_status)
SIM_TROUBLE = (
    (re.compile(r"limit.?exceeded|too many (sms|messages)", re.I),
     "sim_pause_limit_seconds", "limit exceeded"),
    (re.compile(r"no.?service|radio.?off|airplane|out of service|no signal", re.I),
     "sim_pause_service_seconds", "no service"),
)


@dataclass
class Route:
    device: Device
    sim_slot: int
    booking: pacing.Booking | None  # its place in the SIM's pace; None: booked at release


def parse_failover(raw: str | None) -> bool | None:
    """The compat API's `failover` parameter: True, False, or None when not given (then the
    send decides: yes for the pool's choice, no for a named device)."""
    if raw is None or raw.strip() == "":
        return None
    value = FAILOVER_VALUES.get(raw.strip().lower())
    if value is None:
        raise BadRequest(f"Invalid failover: '{raw[:20]}'; use 1 (may move to another device "
                         "of the account) or 0.", "failover")
    return value


def account_devices(account_id: str, fresh: bool = False) -> list[Device]:
    found = None if fresh else _cache.get(account_id)
    if found is None:
        found = devices.list_devices(account_id)
        _cache.put(account_id, found)
    return found


def forget_cached() -> None:
    _cache.clear()


def horizon_ms(validity_seconds: int | None, urgent: bool = False) -> int | None:
    """How far ahead automatic choice may book a message (None: urgent, never refused for
    capacity): the backlog limit, or the message's validity when shorter."""
    if urgent:
        return None
    validity = validity_seconds or settings.current().message_validity_seconds
    return min(settings.current().pool_backlog_seconds, validity) * 1000


def running(account_id: str, now: int | None = None, fresh: bool = False) -> list[Device]:
    """The account's devices that are running now (`fresh`: read now, not the cached list)."""
    now = clock.now_ms() if now is None else now
    return [d for d in account_devices(account_id, fresh) if devices.is_running(d, now)]


def choose(account_id: str, segments: int, *, kind: str = "sms", sim_slot: int | None = None,
           validity_seconds: int | None = None, exclude: str | None = None,
           now: int | None = None, urgent: bool = False, book: bool = True,
           start: int | None = None, e2e: bool = False) -> Route:
    """Pick a device and SIM and book its pace for one message, or say why none can take it.
    `urgent` (OTPs always): goes at once, ahead of the SIM's backlog, and is never refused for
    capacity; its segments still count against the pace. `book=False` (a message scheduled
    far ahead, paced at release): any running SIM at random, no booking (Route.booking
    None). `start`: the booking may not begin before then (a scheduled message's time). `e2e`: only
    phones whose agent can decrypt (an end-to-end encrypted message)."""
    urgent = urgent or kind == "otp"
    now = clock.now_ms() if now is None else now
    registered = account_devices(account_id)
    running = [d for d in registered if devices.is_running(d, now) and d.device_uid != exclude]
    if not running and exclude is None:
        registered = account_devices(account_id, fresh=True)  # the cache may predate a start
        running = [d for d in registered if devices.is_running(d, now)]
    if not registered:
        raise NotFound("No device: this account has no registered device. Register a phone "
                       "first.", "device_id", code="no_device")
    if e2e:
        running = [d for d in running if devices.can_decrypt(d)]
        if not running and any(devices.can_decrypt(d) for d in registered):
            raise Unavailable("No device that can decrypt is running (isEncrypted).",
                              "device_id", retry_after=60, code="no_device_running")
        if not running:
            raise BadRequest("No device of this account can decrypt end-to-end encrypted "
                             "messages: give an agent a passphrase first.", "isEncrypted")
    if not running:
        raise Unavailable(f"No device running: none of this account's {len(registered)} "
                          "device(s) has been heard from within the heartbeat window.",
                          "device_id", retry_after=60, code="no_device_running")
    options = pacing.ranked(running, segments, now, sim_slot, urgent, dice=random.random)
    if not options and all(pacing.too_long(d, s, segments, urgent) for d in running
                           for s in pacing.SIMS[:d.sim_count or 1]):
        raise BadRequest(f"Message too long for the phones' pacing: {segments} parts are more "
                         "than any running phone's window or SIM rate allows at once.",
                         "message", code="pool_too_long")
    if not options and not any(pacing.is_paused(d, s, now) for d in running
                               for s in pacing.SIMS[:d.sim_count or 1]):
        raise RateLimited("All running devices are at capacity (pacing): their pacing logs are "
                          "full of later bookings.", "device_id", retry_after=60,
                          code="pool_at_capacity")
    if not options:
        until = min(pacing.paused_until(d, s) for d in running
                    for s in pacing.SIMS[:d.sim_count or 1])
        raise RateLimited(f"All SIMs of the running devices are paused (carrier trouble) until "
                          f"{clock.fmt(until)} UTC.", "device_id",
                          retry_after=max(1, (until - now) // 1000), code="pool_paused")
    if not book:  # at random, so a scheduled burst is spread over the pool's SIMs
        *_, device, sim = random.choice(options)
        return Route(device, sim, None)
    horizon = horizon_ms(validity_seconds, urgent)
    soonest, busy = None, None
    for *_, device, sim in options[:4]:
        try:
            booking = pacing.book(device, sim, segments, max(now, start or now), horizon,
                                  urgent=urgent)
            return Route(device, sim, booking)
        except (pacing.AtCapacity, pacing.Busy, NotFound) as error:
            if isinstance(error, pacing.AtCapacity):
                soonest = error.free_at if soonest is None else min(soonest, error.free_at)
            elif isinstance(error, pacing.Busy):
                busy = error  # others are booking that phone right now: try the next
    if busy is not None and soonest is None:
        raise busy
    soonest = soonest or now + 1000
    raise RateLimited(f"All running devices are at capacity (pacing) until "
                      f"{clock.fmt(soonest)} UTC.", "device_id",
                      retry_after=max(1, -(-(soonest - now) // 1000)), code="pool_at_capacity")


def movable(message: Message, now: int) -> bool:
    """May the sweep move this pending message now (never taken, past its grace)?"""
    return (message.pool_uid is not None and message.status == "pending"
            and not message.attempts and message.kind != "otp"
            and now >= (message.not_before or message.created_at)
            + settings.current().pool_grace_seconds * 1000)


def move(message: Message, now: int, why: str = "grace") -> str:
    """Move one pending, never-taken pool message to another running device. Returns
    'moved', 'stay' (no other device can take it now) or 'raced' (it changed meanwhile)."""
    old_uid = message.device_uid
    held = bool(message.pace_at_release)  # scheduled, paced at release: keep its send time
    try:
        route = choose(message.account_id, message.segments, kind=message.kind,
                       validity_seconds=max(1, (message.expires_at - now) // 1000),
                       exclude=old_uid, now=now, book=not held,
                       start=message.scheduled_for,  # never earlier than asked for
                       e2e=bool(message.encrypted))
    except (NotFound, Unavailable, RateLimited, BadRequest):
        return "stay"
    target = route.device
    not_before = message.not_before if held else max(route.booking.at,
                                                     message.scheduled_for or 0)  # unpaced
    due = message.open_due if held else min(
        messages.first_look_due(not_before, now,
                                settings.current().pool_grace_seconds), message.expires_at)
    moved = update_if(message, [
        Message.device_uid.set(target.device_uid), Message.device_id.set(target.device_id),
        Message.sim_slot.set(route.sim_slot), Message.pool_uid.set(target.device_uid),
        Message.moves.add(1), Message.requeues.set(0),
        Message.not_before.set(not_before) if not_before > now else Message.not_before.remove(),
        Message.open_shard.set(messages.open_shard(message.message_id)),
        Message.open_due.set(due)],
        (Message.status == "pending") & (Message.attempts == 0)
        & (Message.device_uid == old_uid) & (Message.pool_uid == old_uid))
    if not moved:
        return "raced"
    log.info("message %s moved from %s to %s (%s)", message.message_id, old_uid,
             target.device_uid, why)
    if not messages.enqueue(target, message, message.body):
        log.warning("moved message %s not queued yet; the outbox sweep will", message.message_id)
    return "moved"


_stalled = {}  # device_uid -> until: one pause per stalled device per warm container


def stall(device_uid: str, now: int) -> None:
    """A running device left a message untaken past its grace: rest it so choice avoids it."""
    if _stalled.get(device_uid, 0) > now:
        return
    try:
        device = Device.get(device_uid)
    except Device.DoesNotExist:
        return
    for sim in pacing.SIMS[:device.sim_count or 1]:
        if not pacing.is_paused(device, sim, now):
            pacing.pause(device, sim, settings.current().sim_pause_service_seconds, STALL_REASON,
                         now)
    _stalled[device_uid] = now + settings.current().sim_pause_service_seconds * 1000
    _cache.clear()


def settle(message: Message, now: int) -> str | None:
    """The outbox sweep's pool step for a due message: 'moved', 'raced' or None (not movable,
    or no other device can take it: carry on as before)."""
    if not movable(message, now):
        return None
    old_uid = message.device_uid
    outcome = move(message, now)
    if outcome == "moved":
        stall(old_uid, now)
    return None if outcome == "stay" else outcome


def failover_device(device: Device, now: int | None = None) -> int:
    """The liveness sweep stopped `device`: move its pending, never-taken pool messages now."""
    now = clock.now_ms() if now is None else now
    moved = 0
    for key in list(Message.pool_messages.query(device.device_uid, limit=200)):
        try:
            message = Message.get(key.account_id, key.message_id, consistent_read=True)
        except Message.DoesNotExist:
            continue
        if message.status == "pending" and not message.attempts and message.kind != "otp":
            moved += move(message, now, why="device stopped") == "moved"
    return moved


def on_failure(device: Device, message: Message, reason: str | None,
               now: int | None = None) -> str | None:
    """A phone reported a send failure: if its reason means SIM trouble, pause that SIM."""
    for pattern, setting, kind in SIM_TROUBLE:
        if reason and pattern.search(reason):
            now = clock.now_ms() if now is None else now
            sim = message.sim_slot if message.sim_slot in pacing.SIMS else 1
            pacing.pause(device, sim, getattr(settings.current(), setting), kind, now)
            _cache.clear()
            devices.forget_cached()
            return kind
    return None


def set_device_limits(account_id: str, device_ref: str, pace=pacing.KEEP,
                      window=pacing.KEEP) -> Device:
    """The owner's limits for one of the account's devices: `pace`, parts per hour per SIM, and
    `window`, parts per 30 minutes for the phone ('none': no window), each 'default' for the
    gateway's; left out: unchanged. Both are checked before anything is read or written;
    another account's device is unknown here. What the CLI and the dashboard call."""
    checked = {name: check(raw) for name, raw, check in (
        ("pace", pace, pacing.check_pace), ("window", window, pacing.check_window))
        if raw is not pacing.KEEP}
    if not checked:
        raise BadRequest("Give a pace (parts per hour per SIM) or a window (parts per 30 "
                         "minutes), or both.", "pace")
    device = devices.resolve(account_id, device_id=str(device_ref))
    pacing.set_limits(device, **checked)
    devices.forget_cached()
    _cache.clear()
    return device


def set_device_pace(account_id: str, device_ref: str, pace) -> Device:
    return set_device_limits(account_id, device_ref, pace=pace)


def queue_depth(device: Device) -> int | None:
    """Jobs waiting on the device's queue (visible + delayed; approximate, as SQS counts)."""
    try:
        found = aws.sqs().get_queue_attributes(
            QueueUrl=device.queue_url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"])
    except Exception:  # a status page must not fail on one queue
        return None
    attributes = found.get("Attributes", {})
    return sum(int(attributes.get(name, 0)) for name in (
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"))


def describe(device: Device) -> dict:
    """device_status's entry: the device as before, then queue depth, pace and pause."""
    return {**devices.describe(device), "queue_depth": queue_depth(device),
            **pacing.describe(device)}
