"""The purge of deleted accounts (domain/account_deletion.py): every item of every table that
holds the account's data, and its devices' queues, then the account item itself.

A scheduled function (app.py `purge_accounts`) Queries the sparse `deleted` index for accounts
deleted at least PURGE_AFTER_SECONDS ago. By then nothing can write for the account any more:
every credential was deleted at the deletion and any copy a warm container cached has expired
(AUTH_CACHE_SECONDS), every request it let in has ended (the API function's 25 s timeout), and
the stream windows counting its last outcomes are written. A registration or send racing the
deletion has therefore landed before the purge reads (tests/api/test_account_deletion.py).

Tables keyed by the account are Queried; tables whose key merely starts with the account id or
that hold it in an attribute (idempotency, otps, password-links, pairing-codes) have no index
by account and are Scanned with a filter, which reads the whole table: paid once per deleted
account. A run stops after SWEEP_BUDGET_SECONDS; the steps done and the position of a Scan are
kept on the account item, so the next run resumes where this one stopped. Every step deletes by
key, so doing one twice (two runs at once, a run cut off) deletes nothing twice.

Items are deleted 25 to a BatchWriteItem (`_Deletes`), not one DeleteItem each: an account of
1,000 messages is purged in 58 calls instead of 1,019 (bench/export.py). AWS's reference
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html):
at most 25 put or delete requests and 16 MB per call (a delete sends only the key: far below
it), each delete atomic but the batch not; the deletes DynamoDB could not do (throttling, an
internal failure) come back in UnprocessedItems, to be sent again with exponential backoff.
They are, until done or RETRY_ATTEMPTS are spent; then the run fails (`Unprocessed`) with the
account's cursor where the run found it, and the next run does the step again. PynamoDB's own
`Model.batch_write()` resends them at once, with no pause, and raises after the model's
`max_retry_attempts` (3): not enough, so the batches are sent here. The deadline is checked
after each item is added; a batch is always sent whole before a run stops, so the Scan
cursor saved (the last item the Scan returned) never passes an item not yet deleted.
"""
import json
import time
from collections import Counter

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, settings
from chalicelib.domain import account_deletion
from chalicelib.storage.dashboard_tables import PairingCode, PasswordLink, Session, User
from chalicelib.storage.insight_tables import AlertState, AlertSubscription, DailyCount
from chalicelib.storage.tables import (
    Account,
    ApiKey,
    Device,
    Idempotency,
    IncomingMessage,
    Message,
    OptOut,
    Otp,
    update_if,
)
from chalicelib.storage.webhook_tables import Webhook, WebhookDelivery

SCAN_PAGE = 500
BATCH = 25  # BatchWriteItem's most requests per call
RETRY_ATTEMPTS = 8  # BatchWriteItem calls per batch while DynamoDB returns UnprocessedItems
RETRY_PAUSE = 0.05  # seconds before the first resend, doubled each time (0.05 ... 3.2 s)


class OutOfTime(Exception):
    """The run's budget is spent: the account item records where to resume."""


class Unprocessed(Exception):
    """DynamoDB left deletes unprocessed RETRY_ATTEMPTS times: the run fails without moving the
    step's cursor, and the next run sends them again."""


class _Deletes:
    """One table's deletes, sent BATCH to a BatchWriteItem; `done[table]` counts the deletes
    DynamoDB processed (an item already gone counts too: BatchWriteItem does not say)."""

    def __init__(self, model, done: Counter, table: str):
        self.model, self.done, self.table, self.keys = model, done, table, []

    def add(self, item) -> None:
        self.keys.append(item._get_keys())
        if len(self.keys) == BATCH:
            self.send()

    def send(self) -> None:
        keys, self.keys = self.keys, []
        connection = self.model._get_connection()
        for attempt in range(RETRY_ATTEMPTS):
            if not keys:
                return
            if attempt:
                time.sleep(RETRY_PAUSE * 2 ** (attempt - 1))
            data = connection.batch_write_item(delete_items=keys)
            left = (data.get("UnprocessedItems") or {}).get(connection.table_name, [])
            self.done[self.table] += len(keys) - len(left)
            keys = [request["DeleteRequest"]["Key"] for request in left]
        if keys:
            raise Unprocessed(f"{self.table}: {len(keys)} deletes left unprocessed after "
                              f"{RETRY_ATTEMPTS} BatchWriteItem calls")


def _delete_all(model, items, done: Counter, table: str, deadline: float) -> None:
    """Delete each item, BATCH to a call; past the deadline, send what is pending (the item
    just taken included) and stop: a Scan resumes after the last item it returned."""
    batch = _Deletes(model, done, table)
    for item in items:
        batch.add(item)
        if time.monotonic() > deadline:
            batch.send()
            raise OutOfTime()
    batch.send()


def _keyed(model, table: str):
    def step(account, done, deadline, cursor=None):
        _delete_all(model, model.query(account.account_id), done, table, deadline)
    return step


def _devices(account, done, deadline, cursor=None):
    """Devices registered while the account was being deleted: their uids are kept first."""
    for entry in Device.by_account.query(account.account_id):
        if entry.device_uid not in (account.purge_uids or []):
            account.update(actions=[Account.purge_uids.set(
                [*(account.purge_uids or []), entry.device_uid])])
        account_deletion.delete_device(entry.device_uid, account.account_id)
        done["devices"] += 1
        if time.monotonic() > deadline:
            raise OutOfTime()


def _api_keys(account, done, deadline, cursor=None):
    _delete_all(ApiKey, ApiKey.by_account.query(account.account_id), done, "api-keys",
                deadline)


def _users(account, done, deadline, cursor=None):
    for user in User.by_account.query(account.account_id):
        _delete_all(Session, (Session(session_hash=s.session_hash) for s in
                              Session.by_user.query(user.email)), done, "sessions", deadline)
        _delete_all(User, [user], done, "users", deadline)


def _webhooks(account, done, deadline, cursor=None):
    for webhook in Webhook.query(account.account_id):
        _delete_all(WebhookDelivery, WebhookDelivery.query(webhook.webhook_id), done,
                    "webhook-deliveries", deadline)
        _delete_all(Webhook, [webhook], done, "webhooks", deadline)


def _quota_counters(account, done, deadline, cursor=None):
    """The messages-per-day counters (domain/quotas.py) of the days a send could still count
    in: the deletion's and the day before (older ones have expired by TTL). Deleted by key, in
    one BatchWriteItem."""
    from chalicelib.domain import quotas
    from chalicelib.storage.dashboard_tables import Throttle
    days = {quotas.day_of(at) for at in (account.deleted_at, account.deleted_at - quotas.DAY_MS,
                                         clock.now_ms())}
    batch = _Deletes(Throttle, done, "throttles")
    for day in sorted(days):  # two or three deletes: not worth a cursor, done whole
        batch.add(Throttle(key=quotas.day_counter(account.account_id, day).key))
    batch.send()


def _scanned(model, table: str, condition_of=None, prefixes_of=None):
    """A Scan of a table with no index by account, resumable from `cursor`: the items whose
    attribute `condition_of(account)` matches, or whose key starts with one of
    `prefixes_of(account)` (checked here: a Scan costs the items read whatever it returns)."""
    def step(account, done, deadline, cursor=None):
        if condition_of is not None:
            results = model.scan(condition_of(account.account_id), last_evaluated_key=cursor,
                                 page_size=SCAN_PAGE)
            items = results
        else:
            prefixes = prefixes_of(account)
            results = model.scan(last_evaluated_key=cursor, page_size=SCAN_PAGE,
                                 attributes_to_get=["key"])
            items = (item for item in results if item.key.startswith(prefixes))
        try:
            _delete_all(model, items, done, table, deadline)
        except OutOfTime:
            raise OutOfTime(results.last_evaluated_key)
    return step


def _claims(account) -> tuple:
    """The idempotency keys of the account's sends and requests, its SMSGate messages, and its
    devices' incoming SMS and app webhooks."""
    a = account.account_id
    return (f"{a}#", f"smsgate-group#{a}#", *(f"{kind}#{uid}#" for uid in account.purge_uids
                                              or [] for kind in ("in", "appwh")))


STEPS = {
    "devices": _devices,  # first: their queues (the account's jobs) and device tokens
    "api-keys": _api_keys,
    "users": _users,  # and sessions
    "webhooks": _webhooks,  # and webhook-deliveries
    "messages": _keyed(Message, "messages"),
    "incoming": _keyed(IncomingMessage, "incoming"),
    "opt-outs": _keyed(OptOut, "opt-outs"),
    "daily-counts": _keyed(DailyCount, "daily-counts"),
    "alert-states": _keyed(AlertState, "alert-states"),
    "alert-subscriptions": _keyed(AlertSubscription, "alert-subscriptions"),
    "idempotency": _scanned(Idempotency, "idempotency", prefixes_of=_claims),
    "otps": _scanned(Otp, "otps", prefixes_of=lambda account: (f"{account.account_id}#",)),
    "password-links": _scanned(PasswordLink, "password-links",
                               lambda a: PasswordLink.account_id == a),
    "pairing-codes": _scanned(PairingCode, "pairing-codes",
                              lambda a: PairingCode.account_id == a),
    "throttles": _quota_counters,
}
# What holds no account data, or only through the tables above: counted-windows (stream
# positions); operator-log (the operator's own record of what operators did, kept as an audit
# trail: it names an account only if an operator acted on it); the account item goes last.
NOT_PURGED = {"counted-windows", "operator-log", "accounts"}


def purge(account: Account, deadline: float, done: Counter) -> bool:
    """Purge one deleted account as far as the budget allows; True once it is gone."""
    finished = list(account.purge_done or [])
    saved = json.loads(account.purge_cursor) if account.purge_cursor else {}
    for name, step in STEPS.items():
        if name in finished:
            continue
        try:
            step(account, done, deadline, saved.get(name))
        except OutOfTime as stop:
            cursor = {name: stop.args[0]} if stop.args and stop.args[0] else {}
            update_if(account, [Account.purge_done.set(finished),
                                Account.purge_cursor.set(json.dumps(cursor) if cursor
                                                         else None)],
                      Account.deleted_at.exists())
            return False
        finished.append(name)
    try:
        account.delete(Account.deleted_at.exists())
    except Exception:  # noqa: BLE001 - another run deleted it first
        if _exists(account.account_id):
            raise
    done["accounts"] += 1
    return True


def _exists(account_id: str) -> bool:
    try:
        Account.get(account_id, consistent_read=True)
        return True
    except DoesNotExist:
        return False


def purge_deleted(now_ms: int | None = None, budget_seconds: float | None = None) -> Counter:
    """One run: the accounts deleted PURGE_AFTER_SECONDS ago or earlier, oldest first, until
    the budget (SWEEP_BUDGET_SECONDS) is spent. Counts the items deleted per table, and
    `accounts_left` for accounts the next run goes on with."""
    now = clock.now_ms() if now_ms is None else now_ms
    budget = settings.current().sweep_budget_seconds if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    done = Counter()
    ready = now - settings.current().purge_after_seconds * 1000
    started = False  # every run deletes at least one item, whatever its budget
    for entry in Account.deleted_accounts.query(account_deletion.DELETED,
                                                Account.deleted_at <= ready):
        try:
            account = Account.get(entry.account_id, consistent_read=True)
        except DoesNotExist:
            continue
        if (started and time.monotonic() > deadline) or not purge(account, deadline, done):
            done["accounts_left"] += 1
        started = True
    return done
