"""Issue 32, item 2: every surface's handle() takes the one request value app.py builds, and its
errors are answered by its style's one mapper, from the error's `http_status` and `code`."""
import ast
import base64
import inspect
import json
import re
from pathlib import Path

import pytest

from chalicelib.core import errors
from chalicelib.domain import messages, pacing
from chalicelib.surfaces import answers, compat_api, dashboard, device_api, pairing_api, rest_v1
from chalicelib.surfaces.dashboard.web import PageRequest
from chalicelib.surfaces.request import HttpRequest
from chalicelib.surfaces.smsgate import (
    mobile,
    mobile_request,
    states,
    thirdparty,
    thirdparty_request,
)
from tests.api import test_faults

dynamodb_fault = test_faults.dynamodb_fault  # the fixture: DynamoDB calls fail as AWS's would

SURFACES = (compat_api, device_api, pairing_api, rest_v1, thirdparty, mobile, dashboard)


def _all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_subclasses(sub)


def _make(kind):
    """One error of `kind`, as the code raises it."""
    if kind is errors.InvalidOtp:
        return kind()
    if kind is pacing.AtCapacity:
        return kind(free_at=61_000, now=1_000)
    if kind is errors.QuotaExceeded:  # a quota of a period: 429, when it resets
        return kind("Something was wrong.", quota="messages_per_day", limit=5,
                    resets_at=86_400_000, retry_after=7, parameter="phone_number")
    return kind("Something was wrong.", "phone_number", retry_after=7)


ERROR_CLASSES = sorted({errors.GatewayError, *_all_subclasses(errors.GatewayError)},
                       key=lambda kind: kind.__qualname__)


@pytest.mark.parametrize("surface", SURFACES, ids=lambda s: s.__name__)
def test_every_surface_takes_the_one_request_value(surface):
    parameters = list(inspect.signature(surface.handle).parameters.values())
    assert [(p.name, p.annotation) for p in parameters] == [("request", HttpRequest)]


def test_the_request_value_is_normalised_once():
    request = HttpRequest.of("post", "/dashboard/{page}/{item}",
                             path_params={"item": "x", "page": "keys"},
                             headers={"Content-Type": "text/plain", "X-API-Key": "k"},
                             query={"a": "1", "b": ["2", "3"]})
    assert request.method == "POST" and request.parts == ("keys", "x")
    assert dict(request.headers) == {"content-type": "text/plain", "x-api-key": "k"}
    assert request.query_lists() == {"a": ["1"], "b": ["2", "3"]}
    assert request.last_values() == {"a": "1", "b": "3"}
    with pytest.raises(TypeError):
        request.headers["x"] = "y"  # read-only: no surface edits another's view
    assert HttpRequest.of("GET", "/device/jobs").endpoint == "jobs"


@pytest.mark.parametrize("kind", ERROR_CLASSES, ids=lambda k: k.__name__)
def test_each_style_answers_each_error_class_from_its_attributes(kind):
    error = _make(kind)
    status = error.http_status

    compat = answers.compat(error)
    body = json.loads(compat[2])
    assert compat[0] == 200 and compat[1]["X-Error-Code"] == error.code
    assert body["status"] == "error" and body["message"] == error.message
    assert body["data"] is None if error.bare else body["data"]["error_code"] == error.code

    device = answers.device(error)
    assert device[0] == status and json.loads(device[2])["error"]["code"] == error.code

    problem = answers.problem(error)
    expected = 422 if status == 400 and not error.malformed else status
    assert problem[0] == expected == json.loads(problem[2])["status"]
    assert problem[1]["Content-Type"] == "application/problem+json"

    client = thirdparty_request.error_answer(error)
    assert client[0] == status == json.loads(client[2])["code"]  # no code of these is renamed
    app = mobile_request.error_answer(error)
    assert app[0] == status and json.loads(app[2])["code"] == error.code

    page = dashboard.error_page(error, PageRequest.of(HttpRequest.of("GET", "/dashboard")))
    assert page[0] == status  # was 400 for all but not found (404) and retryable (503)
    assert page[1]["Content-Type"].startswith("text/html") and error.message in page[2] \
        or isinstance(error, errors.NotFound)  # one page for another account's and nobody's

    for answer in (compat, device, problem, client, app, page):
        if error.retry_after is not None:
            assert answer[1]["Retry-After"] == str(error.retry_after)


def test_rest_v1_statuses_follow_the_classes_not_their_names():
    """A subclass keeps its family's status (pacing.Busy was 422 through the name table)."""
    assert answers.problem(pacing.Busy("try again", retry_after=1))[0] == 503
    assert answers.problem(pacing.AtCapacity(free_at=61_000, now=1_000))[0] == 429
    assert answers.problem(errors.Malformed("x"))[0] == 400
    assert answers.problem(errors.BadRequest("x"))[0] == 422
    assert answers.problem(errors.MethodNotAllowed("x", allow="GET"))[1]["Allow"] == "GET"


def _basic(login, key):
    return "Basic " + base64.b64encode(f"{login}:{key}".encode()).decode()


# A request each surface refuses, and the style that must answer it.
REFUSED = [
    (compat_api, "compat", answers, HttpRequest.of("DELETE", "/myAPI.php"), 200),
    (device_api, "device", answers, HttpRequest.of("GET", "/device/jobs"), 401),
    (pairing_api, "device", answers, HttpRequest.of("POST", "/device/pair"), 400),
    (rest_v1, "problem", answers, HttpRequest.of("DELETE", "/v1/otp"), 405),
    (thirdparty, "error_answer", thirdparty,
     HttpRequest.of("GET", "/3rdparty/v1/{a}", path_params={"a": "messages"},
                    headers={"Authorization": _basic("nobody", "wrong")}), 401),
    (mobile, "error_answer", mobile,
     HttpRequest.of("GET", "/mobile/v1/device",
                    headers={"User-Agent": "me.capcom.smsgateway/1.40.0"}), 426),
    (dashboard, "error_page", dashboard,
     HttpRequest.of("GET", "/dashboard/{page}", path_params={"page": "keys"},
                    headers={"Cookie": "smsgw_session=x"}), 503),
]


@pytest.mark.parametrize("surface, name, holder, request_, status", REFUSED,
                         ids=[r[0].__name__ for r in REFUSED])
def test_each_surface_answers_its_errors_through_its_styles_one_mapper(
        surface, name, holder, request_, status, aws_mock, monkeypatch, dynamodb_fault):
    seen = []
    mapper = getattr(holder, name)

    def through(error, request=None):
        seen.append(error)
        return mapper(error, request)

    monkeypatch.setattr(holder, name, through)
    if surface is dashboard:  # DynamoDB fails the session's read: the unexpected error's page
        dynamodb_fault("GetItem", code="InternalServerError")
    answer = surface.handle(request_)
    assert len(seen) == 1 and answer == mapper(seen[0], None if surface is not dashboard
                                               else PageRequest.of(request_))
    assert answer[0] == status


def test_the_dashboard_answers_its_pages_errors_with_their_status(client, account,
                                                                 settings_override):
    """Through the app: a form shown again with its error, and the error page, answer the
    error's own status (and Retry-After), as the other styles; the page keeps its content."""
    from chalicelib.domain import devices, operators, users
    from tests.dashboard_helpers import PASSWORD, Visitor, owner
    acct, _, device, _ = account
    devices.heartbeat(device, "running")
    owner(acct.account_id, "owner@example.com")
    visitor = Visitor(client)
    assert visitor.sign_in("owner@example.com").status_code == 303
    settings_override(quota_messages_per_day=1)

    def try_sms():
        return visitor.submit("/dashboard/try/sms", {
            "phone": device.device_uid, "number": "+14155550105", "text": "hi", "sim": "1"},
            page="/dashboard/try")
    assert try_sms().status_code == 303
    refused = try_sms()  # a refused action: the quota of a day (was 400, no Retry-After)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Try it" in refused.body.decode() and "Quota exceeded" in refused.body.decode()
    wrong = visitor.submit("/dashboard/try/verify", {"number": "+14155550105", "code": "000000"},
                           page="/dashboard/try")
    assert wrong.status_code == 422 and "Invalid or Expired OTP." in wrong.body.decode()

    missing = visitor.get("/dashboard/messages/outgoing/nothing-here")  # a missing item
    assert missing.status_code == 404
    _, token = users.add(acct.account_id, "viewer@example.com", role="viewer")
    users.set_password(token, PASSWORD, PASSWORD)
    viewer = Visitor(client)
    assert viewer.sign_in("viewer@example.com").status_code == 303
    role = viewer.submit("/dashboard/keys", {"label": "x"}, page="/dashboard/keys")
    assert role.status_code == 403 and "needs the developer role" in role.body.decode()
    operators.suspend("op@example.com", acct.account_id)  # a suspended account
    suspended = visitor.get("/dashboard/keys")
    assert suspended.status_code == 403 and "Account suspended" in suspended.body.decode()


SMSGATE_WORDS = re.compile(r"^(Pending|Cancelling|Cancelled|Processed|Sent|Delivered|Failed"
                           r"|(sms|mms|system|app):[a-z:-]+)$")


def _string_literals(path: Path):
    """The string constants of a module, but docstrings and keys read from an AWS answer
    (SQS's batch answers have a `Failed` list: `answer.get("Failed")`, `answer["Failed"]`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node.body[0].value) for node in ast.walk(tree)
               if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
               and node.body and isinstance(node.body[0], ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript):
            skipped.add(id(node.slice))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get":
            skipped.update(id(arg) for arg in node.args[:1])
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skipped]


def test_smsgate_vocabulary_lives_only_in_its_surface():
    """SMSGate's state and event names are spelled in surfaces/smsgate/ alone: the layers below
    the surfaces speak our lifecycle (messages.Status) and our event types."""
    root = Path(__file__).resolve().parents[2] / "chalicelib"
    found = [(str(path.relative_to(root)), line, value)
             for layer in ("core", "storage", "domain") for path in (root / layer).rglob("*.py")
             for line, value in _string_literals(path) if SMSGATE_WORDS.match(value)]
    assert found == []


def test_the_domain_status_is_an_enum_stored_as_its_text():
    assert [str(s) for s in messages.Status] == ["pending", "processing", "sent", "delivered",
                                                 "failed", "expired", "cancelled"]
    assert json.dumps({"status": messages.Status.SENT}) == '{"status": "sent"}'
    assert states.to_smsgate("processing") is states.State.PROCESSED  # a stored string maps
    assert states.from_smsgate("Delivered") is messages.Status.DELIVERED
    assert set(states.TO_SMSGATE) == set(messages.Status)
