"""Pacing: each SIM of a device sends at most its rate, counted in SMS segments, enforced by the
gateway rather than hoped for from the phone.

Each SIM keeps a "next free slot" time on the device item (`pace_next_<sim>`). Reserving k
segments takes [max(now, next), that + k * interval) with ONE conditional UpdateItem, whichever
of two branches holds:
  idle: next is absent or in the past  -> SET next = now + cost   (the message may go now)
  busy: now <= next (<= now + horizon) -> ADD cost to next        (its slot is new - cost)
`next` only ever grows and ADD is atomic, so concurrent reservations (any number of Lambdas)
get disjoint slots under every interleaving: no SIM is ever given more than its rate. OTPs
(`urgent`) go at once but still add their cost, so bulk traffic behind them moves back.
A pause ("limit exceeded", "no service") pushes `next` past the pause.
"""
import math
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.storage.tables import Device, update_if

SIMS = (1, 2)


@dataclass
class Slot:
    at: int  # when the message may be sent (epoch ms)
    free_at: int  # when its SIM is free again after it


class AtCapacity(Exception):
    def __init__(self, free_at: int):
        super().__init__(free_at)
        self.free_at = free_at


def pace_of(device: Device) -> int:
    """Segments per hour this device's SIMs may send (0: not paced)."""
    if device.pace_per_hour is not None:
        return int(device.pace_per_hour)
    return settings.DEFAULT_PACE_PER_HOUR


def interval_ms(device: Device) -> int:
    pace = pace_of(device)
    return math.ceil(3600 * 1000 / pace) if pace else 0


def next_free(device: Device, sim: int) -> int:
    return getattr(device, f"pace_next_{sim}") or 0


def paused_until(device: Device, sim: int) -> int:
    return getattr(device, f"paused_until_{sim}") or 0


def pause_reason(device: Device, sim: int) -> str | None:
    return getattr(device, f"pause_reason_{sim}")


def _field(name: str, sim: int):
    return getattr(Device, f"{name}_{sim}")


def reserve(device: Device, sim: int, segments: int, now: int | None = None,
            horizon_ms: int | None = None, urgent: bool = False) -> Slot:
    """Take a send slot of `segments` on the device's SIM. Raises AtCapacity if the SIM's next
    free time is beyond `horizon_ms` from now (never for horizon None), NotFound if the device
    is gone. Unpaced devices cost no AWS call."""
    now = clock.now_ms() if now is None else now
    interval = interval_ms(device)
    if not interval:
        return Slot(now, now)
    cost = max(1, segments) * interval
    nxt = _field("pace_next", sim)
    exists = Device.device_uid.exists()
    branches = ("busy", "idle") if next_free(device, sim) >= now else ("idle", "busy")
    for attempt in range(4):
        item = Device(device_uid=device.device_uid)
        if branches[attempt % 2] == "idle":
            if update_if(item, [nxt.set(now + cost)],
                         exists & (nxt.does_not_exist() | (nxt < now))):
                setattr(device, f"pace_next_{sim}", now + cost)
                return Slot(now, now + cost)
            continue
        condition = exists & (nxt >= now)
        if horizon_ms is not None:
            condition &= nxt <= now + horizon_ms
        if update_if(item, [nxt.add(cost)], condition):
            free_at = int(getattr(item, f"pace_next_{sim}"))
            setattr(device, f"pace_next_{sim}", free_at)
            return Slot(now if urgent else free_at - cost, free_at)
        if attempt >= 1:  # `next` only grows: after both branches failed it is past the horizon
            break
    try:
        current = Device.get(device.device_uid, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"Unknown device: device {device.device_id} was removed.", "device_id")
    setattr(device, f"pace_next_{sim}", next_free(current, sim))
    raise AtCapacity(next_free(current, sim) - (horizon_ms or 0))


def pause(device: Device, sim: int, seconds: int, reason: str, now: int | None = None) -> int:
    """Rest one SIM for `seconds`: later automatic choices avoid it and its pacing starts again
    after the pause. Returns the pause's end."""
    now = clock.now_ms() if now is None else now
    until = now + seconds * 1000
    exists = Device.device_uid.exists()
    item = Device(device_uid=device.device_uid)
    until_field = _field("paused_until", sim)
    if update_if(item, [until_field.set(until), _field("pause_reason", sim).set(reason[:200])],
                 exists & (until_field.does_not_exist() | (until_field < until))):
        nxt = _field("pace_next", sim)
        update_if(Device(device_uid=device.device_uid), [nxt.set(until)],
                  exists & (nxt.does_not_exist() | (nxt < until)))
    setattr(device, f"paused_until_{sim}", until)
    setattr(device, f"pause_reason_{sim}", reason[:200])
    return until


def is_paused(device: Device, sim: int, now: int) -> bool:
    return paused_until(device, sim) > now


def check_pace(raw) -> int:
    """A per-device pace as the owner gives it: whole segments per hour, 1..MAX."""
    text = str(raw if raw is not None else "").strip()
    try:
        pace = int(text)
    except ValueError:
        raise BadRequest(f"Invalid pace: '{text[:40]}' is not a whole number of SMS segments "
                         "per hour.", "pace")
    if not 1 <= pace <= settings.MAX_PACE_PER_HOUR:
        raise BadRequest(f"Invalid pace: must be 1-{settings.MAX_PACE_PER_HOUR} SMS segments "
                         "per hour (0 or less would never send).", "pace")
    return pace


def set_pace(device: Device, pace_per_hour: int | None) -> Device:
    """Set (or, with None, reset to the default) a device's pace; one conditional UpdateItem
    that fails if the device is gone or belongs to another account."""
    if pace_per_hour is not None:
        pace_per_hour = check_pace(pace_per_hour)
    action = (Device.pace_per_hour.set(pace_per_hour) if pace_per_hour is not None
              else Device.pace_per_hour.remove())
    if not update_if(device, [action], Device.account_id == device.account_id):
        raise NotFound(f"Unknown device: device {device.device_id} was removed.", "device_id")
    return device


def describe(device: Device, now: int | None = None) -> dict:
    """Pacing and pause state of a device, for device_status."""
    now = clock.now_ms() if now is None else now
    sims = []
    for sim in SIMS[:device.sim_count or 1]:
        paused = is_paused(device, sim, now)
        sims.append({"sim_slot": sim,
                     "next_free_at": clock.fmt(max(now, next_free(device, sim))),
                     "paused": paused,
                     "paused_until": clock.fmt(paused_until(device, sim)) if paused else None,
                     "pause_reason": pause_reason(device, sim) if paused else None})
    return {"pace_per_hour": pace_of(device) or None,
            "paced": bool(pace_of(device)),
            "paused": bool(sims) and all(s["paused"] for s in sims),
            "pause_reason": next((s["pause_reason"] for s in sims if s["paused"]), None),
            "sims": sims}


# --- TEMPORARY (issue 24): replaced by the pacing rewrite's own `estimate` at merge ----------
def estimate(devices: list[Device], parts: list[int], now: int) -> int:
    """TEMPORARY stand-in for the pacing rewrite's estimate: epoch ms when the last of messages
    of `parts` segments each would be handed out, each going to the SIM free soonest under
    today's per-SIM pace (pace_of, next_free, pauses). Read-only."""
    sims = [[max(now, next_free(d, s), paused_until(d, s)), interval_ms(d)]
            for d in devices for s in SIMS[:d.sim_count or 1]]
    if not sims:
        return now
    last = now
    for segments in parts:
        sim = min(sims, key=lambda x: x[0])
        last = max(last, sim[0])
        sim[0] += max(1, segments) * sim[1]
    return last
