"""Dashboard pages about webhook endpoints: list, add (the secret shown once), enable,
disable, remove, send a test event, rotate the secret, and each endpoint's delivery log with
"redeliver". The same domain calls as the admin CLI's `webhook` group."""
from chalicelib.core import clock
from chalicelib.core.errors import GatewayError, NotFound
from chalicelib.core.text import ascii_int
from chalicelib.domain import webhooks
from chalicelib.domain.webhooks import delivery_log
from chalicelib.domain.webhooks import events as events
from chalicelib.surfaces.dashboard import web
from chalicelib.surfaces.dashboard.account_pages import OVERLAPS, notice

LOG_SIZE = 25


def webhooks_page(request, error=None, form=None, new=None, status=200):
    rows = [webhooks.describe(w) for w in sorted(webhooks.list_all(request.session.account_id),
                                                 key=lambda w: w.created_at)]
    return web.render(request, "webhooks.html", status, title="Webhooks", rows=rows,
                      error=error, form=form or {}, new=new, types=events.TYPES,
                      overlaps=OVERLAPS, notice=notice(request))


def webhook_add(request):
    chosen = [t for t in events.TYPES if request.form.get(f"event:{t}")]
    form = {"url": request.form.get("url", ""), "events": chosen,
            "description": request.form.get("description", "")}
    try:
        made = webhooks.add(request.session.account_id, form["url"], form["events"],
                            form["description"])
    except GatewayError as error:
        return web.failed(error, webhooks_page(request, error.message, form))
    return webhooks_page(request, new={"webhook_id": made.webhook_id, "url": made.url,
                                       "secret": made.secret})


def webhook_rotate(request, webhook_id):
    try:
        overlap = ascii_int(request.form.get("overlap", ""))
    except ValueError:
        overlap = -1
    try:
        rotated = webhooks.rotate_secret(request.session.account_id, webhook_id, overlap)
    except NotFound:
        raise
    except GatewayError as error:
        return web.failed(error, webhooks_page(request, error.message))
    return webhooks_page(request, new={
        "webhook_id": webhook_id, "url": rotated.url, "secret": rotated.secret,
        "old_until": clock.fmt(rotated.previous_until) if overlap else None})


def _enabled(value):
    def change(request, webhook_id):
        webhooks.set_enabled(request.session.account_id, webhook_id, value)
        return web.redirect(request, "/webhooks",
                            done="webhook-enabled" if value else "webhook-disabled")
    return change


def webhook_remove(request, webhook_id):
    webhooks.remove(request.session.account_id, webhook_id)
    return web.redirect(request, "/webhooks", done="webhook-removed")


def webhook_test(request, webhook_id):
    event_id = webhooks.send_test(request.session.account_id, webhook_id)
    return web.redirect(request, f"/webhooks/{webhook_id}", sent=event_id)


def _log_rows(deliveries):
    rows = []
    for d in deliveries:
        last = (d.log or [None])[-1]
        rows.append({"event_id": d.event_id, "type": d.type, "state": d.state,
                     "attempts": d.attempts, "last_at": clock.fmt(d.last_at),
                     "next_at": clock.fmt(d.next_at),
                     "status_code": last.status_code if last else None,
                     "latency_ms": last.latency_ms if last else None,
                     "error": last.error if last else None})
    return rows


def webhook_page(request, webhook_id, error=None, status=200):
    account_id = request.session.account_id
    hook = webhooks.describe(webhooks.get(account_id, webhook_id))
    rows = _log_rows(delivery_log.deliveries(account_id, webhook_id, LOG_SIZE))
    sent = request.query.get("sent", "")
    waiting = bool(sent) and all(r["event_id"] != sent for r in rows)
    return web.render(request, "webhook.html", status, title="Webhook deliveries", hook=hook,
                      rows=rows, error=error, sent=sent, live=waiting, page="webhooks",
                      notice=notice(request))


def webhook_redeliver(request, webhook_id):
    try:
        delivery_log.redeliver(request.session.account_id, webhook_id,
                           request.form.get("event", "") or None)
    except NotFound as error:
        if error.parameter != "event_id":  # another account's or nobody's endpoint
            raise
        return webhook_page(request, webhook_id, error.message, 404)
    except GatewayError as error:
        return web.failed(error, webhook_page(request, webhook_id, error.message))
    return web.redirect(request, f"/webhooks/{webhook_id}", done="webhook-redelivered")


PAGES = {
    ("GET", ("webhooks",)): webhooks_page, ("POST", ("webhooks",)): webhook_add,
    ("GET", ("webhooks", "*")): webhook_page,
    ("POST", ("webhooks", "*", "enable")): _enabled(True),
    ("POST", ("webhooks", "*", "disable")): _enabled(False),
    ("POST", ("webhooks", "*", "remove")): webhook_remove,
    ("POST", ("webhooks", "*", "test")): webhook_test,
    ("POST", ("webhooks", "*", "rotate")): webhook_rotate,
    ("POST", ("webhooks", "*", "redeliver")): webhook_redeliver,
}
