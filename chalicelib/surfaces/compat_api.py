"""The compatibility surface `/myAPI.php?action=...`: the reference's actions, answered in its
`{"status", "message", "response", "data"}` envelope.

HTTP status policy: every answer is HTTP 200, errors included, because the reference's PHP
example reads answers with `file_get_contents`, which returns false on any non-2xx status and
would hide the error envelope. The envelope's `status`/`response` say success or error;
errors carry `data.error_code`, `data.parameter` and, when retrying helps, `data.retry_after`
(also sent as a `Retry-After` header, with `X-Error-Code`). Errors flagged `bare` (verify_otp's
"Invalid or Expired OTP.") keep the reference's exact answer, `data` null.
"""
import re

from chalicelib.core import clock
from chalicelib.core.errors import BadRequest
from chalicelib.domain import accounts, devices, messages, otp, outbox, phone, pool
from chalicelib.domain.messages import history as message_history
from chalicelib.surfaces import answers, params
from chalicelib.surfaces.request import HttpRequest

COMMON = {"api_key", "action"}
ACTIONS = {}
IDEMPOTENCY_PATTERN = re.compile(r"^[\x21-\x7e]{1,128}\Z")

def action(name: str, allowed: set):
    """Register a handler `fn(caller, params, headers) -> (message, data)` for `action=name`."""
    def register(fn):
        ACTIONS[name] = (fn, allowed | COMMON)
        return fn
    return register


def success(message: str, data=None) -> dict:
    return {"status": "success", "message": message, "response": True, "data": data}


def _api_key(query_params: dict, headers: dict) -> str | None:
    candidates = set()
    if query_params.get("api_key"):
        candidates.add(query_params["api_key"].strip())
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        candidates.add(auth[7:].strip())
    if headers.get("x-api-key"):
        candidates.add(headers["x-api-key"].strip())
    if len(candidates) > 1:
        raise BadRequest("Conflicting API keys: api_key and the Authorization/X-API-Key header "
                         "differ.", "api_key")
    return candidates.pop() if candidates else None


def handle(request: HttpRequest):
    """Answer one request: (200, headers, the envelope as JSON text)."""
    return answers.guarded(_answer, request, answers.compat)


def _answer(request: HttpRequest):
    method, headers = request.method, request.headers
    if method not in ("GET", "POST"):
        raise BadRequest(f"Method {method} is not supported: use GET or POST.", None,
                         code="method_not_allowed")
    given = params.collect(request.query, headers, request.body)
    name = given.get("action", "").strip()
    if name not in ACTIONS:
        valid = ", ".join(sorted(ACTIONS))
        what = f"Unknown action '{name[:40]}'" if name else "Missing parameter: action"
        raise BadRequest(f"{what}. Valid actions: {valid}.", "action")
    handler, allowed = ACTIONS[name]
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise BadRequest(f"Unknown parameter for {name}: {', '.join(unknown)}. Allowed: "
                         f"{', '.join(sorted(allowed))}.", unknown[0])
    caller = accounts.authenticate(_api_key(given, headers), request.source_ip)
    message, data = handler(caller, given, headers)
    return answers.json_answer(200, success(message, data))


def _idempotency_key(request: dict, headers: dict) -> str | None:
    given = {v.strip() for v in (request.get("idempotency_key"), headers.get("idempotency-key"))
             if v and v.strip()}
    if len(given) > 1:
        raise BadRequest("idempotency_key and the Idempotency-Key header differ.",
                         "idempotency_key")
    key = given.pop() if given else None
    if key is not None and not IDEMPOTENCY_PATTERN.match(key):
        raise BadRequest("Invalid idempotency_key: 1-128 printable ASCII characters.",
                         "idempotency_key")
    return key


def _names_device(request: dict) -> bool:
    return any((request.get(name) or "").strip() for name in ("device_id", "device_uid"))


def _routing_data(accepted, chosen: bool) -> dict:
    """send_sms/send_otp extras: the chosen device, and a paced message's expected send time."""
    m, extra = accepted.message, {}
    if chosen:
        extra.update(device_id=m.device_id, device_uid=m.device_uid)
    if accepted.expected_at is not None:
        extra.update(expected_at=clock.fmt(accepted.expected_at),
                     expected_in=max(0, -(-(accepted.expected_at - clock.now_ms()) // 1000)))
    return extra


@action("send_sms", {"device_id", "device_uid", "phone_number", "message", "sim_slot",
                     "idempotency_key", "valid_for", "expires_at", "failover"})
def send_sms(caller, request, headers):
    number = phone.normalise(request.get("phone_number"))
    sim_slot = params.integer(request, "sim_slot", None, 1, 2)  # None: not given
    idempotency_key = _idempotency_key(request, headers)
    validity, requested = messages.parse_validity_request(request.get("valid_for"),
                                                          request.get("expires_at"))
    # the text is checked and its segments counted once, by submit
    accepted = outbox.submit(caller.account_id, outbox.SendRequest(
        phone_number=number, text=request.get("message"), device_id=request.get("device_id"),
        device_uid=request.get("device_uid"), sim_slot=sim_slot,
        failover=pool.parse_failover(request.get("failover")),
        idempotency_key=idempotency_key, valid_for_seconds=validity,
        requested_validity=requested, events=caller.events))
    m = accepted.message
    data = {"message_id": m.message_id, "status": m.status, "sim_slot": m.sim_slot,
            **_routing_data(accepted, accepted.chosen)}
    if not accepted.queued:
        return "SMS accepted; queueing it to the device was delayed and will be retried " \
               "automatically.", data
    return "SMS queued successfully.", data


@action("check_status", {"message_id"})
def check_status(caller, request, headers):
    message = messages.lookup(caller.account_id, params.require(request, "message_id"))
    return "Status found.", messages.status_of(message)


@action("get_history", {"type", "limit", "cursor"})
def get_history(caller, request, headers):
    kind = (request.get("type") or "all").strip().lower()
    limit = params.integer(request, "limit", 20, 1, message_history.MAX_HISTORY, clamp_high=True)
    entries, cursor = message_history.history(caller.account_id, kind, limit,
                                       request.get("cursor") or None)
    return "History found.", {"messages": entries, "next_cursor": cursor}


@action("device_status", set())
def device_status(caller, request, headers):
    return "Devices found.", [pool.describe(d) for d in devices.list_devices(caller.account_id)]


@action("send_otp", {"device_uid", "device_id", "phone_number", "length", "expiry", "message"})
def send_otp(caller, request, headers):
    number = phone.normalise(request.get("phone_number"))
    length = params.integer(request, "length", 6, *otp.LENGTHS)
    expiry = params.integer(request, "expiry", 5, *otp.EXPIRY_MINUTES)
    template = otp.render_template(request.get("message"), expiry)
    device = devices.resolve(caller.account_id, request.get("device_id"),
                             request.get("device_uid")) if _names_device(request) else None
    # without a device: automatic choice, OTPs first, on SIM 1 of the soonest free running device
    sent = otp.send(caller.account_id, device, number, template, length, expiry,
                    events=caller.events)
    data = {"message_id": sent.message.message_id, "phone_number": number,
            "status": sent.message.status, "expires_at": clock.fmt(sent.expires_at),
            "expires_in": sent.expires_in()}
    if device is None:
        data.update(device_id=sent.message.device_id, device_uid=sent.message.device_uid)
    return "OTP sent successfully.", data


@action("verify_otp", {"phone_number", "otp_code"})
def verify_otp(caller, request, headers):
    number = phone.normalise(request.get("phone_number"))
    otp.verify(caller.account_id, number, request.get("otp_code"))
    return "OTP Verified Successfully.", None
