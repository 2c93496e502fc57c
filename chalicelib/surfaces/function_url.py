"""The Lambda function URL front door (docs/cost.md): its requests arrive in payload format
2.0 and its answers must be 2.0, while chalice routes the REST API's event shape. This module
converts both ways, so the routes and the IP whitelist see the same request whichever door it
came through:

- the route is found here from `rawPath` (chalice routes by the matched route's path, which
  API Gateway would have named); a path no route matches is answered 404 like an HTTP API;
- the query string is rebuilt from `rawQueryString`, keeping repeated keys and their order
  (2.0's `queryStringParameters` joins them with commas);
- the `cookies` list goes back into one Cookie header, the answer's Set-Cookie values into
  2.0's `cookies` list;
- the caller's address is `requestContext.http.sourceIp`, which Lambda sets from the TCP
  connection, copied to `requestContext.identity.sourceIp` where every surface reads it. No
  header (X-Forwarded-For, Forwarded, ...) is ever consulted.
"""
import base64
import binascii
import functools
import json
from urllib.parse import parse_qsl, unquote


def _plain(status: int, message: str) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"message": message}), "isBase64Encoded": False}


NOT_FOUND = _plain(404, "Not Found")


def is_function_url_event(event) -> bool:
    return (isinstance(event, dict) and event.get("version") == "2.0"
            and isinstance(event.get("requestContext", {}).get("http"), dict))


def _segments(path: str) -> list[str]:
    if path != "/" and path.endswith("/"):  # as API Gateway: /device/jobs/ is /device/jobs
        path = path[:-1]
    return path.split("/")


@functools.lru_cache(maxsize=4)
def _candidates(routes: tuple) -> list[str]:
    return sorted(routes, key=lambda route: [s.startswith("{") for s in route.split("/")])


def match_route(raw_path: str, routes) -> tuple[str, dict] | None:
    """(route, path parameters) of the route `raw_path` names, literal segments before
    captures (/v1/otp/verify before a /v1/otp/{x}); None when no route matches."""
    parts = [unquote(part) for part in _segments(raw_path)]
    for route in _candidates(tuple(routes)):
        pattern = route.split("/")
        if len(pattern) != len(parts):
            continue
        captured = {}
        for want, got in zip(pattern, parts, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    break
                captured[want[1:-1]] = got
            elif want != got:
                break
        else:
            return route, captured
    return None


def _query(raw: str) -> dict | None:
    values: dict[str, list[str]] = {}
    for key, value in parse_qsl(raw or "", keep_blank_values=True):
        values.setdefault(key, []).append(value)
    return values or None


def refusal(event: dict) -> dict | None:
    """A 400 answer for a 2.0 event chalice could only fail on (no method, a body flagged
    base64 that is not), else None."""
    if not isinstance(event["requestContext"]["http"].get("method"), str):
        return _plain(400, "Bad Request: no HTTP method.")
    if event.get("isBase64Encoded") and event.get("body"):
        try:
            base64.b64decode(event["body"])  # as chalice will decode it
        except (binascii.Error, ValueError, TypeError):
            return _plain(400, "Bad Request: the body is flagged base64 but is not base64.")
    return None


def to_rest_event(event: dict, routes) -> dict | None:
    """The REST API proxy event chalice expects for this 2.0 event; None if no route matches."""
    context = event["requestContext"]
    http = context["http"]
    matched = match_route(event.get("rawPath") or http.get("path") or "/", routes)
    if matched is None:
        return None
    route, path_parameters = matched
    headers = dict(event.get("headers") or {})
    if event.get("cookies"):
        headers["cookie"] = "; ".join(event["cookies"])
    query = _query(event.get("rawQueryString"))
    method = http["method"].upper()
    return {
        "resource": route, "path": event.get("rawPath") or http.get("path"),
        "httpMethod": method, "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query,
        "pathParameters": path_parameters or None, "stageVariables": None,
        "requestContext": {
            "resourcePath": route, "httpMethod": method, "path": http.get("path"),
            "stage": context.get("stage", "$default"), "domainName": context.get("domainName"),
            "domainPrefix": context.get("domainPrefix"), "apiId": context.get("apiId"),
            "accountId": context.get("accountId"), "requestId": context.get("requestId"),
            "protocol": http.get("protocol"), "requestTimeEpoch": context.get("timeEpoch"),
            "identity": {"sourceIp": http.get("sourceIp"), "userAgent": http.get("userAgent")},
        },
        "body": event.get("body"), "isBase64Encoded": bool(event.get("isBase64Encoded")),
    }


def to_function_url_answer(answer: dict) -> dict:
    """Chalice's REST-shaped answer as a 2.0 answer: one value per header (repeated values
    joined with commas, as HTTP allows), Set-Cookie values in `cookies`."""
    headers, cookies = {}, []
    merged = {name: [value] for name, value in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        merged.setdefault(name, []).extend(values)
    for name, values in merged.items():
        if name.lower() == "set-cookie":
            cookies.extend(str(value) for value in values)
        else:
            headers[name] = ", ".join(str(value) for value in values)
    out = {"statusCode": answer.get("statusCode", 200), "headers": headers,
           "body": answer.get("body") or "", "isBase64Encoded": bool(answer.get("isBase64Encoded"))}
    if cookies:
        out["cookies"] = cookies
    return out
