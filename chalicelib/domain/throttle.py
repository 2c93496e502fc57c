"""Attempt limits (dashboard sign-in, phone pairing) that hold under any concurrency.

Each attempt first takes a slot: one conditional UpdateItem `ADD attempts 1 IF attempts < cap`
on the subject's counter for the current fixed window. DynamoDB applies conditional writes to
one item one at a time, so however requests interleave, at most `cap` attempts per window get a
slot; the rest are refused before any password is checked. A successful attempt may hand its
slot back (`release`). Windows are fixed, so a burst at a window's edge can reach twice the cap
in a short time; the cap per window always holds.
"""
import ipaddress
import math

from chalicelib.core import clock
from chalicelib.core.errors import RateLimited
from chalicelib.storage.dashboard_tables import Throttle
from chalicelib.storage.model_base import update_if


def address(source_ip: str | None) -> str:
    """The client address a per-address limit counts: an IPv6 address's /64 (one subscriber's
    network: a host picks any of its 2^64 addresses at will), an IPv4 address as it is."""
    try:
        parsed = ipaddress.ip_address((source_ip or "").strip())
    except ValueError:
        return "unknown"
    if parsed.version == 6 and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _window(subject: str, window_seconds: int) -> tuple[Throttle, int]:
    now = clock.now_ms()
    start = now - now % (window_seconds * 1000)
    item = Throttle(key=f"{subject}#{start}")
    return item, start + window_seconds * 1000


def take(subject: str, cap: int, window_seconds: int, what: str) -> None:
    """Take one attempt for `subject`, or raise RateLimited (with the seconds to wait)."""
    item, window_end = _window(subject, window_seconds)
    if update_if(item, [Throttle.attempts.add(1), Throttle.expires.set(clock.at(window_end))],
                 Throttle.attempts.does_not_exist() | (Throttle.attempts < cap)):
        return
    wait = max(1, math.ceil((window_end - clock.now_ms()) / 1000))
    raise RateLimited(f"Too many {what}; try again in {math.ceil(wait / 60)} minute(s).",
                      retry_after=wait)


def release(subject: str, window_seconds: int) -> None:
    """Hand back an attempt that succeeded (never below zero)."""
    item, _ = _window(subject, window_seconds)
    update_if(item, [Throttle.attempts.add(-1)], Throttle.attempts > 0)


def clear(subject: str, window_seconds: int) -> None:
    item, _ = _window(subject, window_seconds)
    item.delete()
