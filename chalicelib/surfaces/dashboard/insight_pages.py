"""Dashboard pages of the owner's insight: the overview's charts (messages per day by outcome,
incoming per day) and a phone's page (sent, failed, delivery rate, median time from accept to
sent, failures by reason), all from the daily counters (chalicelib/domain/insight/stats.py):
one Query per page whatever the volume."""
from chalicelib.core.errors import NotFound
from chalicelib.domain import devices, pool
from chalicelib.domain.insight import stats
from chalicelib.surfaces.dashboard import charts, web

SERIES = (("delivered", "Delivered"), ("sent", "Sent"), ("failed", "Failed"),
          ("expired", "Expired"), ("cancelled", "Cancelled"), ("received", "Incoming"))
SHORT = {"delivered": "Deliv.", "cancelled": "Canc.", "expired": "Exp.", "received": "In"}


def overview(account_id: str) -> dict:
    """What home.html's insight block shows: a chart per series and the days for the table."""
    figures = stats.read(account_id)
    return {"charts": [(label, series, figures["totals"][series],
                        charts.day_bars(f"{label} per day", series, figures["days"]))
                       for series, label in SERIES],
            "series": SERIES, "short": SHORT, "active_days": [d for d in reversed(figures["days"])
                                              if any(d[s] for s, _ in SERIES)],
            "days": len(figures["days"])}


def median_text(bound) -> str:
    if bound is None:
        return "—"
    return "over 6 h" if bound == -1 else f"under {bound} s" if bound < 60 else \
        f"under {bound // 60} min" if bound < 3600 else f"under {bound // 3600} h"


def phone_page(request, device_uid):
    account_id = request.session.account_id
    device = next((d for d in devices.list_devices(account_id)
                   if d.device_uid == device_uid), None)
    if device is None:
        raise NotFound("There is no such phone in your account.")
    figures = stats.read(account_id)
    empty = stats.phone_summary({})
    phone = figures["phones"].get(device.device_id, empty)
    days = figures["phone_days"].get(device.device_id) or [
        {"day": d["day"], **dict.fromkeys(stats.COUNTERS, 0)} for d in figures["days"]]
    phone_charts = [(label, series, phone[series],
                     charts.day_bars(f"{label} per day", series, days))
                    for series, label in (("sent", "Sent"), ("failed", "Failed"))]
    reasons = phone["failures_by_reason"]
    return web.render(request, "phone.html", title=device.name, d=pool.describe(device),
                      phone=phone, charts=phone_charts,
                      active_days=[d for d in reversed(days) if d["sent"] or d["failed"]],
                      reasons=reasons, median=median_text(phone["median_accept_to_sent_seconds"]),
                      reasons_chart=charts.share_bars("Failures by reason", reasons)
                      if reasons else None, days=len(days))


def alerts_choice(request):
    from chalicelib.domain.insight import alerts
    account_id, email = request.session.account_id, request.session.email
    if request.form.get("alerts") == "on":
        alerts.subscribe(account_id, email)
    else:
        alerts.unsubscribe(account_id, email=email)
    return web.redirect(request, "/account")


def unsubscribe_link(request, account_id, token):
    """The link of an alert mail (no sign-in: the token is the proof). A GET only asks: mail
    scanners open links, and must not unsubscribe anyone (RFC 8058 section 3.1)."""
    from chalicelib.domain.insight import alerts
    if not alerts.token_valid(account_id, token):
        return _link_used(request)
    return web.render(request, "unsubscribe.html", title="Alert mails")


def unsubscribe_post(request, account_id, token):
    """The confirmation's button, or a mail client's one-click POST (RFC 8058: the body
    `List-Unsubscribe=One-Click`, no cookies, no form token: the token in the path is the
    proof)."""
    from chalicelib.domain.insight import alerts
    if not alerts.unsubscribe(account_id, token=token):
        return _link_used(request)
    return web.render(request, "error.html", 200, title="Alert mails",
                      message="You will get no more alert mails.")


def _link_used(request):
    return web.render(request, "error.html", 404, title="Alert mails",
                      message="This link was used already or is not valid.")


PAGES = {("GET", ("phones", "*")): phone_page, ("POST", ("account", "alerts")): alerts_choice,
         ("GET", ("unsubscribe", "*", "*")): unsubscribe_link,
         ("POST", ("unsubscribe", "*", "*")): unsubscribe_post}
