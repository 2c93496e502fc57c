"""The local gateway's changes to moto and Chalice's local server (localgw/atomic.py,
streams.py, models.py, server.py): transactions undone by item instead of by a copy of every
table they touch, streams that keep neither every iterator nor every handled record, no
register of every model instance, and a request per thread that reads its own request. Each
test fails on moto (or chalice's LocalDevServer) as it ships: its TransactWriteItems
deep-copies whole tables, its streams and its model register keep everything for ever, and
`app.current_request` is one attribute shared by every thread."""
import boto3
import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def emulator(aws_mock, atomic_moto, monkeypatch):
    from localgw.streams import bound_iterators
    bound_iterators(monkeypatch.setattr)
    from moto.dynamodb.models import dynamodb_backends
    backend = dynamodb_backends["123456789012"]["us-east-1"]
    return backend


def _table(backend, short):
    from chalicelib.core import settings
    return backend.tables[settings.current().table_name(short)]


def _put_claim_and_message(key, message_id, claim_condition=True):
    """A send's transaction: the idempotency claim, then the message (records.save_new)."""
    from chalicelib.core import settings
    client = boto3.client("dynamodb", region_name="us-east-1")
    claim = {"Put": {"TableName": settings.current().table_name("idempotency"),
                     "Item": {"key": {"S": key}, "message_id": {"N": str(message_id)}}}}
    if claim_condition:
        claim["Put"]["ConditionExpression"] = "attribute_not_exists(#k)"
        claim["Put"]["ExpressionAttributeNames"] = {"#k": "key"}
    message = {"Put": {"TableName": settings.current().table_name("messages"),
                       "Item": {"account_id": {"S": "acc"}, "message_id": {"N": str(message_id)},
                                "status": {"S": "pending"}},
                       "ConditionExpression": "attribute_not_exists(message_id)"}}
    client.transact_write_items(TransactItems=[claim, message])


def test_a_transaction_copies_no_table(emulator, monkeypatch):
    from moto.dynamodb.models.table import Table

    def copied(self, memo):
        raise AssertionError("a whole table was copied")
    monkeypatch.setattr(Table, "__deepcopy__", copied, raising=False)
    for n in range(3):
        _put_claim_and_message(f"k{n}", n + 1)
    with pytest.raises(ClientError, match="TransactionCanceled"):
        _put_claim_and_message("k0", 9)  # a replay: the claim's condition fails


def test_a_cancelled_transaction_leaves_every_item_and_the_stream_as_they_were(emulator):
    _put_claim_and_message("first", 1)
    messages = _table(emulator, "messages")
    table_before, records_before = messages, len(messages.stream_shard.items)
    # The claim is new (written first), the message id already exists: moto applies the claim,
    # then fails the message's condition; the claim must be undone with it.
    with pytest.raises(ClientError, match="TransactionCanceled"):
        _put_claim_and_message("second", 1)
    from chalicelib.storage.tables import Idempotency, Message
    with pytest.raises(Idempotency.DoesNotExist):
        Idempotency.get("second", consistent_read=True)
    assert Message.get("acc", 1).status == "pending"
    assert _table(emulator, "messages") is table_before  # not replaced by a copy
    assert len(messages.stream_shard.items) == records_before


def test_the_pump_trims_what_it_handled_and_sequence_numbers_go_on(emulator):
    from localgw.events import EventPumps
    pumps = EventPumps(trim_streams=True)
    messages = _table(emulator, "messages")
    _put_claim_and_message("a", 1)
    _put_claim_and_message("b", 2)
    assert pumps.pump_streams() == 2
    assert messages.stream_shard.items == []
    _put_claim_and_message("c", 3)
    assert pumps.pump_streams() == 1  # read after the trimmed records
    key = list(pumps._iterators)[0]
    assert int(pumps._iterators[key]) == messages.stream_shard.starting_sequence_number - 1


def test_shard_iterators_are_bounded(emulator):
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    from localgw.events import EventPumps
    from localgw.streams import MAX_ITERATORS
    pumps = EventPumps()
    for _ in range(MAX_ITERATORS):  # each round asks for iterators and reads with them
        pumps.pump_streams()
    assert len(dynamodbstreams_backends["123456789012"]["us-east-1"].shard_iterators) \
        <= MAX_ITERATORS


def test_a_stream_no_pump_reads_keeps_only_its_newest_records(emulator, monkeypatch):
    from localgw import streams
    monkeypatch.setattr(streams, "MAX_RECORDS", 3)
    messages = _table(emulator, "messages")
    for n in range(5):
        _put_claim_and_message(f"k{n}", n + 1)
    assert len(messages.stream_shard.items) == 3
    newest = [int(r.record["dynamodb"]["SequenceNumber"]) for r in messages.stream_shard.items]
    assert newest[0] == messages.stream_shard.starting_sequence_number
    assert newest == list(range(newest[0], newest[0] + 3))


def test_concurrent_requests_each_read_their_own_request():
    """The local server runs a request per thread: one must never read another's
    `current_request` (a bulk POST once answered 400 for the phone's `?wait=`)."""
    import threading
    import time

    import requests
    from chalice import Chalice

    from local_gateway import free_port
    from localgw.server import serve
    app = Chalice("race")
    entered = threading.Barrier(2)

    @app.route("/echo")
    def echo():
        mine = app.current_request.query_params["n"]
        entered.wait(timeout=5)  # both requests are in their handlers now
        time.sleep(0.05)
        return {"asked": mine, "read": app.current_request.query_params["n"]}

    port = free_port()
    server = serve(app, "127.0.0.1", port, quiet=True)
    try:
        answers = {}

        def ask(n):
            answers[n] = requests.get(f"http://127.0.0.1:{port}/echo", params={"n": n},
                                      timeout=10).json()
        threads = [threading.Thread(target=ask, args=(str(n),)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert answers == {n: {"asked": n, "read": n} for n in ("0", "1")}
    finally:
        server.server.shutdown()


def test_a_message_deleted_from_a_queue_is_freed(aws_mock, monkeypatch):
    """moto registers every model it makes (and each receive copies the message) for its
    dashboard: a leased and deleted job stayed in memory for ever (localgw/models.py)."""
    import gc
    import weakref

    from moto.sqs.models import sqs_backends

    from localgw.models import untrack_instances
    untrack_instances(monkeypatch.setattr)
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="device-1")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="job")
    queue = sqs_backends["123456789012"]["us-east-1"].queues["device-1"]
    sent = weakref.ref(queue._messages[0])
    leased = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"][0]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=leased["ReceiptHandle"])
    gc.collect()
    assert sent() is None


def test_a_stream_record_the_pump_trimmed_is_freed(emulator, monkeypatch):
    import gc
    import weakref

    from localgw.events import EventPumps
    from localgw.models import untrack_instances
    untrack_instances(monkeypatch.setattr)
    pumps = EventPumps(trim_streams=True)
    _put_claim_and_message("a", 1)
    shard = _table(emulator, "messages").stream_shard
    record = weakref.ref(shard.items[-1])
    assert pumps.pump_streams() == 1
    gc.collect()
    assert record() is None


def test_a_send_does_not_count_the_messages_already_queued(aws_mock, monkeypatch):
    """moto's SendMessage read every queue attribute for one flag, and three of them walk
    every message waiting: a send cost O(queue length), a bulk O(n²) (localgw/queues.py)."""
    from moto.sqs.models import Message, Queue, sqs_backends

    from localgw.queues import lazy_queue_attributes
    as_moto_builds_them = Queue.attributes.fget
    lazy_queue_attributes(monkeypatch.setattr)
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="device-1")["QueueUrl"]
    for n in range(50):
        sqs.send_message(QueueUrl=url, MessageBody=f"job {n}")
    reads = []
    visible = Message.visible

    def counted(self):
        reads.append(self)
        return visible.fget(self)
    monkeypatch.setattr(Message, "visible", property(counted))
    sqs.send_message(QueueUrl=url, MessageBody="one more")
    assert reads == []
    queue = sqs_backends["123456789012"]["us-east-1"].queues["device-1"]
    assert dict(queue.attributes) == as_moto_builds_them(queue)
    every = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert every["ApproximateNumberOfMessages"] == "51"
    some = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                  "VisibilityTimeout"])
    assert some["Attributes"] == {"ApproximateNumberOfMessages": "51", "VisibilityTimeout": "30"}


def test_the_server_finds_a_hosts_service_once(monkeypatch):
    """moto's dispatcher listed its package folder for every request, under one lock for all
    threads (localgw/dispatch.py)."""
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from localgw.dispatch import remember_backends
    remember_backends(monkeypatch.setattr)
    listings = []
    listed = backends.list_of_moto_modules

    def counted():
        listings.append(1)
        return listed()
    monkeypatch.setattr(backends, "list_of_moto_modules", counted)
    dispatcher = DomainDispatcherApplication(create_app=None)
    host = "dynamodb.us-east-1.amazonaws.com"
    assert [dispatcher.get_backend_for_host(host) for _ in range(5)] == ["dynamodb"] * 5
    assert dispatcher.get_backend_for_host("sqs.us-east-1.amazonaws.com") == "sqs"
    assert len(listings) == 2  # once per host


def _restart(taken):
    """What the next start of the local gateway does: empty tables and queues, then the
    snapshot put back (localgw/snapshot.py) and the restore's own records dropped."""
    from chalicelib.storage import tables
    from localgw import snapshot
    from localgw.events import forget_restored
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for name in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=name)
    sqs = boto3.client("sqs", region_name="us-east-1")
    for url in sqs.list_queues().get("QueueUrls", []):
        sqs.delete_queue(QueueUrl=url)
    tables.create_all(wait=True)
    snapshot.restore(taken, "local")
    return forget_restored()


def test_a_restart_counts_each_change_once_handled_before_it_or_carried(emulator, account):
    """Issue 30, item 8: a message delivered and counted before the snapshot, and one delivered
    after the pump's last round (its records unhandled when the snapshot was taken): after a
    restart each is counted once. Before, the restored items were new INSERT records and both
    were counted again; without the carried records the second would never be counted."""
    from chalicelib.domain import jobs
    from chalicelib.domain.insight import stats
    from localgw import snapshot
    from localgw.events import EventPumps
    from tests import sending
    acct, _, device, _ = account
    pumps = EventPumps(trim_streams=True)
    ids = [sending.send(acct.account_id, device, "+14155550100", text).message.message_id
           for text in ("one", "two")]
    assert len(jobs.lease_from_queue(device, 0, 10)) == 2
    jobs.report(device, ids[0], "delivered")
    pumps.pump_streams()
    jobs.report(device, ids[1], "delivered")  # not yet handled when the snapshot is taken
    with pumps.paused():
        taken = snapshot.take("local", streams=pumps)
    pumps.stop()
    assert [len(group["records"]) for group in taken["streams"]] == [1]
    assert stats.read(acct.account_id, days=1)["totals"]["delivered"] == 1

    assert _restart(taken) > 0  # the restore wrote records: none of them is a change
    again = EventPumps(trim_streams=True, carried=taken["streams"])
    for _ in range(3):
        again.pump_streams()
    assert stats.read(acct.account_id, days=1)["totals"]["delivered"] == 2
    with again.paused():
        assert again.unhandled() == []
