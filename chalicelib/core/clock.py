"""The gateway's single source of time, so tests can freeze or move it without sleeping."""
import time
from datetime import UTC, datetime

_offset_ms = 0
_frozen_ms = None


def now_ms() -> int:
    if _frozen_ms is not None:
        return _frozen_ms
    return int(time.time() * 1000) + _offset_ms


def now() -> float:
    return now_ms() / 1000


def freeze(at_ms=None) -> None:
    """Stop the clock (at `at_ms`, or now). Tests only."""
    global _frozen_ms
    _frozen_ms = now_ms() if at_ms is None else at_ms


def advance(seconds: float) -> None:
    """Move the clock forward, frozen or not. Tests only."""
    global _offset_ms, _frozen_ms
    if _frozen_ms is not None:
        _frozen_ms += int(seconds * 1000)
    else:
        _offset_ms += int(seconds * 1000)


def reset() -> None:
    global _offset_ms, _frozen_ms
    _offset_ms, _frozen_ms = 0, None


def fmt(ms) -> str | None:
    """The reference's timestamp format, `YYYY-MM-DD HH:MM:SS`, always in UTC."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def at(ms: int) -> datetime:
    """An epoch-milliseconds time as an aware datetime (what PynamoDB's TTLAttribute takes)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
