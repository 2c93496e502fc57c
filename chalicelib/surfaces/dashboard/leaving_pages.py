"""Dashboard pages for leaving with the data: download the account's export zip, and delete the
account after typing its name (chalicelib/domain/export.py, account_deletion.py). Owner-only,
as dashboard/access.py's table says (the router checks it before these run)."""
from chalicelib.core import settings
from chalicelib.core.errors import GatewayError
from chalicelib.domain import account_deletion, accounts, export
from chalicelib.surfaces.dashboard import web


def export_zip(request):
    account_id = request.session.account_id
    try:
        body = export.bounded_zip(account_id)
    except GatewayError as error:
        return web.failed(error, web.render(request, "error.html", title="Export too large",
                                            message=error.message))
    headers = web.security_headers(request, "application/zip")
    headers["Content-Disposition"] = f'attachment; filename="{export.filename(account_id)}"'
    return 200, headers, body


def _delete_page(request, error=None, status=200):
    account = accounts.get_account(request.session.account_id)
    return web.render(request, "delete_account.html", status, title="Delete the account",
                      account=account, error=error,
                      purge_minutes=-(-settings.current().purge_after_seconds // 60))


def delete_form(request):
    return _delete_page(request)


def delete(request):
    try:
        account_deletion.delete(request.session.account_id, request.form.get("name"))
    except GatewayError as error:
        return web.failed(error, _delete_page(request, error.message))
    return web.redirect(request, "/signin", cookies=[web.set_cookie(
        request, web.SESSION_COOKIE, "", max_age=0)], done="account-deleted")


PAGES = {("GET", ("account", "export")): export_zip,
         ("GET", ("account", "delete")): delete_form, ("POST", ("account", "delete")): delete}
