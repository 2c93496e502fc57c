"""Bounded DynamoDB streams in the emulator. moto keeps every stream record for ever and every
shard iterator it ever handed out (a 630-character id and a reference to the shard, two per
GetRecords), so the local gateway's stream pump (events.py, five reads a second per stream)
grew the process even when idle, and the records of every write stayed behind it. AWS drops a
record after 24 hours and an iterator after 15 minutes; here:

- iterators are kept in a bounded map (the oldest forgotten first, as AWS expires them);
- the pump trims the records it has handled (`trim`): the local gateway has no other reader
  of its streams. Sequence numbers go on from where they were (moto numbers a record by its
  place in the list; the shard's starting number moves up by what was trimmed);
- a stream no pump reads (the devices table's: its function is not emulated locally) keeps
  its newest MAX_RECORDS records, as AWS keeps a day's.
"""
from collections import OrderedDict

MAX_ITERATORS = 256
MAX_RECORDS = 10_000


class _BoundedIterators(OrderedDict):
    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        while len(self) > MAX_ITERATORS:
            self.popitem(last=False)


def bound_iterators(patch=setattr) -> None:
    """Every streams backend made from now on keeps at most MAX_ITERATORS iterators."""
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend
    original = DynamoDBStreamsBackend.__init__
    if getattr(original, "bounded", False):
        return

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.shard_iterators = _BoundedIterators(self.shard_iterators)
    __init__.bounded = True
    patch(DynamoDBStreamsBackend, "__init__", __init__)
    _bound_reads(patch)
    _bound_records(patch)


def _bound_records(patch) -> None:
    from moto.dynamodb.models.table import StreamShard
    original = StreamShard.add
    if getattr(original, "bounded", False):
        return

    def add(self, old, new):
        original(self, old, new)
        excess = len(self.items) - MAX_RECORDS
        if excess > 0:
            del self.items[:excess]
            self.starting_sequence_number += excess
    add.bounded = True
    patch(StreamShard, "add", add)


def _bound_reads(patch) -> None:
    """A read from before the trimmed part starts at the oldest record kept (AWS answers
    TrimmedDataAccessException; the pump never asks for it)."""
    from moto.dynamodb.models.table import StreamShard
    original = StreamShard.get
    if getattr(original, "bounded", False):
        return

    def get(self, start, quantity):
        return original(self, max(start, self.starting_sequence_number), quantity)
    get.bounded = True
    patch(StreamShard, "get", get)


def trim(stream_arn: str, through_sequence: str) -> int:
    """Drop the records of `stream_arn` up to and including `through_sequence` from the
    in-process emulator; how many were dropped (0 where moto is not in this process)."""
    from moto.dynamodb.models import dynamodb_backends
    _, _, _, region, account, resource = stream_arn.split(":", 5)
    table_name = resource.split("/")[1]
    try:
        table = dynamodb_backends[account][region].tables[table_name]
    except KeyError:
        return 0
    from localgw.atomic import _lock
    with _lock:  # writes append to the same list
        shard = table.stream_shard
        if shard is None:
            return 0
        count = min(int(through_sequence) - shard.starting_sequence_number + 1,
                    len(shard.items))
        if count <= 0:
            return 0
        del shard.items[:count]
        shard.starting_sequence_number += count
        return count
