"""Webhook endpoints of an account (add, list, remove, enable, rotate a secret), signing, and
queueing events for delivery (the fan-out, `test`); the delivery log and `redeliver` are in
delivery_log.py.

Each (endpoint, event) pair travels as one SQS message on the stage's webhook queue; the queue
function (webhook_delivery) sends it and, while it fails, puts it back with a delay. Nothing
here makes an HTTP request, so the stream function stays light.

Signature: `X-Smsgw-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` with
`X-Smsgw-Timestamp: <unix seconds>`; during a rotation's overlap a second `v1=` (old secret)
follows, comma-separated.
"""
import functools
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import time

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core import clock, settings, text
from chalicelib.core.cache import TTLCache
from chalicelib.core.errors import BadRequest, Conflict, NotFound
from chalicelib.domain import accounts, quotas
from chalicelib.domain.accounts import get_account
from chalicelib.domain.webhooks import events as events_
from chalicelib.domain.webhooks import urls as webhook_urls
from chalicelib.storage import aws, records
from chalicelib.storage.model_base import update_if
from chalicelib.storage.tables import Account
from chalicelib.storage.webhook_tables import Webhook

log = logging.getLogger("smsgw")
ID_PATTERN = re.compile(r"^wh_[0-9a-f]{16}$")
SQS_BATCH = 10
MAX_OVERLAP_SECONDS = 7 * 86400
_endpoints = TTLCache(lambda: settings.current().webhook_cache_seconds)


# --- endpoints -----------------------------------------------------------------------------

def check_events(names) -> list[str]:
    chosen = sorted({n.strip() for n in names or [] if n and n.strip()}) or sorted(events_.TYPES)
    unknown = [n for n in chosen if n not in events_.TYPES]
    if unknown:
        raise BadRequest(f"Unknown event type {unknown[0]}. Known: {', '.join(events_.TYPES)}.",
                         "events")
    return chosen


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)  # 32 random bytes


def add(account_id: str, url: str, event_types=None, description: str = "",
        **style) -> Webhook:
    """A new endpoint (enabled). Its secret is in the returned record: show it once. `style`:
    attributes of another API's endpoint (SMSGate's: style, smsgate_event, device_uid, secret)."""
    get_account(account_id)  # an unknown account is a 404 before anything else
    chosen = check_events(event_types)
    description = text.name(description, parameter="description", what="A description",
                            max_chars=200, required=False)
    try:
        webhook_urls.check(url)
    except webhook_urls.Refused as refused:
        raise BadRequest(f"Refused url: {refused}.", "url")
    webhook = Webhook(account_id=account_id, webhook_id="wh_" + secrets.token_hex(8),
                      url=url.strip(), events=chosen,
                      description=description, secret=new_secret(), state="enabled",
                      created_at=clock.now_ms())
    for name, value in style.items():
        setattr(webhook, name, value)
    for attempt in range(ADD_ATTEMPTS):
        if _saved_within_cap(account_id, webhook):
            forget_cached()
            # This container's API keys are read again, so its next sends carry the events
            # stamp at once (other containers within SMSGW_AUTH_CACHE_SECONDS).
            accounts.forget_cached()
            return webhook
        time.sleep(random.uniform(0, 0.05 * 2 ** attempt))
    raise Conflict("Other webhook endpoints were being added at the same moment: try again.",
                   "url")


ADD_ATTEMPTS = 5


def _saved_within_cap(account_id: str, webhook: Webhook) -> bool:
    """Count the endpoints, then write the new one and bump `Account.webhook_adds` in one
    transaction, on condition that the counter is what it was before the count. Any add that
    committed after that read changed it, and any add before it is in the (consistent) count,
    so for every interleaving DynamoDB allows, a write that succeeds saw every other endpoint:
    the cap holds. (Removals only free room: they need not bump.) False: another add won."""
    account = get_account(account_id, consistent=True)
    seen, cap = account.webhook_adds, quotas.limit(account, quotas.WEBHOOKS)
    if cap > 0 and len(list_all(account_id)) >= cap:
        raise quotas.refuse_count(quotas.WEBHOOKS, cap, "url")
    unchanged = (Account.webhook_adds.does_not_exist() if seen is None
                 else Account.webhook_adds == seen)
    try:
        with TransactWrite(connection=records.transaction_connection()) as write:
            write.save(webhook, condition=Webhook.webhook_id.does_not_exist())
            write.update(Account(account_id=account_id),
                         actions=[Account.webhook_adds.set((seen or 0) + 1)],
                         condition=Account.account_id.exists() & unchanged)
    except TransactWriteError:
        return False  # the counter moved (or a conflicting transaction): count again
    return True


def count_old_endpoints() -> int:
    """Data written before `Account.webhook_adds` existed: endpoints whose account has no
    counter, so its messages are not stamped for events. Sets every counter-less account's
    counter to its endpoints (0 included, so each account is counted once; conditional on it
    still being absent, so a concurrent add's transaction just counts again); returns how many
    accounts had endpoints. The local gateway runs it when it restores its data."""
    fixed = 0
    for account in Account.scan(filter_condition=Account.webhook_adds.does_not_exist()):
        found = len(list_all(account.account_id))
        if update_if(Account(account_id=account.account_id), [Account.webhook_adds.set(found)],
                     Account.webhook_adds.does_not_exist()) and found:
            fixed += 1
    if fixed:
        accounts.forget_cached()
    return fixed


def list_all(account_id: str) -> list[Webhook]:
    return list(Webhook.query(account_id, consistent_read=True))


def get(account_id: str, webhook_id: str) -> Webhook:
    if not ID_PATTERN.match(webhook_id or ""):
        raise BadRequest("Invalid webhook_id: expected wh_ and 16 hex digits.", "webhook_id")
    try:
        return Webhook.get(account_id, webhook_id, consistent_read=True)
    except DoesNotExist:
        raise NotFound(f"Unknown webhook: no webhook {webhook_id} in this account.",
                       "webhook_id")


def remove(account_id: str, webhook_id: str) -> Webhook:
    webhook = get(account_id, webhook_id)
    webhook.delete()
    forget_cached()
    return webhook


def set_enabled(account_id: str, webhook_id: str, enabled: bool) -> Webhook:
    """Enable (clearing the failure stretch) or disable an endpoint by hand."""
    webhook = get(account_id, webhook_id)
    if enabled:
        actions = [Webhook.state.set("enabled"), Webhook.disabled_reason.remove(),
                   Webhook.disabled_at.remove(), Webhook.failing_since.remove(),
                   Webhook.failures.set(0)]
    else:
        actions = [Webhook.state.set("disabled"), Webhook.disabled_at.set(clock.now_ms()),
                   Webhook.disabled_reason.set("Disabled by the owner.")]
    if not update_if(webhook, actions, Webhook.webhook_id.exists()):
        raise NotFound(f"Unknown webhook: {webhook_id} was removed meanwhile.", "webhook_id")
    forget_cached()
    if enabled:  # an alert mail said it was disabled: say it is back
        from chalicelib.domain.insight import alerts
        alerts.webhook_enabled(account_id, webhook_id, webhook.url)
    return webhook


def rotate_secret(account_id: str, webhook_id: str, overlap_seconds: int = 86400) -> Webhook:
    """A new secret signs from now on; the old one also signs for `overlap_seconds`."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP_SECONDS:
        raise BadRequest(f"Invalid overlap: 0 to {MAX_OVERLAP_SECONDS} seconds.", "overlap")
    webhook = get(account_id, webhook_id)
    actions = [Webhook.secret.set(new_secret())]
    if overlap_seconds:
        actions += [Webhook.previous_secret.set(webhook.secret),
                    Webhook.previous_until.set(clock.now_ms() + overlap_seconds * 1000)]
    else:
        actions += [Webhook.previous_secret.remove(), Webhook.previous_until.remove()]
    if not update_if(webhook, actions, Webhook.secret == webhook.secret):  # or removed
        get(account_id, webhook_id)
        raise Conflict(f"The secret of {webhook_id} was rotated by another request meanwhile; "
                       "rotate again if you need a secret you know.", "webhook_id")
    forget_cached()
    return webhook


def status(webhook: Webhook) -> str:
    """What the owner sees: enabled, failing (still retried) or disabled."""
    if webhook.state != "enabled":
        return "disabled"
    return "failing" if webhook.failing_since else "enabled"


def describe(webhook: Webhook) -> dict:
    return {"webhook_id": webhook.webhook_id, "url": webhook.url, "events": webhook.events,
            "description": webhook.description, "status": status(webhook),
            "disabled_reason": webhook.disabled_reason,
            "disabled_at": clock.fmt(webhook.disabled_at),
            "failing_since": clock.fmt(webhook.failing_since),
            "failures": webhook.failures or 0, "last_error": webhook.last_error,
            "last_success_at": clock.fmt(webhook.last_success_at),
            "created_at": clock.fmt(webhook.created_at),
            "rotation_ends": clock.fmt(webhook.previous_until)
            if webhook.previous_until and webhook.previous_until > clock.now_ms() else None}


def forget_cached() -> None:
    _endpoints.clear()


# --- signing -------------------------------------------------------------------------------

def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signature_header(webhook: Webhook, timestamp: int, body: bytes) -> str:
    signatures = [signature(webhook.secret, timestamp, body)]
    if webhook.previous_secret and (webhook.previous_until or 0) > clock.now_ms():
        signatures.append(signature(webhook.previous_secret, timestamp, body))
    return ",".join(signatures)


# --- queueing --------------------------------------------------------------------------------

@functools.cache
def queue_url(dead_letter: bool = False) -> str:
    name = settings.current().webhook_queue_name(dead_letter)
    return aws.sqs().get_queue_url(QueueName=name)["QueueUrl"]


def ensure_queue() -> str:
    """Create the webhook queue if missing (local gateway and tests; AWS has the template's)."""
    queue_url.cache_clear()
    aws.sqs().create_queue(QueueName=settings.current().webhook_queue_name(dead_letter=True))
    return aws.sqs().create_queue(QueueName=settings.current().webhook_queue_name())["QueueUrl"]


def job(webhook: Webhook, event_id: str, event_type: str, body: str, attempt: int = 1,
        first_at: int | None = None, due_at: int | None = None) -> dict:
    """The SQS message body of one delivery."""
    return {"w": webhook.webhook_id, "a": webhook.account_id, "e": event_id, "t": event_type,
            "n": attempt, "f": first_at or clock.now_ms(), "d": due_at, "b": body}


def send_jobs(jobs: list[dict], delays: list[int] | None = None,
              dead_letter: bool = False) -> None:
    """Put delivery jobs on the queue (batches of 10); raises if any could not be queued, so
    the caller's trigger (stream batch, SQS message, CLI) retries instead of losing one."""
    delays = delays or [0] * len(jobs)
    for start in range(0, len(jobs), SQS_BATCH):
        entries = [{"Id": str(i), "MessageBody": json.dumps(j, separators=(",", ":")),
                    "DelaySeconds": max(0, min(900, int(delays[start + i])))}
                   for i, j in enumerate(jobs[start:start + SQS_BATCH])]
        for _ in range(3):
            failed = aws.sqs().send_message_batch(QueueUrl=queue_url(dead_letter),
                                                  Entries=entries).get("Failed") or []
            if not failed:
                break
            ids = {f["Id"] for f in failed}
            entries = [e for e in entries if e["Id"] in ids]
        else:
            raise RuntimeError(f"SQS refused {len(entries)} webhook deliveries: {failed[:1]}")


def subscribers(account_id: str) -> list[Webhook]:
    """The account's endpoints, cached for WEBHOOK_CACHE_SECONDS in a warm function."""
    found = _endpoints.get(account_id)
    if found is None:
        found = list(Webhook.query(account_id))
        _endpoints.put(account_id, found)
    return found


def body_of(event: events_.Event) -> str:
    return json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=False)


def fan_out(stream_records: list[dict]) -> int:
    """The stream function: one delivery job per (event, endpoint subscribed to its type).
    A disabled endpoint's jobs are logged `skipped` by the queue function, so `redeliver
    --since` can send what it missed once it is enabled again. Returns the jobs queued."""
    jobs = []
    for record in stream_records:
        try:
            found = events_.from_stream_record(record)
        except Exception:  # a record we cannot read must not block the stream behind it
            log.exception("skipping an unreadable stream record %s", record.get("eventID"))
            continue
        for event in found:
            ours = None
            for webhook in subscribers(event.account_id):
                if event.type not in webhook.events:
                    continue
                if webhook.style == "smsgate":  # a body per endpoint; None: not its device
                    from chalicelib.domain.webhooks import smsgate
                    body = smsgate.body(webhook, event)
                else:
                    body = ours = ours or body_of(event)
                if body:
                    jobs.append(job(webhook, event.id, event.type, body))
    send_jobs(jobs)
    return len(jobs)


def send_test(account_id: str, webhook_id: str) -> str:
    """Queue a `webhook.test` event to one endpoint; returns its event id."""
    webhook = get(account_id, webhook_id)
    event = events_.test_event(account_id, webhook_id)
    send_jobs([job(webhook, event.id, event.type, body_of(event))])
    return event.id


def notice_disabled(webhook: Webhook, reason: str, at: int) -> int:
    """A `webhook.disabled` event (also an alert mail's cause) to the account's other
    endpoints subscribed to it; its id is derived from the endpoint and the time it was
    disabled, so a retry carries the same id. Returns the jobs queued."""
    kind = "webhook.disabled"
    event = events_.Event(webhook.account_id, events_.event_id(
        webhook.account_id, kind, webhook.webhook_id, at), kind, at,
        str(at).zfill(events_.SEQUENCE_DIGITS),
        {"webhook_id": webhook.webhook_id, "url": webhook.url, "reason": reason})
    jobs = [job(other, event.id, kind, body_of(event))
            for other in subscribers(webhook.account_id)
            if other.webhook_id != webhook.webhook_id and kind in other.events]
    send_jobs(jobs)
    return len(jobs)
