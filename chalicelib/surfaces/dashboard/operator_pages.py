"""The operator's console at /dashboard/operator/: every account (paged), suspend and resume,
each account's quotas, and the operators' audit log. Only for users with the operator flag
(domain/operators.py), read on every request; anyone else gets the dashboard's 404, as for a
page that does not exist. The same domain calls as `smsgw operator ...`."""
from chalicelib.core.errors import GatewayError, NotFound
from chalicelib.domain import accounts, operators, quotas
from chalicelib.surfaces.dashboard import web


def _operator(request) -> str:
    if not operators.is_operator(request.session.email):
        raise NotFound("No such page.")
    return request.session.email


def console(request, error=None, done=None, status=200):
    _operator(request)
    rows, next_cursor = operators.page(request.query.get("cursor") or None)
    return web.render(request, "operator.html", status, title="Operator", rows=rows,
                      next_cursor=next_cursor, log=operators.log(20), error=error, done=done,
                      quota_names=list(quotas.QUOTAS), cursor=request.query.get("cursor"))


def _act(request, account_id, action):
    who = _operator(request)
    try:
        name = accounts.get_account(account_id).name
        message = action(who, account_id, name)
    except NotFound:
        return console(request, f"No account {account_id}.", status=404)
    except GatewayError as error:
        return web.failed(error, console(request, error.message))
    return console(request, done=message)


def suspend(request, account_id):
    def act(who, account_id, name):
        changed = operators.suspend(who, account_id)
        return f"{name} is suspended." if changed else f"{name} was already suspended."
    return _act(request, account_id, act)


def resume(request, account_id):
    def act(who, account_id, name):
        changed = operators.resume(who, account_id)
        return f"{name} is active again." if changed else f"{name} was not suspended."
    return _act(request, account_id, act)


def set_quota(request, account_id):
    def act(who, account_id, name):
        quota = operators.set_quota(who, account_id, request.form.get("quota"),
                                    request.form.get("value"))
        shown = quota["limit"] or "no limit"
        return f"{name}: {quota['label']} set to {shown}" + (
            "" if quota["own"] else " (the stage's default)") + "."
    return _act(request, account_id, act)


PAGES = {("GET", ("operator",)): console,
         ("POST", ("operator", "*", "suspend")): suspend,
         ("POST", ("operator", "*", "resume")): resume,
         ("POST", ("operator", "*", "quota")): set_quota}
