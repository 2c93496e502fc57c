"""Dashboard pages about phones and messages: the phone list, pairing a new phone, removing
one, the message lists and a message's timeline, and "Try it" (test SMS, OTP, verify)."""
from chalicelib.core import clock
from chalicelib.core.errors import BadRequest, GatewayError, NotFound
from chalicelib.core.text import ascii_int
from chalicelib.domain import devices, messages, otp, outbox, pacing, pairing, phone, pool
from chalicelib.domain.messages import search as message_search
from chalicelib.surfaces.dashboard import web
from chalicelib.surfaces.dashboard.account_pages import notice

PAGE_SIZE = 25


def phones_page(request, error=None, name="", status=200):
    account_id = request.session.account_id
    rows = []
    for device in sorted(devices.list_devices(account_id), key=lambda d: d.device_id):
        rows.append({**pool.describe(device), **pacing.window_state(device)})
    return web.render(request, "phones.html", status, title="Phones", rows=rows, error=error,
                      name=name, notice=notice(request), minutes=pairing.CODE_MINUTES)


def phone_pair_start(request):
    name = request.form.get("name", "")
    try:
        item = pairing.create(request.session.account_id, name, request.session.email)
    except GatewayError as error:
        return web.failed(error, phones_page(request, error.message, name))
    return web.redirect(request, f"/pair/{item.code}")


def pair_page(request, code, app_token=None):
    try:
        item = pairing.status(request.session.account_id, code)
    except GatewayError:
        return web.render(request, "error.html", 404, title="Not found",
                          message="There is no such pairing code in your account.")
    import segno
    url = pairing.pair_url(request.base_url, item.code)
    qr = segno.make(url, error="m").svg_inline(scale=5, border=2, dark="#111827")
    now = clock.now_ms()
    state = "paired" if item.device_uid else ("waiting" if item.expires_at > now and
                                              item.used_at is None else "expired")
    return web.render(request, "pair.html", title="Add a phone", item=item, qr=qr, url=url,
                      code=pairing.display(item.code), state=state, base=request.base_url,
                      minutes_left=max(0, (item.expires_at - now) // 60000),
                      app_url=request.base_url + "/mobile/v1", app_token=app_token)


def pair_app_token(request, code):
    """A private token for SMSGate's app, for the phone this pairing names (shown once)."""
    from chalicelib.domain.devices import app_phones
    item = pairing.status(request.session.account_id, code)
    token = app_phones.make_token(request.session.account_id, item.name,
                                  request.session.email)
    return pair_page(request, code, app_token=token)


def phone_remove(request, device_uid):
    devices.remove(request.session.account_id, devices.resolve(
        request.session.account_id, device_uid=device_uid).device_uid)
    return web.redirect(request, "/phones", done="phone-removed")


def phone_pace(request, device_uid):
    """The owner's pacing for one phone: its SIM rate (`pace`, parts per hour per SIM) and/or
    its window (`window`, parts per 30 minutes, "none"), each "default"; a blank field keeps
    its value (docs/pool.md)."""
    given = {name: request.form.get(name, "") for name in ("pace", "window")
             if request.form.get(name, "").strip()}
    try:
        pool.set_device_limits(request.session.account_id, device_uid, **given)
    except NotFound:
        raise
    except GatewayError as error:
        return web.failed(error, phones_page(request, error.message))
    return web.redirect(request, "/phones", done="pace-saved")


def _filters(request) -> message_search.Filters:
    q = request.query
    return message_search.Filters(
        kind=q.get("type") or "outgoing", status=q.get("status", ""),
        device_uid=q.get("phone", ""), number=q.get("number", "").strip(),
        since=q.get("since", "").strip(), until=q.get("until", "").strip())


def messages_page(request):
    account_id = request.session.account_id
    filters = _filters(request)
    error, found = None, message_search.Found()
    try:
        before = ascii_int(request.query["before"]) if request.query.get("before") else None
        found = message_search.search(account_id, filters, PAGE_SIZE, before)
    except ValueError:
        error = "Invalid page position."
    except GatewayError as failure:
        error = failure.message
    phones = sorted(devices.list_devices(account_id), key=lambda d: d.device_id)
    query = {k: v for k, v in {"type": filters.kind, "status": filters.status,
                               "phone": filters.device_uid, "number": request.query.get(
                                   "number", ""), "since": filters.since,
                               "until": filters.until}.items() if v}
    return web.render(request, "messages.html", 400 if error else 200, title="Messages",
                      found=found, filters=filters, error=error, phones=phones,
                      statuses=message_search.STATUSES, query=query,
                      number=request.query.get("number", ""),
                      first_page=not request.query.get("before"))


def message_page(request, kind, message_id):
    try:
        message = message_search.get(request.session.account_id, kind, message_id)
    except GatewayError:
        return web.render(request, "error.html", 404, title="Not found",
                          message="There is no such message in your account.")
    steps = message_search.timeline(message) if kind == "outgoing" else []
    live = kind == "outgoing" and message.status not in messages.TERMINAL
    return web.render(request, "message.html", title="Message", kind=kind, message=message,
                      steps=steps, live=live, page="messages")


def try_page(request, error=None, form=None, result=None, status=200):
    phones = sorted(devices.list_devices(request.session.account_id), key=lambda d: d.device_id)
    return web.render(request, "try.html", status, title="Try it", phones=phones, error=error,
                      form=form or {}, result=result)


def _device(request):
    try:
        return devices.resolve(request.session.account_id,
                               device_uid=request.form.get("phone") or None)
    except (BadRequest, NotFound):
        raise BadRequest("Choose one of your phones.", "phone")


def try_sms(request):
    form = {**request.form, "which": "sms"}
    try:
        device = _device(request)
        number = phone.normalise(request.form.get("number"), "number")
        try:
            sim_slot = ascii_int(request.form.get("sim") or 1)
        except ValueError:
            sim_slot = 0
        accepted = outbox.submit(request.session.account_id, outbox.SendRequest(
            phone_number=number, text=request.form.get("text"), device=device,
            sim_slot=devices.check_sim_slot(device, sim_slot)))
    except GatewayError as error:
        return web.failed(error, try_page(request, error.message, form))
    return web.redirect(request, f"/messages/outgoing/{accepted.message.message_id}")


def try_otp(request):
    form = {**request.form, "which": "otp"}
    try:
        device = _device(request)
        number = phone.normalise(request.form.get("number"), "number")
        sent = otp.send(request.session.account_id, device, number)
    except GatewayError as error:
        return web.failed(error, try_page(request, error.message, form))
    return try_page(request, form={"which": "verify", "number": number}, result={
        "ok": True, "text": f"OTP sent to {number}: it expires at {clock.fmt(sent.expires_at)} "
                            "UTC. Enter the code the phone received below.",
        "message_id": sent.message.message_id})


def try_verify(request):
    form = {**request.form, "which": "verify"}
    try:
        number = phone.normalise(request.form.get("number"), "number")
        otp.verify(request.session.account_id, number, request.form.get("code"))
    except GatewayError as error:
        return web.failed(error, try_page(request, error.message, form))
    return try_page(request, form={"which": "verify", "number": number},
                    result={"ok": True, "text": "OTP verified: the code was right, and it is "
                                                "now used up."})


PAGES = {
    ("GET", ("phones",)): phones_page, ("POST", ("phones",)): phone_pair_start,
    ("GET", ("pair", "*")): pair_page, ("POST", ("pair", "*", "app-token")): pair_app_token,
    ("POST", ("phones", "*", "remove")): phone_remove,
    ("POST", ("phones", "*", "pace")): phone_pace,
    ("GET", ("messages",)): messages_page, ("GET", ("messages", "*", "*")): message_page,
    ("GET", ("try",)): try_page, ("POST", ("try", "sms")): try_sms,
    ("POST", ("try", "otp")): try_otp, ("POST", ("try", "verify")): try_verify,
}
