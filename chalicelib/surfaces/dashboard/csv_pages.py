"""Dashboard pages of CSV sends (chalicelib/domain/insight/csv_sends.py): upload a file, see
its preview (rows, every invalid line and why, segments, when the last one goes out), send it
(one idempotency key per row, so a second submit sends nothing more), follow its progress."""
from chalicelib.core import clock
from chalicelib.core.errors import GatewayError
from chalicelib.core.text import ascii_int
from chalicelib.domain import pool
from chalicelib.domain.insight import csv_sends
from chalicelib.surfaces.dashboard import web

PREVIEW_ROWS = 20


def _page(request, status=200, **values):
    return web.render(request, "csv.html", status, title="Send a list",
                      max_rows=csv_sends.MAX_ROWS, max_kb=csv_sends.MAX_BYTES // 1024,
                      number_columns=csv_sends.NUMBER_COLUMNS,
                      message_columns=csv_sends.MESSAGE_COLUMNS, **values)


def csv_page(request):
    return _page(request)


def _plan(request, raw: bytes, template: str):
    plan = csv_sends.parse(raw, template)
    segments = {}
    for row in plan.rows:
        segments[row.segments] = segments.get(row.segments, 0) + 1
    ahead = csv_sends.forecast(request.session.account_id, plan) if plan.rows else None
    last = ahead.last_at if ahead else None
    return plan, {"refused": ahead.refused if ahead else [],
                  "opted_out": ahead.opted_out if ahead else [], "backlog_minutes":
                  pool.horizon_ms(None) // 60000,
                  "plan": plan, "template": template, "csv_text": raw.decode("utf-8-sig"),
                  "segments": sorted(segments.items()), "shown": plan.rows[:PREVIEW_ROWS],
                  "last_at": clock.fmt(last) if last else None,
                  "last_in_s": max(0, (last - clock.now_ms()) // 1000) if last else None}


def csv_preview(request):
    upload = request.form.get("file")
    template = request.form.get("template") or ""
    if not isinstance(upload, bytes):
        upload = (upload or "").encode()
    try:
        _, shown = _plan(request, upload, template)
    except GatewayError as error:
        return web.failed(error, _page(request, error=error.message, csv_template=template))
    return _page(request, preview=shown)


def csv_send(request):
    raw = (request.form.get("csv_text") or "").encode()
    template = request.form.get("template") or ""
    try:
        plan = csv_sends.parse(raw, template)
        if not plan.rows:
            return _page(request, 400, error="No valid rows to send.", csv_template=template)
        done = csv_sends.send(request.session.account_id, plan)
    except GatewayError as error:
        return web.failed(error, _page(request, error=error.message, csv_template=template))
    refused = ",".join(str(line) for line, _ in done["refused"][:50])
    return web.redirect(request, f"/csv/{plan.batch}", last=plan.rows[-1].line,
                        accepted=done["accepted"], replayed=done["replayed"], refused=refused)


def csv_progress(request, batch):
    query = request.query or {}

    def number(name):
        try:
            return max(0, ascii_int(query.get(name) or 0))
        except ValueError:
            return 0
    try:
        found = csv_sends.progress(request.session.account_id, batch, number("last"))
    except GatewayError as error:
        return web.failed(error, _page(request, error=error.message))
    return web.render(request, "csv_progress.html", title="Sending a list", batch=batch,
                      found=found, accepted=number("accepted"), replayed=number("replayed"),
                      refused=(query.get("refused") or "")[:400], last=number("last"))


PAGES = {("GET", ("csv",)): csv_page, ("POST", ("csv",)): csv_preview,
         ("POST", ("csv", "send")): csv_send, ("GET", ("csv", "*")): csv_progress}
