"""What AWS's event source mappings do for the deployed webhook functions, done locally: read
the DynamoDB streams of the event tables and the webhook queue (moto's, or a test's in-process
moto), and call the app's very handlers with Lambda's event shapes.

The local gateway starts `EventPumps` next to its schedules, so a receiver sees events within a
second or so; tests call `drain()` to move everything through synchronously. Like Lambda, a
stream batch whose handler raises is read again, and an SQS message is deleted only after its
batch was handled.

Across restarts (issue 30): a snapshot keeps the stream records not yet handled (`unhandled()`,
read while the pump is `paused()`), and the next start hands exactly those to the consumers
(`carried`); the records the restore itself writes describe no change and are dropped before
the pump starts (`forget_restored`). Before, every restored item was a new INSERT record: each
restart counted every message again and re-sent its webhooks.
"""
import os
import sys
import threading
import time
from contextlib import contextmanager

STREAM_POLL_SECONDS = 0.2


def _streams_client():
    import boto3
    from botocore.config import Config

    from chalicelib.core import settings
    # botocore >= 1.38 sends stream calls to account-scoped endpoints that moto does not serve.
    return boto3.session.Session().client("dynamodbstreams", region_name=settings.current().region,
                                          config=Config(account_id_endpoint_mode="disabled"))


def stream_arns(streams=None):
    """The newest stream of each event table (EVENT_SOURCE_TABLES)."""
    from chalicelib.core import settings
    streams = streams or _streams_client()
    for short in settings.EVENT_SOURCE_TABLES:
        found = streams.list_streams(TableName=settings.current().table_name(short))
        if found["Streams"]:
            yield max(found["Streams"], key=lambda s: s["StreamLabel"])["StreamArn"]


def forget_restored() -> int:
    """Drop the records a snapshot's restore wrote to the event tables' streams (a restore
    changes nothing: its items were handled before the snapshot, or are carried)."""
    from localgw.streams import trim
    return sum(trim(arn, str(10 ** 30)) for arn in stream_arns())


class EventPumps:
    def __init__(self, trim_streams: bool = False, carried: list | None = None):
        """`trim_streams`: drop the stream records handled from the in-process emulator
        (the local gateway; localgw/streams.py), so its memory stays bounded. `carried`: what
        `unhandled()` returned before a restart, handed to the consumers first."""
        import app as app_module
        from chalicelib.core import settings
        from chalicelib.domain import webhooks
        from chalicelib.storage import aws, tables
        self.app = app_module
        self.settings, self.tables = settings, tables
        self.sqs = aws.sqs()
        self.streams = _streams_client()
        self.queue_url = webhooks.ensure_queue()
        self.queue_arn = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self._iterators = {}  # (stream arn, shard id) -> last sequence number handled
        self._shard_ids = {}
        self._counted = {}  # (stream arn, shard id) -> last sequence number counted
        self._stop = threading.Event()
        self._threads = []
        self.errors = []
        self.trim_streams = trim_streams
        self._carried = [dict(group) for group in carried or []]
        self._streams_lock = threading.RLock()  # a round of the stream pump, or a snapshot

    # --- streams -> emit_events -----------------------------------------------------------

    def _stream_arns(self):
        return stream_arns(self.streams)

    @contextmanager
    def paused(self):
        """No stream record is handled inside (a snapshot reads tables and `unhandled()`)."""
        with self._streams_lock:
            yield

    def unhandled(self) -> list[dict]:
        """The stream records not yet handled, per shard, with where handling and counting got
        to: JSON-ready (Lambda's record shape), for a snapshot. Call it `paused()`."""
        with self._streams_lock:
            groups = [dict(group) for group in self._carried]
            for arn, shard_id in self._shards():
                records = []
                iterator = self._iterator(arn, shard_id)
                while iterator:
                    answer = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                    if not answer.get("Records"):
                        break
                    records += [self._lambda_record(r, arn) for r in answer["Records"]]
                    iterator = answer.get("NextShardIterator")
                if records:
                    groups.append({"arn": arn, "shard_id": shard_id, "records": records,
                                   "counted": self._counted.get((arn, shard_id), "")})
            return groups

    def _shards(self):
        if not hasattr(self, "_arns"):
            self._arns = list(self._stream_arns())
        for arn in self._arns:
            if arn not in self._shard_ids:
                self._shard_ids[arn] = [s["ShardId"] for s in self.streams.describe_stream(
                    StreamArn=arn)["StreamDescription"]["Shards"]]
            for shard_id in self._shard_ids[arn]:
                yield arn, shard_id

    def _hand_on_carried(self) -> int:
        """The records a snapshot carried over, handled as they would have been: counted from
        where counting got to (under their old stream's ARN, so a window keeps its id), then
        emitted. A handler that raises leaves the rest for the next round."""
        handled = 0
        while self._carried:
            group = self._carried[0]
            key = (group["arn"], group["shard_id"])
            self._counted.setdefault(key, group.get("counted", ""))
            self._count(group["arn"], group["shard_id"], group["records"])
            self.app.emit_events({"Records": group["records"]}, None)
            handled += len(self._carried.pop(0)["records"])
        return handled

    def _iterator(self, arn, shard_id):
        """A fresh iterator after the last record handled: moto may have replaced the shard
        object (a cancelled transaction restores a table copy), so none is kept."""
        last = self._iterators.get((arn, shard_id))
        where = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": last} \
            if last else {"ShardIteratorType": "TRIM_HORIZON"}
        return self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id,
                                               **where)["ShardIterator"]

    def pump_streams(self) -> int:
        """Hand every new stream record to emit_events; returns how many were handled."""
        with self._streams_lock:
            handled = self._hand_on_carried()
            for arn, shard_id in list(self._shards()):
                answer = self.streams.get_records(ShardIterator=self._iterator(arn, shard_id),
                                                  Limit=100)
                records = [self._lambda_record(r, arn) for r in answer.get("Records", [])]
                if records:
                    self._count(arn, shard_id, records)
                    self.app.emit_events({"Records": records}, None)  # raises: read again
                    handled += len(records)
                    last = records[-1]["dynamodb"]["SequenceNumber"]
                    self._iterators[(arn, shard_id)] = last
                    if self.trim_streams:
                        from localgw.streams import trim
                        trim(arn, last)
            return handled

    def _count(self, arn, shard_id, records):
        """count_outcomes, as its own mapping would call it: each batch a window of its own
        (final at once), from where counting last got to in this shard."""
        done = self._counted.get((arn, shard_id), "")
        fresh = [r for r in records
                 if r["dynamodb"]["SequenceNumber"].zfill(40) > done.zfill(40)]
        if fresh:
            self.app.count_outcomes({
                "Records": fresh, "eventSourceARN": arn, "shardId": shard_id,
                "window": {"start": fresh[0]["dynamodb"]["SequenceNumber"],
                           "end": fresh[-1]["dynamodb"]["SequenceNumber"]},
                "state": {}, "isFinalInvokeForWindow": True, "isWindowTerminatedEarly": False},
                None)  # raises: read again
            self._counted[(arn, shard_id)] = fresh[-1]["dynamodb"]["SequenceNumber"]

    def _lambda_record(self, record, arn):
        change = dict(record["dynamodb"])
        at = change.get("ApproximateCreationDateTime", time.time())
        change["ApproximateCreationDateTime"] = at.timestamp() if hasattr(at, "timestamp") \
            else float(at)
        change.setdefault("SizeBytes", 0)
        change.setdefault("StreamViewType", "NEW_AND_OLD_IMAGES")
        return {"eventID": record.get("eventID", ""), "eventName": record["eventName"],
                "eventVersion": "1.1", "eventSource": "aws:dynamodb",
                "awsRegion": self.settings.current().region, "eventSourceARN": arn,
                "dynamodb": change}

    # --- queue -> deliver_webhooks ---------------------------------------------------------

    def pump_queue(self, wait_seconds: int = 0) -> int:
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=wait_seconds, VisibilityTimeout=60,
                                          AttributeNames=["All"])
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        self.app.deliver_webhooks({"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {},
            "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn, "awsRegion": self.settings.current().region}
            for m in messages]}, None)
        self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return len(messages)

    def drain(self, rounds: int = 50) -> None:
        """Move everything ready through streams, queue and deliveries (tests)."""
        for _ in range(rounds):
            if not self.pump_streams() + self.pump_queue():
                return

    # --- threads (local gateway) -----------------------------------------------------------

    def start(self) -> "EventPumps":
        for name, step in (("streams", self._stream_step), ("queue", self._queue_step)):
            thread = threading.Thread(target=self._loop, args=(step,), daemon=True,
                                      name=f"events-{name}")
            thread.start()
            self._threads.append(thread)
        return self

    def _stream_step(self):
        if not self.pump_streams():
            self._stop.wait(STREAM_POLL_SECONDS)

    def _queue_step(self):
        self.pump_queue(wait_seconds=1)

    def _loop(self, step):
        while not self._stop.is_set():
            try:
                step()
            except Exception as exc:  # retried at the next round, as Lambda would
                self.errors.append(repr(exc))
                if os.environ.get("SMSGW_LOCAL_EVENTS_QUIET") != "1":
                    print(f"webhook events: {exc!r}", file=sys.stderr)
                self._stop.wait(1)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
