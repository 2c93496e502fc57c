"""REST v1 (`/v1/...`): a resource-oriented JSON face on the same domain layer as the compat API.

Auth is `Authorization: Bearer <api key>` through `accounts.authenticate` (same hashing,
whitelist and account scoping as /myAPI.php). Requests are checked against schema.OPERATIONS,
the table the OpenAPI document is printed from. Errors are RFC 9457 problem details carrying
the compat API's error codes. Sends, OTPs and device listings call the very functions the
compat actions call; this module only maps JSON in and out.
"""
from chalicelib.core.errors import (
    BadRequest,
    Malformed,
    MethodNotAllowed,
    Unauthorized,
    UnsupportedMediaType,
)
from chalicelib.domain import accounts
from chalicelib.surfaces import answers, jsonbody
from chalicelib.surfaces.request import HttpRequest
from chalicelib.surfaces.rest_v1 import resources, schema, validation

MAX_BODY_BYTES = 256 * 1024  # 1,000 recipients and a long text fit with room
# Shape: the request's form is wrong (not JSON, a field of the wrong type or unknown): 400.
# A well-formed request whose values the domain refuses is 422 (surfaces/answers.py).
Shape = Malformed


def parse_body(op: schema.Operation, headers: dict, body: bytes | None) -> dict:
    """The body as a document valid for `op`, through the one strict JSON parser every JSON
    surface uses (surfaces/jsonbody.py: duplicate keys, NaN/Infinity, lone surrogates, depth
    and size refused); any refusal is 400 problem+json, a body that is not JSON 415."""
    kind = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", ""):
        raise UnsupportedMediaType(f"Unsupported body type {kind[:60]!r}: send "
                                   "application/json.", "content-type")
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


def handle(request: HttpRequest):
    """Answer one /v1 request: (http_status, headers, body text)."""
    return answers.guarded(_answer, request, answers.problem)


def _answer(request: HttpRequest):
    method, route, headers, body = request.method, request.route, request.headers, request.body
    query = request.query_lists()
    op = schema.BY_ROUTE.get((method, route))
    if op is None:
        raise MethodNotAllowed(f"Method {method} is not allowed on {route}.", None,
                               allow=allowed(route))
    if op.op_id == "openapi":
        from chalicelib.surfaces.rest_v1 import openapi
        return 200, {"Content-Type": "application/json"}, openapi.document_text()
    if op.op_id == "docs":
        from chalicelib.surfaces.rest_v1 import openapi
        return 200, openapi.DOCS_HEADERS, openapi.docs_page()
    parse_query(op, query)  # operations without query parameters refuse any
    caller = accounts.authenticate(bearer_key(headers), request.source_ip)
    args = {}
    for name, sub in op.path_params.items():
        try:
            value = validation.coerce_query(sub, name, request.path_params.get(name, ""))
            validation.validate(sub, value, name)
        except validation.Invalid as invalid:
            raise Shape(f"Invalid {invalid.where}: {invalid.message}.", name)
        args[name] = value
    if op.query:
        args["query"] = parse_query(op, query)
    if op.body:
        args["body"] = parse_body(op, headers, body) if body or op.body_required else {}
    if op.op_id == "exportAccount":
        from chalicelib.domain import export
        accept = request.headers.get("accept", "")
        if "application/zip" not in accept and "*/*" not in accept:
            # a binary answer reaches only a caller that accepts it (Chalice refuses it bare)
            raise Shape("The export is a zip: send Accept: application/zip.", "accept",
                        code="not_acceptable")
        return 200, {"Content-Type": "application/zip", "Content-Disposition":
                     f'attachment; filename="{export.filename(caller.account_id)}"'}, \
            export.bounded_zip(caller.account_id)
    if op.op_id == "sendMessages":
        _header_key(headers, args["body"])
    status, answer = getattr(resources, op.op_id)(caller, **args)
    return answers.json_answer(status, answer)
