"""The API's message lists: compat `get_history` and REST v1 `GET /v1/messages`, outgoing and
incoming merged newest first by Query only, with an opaque cursor per kind. (The dashboard's
page-bounded search with a date range and a timeline is `message_search`.)"""
import base64
import binascii
import json

from chalicelib.core import clock, ids
from chalicelib.core.errors import BadRequest
from chalicelib.storage.tables import IncomingMessage, Message

HISTORY_TYPES = ("outgoing", "incoming", "all")
MAX_HISTORY = 100


def _outgoing_entry(m: Message) -> dict:
    return {"message_id": m.message_id, "type": "outgoing", "device_id": m.device_id,
            "device_uid": m.device_uid, "phone_number": m.phone_number, "message": m.body,
            "sim_slot": m.sim_slot, "status": m.status, "created_at": clock.fmt(m.created_at),
            "processed_at": clock.fmt(m.processed_at)}


def _incoming_entry(m: IncomingMessage) -> dict:
    return {"message_id": m.message_id, "type": "incoming", "device_id": m.device_id,
            "device_uid": m.device_uid, "phone_number": m.phone_number, "message": m.body,
            "sim_slot": m.sim_slot, "status": "received", "created_at": clock.fmt(m.received_at),
            "processed_at": None}


def _encode_cursor(position: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode()


def _cursor_id(value) -> bool:
    # bool is an int in Python: {"o": true} must not pass as message id 1
    return type(value) is int and -1 <= value < 2 ** 53


def _decode_cursor(cursor: str, kind: str) -> dict:
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=="))
        if not isinstance(position, dict) or position.get("t") != kind or set(position) - {
                "t", "o", "i"} or not all(_cursor_id(position.get(tag, 0)) for tag in ("o", "i")):
            raise ValueError
        return position
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise BadRequest("Invalid cursor: pass the next_cursor of a previous get_history "
                         "answer with the same type.", "cursor")


def id_range(model, low: int | None, high: int | None):
    """The key condition for ids in [low, high) (either end open when None), or None."""
    if low is not None and high is not None:
        return model.message_id.between(low, high - 1)
    if high is not None:
        return model.message_id < high
    if low is not None:
        return model.message_id >= low
    return None


def _page(model, account_id, before, limit, bounds=(None, None), where=None):
    low, high = bounds
    if before is not None:
        high = before if high is None else min(high, before)
    return list(model.query(account_id, id_range(model, low, high), filter_condition=where,
                            scan_index_forward=False, limit=limit))


SOURCES = {"outgoing": [("o", Message, _outgoing_entry)],
           "incoming": [("i", IncomingMessage, _incoming_entry)]}
SOURCES["all"] = SOURCES["outgoing"] + SOURCES["incoming"]


def history(account_id: str, kind: str = "all", limit: int = 20, cursor: str | None = None):
    """Newest first, by Query only: reads at most `limit` items of each kind asked for.
    Returns (entries, next_cursor or None). The cursor holds, per kind, the last id shown
    (the next page reads below it) or -1 once that kind is exhausted."""
    if kind not in HISTORY_TYPES:
        raise BadRequest("Invalid type: must be outgoing, incoming or all.", "type")
    items, next_cursor = search(account_id, kind, limit, cursor)
    return [SOURCE_RENDER[type(item)](item) for item in items], next_cursor


SOURCE_RENDER = {Message: _outgoing_entry, IncomingMessage: _incoming_entry}


def _filters(model, status=None, device_id=None, phone_number=None):
    where = None
    for attribute, value in ((model.device_id, device_id), (model.phone_number, phone_number),
                             (getattr(model, "status", None), status)):
        if value is not None and attribute is not None:
            where = attribute == value if where is None else where & (attribute == value)
    return where


def search(account_id: str, kind: str = "all", limit: int = 20, cursor: str | None = None,
           status: str | None = None, device_id: int | None = None,
           phone_number: str | None = None, since_ms: int | None = None,
           until_ms: int | None = None, cursor_tag: str = ""):
    """The items behind `history`, newest first, optionally filtered (status, device, number,
    created in [since_ms, until_ms)). Time bounds narrow the Query's key range; the other
    filters are a FilterExpression, so a page may hold fewer than `limit` items while more
    follow. Returns (models, next_cursor or None); the cursor is tied to `kind` + `cursor_tag`."""
    if limit < 1:
        raise BadRequest("Invalid limit: must be at least 1.", "limit")
    limit = min(limit, MAX_HISTORY)
    tag_kind = kind + cursor_tag
    position = _decode_cursor(cursor, tag_kind) if cursor else {"t": tag_kind}
    bounds = (None if since_ms is None else ids.message_id_floor(since_ms),
              None if until_ms is None else ids.message_id_floor(until_ms))
    sources = [(tag, model) for tag, model, _ in SOURCES[kind]
               if status is None or (status == "received") == (model is IncomingMessage)]
    fetched = {}
    for tag, model in sources:
        if position.get(tag) != -1:
            where = _filters(model, None if model is IncomingMessage else status, device_id,
                             phone_number)
            fetched[tag] = [(item.message_id, tag, item) for item in _page(
                model, account_id, position.get(tag), limit, bounds, where)]
    page = sorted((e for items in fetched.values() for e in items), key=lambda e: -e[0])[:limit]
    next_position = {"t": tag_kind}
    for tag, _, _ in SOURCES[kind]:
        if tag not in fetched:
            next_position[tag] = -1
            continue
        shown = [e[0] for e in page if e[1] == tag]
        all_shown = len(shown) == len(fetched[tag])
        if all_shown and len(fetched[tag]) < limit:
            next_position[tag] = -1
        elif shown:
            next_position[tag] = shown[-1]
        elif tag in position:
            next_position[tag] = position[tag]
    more = any(next_position.get(tag) != -1 for tag, _, _ in SOURCES[kind])
    return [e[2] for e in page], (_encode_cursor(next_position) if more else None)
