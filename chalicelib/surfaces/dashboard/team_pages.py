"""The Team page: the account's members and pending invitations; an owner invites by email
with a role, changes roles, removes members; every member may leave. The invitation's link
opens the signed-out join page (domain/members.py)."""
from chalicelib.core import clock
from chalicelib.core.errors import GatewayError
from chalicelib.domain import members, roles, sessions, users
from chalicelib.surfaces.dashboard import web

NOTICES = {"invited": "Invitation mailed to {email}: its link works once, within {days} days.",
           "role-set": "{email} is now a {role}; they sign in again to use it.",
           "removed": "{email} is removed from the account and signed out.",
           "revoked": "The invitation is withdrawn: its link no longer works."}


def team_page(request, error=None, status=200, form=None):
    account_id = request.session.account_id
    done = NOTICES.get(request.query.get("done", ""))
    rows = sorted(users.list_users(account_id), key=lambda u: (-roles.RANK[roles.of(u)],
                                                                 u.email))
    return web.render(request, "team.html", status, title="Team", error=error, form=form or {},
                      members=[{"email": u.email, "role": roles.of(u),
                                "joined": clock.fmt(u.created_at),
                                "password_set": u.password_hash is not None} for u in rows],
                      invitations=[{"email": i.email, "role": roles.of(i), "by": i.by,
                                    "id": i.token_hash, "until": clock.fmt(i.expires_at)}
                                   for i in members.pending_invitations(account_id)],
                      notice=done.format(days=members.LINK_DAYS, **request.query)
                      if done else None, roles=roles.ROLES, descriptions=roles.DESCRIPTIONS,
                      invitations_on=members.invitations_allowed(),
                      you=request.session.email)


def _answer(request, action, done, **query):
    try:
        action()
    except GatewayError as error:
        return web.failed(error, team_page(request, error.message, form=request.form))
    return web.redirect(request, "/team", done=done, **query)


def invite(request):
    form = request.form
    try:
        email = members.invite(request.session.account_id, request.session.email,
                               form.get("email"), form.get("role"),
                               dashboard_url=request.base_url + "/dashboard")
    except GatewayError as error:
        return web.failed(error, team_page(request, error.message, form=form))
    return web.redirect(request, "/team", done="invited", email=email)


def set_role(request):
    role = request.form.get("role")
    return _answer(request, lambda: members.set_role(request.session.account_id,
                                                     request.form.get("email"), role),
                   "role-set", email=request.form.get("email", ""), role=role or "")


def remove(request):
    return _answer(request, lambda: members.remove(request.session.account_id,
                                                   request.form.get("email")),
                   "removed", email=request.form.get("email", ""))


def revoke(request):
    return _answer(request, lambda: members.revoke_invitation(
        request.session.account_id, request.form.get("invitation")), "revoked")


def leave(request):
    try:
        members.remove(request.session.account_id, request.session.email)
    except GatewayError as error:
        return web.failed(error, team_page(request, error.message))
    return web.redirect(request, "/signin", cookies=[web.set_cookie(
        request, web.SESSION_COOKIE, "", max_age=0)], done="left")


# --- signed out: the invitation's link --------------------------------------------------------

def join_form(request, error=None, status=200):
    token = request.query.get("token") or request.form.get("token") or ""
    try:
        link = members.invitation(token)
    except GatewayError as failure:
        if failure.parameter != "token":
            return web.failed(failure, web.render(request, "error.html",
                                                  title="Invitations are off",
                                                  message=failure.message))
        return web.link_not_valid(request, failure)
    pre, cookie = web.pre_token(request)
    return web.render(request, "join.html", status, cookies=[cookie], pre=pre, token=token,
                      email=link.email, account_name=link.account_name, role=roles.of(link),
                      role_means=roles.DESCRIPTIONS[roles.of(link)], by=link.by, error=error,
                      title="Join the team", min_length=users.MIN_PASSWORD)


def join(request):
    try:
        user = members.join(request.form.get("token"), request.form.get("password"),
                            request.form.get("confirm"))
    except GatewayError as error:
        if error.parameter in ("password", "confirm"):
            return web.failed(error, join_form(request, error.message))
        return join_form(request)  # the link's own answer (spent, expired, email elsewhere)
    if request.session is not None:
        sessions.end(request.session)
    token = sessions.start(user)
    return web.redirect(request, "/", done="joined", cookies=[
        web.set_cookie(request, web.SESSION_COOKIE, token, max_age=sessions.LIFETIME_SECONDS)])


PAGES = {
    ("GET", ("team",)): team_page, ("POST", ("team", "invite")): invite,
    ("POST", ("team", "role")): set_role, ("POST", ("team", "remove")): remove,
    ("POST", ("team", "revoke")): revoke, ("POST", ("team", "leave")): leave,
    ("GET", ("join",)): join_form, ("POST", ("join",)): join,
}
