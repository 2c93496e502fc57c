"""The device protocol's HTTP surface (/device/...): token check, strict JSON input, and plain HTTP
status codes with `{"error": {"code", "message", "parameter"}}` bodies (docs/device-protocol.md).

Unlike the compatibility API, devices are our own clients, so errors use real status codes:
401 bad token, 400 bad input (nothing changed), 503 storage trouble (retry). Every input is
checked before anything is written, so a bad item in a batch changes nothing.
"""
import re

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, Unauthorized
from chalicelib.domain import devices, direct, incoming, jobs
from chalicelib.storage import aws
from chalicelib.surfaces import answers, jsonbody, params
from chalicelib.surfaces.request import HttpRequest

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH = 50
MAX_JOBS = 10  # SQS's limit per ReceiveMessage
MAX_REASON = 500
MAX_TEXT = 5000
MAX_RECEIPT_HANDLE = 4096
DEVICE_MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,128}\Z")
def handle(request: HttpRequest):
    """Answer one device request (/device/<endpoint>): (http_status, headers, JSON text)."""
    return answers.guarded(_answer, request, answers.device)


def _answer(request: HttpRequest):
    endpoint, headers, body = request.endpoint, request.headers, request.body
    query = params.single_values(request.query)
    device = _device(headers)
    if endpoint == "jobs":
        unknown = sorted(set(query) - {"wait", "max"})
        if unknown:
            raise BadRequest(f"Unknown parameter: {unknown[0]}. Allowed: wait, max.",
                             unknown[0])
        wait = _int_param(query, "wait", settings.current().max_poll_wait_seconds, 0,
                          settings.current().max_poll_wait_seconds)
        max_jobs = _int_param(query, "max", 1, 1, MAX_JOBS)
        return answers.json_answer(200, {"jobs": _poll(device, wait, max_jobs),
                                         "lease_seconds": settings.current().lease_seconds})
    if query:
        name = sorted(query)[0]
        raise BadRequest(f"Unknown parameter: {name} (send a JSON body).", name)
    parse, act = ENDPOINTS[endpoint]
    document = {} if not body and endpoint in EMPTY_BODY_OK else json_body(headers, body)
    work = parse(document)
    return answers.json_answer(200, act(device, work))


def _poll(device, wait: int, max_jobs: int) -> list:
    """One long-poll in one of the device's poll slots (the slot's write also marks it seen)."""
    lease = devices.start_poll(device, wait)
    try:
        return jobs.lease_from_queue(device, wait, max_jobs)
    except Exception as exc:
        if aws.queue_missing(exc):  # removed between the slot write and the receive
            devices.removed(device)
        raise
    finally:
        devices.end_poll(device, lease)


def _device(headers: dict):
    auth = headers.get("authorization", "")
    if auth[:7].lower() != "bearer ":
        raise Unauthorized("Missing device token: send Authorization: Bearer <device token>.",
                           "authorization")
    return devices.authenticate(auth[7:].strip())


def _int_param(query: dict, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw.strip() == "":
        return default
    if not re.fullmatch(r"-?[0-9]{1,9}", raw.strip()):
        raise BadRequest(f"Invalid {name}: '{raw[:20]}' is not a whole number.", name)
    value = int(raw)
    if value < low:
        raise BadRequest(f"Invalid {name}: must be at least {low}.", name)
    return min(value, high)


def json_body(headers: dict, body: bytes | None, max_bytes: int = MAX_BODY_BYTES):
    jsonbody.check_size(body, max_bytes)
    if not body:
        raise BadRequest("Missing JSON body.", None)
    kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", ""):
        raise BadRequest(f"Unsupported content type {kind[:60]}: send application/json.", None)
    document = jsonbody.parse(body, max_bytes)
    if not isinstance(document, dict):
        raise BadRequest("The JSON body must be an object.", None)
    return document


def _fields(obj, allowed: set, where: str) -> dict:
    if not isinstance(obj, dict):
        raise BadRequest(f"{where} must be a JSON object.", where)
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise BadRequest(f"Unknown field {unknown[0]} in {where}. Allowed: "
                         f"{', '.join(sorted(allowed))}.", unknown[0])
    return obj


def _batch(document: dict, name: str) -> list:
    _fields(document, {name}, "the body")
    items = document.get(name)
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise BadRequest(f"{name} must be a list of 1-{MAX_BATCH} objects.", name)
    return items


def _integer(obj: dict, name: str, low: int, high: int, required: bool = True):
    value = obj.get(name)
    if value is None:
        if required:
            raise BadRequest(f"Missing required field: {name}.", name)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"Invalid {name}: expected a whole number from {low} to {high}.", name)
    return value


def _string(obj: dict, name: str, max_chars: int, required: bool = True):
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"Missing or empty field: {name} (a non-empty string).", name)
    if len(value) > max_chars or "\x00" in value:
        raise BadRequest(f"Invalid {name}: at most {max_chars} characters, no NUL.", name)
    return value


def parse_reports(document: dict) -> list:
    work, seen = [], set()
    for item in _batch(document, "reports"):
        item = _fields(item, {"message_id", "status", "reason"}, "a report")
        message_id = _integer(item, "message_id", 0, 2 ** 53 - 1)
        status = item.get("status")
        if status not in jobs.OUTCOMES:
            raise BadRequest("Invalid status: must be sent, delivered or failed.", "status")
        reason = _string(item, "reason", MAX_REASON, required=status == "failed")
        if reason is not None and status != "failed":
            raise BadRequest("reason is only for status failed.", "reason")
        if (message_id, status) in seen:
            raise BadRequest(f"Report for message {message_id} given twice.", "message_id")
        seen.add((message_id, status))
        work.append((message_id, status, reason.strip() if reason else None))
    return work


def act_reports(device, work) -> dict:
    """`sent` and `delivered` for one message in one batch are recorded by one write: delivered
    also records processed_at and frees the SQS message (jobs.report). The `sent` entry is
    answered like its `delivered` one. The batch's SQS deletes go ten per request."""
    devices.seen(device)
    delivered = {message_id for message_id, status, _ in work if status == "delivered"}
    results, deletes = {}, []
    for item in work:
        if not (item[1] == "sent" and item[0] in delivered):
            results[item[:2]] = jobs.report(device, *item, deletes=deletes)
    jobs.delete_batch(device.queue_url, deletes)
    return {"results": [results.get(item[:2]) or results[(item[0], "delivered")]
                        for item in work]}


def parse_incoming(document: dict) -> list:
    work, seen = [], set()
    for item in _batch(document, "messages"):
        item = _fields(item, {"device_message_id", "phone_number", "message", "sim_slot",
                              "received_at"}, "an incoming message")
        device_message_id = item.get("device_message_id")
        if not isinstance(device_message_id, str) or not DEVICE_MESSAGE_ID.match(
                device_message_id):
            raise BadRequest("Invalid device_message_id: 1-128 printable ASCII characters.",
                             "device_message_id")
        if device_message_id in seen:
            raise BadRequest(f"device_message_id {device_message_id} given twice.",
                             "device_message_id")
        seen.add(device_message_id)
        number = _string(item, "phone_number", 32).strip()
        text = _string(item, "message", MAX_TEXT)
        sim_slot = _integer(item, "sim_slot", 1, 2, required=False)
        received_at = _integer(item, "received_at", 0, 2 ** 53 - 1)
        if received_at > clock.now_ms() + 86400 * 1000:
            raise BadRequest("Invalid received_at: more than a day in the future.",
                             "received_at")
        work.append((device_message_id, number, text, sim_slot, received_at))
    return work


def act_incoming(device, work) -> dict:
    results = []
    for device_message_id, number, text, sim_slot, received_at in work:
        message_id, stored = incoming.store(device, device_message_id, number, text, sim_slot,
                                            received_at)
        results.append({"device_message_id": device_message_id, "message_id": message_id,
                        "result": "stored" if stored else "duplicate"})
    return {"results": results}


def parse_heartbeat(document: dict) -> dict:
    item = _fields(document, {"app_state", "battery", "signal", "sim_count", "e2e"}, "the body")
    if item.get("app_state") not in devices.APP_STATES:
        raise BadRequest("Invalid app_state: must be running or stopped.", "app_state")
    sim_count = _integer(item, "sim_count", 1, 2, required=False)
    if not isinstance(item.get("e2e", False), bool):
        raise BadRequest("Invalid e2e: true when the agent can decrypt end-to-end encrypted "
                         "messages (it has a passphrase), else false.", "e2e")
    return {"app_state": item["app_state"], "e2e": item.get("e2e"),
            "battery": _integer(item, "battery", 0, 100, required=False),
            "signal": _integer(item, "signal", 0, 4, required=False),
            "sim_count": sim_count}


def act_heartbeat(device, work) -> dict:
    devices.heartbeat(device, **work)
    return {"status": "running" if devices.is_running(device) else "stopped",
            "server_time": clock.now_ms(),
            "heartbeat_seconds": settings.current().heartbeat_seconds,
            # the gap agents keep between parts on one SIM: none since the gateway's hand-out
            # times carry the phone's window and the SIM's rate (docs/pool.md, issue 21)
            "pace_ms": 0}


def parse_credentials(document: dict) -> None:
    _fields(document, set(), "the body")


def act_credentials(device, work) -> dict:
    answer = direct.credentials(device)
    devices.seen(device)  # hourly renewal is a sign of life too (after: a 409 records nothing)
    return answer


def parse_claims(document: dict) -> list:
    items = _batch(document, "claims")
    if len(items) > MAX_JOBS:
        raise BadRequest(f"claims must be a list of 1-{MAX_JOBS} objects (one SQS receive).",
                         "claims")
    work = []
    for item in items:
        _fields(item, {"message_id", "receipt_handle"}, "a claim")
        if "message_id" not in item:
            raise BadRequest("Missing required field: message_id (null for a message whose "
                             "body is not a job).", "message_id")
        message_id = None if item["message_id"] is None else _integer(
            item, "message_id", 0, 2 ** 53 - 1)
        receipt_handle = _string(item, "receipt_handle", MAX_RECEIPT_HANDLE)
        work.append((message_id, receipt_handle))
    return work


def act_claims(device, work) -> dict:
    devices.seen(device)
    return {"results": jobs.lease_claimed(device, work),
            "lease_seconds": settings.current().lease_seconds}


ENDPOINTS = {"reports": (parse_reports, act_reports),
             "credentials": (parse_credentials, act_credentials),
             "claims": (parse_claims, act_claims),
             "incoming": (parse_incoming, act_incoming),
             "heartbeat": (parse_heartbeat, act_heartbeat)}
EMPTY_BODY_OK = {"credentials"}
