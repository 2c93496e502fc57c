"""Counts every AWS call the gateway makes, at botocore level, with estimated DynamoDB units.

PynamoDB builds its own botocore session and client, so hooking a boto3 session would miss
it; both boto3 and PynamoDB end in `botocore.client.BaseClient._make_api_call`, which is what
we wrap. Recording is global (all threads) while a `recording()` block is open.

DynamoDB capacity: PynamoDB asks for `ReturnConsumedCapacity=TOTAL`, but moto answers constants
(0.5 or 1.0 whatever the size), so units are estimated from the items' sizes with DynamoDB's
documented rules: reads 4 KB per unit (half for eventually consistent reads, a Query summing
the items it returns), writes 1 KB per unit, transactions twice that, and a write also writes
each global secondary index whose key the item has (sparse indexes only hold some items); an
update that sets an index key moves the entry (two writes), one that removes it deletes it, and
one that changes only attributes the index projects rewrites it (one write: for ALL any
attribute, for INCLUDE the listed ones, for KEYS_ONLY none).
Where the size of an item is not visible in the request or response (an UpdateItem or DeleteItem
that returns no attributes) it is taken as under 1 KB, which is true for every item we store.
"""
import copy
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import botocore.client
from botocore.exceptions import ClientError

_original = botocore.client.BaseClient._make_api_call
_lock = threading.Lock()
_sinks: list[list] = []
_paused = threading.local()
GSI_KEYS: dict[str, list] = {}  # table name -> hash-key attribute of each global index
# table name -> the key attributes (hash, range) of each global index
GSI_KEY_SETS: dict[str, list] = {}
# table name -> what each global index projects besides keys: None for ALL, else the set of
# non-key attributes (empty for KEYS_ONLY), in GSI_KEY_SETS' order
GSI_PROJECTED: dict[str, list] = {}


@dataclass
class Call:
    service: str
    operation: str
    params: dict
    response: dict | None
    seconds: float
    error: str | None = None
    rru: float = 0.0
    wru: float = 0.0
    notes: list = field(default_factory=list)
    before: dict | None = None  # UpdateItem on a table with indexes: the item before the call

    @property
    def label(self) -> str:
        """`service.Operation(table)`, the table by its short name (settings.TABLES)."""
        from chalicelib.core import settings
        table = self.params.get("TableName") or ""
        short = next((t for t in settings.TABLES if table.endswith("-" + t)), table)
        return f"{self.service}.{self.operation}" + (f"({short})" if short else "")


def _recording_make_api_call(client, operation_name, api_params):
    if not _sinks or getattr(_paused, "on", False):
        return _original(client, operation_name, api_params)
    params = copy.deepcopy(api_params)
    before = None
    if _exact_units.on and operation_name == "UpdateItem" and \
            GSI_KEY_SETS.get(params.get("TableName")):
        # The item as it was (not recorded, not timed): whether the update moves, rewrites or
        # deletes index entries depends on it (see _update_units).
        before = _original(client, "GetItem", {"TableName": params["TableName"],
                                               "Key": params["Key"], "ConsistentRead": True}
                           ).get("Item", {})
    start = time.perf_counter()
    response, error = None, None
    try:
        response = _original(client, operation_name, api_params)
        return response
    except ClientError as exc:
        response, error = exc.response, exc.response.get("Error", {}).get("Code", "ClientError")
        raise
    finally:
        call = Call(client.meta.service_model.endpoint_prefix, operation_name, params,
                    response, time.perf_counter() - start, error, before=before)
        if call.service == "dynamodb":
            estimate_units(call)
        with _lock:
            for sink in _sinks:
                sink.append(call)


class _Flag:
    on = False


_exact_units = _Flag()


def install(exact_units: bool = False) -> None:
    """Record calls from now on. exact_units: read each indexed item before an UpdateItem (an
    extra, unrecorded GetItem) to count its index writes exactly; for call-counting benches,
    not for timing ones (the extra read would be inside the handler's time)."""
    _exact_units.on = exact_units
    botocore.client.BaseClient._make_api_call = _recording_make_api_call


def uninstall() -> None:
    _exact_units.on = False
    botocore.client.BaseClient._make_api_call = _original


def learn_indexes(models) -> None:
    """Remember how many GSIs each PynamoDB model's table has (each write writes them too)."""
    from pynamodb.indexes import GlobalSecondaryIndex
    for model in models:
        keys = []
        for value in vars(model).values():
            if isinstance(value, GlobalSecondaryIndex):
                keys.append(next(a.attr_name for a in vars(type(value)).values()
                                 if getattr(a, "is_hash_key", False)))
        GSI_KEYS[model.Meta.table_name] = keys
        indexes = [value for value in vars(model).values()
                   if isinstance(value, GlobalSecondaryIndex)]
        GSI_KEY_SETS[model.Meta.table_name] = [
            {a.attr_name for a in vars(type(value)).values()
             if getattr(a, "is_hash_key", False) or getattr(a, "is_range_key", False)}
            for value in indexes]
        GSI_PROJECTED[model.Meta.table_name] = [_projected(value) for value in indexes]


def _projected(index) -> set | None:
    projection = index.Meta.projection
    if projection.projection_type == "ALL":
        return None
    return set(getattr(projection, "non_key_attributes", None) or ())


@contextmanager
def recording():
    """Collect the AWS calls made (by any thread) inside the block into the yielded list."""
    sink: list[Call] = []
    with _lock:
        _sinks.append(sink)
    try:
        yield sink
    finally:
        with _lock:
            _sinks.remove(sink)


@contextmanager
def paused():
    """Calls made by this thread inside the block are not recorded (bench set-up)."""
    _paused.on = True
    try:
        yield
    finally:
        _paused.on = False


# --- DynamoDB item sizes and units -------------------------------------------------------------

def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0") or "0"
    return (len(digits.rstrip("0") or "0") + 1) // 2 + 1


def value_size(value: dict) -> int:
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + value_size(v) for k, v in inner.items())
    return 0


def item_size(item: dict | None) -> int:
    return sum(len(name.encode()) + value_size(v) for name, v in (item or {}).items())


def _read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


def _write_units(size: int | None, table: str, item: dict | None = None) -> float:
    """A write, plus one per global index the item is in (sparse indexes: only when the item
    has the index's key; an update that takes an item out of a sparse index is not seen)."""
    units = max(1, math.ceil((size or 0) / 1024))
    indexes = sum(1 for key in GSI_KEYS.get(table, []) if item is None or key in item)
    return units * (1 + indexes)


def _update_units(before: dict, after: dict | None, table: str) -> float:
    """An UpdateItem's write units, index by index, with DynamoDB's rules: an item in the index
    before and after moves its entry when an index key changed (delete + put: 2), else rewrites
    it when an attribute the index projects changed (1; KEYS_ONLY: never), else writes nothing;
    an item entering or leaving a sparse index puts or deletes its entry (1). `after` unknown
    (no ALL_NEW): taken as unchanged keys, and projected attributes as changed."""
    known = after is not None
    after = before if after is None else after
    units = max(1, math.ceil(max(item_size(before), item_size(after)) / 1024))
    changed = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    total = units
    projections = GSI_PROJECTED.get(table) or [None] * len(GSI_KEY_SETS.get(table, []))
    for keys, projected in zip(GSI_KEY_SETS.get(table, []), projections, strict=True):
        was, now = keys <= set(before), keys <= set(after)
        if was and now:
            if changed & keys:
                total += units * 2
            elif not known or (changed if projected is None else changed & projected):
                total += units
        elif was or now:
            total += units
    return total


def estimate_units(call: Call) -> None:
    p, r, op = call.params, call.response or {}, call.operation
    table = p.get("TableName", "")
    if op == "GetItem":
        call.rru = _read_units(item_size(r.get("Item")), bool(p.get("ConsistentRead")))
    elif op in ("Query", "Scan"):
        size = sum(item_size(i) for i in r.get("Items", []))
        call.rru = _read_units(size, bool(p.get("ConsistentRead")) and "IndexName" not in p)
    elif op == "PutItem":
        call.wru = _write_units(item_size(p.get("Item")), table, p.get("Item"))
    elif op == "UpdateItem" and call.before is not None and not call.error:
        after = r.get("Attributes") if p.get("ReturnValues") == "ALL_NEW" else None
        call.wru = _update_units(call.before, after, table)
    elif op in ("UpdateItem", "DeleteItem"):
        attributes = r.get("Attributes")
        if attributes is None or p.get("ReturnValues") not in ("ALL_NEW", "ALL_OLD"):
            call.notes.append("size<1KB assumed")
        call.wru = _write_units(item_size(attributes), table, attributes)
    elif op == "TransactWriteItems":
        for entry in p.get("TransactItems", []):
            (kind, body), = entry.items()
            item = body.get("Item") if kind == "Put" else None
            call.wru += 2 * _write_units(item_size(item), body.get("TableName", ""), item)
    elif op == "TransactGetItems":
        for entry in r.get("Responses", []):
            call.rru += 2 * _read_units(item_size(entry.get("Item")), True)
    elif op == "BatchWriteItem":
        for name, requests in p.get("RequestItems", {}).items():
            for req in requests:
                item = req.get("PutRequest", {}).get("Item")
                call.wru += _write_units(item_size(item), name, item)
    elif op == "BatchGetItem":
        for name, items in r.get("Responses", {}).items():
            consistent = bool(p.get("RequestItems", {}).get(name, {}).get("ConsistentRead"))
            call.rru += sum(_read_units(item_size(i), consistent) for i in items)


def summarize(calls: list[Call]) -> dict:
    """Counts and units of a list of calls: {'calls', 'by_op', 'rru', 'wru', 'sqs_requests'}."""
    by_op: dict[str, int] = {}
    for c in calls:
        by_op[c.label] = by_op.get(c.label, 0) + 1
    return {
        "calls": len(calls),
        "by_op": by_op,
        "dynamodb_calls": sum(c.service == "dynamodb" for c in calls),
        "sqs_requests": sum(sqs_request_units(c) for c in calls if c.service == "sqs"),
        "rru": sum(c.rru for c in calls),
        "wru": sum(c.wru for c in calls),
        "items_read": sum(items_read(c) for c in calls if c.service == "dynamodb"),
        "errors": [f"{c.label}:{c.error}" for c in calls if c.error],
    }


def items_read(call: Call) -> int:
    r = call.response or {}
    if call.operation in ("Query", "Scan"):
        return len(r.get("Items", []))
    if call.operation == "GetItem":
        return int("Item" in r)
    return 0


def sqs_request_units(call: Call) -> int:
    """SQS bills each 64 KB chunk of a request's payload as one request."""
    if call.operation == "SendMessage":
        return max(1, math.ceil(len(call.params.get("MessageBody", "").encode()) / 65536))
    if call.operation == "ReceiveMessage":
        size = sum(len(m.get("Body", "").encode()) for m in (call.response or {}).get(
            "Messages", []))
        return max(1, math.ceil(size / 65536))
    return 1
