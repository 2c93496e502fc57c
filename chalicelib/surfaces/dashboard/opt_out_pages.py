"""The dashboard's "Opt-outs" page: the numbers that replied STOP (or that the owner listed),
adding and removing one, and the account's keywords, confirmation reply and OTP setting. The
same domain calls as REST v1's /v1/opt-outs and the CLI's `opt-out` group (domain/opt_outs.py)."""
from chalicelib.core import clock
from chalicelib.core.errors import GatewayError
from chalicelib.domain import opt_outs, phone
from chalicelib.storage.tables import Account
from chalicelib.surfaces.dashboard import web


def opt_outs_page(request, error=None, done=None, status=200):
    account_id = request.session.account_id
    account = Account.get(account_id, consistent_read=True)
    rows = [{"number": e.phone_number, "source": e.source, "keyword": e.keyword,
             "at": clock.fmt(e.changed_at)} for e in opt_outs.entries(account_id)]
    return web.render(request, "opt_outs.html", status, title="Opt-outs", rows=rows,
                      error=error, done=done,
                      standard_out=opt_outs.OPT_OUT_KEYWORDS,
                      standard_in=opt_outs.OPT_IN_KEYWORDS,
                      own_out=" ".join(account.opt_out_keywords or ()),
                      own_in=" ".join(account.opt_in_keywords or ()),
                      reply=account.opt_out_reply or "", otp_allowed=bool(account.otp_to_opted_out))


def _change(out: bool):
    """The page's add (`out`) or remove form: the same domain call as the API's."""
    said = ("is listed: sends to it are refused.", "was already listed.") if out else \
        ("is off the list: it may be sent to again.", "was not listed.")

    def change(request):
        try:
            number = phone.normalise(request.form.get("number"), "number")
            changed = (opt_outs.add if out else opt_outs.remove)(request.session.account_id,
                                                                  number)
        except GatewayError as error:
            return web.failed(error, opt_outs_page(request, error.message))
        return opt_outs_page(request, done=f"{number} {said[0] if changed else said[1]}")
    return change


def opt_out_settings(request):
    form = request.form
    try:
        opt_outs.configure(request.session.account_id,
                           opt_out_keywords=(form.get("own_out") or "").split(),
                           opt_in_keywords=(form.get("own_in") or "").split(),
                           reply=form.get("reply") or "", otp_allowed=bool(form.get("otp")))
    except GatewayError as error:
        return web.failed(error, opt_outs_page(request, error.message))
    return opt_outs_page(request, done="Settings saved.")


PAGES = {("GET", ("opt-outs",)): opt_outs_page, ("POST", ("opt-outs",)): _change(True),
         ("POST", ("opt-outs", "remove")): _change(False),
         ("POST", ("opt-outs", "settings")): opt_out_settings}
