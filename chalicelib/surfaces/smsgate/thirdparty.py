"""SMSGate's client API (`/3rdparty/v1`): what its client libraries (android-sms-gateway on PyPI
and npm, client-go) and integrations call, on our domain. Derived from their source; see
docs/smsgate.md for what was read and what differs.

Auth is HTTP Basic (login: the account id, password: one of its API keys) or `Bearer <api
key>`, through `accounts.authenticate`: the same key hashing, revocation and IP whitelist as
every other surface. Errors are SMSGate's `{"message", "code", "data"}` with our error code in
`data`. An SMSGate message with several recipients is a group (domain/messages/groups.py);
states come from surfaces/smsgate/states.py, the one translation both SMSGate faces share.
"""
import logging

from chalicelib.core.errors import GatewayError, from_unexpected
from chalicelib.surfaces.smsgate import thirdparty_routes
from chalicelib.surfaces.smsgate.thirdparty_request import (
    answer,
    caller_of,
    error_answer,
)

log = logging.getLogger("smsgw")


def handle(method: str, parts: tuple, query: dict | None, headers: dict, body: bytes | None,
           source_ip: str | None) -> tuple[int, dict, str]:
    """Answer one /3rdparty/v1 request: (http status, headers, body text)."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    try:
        try:
            action, args, public = thirdparty_routes.find(method, parts)
            caller = None if public else caller_of(headers, source_ip)
            return answer(*action(caller, query, body, *args))
        except GatewayError:
            raise
        except Exception as exc:  # storage trouble: retryable, without internals
            error = from_unexpected(exc)
            if error.code == "internal_error":
                log.exception("unexpected error in %s /3rdparty/v1/%s", method, "/".join(parts))
            raise error
    except GatewayError as error:
        status, shown = error_answer(error)
        extra = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
        extra["X-Error-Code"] = error.code  # as our other APIs (and logs) give it
        if status == 401:
            extra["WWW-Authenticate"] = 'Basic realm="smsgw"'
        return answer(status, extra, shown)
