"""The API handler behind each front door the stack puts before it: the REST API chalice generates
and the HTTP API (payload format 1.0) the merge template adds. Each test builds the Lambda event
exactly as that integration produces it (AWS's documented shapes) and calls the real Lambda
entry point, `app(event, context)`: routing, bodies, query strings and, above all, the IP
whitelist, which must read requestContext.identity.sourceIp (set by API Gateway from the
connection) and never a header the client controls."""
import base64
import json
from urllib.parse import urlencode

import pytest

from chalicelib.domain import accounts

SPOOF = {"X-Forwarded-For": "203.0.113.5", "X-Real-IP": "203.0.113.5",
         "Forwarded": "for=203.0.113.5"}


def rest_event(method, path, source_ip, headers=None, query=None, body=None):
    """API Gateway REST API, Lambda proxy integration (stage `api`)."""
    headers = {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "User-Agent": "curl/8.5",
               "X-Forwarded-For": source_ip, "X-Forwarded-Proto": "https", **(headers or {})}
    return {
        "resource": path, "path": path, "httpMethod": method, "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None, "stageVariables": None,
        "requestContext": {
            "resourceId": "x1y2z3", "resourcePath": path, "httpMethod": method,
            "extendedRequestId": "abc=", "requestTime": "27/Nov/2026:12:00:00 +0000",
            "path": f"/api{path}", "accountId": "123456789012", "protocol": "HTTP/1.1",
            "stage": "api", "domainPrefix": "abc123", "requestTimeEpoch": 1795780800000,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"cognitoIdentityPoolId": None, "accountId": None,
                         "cognitoIdentityId": None, "caller": None, "sourceIp": source_ip,
                         "principalOrgId": None, "accessKey": None,
                         "cognitoAuthenticationType": None,
                         "cognitoAuthenticationProvider": None, "userArn": None,
                         "userAgent": "curl/8.5", "user": None},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "apiId": "abc123"},
        "body": body, "isBase64Encoded": False}


def http_api_v1_event(method, path, source_ip, headers=None, query=None, body=None):
    """API Gateway HTTP API, Lambda integration with payload format 1.0 (stage $default), as
    in AWS's example of that format (http-api-develop-integrations-lambda).
    Header names arrive lower-cased and bodies base64-encoded."""
    headers = {"host": "def456.execute-api.us-east-1.amazonaws.com", "user-agent": "curl/8.5",
               "x-forwarded-for": source_ip, "x-forwarded-proto": "https",
               **{k.lower(): v for k, v in (headers or {}).items()}}
    return {
        "version": "1.0", "resource": path, "path": path, "httpMethod": method,
        "headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query or None,
        "requestContext": {
            "accountId": "123456789012", "apiId": "def456", "authorizer": None,
            "domainName": "def456.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "def456", "extendedRequestId": "def=", "httpMethod": method,
            "identity": {"accessKey": None, "accountId": None, "caller": None,
                         "cognitoAuthenticationProvider": None,
                         "cognitoAuthenticationType": None, "cognitoIdentityId": None,
                         "cognitoIdentityPoolId": None, "principalOrgId": None,
                         "sourceIp": source_ip, "user": None, "userAgent": "curl/8.5",
                         "userArn": None},
            "path": path, "protocol": "HTTP/1.1", "requestId": "def=",
            "requestTime": "27/Nov/2026:12:00:00 +0000", "requestTimeEpoch": 1795780800000,
            "resourceId": None, "resourcePath": path, "stage": "$default"},
        "pathParameters": None, "stageVariables": None,
        "body": base64.b64encode(body.encode()).decode() if body else None,
        "isBase64Encoded": bool(body)}


FRONT_DOORS = {"rest": rest_event, "http-api-v1": http_api_v1_event}


class LambdaContext:
    function_name = "smsgw-test"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self):
        return 25000


def invoke(event):
    from app import app
    answer = app(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def compat(make_event, source_ip, key, headers=None, how="form"):
    values = {"api_key": key, "action": "device_status"}
    if how == "query":
        return invoke(make_event("GET", "/myAPI.php", source_ip, headers,
                                 {k: [v] for k, v in values.items()}))
    return invoke(make_event("POST", "/myAPI.php", source_ip, {
        "Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        body=urlencode(values)))


@pytest.mark.parametrize("door", sorted(FRONT_DOORS))
@pytest.mark.parametrize("how", ["form", "query"])
def test_whitelist_reads_the_request_context_not_headers(door, how, account):
    make_event = FRONT_DOORS[door]
    acct, key, _, _ = account
    accounts.set_whitelist(acct.account_id, ["203.0.113.0/24", "2001:db8::/32"])
    status, body = compat(make_event, "198.51.100.7", key, SPOOF, how)
    assert status == 200 and body["status"] == "error", body
    assert body["data"]["error_code"] == "forbidden" and "198.51.100.7" in body["message"]
    for allowed in ("203.0.113.200", "2001:db8:1::5"):
        status, body = compat(make_event, allowed, key, how=how)
        assert body["status"] == "success", (door, allowed, body)
    accounts.set_whitelist(acct.account_id, [])
    assert compat(make_event, "198.51.100.7", key, how=how)[1]["status"] == "success"


@pytest.mark.parametrize("door", sorted(FRONT_DOORS))
def test_device_protocol_through_each_front_door(door, account):
    from chalicelib.domain import messages
    make_event = FRONT_DOORS[door]
    acct, _, device, token = account
    sent = messages.send(acct.account_id, device, "+8801712345678", "Hi").message.message_id
    auth = {"Authorization": f"Bearer {token}"}
    status, body = invoke(make_event("GET", "/device/jobs", "198.51.100.7", auth,
                                     {"wait": ["0"], "max": ["10"]}))
    assert status == 200 and [j["message_id"] for j in body["jobs"]] == [sent], body
    status, body = invoke(make_event("POST", "/device/reports", "198.51.100.7", {
        **auth, "Content-Type": "application/json"}, body=json.dumps(
            {"reports": [{"message_id": sent, "status": "sent"},
                         {"message_id": sent, "status": "delivered"}]})))
    assert status == 200 and [r["result"] for r in body["results"]] == ["ok", "ok"], body
    status, body = invoke(make_event("POST", "/device/heartbeat", "198.51.100.7", auth,
                                     body=json.dumps({"app_state": "running"})))
    assert status == 200 and body["status"] == "running", body
