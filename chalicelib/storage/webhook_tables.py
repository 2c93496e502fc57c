"""Webhook endpoints of an account and the delivery log of the events sent to them.

An endpoint's secret is kept in clear (the gateway must sign with it; the table is encrypted at
rest); it is shown once when made. The delivery log holds one item per (endpoint, event): the
event's body, where its delivery stands, and every attempt (time, status code, latency, error),
kept WEBHOOK_LOG_DAYS by TTL; a `dead` item is the dead-letter record of an event whose retries
ran out.
"""
from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.storage.model_base import index_meta, table_meta


class Webhook(Model):
    Meta = table_meta("webhooks")
    account_id = UnicodeAttribute(hash_key=True)
    webhook_id = UnicodeAttribute(range_key=True)
    url = UnicodeAttribute()
    events = ListAttribute(of=UnicodeAttribute)
    description = UnicodeAttribute(default="")
    secret = UnicodeAttribute()
    # During a rotation the old secret still signs (a second signature) until `previous_until`.
    previous_secret = UnicodeAttribute(null=True)
    previous_until = NumberAttribute(null=True)
    state = UnicodeAttribute(default="enabled")  # enabled | disabled
    disabled_reason = UnicodeAttribute(null=True)
    disabled_at = NumberAttribute(null=True)
    created_at = NumberAttribute()
    # The current stretch of failed attempts (absent while the endpoint answers).
    failing_since = NumberAttribute(null=True)
    failures = NumberAttribute(default=0)
    last_error = UnicodeAttribute(null=True)
    last_success_at = NumberAttribute(null=True)
    # Registered through SMSGate's client API: its event name, body and signature headers
    # (domain/webhooks/smsgate.py); `device_uid` limits it to one phone's events.
    style = UnicodeAttribute(null=True)  # None (ours) | "smsgate"
    smsgate_event = UnicodeAttribute(null=True)
    device_uid = UnicodeAttribute(null=True)


class Attempt(MapAttribute):
    at = NumberAttribute()
    status_code = NumberAttribute(null=True)
    latency_ms = NumberAttribute()
    error = UnicodeAttribute(null=True)


class DeliveriesByTime(GlobalSecondaryIndex):
    """A webhook's deliveries by the time of their last attempt: `deliveries` lists newest
    first, `redeliver --since` finds the failed ones."""
    Meta = index_meta("by-time")
    webhook_id = UnicodeAttribute(hash_key=True)
    last_at = NumberAttribute(range_key=True)


class WebhookDelivery(Model):
    Meta = table_meta("webhook-deliveries")
    webhook_id = UnicodeAttribute(hash_key=True)
    event_id = UnicodeAttribute(range_key=True)
    account_id = UnicodeAttribute()
    type = UnicodeAttribute()
    body = UnicodeAttribute()  # the event exactly as sent (signatures are made per attempt)
    # retrying: another attempt is queued; delivered; dead: retries ran out (dead letter);
    # skipped: the endpoint was disabled when its turn came.
    state = UnicodeAttribute()
    attempts = NumberAttribute(default=0)
    log = ListAttribute(of=Attempt, default=list)
    created_at = NumberAttribute()
    last_at = NumberAttribute()
    next_at = NumberAttribute(null=True)
    retain_until = TTLAttribute()
    by_time = DeliveriesByTime()
