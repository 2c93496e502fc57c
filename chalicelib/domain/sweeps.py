"""Scheduled sweeps: what time alone must settle, so no message waits on a dead phone or a lost
queue call forever.

They read the sparse `open` index (open messages, due for a look) and, for messages sent for
now, which enter that index only if still open a minute later, each account's newest messages
(first_look.py); never a scan of history. The index is keys only and a lease does not move a
message in it, so the sweeps read each due message itself (one consistent BatchGetItem per
page) and find leased ones still at their first due time: those are looked at again when the
lease ends (the rare path). Every write is conditional on the state read, so a sweep running
twice at once, or racing a device report, changes each message at most once.
"""
import time
from collections import Counter

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, metrics, settings
from chalicelib.domain import messages, pool
from chalicelib.domain.messages import first_look as first_look
from chalicelib.domain.messages import scheduling as scheduling
from chalicelib.storage.tables import Device, Message, update_if

PAGE = 200


def due_messages(now_ms: int):
    """The due messages, read in full (the index gives keys only), at most PAGE per shard, in
    due order. Consistent reads: each decision below starts from the item's latest state."""
    for shard in range(settings.current().open_shards):
        keys = [(entry.account_id, entry.message_id) for entry in Message.open_messages.query(
            f"open#{shard}", Message.open_due <= now_ms, limit=PAGE)]
        if keys:
            found = Message.batch_get(keys, consistent_read=True)
            yield from sorted(found, key=lambda m: (m.open_due or 0, m.message_id))


def _reschedule(message: Message, due_ms: int, *extra) -> bool:
    return update_if(message, [Message.open_due.set(due_ms), *extra],
                     (Message.status == message.status) & (Message.open_due == message.open_due))


def _requeue(message: Message, now: int) -> str:
    """Queue a pending message's job again: the first queue call may have been lost. Repeats
    back off (grace, 2x, 4x, ...) so a phone that is merely offline does not pile up copies;
    duplicates are harmless because a device must lease a message before sending it."""
    if message.kind == "otp":
        # The code is not stored in clear, so its job cannot be rebuilt: let expiry settle it.
        _reschedule(message, message.expires_at)
        return "waiting"
    try:
        device = Device.get(message.device_uid)
    except DoesNotExist:
        return messages.device_gone(message, now)
    backoff = settings.current().outbox_grace_seconds * 1000 * 2 ** (message.requeues + 1)
    if message.pool_uid:  # it may move as soon as another phone can take it: look again soon
        backoff = min(backoff, 2 * settings.current().pool_grace_seconds * 1000)
    # a paced job is looked at again only after its send time (held ones are released now)
    due = max(now + backoff,
              (message.not_before or 0) + settings.current().outbox_grace_seconds * 1000)
    if not _reschedule(message, min(due, message.expires_at),
                       Message.requeues.add(1)):
        return "raced"
    return "requeued" if messages.enqueue(device, message, message.body) else "retry"


def settle(message: Message, now: int) -> str:
    """Decide one due message; returns what was done (for counts and logs)."""
    if message.open_due is None or message.open_due > now:
        return "not_due"  # settled, or rescheduled, since the index was read: not due any more
    lease_over = (message.lease_until or 0) <= now
    if message.status not in messages.OPEN:
        messages.close(message, message.status)  # stale index entry: just leave the index
        return "closed"
    if now >= message.expires_at and (message.status == "pending" or lease_over):
        done = messages.close(message, "expired", "Not sent within its validity period.",
                              presumed=message.attempts > 0 or None)
        return "expired" if done else "raced"
    if message.status == "pending":
        if message.pace_at_release:  # scheduled: its pace is booked now (scheduling.py)
            return scheduling.release(message, now)
        return pool.settle(message, now) or _requeue(message, now)
    if not lease_over:  # a phone holds it: look again when its lease ends (if it died, then)
        _reschedule(message, message.lease_until)
        return "leased"
    if message.attempts >= settings.current().max_attempts:
        done = messages.close(message, "failed", presumed=True, failed_at=now, reason=(
            f"The device took it {message.attempts} times without reporting a result."))
        return "failed" if done else "raced"
    if message.cancel_asked_at:  # its app phone was asked to cancel it (messages/cancelling.py)
        # and may still answer: no other phone may take it meanwhile; it ends by the phone's
        # answer, its validity, or its attempts
        _reschedule(message, min(now + settings.current().lease_seconds * 1000, message.expires_at))
        return "cancelling"
    # Lease ran out: SQS makes the job visible again by itself; show it as waiting once more.
    released = update_if(message, [Message.status.set("pending"), Message.open_due.set(
        min(now + settings.current().outbox_grace_seconds * 1000, message.expires_at))],
        (Message.status == "processing") & (Message.lease_until == message.lease_until))
    return "released" if released else "raced"


STUCK = ("requeued", "retry", "failed", "released")  # what a healthy phone would have settled


def settle_due_messages(now_ms: int | None = None, budget_seconds: float | None = None
                        ) -> Counter:
    """One run: at most PAGE due messages per shard, and no new message once `budget_seconds`
    (SMSGW_SWEEP_BUDGET_SECONDS) have passed, so a run ends well inside its Lambda timeout
    whatever the backlog; what is left is still due and the next run (a minute later) takes it
    (counted as `deferred`)."""
    now = clock.now_ms() if now_ms is None else now_ms
    budget = settings.current().sweep_budget_seconds if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    done = Counter()
    for message in list(due_messages(now)):
        done[settle(message, now) if time.monotonic() < deadline else "deferred"] += 1
    for message in first_look.look(now, deadline):  # open a minute after they were sent
        done["entered"] += 1
        if message.open_due <= now:
            done[settle(message, now)] += 1
    metrics.emit(metrics.STUCK_MESSAGES, sum(done[outcome] for outcome in STUCK))
    return done
