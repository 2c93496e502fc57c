"""REST v1 (`/v1/...`): a resource-oriented JSON face on the same domain layer as the compat API.

Auth is `Authorization: Bearer <api key>` through `accounts.authenticate` (same hashing,
whitelist and account scoping as /myAPI.php). Requests are checked against schema.OPERATIONS,
the table the OpenAPI document is printed from. Errors are RFC 9457 problem details carrying
the compat API's error codes. Sends, OTPs and device listings call the very functions the
compat actions call; this module only maps JSON in and out.
"""
import json
import logging

from chalicelib.core.errors import BadRequest, GatewayError, Unauthorized, from_unexpected
from chalicelib.domain import accounts
from chalicelib.surfaces import jsonbody
from chalicelib.surfaces.rest_v1 import resources, schema, validation

log = logging.getLogger("smsgw")
MAX_BODY_BYTES = 256 * 1024  # 1,000 recipients and a long text fit with room
PROBLEM_TYPE = "/v1/docs#error-"  # a relative URI reference (RFC 9457 3.1.1): the docs page
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
          415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}
STATUS_OF_CODE = {"unauthorized": 401, "forbidden": 403, "not_found": 404, "no_device": 404,
                  "conflict": 409, "not_cancellable": 409, "rate_limited": 429,
                  "otp_cooldown": 429, "otp_hourly_cap": 429, "pool_at_capacity": 429,
                  "pool_paused": 429, "invalid_request": 400, "method_not_allowed": 405,
                  "unsupported_media_type": 415, "invalid_cursor": 400,
                  "temporarily_unavailable": 503, "internal_error": 503,
                  "no_device_running": 503, "invalid_otp": 422, "invalid_parameter": 422,
                  "export_too_large": 413, "account_suspended": 403}


class Shape(BadRequest):
    """The request's form is wrong (not JSON, a field of the wrong type or unknown): 400.
    A well-formed request whose values the domain refuses is 422."""
    code = "invalid_request"


def http_status(error: GatewayError) -> int:
    if error.code == "quota_exceeded":  # 429 for a quota of a period, 403 for one of a count
        return error.http_status
    if error.code in STATUS_OF_CODE:
        return STATUS_OF_CODE[error.code]
    name = type(error).__name__
    return {"Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "Conflict": 409,
            "RateLimited": 429, "Unavailable": 503}.get(name, 422)


def quota_facts(error: GatewayError) -> dict:
    """A refused quota's name, limit and reset time (epoch ms), for the answer's body."""
    if error.code != "quota_exceeded":
        return {}
    return {name: error.extra[name] for name in ("quota", "limit", "resets_at")
            if error.extra.get(name) is not None}


def problem(error: GatewayError) -> tuple[int, dict]:
    status = http_status(error)
    body = {"type": PROBLEM_TYPE + error.code.replace("_", "-"),
            "title": TITLES.get(status, "Error"), "status": status, "detail": error.message,
            "code": error.code}
    if error.parameter:
        body["parameter"] = error.parameter
    if error.retry_after is not None:
        body["retry_after"] = error.retry_after
    if getattr(error, "extra", {}).get("status"):
        body["current_status"] = error.extra["status"]
    body.update(quota_facts(error))
    return status, body


def parse_body(op: schema.Operation, headers: dict, body: bytes | None) -> dict:
    """The body as a document valid for `op`, through the one strict JSON parser every JSON
    surface uses (surfaces/jsonbody.py: duplicate keys, NaN/Infinity, lone surrogates, depth
    and size refused); any refusal is 400 problem+json, a body that is not JSON 415."""
    kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", ""):
        raise Shape(f"Unsupported body type {kind[:60]!r}: send application/json.",
                    "content-type", code="unsupported_media_type")
    if not body:
        raise Shape("A JSON body is required.", None)
    try:
        document = jsonbody.parse(body, MAX_BODY_BYTES)
    except BadRequest as refused:
        raise Shape(refused.message, refused.parameter)
    try:
        validation.validate(op.body, document, "body")
    except validation.Invalid as invalid:
        raise Shape(f"Invalid {invalid.where}: {invalid.message}.",
                    None if invalid.where == "body" else invalid.where)
    return document


def parse_query(op: schema.Operation, query: dict | None) -> dict:
    values = {}
    for name, raw in (query or {}).items():
        raw = [raw] if isinstance(raw, str) else list(raw)
        if name not in op.query:
            allowed = ", ".join(sorted(op.query)) or "none"
            raise Shape(f"Unknown query parameter: {name[:40]} (allowed: {allowed}).", name[:64])
        if len(raw) != 1:
            raise Shape(f"Duplicate query parameter: {name}.", name)
        try:
            value = validation.coerce_query(op.query[name], name, raw[0])
            validation.validate(op.query[name], value, name)
        except validation.Invalid as invalid:
            raise Shape(f"Invalid {invalid.where}: {invalid.message}.", invalid.where)
        values[name] = value
    return values


def bearer_key(headers: dict) -> str | None:
    auth = headers.get("authorization", "")
    if not auth:
        return None
    scheme, _, key = auth.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("Use Authorization: Bearer <api key>.", "authorization")
    return key.strip()


def _header_key(headers: dict, body: dict) -> None:
    """The Idempotency-Key header, as the body's idempotency_key (they must agree)."""
    given = headers.get("idempotency-key")
    if given is None:
        return
    if "idempotency_key" in body and body["idempotency_key"] != given:
        raise Shape("idempotency_key and the Idempotency-Key header differ.", "idempotency_key")
    try:
        validation.validate(schema.SEND_BODY["properties"]["idempotency_key"], given,
                        "idempotency_key")
    except validation.Invalid as invalid:
        raise Shape(f"Invalid Idempotency-Key header: {invalid.message}.", "idempotency_key")
    body["idempotency_key"] = given


def allowed(route: str) -> str:
    """The methods `route` answers, for a 405's Allow header."""
    return ", ".join(sorted(op.method for op in schema.OPERATIONS if op.path == route))


def _json_answer(status, body, extra=None):
    content = "application/problem+json" if status >= 400 else "application/json"
    return status, {"Content-Type": content, **(extra or {})}, json.dumps(body)


def handle(method: str, route: str, path_params: dict | None, query: dict | None,
           headers: dict, body: bytes | None, source_ip: str | None):
    """Answer one /v1 request: (http_status, headers, body text)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    op = schema.BY_ROUTE.get((method, route))
    try:
        try:
            if op is None:
                raise Shape(f"Method {method} is not allowed on {route}.", None,
                            code="method_not_allowed")
            if op.op_id == "openapi":
                from chalicelib.surfaces.rest_v1 import openapi
                return 200, {"Content-Type": "application/json"}, openapi.document_text()
            if op.op_id == "docs":
                from chalicelib.surfaces.rest_v1 import openapi
                return 200, openapi.DOCS_HEADERS, openapi.docs_page()
            parse_query(op, query)  # operations without query parameters refuse any
            caller = accounts.authenticate(bearer_key(headers), source_ip)
            args = {}
            for name, sub in op.path_params.items():
                try:
                    value = validation.coerce_query(sub, name, (path_params or {}).get(name, ""))
                    validation.validate(sub, value, name)
                except validation.Invalid as invalid:
                    raise Shape(f"Invalid {invalid.where}: {invalid.message}.", name)
                args[name] = value
            if op.query:
                args["query"] = parse_query(op, query)
            if op.body:
                args["body"] = parse_body(op, headers, body) if body or op.body_required \
                    else {}
            if op.op_id == "exportAccount":
                from chalicelib.domain import export
                return 200, {"Content-Type": "application/zip", "Content-Disposition":
                             f'attachment; filename="{export.filename(caller.account_id)}"'}, \
                    export.bounded_zip(caller.account_id)
            if op.op_id == "sendMessages":
                _header_key(headers, args["body"])
            status, answer = getattr(resources, op.op_id)(caller, **args)
            return _json_answer(status, answer)
        except GatewayError:
            raise
        except Exception as exc:  # storage trouble: say so, retryably, without internals
            error = from_unexpected(exc)
            if error.code == "internal_error":
                log.exception("unexpected error in %s %s", method, route)
            raise error
    except GatewayError as error:
        status, body_ = problem(error)
        extra = {"X-Error-Code": error.code}
        if error.retry_after is not None:
            extra["Retry-After"] = str(error.retry_after)
        if status == 401:
            extra["WWW-Authenticate"] = 'Bearer realm="smsgw"'
        if status == 405:
            extra["Allow"] = allowed(route)
        return _json_answer(status, body_, extra)
