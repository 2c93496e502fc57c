"""The owner's dashboard at /dashboard/: HTML pages over the same domain functions as the API.

Imported only by dashboard routes (app.py imports it inside them), so the public API's cold
start never loads it, Jinja2, argon2 or segno. `handle` maps (method, path parts) to a page;
every page but the signed-out ones (access.PUBLIC: sign-in, sign-up, verify, forgot,
set-password, join) and static files needs a live session whose role is at least the one the
access table (access.py) names for the route, and every POST must carry the session's CSRF
token (or, signed out, the double-submit token) and, when the browser sends one, this
gateway's Origin.
"""
import re

from chalicelib.core.errors import GatewayError, NotFound, Suspended
from chalicelib.domain import roles, sessions
from chalicelib.surfaces import answers
from chalicelib.surfaces.dashboard import (
    access,
    account_pages,
    csv_pages,
    insight_pages,
    leaving_pages,
    operator_pages,
    opt_out_pages,
    phone_pages,
    signup_pages,
    team_pages,
    web,
    webhook_pages,
)
from chalicelib.surfaces.dashboard.web import PageRequest
from chalicelib.surfaces.request import HttpRequest

# (method, path pattern) -> page; "*" matches one path part, passed to the page in order.
ROUTES = {}
# Public forms whose proof is a secret in the path, not the signed-out form token nor the
# Origin: a mail client's one-click unsubscribe POST (RFC 8058) has no cookie, and a webmail
# may send it with its own Origin.
TOKEN_IN_PATH = {"unsubscribe"}
PART = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def _register(module):
    for (method, pattern), page in module.PAGES.items():
        ROUTES[(method, pattern)] = page


_register(account_pages)
_register(phone_pages)
_register(webhook_pages)
_register(insight_pages)
_register(csv_pages)
_register(signup_pages)
_register(opt_out_pages)
_register(team_pages)
_register(leaving_pages)
_register(operator_pages)
# Pages a signed-in user reaches whatever their account's state (domain/operators.py): the
# operator's console, and signing out. Every other page of a suspended account is refused.
ACCOUNTLESS = {"operator", "signout"}


def _match(method: str, parts: tuple):
    for (route_method, pattern), page in ROUTES.items():
        if route_method == method and len(pattern) == len(parts) and all(
                p == "*" or p == part for p, part in zip(pattern, parts, strict=True)):
            return page, pattern, [part for p, part in zip(pattern, parts, strict=True)
                                   if p == "*"]
    return None, None, None


def not_found(request: PageRequest):
    return web.render(request, "error.html", 404, title="Not found",
                      message="There is no such page in your dashboard.")


def refused(request: PageRequest, message: str):
    return web.render(request, "error.html", 403, title="Refused", message=message)


def role_refused(request: PageRequest, needed: str):
    """A member whose role is below the route's: nothing ran; say which role it needs."""
    return web.render(request, "error.html", 403, title="Your role does not allow this",
                      message=f"This needs the {needed} role"
                              + (" or higher" if needed != roles.OWNER else "")
                              + f"; you are a {request.session.role} of this account. Ask an "
                                "owner of the account (see Team) if you need it. Nothing "
                                "was changed.")


def handle(request: HttpRequest):
    """Answer one dashboard request: (http_status, headers, body text)."""
    return answers.guarded(_handle, PageRequest.of(request), error_page)


def error_page(error: GatewayError, request: PageRequest):
    """The dashboard's one error answer: a page, never a traceback, with the error's status
    (web.failed). Not found is the same page whether it is another account's or nobody's."""
    if isinstance(error, NotFound):
        return web.failed(error, not_found(request))
    title = "Account suspended" if isinstance(error, Suspended) else "Something went wrong"
    return web.failed(error, web.render(request, "error.html", title=title,
                                        message=error.message))


def _account_stop(request: PageRequest):
    """An operator in no account goes to the console; a suspended account's pages are refused
    (one GetItem of the account per page: at once, not after a cache)."""
    from chalicelib.domain import accounts, operators
    if request.session.account_id == operators.NO_ACCOUNT:
        return web.redirect(request, "/operator")
    try:
        accounts.refuse_suspended(accounts.get_account(request.session.account_id))
    except GatewayError as error:
        return error_page(error, request)
    return None


def _handle(request: PageRequest):
    if request.parts and request.parts[0] == "static" and len(request.parts) == 2 \
            and request.method == "GET":
        return web.static(request, request.parts[1])
    if not all(PART.match(part) for part in request.parts):
        return not_found(request)
    page, pattern, args = _match(request.method, request.parts)
    if page is None:
        return not_found(request)
    needed = access.needed(request.method, pattern)
    request.session = sessions.find(request.cookie(web.SESSION_COOKIE))
    if request.method == "POST":
        if not web.same_origin(request) and request.parts[0] not in TOKEN_IN_PATH:
            return refused(request, "This form was sent from another site.")
        try:
            request.form = web.parse_form(request)
        except (ValueError, UnicodeDecodeError):
            return web.render(request, "error.html", 400, title="Bad form",
                              message="The form could not be read.")
    if needed != access.PUBLIC:
        if request.session is None:
            if request.method == "GET":
                return web.redirect(request, "/signin")
            return refused(request, "You are signed out. Sign in and try again.")
        if request.method == "POST" and not sessions.csrf_ok(request.session,
                                                             request.form.get("csrf")):
            return refused(request, "This form has expired (missing or wrong security "
                                    "token). Go back, reload the page and try again.")
        if not request.parts or request.parts[0] not in ACCOUNTLESS:
            stop = _account_stop(request)
            if stop is not None:
                return stop
        if not roles.allows(request.session.role, needed):
            return role_refused(request, needed)
    elif request.method == "POST" and request.parts[0] not in TOKEN_IN_PATH \
            and not web.token_equal(request.cookie(web.PRE_COOKIE), request.form.get("csrf")):
        return refused(request, "This form has expired (missing or wrong security token). "
                                "Reload the page and try again.")
    return page(request, *args)
