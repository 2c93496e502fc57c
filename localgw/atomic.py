"""Make the emulator's DynamoDB keep DynamoDB's per-item promise: a write is applied whole and a
read sees an item before or after it, never halfway. moto checks a condition, then applies an
UpdateItem's actions one by one, with no lock, so concurrent requests of the local gateway could
both pass one condition (two phones holding one poll slot) or read a status without the time
stamp written with it. One lock around moto's item operations serialises them, as a single
partition would; our code still races freely between its calls."""
import threading

ITEM_OPERATIONS = ("put_item", "get_item", "update_item", "delete_item", "query", "scan",
                   "batch_get_item", "batch_write_item", "transact_get_items",
                   "transact_write_items")
_lock = threading.RLock()  # transact_write_items calls the others


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


def serialise_moto_dynamodb(patch=setattr) -> None:
    from moto.dynamodb.models import DynamoDBBackend
    serialise(DynamoDBBackend, patch)
