"""POST /device/pair: a phone redeems a pairing code from the dashboard for its device token.
The one device endpoint without a token (the code is the credential), answered like the other
device endpoints (JSON, HTTP status per error)."""
import logging

from chalicelib.core.errors import BadRequest, GatewayError, from_unexpected
from chalicelib.domain import pairing
from chalicelib.surfaces import device_api

log = logging.getLogger("smsgw")
FIELDS = {"code", "sim_count"}
PAIR_BODY_BYTES = 1024  # read before anyone is known: a code and a SIM count, refused if larger


def handle(headers: dict, body: bytes | None, source_ip: str | None):
    """Returns (http_status, extra_headers, json_body)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        try:
            document = device_api._json(headers, body, PAIR_BODY_BYTES)
            unknown = sorted(set(document) - FIELDS)
            if unknown:
                raise BadRequest(f"Unknown field: {unknown[0]}. Allowed: code, sim_count.",
                                 unknown[0])
            sim_count = document.get("sim_count")
            if sim_count is not None and (type(sim_count) is not int or sim_count not in (1, 2)):
                raise BadRequest("sim_count must be 1 or 2.", "sim_count")
            code = document.get("code")
            if not isinstance(code, str):
                raise BadRequest("Missing field: code (the pairing code).", "code")
            device, token = pairing.redeem(code, sim_count, source_ip)
            return 200, {}, {"device_id": device.device_id, "device_uid": device.device_uid,
                             "device_token": token, "name": device.name}
        except GatewayError:
            raise
        except Exception as exc:
            error = from_unexpected(exc)
            if error.code == "internal_error":
                log.exception("unexpected error in /device/pair")
            raise error
    except GatewayError as error:
        extra = {"Retry-After": str(error.retry_after)} if error.retry_after else {}
        return error.http_status, extra, device_api.error_body(error)
