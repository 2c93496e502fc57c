"""Pacing: no phone is handed more SMS parts than its limits allow, enforced by the gateway
rather than hoped for from the phone. Two limits, each with its real shape (docs/pool.md):

- per phone, a sliding window: at most N parts in any 30 minutes, all SIMs and OTPs counted
  (Android's SmsUsageMonitor), of which a reserve only OTPs may use, so an OTP never waits
  behind bulk and never trips Android's dialog;
- per SIM, the carrier's rate: at most R parts in any hour.

A burst that fits both goes at once; what does not waits for the earliest second both allow
(pacing/log.py computes it), and the caller is told when.

Concurrency. The state is one attribute of the device item, `pace_log` (the parts handed out
or booked, pruned to the longest window, at most PACE_LOG_ENTRIES entries), with a version
`pace_ver`. A reservation reads the log, computes its time, and writes the new log with ONE
conditional UpdateItem: `SET pace_log = new, pace_ver = v + 1 IF pace_ver = v` (absent for the
first). DynamoDB applies conditional writes to one item one at a time, so of any set of
concurrent reservations computed from version v exactly one commits; the others fail their
condition, get the current item in the same call (ReturnValuesOnConditionCheckFailure), and
compute again. Every committed log is therefore its predecessor plus one entry that was checked
against all of it, so by induction every committed log keeps every window, for every
interleaving of any number of Lambdas; a stale cached log only costs a retry. The log counts
each window that can still matter (one reaching a time >= now) at least as full as the real
hand-outs: pruning drops only entries no such window reaches, and compaction (pace_log.compact)
moves a settled part later, into more of them, never fewer. A booking that keeps losing
(PACE_TRIES) answers "busy, retry" rather than guess.
"""
import math
from dataclasses import dataclass

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, NotFound, RateLimited, Unavailable
from chalicelib.core.text import ascii_int
from chalicelib.domain.pacing import log as pace_log
from chalicelib.storage.model_base import update_or_current
from chalicelib.storage.tables import Device, update_if

SIMS = (1, 2)
PACE_TRIES = 8


@dataclass
class Booking:
    """A message's place in its phone's pace (book): not the SIM it goes on (sim_slot)."""
    at: int  # when the message may be handed to the phone (epoch ms)


class Busy(Unavailable):
    code = "pacing_busy"


class AtCapacity(RateLimited):
    """The phone cannot take the message within the horizon asked for (automatic choice tries
    another), or its log is full of later bookings (a named send's caller retries)."""
    code = "device_at_capacity"

    def __init__(self, free_at: int, now: int):
        super().__init__(f"The phone is at capacity (pacing) until {clock.fmt(free_at)} UTC.",
                         "device_id", retry_after=max(1, -(-(free_at - now) // 1000)))
        self.free_at = free_at  # from then on it would fit within the horizon asked for


def window_of(device: Device) -> int:
    """Parts per PACE_WINDOW_SECONDS this phone may be handed (0: no window)."""
    own = getattr(device, "pace_window", None)
    return int(own) if own is not None else settings.current().pace_window_parts


def pace_of(device: Device) -> int:
    """Parts per PACE_RATE_SECONDS each SIM of this phone may send (0: no rate)."""
    if device.pace_per_hour is not None:
        return int(device.pace_per_hour)
    return settings.current().default_pace_per_hour


def _otp_reserve(parts: int) -> int:
    """Of a limit of `parts`, how many only OTPs may use."""
    return min(settings.current().pace_otp_reserve, parts // 2)


def limits(device: Device, sim: int) -> list[pace_log.Limit]:
    window, rate = window_of(device), pace_of(device)
    return [pace_log.Limit(window, settings.current().pace_window_seconds, _otp_reserve(window)),
            pace_log.Limit(rate, settings.current().pace_rate_seconds, _otp_reserve(rate), sim)]


def is_paced(device: Device) -> bool:
    return bool(window_of(device) or pace_of(device))


def paused_until(device: Device, sim: int) -> int:
    return getattr(device, f"paused_until_{sim}") or 0


def pause_reason(device: Device, sim: int) -> str | None:
    return getattr(device, f"pause_reason_{sim}")


def is_paused(device: Device, sim: int, now: int) -> bool:
    return paused_until(device, sim) > now


def _state(device: Device) -> tuple[bytes | None, int | None]:
    """The device's (log, version) as one value: automatic choice shares cached Device objects
    between the threads of one request (REST v1's bulk send), and a log read apart from its
    version could pair an old log with a newer version, whose write would then succeed."""
    return device.__dict__.get("_pace_state") or (device.pace_log, device.pace_ver)


def _keep(device: Device, log: bytes | None, version: int | None) -> None:
    device.__dict__["_pace_state"] = (log, version)  # one assignment: atomic between threads


def entries_of(device: Device) -> list[pace_log.Entry]:
    return pace_log.decode(_state(device)[0])


def fullness(device: Device, sim: int, now: int, entries: list | None = None) -> float:
    """How full the phone's window and this SIM's rate are (0-1, the fuller of the two, bulk
    parts booked from a window ago on over what bulk may use). Choice breaks ties between SIMs
    that can send equally soon by this plus a random 0-1, so a burst mostly goes to the
    emptier phones without always starving a busier one; an unpaced phone counts as empty."""
    entries, fill = entries_of(device) if entries is None else entries, 0.0
    for limit in limits(device, sim):
        if limit.parts:
            since = _second(now) - limit.seconds
            used = sum(e.parts for e in entries if e.at >= since and not e.otp
                       and (limit.sim is None or e.sim == limit.sim))
            fill = max(fill, used / max(1, limit.parts - limit.reserve))
    return fill


def _field(name: str, sim: int):
    return getattr(Device, f"{name}_{sim}")


def _second(ms: int) -> int:
    return -(-ms // 1000)


def _handout(at_s: int, start: int) -> int:
    """The hand-out time (ms) of a message placed at second at_s, asked for at `start`."""
    return start if at_s == _second(start) else at_s * 1000


def _start(device: Device, sim: int, now: int, urgent: bool) -> int:
    return now if urgent else max(now, paused_until(device, sim))  # OTPs do not wait a pause


def _settled(entries, device: Device, sim: int, now: int) -> list[pace_log.Entry]:
    """The log without what no window can reach any more, compacted to leave room for one.
    Relative to the real clock at the latest: a caller's `now` may be a later start (a
    scheduled release), and what lies before it may still matter to other bookings."""
    floor = _second(min(now, clock.now_ms()))
    entries = pace_log.prune(entries, floor - 1, limits(device, sim))
    return pace_log.compact(entries, floor, settings.current().pace_log_entries)


def too_long(device: Device, sim: int, segments: int, urgent: bool = False) -> bool:
    """More parts than this SIM's limits allow at all (bulk: less the OTP reserve)."""
    return any(lim.parts and max(1, segments) > lim.parts - (0 if urgent else lim.reserve)
               for lim in limits(device, sim))


def earliest(device: Device, sim: int, segments: int, now: int, urgent: bool = False,
             entries: list | None = None) -> int | None:
    """When (epoch ms) a message of `segments` parts could be handed out on this SIM under the
    device's state as read, or None if it never fits (more parts than a limit allows)."""
    if not is_paced(device):
        return _start(device, sim, now, urgent)
    entries = _settled(entries_of(device) if entries is None else entries, device, sim, now)
    start = _start(device, sim, now, urgent)
    at = pace_log.place(entries, limits(device, sim), sim, max(1, segments), urgent,
                        _second(start), settings.current().pace_log_entries)
    return None if at is None else _handout(at, start)


def book(device: Device, sim: int, segments: int, now: int | None = None,
         horizon_ms: int | None = None, urgent: bool = False) -> Booking:
    """Book a message of `segments` parts on the device's SIM at the earliest time both limits
    allow (`urgent`: an OTP's, which may use the reserve and does not wait for a pause). Raises
    AtCapacity if that is beyond `horizon_ms` from now or the log is full of later bookings,
    BadRequest if the message has more parts than a limit allows at all, NotFound if the
    device is gone, Busy if the log kept changing under it. An unpaced device costs no AWS
    call."""
    if not is_paced(device):  # at once: the caller's `now`, not a later read of the clock
        return Booking(now or clock.now_ms())
    # never before the real clock: a job cannot be handed out in the past (a sweep's `now` is
    # its run's start), and compaction may have moved settled parts up to it
    now = max(now or 0, clock.now_ms())
    parts = max(1, segments)
    for _ in range(PACE_TRIES):
        start = _start(device, sim, now, urgent)
        raw, version = _state(device)
        entries = _settled(pace_log.decode(raw), device, sim, now)
        at_s = pace_log.place(entries, limits(device, sim), sim, parts, urgent,
                              _second(start), settings.current().pace_log_entries)
        if at_s is None and pace_log.earliest(entries, limits(device, sim), parts, urgent,
                                              _second(start)) is None:
            raise BadRequest(f"Message too long for this phone's pacing: {parts} parts are "
                             "more than its window or SIM rate allows at once.", "message",
                             code="pool_too_long")
        if at_s is None:  # the log is full of later bookings: one of them must pass first
            raise AtCapacity(now + settings.current().pace_window_seconds * 1000, now)
        at = _handout(at_s, start)
        if horizon_ms is not None and at > now + horizon_ms:
            raise AtCapacity(at - horizon_ms, now)
        log = pace_log.encode(pace_log.add(entries, at_s, sim, urgent, parts))
        condition = Device.device_uid.exists() & (
            Device.pace_ver.does_not_exist() if version is None else Device.pace_ver == version)
        done, current = update_or_current(
            Device(device_uid=device.device_uid),
            [Device.pace_log.set(log), Device.pace_ver.set((version or 0) + 1)], condition)
        if done:
            _keep(device, log, (version or 0) + 1)
            return Booking(at)
        if not current:
            raise NotFound(f"Unknown device: device {device.device_id} was removed.",
                           "device_id")
        fresh = Device.from_raw_data(current)
        for name in ("pace_window", "pace_per_hour", f"paused_until_{sim}"):
            setattr(device, name, getattr(fresh, name))
        _keep(device, fresh.pace_log, fresh.pace_ver)
    raise Busy("Pacing is busy: many sends to this phone at once; retry in a second.",
               "device_id", retry_after=1)


def pause(device: Device, sim: int, seconds: int, reason: str, now: int | None = None) -> int:
    """Rest one SIM for `seconds`: later automatic choices avoid it and a named bulk send waits
    for its end (reservations start there). Returns the pause's end."""
    now = clock.now_ms() if now is None else now
    until = now + seconds * 1000
    until_field = _field("paused_until", sim)
    update_if(Device(device_uid=device.device_uid),
              [until_field.set(until), _field("pause_reason", sim).set(reason[:200]),
               Device.pause_unseen.set(sim)],
              Device.device_uid.exists() & (until_field.does_not_exist() | (until_field < until)))
    setattr(device, f"paused_until_{sim}", until)
    setattr(device, f"pause_reason_{sim}", reason[:200])
    return until


def pauses_in(old: dict, new: dict) -> list[tuple[int, int, str]]:
    """The pauses one devices-stream change wrote (plain images): (sim, until, reason) for each
    SIM whose pause was set or lengthened. A heartbeat after a pause changes neither, so a
    pause is reported once however many records show it."""
    found = []
    for sim in SIMS:
        until = new.get(f"paused_until_{sim}") or 0
        if until > (old.get(f"paused_until_{sim}") or 0):
            found.append((sim, until, new.get(f"pause_reason_{sim}") or ""))
    return found


def pause_read(device_uid: str) -> None:
    """The stream has read the device's pauses: drop the mark that lets its records through
    the stream filter, so the phone's heartbeats stop invoking the stream function."""
    update_if(Device(device_uid=device_uid), [Device.pause_unseen.remove()],
              Device.pause_unseen.exists())


def _whole(raw, what: str, parameter: str, top: int, words: dict) -> int | None:
    text = str(raw if raw is not None else "").strip()
    if text.lower() in words:
        return words[text.lower()]
    try:
        value = ascii_int(text)
    except ValueError:
        value = None
    if value is None or not 1 <= value <= top:
        named = " or ".join(f"'{w}'" for w in words)
        raise BadRequest(f"Invalid {parameter}: '{text[:40]}'; use a whole number of SMS parts "
                         f"{what}, 1-{top:,}, or {named} (0 or less would never send).",
                         parameter)
    return value


def check_pace(raw) -> int | None:
    """The owner's SIM rate: parts per hour per SIM, or 'default' (None)."""
    return _whole(raw, "per hour per SIM", "pace", settings.current().max_pace_per_hour,
                  {"default": None})


def check_window(raw) -> int | None:
    """The owner's phone window: parts per 30 minutes, 'none' (0: no window, for a phone whose
    Android limit was raised) or 'default' (None)."""
    return _whole(raw, "per 30 minutes", "window", settings.current().max_window_parts,
                  {"default": None, "none": 0})


KEEP = object()  # set_limits: leave this one as it is


def set_limits(device: Device, pace=KEEP, window=KEEP) -> Device:
    """Set a device's SIM rate and/or window, as check_pace/check_window return them (None: the
    default; window 0: none); one conditional UpdateItem that fails if the device is gone or
    another account's. It bumps the log's version, so no reservation computed under the old
    limits lands after the change."""
    actions = []
    for name, value in (("pace_per_hour", pace), ("pace_window", window)):
        if value is KEEP:
            continue
        attribute = getattr(Device, name)
        actions.append(attribute.set(value) if value is not None else attribute.remove())
    if not actions:
        return device
    actions.append(Device.pace_ver.add(1))
    if not update_if(Device(device_uid=device.device_uid), actions,
                     Device.account_id == device.account_id):
        raise NotFound(f"Unknown device: device {device.device_id} was removed.", "device_id")
    for name, value in (("pace_per_hour", pace), ("pace_window", window)):
        if value is not KEEP:
            setattr(device, name, value)
    device.__dict__.pop("_pace_state", None)
    device.pace_ver = None  # unknown now: the next booking learns it from its failed condition
    return device


def set_pace(device: Device, pace_per_hour) -> Device:
    return set_limits(device, pace=None if pace_per_hour is None else check_pace(pace_per_hour))


def describe(device: Device, now: int | None = None) -> dict:
    """Pacing and pause state of a device, for device_status (fields as before issue 21)."""
    now = clock.now_ms() if now is None else now
    entries = entries_of(device)
    sims = []
    for sim in SIMS[:device.sim_count or 1]:
        paused = is_paused(device, sim, now)
        free = earliest(device, sim, 1, now, entries=entries)
        sims.append({"sim_slot": sim,
                     "next_free_at": clock.fmt(free) if free is not None else None,
                     "paused": paused,
                     "paused_until": clock.fmt(paused_until(device, sim)) if paused else None,
                     "pause_reason": pause_reason(device, sim) if paused else None})
    return {"pace_per_hour": pace_of(device) or None,
            "paced": is_paced(device),
            "paused": bool(sims) and all(s["paused"] for s in sims),
            "pause_reason": next((s["pause_reason"] for s in sims if s["paused"]), None),
            "sims": sims}


def window_state(device: Device, now: int | None = None) -> dict:
    """The phone's window for the dashboard: its parts, minutes and parts used now (the compat
    API's device_status keeps its fields as they were)."""
    now = clock.now_ms() if now is None else now
    since = _second(now) - settings.current().pace_window_seconds
    return {"window_parts": window_of(device) or None,
            "window_minutes": math.ceil(settings.current().pace_window_seconds / 60),
            "window_used": sum(e.parts for e in entries_of(device)
                               if since <= e.at <= _second(now))}


def open_sims(devices: list[Device], now: int, sim_slot: int | None = None):
    """(device, SIM) pairs that may take a message: every SIM of these devices (or only
    `sim_slot`, where the device has it) that is not paused."""
    for device in devices:
        for sim in SIMS[:device.sim_count or 1] if sim_slot is None else (sim_slot,):
            if sim <= (device.sim_count or 2) and not is_paused(device, sim, now):
                yield device, sim


def ranked(devices: list[Device], segments: int, now: int, sim_slot: int | None = None,
           urgent: bool = False, logs: dict | None = None, dice=None) -> list[tuple]:
    """The pool's ranking, in one place: (at, fullness, device, sim) for every open SIM that can
    take `segments` parts, soonest first, then least loaded (plus `dice()`, which breaks ties
    at random for a real choice). `logs`: pace logs by device uid, as a forecast books them."""
    options = []
    for device, sim in open_sims(devices, now, sim_slot):
        entries = logs[device.device_uid] if logs is not None else None
        at = earliest(device, sim, segments, now, urgent, entries=entries)
        if at is not None:  # None: longer than this phone's limits allow at all
            options.append((at, fullness(device, sim, now, entries) + (dice() if dice else 0),
                            device, sim))
    return sorted(options, key=lambda o: o[:2])


def estimate(devices: list[Device], parts: list[int], now: int) -> int:
    """For the dashboard's CSV preview: the epoch-ms time at which the last of these messages
    (in order, each with its number of parts) would be handed out if sent now with automatic
    choice over `devices` (running ones, SIMs not paused), under their windows and rates as
    read. Read-only: no AWS call, no write. Raises Unavailable (no running device) or
    BadRequest (a message too long for every limit). Automatic sends refuse a message that
    could not go within SMSGW_POOL_BACKLOG_SECONDS: `handouts` with that horizon says which."""
    return max([now, *(at for at in handouts(devices, parts, now) if at is not None)])


def handouts(devices: list[Device], parts: list[int], now: int,
             horizon_ms: int | None = None) -> list[int | None]:
    """`estimate`'s reckoning message by message: when each would be handed out, or None for
    one automatic choice would refuse because it could not go within `horizon_ms` from now (a
    refused message books nothing, so a later one may still fit)."""
    from chalicelib.domain import devices as device_rules
    logs = {d.device_uid: entries_of(d) for d in devices}
    running = [d for d in devices if device_rules.is_running(d, now)]
    if not any(open_sims(running, now)):
        raise Unavailable("No device running: none of these phones can take messages now.",
                          "device_id", retry_after=60, code="no_device_running")
    found = []
    for count in parts:
        options = ranked(running, count, now, logs=logs)  # as choice ranks, less its dice
        if not options:  # longer than any limit allows: automatic choice refuses it too
            raise BadRequest(f"A message of {count} parts is more than these phones' limits "
                             "allow at once.", "message")
        at, _, device, sim = options[0]
        if horizon_ms is not None and at > now + horizon_ms:
            found.append(None)
            continue
        if is_paced(device):
            logs[device.device_uid] = pace_log.add(logs[device.device_uid], _second(at), sim,
                                                   False, max(1, count))
        found.append(at)
    return found
