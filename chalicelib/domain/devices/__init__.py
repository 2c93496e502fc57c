"""Devices (phones) of an account: registration with their own secret and SQS queue, lookup,
removal, and the running/stopped status the API reports.

A device authenticates with a token `<device_uid>.<secret>`; only the secret's SHA-256 is
stored, and it is unrelated to the account's API keys, so one lost phone is revoked alone.
"""
import hashlib
import hmac
import logging
import math
import re
import secrets

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.core import clock, settings, text
from chalicelib.core.cache import TTLCache
from chalicelib.core.errors import BadRequest, NotFound, RateLimited, Unauthorized
from chalicelib.domain import quotas
from chalicelib.domain.accounts import get_account, refuse_suspended
from chalicelib.storage import aws
from chalicelib.storage.tables import POLL_SLOTS, Account, Device, update_if

log = logging.getLogger("smsgw")

UID_PATTERN = re.compile(r"^[0-9a-f]{16}\Z")
ID_PATTERN = re.compile(r"^[0-9]{1,9}\Z")  # \Z: "$" would accept a trailing newline
LIVE = "live"
_cache = TTLCache(lambda: settings.current().auth_cache_seconds)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def register(account_id: str, name: str, sim_count: int | None = None) -> tuple[Device, str]:
    """Creates the device and its queue; returns it and its token (shown once)."""
    name = text.name(name, parameter="name", what="Device name")
    if sim_count is not None and sim_count not in (1, 2):
        raise BadRequest("sim_count must be 1 or 2.", "sim_count")
    counter = _count_in(account_id)
    try:
        uid = secrets.token_hex(8)
        secret = secrets.token_hex(24)
        queue_url = aws.sqs().create_queue(
            QueueName=settings.current().queue_name(uid),
            Attributes={"VisibilityTimeout": str(settings.current().lease_seconds),
                        "MessageRetentionPeriod": "1209600"},
            tags={"account_id": account_id},
        )["QueueUrl"]
        device = Device(device_uid=uid, account_id=account_id,
                        device_id=counter.next_device_id, name=name, secret_hash=_hash(secret),
                        queue_url=queue_url, created_at=clock.now_ms(), sim_count=sim_count)
        device.save(Device.device_uid.does_not_exist())
    except Exception:
        _count_out(account_id)  # the phone was not made: its place in the quota is free
        raise
    return device, f"{uid}.{secret}"


def _count_in(account_id: str) -> Account:
    """Take the account's next device id and a place in its phones quota, in one conditional
    UpdateItem of the account (also refused while the account is suspended): concurrent
    registrations are applied one at a time, so at most `limit` phones exist at any moment."""
    account = get_account(account_id, consistent=True)
    refuse_suspended(account)
    if account.phone_count is None:  # an account older than the counter: count it once
        phones = sum(1 for _ in Device.by_account.query(account_id))
        update_if(Account(account_id=account_id), [Account.phone_count.set(phones)],
                  Account.phone_count.does_not_exist())
    cap = quotas.limit(account, quotas.PHONES)
    # not deleted: a registration racing the account's deletion either counts before the mark
    # (its device is then purged) or fails here, before its queue exists
    condition = Account.account_id.exists() & Account.suspended_at.does_not_exist() & \
        Account.deleted_at.does_not_exist()
    if cap > 0:
        condition &= Account.phone_count < cap
    counter = Account(account_id=account_id)
    if not update_if(counter, [Account.next_device_id.add(1), Account.phone_count.add(1)],
                     condition):
        refuse_suspended(get_account(account_id, consistent=True))  # NotFound if deleted
        raise quotas.refuse_count(quotas.PHONES, cap, "name")
    return counter


def _count_out(account_id: str) -> None:
    update_if(Account(account_id=account_id), [Account.phone_count.add(-1)],
              Account.phone_count > 0)


def list_devices(account_id: str) -> list[Device]:
    """The account's devices, by device_id: the `by-account` index gives their keys (it is keys
    only), one BatchGetItem per 100 their items."""
    uids = [entry.device_uid for entry in Device.by_account.query(account_id)]
    found = list(Device.batch_get(uids)) if uids else []
    return sorted((d for d in found if d.account_id == account_id), key=lambda d: d.device_id)


def _by_uid(account_id: str, uid: str) -> Device:
    try:
        device = Device.get(uid)
    except DoesNotExist:
        device = None
    if device is None or device.account_id != account_id:
        raise NotFound(f"Unknown device: no device with device_uid '{uid}' in this account.",
                       "device_uid")
    return device


def _by_id(account_id: str, device_id: int) -> Device:
    for entry in Device.by_account.query(account_id, Device.device_id == device_id):
        try:
            return _by_uid(account_id, entry.device_uid)  # the index holds keys only
        except NotFound:
            break  # removed since the index was read
    raise NotFound(f"Unknown device: no device with device_id {device_id} in this account.",
                   "device_id")


def resolve(account_id: str, device_id: str | None = None, device_uid: str | None = None) -> Device:
    """The account's device named by `device_id` (an id, or a uid as the reference allows) and/or
    `device_uid`. Cached across warm invocations."""
    refs = []
    if device_id not in (None, ""):
        if ID_PATTERN.match(device_id):
            refs.append(("id", int(device_id), "device_id"))
        elif UID_PATTERN.match(device_id.lower()):
            refs.append(("uid", device_id.lower(), "device_id"))
        else:
            raise BadRequest("Invalid device_id: expected a device id (a number) or a 16-hex "
                             "device uid.", "device_id")
    if device_uid not in (None, ""):
        if not UID_PATTERN.match(device_uid.lower()):
            raise BadRequest("Invalid device_uid: expected 16 hexadecimal characters.",
                             "device_uid")
        refs.append(("uid", device_uid.lower(), "device_uid"))
    if not refs:
        raise BadRequest("Missing required parameter: device_id or device_uid.", "device_id")
    found = []
    for kind, value, _ in refs:
        key = (account_id, kind, value)
        device = _cache.get(key)
        if device is None:
            device = _by_id(account_id, value) if kind == "id" else _by_uid(account_id, value)
            _cache.put(key, device)
        found.append(device)
    if len({d.device_uid for d in found}) > 1:
        raise BadRequest("device_id and device_uid name different devices.", "device_uid")
    return found[0]


def remove(account_id: str, device_ref: str) -> Device:
    """Deletes the device and its queue. Its unsent messages are settled by the expiry sweep."""
    ref = str(device_ref)
    device = resolve(account_id, device_id=ref)
    device.delete(Device.account_id == account_id)
    _count_out(account_id)
    try:
        aws.sqs().delete_queue(QueueUrl=device.queue_url)
    except aws.sqs().exceptions.QueueDoesNotExist:
        pass
    forget_cached()
    return device


def authenticate(token: str | None) -> Device:
    """The device behind a device token `<device_uid>.<secret>`. A warm container keeps the
    device record for AUTH_CACHE_SECONDS (so an idle long-poll costs one SQS call); the secret
    is checked against it on every request."""
    uid, _, secret = (token or "").partition(".")
    if not UID_PATTERN.match(uid) or not secret:
        raise Unauthorized("Missing or malformed device token.", "authorization")
    device = _cache.get(("token", uid))
    cached = device is not None
    if device is None:
        device = _load(uid)
    if not hmac.compare_digest(device.secret_hash, _hash(secret)) and cached:
        device, cached = _load(uid), False  # the secret may be newer than the cache
    if not hmac.compare_digest(device.secret_hash, _hash(secret)):
        raise Unauthorized("Invalid device token.", "authorization")
    if not cached:
        # Once per AUTH_CACHE_SECONDS per container: a suspended account's phones are refused
        # (domain/operators.py), within that time, like a revoked key.
        refuse_suspended(get_account(device.account_id))
        _cache.put(("token", uid), device)
    return device


def _load(uid: str) -> Device:
    try:
        device = Device.get(uid)
    except DoesNotExist:
        raise Unauthorized("Invalid device token.", "authorization")
    return device


def is_running(device: Device, now_ms: int | None = None) -> bool:
    now_ms = clock.now_ms() if now_ms is None else now_ms
    return (device.app_state == "running" and device.last_seen is not None
            and now_ms - device.last_seen <= settings.current().heartbeat_window_seconds * 1000)


def describe(device: Device) -> dict:
    """A device as `device_status` shows it."""
    return {
        "device_id": device.device_id,
        "device_uid": device.device_uid,
        "name": device.name,
        "status": "running" if is_running(device) else "stopped",
        "last_seen": clock.fmt(device.last_seen),
        "sim_count": device.sim_count,
        "battery": device.battery,
        "signal": device.signal,
    }


def forget_cached() -> None:
    _cache.clear()


def exists(device_uid: str) -> bool:
    try:
        Device.get(device_uid, consistent_read=True)
        return True
    except DoesNotExist:
        return False


def removed(device: Device):
    """The device was removed since this container cached it: forget it and say so (401)."""
    forget_cached()
    raise Unauthorized(f"Device removed: device {device.device_id} ({device.device_uid}) was "
                       "removed from its account; this token no longer works.",
                       "authorization", code="device_removed")


def _update_or_removed(device: Device, actions) -> None:
    """An UpdateItem whose only condition is that the device still exists."""
    try:
        device.update(actions=actions, condition=Device.device_uid.exists())
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        removed(device)


# A poll that ends with more than this left on its slot gives the slot back at once (one more
# write); one that waited its whole time lets the slot expire by itself (no write).
POLL_RELEASE_MIN_MS = 500


def start_poll(device: Device, wait_seconds: int) -> tuple[str, int]:
    """Take one of the device's MAX_LIVE_POLLS poll slots for `wait_seconds`, refreshing its
    `last_seen` in the same conditional write when `seen` would (so a poll never needs a second
    write for it); returns (slot, held until). Each slot is an
    attribute `poll_i` holding until when a poll owns it: a write takes it only if it is absent
    or past, so however many processes poll with one token, at most MAX_LIVE_POLLS hold a slot
    at any moment. Refused: RateLimited (429, Retry-After until a slot frees), or the device was
    removed (401)."""
    now = clock.now_ms()
    until = now + max(wait_seconds, 1) * 1000
    stale = not _seen_recently(device, now)  # as `seen`: at most every SEEN_REFRESH_SECONDS
    running = [Device.last_seen.set(now), Device.app_state.set("running"),
               Device.live.set(LIVE)] if stale else []
    for name in POLL_SLOTS:
        slot = getattr(Device, name)
        if update_if(Device(device_uid=device.device_uid), [slot.set(until), *running],
                     Device.device_uid.exists() & (slot.does_not_exist() | (slot <= now))):
            if stale:
                device.last_seen, device.app_state, device.live = now, "running", LIVE
            return name, until
    try:
        current = Device.get(device.device_uid, consistent_read=True)
    except DoesNotExist:
        removed(device)
    free_at = min(getattr(current, name) or now for name in POLL_SLOTS)
    raise RateLimited(f"Too many live polls for this device: at most {len(POLL_SLOTS)} at once "
                      "(is the device token in use somewhere else?).", "authorization",
                      retry_after=max(1, math.ceil((free_at - now) / 1000)))


def end_poll(device: Device, lease: tuple[str, int]) -> None:
    """Give the poll slot back if the poll ended early (jobs came); a full-length poll's slot
    has expired by now and costs no write."""
    name, until = lease
    if until - clock.now_ms() <= POLL_RELEASE_MIN_MS:
        return
    slot = getattr(Device, name)
    try:
        update_if(Device(device_uid=device.device_uid), [slot.remove()], slot == until)
    except Exception as exc:  # the slot expires anyway
        log.info("could not release a poll slot of %s (%r)", device.device_uid, exc)


APP_STATES = ("running", "stopped")
# A poll, claim, report or credentials call refreshes `last_seen` only when it is older than
# this, so busy devices stay cheap. Agents skip heartbeats while those calls keep them alive (one
# heartbeat interval after the last of them), so `last_seen` may lag their last call by this
# much: at most half the interval keeps interval + lag inside the heartbeat window (1/3 + 1/6 of
# it by default; 240 + 30 s of 540 s deployed).
SEEN_REFRESH_SECONDS = min(30, settings.current().heartbeat_seconds / 2)


def heartbeat(device: Device, app_state: str, battery: int | None = None,
              signal: int | None = None, sim_count: int | None = None,
              e2e: bool | None = None) -> Device:
    """Record what the device's app says about itself (one UpdateItem). `e2e`: its agent
    can decrypt end-to-end encrypted messages (None: it did not say, nothing changes)."""
    actions = [Device.last_seen.set(clock.now_ms()), Device.app_state.set(app_state),
               Device.live.set(LIVE) if app_state == "running" else Device.live.remove(),
               Device.battery.set(battery) if battery is not None else Device.battery.remove(),
               Device.signal.set(signal) if signal is not None else Device.signal.remove()]
    if sim_count is not None:
        actions.append(Device.sim_count.set(sim_count))
    if e2e is not None:
        actions.append(Device.e2e.set(True) if e2e else Device.e2e.remove())
        device.e2e = True if e2e else None
    _update_or_removed(device, actions)
    return device


def check_sim_slot(device: Device, sim_slot: int) -> int:
    """A SIM this device has (1 or 2, at most its sim_count when known): what a send names."""
    if sim_slot not in (1, 2):
        raise BadRequest("Invalid sim_slot: must be 1 or 2.", "sim_slot")
    if device.sim_count is not None and sim_slot > device.sim_count:
        raise BadRequest(f"Invalid sim_slot: device {device.device_id} has only "
                         f"{device.sim_count} SIM.", "sim_slot")
    return sim_slot


def can_decrypt(device: Device) -> bool:
    """Can this phone take end-to-end encrypted messages? Our agent says so in its heartbeat;
    SMSGate's app (kind "app") decrypts with its own passphrase setting, which the gateway
    cannot see, so it is trusted to, and reports a message it cannot decrypt failed."""
    return bool(device.e2e) or getattr(device, "kind", None) == "app"


def _seen_recently(device: Device, now: int) -> bool:
    return (device.app_state == "running" and device.last_seen is not None
            and now - device.last_seen < SEEN_REFRESH_SECONDS * 1000)


def seen(device: Device) -> None:
    """A job poll shows the app is running: refresh `last_seen` unless it is recent already."""
    now = clock.now_ms()
    if _seen_recently(device, now):
        return
    _update_or_removed(device, [Device.last_seen.set(now), Device.app_state.set("running"),
                                Device.live.set(LIVE)])


def stop_silent(now_ms: int | None = None, on_stop=None) -> int:
    """Mark `stopped` the devices whose app said running but has been silent past the
    heartbeat window. A heartbeat racing this wins (the write is conditional on last_seen).
    `on_stop(device)` runs for each device this call stopped (failover, pool.py); it gets the
    index's keys-only entry (device_uid, last_seen), which is all failover needs."""
    now = clock.now_ms() if now_ms is None else now_ms
    cutoff = now - settings.current().heartbeat_window_seconds * 1000
    stopped = 0
    for device in list(Device.live_devices.query(LIVE, Device.last_seen < cutoff)):
        if update_if(device, [Device.app_state.set("stopped"), Device.live.remove()],
                     Device.last_seen == device.last_seen):
            stopped += 1
            if on_stop is not None:
                on_stop(device)
    return stopped



def update_alive(device: Device, actions) -> None:
    """One UpdateItem of a device that must still exist (401 `device_removed` otherwise)."""
    _update_or_removed(device, actions)


def new_secret(device: Device) -> str:
    """A fresh device token for an existing device; the old one stops working at once (here;
    other warm containers within AUTH_CACHE_SECONDS). For an app phone registering again."""
    secret = secrets.token_hex(24)
    _update_or_removed(device, [Device.secret_hash.set(_hash(secret))])
    device.secret_hash = _hash(secret)
    forget_cached()
    return f"{device.device_uid}.{secret}"
