"""The "jobs may be waiting" hint of an SMSGate app phone (docs/android-app.md): the app pulls
GET /message on every /events connection, every 5 s, and a pull that finds the hint clear
answers without an SQS receive (one consistent read instead: cheaper and faster).

Three attributes of the device item: `jobs_rung`, a counter each queueing of a job adds one to
once the job is on the queue; `jobs_seen`, the counter value the last empty pull cleared; and
`jobs_until`, the latest time a queued paced job becomes visible (DelaySeconds hides it). A pull
skips SQS only when it reads, consistently, rung == seen and until passed. A pull whose receive
got nothing (a long poll of 1 s, which asks every SQS server) clears: seen := r, with the
condition that rung is still the r it read and until has passed.

Every interleaving of a send (Q: job on the queue, then R: ring) with a pull (L: read r, V:
receive, C: clear):
- R before L: L sees rung != seen, so V runs after Q and finds the job.
- L before R, C before R: C succeeds, then R moves rung past seen: the next pull receives.
- L before R, C after R: rung is no longer r, C's condition fails: the next pull receives.
The counter only grows, so no clear can match a newer ring (no ABA); two clears racing only
lower `seen`, which makes a pull receive once more. Ringing BEFORE queueing would not do: a pull
could read that ring, receive before the job is on the queue and clear it.

A ring that fails (or a Lambda that dies between Q and R) leaves the job on the queue unrung,
the message `pending`: as after a failed queue write, the outbox sweep queues it again and
rings. A job received but not leased (another pull holds it) keeps the hint set: it comes back.
Agents never ring: their sends and polls make no call of this module.
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
    """Say a job is on `device`'s queue (an app phone), visible after `delay_seconds`. One
    UpdateItem; a second only when a job visible sooner follows one visible later (an OTP ahead
    of a paced backlog). Raises PynamoDBException if DynamoDB failed."""
    key = Device(device_uid=device.device_uid)
    exists = Device.device_uid.exists()
    if delay_seconds > 0:
        until = clock.now_ms() + delay_seconds * 1000 + VISIBLE_MARGIN_MS
        if update_if(key, [Device.jobs_rung.add(1), Device.jobs_until.set(until)],
                     exists & (Device.jobs_until.does_not_exist() | (Device.jobs_until <= until))):
            return
    # A removed device (the condition fails) has no queue left to pull from.
    update_if(key, [Device.jobs_rung.add(1)], exists)


def look(device: Device) -> int | None:
    """None when no job can be waiting (skip SQS); else the counter a clear must match."""
    try:
        item = Device.get(device.device_uid, consistent_read=True,
                          attributes_to_get=["device_uid", "jobs_rung", "jobs_seen",
                                             "jobs_until"])
    except DoesNotExist:
        devices.removed(device)  # raises: removed while its token was cached
    rung = item.jobs_rung or 0
    if rung == (item.jobs_seen or 0) and (item.jobs_until or 0) <= clock.now_ms():
        return None
    return rung


def clear(device: Device, rung: int) -> bool:
    """After a receive that got nothing: clear the hint unless a ring came since `look`."""
    key = Device(device_uid=device.device_uid)
    try:
        return update_if(key, [Device.jobs_seen.set(rung)],
                         (Device.jobs_rung == rung) & (Device.jobs_until.does_not_exist()
                                                       | (Device.jobs_until <= clock.now_ms())))
    except PynamoDBException:
        return False  # the hint stays set: the next pull receives again

