"""The "jobs may be waiting" hint of an SMSGate app phone (docs/android-app.md): the app pulls
GET /message on every /events connection, every 5 s, and an idle pull that finds the hint clear
answers without an SQS receive (one consistent read instead of a receive: cheaper and faster).

Three attributes of the device item: `jobs_rung`, a counter every queueing of a job adds one to
BEFORE the job is sent to SQS; `jobs_seen`, the counter value the last idle pull cleared; and
`jobs_until`, the latest time a queued job may become visible (paced jobs are hidden by
DelaySeconds). A pull skips SQS only when it reads, consistently, rung == seen and until passed.
A pull that receives nothing (a long poll of 1 s, which asks every SQS server) clears with a
conditional write: seen := r only if rung is still the r it read and until has passed. So:

- a ring before the pull's read: the read sees rung != seen and the pull receives;
- a ring after the read, before the clear: rung moved on, the clear's condition fails, the hint
  stays set and the next pull (5 s later) receives;
- a ring after the clear: rung != seen again. The counter only grows, so a clear cannot match a
  newer ring (no ABA), whatever order the writes land in.

A job is queued only after its ring succeeded; a ring that fails counts as a failed queue write
(the message stays pending and the outbox sweep queues it, ringing again). Agents never ring:
their sends and polls make no call of this module.
"""
from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.core import clock
from chalicelib.domain import devices
from chalicelib.storage.tables import Device, update_if

KIND = "app"
VISIBLE_MARGIN_MS = 2000  # SQS's delay is counted from its own clock: keep the hint a bit longer
RECEIVE_SECONDS = 1  # a pull with the hint set long-polls this long: 0 would sample servers


def rings(device: Device) -> bool:
    return device.kind == KIND


def ring(device: Device, delay_seconds: int = 0) -> None:
    """Say a job is about to be queued for `device` (an app phone), visible after
    `delay_seconds`. One UpdateItem; a second one only when a job visible sooner is queued
    after one visible later (an OTP ahead of a paced backlog). Raises if DynamoDB failed."""
    key = Device(device_uid=device.device_uid)
    exists = Device.device_uid.exists()
    if delay_seconds > 0:
        until = clock.now_ms() + delay_seconds * 1000 + VISIBLE_MARGIN_MS
        if update_if(key, [Device.jobs_rung.add(1), Device.jobs_until.set(until)],
                     exists & (Device.jobs_until.does_not_exist() | (Device.jobs_until <= until))):
            return
    # A removed device (the condition fails) is found out by the queue call that follows.
    update_if(key, [Device.jobs_rung.add(1)], exists)


def look(device: Device) -> int | None:
    """None when no job can be waiting (skip SQS); else the counter a clear must match."""
    try:
        item = Device.get(device.device_uid, consistent_read=True,
                          attributes_to_get=["device_uid", "jobs_rung", "jobs_seen", "jobs_until"])
    except DoesNotExist:
        devices.removed(device)  # raises: removed while its token was cached
    rung = item.jobs_rung or 0
    if rung == (item.jobs_seen or 0) and (item.jobs_until or 0) <= clock.now_ms():
        return None
    return rung


def clear(device: Device, rung: int) -> bool:
    """After a receive that found nothing: clear the hint unless a ring came since `look`."""
    key = Device(device_uid=device.device_uid)
    now = clock.now_ms()
    try:
        return update_if(key, [Device.jobs_seen.set(rung)],
                         (Device.jobs_rung == rung)
                         & (Device.jobs_until.does_not_exist() | (Device.jobs_until <= now)))
    except PynamoDBException:
        return False  # the hint stays set: the next pull receives again
