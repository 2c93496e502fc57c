"""The one table of REST v1 definitions: every operation's parameters, body and answers as JSON
Schema. The validator below checks requests against these very schemas and openapi.py prints
them as the OpenAPI document, so what is documented is what is enforced.

validation.py is that validator; a schema using a keyword it does not enforce fails at import.
"""
from dataclasses import dataclass, field

from chalicelib.core import settings
from chalicelib.domain import otp
from chalicelib.domain.webhooks import events as events
from chalicelib.surfaces.rest_v1.validation import check_known

MAX_RECIPIENTS = 1000
IDEMPOTENCY_PATTERN = r"^[\x21-\x7e]{1,120}$"
STATUSES = ["pending", "processing", "sent", "delivered", "failed", "expired", "cancelled",
            "received"]





def _s(kind, description=None, **more):
    schema = {"type": kind, **more}
    if description:
        schema["description"] = description
    return schema


def _nullable(schema):
    return {**schema, "type": [schema["type"], "null"]}


DATE_TIME = _s("string", "RFC 3339 time, e.g. 2026-01-31T09:30:00Z", format="date-time")
PHONE = _s("string", "Phone number, E.164 (+491701234567) or national with the gateway's default "
           "region; with is_encrypted, its ciphertext.", minLength=1, maxLength=256)
TEXT = _s("string", f"The SMS text (at most {settings.current().max_segments} segments).",
          minLength=1,
          maxLength=4000)
DEVICE_ID = _s("integer", "A device of the account (GET /v1/devices).", minimum=1,
               maximum=999999999)

SEND_BODY = _s("object", properties={
    "recipients": _s("array", f"1-{MAX_RECIPIENTS} phone numbers; each gets its own message.",
                     items=PHONE, minItems=1, maxItems=MAX_RECIPIENTS),
    "message": TEXT,
    "device_id": DEVICE_ID,
    "sim_slot": _s("integer", "SIM of the device (default 1).", minimum=1, maximum=2),
    "send_at": _s("string", "Send no earlier than this RFC 3339 time (at most 30 days ahead). "
                  "Cancellable until then.", format="date-time"),
    "valid_for": _s("integer", "Seconds the message may wait to be sent (from send_at when "
                    "scheduled); then it ends expired.",
                    minimum=settings.current().min_validity_seconds,
                    maximum=settings.current().max_validity_seconds),
    "priority": _s("string", "urgent: sent at once, ahead of the phone's paced backlog (as "
                   "OTPs are), still counted in its pace; normal (default): paced.",
                   enum=["normal", "urgent"]),
    "idempotency_key": _s("string", "Retrying with the same key answers the same messages "
                          "instead of sending again (24 h).", pattern=IDEMPOTENCY_PATTERN),
    "is_encrypted": _s("boolean", "End-to-end encrypted (docs/encryption.md): message and "
                       "every recipient are $aes-256-cbc/pbkdf2-sha1$... ciphertext, sent only "
                       "to phones whose agent holds the passphrase."),
}, required=["recipients", "message"], additionalProperties=False)

PROBLEM = _s("object", "RFC 9457 problem details.", properties={
    "type": _s("string"), "title": _s("string"), "status": _s("integer"),
    "detail": _s("string"), "code": _s("string", "The error code (as the compat API's)."),
    "parameter": _s("string"), "retry_after": _s("integer"),
    "current_status": _s("string"),
    "quota": _s("string", "quota_exceeded: the operator's quota that refused the request."),
    "limit": _s("integer"),
    "resets_at": _s("integer", "When a quota of a period resets (epoch ms)."),
}, required=["type", "title", "status", "detail", "code"])

MESSAGE = _s("object", properties={
    "id": _s("integer"), "direction": _s("string", enum=["outgoing", "incoming"]),
    "phone_number": _s("string"), "status": _s("string", enum=STATUSES),
    "message": _s("string"), "device_id": _s("integer"), "device_uid": _s("string"),
    "sim_slot": _nullable(_s("integer")), "segments": _nullable(_s("integer")),
    "created_at": DATE_TIME, "send_at": _nullable(DATE_TIME),
    "processed_at": _nullable(DATE_TIME), "delivered_at": _nullable(DATE_TIME),
    "expires_at": _nullable(DATE_TIME), "reason": _nullable(_s("string")),
}, required=["id", "direction", "phone_number", "status", "created_at"])

ACCEPTED = _s("object", properties={
    "id": _nullable(_s("integer")), "phone_number": _s("string"),
    "status": _s("string", "pending, or rejected (see error) for a recipient not accepted."),
    "queued": _s("boolean"), "send_at": _nullable(DATE_TIME),
    "expected_at": _s("string", "When the phone can take it (RFC 3339, whole seconds): now, "
                      "or later under send_at and the phone's pacing; it is never handed out "
                      "earlier. A scheduled message held past 15 minutes is paced at its "
                      "release, so it may go later than this.", format="date-time"),
    "expected_in": _s("integer", "Seconds from this answer to expected_at (0: at once).",
                      minimum=0),
    "device_id": _nullable(_s("integer")), "sim_slot": _nullable(_s("integer")),
    "replayed": _s("boolean", "true: an earlier request with this idempotency_key made it."),
    "error": PROBLEM,
}, required=["phone_number", "status"])

SEND_RESULT = _s("object", properties={"messages": _s("array", items=ACCEPTED)},
                 required=["messages"])
MESSAGE_LIST = _s("object", properties={"messages": _s("array", items=MESSAGE),
                                        "next_cursor": _nullable(_s("string"))},
                  required=["messages", "next_cursor"])
DEVICE = _s("object", properties={
    "device_id": _s("integer"), "device_uid": _s("string"), "name": _s("string"),
    "status": _s("string", enum=["running", "stopped"]), "last_seen": _nullable(DATE_TIME),
    "sim_count": _nullable(_s("integer")), "battery": _nullable(_s("integer")),
    "signal": _nullable(_s("integer"))}, required=["device_id", "device_uid", "status"])
# One phone with its pacing (docs/pool.md), and the owner's change of it (JSON merge patch
# style: a field left out is unchanged, null puts back the gateway's default).
DEVICE_PATH = {"device_id": DEVICE_ID}
SIM_STATE = _s("object", properties={
    "sim_slot": _s("integer"), "next_free_at": _nullable(DATE_TIME),
    "paused": _s("boolean"), "paused_until": _nullable(DATE_TIME),
    "pause_reason": _nullable(_s("string"))}, required=["sim_slot", "paused"])
DEVICE_DETAIL = _s("object", properties={
    **DEVICE["properties"], "queue_depth": _nullable(_s("integer")),
    "pace_per_hour": _nullable(_s("integer", "Parts per hour per SIM (null: none).")),
    "pace_default": _s("boolean", "pace_per_hour is the gateway's default."),
    "window_parts": _nullable(_s("integer", "Parts per window for the whole phone, OTPs "
                                 "counted (null: no window).")),
    "window_minutes": _s("integer"), "window_used": _s("integer", "Parts in the window now."),
    "window_default": _s("boolean", "window_parts is the gateway's default."),
    "paused": _s("boolean"), "sims": _s("array", items=SIM_STATE)},
    required=[*DEVICE["required"], "pace_default", "window_default", "sims"])
DEVICE_PATCH = _s("object", properties={
    "pace_per_hour": _nullable(_s("integer", "SMS parts per hour each SIM may send; null: the "
                                  "gateway's default.", minimum=1,
                                  maximum=settings.current().max_pace_per_hour)),
    "window_parts": _nullable(_s("integer", "SMS parts per 30 minutes for the whole phone "
                                 "(Android's limit; docs/pool.md); 0: no window (the phone's "
                                 "limit was raised); null: the gateway's default.", minimum=0,
                                 maximum=settings.current().max_window_parts))},
    additionalProperties=False)
OTP_BODY = _s("object", properties={
    "phone_number": PHONE, "device_id": DEVICE_ID,
    "length": _s("integer", "Digits of the code.", minimum=otp.LENGTHS[0],
                 maximum=otp.LENGTHS[1]),
    "expiry": _s("integer", "Minutes the code stays valid.", minimum=otp.EXPIRY_MINUTES[0],
                 maximum=otp.EXPIRY_MINUTES[1]),
    "message": _s("string", "Template with {otp} (and optionally {expiry}).", minLength=1,
                  maxLength=1000),
}, required=["phone_number"], additionalProperties=False)
OTP_SENT = _s("object", properties={
    "id": _s("integer"), "phone_number": _s("string"), "status": _s("string"),
    "expires_at": DATE_TIME, "expires_in": _s("integer")}, required=["id", "expires_at"])
VERIFY_BODY = _s("object", properties={
    "phone_number": PHONE, "otp_code": _s("string", minLength=1, maxLength=16)},
    required=["phone_number", "otp_code"], additionalProperties=False)
VERIFIED = _s("object", properties={"verified": _s("boolean")}, required=["verified"])

LIST_QUERY = {
    "direction": _s("string", "outgoing, incoming or all (default).",
                    enum=["all", "outgoing", "incoming"]),
    "status": _s("string", enum=STATUSES),
    "device_id": DEVICE_ID,
    "phone_number": PHONE,
    "since": _s("string", "Created at or after this time.", format="date-time"),
    "until": _s("string", "Created before this time.", format="date-time"),
    "limit": _s("integer", "Page size (default 20).", minimum=1, maximum=100),
    "cursor": _s("string", "next_cursor of the previous page.", minLength=1, maxLength=512),
}
MESSAGE_ID = {"message_id": _s("integer", minimum=0, maximum=2 ** 53 - 1)}

# --- webhooks (docs/webhooks.md): endpoints, their secret, the delivery log -------------------
EVENT_TYPE = _s("string", enum=list(events.TYPES))
WEBHOOK_ID = {"webhook_id": _s("string", "wh_ and 16 hex digits.", pattern=r"^wh_[0-9a-f]{16}$")}
EVENT_ID = {**WEBHOOK_ID, "event_id": _s("string", "An event's id (evt_...).",
                                         pattern=r"^evt_[0-9a-z_]{1,60}$")}
WEBHOOK = _s("object", properties={
    "webhook_id": _s("string"), "url": _s("string"), "events": _s("array", items=EVENT_TYPE),
    "description": _s("string"),
    "status": _s("string", "failing: recent attempts failed, still retried; disabled: by the "
                 "owner or after days of failures (see disabled_reason).",
                 enum=["enabled", "failing", "disabled"]),
    "disabled_reason": _nullable(_s("string")), "disabled_at": _nullable(DATE_TIME),
    "failing_since": _nullable(DATE_TIME), "failures": _s("integer"),
    "last_error": _nullable(_s("string")), "last_success_at": _nullable(DATE_TIME),
    "created_at": DATE_TIME,
    "rotation_ends": _nullable(_s("string", "Until then the previous secret also signs.",
                                  format="date-time")),
    "secret": _s("string", "Only in the answers of create and rotate-secret: keep it, it is "
                 "not shown again."),
}, required=["webhook_id", "url", "events", "status", "created_at"])
WEBHOOK_BODY = _s("object", properties={
    "url": _s("string", "https URL that receives the events (POST).", minLength=1,
              maxLength=2048, pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://",
              examples=["http://127.0.0.1:9/smsgw-hook"]),
    "events": _s("array", "Event types to send (default: all).", items=EVENT_TYPE, minItems=1,
                 maxItems=len(events.TYPES)),
    "description": _s("string", maxLength=200),
}, required=["url"], additionalProperties=False)
ENABLE_BODY = _s("object", properties={
    "enabled": _s("boolean", "false stops deliveries (events are logged skipped); true "
                  "resumes them and clears the failure stretch.")},
    required=["enabled"], additionalProperties=False)
ROTATE_BODY = _s("object", properties={
    "overlap": _s("integer", "Seconds the previous secret keeps signing too (default 86400).",
                  minimum=0, maximum=7 * 86400)}, additionalProperties=False)
REDELIVER_BODY = _s("object", properties={
    "since": _s("string", "Every delivery that ended dead or skipped with a last attempt at or "
                "after this time.", format="date-time")},
    required=["since"], additionalProperties=False)
ATTEMPT = _s("object", properties={
    "at": DATE_TIME, "status_code": _nullable(_s("integer")), "latency_ms": _s("integer"),
    "error": _nullable(_s("string"))}, required=["at", "latency_ms"])
DELIVERY = _s("object", properties={
    "event_id": _s("string"), "type": _s("string"),
    "state": _s("string", "retrying, delivered, dead (retries ran out) or skipped (endpoint "
                "disabled).", enum=["retrying", "delivered", "dead", "skipped"]),
    "attempts": _s("integer"), "created_at": DATE_TIME, "last_at": DATE_TIME,
    "next_at": _nullable(DATE_TIME), "log": _s("array", items=ATTEMPT),
    "body": _s("string", "The event exactly as sent (GET of one delivery only)."),
}, required=["event_id", "type", "state", "attempts", "log"])
DELIVERY_QUERY = {
    "state": _s("string", enum=["retrying", "delivered", "dead", "skipped"]),
    "limit": _s("integer", "Page size (default 20).", minimum=1, maximum=100),
    "cursor": _s("string", "next_cursor of the previous page.", minLength=1, maxLength=512),
}
QUEUED = _s("object", properties={"webhook_id": _s("string"),
                                  "queued": _s("array", "Event ids queued for delivery.",
                                               items=_s("string"))},
            required=["webhook_id", "queued"])
_HOOK_ERRORS = (400, 401, 403, 404, 429)


_COUNTS = {name: _s("integer", minimum=0) for name in
           ("delivered", "sent", "failed", "expired", "cancelled", "received")}
STATS = _s("object", properties={
    "days": _s("array", items=_s("object", properties={
        "day": _s("string", "UTC day, YYYY-MM-DD."), **_COUNTS}, required=["day", *_COUNTS])),
    "totals": _s("object", properties=_COUNTS, required=list(_COUNTS)),
    "phones": _s("array", items=_s("object", properties={
        "device_id": _s("integer"), **_COUNTS,
        "delivery_rate": _nullable(_s("number", "delivered / sent (null: nothing sent).")),
        "median_accept_to_sent_seconds": _nullable(_s(
            "integer", "Upper bound of the histogram bucket (2, 5, 10, 30, 60, 300, 900, 3600, "
            "21600 s) holding the median; -1: longer; null: nothing sent.")),
        "failures_by_reason": _s("object", "Failed and expired messages per reason.")},
        required=["device_id", *_COUNTS, "delivery_rate", "median_accept_to_sent_seconds",
                  "failures_by_reason"]))},
    required=["days", "totals", "phones"])


# --- recipients' opt-outs (docs/opt-outs.md) --------------------------------------------------
OPT_OUT = _s("object", properties={
    "phone_number": _s("string"), "opted_out": _s("boolean"),
    "source": _s("string", "sms: the recipient's keyword; owner: listed by the account.",
                 enum=["sms", "owner"]),
    "keyword": _nullable(_s("string")), "changed_at": DATE_TIME,
    "changed": _s("boolean", "False when it already was so (nothing written).")},
    required=["phone_number", "opted_out"])
OPT_OUT_BODY = _s("object", properties={"phone_number": PHONE}, required=["phone_number"],
                  additionalProperties=False)
OPT_OUT_PATH = {"phone_number": _s("string", "The number, E.164 (+ may be %2B).", minLength=1,
                                   maxLength=40)}


@dataclass
class Operation:
    op_id: str
    method: str
    path: str
    summary: str
    ok: int
    answer: dict | None
    body: dict | None = None
    body_required: bool = True
    query: dict = field(default_factory=dict)
    path_params: dict = field(default_factory=dict)
    errors: tuple = (400, 401, 403, 422, 429)
    auth: bool = True
    media: str = "application/json"
    links: dict = field(default_factory=dict)  # OpenAPI links: name -> (operationId, params)


OPERATIONS = [
    Operation("sendMessages", "POST", "/v1/messages", "Send one SMS to each recipient (bulk, "
              "scheduled), one message id per recipient.", 202, SEND_RESULT, body=SEND_BODY,
              errors=(400, 401, 403, 404, 409, 422, 429, 503), links={
                  "GetFirstMessage": ("getMessage", {"message_id":
                                                     "$response.body#/messages/0/id"}),
                  "CancelFirstMessage": ("cancelMessage", {"message_id":
                                                           "$response.body#/messages/0/id"})}),
    Operation("listMessages", "GET", "/v1/messages", "Messages, newest first, filtered, with "
              "cursor pagination.", 200, MESSAGE_LIST, query=LIST_QUERY),
    Operation("getMessage", "GET", "/v1/messages/{message_id}", "One message and its status.",
              200, MESSAGE, path_params=MESSAGE_ID, errors=(400, 401, 403, 404, 429)),
    Operation("cancelMessage", "DELETE", "/v1/messages/{message_id}", "Cancel a message no "
              "phone has taken yet (409 with its current status otherwise).", 200, MESSAGE,
              path_params=MESSAGE_ID, errors=(400, 401, 403, 404, 409, 429)),
    Operation("sendOtp", "POST", "/v1/otp", "Send a one-time passcode.", 202, OTP_SENT,
              body=OTP_BODY, errors=(400, 401, 403, 404, 422, 429, 503)),
    Operation("verifyOtp", "POST", "/v1/otp/verify", "Check a one-time passcode (single use).",
              200, VERIFIED, body=VERIFY_BODY),
    Operation("listDevices", "GET", "/v1/devices", "The account's phones and their status.",
              200, _s("object", properties={"devices": _s("array", items=DEVICE)},
                      required=["devices"])),
    Operation("getDevice", "GET", "/v1/devices/{device_id}", "One phone: its state, SIMs and "
              "pacing.", 200, DEVICE_DETAIL, path_params=DEVICE_PATH,
              errors=(400, 401, 403, 404, 429)),
    Operation("updateDevice", "PATCH", "/v1/devices/{device_id}", "Set a phone's pacing: the "
              "SIM rate and the phone's window.", 200, DEVICE_DETAIL, body=DEVICE_PATCH,
              path_params=DEVICE_PATH, errors=(400, 401, 403, 404, 415, 422, 429)),
    Operation("listWebhooks", "GET", "/v1/webhooks", "The account's webhook endpoints.", 200,
              _s("object", properties={"webhooks": _s("array", items=WEBHOOK)},
                 required=["webhooks"]), errors=(400, 401, 403, 429)),
    Operation("createWebhook", "POST", "/v1/webhooks", "Add an endpoint; the answer holds its "
              "signing secret, shown this once.", 201, WEBHOOK, body=WEBHOOK_BODY,
              errors=(400, 401, 403, 409, 422, 429), links={
                  name: (target, {"webhook_id": "$response.body#/webhook_id"})
                  for name, target in [
                      ("GetWebhook", "getWebhook"), ("TestWebhook", "testWebhook"),
                      ("Deliveries", "listWebhookDeliveries"),
                      ("UpdateWebhook", "updateWebhook"), ("DeleteWebhook", "deleteWebhook"),
                      ("RotateSecret", "rotateWebhookSecret"),
                      ("RedeliverFailed", "redeliverFailedWebhookEvents")]}),
    Operation("getWebhook", "GET", "/v1/webhooks/{webhook_id}", "One endpoint and its status.",
              200, WEBHOOK, path_params=WEBHOOK_ID, errors=_HOOK_ERRORS),
    Operation("updateWebhook", "PATCH", "/v1/webhooks/{webhook_id}", "Disable or enable an "
              "endpoint.", 200, WEBHOOK, body=ENABLE_BODY, path_params=WEBHOOK_ID,
              errors=_HOOK_ERRORS),
    Operation("deleteWebhook", "DELETE", "/v1/webhooks/{webhook_id}", "Remove an endpoint "
              "(queued deliveries to it are dropped).", 200,
              _s("object", properties={"webhook_id": _s("string"), "deleted": _s("boolean")},
                 required=["webhook_id", "deleted"]), path_params=WEBHOOK_ID,
              errors=_HOOK_ERRORS),
    Operation("testWebhook", "POST", "/v1/webhooks/{webhook_id}/test", "Send a webhook.test "
              "event to the endpoint (its outcome appears in the delivery log).", 202,
              _s("object", properties={"webhook_id": _s("string"), "event_id": _s("string")},
                 required=["webhook_id", "event_id"]), path_params=WEBHOOK_ID,
              errors=_HOOK_ERRORS, links={
                  name: (target, {"webhook_id": "$response.body#/webhook_id",
                                  "event_id": "$response.body#/event_id"})
                  for name, target in [("GetDelivery", "getWebhookDelivery"),
                                       ("Redeliver", "redeliverWebhookEvent")]}),
    Operation("rotateWebhookSecret", "POST", "/v1/webhooks/{webhook_id}/rotate-secret",
              "A new signing secret (shown this once); the previous one also signs during "
              "`overlap`.", 200, WEBHOOK, body=ROTATE_BODY, body_required=False,
              path_params=WEBHOOK_ID, errors=(400, 401, 403, 404, 409, 429)),
    Operation("listWebhookDeliveries", "GET", "/v1/webhooks/{webhook_id}/deliveries",
              "The delivery log, newest attempt first, with cursor pagination.", 200,
              _s("object", properties={"deliveries": _s("array", items=DELIVERY),
                                       "next_cursor": _nullable(_s("string"))},
                 required=["deliveries", "next_cursor"]), query=DELIVERY_QUERY,
              path_params=WEBHOOK_ID, errors=(400, 401, 403, 404, 422, 429)),
    Operation("getWebhookDelivery", "GET", "/v1/webhooks/{webhook_id}/deliveries/{event_id}",
              "One event's delivery: state, every attempt, the body sent.", 200, DELIVERY,
              path_params=EVENT_ID, errors=_HOOK_ERRORS),
    Operation("redeliverWebhookEvent", "POST",
              "/v1/webhooks/{webhook_id}/deliveries/{event_id}/redeliver", "Send one event "
              "again (same id and body, a fresh retry schedule).", 202, QUEUED,
              path_params=EVENT_ID, errors=_HOOK_ERRORS),
    Operation("redeliverFailedWebhookEvents", "POST", "/v1/webhooks/{webhook_id}/redeliver",
              "Send again every event whose delivery ended dead or skipped since a time.", 202,
              QUEUED, body=REDELIVER_BODY, path_params=WEBHOOK_ID,
              errors=(400, 401, 403, 404, 422, 429)),
    # The owner's insight (chalicelib/domain/insight/stats.py): the dashboard's charts as JSON.
    Operation("getStats", "GET", "/v1/stats", "Messages per day by outcome and incoming per "
              "day (UTC days, today last), and per phone: sent, failed, delivery rate, median "
              "time from accept to sent, failures by reason. Counted as it happens (up to 15 "
              "minutes behind); one read whatever the volume.", 200, STATS,
              query={"days": _s("integer", "How many days, today included (default 30).",
                                minimum=1, maximum=30)}),
    Operation("listOptOuts", "GET", "/v1/opt-outs", "Numbers that opted out of the account's "
              "messages (replied STOP, or listed by the owner), newest first: sends to them "
              "are refused with opted_out.", 200,
              _s("object", properties={"opt_outs": _s("array", items=OPT_OUT)},
                 required=["opt_outs"]), errors=(400, 401, 403, 429)),
    Operation("addOptOut", "POST", "/v1/opt-outs", "List a number (it asked elsewhere not to "
              "be sent to).", 200, OPT_OUT, body=OPT_OUT_BODY,
              errors=(400, 401, 403, 415, 422, 429)),
    Operation("removeOptOut", "DELETE", "/v1/opt-outs/{phone_number}", "Take a number off "
              "(it asked to receive again; a START from it does the same).", 200, OPT_OUT,
              path_params=OPT_OUT_PATH, errors=(400, 401, 403, 422, 429)),
    # Leaving with the data (chalicelib/domain/export.py): a zip of CSV and JSON files.
    Operation("exportAccount", "GET", "/v1/export", "The account's data as a zip: outgoing and "
              "incoming messages, phones, webhook endpoints (without secrets) and opt-outs, "
              "each as CSV and JSON. An export past the answer's bound is refused with 413 "
              "(export_too_large): export it with the CLI, `smsgw account export`.", 200,
              {"type": "string", "format": "binary"}, media="application/zip",
              errors=(400, 401, 403, 413, 429)),
    Operation("openapi", "GET", "/v1/openapi.json", "This document.", 200, _s("object"),
              auth=False, errors=()),
    Operation("docs", "GET", "/v1/docs", "API reference page (HTML).", 200, None, auth=False,
              errors=(), media="text/html"),
]
BY_ROUTE = {(op.method, op.path): op for op in OPERATIONS}


for _op in OPERATIONS:
    for _schema in [_op.body or {}, *(_op.query or {}).values(), *_op.path_params.values()]:
        check_known(_schema)


