"""A phone's pacing log: the SMS parts handed to it lately (and booked for later), and the
earliest time a new message fits its limits. Pure: no AWS call, so automatic choice, the CSV
preview's estimate and the reservation itself share one rule (pacing.py stores the log).

A limit is "at most `parts` parts in any closed window of `seconds`", the shape of Android's
SmsUsageMonitor (it counts a part while now - its time <= the interval). Bulk may use all but
`reserve` of it; OTPs may use all of it.

Times are whole epoch seconds: a part handed out at h ms is logged at ceil(h / 1000). Every
real window [a, a + W] then maps into the logged window [ceil(a), ceil(a) + W] (ceil is
monotone and W is whole seconds), so checking logged windows checks the real ones. Entries at
the same second, SIM and kind are merged: a burst is one entry, and the log stays small.
"""
import bisect
import struct
from dataclasses import dataclass

_ENTRY = struct.Struct(">IH")  # second; parts | otp << 14 | (sim - 1) << 15
_MAX_PARTS = 0x3FFF


@dataclass(frozen=True)
class Limit:
    parts: int  # at most this many in any closed window of `seconds` (0: no limit)
    seconds: int
    reserve: int = 0  # of those, bulk may not use this many (OTPs may)
    sim: int | None = None  # counts only this SIM's parts (None: the whole phone)


@dataclass(frozen=True)
class Entry:
    at: int  # epoch seconds
    sim: int
    otp: bool
    parts: int


def decode(raw: bytes | None) -> list[Entry]:
    entries = []
    for at, word in _ENTRY.iter_unpack(bytes(raw or b"")):
        entries.append(Entry(at, (word >> 15) + 1, bool(word >> 14 & 1), word & _MAX_PARTS))
    return entries


def encode(entries: list[Entry]) -> bytes:
    return b"".join(_ENTRY.pack(e.at, e.parts | e.otp << 14 | (e.sim - 1) << 15)
                    for e in sorted(entries, key=lambda e: (e.at, e.sim, e.otp)))


def prune(entries: list[Entry], now_s: int, limits: list[Limit]) -> list[Entry]:
    """Without entries no window containing a time >= now can hold any more."""
    longest = max((lim.seconds for lim in limits if lim.parts), default=0)
    return [e for e in entries if e.at >= now_s - longest]


def _counted(entries, limit):
    mine = sorted((e for e in entries if limit.sim is None or e.sim == limit.sim),
                  key=lambda e: e.at)
    times = [e.at for e in mine]
    total, bulk = [0], [0]
    for e in mine:
        total.append(total[-1] + e.parts)
        bulk.append(bulk[-1] + (0 if e.otp else e.parts))
    return times, total, bulk


def fits(entries: list[Entry], limit: Limit, at: int, parts: int, otp: bool) -> bool:
    """Would `parts` more at `at` keep every closed window of the limit within it? The fullest
    window containing `at` starts at `at` or at a logged time in [at - seconds, at] (slide any
    other window right to its first entry: it loses nothing), so only those are checked."""
    if not limit.parts:
        return True
    times, total, bulk = _counted(entries, limit)
    cap_bulk = limit.parts - limit.reserve
    starts = {at} | {t for t in times[bisect.bisect_left(times, at - limit.seconds):
                                       bisect.bisect_right(times, at)]}
    for start in starts:
        lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, start + limit.seconds)
        if total[hi] - total[lo] + parts > limit.parts:
            return False
        if not otp and bulk[hi] - bulk[lo] + parts > cap_bulk:
            return False
    return True


def earliest(entries: list[Entry], limits: list[Limit], parts: int, otp: bool,
             start_s: int) -> int | None:
    """The first second >= start_s at which `parts` fit every limit, or None if they never can
    (more parts than a limit allows at all). A time stops fitting only when a logged time comes
    within reach, and starts fitting only when one leaves it (its time + seconds + 1), so those
    and start_s are the only candidates."""
    for limit in limits:
        if limit.parts and parts > limit.parts - (0 if otp else limit.reserve):
            return None
    candidates = {start_s}
    for limit in limits:
        if limit.parts:
            candidates |= {e.at + limit.seconds + 1 for e in entries
                           if limit.sim is None or e.sim == limit.sim}
    for at in sorted(c for c in candidates if c >= start_s):
        if all(fits(entries, limit, at, parts, otp) for limit in limits):
            return at
    return None  # unreachable: past every entry's reach the log is empty


def add(entries: list[Entry], at: int, sim: int, otp: bool, parts: int) -> list[Entry]:
    """The log with `parts` more at `at` (merged into an entry of the same second and kind)."""
    out, left = [], parts
    for e in entries:
        if left and (e.at, e.sim, e.otp) == (at, sim, otp) and e.parts < _MAX_PARTS:
            took = min(left, _MAX_PARTS - e.parts)
            e, left = Entry(at, sim, otp, e.parts + took), left - took
        out.append(e)
    while left:
        took = min(left, _MAX_PARTS)
        out.append(Entry(at, sim, otp, took))
        left -= took
    return out


SETTLED = 2  # seconds before now an entry must be to be compacted (Lambdas' clocks differ)


def compact(entries: list[Entry], now_s: int, room: int) -> list[Entry]:
    """At most `room` entries, by merging settled entries into a later settled one of the same
    SIM and kind (the closest pair first). Safe: every window that reaches a time >= now and
    contains a past entry contains everything after it up to now, so counting a past part
    later only counts it in more of those windows, never fewer."""
    entries = list(entries)
    while len(entries) >= room:
        old = sorted((e for e in entries if e.at < now_s - SETTLED), key=lambda e: e.at)
        pairs = [(b.at - a.at, a, b) for i, a in enumerate(old) for b in old[i + 1:]
                 if (a.sim, a.otp) == (b.sim, b.otp)]
        if not pairs:
            return entries
        _, a, b = min(pairs, key=lambda p: p[0])
        entries.remove(a)
        entries = add([e for e in entries if e != b], b.at, b.sim, b.otp, a.parts + b.parts)
    return entries


def place(entries: list[Entry], limits: list[Limit], sim: int, parts: int, otp: bool,
          start_s: int, room: int) -> int | None:
    """Where a new message goes: its earliest second, or, when that would need a new entry and
    the log already has `room` entries, the first later logged second of its SIM and kind where
    it fits (it joins that batch). None: nowhere until the log shrinks."""
    at = earliest(entries, limits, parts, otp, start_s)
    if at is None or len(entries) < room or any(
            (e.at, e.sim, e.otp) == (at, sim, otp) for e in entries):
        return at
    for later in sorted({e.at for e in entries if e.sim == sim and e.otp == otp and e.at > at}):
        if all(fits(entries, limit, later, parts, otp) for limit in limits):
            return later
    return None
