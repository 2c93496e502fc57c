"""Daily counters per account and per phone, kept by the `count_outcomes` stream function, and
read back for the charts and GET /v1/stats.

Why a stream function of its own: the webhooks' mapping passes only messages of accounts with
an endpoint (`emits_events`) and invokes Lambda within a second; counting must see every
outcome, and a Lambda invocation per lone message would cost $0.20+ per million SMS. This
function's mapping passes every outcome but uses Lambda's tumbling windows (15 minutes): Lambda
hands the function each batch of a shard's window with the state the previous one returned,
and the function writes the window's sums once, at its final invocation.

Why a window is counted once: its sums and a `CountedWindow` mark (shard, window start, part)
are one DynamoDB transaction whose mark is written only if absent. A replayed or duplicated
final invocation (Lambda processes a stream at least once) meets the mark: the transaction is
cancelled as a whole and nothing is added. Two concurrent ones: transactions are serialisable,
so one commits; the other is cancelled by the mark's condition, or by a conflict and then, when
retried, by the condition. A crash before the commit wrote nothing (Lambda retries the window);
after it, the retry meets the mark. Which items a part holds is a pure function of the window's
state, so a retry splits the same sums into the same parts.

What is counted (a message is counted by the write that moves it into an outcome, which the
lifecycle's conditional transitions make happen once): sent, delivered, failed, expired,
cancelled per day of the outcome's own time, incoming per day received; per phone also the
failure reasons and a histogram of the time from accept to sent (HISTOGRAM_SECONDS), from which
the median is read to its bucket. A message the gateway presumed failed that a late report
shows sent is taken back out of `failed`.
"""
import datetime
import hashlib

from chalicelib.core import clock

OUTCOMES = ("delivered", "sent", "failed", "expired", "cancelled")
RECEIVED = "received"
COUNTERS = (*OUTCOMES, RECEIVED)
STAMP = {"sent": "processed_at", "delivered": "delivered_at", "failed": "failed_at"}
NOT_YET_SENT = (None, "pending", "processing")
# Upper bounds (seconds) of the accept-to-sent histogram's buckets h0..h8; h9 is anything longer.
HISTOGRAM_SECONDS = (2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600)
REASON_CHARS = 60
DAYS = 30
WINDOW_SECONDS = 900  # the tumbling window of the count_outcomes mapping (deploy/)
TRANSACTION_ITEMS = 100  # DynamoDB's limit; one of them is the window's mark
MARK_DAYS = 2
COUNTED_TABLES = ("messages", "incoming")


def day_of(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d")


def bucket_of(seconds: float) -> str:
    for i, bound in enumerate(HISTOGRAM_SECONDS):
        if seconds <= bound:
            return f"h{i}"
    return f"h{len(HISTOGRAM_SECONDS)}"


# --- counting: stream records -> sums -----------------------------------------------------

def _facts(record: dict) -> list[tuple[str, str, int | None, str, int]]:
    """(account, day, device_id, counter, +1/-1) for one stream record."""
    from chalicelib.domain.webhooks import events
    table = events._table(record)
    if record.get("eventName") == "REMOVE" or table not in ("messages", "incoming"):
        return []
    change = record["dynamodb"]
    old, new = events._plain(change.get("OldImage")), events._plain(change.get("NewImage"))
    at = events._record_ms(record)
    if table == "incoming":
        if old or not new:
            return []
        return [(new["account_id"], day_of(new.get("received_at") or at), new.get("device_id"),
                 RECEIVED, 1)]
    was, status = old.get("status"), new.get("status")
    if status not in OUTCOMES or status == was:
        return []
    account, device = new["account_id"], new.get("device_id")
    found = []

    def add(counter, stamp_ms, n=1):
        found.append((account, day_of(stamp_ms or at), device, counter, n))

    add(status, new.get(STAMP.get(status, ""), None))
    sent = status == "sent" or (status == "delivered" and was in NOT_YET_SENT)
    if status == "delivered" and was in NOT_YET_SENT:
        add("sent", new.get("processed_at"))
    if sent and new.get("processed_at") and new.get("created_at"):
        seconds = (new["processed_at"] - new["created_at"]) / 1000
        add(bucket_of(max(0.0, seconds)), new["processed_at"])
    if status in ("failed", "expired"):
        add("r:" + (new.get("reason") or status)[:REASON_CHARS], new.get("failed_at"))
    if was in ("failed", "expired") and status in ("sent", "delivered"):
        add(was, old.get("failed_at"), -1)  # a presumed failure the phone's late report undid
        add("r:" + (old.get("reason") or was)[:REASON_CHARS], old.get("failed_at"), -1)
    return found


def add_records(state: dict, records: list[dict]) -> dict:
    """The window's sums so far (`state`, as Lambda passes it back) plus `records`'."""
    sums = {key: dict(value) for key, value in (state or {}).items()}
    for record in records:
        for account, day, device, counter, n in _facts(record):
            keys = [f"{account}|{day}"] + ([f"{account}|{day}#{device}"] if device is not None
                                           else [])
            for key in keys:
                item = sums.setdefault(key, {})
                item[counter] = item.get(counter, 0) + n
    return sums


# The state's entry naming the first record of the window's run (not a counter key: those
# hold "|").
FIRST_RECORD = "first"


def window_id(event: dict, part: int, first: str | None = None) -> str:
    """The mark of one part of a window's run: shard, window start and the sequence number of
    the run's first record. When a window's state passes 1 MB, Lambda ends it early and the
    next invocation "continues the same window with a fresh state" (isWindowTerminatedEarly):
    the same start, other records. The first record tells the two runs apart, and a retried
    run (which starts again from the window's first batch) repeats it, so it counts once."""
    window = event.get("window") or {}
    raw = f"{event.get('eventSourceARN', '')}|{event.get('shardId', '')}|{window.get('start')}"
    if first:
        raw += f"|{first}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40] + f"#{part}"


def count_window(event: dict) -> dict:
    """The count_outcomes stream function (a tumbling-window invocation): adds the batch to the
    window's state; at the window's final invocation writes the sums. Returns the new state."""
    records = event.get("Records") or []
    if records and not event.get("eventSourceARN"):
        event = {**event, "eventSourceARN": records[0].get("eventSourceARN", "")}
    state = dict(event.get("state") or {})
    first = state.pop(FIRST_RECORD, None)
    if first is None and records:
        first = records[0].get("dynamodb", {}).get("SequenceNumber")
    sums = add_records(state, records)
    if not event.get("isFinalInvokeForWindow"):
        return {"state": {**sums, **({FIRST_RECORD: first} if first else {})}}
    keys = sorted(key for key, counters in sums.items() if any(counters.values()))
    per_part = TRANSACTION_ITEMS - 1
    for part, start in enumerate(range(0, len(keys), per_part)):
        written = {key: sums[key] for key in keys[start:start + per_part]}
        if commit(window_id(event, part, first), written):
            _alert_expiries(written)
    return {"state": {}}


def _alert_expiries(written: dict) -> None:
    """Messages that expired unsent in a window just counted: an alert mail per account."""
    from chalicelib.domain.insight import alerts
    expired = {}
    for key, counters in written.items():
        account, day = key.split("|", 1)
        if "#" not in day and counters.get("expired", 0) > 0:
            expired[account] = expired.get(account, 0) + counters["expired"]
    for account, n in expired.items():
        try:
            alerts.expired(account, n)
        except Exception:  # counted already; a mail must not make Lambda count it again
            import logging
            logging.getLogger("smsgw").exception("expiry alert for %s failed", account)


def commit(mark: str, sums: dict) -> bool:
    """Add `sums` ({"account|day": {counter: n}}) and write the mark `mark`, in one transaction
    that is cancelled if the mark exists. True if it applied, False if already counted."""
    from chalicelib.storage import records
    from chalicelib.storage.insight_tables import CountedWindow, DailyCount
    now = clock.now_ms()
    items = [{"Put": {"TableName": CountedWindow.Meta.table_name,
                      "Item": {"window_id": {"S": mark}, "counted_at": {"N": str(now)},
                               "expires": {"N": str(now // 1000 + MARK_DAYS * 86400)}},
                      "ConditionExpression": "attribute_not_exists(window_id)"}}]
    for key, counters in sums.items():
        account, day = key.split("|", 1)
        names, values, adds = {}, {}, []
        for i, (counter, n) in enumerate(sorted(counters.items())):
            if n:
                names[f"#c{i}"], values[f":c{i}"] = counter, {"N": str(n)}
                adds.append(f"#c{i} :c{i}")
        items.append({"Update": {"TableName": DailyCount.Meta.table_name,
                                 "Key": {"account_id": {"S": account}, "day": {"S": day}},
                                 "UpdateExpression": "ADD " + ", ".join(adds),
                                 "ExpressionAttributeNames": names,
                                 "ExpressionAttributeValues": values}})
    client = records.transaction_connection().client
    for _ in range(8):
        try:
            client.transact_write_items(TransactItems=items)
            return True
        except client.exceptions.TransactionCanceledException as error:
            codes = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if codes and codes[0] == "ConditionalCheckFailed":
                return False  # this window part is already counted
            if "TransactionConflict" not in codes:
                raise
        except client.exceptions.TransactionConflictException:
            pass
    raise RuntimeError(f"window {mark}: transaction kept conflicting; Lambda retries it")


def stream_filters(short: str) -> list[dict]:
    """Lambda event-filter patterns of the counting mapping: outcome writes of every message
    (webhooks or not) and new incoming SMS; `_facts` still decides."""
    import json
    if short == "messages":
        pattern = {"dynamodb": {"NewImage": {"status": {"S": sorted(OUTCOMES)}}}}
    else:
        pattern = {"eventName": ["INSERT"]}
    return [{"Pattern": json.dumps(pattern, separators=(",", ":"))}]


# --- reading: one Query per page ------------------------------------------------------------

def read(account_id: str, days: int = DAYS, now: int | None = None) -> dict:
    """The account's last `days` days (today included): per day its counters, and per phone
    the sums over those days. One Query (the account's partition, a range of days)."""
    from chalicelib.storage import records
    from chalicelib.storage.insight_tables import DailyCount
    now = clock.now_ms() if now is None else now
    day_list = [day_of(now - (days - 1 - i) * 86400_000) for i in range(days)]
    client = records.transaction_connection().client
    items, start = [], None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        answer = client.query(TableName=DailyCount.Meta.table_name,
                              KeyConditionExpression="account_id = :a AND #d BETWEEN :f AND :t",
                              ExpressionAttributeNames={"#d": "day"},
                              ExpressionAttributeValues={":a": {"S": account_id},
                                                         ":f": {"S": day_list[0]},
                                                         ":t": {"S": day_list[-1] + "#~"}},
                              **extra)
        items += answer.get("Items", [])
        start = answer.get("LastEvaluatedKey")
        if not start:
            break
    per_day = {day: dict.fromkeys(COUNTERS, 0) for day in day_list}
    phones = {}
    for item in items:
        day, _, device = item["day"]["S"].partition("#")
        counters = {name: int(value["N"]) for name, value in item.items() if "N" in value}
        if not device:
            if day in per_day:
                per_day[day].update({k: counters.get(k, 0) for k in COUNTERS})
            continue
        phone = phones.setdefault(int(device), {"days": {}})
        phone["days"][day] = {k: counters.get(k, 0) for k in COUNTERS}
        for name, n in counters.items():
            phone[name] = phone.get(name, 0) + n
    return {"days": [{"day": day, **per_day[day]} for day in day_list],
            "totals": {k: sum(d[k] for d in per_day.values()) for k in COUNTERS},
            "phones": {device_id: phone_summary(c) for device_id, c in sorted(phones.items())},
            "phone_days": {device_id: [{"day": day, **c["days"].get(day, dict.fromkeys(
                COUNTERS, 0))} for day in day_list] for device_id, c in phones.items()}}


def phone_summary(counters: dict) -> dict:
    """One phone's figures from its summed counters (and per day, if `counters` has them)."""
    sent, delivered = counters.get("sent", 0), counters.get("delivered", 0)
    reasons = {name[2:]: n for name, n in counters.items() if name.startswith("r:") and n > 0}
    return {**{k: counters.get(k, 0) for k in COUNTERS},
            "delivery_rate": round(delivered / sent, 4) if sent else None,
            "median_accept_to_sent_seconds": median_bound(counters),
            "failures_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1]))}


def median_bound(counters: dict) -> int | None:
    """Upper bound (s) of the histogram bucket holding the median accept-to-sent time; None if
    nothing was sent, -1 if the median is beyond the last bound."""
    counts = [max(0, counters.get(f"h{i}", 0)) for i in range(len(HISTOGRAM_SECONDS) + 1)]
    total = sum(counts)
    if not total:
        return None
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen * 2 >= total:
            return HISTOGRAM_SECONDS[i] if i < len(HISTOGRAM_SECONDS) else -1
    return None
