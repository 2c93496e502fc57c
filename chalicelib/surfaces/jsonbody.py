"""Strict JSON request bodies, shared by /myAPI.php and /device/*.

Python's `json` module accepts what an attacker likes: duplicate keys (the last wins, so
`phone_number` or `api_key` given twice silently picks one), `NaN`/`Infinity`, lone surrogate
escapes (`"\\ud800"`, which later fail to encode), and nesting deep enough to exhaust the
recursion limit (a traceback before authentication). Here each is a clear `invalid_parameter`,
and size and depth are bounded before the parser runs.
"""
import json
import re

from chalicelib.core.errors import BadRequest

MAX_DEPTH = 8  # the deepest body we accept is {"reports": [{...}]}: depth 3
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def depth(body: bytes) -> int:
    """Nesting depth of a JSON text, counted without parsing it (strings skipped)."""
    deepest = level = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub(b'""', body)):
        level += 1 if bracket in (b"[", b"{") else -1
        deepest = max(deepest, level)
    return deepest


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
    """The document in `body`, or BadRequest. Size and depth are checked before parsing."""
    if len(body) > max_bytes:
        raise BadRequest(f"Request body too large: {len(body)} bytes, at most {max_bytes}.", None)
    if depth(body) > MAX_DEPTH:
        raise BadRequest(f"{what} is nested too deeply (at most {MAX_DEPTH} levels).", None)
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_pairs,
                              parse_constant=_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("Malformed JSON body.", None)
    _check_strings(document)
    return document
