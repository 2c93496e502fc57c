"""Dashboard pages for leaving with the data: download the account's export zip, and delete the
account after typing its name (chalicelib/domain/export.py, account_deletion.py). Owner-only:
`owner_only` is the one check, for the roles to narrow."""
from chalicelib.core import settings
from chalicelib.core.errors import GatewayError
from chalicelib.domain import account_deletion, accounts, export
from chalicelib.surfaces.dashboard import web

OWNER_ONLY = "Only the account's owner may export or delete it."


def owner_only(request):
    """A refusal page unless the signed-in user is the account's owner. Every user is the owner
    until team roles exist: a session without a `role` is the owner's."""
    if getattr(request.session, "role", "owner") != "owner":
        return web.render(request, "error.html", 403, title="Refused", message=OWNER_ONLY)
    return None


def export_zip(request):
    refused = owner_only(request)
    if refused:
        return refused
    account_id = request.session.account_id
    try:
        body = export.bounded_zip(account_id)
    except GatewayError as error:
        return web.render(request, "error.html", error.http_status, title="Export too large",
                          message=error.message)
    headers = web.security_headers(request, "application/zip")
    headers["Content-Disposition"] = f'attachment; filename="{export.filename(account_id)}"'
    return 200, headers, body


def _delete_page(request, error=None, status=200):
    account = accounts.get_account(request.session.account_id)
    return web.render(request, "delete_account.html", status, title="Delete the account",
                      account=account, error=error,
                      purge_minutes=-(-settings.PURGE_AFTER_SECONDS // 60))


def delete_form(request):
    return owner_only(request) or _delete_page(request)


def delete(request):
    refused = owner_only(request)
    if refused:
        return refused
    try:
        account_deletion.delete(request.session.account_id, request.form.get("name"))
    except GatewayError as error:
        return _delete_page(request, error.message, 400)
    return web.redirect(request, "/signin", cookies=[web.set_cookie(
        request, web.SESSION_COOKIE, "", max_age=0)], done="account-deleted")


PAGES = {("GET", ("account", "export")): export_zip,
         ("GET", ("account", "delete")): delete_form, ("POST", ("account", "delete")): delete}
