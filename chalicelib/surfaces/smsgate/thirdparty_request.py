"""What the /3rdparty/v1 handlers share (thirdparty_messages.py, thirdparty_routes.py, and
thirdparty.py's dispatch): who is calling, the query's rules, times in SMSGate's form, and
errors and answers in SMSGate's shape. Below the handlers, so they import it one way."""
import base64
import binascii
import json
from datetime import UTC, datetime

from chalicelib.core.errors import BadRequest, GatewayError, Unauthorized
from chalicelib.domain import accounts

MAX_BODY_BYTES = 256 * 1024


class Refused(BadRequest):
    """Something SMSGate has that this gateway does not do: a clear 400, never a 5xx."""
    code = "not_supported"


# Our domain's parameter names, as this API calls them.
THEIR_NAMES = {"device_uid": "deviceId", "device_id": "deviceId", "message": "textMessage.text",
               "sim_slot": "simNumber", "message_id": "id", "webhook_id": "id"}


def error_answer(error: GatewayError, request=None) -> tuple[int, dict, str]:
    """SMSGate's error shape, `{"message", "code": status, "data"}`, our code in `data` (and in
    X-Error-Code, as our other APIs give it). SMSGate answers an unknown device 400 and a
    removed one 404."""
    status = {"no_device": 400, "device_removed": 404}.get(error.code, error.http_status)
    data = {"code": error.code}
    if error.parameter:
        data["parameter"] = THEIR_NAMES.get(error.parameter, error.parameter)
    if error.retry_after is not None:
        data["retryAfter"] = error.retry_after
    if error.code == "quota_exceeded":
        data.update({"quota": error.extra["quota"], "limit": error.extra["limit"]})
        if error.extra.get("resets_at") is not None:
            data["resetsAt"] = iso(error.extra["resets_at"])
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    headers["X-Error-Code"] = error.code
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="smsgw"'
    return answer(status, headers, {"message": error.message, "code": status, "data": data})


def iso(ms) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def parse_time(value, parameter: str) -> int:
    """An RFC 3339 time (as their clients send it) in epoch ms."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40 or not value.isascii():
        raise BadRequest(f"Invalid {parameter}: an RFC 3339 time, e.g. 2026-01-31T09:30:00Z.",
                         parameter)
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid {parameter}: an RFC 3339 time, e.g. 2026-01-31T09:30:00Z.",
                         parameter)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def caller_of(headers: dict, source_ip: str | None):
    """The account behind `Authorization` (Basic account:key, or Bearer key)."""
    auth = (headers.get("authorization") or "").strip()
    scheme, _, credentials = auth.partition(" ")
    scheme, credentials = scheme.lower(), credentials.strip()
    if scheme == "basic":
        try:
            login, sep, key = base64.b64decode(credentials, validate=True).decode().partition(
                ":")
        except (binascii.Error, ValueError):
            raise Unauthorized("Malformed Basic credentials.", "authorization")
        if not sep:
            raise Unauthorized("Basic credentials are <account id>:<api key>.", "authorization")
        caller = accounts.authenticate(key, source_ip)
        if login != caller.account_id:
            raise Unauthorized("Invalid credentials: the login is the account id of the API "
                               "key.", "authorization")
        return caller
    if scheme == "bearer":
        if credentials.count(".") == 2:
            raise Refused("JWT tokens are not supported: use an API key as the Bearer token "
                          "or as the Basic password.", "authorization")
        return accounts.authenticate(credentials, source_ip)
    raise Unauthorized("Authorization needed: Basic <account id>:<api key> or Bearer "
                       "<api key>.", "authorization")


def one_query(query: dict | None, allowed: set) -> dict:
    values = {}
    for name, raw in (query or {}).items():
        raw = [raw] if isinstance(raw, str) else list(raw)
        if name not in allowed:
            raise BadRequest(f"Unknown query parameter: {name[:40]} (allowed: "
                             f"{', '.join(sorted(allowed)) or 'none'}).", name[:64])
        if len(raw) != 1:
            raise BadRequest(f"Duplicate query parameter: {name}.", name)
        values[name] = raw[0]
    return values


def query_int(values: dict, name: str, default: int, low: int, high: int) -> int:
    raw = values.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"Invalid {name}: a whole number {low}-{high}.", name)
    return int(raw)


def query_bool(values: dict, name: str) -> bool:
    raw = values.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise BadRequest(f"Invalid {name}: true or false.", name)
    return raw in ("true", "1")


def answer(status: int, headers: dict, body) -> tuple[int, dict, str]:
    if status == 204:
        return 204, headers, ""
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body)
