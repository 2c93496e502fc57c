"""The webhook queue's function: send each delivery job, log the attempt, and while it fails
put it back on the queue for the next try, until the retry schedule (about 26 h) runs out and
the delivery is recorded `dead` (the dead-letter record, redeliverable from the CLI).

Waits longer than SQS's 15-minute maximum delay are made of hops: the job carries its due time
(`d`), and a job received before it is due is sent back with the rest of the wait (at most
15 min per hop; a 10 h wait is 40 hops, 40 SQS requests). No table and no sweep is needed, and
a job is never deleted from the queue before its successor is queued (Lambda deletes the
received message only when this function returns), so a crash repeats a step, never loses one.

An endpoint with no success for WEBHOOK_DISABLE_AFTER_SECONDS and at least
WEBHOOK_DISABLE_MIN_FAILURES failed attempts in a row is disabled automatically; jobs reaching a
disabled endpoint are logged `skipped` (redeliver --since brings them back once re-enabled).
"""
import json
import logging
import random
from concurrent.futures import ThreadPoolExecutor

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.core import clock, settings
from chalicelib.core.cache import TTLCache
from chalicelib.domain import webhooks
from chalicelib.domain.webhooks import sender as webhook_sender
from chalicelib.storage.webhook_tables import Attempt, Webhook, WebhookDelivery

log = logging.getLogger("smsgw")

# Seconds to wait after failed attempt 1, 2, ... : 11 attempts over about 26 hours.
RETRY_DELAYS = (10, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 36000)
MAX_HOP_SECONDS = 900  # SQS's maximum DelaySeconds
JITTER = 0.1
_webhooks = TTLCache(lambda: settings.current().webhook_cache_seconds)


def retry_delay_ms(attempt: int) -> int | None:
    """Milliseconds before the attempt after failed `attempt` (None: no more attempts)."""
    if attempt > len(RETRY_DELAYS):
        return None
    seconds = RETRY_DELAYS[attempt - 1] * settings.current().webhook_retry_scale
    return int(seconds * 1000 * random.uniform(1 - JITTER, 1 + JITTER))


def _webhook(account_id: str, webhook_id: str) -> Webhook | None:
    key = (account_id, webhook_id)
    found = _webhooks.get(key)
    if found is None:
        try:
            found = Webhook.get(account_id, webhook_id)
        except DoesNotExist:
            return None
        _webhooks.put(key, found)
    return found


def forget_cached() -> None:
    _webhooks.clear()


def _record(job: dict, state: str, outcome, next_at: int | None) -> None:
    """One UpdateItem: the attempt appended to the event's log item (made on first use)."""
    now = clock.now_ms()
    item = WebhookDelivery(webhook_id=job["w"], event_id=job["e"])
    actions = [WebhookDelivery.account_id.set(job["a"]), WebhookDelivery.type.set(job["t"]),
               WebhookDelivery.body.set(WebhookDelivery.body | job["b"]),
               WebhookDelivery.state.set(state), WebhookDelivery.last_at.set(now),
               WebhookDelivery.created_at.set(WebhookDelivery.created_at | job["f"]),
               WebhookDelivery.retain_until.set(clock.at(
                   now + settings.current().webhook_log_days * 86400 * 1000))]
    if outcome is not None:
        entry = Attempt(at=now, status_code=outcome.status_code, latency_ms=outcome.latency_ms,
                        error=outcome.error)
        actions += [WebhookDelivery.attempts.add(1),
                    WebhookDelivery.log.set((WebhookDelivery.log | []).append([entry]))]
    actions.append(WebhookDelivery.next_at.set(next_at) if next_at
                   else WebhookDelivery.next_at.remove())
    try:
        item.update(actions=actions)
    except Exception:  # the attempt happened; losing its log line must not repeat it
        log.exception("webhook delivery log write failed for %s/%s", job["w"], job["e"])


def _own_copy(webhook: Webhook) -> Webhook:
    """A record of the endpoint for this thread to update: the one `_webhook` gave may be the
    cached one the batch's other threads are reading, and PynamoDB's update empties an item's
    values before refilling them from the answer."""
    return Webhook(account_id=webhook.account_id, webhook_id=webhook.webhook_id)


def _failed(webhook: Webhook, outcome) -> None:
    """Count a failed attempt on the endpoint; disable it after a long failure stretch."""
    now = clock.now_ms()
    webhook = _own_copy(webhook)
    try:
        webhook.update(actions=[Webhook.failing_since.set(Webhook.failing_since | now),
                                Webhook.failures.add(1),
                                Webhook.last_error.set((outcome.error or "")[:300])],
                       condition=Webhook.webhook_id.exists())
    except UpdateError:
        return
    stretch = now - (webhook.failing_since or now)
    limits = settings.current()
    if webhook.state == "enabled" and webhook.failures >= limits.webhook_disable_min_failures \
            and stretch >= limits.webhook_disable_after_seconds * 1000:
        reason = (f"Disabled automatically: {webhook.failures} failed attempts in a row since "
                  f"{clock.fmt(webhook.failing_since)} UTC; last error: {outcome.error}")
        try:
            webhook.update(actions=[Webhook.state.set("disabled"),
                                    Webhook.disabled_at.set(now),
                                    Webhook.disabled_reason.set(reason[:500])],
                           condition=Webhook.state == "enabled")
            disabled_now = True
        except UpdateError:
            disabled_now = False  # another attempt disabled it (and told)
        forget_cached()
        webhooks.forget_cached()
        log.warning("webhook %s disabled: %s", webhook.webhook_id, reason)
        if disabled_now:  # to the account's other endpoints, and an alert mail
            webhooks.notice_disabled(webhook, reason, now)
            from chalicelib.domain.insight import alerts
            alerts.webhook_disabled(webhook.account_id, webhook.webhook_id, webhook.url,
                                    reason)


def _succeeded(webhook: Webhook) -> None:
    if webhook.failing_since or webhook.failures:
        try:
            _own_copy(webhook).update(
                actions=[Webhook.failing_since.remove(), Webhook.failures.set(0),
                         Webhook.last_success_at.set(clock.now_ms())],
                condition=Webhook.webhook_id.exists())
        except UpdateError:
            pass
        forget_cached()


def _headers(webhook: Webhook, job: dict, body: bytes) -> dict:
    timestamp = int(clock.now())
    if webhook.style == "smsgate":
        from chalicelib.domain.webhooks import smsgate
        return {**smsgate.headers(webhook.secret, timestamp, body), "X-Smsgw-Event-Id": job["e"]}
    return {"X-Smsgw-Timestamp": str(timestamp),
            "X-Smsgw-Signature": webhooks.signature_header(webhook, timestamp, body),
            "X-Smsgw-Event-Id": job["e"], "X-Smsgw-Event-Type": job["t"],
            "X-Smsgw-Webhook-Id": job["w"], "X-Smsgw-Attempt": str(job["n"])}


def handle(job: dict) -> tuple[str, dict | None, int]:
    """Work one job. Returns (what happened, the job to queue next or None, its delay s)."""
    now = clock.now_ms()
    if job.get("d") and job["d"] > now + 500:  # not due yet: another hop
        return "waiting", job, min(MAX_HOP_SECONDS, -(-(job["d"] - now) // 1000))
    webhook = _webhook(job["a"], job["w"])
    if webhook is None:
        return "gone", None, 0  # endpoint removed: nothing to log it under
    if webhook.state != "enabled":
        _record(job, "skipped", None, None)
        return "skipped", None, 0
    body = job["b"].encode()
    outcome = webhook_sender.post(webhook.url, body, _headers(webhook, job, body))
    if outcome.ok:
        _record(job, "delivered", outcome, None)
        _succeeded(webhook)
        return "delivered", None, 0
    _failed(webhook, outcome)
    wait = retry_delay_ms(job["n"])
    if wait is None:
        _record(job, "dead", outcome, None)
        return "dead", None, 0
    due = clock.now_ms() + wait
    _record(job, "retrying", outcome, due)
    return "retrying", {**job, "n": job["n"] + 1, "d": due}, min(MAX_HOP_SECONDS,
                                                                  -(-wait // 1000))


ERROR_RETRY_SECONDS = 60
MAX_ERRORS = 5
JOB_KEYS = {"w", "a", "e", "t", "n", "f", "b"}


def _guarded(job: dict) -> tuple[str, dict | None, int]:
    """handle(), but an unexpected error (a throttled read, a bug) costs this job a retry in a
    minute, not its batch-mates a redelivery; after MAX_ERRORS it goes to the dead-letter
    queue (alarmed), from where an operator can redrive it."""
    try:
        return handle(job)
    except Exception as exc:
        errors = job.get("x", 0) + 1
        log.exception("webhook job %s/%s failed (%d)", job.get("w"), job.get("e"), errors)
        if errors >= MAX_ERRORS:
            return "error-dead", {**job, "x": errors, "error": repr(exc)[:300]}, -1
        return "error", {**job, "x": errors}, ERROR_RETRY_SECONDS


def deliver(bodies: list[str]) -> dict:
    """The queue function's work for one batch of SQS message bodies, sent in parallel. The
    follow-up jobs are queued before returning; if that fails this raises, and Lambda receives
    the batch again (a repeat, never a loss)."""
    jobs = []
    for body in bodies:
        try:
            job = json.loads(body)
        except ValueError:
            job = None
        if not isinstance(job, dict) or not JOB_KEYS <= set(job):
            log.warning("dropping a malformed webhook job: %.200s", body)
            continue
        jobs.append(job)
    with ThreadPoolExecutor(max_workers=max(1, min(10, len(jobs)))) as pool:
        results = list(pool.map(_guarded, jobs))
    follow = [(nxt, delay) for _, nxt, delay in results if nxt is not None and delay >= 0]
    webhooks.send_jobs([j for j, _ in follow], [d for _, d in follow])
    webhooks.send_jobs([nxt for _, nxt, delay in results if nxt is not None and delay < 0],
                       dead_letter=True)
    counts = {}
    for what, _, _ in results:
        counts[what] = counts.get(what, 0) + 1
    return counts
