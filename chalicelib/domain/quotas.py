"""The operator's quotas per account: messages per day, phones, webhook endpoints and API
requests per minute. Each is the account's own (set by an operator, domain/operators.py) or
the stage's default (the settings' quota_*); 0 is no limit. A refused request is a
QuotaExceeded that names the quota, its limit and, for a quota of a period, when it resets.

How each holds (docs/operator.md has the argument in full):
- messages per day: a counter item per account and UTC day in the `throttles` table, raised by
  a conditional `ADD 1 IF < limit` inside the transaction that writes the message
  (records.save_new): the send's write and its count commit together or not at all, so however
  many Lambdas send at once, exactly `limit` messages are accepted in a day. No AWS call is
  added: the message's PutItem becomes that TransactWriteItems (an account without the quota
  keeps its PutItem). Idempotent replays and refused sends count nothing.
- phones: `Account.phone_count`, raised by registration's existing UpdateItem of the account
  (`ADD next_device_id 1, phone_count 1 IF phone_count < limit`) and lowered by removal.
- webhook endpoints: the add's transaction, conditional on the account's add counter being
  unchanged since it counted the endpoints (domain/webhooks).
- API requests per minute: counted per container, in memory, per API key's account: exact in
  one container, at most (warm containers serving the account) x limit across them. A shared
  counter would cost a write per request (a warm send would go from 3 calls to 4); the stage's
  API throttle and the daily quota bound what that approximation lets through.
"""
import math
import threading
from dataclasses import dataclass

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, QuotaExceeded

DAY_MS = 86400 * 1000
MINUTE_MS = 60 * 1000
MAX_VALUE = 10_000_000


@dataclass(frozen=True)
class Quota:
    name: str  # as the API, the CLI and the console name it
    attribute: str  # the Account attribute of the account's own value
    label: str
    default_setting: str  # the Settings field of the stage's default

    def default(self) -> int:
        return getattr(settings.current(), self.default_setting)


MESSAGES_PER_DAY = Quota("messages_per_day", "quota_messages_per_day", "messages per day",
                         "quota_messages_per_day")
PHONES = Quota("phones", "quota_phones", "phones", "quota_phones")
WEBHOOKS = Quota("webhook_endpoints", "quota_webhooks", "webhook endpoints",
                 "webhook_max_per_account")
REQUESTS_PER_MINUTE = Quota("api_requests_per_minute", "quota_requests_per_minute",
                            "API requests per minute", "quota_requests_per_minute")
QUOTAS = {q.name: q for q in (MESSAGES_PER_DAY, PHONES, WEBHOOKS, REQUESTS_PER_MINUTE)}


def limit(account, quota: Quota) -> int:
    """The account's limit (0: none): its own, else the stage's default."""
    own = getattr(account, quota.attribute, None)
    return int(own) if own is not None else quota.default()


def describe(account) -> list[dict]:
    """Every quota of the account, for the console and the CLI."""
    return [{"name": q.name, "label": q.label, "limit": limit(account, q),
             "own": getattr(account, q.attribute, None) is not None,
             "default": q.default()} for q in QUOTAS.values()]


def parse(name: str, value) -> tuple[Quota, int | None]:
    """An operator's input: a quota's name and a whole number (0: no limit), or "default"/""
    (None: back to the stage's default)."""
    quota = QUOTAS.get((name or "").strip())
    if quota is None:
        raise BadRequest(f"Unknown quota '{str(name)[:40]}': one of {', '.join(QUOTAS)}.",
                         "quota")
    text = str(value if value is not None else "").strip().lower()
    if text in ("", "default"):
        return quota, None
    if not text.isascii() or not text.isdigit() or int(text) > MAX_VALUE:
        raise BadRequest(f"A quota is a whole number from 0 (no limit) to {MAX_VALUE:,}, or "
                         "'default'.", "value")
    return quota, int(text)


def _utc(ms: int) -> str:
    return clock.fmt(ms) + " UTC"


def refuse_period(quota: Quota, limit_value: int, resets_at: int) -> QuotaExceeded:
    wait = max(1, math.ceil((resets_at - clock.now_ms()) / 1000))
    return QuotaExceeded(f"Quota exceeded: this account may make {limit_value} "
                         f"{quota.label}; it resets at {_utc(resets_at)} (in {wait} s).",
                         quota=quota.name, limit=limit_value, resets_at=resets_at,
                         retry_after=wait)


def refuse_count(quota: Quota, limit_value: int, parameter: str | None = None) -> QuotaExceeded:
    return QuotaExceeded(f"Quota exceeded: this account may have {limit_value} "
                         f"{quota.label}; remove one first, or ask the operator for more.",
                         quota=quota.name, limit=limit_value, parameter=parameter)


# Messages per day ---------------------------------------------------------------------------

def _day(now_ms: int) -> tuple[str, int]:
    """The UTC day of `now_ms` as YYYY-MM-DD, and when it ends (epoch ms)."""
    start = now_ms - now_ms % DAY_MS
    return clock.at(start).strftime("%Y-%m-%d"), start + DAY_MS


def day_of(now_ms: int) -> str:
    """The UTC day of `now_ms` as its counters name it."""
    return _day(now_ms)[0]


def day_counter(account_id: str, day: str):
    from chalicelib.storage.dashboard_tables import Throttle  # only accounts with the quota
    return Throttle(key=f"quota-day#{account_id}#{day}")


@dataclass(frozen=True)
class DayCount:
    """The counter update a send's transaction carries (records.save_new `count`)."""
    item: object  # a dashboard_tables.Throttle
    actions: list
    condition: object
    refused: QuotaExceeded


def day_count(account) -> DayCount | None:
    """The messages-per-day counter's conditional update for one more message of `account`
    (as read within AUTH_CACHE_SECONDS), or None when the account has no such quota."""
    cap = limit(account, MESSAGES_PER_DAY)
    if cap <= 0:
        return None
    day, ends = _day(clock.now_ms())
    item = day_counter(account.account_id, day)
    Throttle = type(item)
    return DayCount(item, [Throttle.attempts.add(1), Throttle.expires.set(clock.at(ends + DAY_MS))],
                    Throttle.attempts.does_not_exist() | (Throttle.attempts < cap),
                    refuse_period(MESSAGES_PER_DAY, cap, ends))


_spent = {}  # (account_id, day, limit) -> True: this container saw the day's quota refuse


def check_spent(account) -> None:
    """Refuse at once a send of an account whose day this container saw refused (before the
    send books its phone's pace); a raised limit or a new day is another key."""
    tally = day_count(account)
    if tally is not None and (account.account_id, tally.item.key, tally.refused.extra["limit"]) \
            in _spent:
        raise tally.refused


def note_spent(account_id: str, tally: DayCount) -> None:
    if len(_spent) > 10_000:
        _spent.clear()
    _spent[(account_id, tally.item.key, tally.refused.extra["limit"])] = True


def start_counting(account_id: str) -> int:
    """The quota was just set: today's counter starts at the messages already made today (one
    COUNT Query of the account's messages since midnight UTC), unless it is counting already.
    Returns today's count. (A send in flight while this counts may be missed: at most the
    account's concurrent sends of that moment.)"""
    from chalicelib.core import ids
    from chalicelib.storage.model_base import update_if
    from chalicelib.storage.tables import Message
    now = clock.now_ms()
    day, ends = _day(now)
    made = Message.count(account_id, Message.message_id >= ids.message_id_floor(ends - DAY_MS),
                         consistent_read=True)
    item = day_counter(account_id, day)
    Throttle = type(item)
    update_if(item, [Throttle.attempts.set(made), Throttle.expires.set(clock.at(ends + DAY_MS))],
              Throttle.attempts.does_not_exist())
    return sent_today(account_id)


def sent_today(account_id: str) -> int:
    """Messages counted against today's quota (0 when the account has none)."""
    from pynamodb.exceptions import DoesNotExist
    item = day_counter(account_id, _day(clock.now_ms())[0])
    try:
        return int(type(item).get(item.key, consistent_read=True).attempts)
    except DoesNotExist:
        return 0


# API requests per minute (per container) ------------------------------------------------------

_lock = threading.Lock()
_minutes = {}  # account_id -> [minute start, requests counted]


def take_request(account_id: str, limit_value: int) -> None:
    """Count one API request of the account in this container's current minute, or refuse it."""
    if limit_value <= 0:
        return
    now = clock.now_ms()
    start = now - now % MINUTE_MS
    with _lock:
        counted = _minutes.get(account_id)
        if counted is None or counted[0] != start:
            if len(_minutes) > 10_000:
                _minutes.clear()
            counted = _minutes[account_id] = [start, 0]
        if counted[1] >= limit_value:
            raise refuse_period(REQUESTS_PER_MINUTE, limit_value, start + MINUTE_MS)
        counted[1] += 1


def forget_cached() -> None:
    with _lock:
        _minutes.clear()
        _spent.clear()
