"""SMSGate's client API (`/3rdparty/v1`): what its client libraries (android-sms-gateway on PyPI
and npm, client-go) and integrations call, on our domain. Derived from their source; see
docs/smsgate.md for what was read and what differs.

Auth is HTTP Basic (login: the account id, password: one of its API keys) or `Bearer <api
key>`, through `accounts.authenticate`: the same key hashing, revocation and IP whitelist as
every other surface. Errors are SMSGate's `{"message", "code", "data"}` with our error code in
`data`. An SMSGate message with several recipients is a group (domain/messages/groups.py);
states come from surfaces/smsgate/states.py, the one translation both SMSGate faces share.
"""
import base64
import binascii
import json
import logging
from datetime import UTC, datetime

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, GatewayError, NotFound, Unauthorized, from_unexpected
from chalicelib.domain import accounts, encryption, messages, phone
from chalicelib.domain.messages import groups
from chalicelib.surfaces import jsonbody
from chalicelib.surfaces.smsgate import states

log = logging.getLogger("smsgw")
MAX_BODY_BYTES = 256 * 1024
MAX_RECIPIENTS = 100  # SMSGate's limit per message
SEND_FIELDS = {"id", "deviceId", "message", "textMessage", "dataMessage", "mmsMessage",
               "hashedMessage", "phoneNumbers", "isEncrypted", "simNumber",
               "withDeliveryReport", "priority", "ttl", "validUntil", "scheduleAt"}
BYPASS_PRIORITY = 100  # SMSGate: priority >= 100 bypasses limits and delays (our `urgent`)


class Refused(BadRequest):
    """Something SMSGate has that this gateway does not do: a clear 400, never a 5xx."""
    code = "not_supported"


# Our domain's parameter names, as this API calls them.
THEIR_NAMES = {"device_uid": "deviceId", "device_id": "deviceId", "message": "textMessage.text",
               "sim_slot": "simNumber", "message_id": "id", "webhook_id": "id"}


def error_answer(error: GatewayError) -> tuple[int, dict]:
    status = error.http_status
    if error.code in ("no_device", "device_removed"):
        status = 400 if error.code == "no_device" else 404
    data = {"code": error.code}
    if error.parameter:
        data["parameter"] = THEIR_NAMES.get(error.parameter, error.parameter)
    if error.retry_after is not None:
        data["retryAfter"] = error.retry_after
    return status, {"message": error.message, "code": status, "data": data}


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


# --- messages ----------------------------------------------------------------------------

def render(group_id: str, found: list, content: bool = False) -> dict:
    """A group as SMSGate's MessageState."""
    first = found[0]
    history = {}
    for state, name in (("Pending", "created_at"), ("Processed", "leased_at"),
                        ("Sent", "processed_at"), ("Delivered", "delivered_at"),
                        ("Failed", "failed_at")):
        stamps = [getattr(m, name) for m in found if getattr(m, name)]
        if stamps:
            history[state] = iso(min(stamps))
    recipients = []
    for m in found:
        entry = {"phoneNumber": m.phone_number, "state": states.to_smsgate(m.status)}
        if m.status in ("failed", "expired", "cancelled"):
            entry["error"] = m.reason or m.status
        recipients.append(entry)
    shown = {"id": group_id, "deviceId": first.device_uid,
             "state": states.group_state(m.status for m in found), "isHashed": False,
             "isEncrypted": bool(first.encrypted), "recipients": recipients, "states": history,
             "createdAt": iso(first.created_at)}
    if content:
        shown["textMessage"] = {"text": first.body}
    return shown


def _field(body: dict, name: str, kind: type, what: str):
    value = body.get(name)
    if value is not None and type(value) is not kind:  # not isinstance: True is no int
        raise BadRequest(f"Invalid {name}: {what}.", name)
    return value


def _text(body: dict) -> str:
    for name in ("mmsMessage", "dataMessage", "hashedMessage"):
        if body.get(name) is not None:
            kind = {"mmsMessage": "MMS", "dataMessage": "data SMS (binary to a port)",
                    "hashedMessage": "hashed messages"}[name]
            raise Refused(f"{kind} not supported: this gateway's phones send text SMS; use "
                          "textMessage.", name)
    text_message = _field(body, "textMessage", dict, "an object {\"text\": ...}")
    legacy = _field(body, "message", str, "a string")
    if (text_message is not None) + (legacy is not None) != 1:
        raise BadRequest("Give exactly one of textMessage or message.", "textMessage")
    if text_message is not None:
        if set(text_message) != {"text"} or not isinstance(text_message["text"], str):
            raise BadRequest("Invalid textMessage: {\"text\": \"...\"} and nothing else.",
                             "textMessage")
        return text_message["text"]
    return legacy


def _numbers(raw, encrypted: bool) -> tuple:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_RECIPIENTS:
        raise BadRequest(f"Invalid phoneNumbers: a list of 1-{MAX_RECIPIENTS} numbers.",
                         "phoneNumbers")
    numbers, seen = [], {}
    for index, given in enumerate(raw):
        where = f"phoneNumbers[{index}]"
        if not isinstance(given, str):
            raise BadRequest(f"Invalid {where}: a string.", where)
        if encrypted:
            encryption.check(given, where)
            numbers.append(given)
            continue
        number = phone.normalise(given, where)
        if number in seen:
            raise BadRequest(f"{where}: {number} is already phoneNumbers[{seen[number]}].", where)
        seen[number] = index
        numbers.append(number)
    return tuple(numbers)


def send_request(body) -> tuple[str | None, groups.Request]:
    """A POST /messages body, checked: (client id or None, the request)."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object (a Message).", None)
    unknown = sorted(set(body) - SEND_FIELDS)
    if unknown:
        raise BadRequest(f"Unknown field: {unknown[0][:40]}.", unknown[0][:64])
    encrypted = bool(_field(body, "isEncrypted", bool, "true or false"))
    text = _text(body)
    if encrypted:
        encryption.check_text(text, "textMessage.text")
    else:
        messages.check_text(text, "textMessage.text")
    numbers = _numbers(body.get("phoneNumbers"), encrypted)
    sim = _field(body, "simNumber", int, "a SIM number, 1-3")
    if sim is not None and not 1 <= sim <= 2:
        raise BadRequest("Invalid simNumber: this gateway's phones have SIM 1 or 2.",
                         "simNumber")
    _field(body, "withDeliveryReport", bool, "true or false")
    priority = _field(body, "priority", int, "a whole number -128..127") or 0
    if not -128 <= priority <= 127:
        raise BadRequest("Invalid priority: -128..127.", "priority")
    ttl = _field(body, "ttl", int, "seconds, a whole number")
    valid_until = body.get("validUntil")
    if ttl is not None and valid_until is not None:
        raise BadRequest("Give ttl or validUntil, not both.", "validUntil")
    until = str(parse_time(valid_until, "validUntil") // 1000) if valid_until is not None \
        else None
    try:
        valid_for, asked = messages.parse_validity_request(
            str(ttl) if ttl is not None else None, until)
    except BadRequest as error:
        name = "ttl" if ttl is not None else "validUntil"
        raise BadRequest(error.message.replace("valid_for", name).replace("expires_at", name),
                         name)
    send_at = None
    if body.get("scheduleAt") is not None:
        send_at = parse_time(body["scheduleAt"], "scheduleAt")
        if send_at <= clock.now_ms():
            raise BadRequest("Invalid scheduleAt: must be in the future.", "scheduleAt")
        if send_at - clock.now_ms() > settings.MAX_SCHEDULE_SECONDS * 1000:
            raise BadRequest(f"Invalid scheduleAt: at most "
                             f"{settings.MAX_SCHEDULE_SECONDS // 86400} days ahead.",
                             "scheduleAt")
        asked = f"{asked or ''} at:{send_at}".strip()
    device = _field(body, "deviceId", str, "a device id (GET /devices)")
    client_id = _field(body, "id", str, "a string")
    if client_id is not None:
        groups.check_id(client_id)
    return client_id, groups.Request(
        numbers=numbers, text=text, encrypted=encrypted, sim_slot=sim,
        device_uid=device or None, valid_for=valid_for, requested_validity=asked,
        send_at=send_at, urgent=priority >= BYPASS_PRIORITY)


def post_message(caller, query, body):
    one_query(query, {"skipPhoneValidation", "deviceActiveWithin"})
    client_id, request = send_request(jsonbody.parse(body or b"", MAX_BODY_BYTES))
    try:
        group_id, found, _ = groups.send(caller, client_id, request)
    except NotFound as error:  # SMSGate answers an unknown deviceId in a send with 400
        if error.code != "not_found" or error.parameter not in ("device_uid", "device_id"):
            raise
        raise BadRequest(error.message, "deviceId")
    return 202, {"Location": f"/3rdparty/v1/messages/{group_id}"}, render(group_id, found)


def get_message(caller, query, body, group_id):
    content = query_bool(one_query(query, {"includeContent"}), "includeContent")
    return 200, {}, render(group_id, groups.get(caller.account_id, group_id), content)


def cancel_message(caller, query, body, group_id):
    one_query(query, set())
    return 200, {}, render(group_id, groups.cancel(caller.account_id, group_id))


LIST_QUERY = {"from", "to", "state", "deviceId", "limit", "offset", "includeContent", "sort"}
MAX_OFFSET = 1000


def list_messages(caller, query, body):
    values = one_query(query, LIST_QUERY)
    limit = query_int(values, "limit", 50, 1, 100)
    offset = query_int(values, "offset", 0, 0, MAX_OFFSET)
    state = values.get("state")
    if state is not None and state not in states.ORDER + ("Failed",):
        raise BadRequest(f"Invalid state: one of {', '.join(states.ORDER + ('Failed',))}.",
                         "state")
    sort = values.get("sort", "-created_at")
    if sort not in ("created_at", "-created_at"):
        raise BadRequest("Invalid sort: created_at or -created_at.", "sort")
    keep = None if state is None else (
        lambda found: states.group_state(m.status for m in found) == state)
    found, complete = groups.page(
        caller.account_id,
        parse_time(values["from"], "from") if "from" in values else None,
        parse_time(values["to"], "to") if "to" in values else None,
        values.get("deviceId"), ascending=sort == "created_at", wanted=offset + limit,
        keep=keep)
    content = query_bool(values, "includeContent")
    shown = [render(g[0].group_id or str(g[0].message_id), g, content)
             for g in found[offset:offset + limit]]
    headers = {"X-Total-Count": str(len(found))} if complete else {}
    return 200, headers, shown


def answer(status: int, headers: dict, body) -> tuple[int, dict, str]:
    if status == 204:
        return 204, headers, ""
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body)


def handle(method: str, parts: tuple, query: dict | None, headers: dict, body: bytes | None,
           source_ip: str | None) -> tuple[int, dict, str]:
    """Answer one /3rdparty/v1 request: (http status, headers, body text)."""
    from chalicelib.surfaces.smsgate import thirdparty_routes
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        try:
            action, args, public = thirdparty_routes.find(method, parts)
            caller = None if public else caller_of(headers, source_ip)
            return answer(*action(caller, query, body, *args))
        except GatewayError:
            raise
        except Exception as exc:  # storage trouble: retryable, without internals
            error = from_unexpected(exc)
            if error.code == "internal_error":
                log.exception("unexpected error in %s /3rdparty/v1/%s", method, "/".join(parts))
            raise error
    except GatewayError as error:
        status, shown = error_answer(error)
        extra = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
        if status == 401:
            extra["WWW-Authenticate"] = 'Basic realm="smsgw"'
        return answer(status, extra, shown)
