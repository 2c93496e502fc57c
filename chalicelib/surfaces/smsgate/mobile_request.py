"""What every /mobile/v1 handler shares (mobile.py routes, mobile_messages.py, mobile_webhooks.py):
the request as the app sends it, the app-version rule, the answer's shape and the app's names
for events. A module of its own so the handlers import it and mobile.py imports them, one way.
"""
import json
import re
from dataclasses import dataclass

from chalicelib.core import settings
from chalicelib.core.errors import BadRequest, GatewayError, Unauthorized
from chalicelib.domain import devices
from chalicelib.surfaces import jsonbody
from chalicelib.surfaces.request import HttpRequest

PREFIX = "/mobile/v1"
MIN_VERSION = (1, 53, 0)
USER_AGENT = re.compile(r"me\.capcom\.smsgateway/([0-9]{1,4})\.([0-9]{1,4})(?:\.([0-9]{1,4}))?")
MAX_BODY_BYTES = 256 * 1024
MAX_SIM_CARDS = 8
JSON_HEADERS = {"Content-Type": "application/json"}
UPGRADE = 426
# The events of the app's webhooks we act on (WebHookEvent.kt), and those GET /webhooks hands
# out: not sms:sent|delivered|failed, which PATCH /message already carries (a second request
# per state per SMS); the receiver still takes them from an app set up by hand.
APP_EVENTS = ("sms:received", "sms:data-received", "sms:sent", "sms:delivered", "sms:failed",
              "system:ping")
HANDED_OUT = ("sms:received", "sms:data-received", "system:ping")


class TooOld(GatewayError):
    code = "app_too_old"
    http_status = UPGRADE


def app_version(headers: dict) -> str | None:
    """The app version in the User-Agent; TooOld (426) for one before SSE-only push. Clients
    that are not the app's ktor client (its SSE connection is plain OkHttp) pass."""
    match = USER_AGENT.search(headers.get("user-agent", ""))
    if not match:
        return None
    version = tuple(int(part or 0) for part in match.groups())
    shown = ".".join(str(part) for part in version)
    if version < MIN_VERSION:
        raise TooOld(f"SMSGate app {shown} is too old for this gateway: update the app to "
                     f"1.53.0 or newer (it needs the server-sent events channel, "
                     f"Settings > Cloud server > Notification channel: SSE only).",
                     "user-agent")
    return shown


def base_url(headers: dict, context: dict | None) -> str:
    """This gateway's public URL (no trailing slash): SMSGW_PUBLIC_URL if set, else API
    Gateway's or the function URL's domain (and a REST API's stage), else the Host asked for."""
    if settings.current().public_url:
        return settings.current().public_url
    context = context or {}
    domain = context.get("domainName") or ""
    if domain and domain != "localhost" and not domain.startswith("127."):
        stage = context.get("stage") or ""
        on_execute_api = ".execute-api." in domain and stage not in ("", "$default")
        return f"https://{domain}" + (f"/{stage}" if on_execute_api else "")
    return f"http://{headers.get('host') or 'localhost'}"


@dataclass(frozen=True)
class AppRequest:
    """A request of SMSGate's app: the HTTP request, its query one value a name, and the app
    version its User-Agent gives (None: not the app's ktor client)."""
    http: HttpRequest
    query: dict
    version: str | None

    @property
    def route(self) -> str:
        """The route below /mobile/v1, e.g. /device."""
        return self.http.route.removeprefix(PREFIX)

    def __getattr__(self, name):  # method, headers, body, path_params, source_ip: the HTTP's
        if name == "http":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.http, name)

    def authorization(self) -> tuple[str, str]:
        scheme, _, value = self.headers.get("authorization", "").strip().partition(" ")
        return scheme.lower(), value.strip()

    def device(self):
        scheme, token = self.authorization()
        if scheme != "bearer" or not token:
            raise Unauthorized("Missing device token: send Authorization: Bearer <token>.",
                               "authorization")
        return devices.authenticate(token)

    def json(self, max_bytes: int = MAX_BODY_BYTES):
        jsonbody.check_size(self.body, max_bytes)
        if not self.body:
            raise BadRequest("Missing JSON body.", None)
        kind = self.headers.get("content-type", "application/json").split(";")[0].strip()
        if kind.lower() not in ("application/json", ""):
            raise BadRequest(f"Unsupported content type {kind[:60]}: send application/json.",
                             "content-type")
        return jsonbody.parse(self.body, max_bytes)

    def no_query(self):
        if self.query:
            name = sorted(self.query)[0]
            raise BadRequest(f"Unknown parameter: {name}.", name)

    @property
    def server_url(self) -> str:
        return base_url(self.headers, self.http.context) + PREFIX


def error_answer(error: GatewayError, request=None) -> tuple[int, dict, str]:
    """SMSGate's app reads `{"message"}`; our code and parameter ride along (and X-Error-Code,
    as our other APIs give it). An app too old is 426."""
    headers = {**JSON_HEADERS, "X-Error-Code": error.code}
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="smsgw-mobile"'
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return error.http_status, headers, json.dumps({"message": error.message, "code": error.code,
                                                    "parameter": error.parameter})


def answer(status: int, body=None):
    if body is None:
        return status, {}, ""
    return status, dict(JSON_HEADERS), json.dumps(body)
