"""POST /device/pair: a phone redeems a pairing code from the dashboard for its device token.
The one device endpoint without a token (the code is the credential), answered like the other
device endpoints (JSON, HTTP status per error)."""
from chalicelib.core.errors import BadRequest
from chalicelib.domain import pairing
from chalicelib.surfaces import answers, device_api
from chalicelib.surfaces.request import HttpRequest

FIELDS = {"code", "sim_count"}
PAIR_BODY_BYTES = 1024  # read before anyone is known: a code and a SIM count, refused if larger


def handle(request: HttpRequest):
    """Answer POST /device/pair: (http_status, headers, JSON text), errors as the device API's."""
    return answers.guarded(_answer, request, answers.device)


def _answer(request: HttpRequest):
    document = device_api.json_body(request.headers, request.body, PAIR_BODY_BYTES)
    unknown = sorted(set(document) - FIELDS)
    if unknown:
        raise BadRequest(f"Unknown field: {unknown[0]}. Allowed: code, sim_count.", unknown[0])
    sim_count = document.get("sim_count")
    if sim_count is not None and (type(sim_count) is not int or sim_count not in (1, 2)):
        raise BadRequest("sim_count must be 1 or 2.", "sim_count")
    code = document.get("code")
    if not isinstance(code, str):
        raise BadRequest("Missing field: code (the pairing code).", "code")
    device, token = pairing.redeem(code, sim_count, request.source_ip)
    return answers.json_answer(200, {"device_id": device.device_id,
                                     "device_uid": device.device_uid, "device_token": token,
                                     "name": device.name})
