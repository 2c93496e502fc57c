"""Releasing a scheduled message whose pace booking was left for its send time.

A message scheduled beyond SQS's longest delay on a paced phone is stored without a booking
(`pace_at_release`): reserving one at accept would count tomorrow's burst against today's
pace, so live traffic at send_at could exceed it. The outbox sweep looks at such a message
RELEASE_LEAD_SECONDS before send_at; `release` then books its pace from send_at onwards with
pacing's ordinary booking and queues the job hidden until then (or, when the booking is further
than SQS's delay, leaves it to the sweep's next look, as any paced message).
"""
from pynamodb.exceptions import DoesNotExist

from chalicelib.core.errors import BadRequest, OptedOut
from chalicelib.domain import messages, opt_outs, pacing
from chalicelib.storage.tables import Device, Message, update_if


def release(message: Message, now: int) -> str:
    """Book the pace of a due `pace_at_release` message and queue it: 'released',
    'held' (booking beyond SQS's delay, or the phone busy or full: looked at again), 'retry'
    (the queue call failed; the sweep queues it), 'raced' or 'failed' (its device is gone, it
    is longer than the phone's limits now allow, or its number has opted out since)."""
    try:
        device = Device.get(message.device_uid)
    except DoesNotExist:
        return messages.device_gone(message, now)
    if not message.encrypted:  # the number opted out since it was accepted: it is not sent
        try:
            opt_outs.refuse(message.account_id, message.phone_number)
        except OptedOut as error:
            done = messages.close(message, "failed", error.message, failed_at=now)
            return "failed" if done else "raced"
    start = max(now, message.not_before or now)
    # A booking made and then lost to a race (a cancel) only spaces later messages out more.
    try:
        booking = pacing.book(device, message.sim_slot, message.segments, start)
    except (pacing.AtCapacity, pacing.Busy):
        return "held"  # still due: the sweep's next run books it
    except BadRequest as error:  # longer than the phone's limits, lowered since it was accepted
        done = messages.close(message, "failed", error.message, failed_at=now)
        return "failed" if done else "raced"
    grace = messages.grace_seconds(message.pool_uid)
    not_before = booking.at if booking.at > now else None
    due = min(messages.first_look_due(not_before, now, grace), message.expires_at)
    if not update_if(message, [
            Message.not_before.set(not_before) if not_before else Message.not_before.remove(),
            Message.open_due.set(due), Message.pace_at_release.remove()],
            (Message.status == "pending") & (Message.open_due == message.open_due)
            & Message.pace_at_release.exists()):
        return "raced"
    message.not_before, message.open_due = not_before, due
    if messages.queue_delay(message, now) is None:
        return "held"
    return "released" if messages.enqueue(device, message, message.body) else "retry"
