"""Keeping the local gateway's data across restarts.

moto's server keeps everything in memory and has no persistence of its own, so the local gateway
copies its state out through the same AWS APIs the gateway uses, and back in at the next start:

- every SQS queue of the stage: its attributes, tags and the messages waiting in it (received
  with a short visibility timeout, copied, then made visible again at once);
- then every table of `tables.MODELS`, item by item (Scan), as DynamoDB's own JSON.

Queues are read before tables on purpose: the gateway writes a message before it queues its job,
so every job in a snapshot has its message in the same snapshot. Jobs a phone has taken but not
reported (in flight), and delayed queue messages, are not visible and are not copied; the
message's record is, and the outbox sweep queues its job again after its grace period.

The file is written whole to a temporary name and renamed, so a crash mid-write leaves the
previous snapshot intact.
"""
import base64
import json
import os
import time

SNAPSHOT_FILE = "snapshot.json"
FORMAT = 1
# Queue attributes that describe a queue's state rather than its settings.
_READ_ONLY_ATTRIBUTES = {"QueueArn", "ApproximateNumberOfMessages", "CreatedTimestamp",
                         "ApproximateNumberOfMessagesNotVisible", "LastModifiedTimestamp",
                         "ApproximateNumberOfMessagesDelayed", "SqsManagedSseEnabled"}


def _clients():
    import boto3

    from chalicelib.core import settings
    session = boto3.session.Session()
    return (session.client("dynamodb", region_name=settings.current().region),
            session.client("sqs", region_name=settings.current().region))


def _table_names() -> list[str]:
    from chalicelib.storage import tables
    return [model.Meta.table_name for model in tables.MODELS]


def _queue_prefix() -> str:
    from chalicelib.core import settings
    return f"{settings.current().prefix}-"


def _copy_queue(sqs, url: str) -> dict:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    tags = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
    messages, handles, seen = [], [], set()
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30,
                                    AttributeNames=["All"], MessageAttributeNames=["All"],
                                    WaitTimeSeconds=0).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            handles.append(message["ReceiptHandle"])
            kept = {"body": message["Body"]}
            if message.get("MessageAttributes"):
                kept["attributes"] = message["MessageAttributes"]
            for key in ("MessageGroupId", "MessageDeduplicationId"):
                if key in message.get("Attributes", {}):
                    kept[key] = message["Attributes"][key]
            messages.append(kept)
    for start in range(0, len(handles), 10):  # visible again to the device at once
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
            {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0}
            for n, h in enumerate(handles[start:start + 10])])
    name = url.rstrip("/").rsplit("/", 1)[-1]
    return {"name": name, "url": url, "tags": tags, "messages": messages,
            "attributes": {k: v for k, v in attributes.items()
                           if k not in _READ_ONLY_ATTRIBUTES}}


def _scan_tables(dynamodb) -> dict:
    tables = {}
    for name in _table_names():
        items, kwargs = [], {"TableName": name, "ConsistentRead": True}
        while True:
            page = dynamodb.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        tables[name] = items
    return tables


_COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
           "ApproximateNumberOfMessagesDelayed"]


CONSISTENT_TRIES = 5


def _tables_and_streams(dynamodb, streams) -> tuple[dict, list | None]:
    """The tables, and the stream records `streams` (the event pumps, paused) has not handled,
    read so that they agree: no event table was written during the Scan (its stream did not
    grow), else read again. Under a load that never pauses, the last try is kept: a crash
    right after it may then replay a change the Scan missed."""
    tables, pending = None, None
    for _ in range(CONSISTENT_TRIES):
        before = streams.unhandled() if streams is not None else None
        tables = _scan_tables(dynamodb)
        pending = streams.unhandled() if streams is not None else None
        if pending == before:
            break
    return tables, pending


def take(endpoint: str, previous: dict | None = None, streams=None) -> dict | None:
    """The stage's queues and tables as one JSON-serialisable dict, or None when nothing changed
    since `previous`. Unchanged means the same table items and the same queue counts: the gateway
    never changes a queue's content without writing the message's record, so idle periods cost
    Scans and no ReceiveMessage (receiving bumps the messages' receive counts).

    `streams`: the event pumps (localgw/events.py), paused by the caller; the stream records
    they have not handled yet are kept too (`"streams"`), and handed on after a restore."""
    dynamodb, sqs = _clients()
    urls = sqs.list_queues(QueueNamePrefix=_queue_prefix(), MaxResults=1000).get("QueueUrls", [])
    counts = {url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=_COUNTS)["Attributes"]
              for url in urls}
    if previous is not None and previous.get("counts") == counts:
        tables, pending = _tables_and_streams(dynamodb, streams)
        if previous["tables"] == tables and previous.get("streams") == pending:
            return None
    queues = [_copy_queue(sqs, url) for url in urls]
    tables, pending = _tables_and_streams(dynamodb, streams)
    taken = {"format": FORMAT, "taken_at": time.time(), "endpoint": endpoint, "counts": counts,
             "queues": queues, "tables": tables}
    if pending is not None:
        taken["streams"] = pending
    return taken


def _bytes_as_text(value):
    if isinstance(value, (bytes, bytearray)):
        return {"__b64__": base64.b64encode(value).decode()}
    raise TypeError(f"cannot store {type(value).__name__}")


def _text_as_bytes(value: dict):
    return base64.b64decode(value["__b64__"]) if set(value) == {"__b64__"} else value


def save(data_dir: str, snapshot: dict) -> str:
    """Write the snapshot atomically; returns its path."""
    path = os.path.join(data_dir, SNAPSHOT_FILE)
    temporary = f"{path}.{os.getpid()}.tmp"
    from localgw.data import create_private
    with os.fdopen(create_private(temporary), "w", encoding="utf-8") as handle:  # 0600
        json.dump(snapshot, handle, default=_bytes_as_text, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def load(data_dir: str) -> dict | None:
    path = os.path.join(data_dir, SNAPSHOT_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        snapshot = json.load(handle, object_hook=_text_as_bytes)
    if snapshot.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown snapshot format {snapshot.get('format')!r}")
    return snapshot


def _moved(value, old: str, new: str):
    """Queue URLs stored in items name the emulator's address; follow it if it changed."""
    if old == new:
        return value
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    return value


def restore(snapshot: dict, endpoint: str) -> dict:
    """Put a snapshot back into an empty emulator whose tables exist; returns counts."""
    dynamodb, sqs = _clients()
    old = snapshot.get("endpoint") or endpoint
    counts = {"queues": 0, "jobs": 0, "items": 0}
    for queue in snapshot["queues"]:
        url = sqs.create_queue(QueueName=queue["name"], Attributes=queue["attributes"],
                               **({"tags": queue["tags"]} if queue["tags"] else {}))["QueueUrl"]
        counts["queues"] += 1
        entries = []
        for n, message in enumerate(queue["messages"]):
            entry = {"Id": str(n), "MessageBody": message["body"]}
            if message.get("attributes"):
                entry["MessageAttributes"] = message["attributes"]
            for key in ("MessageGroupId", "MessageDeduplicationId"):
                if key in message:
                    entry[key] = message[key]
            entries.append(entry)
        for start in range(0, len(entries), 10):
            sqs.send_message_batch(QueueUrl=url, Entries=entries[start:start + 10])
        counts["jobs"] += len(entries)
    known = set(_table_names())
    for name, items in snapshot["tables"].items():
        if name not in known:  # a table this version no longer has
            continue
        for start in range(0, len(items), 25):
            requests = {name: [{"PutRequest": {"Item": _moved(item, old, endpoint)}}
                               for item in items[start:start + 25]]}
            while requests:
                requests = dynamodb.batch_write_item(RequestItems=requests).get(
                    "UnprocessedItems") or None
        counts["items"] += len(items)
    return counts
