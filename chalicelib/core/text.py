"""Text a person gave that the gateway stores or sends on: names and SMS cells.

A name (of a device, account, key, pairing code, private token, webhook) ends up in mail
subjects, CSV exports, terminal tables and log lines; a carriage return in one was a mail
header of its own. So control characters (Unicode's Cc: C0, DEL, C1) and the line and paragraph
separators are refused where a name comes in, with the parameter named, and replaced by a space
where older stored text goes out.
"""
import re
import unicodedata

from chalicelib.core.errors import BadRequest

_BAD_CATEGORIES = {"Cc", "Zl", "Zp"}
SMS_CONTROLS = "\n\r\t"  # what an SMS text may hold: line ends (GSM 03.38 has LF and CR), tab


def first_control(text: str, allowed: str = "") -> str | None:
    """The first control character in `text` that is not in `allowed`, or None."""
    for char in text:
        if char not in allowed and (char < " " or "\x7f" <= char <= "\x9f" or (
                char > "\x9f" and unicodedata.category(char) in _BAD_CATEGORIES)):
            return char
    return None


def name(raw, *, parameter: str, what: str, max_chars: int = 100, required: bool = True) -> str:
    """`raw` stripped, as a name of 1-`max_chars` characters without control characters."""
    if raw is not None and not isinstance(raw, str):
        raise BadRequest(f"Invalid {parameter}: {what} must be text.", parameter)
    value = (raw or "").strip()
    if not value and required:
        raise BadRequest(f"{what} must be 1-{max_chars} characters.", parameter)
    if len(value) > max_chars:
        raise BadRequest(f"{what} must be 1-{max_chars} characters.", parameter)
    refuse_controls(value, parameter=parameter, what=what)
    return value


def refuse_controls(value: str, *, parameter: str, what: str, allowed: str = "") -> None:
    bad = first_control(value, allowed)
    if bad is not None:
        raise BadRequest(f"Invalid {parameter}: {what} holds a control character "
                         f"(U+{ord(bad):04X}); use printable text.", parameter)


def one_line(text: str) -> str:
    """`text` with every control character a space: for a mail header or a log line."""
    if first_control(text) is None:
        return text
    return "".join(" " if first_control(c) else c for c in text)


def size_text(size: int, limit: int) -> str:
    """'250 KB; at most 200 KB' (rounded up, so never '200 KB; at most 200 KB'); in bytes when
    the limit is not a whole number of KB."""
    if limit >= 1024 and limit % 1024 == 0:
        return f"{-(-size // 1024):,} KB; at most {limit // 1024:,} KB"
    return f"{size:,} bytes; at most {limit:,} bytes"


_WHOLE = re.compile(r"-?[0-9]{1,18}")


def ascii_int(raw) -> int:
    """`raw` (spaces around allowed) as an int written in ASCII digits with an optional '-';
    ValueError otherwise. int() alone also takes '٣', '1_000' and '+1'; str.isdigit() passes
    '²', which int() then refuses."""
    value = str(raw if raw is not None else "").strip()
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"not a whole number in digits 0-9: {value[:20]!r}")
    return int(value)
