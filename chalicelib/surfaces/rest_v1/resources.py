"""The REST v1 operations, one function per schema.OPERATIONS entry: `fn(caller, **parsed) ->
(http_status, answer)`. Bodies and queries arrive validated against their schema; the values
are then checked by the same domain functions the compat API uses (phone.normalise,
segments.check, devices.resolve, ...), and OTPs and device listings go through the compat
actions themselves, so the two surfaces cannot disagree."""
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, GatewayError, Malformed, from_unexpected
from chalicelib.domain import (
    devices,
    encryption,
    idempotency,
    messages,
    opt_outs,
    outbox,
    phone,
    pool,
    segments,
    webhooks,
)
from chalicelib.domain.messages import history as message_history
from chalicelib.domain.webhooks import delivery_log
from chalicelib.surfaces import answers, compat_api
from chalicelib.surfaces.rest_v1.validation import epoch_ms, rfc3339

SEND_WORKERS = 8  # botocore keeps 10 connections per client


def render(m) -> dict:
    """A message (outgoing Message or IncomingMessage) as v1 shows it."""
    if hasattr(m, "status"):
        return {"id": m.message_id, "direction": "outgoing", "phone_number": m.phone_number,
                "status": m.status, "message": m.body, "device_id": m.device_id,
                "device_uid": m.device_uid, "sim_slot": m.sim_slot, "segments": m.segments,
                "created_at": rfc3339(m.created_at), "send_at": rfc3339(m.not_before),
                "processed_at": rfc3339(m.processed_at),
                "delivered_at": rfc3339(m.delivered_at), "expires_at": rfc3339(m.expires_at),
                "reason": m.reason if m.status in ("failed", "expired", "cancelled") else None}
    return {"id": m.message_id, "direction": "incoming", "phone_number": m.phone_number,
            "status": "received", "message": m.body, "device_id": m.device_id,
            "device_uid": m.device_uid, "sim_slot": m.sim_slot, "segments": None,
            "created_at": rfc3339(m.received_at), "send_at": None, "processed_at": None,
            "delivered_at": None, "expires_at": None, "reason": None}


def _recipients(raw: list) -> list[str]:
    numbers, seen = [], {}
    for index, given in enumerate(raw):
        where = f"recipients[{index}]"
        try:
            number = phone.normalise(given)
        except BadRequest as error:
            raise BadRequest(f"{where}: {error.message}", where)
        if number in seen:
            raise BadRequest(f"{where}: {number} is already recipients[{seen[number]}]; each "
                             "number may appear once per request.", where)
        seen[number] = index
        numbers.append(number)
    return numbers


def _send_at(raw: str | None) -> int | None:
    """send_at in epoch ms (a time already past means now: outbox.submit sends it at once)."""
    if raw is None:
        return None
    at = epoch_ms(raw)
    ahead = settings.current().max_schedule_seconds
    if at - clock.now_ms() > ahead * 1000:
        raise BadRequest(f"Invalid send_at: at most {ahead // 86400} days ahead.", "send_at")
    return at


def _requested_timing(valid_for: int | None, send_at: int | None) -> str | None:
    """How the caller asked for timing, in a form a retry reproduces whenever it comes (what
    outbox.submit compares under an idempotency key)."""
    parts = [f"for:{valid_for}" if valid_for else None, f"at:{send_at}" if send_at else None]
    return " ".join(p for p in parts if p) or None


def _error_entry(number: str, error: GatewayError) -> dict:
    return {"id": None, "phone_number": number, "status": "rejected", "queued": False,
            "error": answers.problem_document(error)[1]}


def _sealed(raw: list) -> list[str]:
    """End-to-end encrypted recipients: ciphertext in SMSGate's form, never read here."""
    for index, given in enumerate(raw):
        encryption.check(given, f"recipients[{index}]")
    return list(raw)


def _when(entry: dict) -> dict:
    """expected_in from expected_at, now: a replayed answer counts down, never repeats."""
    if entry.get("expected_at"):
        wait = epoch_ms(entry["expected_at"]) - clock.now_ms()
        entry["expected_in"] = max(0, -(-wait // 1000))
    return entry


def sendMessages(caller, body):  # noqa: N802 (operation ids are the OpenAPI's)
    text = body["message"]
    sealed = body.get("is_encrypted", False)
    segments.check(text, encrypted=sealed)
    numbers = _sealed(body["recipients"]) if sealed else _recipients(body["recipients"])
    send_at = _send_at(body.get("send_at"))
    named = "device_id" in body
    device = devices.resolve(caller.account_id, str(body["device_id"])) if named else None
    key = body.get("idempotency_key")
    urgent = body.get("priority") == "urgent"
    claimed = None
    if key:  # the key names this whole request (domain/idempotency.py)
        claimed = idempotency.claim(caller.account_id, key, "v1", {
            "recipients": numbers, "message": text, "sim_slot": body.get("sim_slot"),
            "device_id": body.get("device_id"), "send_at": body.get("send_at"),
            "valid_for": body.get("valid_for"), "priority": body.get("priority")})
        if claimed.answer is not None:
            return 202, {"messages": [{**_when(entry), "replayed": True} if entry.get("id")
                                      else entry for entry in claimed.answer]}
    def one(index_number):
        index, number = index_number
        timing = {"valid_for_seconds": body.get("valid_for"), "send_at": send_at,
                  "requested_validity": _requested_timing(body.get("valid_for"), send_at),
                  "idempotency_key": f"{key}#{index}" if key else None, "key_space": "v1"}
        try:  # named: paced on that phone, stays on it; else the pool's choice, recipient by
            # recipient (spread at the pool's pace), a far send_at paced at release
            accepted = outbox.submit(caller.account_id, outbox.SendRequest(
                phone_number=number, text=text, device=device, sim_slot=body.get("sim_slot"),
                urgent=urgent, events=caller.events, encrypted=sealed, **timing))
        except Exception as exc:  # one recipient's trouble is reported, the others still go
            return exc if isinstance(exc, GatewayError) else from_unexpected(exc)
        m = accepted.message
        return _when({"id": m.message_id, "phone_number": number, "status": m.status,
                      "queued": accepted.queued, "send_at": rfc3339(m.not_before),
                      "expected_at": rfc3339(m.not_before or m.created_at),
                      "device_id": m.device_id, "sim_slot": m.sim_slot,
                      "replayed": accepted.replayed})

    # Each recipient is the compat API's single send (write, then queue); a few at a time, so
    # 1,000 recipients are accepted well within API Gateway's 29 s (bench/rest_v1.py).
    with ThreadPoolExecutor(SEND_WORKERS) as workers:
        outcomes = list(workers.map(one, enumerate(numbers)))
    errors = [o for o in outcomes if isinstance(o, GatewayError)]
    first_error = errors[0] if errors else None
    results = [_error_entry(number, o) if isinstance(o, GatewayError) else o
               for number, o in zip(numbers, outcomes, strict=True)]
    if first_error is not None and all(r["status"] == "rejected" for r in results):
        if claimed is not None:
            claimed.release()
        raise first_error
    if claimed is not None:
        claimed.keep(results)
    return 202, {"messages": results}


def getMessage(caller, message_id):  # noqa: N802
    return 200, render(messages.lookup(caller.account_id, message_id))


def cancelMessage(caller, message_id):  # noqa: N802
    return 200, render(messages.cancel(caller.account_id, message_id))


class _CursorFits:
    """A cursor made for other filters (or not made by us) is the request's mistake: 400
    invalid_cursor, in v1's words (the domain's message names get_history)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _):
        if isinstance(error, BadRequest) and error.parameter == "cursor":
            raise Malformed("Invalid cursor: it does not fit this query. Pass the next_cursor "
                             "of the previous page with the same filters, or no cursor to "
                             "start again.", "cursor", code="invalid_cursor")
        return False


def listMessages(caller, query):  # noqa: N802
    number = query.get("phone_number")
    filters = {"status": query.get("status"), "device_id": query.get("device_id"),
               "phone_number": phone.normalise(number) if number else None,
               "since_ms": epoch_ms(query["since"]) if "since" in query else None,
               "until_ms": epoch_ms(query["until"]) if "until" in query else None}
    tag = "|" + hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:12]
    with _CursorFits():
        items, cursor = message_history.search(
            caller.account_id, query.get("direction", "all"), query.get("limit", 20),
            query.get("cursor"), cursor_tag=tag, **filters)
    return 200, {"messages": [render(m) for m in items], "next_cursor": cursor}


def _from_reference(text: str | None) -> str | None:
    """The compat API's 'YYYY-MM-DD HH:MM:SS' (UTC) as RFC 3339."""
    return text and text.replace(" ", "T") + "Z"


def _as_params(body: dict) -> dict:
    """A validated JSON body as the compat actions read parameters (strings)."""
    return {name: str(value) for name, value in body.items()}


def sendOtp(caller, body):  # noqa: N802
    _, data = compat_api.send_otp(caller, _as_params(body), {})
    return 202, {"id": data["message_id"], "phone_number": data["phone_number"],
                 "status": data["status"],
                 "device_id": data.get("device_id", body.get("device_id")),
                 "expires_at": _from_reference(data["expires_at"]),
                 "expires_in": data["expires_in"]}


def verifyOtp(caller, body):  # noqa: N802
    compat_api.verify_otp(caller, _as_params(body), {})
    return 200, {"verified": True}


def listDevices(caller):  # noqa: N802
    _, found = compat_api.device_status(caller, {}, {})
    return 200, {"devices": [{**d, "last_seen": _from_reference(d["last_seen"])}
                             for d in found]}


def _device_detail(device) -> dict:
    found = pool.describe(device)
    sims = [{**sim, "next_free_at": _from_reference(sim["next_free_at"]),
             "paused_until": _from_reference(sim["paused_until"])} for sim in found["sims"]]
    return {**found, "last_seen": _from_reference(found["last_seen"]), "sims": sims,
            **pool.pacing.window_state(device), "pace_default": device.pace_per_hour is None,
            "window_default": device.pace_window is None}


def getDevice(caller, device_id):  # noqa: N802
    return 200, _device_detail(devices.resolve(caller.account_id, device_id=str(device_id)))


def updateDevice(caller, device_id, body):  # noqa: N802
    """The CLI's `device pace` (pool.set_device_limits): null is the default, a window of 0 is
    none."""
    if not body:
        raise Malformed("Give pace_per_hour, window_parts or both.", "pace_per_hour")
    limits = {}
    if "pace_per_hour" in body:
        limits["pace"] = "default" if body["pace_per_hour"] is None else body["pace_per_hour"]
    if "window_parts" in body:
        window = body["window_parts"]
        limits["window"] = "default" if window is None else window or "none"
    device = pool.set_device_limits(caller.account_id, str(device_id), **limits)
    return 200, _device_detail(device)


def getStats(caller, query):  # noqa: N802
    from chalicelib.domain.insight import stats
    figures = stats.read(caller.account_id, days=query.get("days", stats.DAYS))
    phones = [{"device_id": device_id, **phone}
              for device_id, phone in figures["phones"].items()]
    return 200, {"days": figures["days"], "totals": figures["totals"], "phones": phones}


# --- webhooks: the functions the admin CLI and the dashboard call (domain/webhooks.py) -------
WEBHOOK_TIMES = ("disabled_at", "failing_since", "last_success_at", "created_at",
                 "rotation_ends")


def _webhook(hook, secret: bool = False) -> dict:
    shown = webhooks.describe(hook)
    shown.update({name: _from_reference(shown[name]) for name in WEBHOOK_TIMES})
    if secret:
        shown["secret"] = hook.secret
    return shown


def _delivery(d, body: bool = False) -> dict:
    shown = {"event_id": d.event_id, "type": d.type, "state": d.state,
             "attempts": d.attempts or 0, "created_at": rfc3339(d.created_at),
             "last_at": rfc3339(d.last_at), "next_at": rfc3339(d.next_at),
             "log": [{"at": rfc3339(a.at), "status_code": a.status_code,
                      "latency_ms": int(a.latency_ms), "error": a.error} for a in d.log or []]}
    if body:
        shown["body"] = d.body
    return shown


def _opt_out(entry, changed=None) -> dict:
    found = {"phone_number": entry.phone_number, "opted_out": entry.opted_out,
             "source": entry.source, "keyword": entry.keyword,
             "changed_at": rfc3339(entry.changed_at)}
    return found if changed is None else {**found, "changed": changed}


def listOptOuts(caller):  # noqa: N802
    return 200, {"opt_outs": [_opt_out(e) for e in opt_outs.entries(caller.account_id)]}


def addOptOut(caller, body):  # noqa: N802
    number = phone.normalise(body["phone_number"])
    changed = opt_outs.add(caller.account_id, number)
    return 200, _opt_out(opt_outs.entry(caller.account_id, number), changed)


def removeOptOut(caller, phone_number):  # noqa: N802
    from urllib.parse import unquote  # a path's %2B, whether or not the front door decoded it
    number = phone.normalise(unquote(phone_number))
    changed = opt_outs.remove(caller.account_id, number)
    entry = opt_outs.entry(caller.account_id, number)
    if entry is None:
        return 200, {"phone_number": number, "opted_out": False, "changed": False}
    return 200, _opt_out(entry, changed)


def listWebhooks(caller):  # noqa: N802
    found = sorted(webhooks.list_all(caller.account_id), key=lambda w: w.created_at)
    return 200, {"webhooks": [_webhook(w) for w in found]}


def createWebhook(caller, body):  # noqa: N802
    made = webhooks.add(caller.account_id, body["url"], body.get("events"),
                        body.get("description", ""))
    return 201, _webhook(made, secret=True)


def getWebhook(caller, webhook_id):  # noqa: N802
    return 200, _webhook(webhooks.get(caller.account_id, webhook_id))


def updateWebhook(caller, webhook_id, body):  # noqa: N802
    return 200, _webhook(webhooks.set_enabled(caller.account_id, webhook_id, body["enabled"]))


def deleteWebhook(caller, webhook_id):  # noqa: N802
    webhooks.remove(caller.account_id, webhook_id)
    return 200, {"webhook_id": webhook_id, "deleted": True}


def testWebhook(caller, webhook_id):  # noqa: N802
    return 202, {"webhook_id": webhook_id,
                 "event_id": webhooks.send_test(caller.account_id, webhook_id)}


def rotateWebhookSecret(caller, webhook_id, body):  # noqa: N802
    rotated = webhooks.rotate_secret(caller.account_id, webhook_id, body.get("overlap", 86400))
    return 200, _webhook(rotated, secret=True)


def listWebhookDeliveries(caller, webhook_id, query):  # noqa: N802
    with _CursorFits():
        found, cursor = delivery_log.deliveries_page(caller.account_id, webhook_id,
                                                 query.get("limit", 20), query.get("state"),
                                                 query.get("cursor"))
    return 200, {"deliveries": [_delivery(d) for d in found], "next_cursor": cursor}


def getWebhookDelivery(caller, webhook_id, event_id):  # noqa: N802
    return 200, _delivery(delivery_log.logged(caller.account_id, webhook_id, event_id), body=True)


def redeliverWebhookEvent(caller, webhook_id, event_id):  # noqa: N802
    return 202, {"webhook_id": webhook_id,
                 "queued": delivery_log.redeliver(caller.account_id, webhook_id, event_id)}


def redeliverFailedWebhookEvents(caller, webhook_id, body):  # noqa: N802
    return 202, {"webhook_id": webhook_id, "queued": delivery_log.redeliver(
        caller.account_id, webhook_id, since_ms=epoch_ms(body["since"]))}
