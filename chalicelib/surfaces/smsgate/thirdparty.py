"""SMSGate's client API (`/3rdparty/v1`): what its client libraries (android-sms-gateway on PyPI
and npm, client-go) and integrations call, on our domain. Derived from their source; see
docs/smsgate.md for what was read and what differs.

Auth is HTTP Basic (login: the account id, password: one of its API keys) or `Bearer <api
key>`, through `accounts.authenticate`: the same key hashing, revocation and IP whitelist as
every other surface. Errors are SMSGate's `{"message", "code", "data"}` with our error code in
`data`. An SMSGate message with several recipients is a group (domain/messages/groups.py);
states come from surfaces/smsgate/states.py, the one translation both SMSGate faces share.
"""
from chalicelib.surfaces import answers
from chalicelib.surfaces.request import HttpRequest
from chalicelib.surfaces.smsgate import thirdparty_routes
from chalicelib.surfaces.smsgate.thirdparty_request import answer, caller_of, error_answer


def handle(request: HttpRequest) -> tuple[int, dict, str]:
    """Answer one /3rdparty/v1 request: (http status, headers, body text)."""
    return answers.guarded(_answer, request, error_answer)


def _answer(request: HttpRequest):
    action, args, public = thirdparty_routes.find(request.method, request.parts)
    caller = None if public else caller_of(request.headers, request.source_ip)
    return answer(*action(caller, request.query_lists(), request.body, *args))
