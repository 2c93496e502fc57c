"""Deleting an account (issue 33 item 4): after the typed name, every credential stops at once;
the purge then leaves nothing of the account in any table (settings.TABLES, scanned whole) nor
any queue, and nothing of another account is touched. Races with sends and registrations run
in real threads."""
import json
import threading
from collections import Counter
from urllib.parse import urlencode

import boto3
import pytest

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, NotFound, Unauthorized
from chalicelib.domain import (
    account_deletion,
    accounts,
    devices,
    outbox,
    pairing,
    purge,
    webhooks,
)
from chalicelib.domain.devices import app_phones
from chalicelib.domain.insight import alerts
from chalicelib.storage import aws, tables
from chalicelib.storage.insight_tables import AlertState, DailyCount
from chalicelib.storage.tables import Message
from chalicelib.storage.webhook_tables import WebhookDelivery
from tests.dashboard_helpers import Visitor, owner


def _scan_table(short: str) -> list[str]:
    """Every item of one table as JSON text (a plain boto3 Scan: no model decides what is seen)."""
    client = boto3.client("dynamodb", region_name=settings.current().region)
    items, start = [], None
    while True:
        page = client.scan(TableName=settings.current().table_name(short),
                           **({"ExclusiveStartKey": start} if start else {}))
        items += [json.dumps(item, sort_keys=True) for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def traces(account_id: str, uids=()) -> dict:
    """Where the account (or one of its device uids) still shows: table -> items, queue -> tags."""
    found = {}
    for short in settings.TABLES:
        hits = [item for item in _scan_table(short)
                if account_id in item or any(uid in item for uid in uids)]
        if hits:
            found[short] = hits
    sqs = aws.sqs()
    for url in sqs.list_queues(QueueNamePrefix=settings.current().prefix).get("QueueUrls", []):
        tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
        if tags.get("account_id") == account_id or any(uid in url for uid in uids):
            found[url] = tags
    return found


def _api(client, **params):
    response = client.http.post("/myAPI.php", body=urlencode(params), headers={
        "content-type": "application/x-www-form-urlencoded"})
    return json.loads(response.body)


def _fill(client, account_id, key, device, token, settings_override):
    """Something of the account in every table that can hold it."""
    settings_override(webhook_allow_private=True, webhook_allow_http=True)
    # a messages-per-day quota: its counter in throttles (set directly: an operator's action
    # would also be in the operator-log, which keeps its audit trail)
    tables.Account(account_id=account_id).update(
        actions=[tables.Account.quota_messages_per_day.set(100)])
    assert _api(client, action="send_sms", api_key=key, device_uid=device.device_uid,
                phone_number="+14155550100", message="hello",
                idempotency_key="once")["status"] == "success"
    assert _api(client, action="send_otp", api_key=key, device_uid=device.device_uid,
                phone_number="+14155550101")["status"] == "success"
    response = client.http.post("/device/incoming", body=json.dumps({"messages": [{
        "device_message_id": "in-1", "phone_number": "+14155550102", "message": "STOP",
        "sim_slot": 1, "received_at": clock.now_ms()}]}), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert response.status_code == 200, response.body
    hook = webhooks.add(account_id, "http://127.0.0.1:9/hook")
    WebhookDelivery(webhook_id=hook.webhook_id, event_id="evt_1", account_id=account_id,
                    type="sms.sent", body="{}", state="delivered", created_at=clock.now_ms(),
                    last_at=clock.now_ms(), retain_until=clock.at(clock.now_ms() + 86400e3)
                    ).save()
    DailyCount(account_id=account_id, day="2026-12-04").save()
    AlertState(account_id=account_id, cause="device_offline#x", problem=True).save()
    email = f"owner@{account_id}.example"
    alerts.subscribe(account_id, email)
    owner(account_id, email)  # user, its password link
    pairing.create(account_id, "Later phone", email)  # a pairing code
    unbound = app_phones.make_token(account_id, "App phone")
    return unbound


@pytest.fixture
def two(client, settings_override):
    """Two accounts, each filled; yields (a, b), each (account, key, device, token, app token)."""
    made = []
    for name in ("Alpha", "Bravo"):
        account = accounts.create_account(name)
        key, _ = accounts.create_key(account.account_id)
        device, token = devices.register(account.account_id, "Phone", sim_count=2)
        unbound = _fill(client, account.account_id, key, device, token, settings_override)
        made.append((account, key, device, token, unbound))
    return made


def _purge_all(budget=30.0, runs=200) -> int:
    """Runs the schedule until nothing is left to purge; returns how many runs it took."""
    for run in range(1, runs + 1):
        if not purge.purge_deleted(budget_seconds=budget)["accounts_left"]:
            return run
    raise AssertionError("the purge did not finish")


def test_deletion_needs_the_account_name_typed_and_changes_nothing_otherwise(two):
    (a, key, device, *_), _ = two
    for typed in (None, "", "alpha", "Alpha ", "Bravo"):
        if typed == "Alpha ":
            continue  # surrounding spaces are forgiven (a pasted name)
        with pytest.raises(BadRequest, match="type its name exactly: Alpha"):
            account_deletion.delete(a.account_id, typed)
    assert accounts.authenticate(key, None).account_id == a.account_id
    assert devices.exists(device.device_uid)


def test_every_credential_stops_at_once(client, two):
    (a, key, device, token, unbound), (b, b_key, *_) = two
    bound = app_phones.make_token(a.account_id)
    registered, _ = app_phones.register_with_token(bound, "App", 1, "1.0", "127.0.0.9")
    visitor = Visitor(client)
    assert visitor.sign_in(f"owner@{a.account_id}.example").status_code == 303
    assert accounts.authenticate(key, None)  # warm in this container's cache
    assert visitor.get("/dashboard/account/delete").status_code == 200
    response = visitor.submit("/dashboard/account/delete", {"name": "Alpha"},
                              page="/dashboard/account/delete")
    assert response.status_code == 303 and "done=account-deleted" in response.headers["Location"]
    # API key: compat, REST v1
    assert _api(client, action="device_status", api_key=key)["status"] == "error"
    assert client.http.get("/v1/devices", headers={
        "Authorization": f"Bearer {key}"}).status_code == 401
    # device token (ours and the app phone's)
    for device_token in (token,):
        assert client.http.get("/device/jobs?wait=0", headers={
            "Authorization": f"Bearer {device_token}"}).status_code == 401
    # dashboard session: signed out
    assert visitor.get("/dashboard/keys").status_code == 303
    # app tokens: an unused one cannot register a phone, a bound one finds its phone gone
    for app_token in (unbound, bound):
        with pytest.raises((Unauthorized, NotFound)):
            app_phones.register_with_token(app_token, "App", 1, "1.0", "127.0.0.9")
    assert not devices.exists(registered.device_uid)
    # and a sign-in with the old password fails: the user is gone
    assert Visitor(client).sign_in(f"owner@{a.account_id}.example").status_code == 401
    # B is untouched
    assert accounts.authenticate(b_key, None).account_id == b.account_id


def test_a_warm_container_holds_a_key_at_most_auth_cache_seconds_and_its_writes_are_purged(
        client, two):
    """Another container verified the key just before the deletion: it may still send for up
    to AUTH_CACHE_SECONDS (the documented bound, as after a revocation); what it writes is
    there before the purge starts, and purged."""
    (a, key, device, *_), _ = two
    clock.freeze()
    accounts.authenticate(key, None)
    devices.resolve(a.account_id, device_uid=device.device_uid)
    other_container = (dict(accounts._auth_cache._items), dict(devices._cache._items))
    account_deletion.delete(a.account_id, "Alpha")
    accounts._auth_cache._items.update(other_container[0])
    devices._cache._items.update(other_container[1])
    caller = accounts.authenticate(key, None)  # still cached there, and the device too:
    with pytest.raises(NotFound, match="was removed"):  # its message is written, its queue gone
        outbox.submit(caller.account_id, outbox.SendRequest(
            phone_number="+14155550109", text="late", device_uid=device.device_uid))
    late = [m for m in Message.query(a.account_id) if m.body == "late"]
    assert late and late[0].status == "failed"
    clock.advance(settings.current().auth_cache_seconds + 1)
    with pytest.raises(Unauthorized):
        accounts.authenticate(key, None)
    clock.advance(settings.current().purge_after_seconds)
    _purge_all()
    assert not traces(a.account_id), late


def test_the_purge_leaves_nothing_of_the_account_in_any_table_or_queue(two):
    (a, *_), (b, *_) = two
    uids = [d.device_uid for d in devices.list_devices(a.account_id)]
    b_before = {short: [i for i in _scan_table(short) if b.account_id in i]
                for short in settings.TABLES}
    assert set(traces(a.account_id)) >= {"accounts", "api-keys", "devices", "messages",
                                         "incoming", "idempotency", "otps", "opt-outs",
                                         "webhooks", "webhook-deliveries", "users",
                                         "password-links", "pairing-codes", "daily-counts",
                                         "alert-states", "alert-subscriptions", "throttles"}
    clock.freeze()
    account_deletion.delete(a.account_id, "Alpha")
    # credentials went at once; the data waits for the purge, which starts PURGE_AFTER_SECONDS on
    assert not {"api-keys", "devices", "users", "sessions"} & set(traces(a.account_id))
    assert purge.purge_deleted()["accounts"] == 0 and "messages" in traces(a.account_id)
    clock.advance(settings.current().purge_after_seconds)
    # a tiny budget: every run stops after one item, and the next resumes
    runs = _purge_all(budget=0)
    assert runs > 10, runs
    assert traces(a.account_id, uids) == {}
    # B's items are all there, unchanged (sessions and throttles aside: none were made for B)
    assert {short: [i for i in _scan_table(short) if b.account_id in i]
            for short in settings.TABLES} == b_before
    assert set(tables_of(b.account_id)) >= {"messages", "devices", "api-keys"}


def tables_of(account_id):
    return traces(account_id)


def test_sends_and_registrations_racing_the_deletion_leave_nothing(client, two, atomic_moto):
    """Real threads send with the key and register phones while the owner deletes the account.
    Each either lands before the deletion's mark (then the purge, which starts after every
    such write ended, deletes it) or is refused: a send by its key's refusal, a registration
    by the account item's condition (before its queue exists)."""
    (a, key, *_), _ = two
    stop, outcomes, errors = threading.Event(), [], []

    def sender():
        while not stop.is_set():
            try:
                caller = accounts.authenticate(key, None)
                phone = devices.list_devices(caller.account_id)
                if phone:
                    outbox.submit(caller.account_id, outbox.SendRequest(
                        phone_number="+14155550111", text="race",
                        device_uid=phone[0].device_uid))
                outcomes.append("sent")
            except (Unauthorized, NotFound) as refused:
                outcomes.append(type(refused).__name__)
            except Exception as error:  # noqa: BLE001
                errors.append(error)

    def registrar():
        while not stop.is_set():
            try:
                devices.register(a.account_id, "Racer", sim_count=1)
                outcomes.append("registered")
            except NotFound:
                outcomes.append("refused")
            except Exception as error:  # noqa: BLE001
                errors.append(error)

    threads = [threading.Thread(target=f) for f in (sender, sender, registrar, registrar)]
    for thread in threads:
        thread.start()
    threading.Event().wait(0.5)
    account_deletion.delete(a.account_id, "Alpha")
    threading.Event().wait(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert {"sent", "registered"} <= set(outcomes), outcomes
    assert outcomes[-1] != "sent" and "refused" in outcomes
    clock.advance(settings.current().purge_after_seconds + 1)
    _purge_all()
    assert traces(a.account_id) == {}


def test_the_cli_deletes_with_the_confirmation_flag_only(two):
    from click.testing import CliRunner

    import cli
    (a, key, *_), _ = two
    runner = CliRunner()
    refused = runner.invoke(cli.main, ["account", "delete", a.account_id])
    assert refused.exit_code == 2 and "--confirm" in refused.output
    wrong = runner.invoke(cli.main, ["account", "delete", a.account_id, "--confirm", "Bravo"])
    assert wrong.exit_code == 1 and "type its name exactly: Alpha" in wrong.output
    assert accounts.authenticate(key, None)
    done = runner.invoke(cli.main, ["account", "delete", a.account_id, "--confirm", "Alpha",
                                    "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["deleted"] is True
    with pytest.raises(Unauthorized):
        accounts.authenticate(key, None)
    again = runner.invoke(cli.main, ["account", "delete", a.account_id, "--confirm", "Alpha"])
    assert again.exit_code == 1 and "Unknown account" in again.output


def test_models_cover_every_table():
    """A new table joins the purge (or NOT_PURGED, with the reason) before it ships."""
    purged = set(purge.STEPS) | {"sessions", "webhook-deliveries"} | purge.NOT_PURGED
    assert purged == set(settings.TABLES)
    assert {m.Meta.table_name for m in tables.MODELS} == {
        settings.current().table_name(t) for t in settings.TABLES}


def _many(account_id: str, count: int) -> None:
    """`count` messages and `count` idempotency claims of the account (claims are Scanned)."""
    from chalicelib.core import ids
    from chalicelib.storage.tables import Idempotency
    now, first = clock.now_ms(), ids.new_message_id()
    with Message.batch_write() as messages, Idempotency.batch_write() as claims:
        for n in range(count):
            messages.save(Message(account_id=account_id, message_id=first + n,
                                  device_uid="dev_x", device_id=1, phone_number="+14155550100",
                                  body="hi", sim_slot=1, segments=1, encoding="GSM-7",
                                  status="delivered", created_at=now, expires_at=now + 86400000))
            claims.save(Idempotency(key=f"{account_id}#k{n}", message_id=first + n,
                                    created_at=now, expires=clock.at(now + 86400000)))


def _deleted_with_many(name: str, count: int):
    account = accounts.create_account(name)
    _many(account.account_id, count)
    account_deletion.delete(account.account_id, name)
    return account


def test_the_purge_deletes_25_items_to_a_batch_write(aws_mock, aws_calls):
    """60 messages and 60 claims: 3 BatchWriteItem calls each (25, 25, 10), one for the quota
    counters, and DeleteItem for the account item only (it was one DeleteItem per item)."""
    kept = _deleted_with_many("Kept", 60)
    other = accounts.create_account("Other")
    _many(other.account_id, 30)
    clock.advance(settings.current().purge_after_seconds + 1)
    aws_calls.clear()
    done = purge.purge_deleted(budget_seconds=600)
    assert done == {"messages": 60, "idempotency": 60, "throttles": 2, "accounts": 1}, done
    assert Counter(operation for _, operation in aws_calls) == {
        "Query": 11, "Scan": 4, "GetItem": 1, "BatchWriteItem": 7, "DeleteItem": 1}
    sizes = sorted(len(requests) for _, operation, params in aws_calls.requests
                   if operation == "BatchWriteItem"
                   for requests in params["RequestItems"].values())
    assert sizes == [2, 10, 10, 25, 25, 25, 25], sizes
    assert not traces(kept.account_id)
    assert len(list(Message.query(other.account_id))) == 30


class _Ticking:
    """The purge's `time`: each reading of the clock is one second later, so a run's budget is
    a number of items; pauses are recorded, not slept."""

    def __init__(self):
        self.now, self.pauses = 0.0, []

    def monotonic(self) -> float:
        self.now += 1
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)


def test_a_deadline_mid_batch_sends_the_batch_before_the_scan_cursor_moves_on(
        aws_mock, monkeypatch):
    """Runs of 30 clock readings stop inside batches (31 items: one batch of 25 and 6 more),
    and inside the idempotency Scan, whose pages (7 items: not a multiple of 25) end inside
    batches too. The Scan's cursor is saved after the last item it returned: had that item's
    batch not been sent, the next run would resume past its items and leave them behind."""
    monkeypatch.setattr(purge, "time", _Ticking())
    monkeypatch.setattr(purge, "SCAN_PAGE", 7)
    gone = _deleted_with_many("Gone", 60)
    other = accounts.create_account("Other")
    _many(other.account_id, 60)  # its claims share the Scan's pages
    clock.advance(settings.current().purge_after_seconds + 1)
    total, stops = Counter(), []
    for _ in range(20):
        done = purge.purge_deleted(budget_seconds=30)
        total += done
        if not done["accounts_left"]:
            break
        cursor = tables.Account.get(gone.account_id, consistent_read=True).purge_cursor
        stops.append((dict(done), json.loads(cursor) if cursor else None))
    assert total == {"messages": 60, "idempotency": 60, "throttles": 2, "accounts": 1,
                     "accounts_left": len(stops)}, total  # each item deleted (counted) once
    # some runs stopped mid-batch inside the Scan, with a cursor saved
    assert [done["idempotency"] for done, cursor in stops if cursor and "idempotency" in cursor
            and done["idempotency"] % 25], stops
    assert not traces(gone.account_id)
    assert len(list(tables.Idempotency.scan())) == 60  # the other account's claims, all
    assert len(list(Message.query(other.account_id))) == 60


def _refusing(monkeypatch, refusals: int):
    """BatchWriteItem leaves all but the first request unprocessed, `refusals` times (DynamoDB
    throttling a batch); the refused deletes are not done."""
    import botocore.client
    original = botocore.client.BaseClient._make_api_call
    left = [refusals]

    def call(self, operation_name, api_params):
        if operation_name != "BatchWriteItem" or not left[0]:
            return original(self, operation_name, api_params)
        left[0] -= 1
        (table, requests), = api_params["RequestItems"].items()
        answer = original(self, operation_name, {"RequestItems": {table: requests[:1]}})
        if requests[1:]:
            answer["UnprocessedItems"] = {table: requests[1:]}
        return answer
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)


def test_unprocessed_deletes_are_sent_again_with_backoff(aws_mock, monkeypatch):
    ticking = _Ticking()
    monkeypatch.setattr(purge, "time", ticking)
    gone = _deleted_with_many("Gone", 30)
    clock.advance(settings.current().purge_after_seconds + 1)
    _refusing(monkeypatch, 5)
    done = purge.purge_deleted(budget_seconds=600)
    assert done == {"messages": 30, "idempotency": 30, "throttles": 2, "accounts": 1}, done
    assert ticking.pauses == [0.05, 0.1, 0.2, 0.4, 0.8], ticking.pauses  # doubling, then none
    assert not traces(gone.account_id)


def test_deletes_left_unprocessed_fail_the_run_and_the_next_run_does_them(aws_mock, monkeypatch):
    """Never dropped: a batch DynamoDB keeps refusing fails the run (the account and its cursor
    as they were); the next run sends it again."""
    ticking = _Ticking()
    monkeypatch.setattr(purge, "time", ticking)
    gone = _deleted_with_many("Gone", 30)
    clock.advance(settings.current().purge_after_seconds + 1)
    _refusing(monkeypatch, purge.RETRY_ATTEMPTS)
    with pytest.raises(purge.Unprocessed, match="messages: 17 deletes left unprocessed"):
        purge.purge_deleted(budget_seconds=600)
    assert len(ticking.pauses) == purge.RETRY_ATTEMPTS - 1
    account = tables.Account.get(gone.account_id, consistent_read=True)
    assert not account.purge_done and not account.purge_cursor
    assert len(list(Message.query(gone.account_id))) == 22  # 8 sent, one a call
    done = purge.purge_deleted(budget_seconds=600)
    assert done == {"messages": 22, "idempotency": 30, "throttles": 2, "accounts": 1}, done
    assert not traces(gone.account_id)
