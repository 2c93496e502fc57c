"""SMSGate's webhook event names, as its client API takes them (POST /3rdparty/v1/webhooks) and
shows an endpoint: each is one or more of our event types (domain/webhooks/events.py). The
body and signature SMSGate's receivers expect are built where deliveries are made
(domain/webhooks/smsgate.py)."""
from chalicelib.core.errors import BadRequest
from chalicelib.storage.webhook_tables import Webhook

# SMSGate's event -> ours. An SMSGate `sms:failed` is also our `sms.expired` (it has no such).
EVENTS = {"sms:received": ["sms.received"], "sms:sent": ["sms.sent"],
          "sms:delivered": ["sms.delivered"], "sms:failed": ["sms.failed", "sms.expired"],
          "sms:cancelled": ["sms.cancelled"]}
NOT_SENT = ("sms:data-received", "mms:received", "mms:downloaded", "system:ping",
            "app:started", "sms:batch:received", "sms:batch:data-received",
            "mms:batch:received", "mms:batch:downloaded")


def our_events(event: str) -> list[str]:
    if event in EVENTS:
        return EVENTS[event]
    if event in NOT_SENT:  # SMSGate has it; this gateway never produces it
        raise BadRequest(f"Event {event} is not supported: this gateway never produces it; "
                         f"supported: {', '.join(EVENTS)}.", "event", code="not_supported")
    raise BadRequest(f"Invalid event {str(event)[:40]}: unknown event; supported: "
                     f"{', '.join(EVENTS)}.", "event")


def describe(webhook: Webhook) -> dict:
    """An endpoint as SMSGate's client API shows it."""
    return {"id": webhook.webhook_id, "url": webhook.url, "event": webhook.smsgate_event,
            "deviceId": webhook.device_uid}

