"""Message ids: JSON-safe integers (below 2**53) that grow with time and need no shared counter.

Milliseconds since 2025-01-01 in the high bits and 10 random bits below leave room for 278
years; the rare same-millisecond clash is caught by the conditional write that stores the id.
"""
import secrets

from chalicelib.core import clock

EPOCH_MS = 1735689600000  # 2025-01-01T00:00:00Z
RANDOM_BITS = 10


def new_message_id() -> int:
    return ((clock.now_ms() - EPOCH_MS) << RANDOM_BITS) | secrets.randbits(RANDOM_BITS)


def message_id_floor(at_ms: int) -> int:
    """The smallest id a message created at `at_ms` can have (for time-bounded Queries)."""
    return max(0, at_ms - EPOCH_MS) << RANDOM_BITS
