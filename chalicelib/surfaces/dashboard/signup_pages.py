"""Dashboard pages a signed-out person uses on their own: sign up and verify the email
(domain/signup.py), and a forgotten password (domain/password_reset.py; its link opens the
set-password page of account_pages). Every answer that follows an email is the same whether
or not the email has an account."""
from chalicelib.core import settings
from chalicelib.core.errors import Forbidden, GatewayError
from chalicelib.domain import password_reset, sessions, signup, users
from chalicelib.surfaces.dashboard import web


def _dashboard_url(request) -> str:
    """The dashboard's URL for links in mails: the public URL, or API Gateway's domain (never
    the Host header on AWS; only the local gateway has no other)."""
    return request.base_url + "/dashboard"


def _closed(request):
    if settings.current().signup == "invite":
        return web.render(request, "error.html", 403, title="Sign-up by invitation only",
                          message="This gateway takes new people by invitation only: ask an "
                                  "owner of an account to invite you (Team in their "
                                  "dashboard); the mailed link lets you join.")
    return web.render(request, "error.html", 403, title="Sign-up is closed",
                      message="This gateway does not take sign-ups: its operator creates "
                              "accounts.")


def signup_form(request, error=None, status=200, **values):
    if request.session is not None and error is None:
        return web.redirect(request, "/")
    if not signup.is_open():
        return _closed(request)
    token, cookie = web.pre_token(request)
    return web.render(request, "signup.html", status, cookies=[cookie], pre=token, error=error,
                      title="Create an account", min_length=users.MIN_PASSWORD,
                      email=values.get("email", ""), account_name=values.get("account_name",
                                                                               ""))


def signup_submit(request):
    form = request.form
    try:
        email = signup.sign_up(form.get("email"), form.get("password"), form.get("confirm"),
                               form.get("account_name"), request.source_ip,
                               _dashboard_url(request))
    except GatewayError as error:
        if isinstance(error, Forbidden):
            return _closed(request)
        return web.failed(error, signup_form(request, error.message,
                                             email=form.get("email", ""),
                                             account_name=form.get("account_name", "")))
    return web.render(request, "check_mail.html", title="Check your mail", email=email,
                      what="verify your email and open your dashboard",
                      within=f"{signup.LINK_HOURS} hours")


def verify_form(request):
    token = request.query.get("token") or ""
    try:
        link = signup.pending(token)
    except GatewayError as failure:
        return web.link_not_valid(request, failure)
    pre, cookie = web.pre_token(request)
    return web.render(request, "verify.html", cookies=[cookie], pre=pre, token=token,
                      email=link.email, account_name=link.account_name,
                      title="Verify your email")


def verify_submit(request):
    try:
        user = signup.verify(request.form.get("token"))
    except GatewayError as failure:
        return web.link_not_valid(request, failure)
    if request.session is not None:
        sessions.end(request.session)
    token = sessions.start(user)
    return web.redirect(request, "/", done="email-verified", cookies=[
        web.set_cookie(request, web.SESSION_COOKIE, token, max_age=sessions.LIFETIME_SECONDS)])


def forgot_form(request, error=None, status=200, email=""):
    token, cookie = web.pre_token(request)
    return web.render(request, "forgot.html", status, cookies=[cookie], pre=token, error=error,
                      email=email or request.query.get("email", ""), title="Forgot password")


def forgot_submit(request):
    try:
        email = password_reset.request_reset(request.form.get("email"), request.source_ip,
                                             _dashboard_url(request))
    except GatewayError as error:
        return web.failed(error, forgot_form(request, error.message,
                                             email=request.form.get("email", "")))
    return web.render(request, "check_mail.html", title="Check your mail", email=email,
                      what="choose a new password",
                      within=f"{password_reset.LINK_MINUTES} minutes")


PAGES = {
    ("GET", ("signup",)): signup_form, ("POST", ("signup",)): signup_submit,
    ("GET", ("verify",)): verify_form, ("POST", ("verify",)): verify_submit,
    ("GET", ("forgot",)): forgot_form, ("POST", ("forgot",)): forgot_submit,
}
