"""HTTP plumbing of the dashboard: the request it sees, cookies, CSRF, security headers, and
rendering templates (Jinja2 with autoescaping: everything interpolated is escaped unless a
template says otherwise, and none of ours does for user data)."""
import hmac
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape

from chalicelib.core import clock, settings

HERE = Path(__file__).resolve().parent
MAX_FORM_BYTES = 64 * 1024
# No inline script or style anywhere: scripts and styles come from /dashboard/static only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SESSION_COOKIE, PRE_COOKIE = "smsgw_session", "smsgw_pre"
BROWSER_COOKIE = "smsgw_browser"  # a browser that signed in before (users.remember_browser)

_env = Environment(loader=FileSystemLoader(HERE / "templates"),
                   autoescape=select_autoescape(["html"]), trim_blocks=True,
                   lstrip_blocks=True)
_env.filters["when"] = lambda ms: clock.fmt(ms) or "—"


@dataclass
class PageRequest:
    """A dashboard page's request: the HTTP request's parts, plus what the dashboard learns of
    it on the way (the form, the session)."""
    method: str
    parts: tuple
    query: dict
    headers: dict
    body: bytes | None
    source_ip: str | None
    context: dict
    route: str = "/dashboard"
    form: dict = field(default_factory=dict)
    session: object = None

    @classmethod
    def of(cls, http) -> "PageRequest":
        """From the one request value (surfaces/request.py): the query one value a name."""
        return cls(method=http.method, parts=http.parts, query=http.last_values(),
                   headers=http.headers, body=http.body, source_ip=http.source_ip,
                   context=http.context, route=http.route)

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def base_url(self) -> str:
        """This gateway's public URL, without a trailing slash: SMSGW_PUBLIC_URL if set, else
        API Gateway's domain and stage, else (local) the Host the browser used."""
        if settings.current().public_url:
            return settings.current().public_url
        domain = self.context.get("domainName") or ""
        if domain and domain != "localhost" and not domain.startswith("127."):
            on_execute_api = ".execute-api." in domain
            return f"https://{domain}" + (f"/{self._stage}" if self._stage and on_execute_api
                                          else "")
        host = self.headers.get("host") or "localhost"
        return f"http://{host}"

    @property
    def _stage(self) -> str:
        """The stage in the URL path: a REST API's (e.g. `api`); none on an HTTP API's
        `$default` stage, which serves at the root."""
        stage = self.context.get("stage") or ""
        return "" if stage == "$default" else stage

    @property
    def root(self) -> str:
        """The path prefix of the dashboard's links: the public URL's path, or the stage on an
        execute-api domain; never taken from the Host header."""
        if settings.current().public_url:
            path = settings.current().public_url.split("://", 1)[-1].partition("/")[2]
        else:
            domain = self.context.get("domainName") or ""
            path = self._stage if ".execute-api." in domain else ""
        path = "/".join(part for part in path.split("/") if part)
        return (f"/{path}" if path else "") + "/dashboard"

    def cookie(self, name: str) -> str | None:
        """The last `name=value` of the Cookie header (as SimpleCookie chose: a cookie tossed
        from a sibling domain with a longer Path is sent first, so it never wins). Read pair
        by pair: SimpleCookie stops at a cookie it cannot parse (another app's JSON value, a
        space), hiding ours."""
        found = None
        for pair in (self.headers.get("cookie") or "").split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key.strip() == name:
                found = value.strip()
        return found


def parse_form(request: PageRequest) -> dict:
    body = request.body or b""
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        return _multipart(request.headers["content-type"], body)
    if len(body) > MAX_FORM_BYTES:
        raise ValueError("form too large")
    if body and kind != "application/x-www-form-urlencoded":
        raise ValueError("unsupported form encoding")
    pairs = parse_qsl(body.decode("utf-8", "strict"), keep_blank_values=True)
    form = {}
    for name, value in pairs:
        form.setdefault(name, value)  # the first of a repeated field wins
    return form


def same_origin(request: PageRequest) -> bool:
    """A POST's Origin (browsers send it) must be this gateway: a second line behind CSRF tokens
    and SameSite=Strict."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    base = request.base_url
    return origin == base.split("://", 1)[0] + "://" + base.split("://", 1)[1].split("/", 1)[0]


def token_equal(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a, b)


def set_cookie(request: PageRequest, name: str, value: str, max_age: int | None = None) -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if request.secure:
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


def security_headers(request: PageRequest | None, content_type: str) -> dict:
    headers = {"Content-Type": content_type, "Content-Security-Policy": CSP,
               "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
               "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
               "Cross-Origin-Opener-Policy": "same-origin"}
    if request is not None and request.secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def pre_token(request: PageRequest) -> tuple[str, str | None]:
    """The double-submit token of the signed-out forms (sign in, set password): the cookie's
    value, or a new one with the Set-Cookie that stores it."""
    existing = request.cookie(PRE_COOKIE)
    if existing and 20 <= len(existing) <= 64:
        return existing, None
    token = secrets.token_urlsafe(24)
    return token, set_cookie(request, PRE_COOKIE, token, max_age=3600)


# File uploads (the CSV sends page): fields as text, a file field as bytes.
MAX_UPLOAD_BYTES = 256 * 1024


def _multipart(content_type: str, body: bytes) -> dict:
    import email.parser
    import email.policy
    if len(body) > MAX_UPLOAD_BYTES:
        raise ValueError("upload too large")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("malformed multipart form")
    form = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name or name in form:
            continue
        data = part.get_payload(decode=True) or b""
        form[name] = data if part.get_filename() is not None else data.decode("utf-8", "strict")
    return form


def _can(request: PageRequest):
    """For templates: whether the signed-in member's role allows what needs `role` (so a page
    offers only the actions the router would run; dashboard/access.py decides)."""
    from chalicelib.domain import roles
    return lambda role: request.session is not None and roles.allows(request.session.role, role)


def render(request: PageRequest, template: str, status: int = 200, cookies=(), **values):
    values.setdefault("session", request.session)
    values.setdefault("root", request.root)
    values.setdefault("csrf", getattr(request.session, "csrf_token", ""))
    values.setdefault("page", request.parts[0] if request.parts else "home")
    values.setdefault("can", _can(request))
    body = _env.get_template(template).render(**values)
    headers = security_headers(request, "text/html; charset=utf-8")
    cookies = [c for c in cookies if c]
    if cookies:
        headers["Set-Cookie"] = cookies if len(cookies) > 1 else cookies[0]
    return status, headers, body


def failed(error, page: tuple) -> tuple:
    """The dashboard's answer to a domain error: the page (an error page, or the form again with
    its message) answered with the error class's `http_status`, and Retry-After when it has
    one, as the other answer styles (surfaces/answers.py) answer it."""
    _, headers, body = page
    if error.retry_after is not None:
        headers = {**headers, "Retry-After": str(error.retry_after)}
    return error.http_status, headers, body


def link_not_valid(request: PageRequest, error) -> tuple:
    """The page for a mailed or printed one-time link that is spent, expired or unknown (410)."""
    return render(request, "error.html", 410, title="Link not valid", message=error.message)


def redirect(request: PageRequest, path: str, cookies=(), **query):
    location = request.root + path + (("?" + urlencode(query)) if query else "")
    headers = security_headers(request, "text/plain; charset=utf-8")
    headers["Location"] = location
    cookies = [c for c in cookies if c]
    if cookies:
        headers["Set-Cookie"] = cookies if len(cookies) > 1 else cookies[0]
    return 303, headers, ""


STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}


def static(request: PageRequest, name: str):
    path = (HERE / "static" / name)
    if path.suffix not in STATIC_TYPES or path.parent != HERE / "static" or not path.is_file():
        return render(request, "error.html", 404, title="Not found",
                      message="There is no such page.")
    headers = security_headers(request, STATIC_TYPES[path.suffix])
    headers["Cache-Control"] = "public, max-age=300"
    return 200, headers, path.read_text(encoding="utf-8")
