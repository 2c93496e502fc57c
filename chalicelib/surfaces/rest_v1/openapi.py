"""The OpenAPI 3.1 document of REST v1 and its HTML reference page, both printed from
schema.OPERATIONS (the table requests are validated against), so neither can drift from the
code. The page is plain server-rendered HTML: no script, no CDN, a strict CSP."""
import base64
import functools
import hashlib
import html
import json

from chalicelib.core import errors
from chalicelib.surfaces.rest_v1 import schema

# The error codes the docs page lists, each with the error class that carries it (its status
# is the one surfaces/answers.py gives a problem document).
ERROR_CODES = {
    "unauthorized": errors.Unauthorized, "forbidden": errors.Forbidden,
    "not_found": errors.NotFound, "no_device": errors.NotFound, "conflict": errors.Conflict,
    "not_cancellable": errors.Conflict, "rate_limited": errors.RateLimited,
    "otp_cooldown": errors.RateLimited, "otp_hourly_cap": errors.RateLimited,
    "pool_at_capacity": errors.RateLimited, "pool_paused": errors.RateLimited,
    "invalid_request": errors.Malformed, "method_not_allowed": errors.MethodNotAllowed,
    "unsupported_media_type": errors.UnsupportedMediaType, "invalid_cursor": errors.Malformed,
    "temporarily_unavailable": errors.Unavailable, "internal_error": errors.Unavailable,
    "no_device_running": errors.Unavailable, "invalid_otp": errors.InvalidOtp,
    "invalid_parameter": errors.BadRequest}

ERROR_TEXT = {400: "Malformed request: not strict JSON (duplicate key, NaN/Infinity, lone "
                   "surrogate, nested or large beyond the limits), a field of the wrong type "
                   "or unknown, an integer not in plain ASCII digits, a cursor that does not "
                   "fit the query.",
              401: "Missing or invalid API key.",
              403: "Caller's IP is not whitelisted, the account is suspended "
                   "(account_suspended), or a quota of a count is full (quota_exceeded).",
              413: "The answer would be too large: the error names the bound and the way "
                   "around it.",
              404: "No such resource in this account.",
              405: "Method not served on this path (Allow lists the ones that are).",
              409: "Conflict (idempotency key reused, message already taken).",
              415: "The body is not application/json.",
              422: "Well-formed but refused (invalid number, text too long, unknown device).",
              429: "Rate limited, or a quota of a period exceeded (quota_exceeded: quota, "
                   "resets_at); retry after Retry-After seconds.",
              503: "Temporarily unavailable; retry after Retry-After seconds."}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _operation(op: schema.Operation) -> dict:
    entry = {"operationId": op.op_id, "summary": op.summary, "responses": {}}
    parameters = [{"name": name, "in": "path", "required": True, "schema": sub}
                  for name, sub in op.path_params.items()]
    parameters += [{"name": name, "in": "query", "required": False, "schema": sub,
                    **({"description": sub["description"]} if "description" in sub else {})}
                   for name, sub in op.query.items()]
    if parameters:
        entry["parameters"] = parameters
    if op.body:
        entry["requestBody"] = {"required": op.body_required,
                                "content": {"application/json": {"schema": op.body}}}
    ok = {"description": {200: "OK", 201: "Created", 202: "Accepted"}[op.ok]}
    if op.answer is not None:
        ok["content"] = {op.media: {"schema": op.answer}}
    else:
        ok["content"] = {op.media: {"schema": {"type": "string"}}}
    if op.links:
        ok["links"] = {name: {"operationId": target, "parameters": parameters}
                       for name, (target, parameters) in op.links.items()}
    entry["responses"][str(op.ok)] = ok
    for status in sorted(set(op.errors) | ({400, 415} if op.body else set())):
        answer = {"description": ERROR_TEXT[status],
                  "content": {"application/problem+json": {"schema": PROBLEM_REF}}}
        if status == 405:
            answer["headers"] = {"Allow": {"description": "The methods this path serves.",
                                           "schema": {"type": "string"}}}
        if status in (429, 503):
            answer["headers"] = {"Retry-After": {"description": "Seconds to wait.",
                                                 "schema": {"type": "integer"}}}
        entry["responses"][str(status)] = answer
    if op.auth:
        entry["security"] = [{"bearer": []}]
    else:
        entry["security"] = []
    return entry


def document() -> dict:
    paths = {}
    for op in schema.OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "smsgw REST API", "version": "1.0.0",
                 "description": "Send SMS and one-time passcodes through your Android phones. "
                                "Errors are RFC 9457 problem details (application/problem+json) "
                                "whose `code` is the compat API's error code. A method a path "
                                "does not serve is 405 (components/responses/MethodNotAllowed) "
                                "with an Allow header."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {"Problem": schema.PROBLEM},
            # Every v1 path answers the methods it does not serve with this (not an operation).
            "responses": {"MethodNotAllowed": {
                "description": ERROR_TEXT[405],
                "headers": {"Allow": {"description": "The methods this path serves.",
                                      "schema": {"type": "string"}}},
                "content": {"application/problem+json": {"schema": PROBLEM_REF}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "The account's 64-character API "
                                                          "key."}}},
    }


@functools.cache
def document_text() -> str:
    return json.dumps(document(), indent=1)


STYLE = ("body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
         "code,pre{background:#f4f4f4;padding:0 .2em}pre{padding:.5em;overflow:auto}"
         "h2{border-top:1px solid #ccc;padding-top:1em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}")
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
DOCS_HEADERS = {"Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'",
                "X-Content-Type-Options": "nosniff"}


def _fields(sub: dict) -> str:
    rows = []
    for name, prop in (sub.get("properties") or {}).items():
        kind = prop.get("type")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        limits = ", ".join(f"{k} {prop[k]}" for k in ("minimum", "maximum", "minItems",
                                                       "maxItems", "maxLength", "enum")
                           if k in prop)
        rows.append(f"<tr><td><code>{html.escape(name)}</code>"
                    f"{' (required)' if name in sub.get('required', []) else ''}</td>"
                    f"<td>{html.escape(str(kind))}</td><td>{html.escape(limits)}</td>"
                    f"<td>{html.escape(prop.get('description', ''))}</td></tr>")
    return "<table><tr><th>field</th><th>type</th><th>limits</th><th></th></tr>" + \
        "".join(rows) + "</table>" if rows else ""


@functools.cache
def docs_page() -> str:
    parts = ["<!doctype html><html lang=en><meta charset=utf-8><title>smsgw REST v1</title>",
             f"<style>{STYLE}</style><h1>smsgw REST API v1</h1>",
             "<p>Authenticate with <code>Authorization: Bearer &lt;api key&gt;</code>. "
             "Errors are <code>application/problem+json</code> (RFC 9457). Machine-readable: "
             "<a href=openapi.json>openapi.json</a>.</p>"]
    for op in schema.OPERATIONS:
        parts.append(f"<h2 id={op.op_id}><code>{op.method} {html.escape(op.path)}</code></h2>"
                     f"<p>{html.escape(op.summary)}</p>")
        if op.query:
            parts.append("<h3>Query</h3>" + _fields({"properties": op.query}))
        if op.body:
            parts.append("<h3>Body</h3>" + _fields(op.body))
        if op.answer and op.answer.get("properties"):
            parts.append(f"<h3>Answer {op.ok}</h3>" + _fields(op.answer))
        if op.errors:
            parts.append("<p>Errors: " + ", ".join(map(str, op.errors)) + "</p>")
    from chalicelib.surfaces.answers import problem_status
    parts.append("<h2 id=errors>Errors</h2><p>Every error is a problem document: "
                 "<code>type</code> links here, <code>code</code> is the compat API's error "
                 "code, <code>parameter</code> names the field at fault, 429/503 carry "
                 "<code>Retry-After</code>.</p><table><tr><th>code</th><th>status</th></tr>")
    parts += [f"<tr id=error-{code.replace('_', '-')}><td><code>{code}</code></td>"
              f"<td>{problem_status(kind)}</td></tr>" for code, kind in sorted(ERROR_CODES.items())]
    return "".join(parts) + "</table></html>"
