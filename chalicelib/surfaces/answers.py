"""Errors as answers, one function per answer style, and the one guard every surface's handle()
runs its work in. A style maps a domain error through its attributes (`http_status`, `code`,
`parameter`, `retry_after`, `extra`), never its class name:

- compat: the reference's envelope, always HTTP 200 (compat_api.py says why);
- device: our device protocol's `{"error": {...}}` with the real status (/device/...);
- problem: RFC 9457 problem+json (REST v1);
- SMSGate's two shapes live with their vocabulary (smsgate/thirdparty_request.py for the client
  API, smsgate/mobile_request.py for the app), the dashboard's pages in dashboard/ (web.failed
  answers an error page or a form shown again with the error's status).

Every style answers (http status, headers, body text), as every handle() does.
"""
import json
import logging

from chalicelib.core.errors import GatewayError, from_unexpected

log = logging.getLogger("smsgw")
JSON = {"Content-Type": "application/json"}
PROBLEM_TYPE = "/v1/docs#error-"  # a relative URI reference (RFC 9457 3.1.1): the docs page
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
          415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}


def guarded(work, request, error_answer):
    """`work(request)`'s answer; a GatewayError answered by `error_answer(error, request)`; any
    other exception as `from_unexpected` says (busy or internal, logged), never its text."""
    try:
        return work(request)
    except GatewayError as error:
        return error_answer(error, request)
    except Exception as exc:  # storage trouble: say so, retryably, without internals
        error = from_unexpected(exc)
        if error.code == "internal_error":
            log.exception("unexpected error in %s %s", request.method, request.route)
        return error_answer(error, request)


def json_answer(status: int, body, headers: dict | None = None) -> tuple[int, dict, str]:
    return status, {**JSON, **(headers or {})}, json.dumps(body)


def _retry(error: GatewayError) -> dict:
    return {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}


def quota_facts(error: GatewayError) -> dict:
    """A refused quota's name, limit and reset time (epoch ms), for the answer's body."""
    if error.code != "quota_exceeded":
        return {}
    return {name: error.extra[name] for name in ("quota", "limit", "resets_at")
            if error.extra.get(name) is not None}


def compat_envelope(error: GatewayError) -> dict:
    """The reference's error envelope; `bare` errors keep its exact answer, `data` null."""
    if error.bare:
        return {"status": "error", "message": error.message, "response": False, "data": None}
    data = {"error_code": error.code}
    if error.parameter:
        data["parameter"] = error.parameter
    if error.retry_after is not None:
        data["retry_after"] = error.retry_after
    data.update(quota_facts(error))
    return {"status": "error", "message": error.message, "response": False, "data": data}


def compat(error: GatewayError, request=None) -> tuple[int, dict, str]:
    """/myAPI.php: HTTP 200, the error in the envelope and in X-Error-Code (and Retry-After)."""
    return json_answer(200, compat_envelope(error), {"X-Error-Code": error.code, **_retry(error)})


def device(error: GatewayError, request=None) -> tuple[int, dict, str]:
    """/device/...: the real status, `{"error": {code, message, parameter}}`; a refused device
    token is asked for again (WWW-Authenticate)."""
    headers = _retry(error)
    if error.http_status == 401 and error.parameter == "authorization":
        headers["WWW-Authenticate"] = 'Bearer realm="smsgw-device"'
    body = {"error": {"code": error.code, "message": error.message, "parameter": error.parameter}}
    return json_answer(error.http_status, body, headers)


def problem_status(error: GatewayError) -> int:
    """REST v1's status: the error's own, except that a well-formed request whose values are
    refused is 422 (a `Malformed` one, whose form is wrong, stays 400)."""
    if error.http_status == 400 and not error.malformed:
        return 422
    return error.http_status


def problem_document(error: GatewayError) -> tuple[int, dict]:
    status = problem_status(error)
    body = {"type": PROBLEM_TYPE + error.code.replace("_", "-"),
            "title": TITLES.get(status, "Error"), "status": status, "detail": error.message,
            "code": error.code}
    if error.parameter:
        body["parameter"] = error.parameter
    if error.retry_after is not None:
        body["retry_after"] = error.retry_after
    if error.extra.get("status"):
        body["current_status"] = error.extra["status"]
    body.update(quota_facts(error))
    return status, body


def problem(error: GatewayError, request=None) -> tuple[int, dict, str]:
    """/v1: problem+json, X-Error-Code, and the headers its status calls for."""
    status, body = problem_document(error)
    headers = {"Content-Type": "application/problem+json", "X-Error-Code": error.code,
               **_retry(error)}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="smsgw"'
    if error.extra.get("allow"):
        headers["Allow"] = error.extra["allow"]
    return status, headers, json.dumps(body)
