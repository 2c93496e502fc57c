"""Request parameters of the compatibility API, read the way PHP's `$_REQUEST` clients send them:
the query string, a form body (urlencoded or multipart) or a JSON object body.

A parameter given twice (in one place or two) is an error rather than a silent pick, and so is
an unknown one: a typo in `phone_numbr` must not become a message to nobody.
"""
import re
from urllib.parse import parse_qsl

from chalicelib.core import settings
from chalicelib.core.errors import BadRequest
from chalicelib.surfaces import jsonbody

MAX_VALUE_CHARS = 4000
# Parameters that are numbers: a JSON body may give these as whole JSON numbers; every other
# parameter must be a JSON string (a number where text is expected is a client bug).
NUMERIC = {"sim_slot", "length", "expiry", "limit", "message_id", "device_id", "valid_for",
           "expires_at", "failover"}
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,15}")  # ASCII digits only: no '٢', '1_000', '+1'


def _add(params: dict, name: str, value, where: str) -> None:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise BadRequest("Malformed parameter name.", None)
    if not isinstance(value, str):
        raise BadRequest(f"Parameter {name} must be a single string.", name)
    if "\x00" in value:
        raise BadRequest(f"Parameter {name} contains a NUL character.", name)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(f"Parameter {name} is not valid Unicode text (a lone surrogate).",
                             name)
    if len(value) > MAX_VALUE_CHARS:
        raise BadRequest(f"Parameter {name} is too long (at most {MAX_VALUE_CHARS} characters).",
                         name)
    if name in params:
        raise BadRequest(f"Duplicate parameter: {name} (given more than once, {where}).", name)
    params[name] = value


def _form(body: bytes) -> list:
    try:
        text = body.decode("utf-8")
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text.strip()),
                         errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("Malformed form body: expected UTF-8 application/x-www-form-urlencoded.",
                         None)


def _multipart(content_type: str, body: bytes) -> list:
    from email.parser import BytesParser  # lazily: the email package costs every cold start
    from email.policy import HTTP
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadRequest("Malformed multipart/form-data body.", None)
    pairs = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name or part.get_filename():
            raise BadRequest("Malformed multipart/form-data body: only plain fields are accepted.",
                             None)
        try:
            pairs.append((name, part.get_payload(decode=True).decode("utf-8")))
        except UnicodeDecodeError:
            raise BadRequest(f"Parameter {name} is not valid UTF-8.", name)
    return pairs


def _json_value(name, value):
    """A JSON body's value as the string a query string would carry, or BadRequest."""
    if isinstance(value, str):
        return value
    if name in NUMERIC and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    expected = "a string or a whole number" if name in NUMERIC else "a string"
    raise BadRequest(f"Parameter {str(name)[:64]} must be {expected}.",
                     name if isinstance(name, str) and len(name) <= 64 else None)


def _json(body: bytes) -> list:
    document = jsonbody.parse(body, settings.current().max_body_bytes)
    if not isinstance(document, dict):
        raise BadRequest("The JSON body must be an object of parameters.", None)
    return [(name, _json_value(name, value)) for name, value in document.items()]


def collect(query: dict | None, headers: dict, body: bytes | None) -> dict:
    """All parameters as one flat dict of strings."""
    params = {}
    for name, values in (query or {}).items():
        if isinstance(values, str):
            values = [values]
        if len(values) > 1:
            raise BadRequest(f"Duplicate parameter: {name} (given {len(values)} times in the "
                             "query string).", name)
        _add(params, name, values[0], "in the query string")
    if body:
        jsonbody.check_size(body, settings.current().max_body_bytes)
        content_type = headers.get("content-type", "")
        kind = content_type.split(";")[0].strip().lower()
        if kind == "application/json" or (not kind and body.lstrip()[:1] == b"{"):
            pairs = _json(body)
        elif kind == "multipart/form-data":
            pairs = _multipart(content_type, body)
        elif kind in ("application/x-www-form-urlencoded", "", "text/plain"):
            pairs = _form(body)
        else:
            raise BadRequest(f"Unsupported body type {kind}: send a form, JSON or a query string.",
                             None)
        seen = set()
        for name, value in pairs:
            where = "in the body" if name in seen else "in the query string and the body"
            seen.add(name)
            _add(params, name, value, where)
    return params


def require(params: dict, name: str) -> str:
    value = params.get(name)
    if value is None or value.strip() == "":
        raise BadRequest(f"Missing required parameter: {name}.", name)
    return value


def whole_number(raw: str, name: str) -> int:
    """`raw` (surrounding spaces allowed) as an int, from ASCII digits with an optional '-'."""
    if not WHOLE_NUMBER.fullmatch(raw.strip()):
        raise BadRequest(f"Invalid {name}: '{raw[:40]}' is not a whole number (digits 0-9).",
                         name)
    return int(raw.strip())


def integer(params: dict, name: str, default: int, low: int, high: int | None = None,
            clamp_high: bool = False) -> int:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = whole_number(raw, name)
    if value < low:
        raise BadRequest(f"Invalid {name}: must be at least {low}.", name)
    if high is not None and value > high:
        if clamp_high:
            return high
        raise BadRequest(f"Invalid {name}: must be at most {high}.", name)
    return value


def single_values(query: dict | None) -> dict:
    """A query string's parameters, each given once (chalice's multi-value form: name -> list);
    a parameter given twice is an error, not a silent pick."""
    flat = {}
    for name, values in (query or {}).items():
        if isinstance(values, str):
            values = [values]
        if len(values) != 1:
            raise BadRequest(f"Duplicate parameter: {name}.", name)
        flat[name] = values[0]
    return flat
