"""Strict JSON request bodies, shared by every surface that reads JSON.

Python's `json` module accepts what an attacker likes: duplicate keys (the last wins, so
`phone_number` or `api_key` given twice silently picks one), `NaN`/`Infinity`, lone surrogate
escapes (`"\\ud800"`, which later fail to encode), and nesting deep enough to exhaust the
recursion limit (a traceback before authentication). Here each is a clear `invalid_parameter`.

Several routes parse before they know who is asking (registration, pairing, /myAPI.php), so
every step is linear in the body's size and runs in C: no regular expression that can
backtrack, no Python call per value. Size is checked first, nesting before the parser runs, and
duplicate keys and surrogates are found by counting, with the slow Python walk that names the
culprit run only on a body already refused.
"""
import json
import re

from chalicelib.core.errors import BadRequest
from chalicelib.core.text import size_text

MAX_DEPTH = 8  # the deepest body we accept is {"reports": [{...}]}: depth 3
# Values in one body: the largest a client sends is 1,000 recipients, or 100 message states of a
# dozen members each. A body of 100,000 tiny values would cost the parser a Python object each.
MAX_VALUES = 20_000
_ONLY_SYNTAX = bytes(b for b in range(256) if b not in b'"[]{}:,')  # deleted by translate
_ONE_BRACKET = bytes.maketrans(b"{}", b"[]")
_TOO_DEEP = b"[" * (MAX_DEPTH + 1)
_MEMBER = "\x01"  # a key separator no serialised string can hold (json escapes control chars)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _outside_strings(body: bytes) -> bytes:
    """The brackets, colons and commas of `body` that are not inside a string.

    Escapes go first (an escaped backslash, then an escaped quote), so every quote left opens
    or closes a string: the even pieces between quotes are outside. Two quotes side by side can
    go (the quotes before any other byte keep their parity). An unclosed string runs to the
    end, as the parser would read it."""
    syntax = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _ONLY_SYNTAX)
    syntax = syntax.replace(b'""', b"")
    if syntax.count(b'"') > 2 * MAX_VALUES:  # strings holding syntax, each a piece to split
        raise BadRequest(f"The JSON body has too many values (at most {MAX_VALUES:,}).", None)
    if b'"' in syntax:
        syntax = b"".join(syntax.split(b'"')[::2])
    return syntax


def nesting_ok(brackets: bytes) -> bool:
    """True when `brackets` (only [ and ]) is balanced and at most MAX_DEPTH deep: each pass
    removes the innermost pairs, one level, so MAX_DEPTH passes empty a body that fits."""
    if brackets.count(b"[") * 2 != len(brackets) or _TOO_DEEP in brackets:
        return False
    for _ in range(MAX_DEPTH):
        if not brackets:
            break
        brackets = brackets.replace(b"[]", b"")
    return not brackets


def _pairs(pairs):
    document = {}
    for name, value in pairs:
        if name in document:
            raise BadRequest(f"Duplicate key in the JSON body: {_shown(name)}.", _param(name))
        document[name] = value
    return document


def _constant(name):
    raise BadRequest(f"Invalid number in the JSON body: {name} is not allowed.", None)


def _shown(name: str) -> str:
    return _SURROGATE.sub("\ufffd", name[:40])


def _param(name: str) -> str | None:
    return name if name.isascii() and name.isprintable() and len(name) <= 64 else None


def _check_strings(value, where=None) -> None:
    """Refuse strings (keys included) that are not Unicode text: lone surrogates."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise BadRequest(f"Invalid text in {where or 'the JSON body'}: a lone surrogate "
                             "escape (\\ud800-\\udfff) is not a character.", where)
    elif isinstance(value, dict):
        for name, item in value.items():
            if _SURROGATE.search(name):
                raise BadRequest("Invalid key in the JSON body: a lone surrogate escape.", None)
            _check_strings(item, _param(name) or where)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, where)


def parse(body: bytes, max_bytes: int, what: str = "The JSON body"):
    """The document in `body`, or BadRequest. Size, nesting and the number of values are
    checked before parsing."""
    check_size(body, max_bytes)
    syntax = _outside_strings(body)
    brackets = syntax.translate(_ONE_BRACKET, b":,")
    if not nesting_ok(brackets):
        raise BadRequest(_nesting_error(brackets, what), None)
    if syntax.count(b",") + len(brackets) // 2 >= MAX_VALUES:  # values after the first
        raise BadRequest(f"{what} has too many values (at most {MAX_VALUES:,}).", None)
    try:
        text = body.decode("utf-8")
        document = json.loads(text, parse_constant=_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("Malformed JSON body.", None)
    serialised = json.dumps(document, ensure_ascii=False, separators=(",", _MEMBER))
    if serialised.count(_MEMBER) != syntax.count(b":"):  # a key given twice kept one member
        json.loads(text, object_pairs_hook=_pairs)  # raises, naming the key
    try:
        serialised.encode("utf-8")
    except UnicodeEncodeError:
        _check_strings(document)  # raises, naming where
    return document


def _nesting_error(brackets: bytes, what: str) -> str:
    if brackets.count(b"[") * 2 != len(brackets):
        return "Malformed JSON body: its brackets do not match."
    return f"{what} is nested too deeply (at most {MAX_DEPTH} levels)."


def check_size(body: bytes | None, max_bytes: int) -> None:
    """BadRequest for a body over `max_bytes`, in the unit a reader thinks in."""
    if body and len(body) > max_bytes:
        raise BadRequest(f"Request body too large: {size_text(len(body), max_bytes)}.", None)
