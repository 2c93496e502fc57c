"""An endpoint's delivery log: its pages (newest attempt first, with a cursor), one event's
delivery, and sending logged events again (`redeliver`). The log's items are written by the
delivery function (dispatch.py); endpoints, signing and queueing are in the package."""
import base64
import binascii
import json

from pynamodb.exceptions import DoesNotExist

from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.domain import webhooks
from chalicelib.storage.webhook_tables import WebhookDelivery


def deliveries(account_id: str, webhook_id: str, limit: int = 20, state: str | None = None):
    """The endpoint's deliveries, newest attempt first."""
    webhooks.get(account_id, webhook_id)
    condition = WebhookDelivery.state == state if state else None
    return list(WebhookDelivery.by_time.query(webhook_id, scan_index_forward=False,
                                              filter_condition=condition, limit=limit))


def deliveries_page(account_id: str, webhook_id: str, limit: int = 20,
                    state: str | None = None, cursor: str | None = None):
    """One page of the endpoint's deliveries, newest attempt first, read with one Query:
    (deliveries, next_cursor or None). Filtered by `state`, a page may hold fewer than `limit`
    while more follow. A delivery attempted again meanwhile moves to the front of the log."""
    webhooks.get(account_id, webhook_id)
    start = _decode_cursor(cursor, webhook_id, state) if cursor else None
    condition = WebhookDelivery.state == state if state else None
    pages = WebhookDelivery.by_time.query(webhook_id, scan_index_forward=False,
                                          filter_condition=condition, page_size=limit,
                                          last_evaluated_key=start).page_iter
    page = next(pages)
    found = [WebhookDelivery.from_raw_data(item) for item in page.get("Items", [])]
    after = pages.last_evaluated_key
    return found, _encode_cursor(after, state) if after else None


def _encode_cursor(key: dict, state: str | None) -> str:
    position = {"w": key["webhook_id"]["S"], "e": key["event_id"]["S"],
                "l": int(key["last_at"]["N"]), "s": state or ""}
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()
                                    ).decode().rstrip("=")


def _decode_cursor(cursor: str, webhook_id: str, state: str | None) -> dict:
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=="))
        if not isinstance(position, dict) or set(position) != {"w", "e", "l", "s"} or \
                position["w"] != webhook_id or position["s"] != (state or "") or \
                type(position["l"]) is not int or \
                not 0 <= position["l"] < 2 ** 53 or not isinstance(position["e"], str) or \
                not 0 < len(position["e"]) <= 64:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise BadRequest("Invalid cursor: pass the next_cursor of the previous page of this "
                         "webhook's deliveries, with the same state.", "cursor")
    return {"webhook_id": {"S": webhook_id}, "event_id": {"S": position["e"]},
            "last_at": {"N": str(position["l"])}}


def delivery(webhook_id: str, event_id: str) -> WebhookDelivery | None:
    try:
        return WebhookDelivery.get(webhook_id, event_id, consistent_read=True)
    except DoesNotExist:
        return None


def logged(account_id: str, webhook_id: str, event_id: str) -> WebhookDelivery:
    """One event's delivery to the account's endpoint, from the log (NotFound if none yet, or
    if the endpoint is not the account's)."""
    found = delivery(webhook_id, event_id)
    if found is None or found.account_id != account_id:
        raise NotFound(f"No delivery of event {event_id} to {webhook_id} in the log.",
                       "event_id")
    return found


REDELIVERABLE = ("dead", "skipped")


def redeliver(account_id: str, webhook_id: str, event_id: str | None = None,
              since_ms: int | None = None) -> list[str]:
    """Queue again one event (any state), or every event whose delivery ended dead or skipped
    with a last attempt since `since_ms`. Same event id, same body; a fresh retry schedule."""
    webhook = webhooks.get(account_id, webhook_id)
    if event_id:
        chosen = [logged(account_id, webhook_id, event_id)]
    elif since_ms is not None:
        chosen = [d for d in WebhookDelivery.by_time.query(
            webhook_id, WebhookDelivery.last_at >= since_ms) if d.state in REDELIVERABLE]
    else:
        raise BadRequest("Name an event_id or give --since.", "event_id")
    webhooks.send_jobs([webhooks.job(webhook, d.event_id, d.type, d.body) for d in chosen])
    return [d.event_id for d in chosen]
