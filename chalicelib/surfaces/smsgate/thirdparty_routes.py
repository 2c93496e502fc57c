"""The `/3rdparty/v1` route table, and its resources besides messages (thirdparty_messages.py):
devices, webhooks, the inbox, health and settings; and what it refuses (MMS, JWT tokens, logs,
inbox export) with a clear 400 in SMSGate's error shape."""
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.domain import devices, webhooks
from chalicelib.domain.messages import history
from chalicelib.domain.webhooks import smsgate as smsgate_webhooks
from chalicelib.surfaces import jsonbody
from chalicelib.surfaces.smsgate import thirdparty_messages as messages_api
from chalicelib.surfaces.smsgate import webhook_events
from chalicelib.surfaces.smsgate.thirdparty_request import (
    Refused,
    iso,
    one_query,
    parse_time,
    query_int,
)

SMALL_BODY = 16 * 1024


# --- devices -------------------------------------------------------------------------------

def _device(d) -> dict:
    return {"id": d.device_uid, "name": d.name, "createdAt": iso(d.created_at),
            "updatedAt": iso(d.last_seen or d.created_at), "lastSeen": iso(d.last_seen)}


def list_devices(caller, query, body):
    one_query(query, set())
    return 200, {}, [_device(d) for d in devices.list_devices(caller.account_id)]


def remove_device(caller, query, body, device_id):
    one_query(query, set())
    found = devices.resolve(caller.account_id, device_uid=device_id)
    devices.remove(caller.account_id, str(found.device_id))
    return 204, {}, None


# --- webhooks ------------------------------------------------------------------------------

def list_webhooks(caller, query, body):
    one_query(query, set())
    found = sorted((w for w in webhooks.list_all(caller.account_id) if w.style == "smsgate"),
                   key=lambda w: w.created_at)
    return 200, {}, [webhook_events.describe(w) for w in found]


def post_webhook(caller, query, body):
    one_query(query, set())
    document = jsonbody.parse(body or b"", SMALL_BODY)
    if not isinstance(document, dict):
        raise BadRequest("The body must be a JSON object (a Webhook).", None)
    unknown = sorted(set(document) - {"id", "url", "event", "deviceId"})
    if unknown:
        raise BadRequest(f"Unknown field: {unknown[0][:40]}.", unknown[0][:64])
    url, event = document.get("url"), document.get("event")
    if not isinstance(url, str) or not url:
        raise BadRequest("Missing url: the address events are POSTed to.", "url")
    if not isinstance(event, str):
        raise BadRequest("Missing event: e.g. sms:received.", "event")
    ours = webhook_events.our_events(event)
    device = document.get("deviceId")
    if device is not None:
        if not isinstance(device, str):
            raise BadRequest("Invalid deviceId: a device id (GET /devices).", "deviceId")
        device = devices.resolve(caller.account_id, device_uid=device).device_uid
    given = document.get("id")
    if given not in (None, ""):  # replacing one: it must exist, and goes once the new is in
        if not isinstance(given, str):
            raise BadRequest("Invalid id: a string.", "id")
        if webhooks.get(caller.account_id, given).style != "smsgate":
            raise BadRequest(f"Webhook {given} was not registered through this API.", "id")
    made = webhooks.add(caller.account_id, url, ours, f"SMSGate {event}", style="smsgate",
                        smsgate_event=event, device_uid=device,
                        secret=smsgate_webhooks.signing_key(caller.account_id))
    if given not in (None, ""):
        webhooks.remove(caller.account_id, given)
    return 201, {}, webhook_events.describe(made)


def delete_webhook(caller, query, body, webhook_id):
    one_query(query, set())
    found = webhooks.get(caller.account_id, webhook_id)
    if found.style != "smsgate":
        raise NotFound(f"Webhook not found: {webhook_id} was not registered through this API.",
                       "id")
    webhooks.remove(caller.account_id, webhook_id)
    return 204, {}, None


# --- inbox ---------------------------------------------------------------------------------

def list_inbox(caller, query, body):
    values = one_query(query, {"type", "from", "to", "deviceId", "limit", "offset",
                               "includeAttachments"})
    if values.get("type", "SMS") != "SMS":
        raise Refused("Only SMS are received here (type=SMS).", "type")
    limit = query_int(values, "limit", 50, 1, 100)
    offset = query_int(values, "offset", 0, 0, messages_api.MAX_OFFSET)
    device_id = None
    if "deviceId" in values:
        device_id = devices.resolve(caller.account_id, device_uid=values["deviceId"]).device_id
    since = parse_time(values["from"], "from") if "from" in values else None
    until = parse_time(values["to"], "to") if "to" in values else None
    items, cursor, wanted = [], None, offset + limit
    while len(items) < wanted:
        page, cursor = history.search(caller.account_id, "incoming", min(100, wanted),
                                      cursor, device_id=device_id, since_ms=since,
                                      until_ms=until)
        items += page
        if cursor is None:
            break
    return 200, {}, [{"id": str(m.message_id), "type": "SMS", "sender": m.phone_number,
                      "simNumber": m.sim_slot, "contentPreview": m.body,
                      "createdAt": iso(m.received_at)} for m in items[offset:wanted]]


# --- health and settings -------------------------------------------------------------------

def health(caller, query, body):
    # releaseId: SMSGate's build number (version.AppReleaseID), 0 when none is set, as here
    return 200, {}, {"status": "pass", "version": "smsgw", "releaseId": 0, "checks": {}}


def get_settings(caller, query, body):
    one_query(query, set())
    return 200, {}, {"webhooks": {
        "signing_key": smsgate_webhooks.signing_key(caller.account_id)}}


def put_settings(caller, query, body):
    one_query(query, set())
    document = jsonbody.parse(body or b"", SMALL_BODY)
    if not isinstance(document, dict):
        raise BadRequest("The body must be a JSON object (settings).", None)
    for section, value in document.items():
        if section == "webhooks" and isinstance(value, dict) and set(value) <= {"signing_key"}:
            continue
        if section == "encryption":
            raise Refused("encryption.passphrase is never sent to this gateway: set it on the "
                          "phone (the agent's config, or the app).", "encryption")
        raise Refused(f"Setting {str(section)[:40]} is not supported here: only "
                      "webhooks.signing_key (phones are configured on the phone or the "
                      "dashboard).", str(section)[:64])
    key = (document.get("webhooks") or {}).get("signing_key")
    if key is not None:
        smsgate_webhooks.set_signing_key(caller.account_id, key)
    return 200, {}, {"webhooks": {"signing_key": smsgate_webhooks.signing_key(
        caller.account_id)}}


def refused(why: str):
    def action(caller, query, body, *args):
        raise Refused(why, None)
    return action


JWT = refused("JWT tokens are not supported: authenticate with an API key (Basic "
              "<account id>:<api key>, or Bearer <api key>).")
EXPORT = refused("Inbox export/refresh is not needed here: phones push every SMS they receive "
                 "as it arrives (GET /inbox, sms:received webhooks).")

# (method, path with {} for a parameter) -> (action, public: no credentials needed)
ROUTES = {
    ("POST", "messages"): (messages_api.post_message, False),
    ("GET", "messages"): (messages_api.list_messages, False),
    ("GET", "messages/{}"): (messages_api.get_message, False),
    ("DELETE", "messages/{}"): (messages_api.cancel_message, False),
    ("POST", "messages/inbox/export"): (EXPORT, False),
    ("GET", "devices"): (list_devices, False),
    ("DELETE", "devices/{}"): (remove_device, False),
    ("GET", "webhooks"): (list_webhooks, False),
    ("POST", "webhooks"): (post_webhook, False),
    ("DELETE", "webhooks/{}"): (delete_webhook, False),
    ("GET", "inbox"): (list_inbox, False),
    ("POST", "inbox/refresh"): (EXPORT, False),
    ("POST", "inbox/export"): (EXPORT, False),  # the npm client 3.0.0's exportInbox
    ("GET", "health"): (health, True),
    ("GET", "health/live"): (health, True),
    ("GET", "health/ready"): (health, True),
    ("GET", "health/startup"): (health, True),
    ("GET", "settings"): (get_settings, False),
    ("PATCH", "settings"): (put_settings, False),
    ("PUT", "settings"): (put_settings, False),
    ("POST", "auth/token"): (JWT, False),
    ("POST", "auth/token/refresh"): (JWT, False),
    ("DELETE", "auth/token/{}"): (JWT, False),
    ("GET", "logs"): (refused("Phone logs are not collected: see the dashboard's phone pages "
                              "and the delivery log."), False),
    ("GET", "inbox/{}/attachments/{}"): (refused("MMS are not supported: no attachments."),
                                         False),
}


# SMSGate's server still answers its old singular paths, which the npm client 3.x calls.
ALIASES = {"message": "messages", "device": "devices"}


def find(method: str, parts: tuple):
    """(action, path arguments, public) for a request, or NotFound/BadRequest."""
    parts = tuple(p for p in parts if p)
    if parts:
        parts = (ALIASES.get(parts[0], parts[0]), *parts[1:])
    for (verb, pattern), (action, public) in ROUTES.items():
        shape = pattern.split("/")
        if len(shape) != len(parts) or any(s != "{}" and s != p for s, p in zip(
                shape, parts, strict=True)):
            continue
        args = tuple(p for s, p in zip(shape, parts, strict=True) if s == "{}")
        if verb != method:
            continue
        return action, args, public
    known = {verb for (verb, pattern) in ROUTES
             if len(pattern.split("/")) == len(parts) and all(
                 s in ("{}", p) for s, p in zip(pattern.split("/"), parts, strict=True))}
    if known:
        raise BadRequest(f"Method {method} is not allowed here (allowed: "
                         f"{', '.join(sorted(known))}).", None, code="method_not_allowed")
    raise NotFound(f"No such endpoint: /3rdparty/v1/{'/'.join(parts)[:80]}.", None)
