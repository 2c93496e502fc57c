"""/3rdparty/v1/messages: SMSGate's send, read, cancel and list of messages, as groups of one id
and many recipients (domain/messages/groups.py), with states from states.py."""
from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.domain import encryption, messages, phone, segments
from chalicelib.domain.messages import groups
from chalicelib.surfaces import jsonbody
from chalicelib.surfaces.smsgate import states
from chalicelib.surfaces.smsgate.thirdparty_request import (
    MAX_BODY_BYTES,
    Refused,
    iso,
    one_query,
    parse_time,
    query_bool,
    query_int,
)

MAX_RECIPIENTS = 100  # SMSGate's limit per message
SEND_FIELDS = {"id", "deviceId", "message", "textMessage", "dataMessage", "mmsMessage",
               "hashedMessage", "phoneNumbers", "isEncrypted", "simNumber",
               "withDeliveryReport", "priority", "ttl", "validUntil", "scheduleAt"}
BYPASS_PRIORITY = 100  # SMSGate: priority >= 100 bypasses limits and delays (our `urgent`)


def render(group_id: str, found: list, content: bool = False) -> dict:
    """A group as SMSGate's MessageState."""
    first = found[0]
    history = {}
    for state, name in states.STAMPS:
        stamps = [getattr(m, name) for m in found if getattr(m, name)]
        if stamps:
            history[state] = iso(min(stamps))
    recipients = []
    for m in found:
        entry = {"phoneNumber": m.phone_number,
                 "state": states.to_smsgate(m.status, bool(m.cancel_asked_at))}
        if m.status in ("failed", "expired"):
            entry["error"] = m.reason or m.status
        recipients.append(entry)
    shown = {"id": group_id, "deviceId": first.device_uid,
             "state": states.message_state(r["state"] for r in recipients), "isHashed": False,
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


def send_request(body) -> tuple[str | None, groups.GroupSend]:
    """A POST /messages body, checked: (client id or None, the request)."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object (a Message).", None)
    unknown = sorted(set(body) - SEND_FIELDS)
    if unknown:
        raise BadRequest(f"Unknown field: {unknown[0][:40]}.", unknown[0][:64])
    encrypted = bool(_field(body, "isEncrypted", bool, "true or false"))
    text = _text(body)
    segments.check(text, "textMessage.text", encrypted=encrypted)
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
        if send_at - clock.now_ms() > settings.current().max_schedule_seconds * 1000:
            raise BadRequest(f"Invalid scheduleAt: at most "
                             f"{settings.current().max_schedule_seconds // 86400} days ahead.",
                             "scheduleAt")
        asked = f"{asked or ''} at:{send_at}".strip()
    device = _field(body, "deviceId", str, "a device id (GET /devices)")
    client_id = _field(body, "id", str, "a string")
    if client_id is not None:
        groups.check_id(client_id)
    return client_id, groups.GroupSend(
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
    if state is not None and state not in states.STATES:
        raise BadRequest(f"Invalid state: one of {', '.join(states.STATES)}.", "state")
    sort = values.get("sort", "-created_at")
    if sort not in ("created_at", "-created_at"):
        raise BadRequest("Invalid sort: created_at or -created_at.", "sort")
    keep = None if state is None else (
        lambda found: render("", found)["state"] == state)
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
