"""How many SMS segments a text costs, counted the way phones split it (3GPP TS 23.038), and
the gateway's limit on them (`check`: the one count of a send's text).

GSM-7 texts take 160 septets in one SMS or 153 per part of a concatenated SMS; extension
characters (`^{}\\[~]|€` and form feed) cost two septets and never straddle parts. Anything
else goes UCS-2: 70 UTF-16 units alone or 67 per part, surrogate pairs kept whole.
"""
from dataclasses import dataclass

from chalicelib.core import settings
from chalicelib.core.errors import BadRequest

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("\f^{}\\[~]|€")


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2


def _pack(costs, single, multi):
    total = sum(costs)
    if total <= single:
        return 1 if total else 0, total
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments, total


def count(text: str) -> SegmentCount:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        segments, units = _pack(costs, 160, 153)
        return SegmentCount("GSM-7", segments, units)
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    segments, units = _pack(costs, 70, 67)
    return SegmentCount("UCS-2", segments, units)


def check(text: str, parameter: str = "message", *, encrypted: bool = False) -> SegmentCount:
    """A send's text, checked: not empty, at most MAX_SEGMENTS segments; its count. For an
    end-to-end encrypted one (its form checked), a safe bound from the ciphertext's length."""
    if encrypted:  # imported on use: `import app` does not load it
        from chalicelib.domain import encryption
        return SegmentCount("encrypted", encryption.check_text(text, parameter), 0)
    if text is None or not text.strip():
        raise BadRequest(f"Missing required parameter: {parameter} (the SMS text must not be "
                         "empty).", parameter)
    counted = count(text)
    if counted.segments > settings.current().max_segments:
        raise BadRequest(
            f"Message too long: {counted.segments} SMS segments ({counted.encoding}); at most "
            f"{settings.current().max_segments} are allowed.", parameter)
    return counted
