"""SMSGate's Android app as a phone: the device API its "private server" mode calls, under
/mobile/v1 (docs/android-app.md cites the app's and SMSGate server's source this follows).

Requests are those the app's GatewayApi.kt builds: JSON bodies, `Authorization: Bearer <device
token>`, and for registration `Bearer <private token>` or `Code <pairing code>`. Its ktor client
says `User-Agent: me.capcom.smsgateway/<version>`; versions before SSE-only push (1.53.0) are
refused with a message the app shows. Errors are SMSGate's `{"message"}` plus our code and
parameter; nothing is written for a request that gets a 4xx.

GET /events is the app's wake-up channel (SSEManager.kt). A Lambda cannot stream, so each
request is answered whole and the app reconnects 5 s after it closes; every connection makes the
app pull GET /message. By default (SMSGW_MOBILE_EVENTS_HOLD_SECONDS=0) /events answers at once
and that pull is the doorbell; a hold > 0 long-polls the device's queue first (SQS as doorbell,
the job left visible) and answers one MessageEnqueued event as soon as a job is there.
"""
from chalicelib.core import settings, text
from chalicelib.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from chalicelib.domain import devices
from chalicelib.domain.devices import app_phones
from chalicelib.surfaces import answers, params
from chalicelib.surfaces.request import HttpRequest
from chalicelib.surfaces.smsgate.mobile_request import (
    HANDED_OUT,
    MAX_SIM_CARDS,
    AppRequest,
    answer,
    app_version,
    error_answer,
)

# Registration is read before anyone is known: its body (a name, a push token, two SIM cards)
# is a few hundred bytes, so a larger one is refused before it is parsed.
REGISTER_BODY_BYTES = 8 * 1024


def handle(request: HttpRequest):
    """Answer one request of the app: (status, headers, body text)."""
    return answers.guarded(_answer, request, error_answer)


def _answer(http: HttpRequest):
    version = app_version(http.headers)  # an app too old is told so before anything else
    request = AppRequest(http, params.single_values(http.query), version)
    handler = ROUTES.get((request.method, request.route))
    if handler is None:
        raise NotFound(f"No {request.method} {request.route}.", None)
    return handler(request)


def _object(document, allowed: set, where: str) -> dict:
    """A JSON object; fields the app may add in later versions are ignored, known ones checked."""
    if not isinstance(document, dict):
        raise BadRequest(f"{where} must be a JSON object.", None)
    return {k: v for k, v in document.items() if k in allowed}


def _sims(document: dict) -> int | None:
    cards = document.get("simCards")
    if cards is None:
        return None
    if not isinstance(cards, list) or len(cards) > MAX_SIM_CARDS or not all(
            isinstance(card, dict) for card in cards):
        raise BadRequest(f"simCards must be a list of at most {MAX_SIM_CARDS} objects.",
                         "simCards")
    return app_phones.sim_count(cards)


# --- /device ----------------------------------------------------------------------------------


def register(request: AppRequest):
    """POST /device: a new device of the account the private token or pairing code names."""
    request.no_query()
    scheme, value = request.authorization()
    if scheme not in ("code", "bearer") or not value:  # before the body: nothing to parse
        raise Unauthorized("Send Authorization: Bearer <private token> or Code <pairing code> "
                           "to register.", "authorization")
    document = _object(request.json(REGISTER_BODY_BYTES), {"name", "pushToken", "simCards"},
                       "The body")
    name = document.get("name")
    if name is not None:  # checked before a token is claimed by it
        name = text.name(name, parameter="name", what="Device name")
    sims = _sims(document)
    if scheme == "code":
        device, token = app_phones.register_with_code(value, sims, request.version,
                                                      request.source_ip)
    else:
        device, token = app_phones.register_with_token(value, name or "SMSGate app", sims,
                                                       request.version, request.source_ip)
    return answer(201, {"id": device.device_uid, "token": token,
                        "login": f"device-{device.device_id}"})


def patch_device(request: AppRequest):
    """PATCH /device: the app's SIM cards (and version) after a start or a SIM change."""
    request.no_query()
    device = request.device()
    document = _object(request.json(), {"id", "pushToken", "simCards"}, "The body")
    if document.get("id") != device.device_uid:
        raise Forbidden("id is not the device this token belongs to.", "id")
    app_phones.update(device, _sims(document), request.version)
    return answer(204)


def get_device(request: AppRequest):
    """GET /device: the address the gateway sees (the app shows it); the token is optional."""
    request.no_query()
    if request.headers.get("authorization"):
        request.device()
    return answer(200, {"externalIp": request.source_ip or ""})


# --- /settings, /webhooks ---------------------------------------------------------------------


def get_settings(request: AppRequest):
    """GET /settings: only the key the app signs its webhooks to us with (the app keeps its
    other settings; SettingsService.update imports the sections given)."""
    request.no_query()
    device = request.device()
    devices.seen(device)
    return answer(200, {"webhooks": {"signing_key": device.signing_key or ""}})


def receiver_url(server_url: str, device_uid: str) -> str:
    return f"{server_url}/app-webhooks/{device_uid}"


def get_webhooks(request: AppRequest):
    """GET /webhooks: our own receiver for each event the app reports by webhook."""
    request.no_query()
    device = request.device()
    if not device.signing_key:  # an agent's token: it has no webhooks to send
        return answer(200, [])
    url = receiver_url(request.server_url, device.device_uid)
    return answer(200, [{"id": f"smsgw-{event.replace(':', '-')}", "url": url, "event": event}
                        for event in HANDED_OUT])


# --- /events ----------------------------------------------------------------------------------

EVENT_STREAM = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def events(request: AppRequest):
    """GET /events: answered whole (see the module's docstring); a sign of life either way."""
    request.no_query()
    device = request.device()
    hold = min(max(settings.current().mobile_events_hold_seconds, 0),
               settings.current().max_poll_wait_seconds)
    if hold <= 0:
        devices.seen(device)
        return 200, dict(EVENT_STREAM), ": connected\n\n"
    from chalicelib.domain.devices import doorbell
    rang = doorbell.wait(device, hold)
    body = "event: MessageEnqueued\ndata: {}\n\n" if rang else ": idle\n\n"
    return 200, dict(EVENT_STREAM), body


def _messages(request: AppRequest):
    from chalicelib.surfaces.smsgate import mobile_messages
    return mobile_messages.handle(request)


def _app_webhook(request: AppRequest):
    from chalicelib.surfaces.smsgate import mobile_webhooks
    return mobile_webhooks.handle(request)


ROUTES = {
    ("POST", "/device"): register,
    ("PATCH", "/device"): patch_device,
    ("GET", "/device"): get_device,
    ("GET", "/message"): _messages,
    ("PATCH", "/message"): _messages,
    ("GET", "/settings"): get_settings,
    ("GET", "/webhooks"): get_webhooks,
    ("GET", "/events"): events,
    ("POST", "/app-webhooks/{device_uid}"): _app_webhook,
}
