"""Dashboard pages about the account: sign-in and sign-out, set password, overview, API keys,
IP whitelist, profile, and how to call the API."""
from chalicelib.core import clock, settings
from chalicelib.core.errors import Conflict, GatewayError
from chalicelib.core.text import ascii_int
from chalicelib.domain import accounts, devices, sessions, signup, users
from chalicelib.domain.messages.search import Filters, search
from chalicelib.surfaces.dashboard import web

# Rotation overlaps offered: (seconds, label).
OVERLAPS = [(0, "none: the old key stops now"), (3600, "1 hour"), (86400, "24 hours"),
            (7 * 86400, "7 days")]
NOTICES = {
    "signed-out": "You are signed out.",
    "signed-out-everywhere": "You are signed out on every device.",
    "left": "You left the account, and are signed out.",
    "joined": "Welcome: you joined the account. Your role shows under Team.",
    "password-set": "Your password is set. Sign in with it.",
    "account-deleted": "The account is deleted: its keys, phones and sessions no longer work, "
                       "and its data is being purged.",
    "email-verified": "Your email is verified and your account created. Make an API key to "
                      "start.",
    "key-revoked": "The key is revoked: the API refuses it within {cache} seconds.",
    "whitelist-saved": "The whitelist is saved: the API applies it within {cache} seconds.",
    "phone-removed": "The phone is removed and its queue deleted.",
    "pace-saved": "Pacing saved: the phone's next messages keep its window and SIM rate.",
    "webhook-enabled": "The endpoint is enabled: new events are sent to it again.",
    "webhook-disabled": "The endpoint is disabled: its events are logged as skipped.",
    "webhook-removed": "The endpoint is removed; deliveries queued for it are dropped.",
    "webhook-redelivered": "The event is queued again: its delivery shows in the log below.",
}


def notice(request) -> str | None:
    text = NOTICES.get(request.query.get("done", ""))
    return text.format(cache=settings.current().auth_cache_seconds) if text else None


# --- signed out ----------------------------------------------------------------------------

def signin_form(request, error=None, email="", status=200):
    if request.session is not None and error is None:
        return web.redirect(request, "/")
    token, cookie = web.pre_token(request)
    return web.render(request, "signin.html", status, cookies=[cookie], pre=token, error=error,
                      email=email, notice=notice(request), title="Sign in",
                      signup_open=signup.is_open())


def signin(request):
    email = request.form.get("email", "")
    try:
        user = users.check_signin(email, request.form.get("password"), request.source_ip,
                                  request.cookie(web.BROWSER_COOKIE))
        token = sessions.start(user)
    except GatewayError as error:
        return web.failed(error, signin_form(request, error.message, email))
    if request.session is not None:
        sessions.end(request.session)
    browser = users.remember_browser(user.email, request.cookie(web.BROWSER_COOKIE))
    return web.redirect(request, "/", cookies=[
        web.set_cookie(request, web.SESSION_COOKIE, token, max_age=sessions.LIFETIME_SECONDS),
        web.set_cookie(request, web.BROWSER_COOKIE, browser,
                       max_age=users.BROWSER_DAYS * 86400)])


def signout(request):
    if request.form.get("everywhere"):
        sessions.end_all(request.session)
        done = "signed-out-everywhere"
    else:
        sessions.end(request.session)
        done = "signed-out"
    return web.redirect(request, "/signin", cookies=[web.set_cookie(
        request, web.SESSION_COOKIE, "", max_age=0)], done=done)


def set_password_form(request, error=None, status=200):
    token = request.query.get("token") or request.form.get("token") or ""
    try:
        user = users.link_user(token)
    except GatewayError as failure:
        return web.link_not_valid(request, failure)
    pre, cookie = web.pre_token(request)
    return web.render(request, "set_password.html", status, cookies=[cookie], pre=pre,
                      token=token, email=user.email, error=error, title="Set your password",
                      min_length=users.MIN_PASSWORD)


def set_password(request):
    try:
        users.set_password(request.form.get("token"), request.form.get("password"),
                           request.form.get("confirm"))
    except GatewayError as error:
        if error.parameter == "token":
            return web.link_not_valid(request, error)
        return web.failed(error, set_password_form(request, error.message))
    return web.redirect(request, "/signin", done="password-set")


# --- signed in -----------------------------------------------------------------------------

def home(request):
    account_id = request.session.account_id
    phones = [devices.describe(d) for d in devices.list_devices(account_id)]
    recent = search(account_id, Filters(kind="outgoing"), limit=5).items
    keys = [k for k in accounts.list_keys(account_id) if not accounts.key_revoked(k)]
    account = accounts.get_account(account_id)
    from chalicelib.surfaces.dashboard import insight_pages  # the charts: one Query
    return web.render(request, "home.html", title="Overview", account=account, phones=phones,
                      running=sum(p["status"] == "running" for p in phones), recent=recent,
                      live_keys=len(keys), notice=notice(request),
                      insight=insight_pages.overview(account_id))


def _key_rows(account_id):
    now = clock.now_ms()
    rows = []
    for key in sorted(accounts.list_keys(account_id), key=lambda k: -k.created_at):
        state = "active"
        if key.revoked_at is not None:
            state = "revoked" if key.revoked_at <= now else "expiring"
        rows.append({"key": key, "state": state})
    return rows


def keys_page(request, new_key=None, new_label=None, error=None, status=200, replaced=None):
    return web.render(request, "keys.html", status, title="API keys",
                      rows=_key_rows(request.session.account_id), new_key=new_key,
                      new_label=new_label, error=error, overlaps=OVERLAPS, replaced=replaced,
                      notice=notice(request), cache=settings.current().auth_cache_seconds)


def key_create(request):
    label = (request.form.get("label") or "").strip()
    if not label or len(label) > 60:
        return keys_page(request, error="Give the key a label of 1-60 characters (what uses "
                                        "it, e.g. 'web shop').", status=400)
    plain, record = accounts.create_key(request.session.account_id, label)
    return keys_page(request, new_key=plain, new_label=record.label)


def key_revoke(request, key_id):
    accounts.revoke_key(request.session.account_id, key_id)
    return web.redirect(request, "/keys", done="key-revoked")


def key_rotate(request, key_id):
    try:
        overlap = ascii_int(request.form.get("overlap", ""))
    except ValueError:
        overlap = -1
    if overlap not in dict(OVERLAPS):
        return keys_page(request, error="Choose how long the old key keeps working.",
                         status=400)
    try:
        plain, new, old = accounts.rotate_key(request.session.account_id, key_id, overlap)
    except Conflict as error:
        return keys_page(request, error=error.message, status=409)
    return keys_page(request, new_key=plain, new_label=new.label,
                     replaced={"key_id": old.key_id, "until": clock.fmt(old.revoked_at)})


def _whitelist_view(request, error=None, entry="", status=200):
    account = accounts.get_account(request.session.account_id)
    entries = list(account.ip_whitelist or [])
    you = request.source_ip or ""
    return web.render(request, "whitelist.html", status, title="IP whitelist", entries=entries,
                      you=you, you_allowed=accounts.ip_allowed(you, entries), error=error,
                      entry=entry, notice=notice(request),
                      cache=settings.current().auth_cache_seconds)


def whitelist_page(request):
    return _whitelist_view(request)


def whitelist_change(request):
    account = accounts.get_account(request.session.account_id)
    entries = list(account.ip_whitelist or [])
    if request.form.get("remove"):
        remaining = [e for e in entries if e != request.form["remove"]]
        accounts.set_whitelist(account.account_id, remaining)
        return web.redirect(request, "/whitelist", done="whitelist-saved")
    entry = (request.form.get("entry") or "").strip()
    if not entry:
        return _whitelist_view(request, "Enter an IP address (203.0.113.7, 2001:db8::1) or a "
                                        "CIDR range (203.0.113.0/24).", entry, 400)
    try:
        [network] = accounts.parse_whitelist([entry])
    except GatewayError as error:  # (the CLI's --allow-wide has no dashboard twin)
        return web.failed(error, _whitelist_view(
            request, error.message.replace(" without --allow-wide", ""), entry))
    if not entries and not request.form.get("understood"):
        return _whitelist_view(request, "Tick the box to confirm: once this entry is saved, "
                                        "the API refuses every other address.", entry, 400)
    if network not in entries:
        accounts.set_whitelist(account.account_id, entries + [network])
    return web.redirect(request, "/whitelist", done="whitelist-saved")


def account_page(request):
    account = accounts.get_account(request.session.account_id)
    from chalicelib.domain.insight import alerts  # the alert mails' opt-in
    return web.render(request, "account.html", title="Profile", account=account,
                      email=request.session.email, notice=notice(request),
                      alerts_on=alerts.subscribed(account.account_id, request.session.email))


def api_page(request):
    phones = devices.list_devices(request.session.account_id)
    return web.render(request, "api.html", title="How to call the API",
                      base=request.base_url,
                      device_uid=phones[0].device_uid if phones else "DEVICE_UID")


PAGES = {
    ("GET", ("signin",)): signin_form, ("POST", ("signin",)): signin,
    ("POST", ("signout",)): signout,
    ("GET", ("set-password",)): set_password_form, ("POST", ("set-password",)): set_password,
    ("GET", ()): home,
    ("GET", ("keys",)): keys_page, ("POST", ("keys",)): key_create,
    ("POST", ("keys", "*", "revoke")): key_revoke, ("POST", ("keys", "*", "rotate")): key_rotate,
    ("GET", ("whitelist",)): whitelist_page, ("POST", ("whitelist",)): whitelist_change,
    ("GET", ("account",)): account_page,
    ("GET", ("api",)): api_page,
}
