"""Make the emulator's DynamoDB keep DynamoDB's per-item promise: a write is applied whole and a
read sees an item before or after it, never halfway. moto checks a condition, then applies an
UpdateItem's actions one by one, with no lock, so concurrent requests of the local gateway could
both pass one condition (two phones holding one poll slot) or read a status without the time
stamp written with it. One lock around moto's item operations serialises them, as a single
partition would; our code still races freely between its calls.

Transactions are undone by item, not by table: moto's TransactWriteItems deep-copies every
table it touches before it starts (to put the copy back if one condition fails), so each send
with an idempotency key copied the whole messages table and its stream, and a cancelled one
replaced the table with that copy, which the stream's iterators kept alive. Measured on the
local gateway (bench/local_scale.py): 150 sends' transactions took 8.9 s, the next 150 23.7 s,
and the process grew by ~1 GB per few hundred messages. Here only the items the transaction
names are copied, and put back (with the stream records it added dropped) if it is cancelled.
"""
import copy
import threading

ITEM_OPERATIONS = ("put_item", "get_item", "update_item", "delete_item", "query", "scan",
                   "batch_get_item", "batch_write_item", "transact_get_items",
                   "transact_write_items")
_lock = threading.RLock()  # transact_write_items calls the others
_in_transaction = threading.local()


def serialise(backend_class, patch=setattr) -> None:
    """Wrap `backend_class`'s item operations in one lock. `patch` is setattr by default
    (the local gateway), or a test's monkeypatch.setattr so it is undone after the test."""
    for name in ITEM_OPERATIONS:
        original = getattr(backend_class, name)
        if getattr(original, "serialised", False):
            continue

        def locked(self, *args, _original=original, **kwargs):
            with _lock:
                return _original(self, *args, **kwargs)
        locked.serialised = True
        patch(backend_class, name, locked)


class _TablesKept:
    """moto's module-level `copy` while a transaction runs on this thread: a Table is 'copied'
    as itself (the undo log below stands in for moto's whole-table copy); anything else is
    copied as before."""

    def __init__(self, real):
        self.real = real

    def deepcopy(self, value, memo=None):
        from moto.dynamodb.models.table import Table
        if isinstance(value, Table) and getattr(_in_transaction, "active", False):
            return value
        return self.real.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(self.real, name)


def _touched(backend, transact_items) -> list:
    """(table, hash key, range key, copy of the item or None, stream length) per item named."""
    from moto.dynamodb.models.dynamo_type import DynamoType
    undo = []
    for entry in transact_items:
        for op_type, op in entry.items():
            table = backend.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Item") if op_type == "Put" else op.get("Key")
            try:
                hash_key = DynamoType(key[table.hash_key_attr])
                range_key = DynamoType(key[table.range_key_attr]) \
                    if table.range_key_attr else None
                current = table.get_item(hash_key, range_key)
            except Exception:  # malformed: moto refuses it before writing anything
                continue
            shard = table.stream_shard
            undo.append((table, hash_key, range_key, copy.deepcopy(current),
                         len(shard.items) if shard is not None else None))
    return undo


def _put_back(undo) -> None:
    for table, hash_key, range_key, old, stream_length in reversed(undo):
        if range_key is not None:
            if old is None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items[hash_key][range_key] = old
        elif old is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = old
        if stream_length is not None:
            del table.stream_shard.items[stream_length:]


def undo_by_item(backend_class, patch=setattr) -> None:
    """Replace moto's whole-table copy in TransactWriteItems by an undo log of the items the
    transaction names. Call before `serialise` (the lock then wraps this)."""
    import moto.dynamodb.models as models
    if not isinstance(models.copy, _TablesKept):
        patch(models, "copy", _TablesKept(models.copy))
    original = backend_class.transact_write_items
    if getattr(original, "undo_by_item", False):
        return

    def transact_write_items(self, transact_items):
        with _lock:
            undo = _touched(self, transact_items)
            _in_transaction.active = True
            try:
                return original(self, transact_items)
            except BaseException:
                _put_back(undo)
                raise
            finally:
                _in_transaction.active = False
    transact_write_items.undo_by_item = True
    patch(backend_class, "transact_write_items", transact_write_items)


def serialise_moto_dynamodb(patch=setattr) -> None:
    from moto.dynamodb.models import DynamoDBBackend
    undo_by_item(DynamoDBBackend, patch)
    serialise(DynamoDBBackend, patch)
