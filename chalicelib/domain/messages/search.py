"""Finding messages for the dashboard: one kind (outgoing or incoming) at a time, newest first,
filtered by status, phone, number and date, and a message's lifecycle as a timeline.

Reads by Query only. The date range becomes a key condition (message ids grow with time); the
other filters are applied to pages of PAGE items read newest first, at most MAX_PAGES pages per
answer, so a rare match costs a bounded read and the answer says where it stopped searching.
"""
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, ids
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.core.text import ascii_int
from chalicelib.domain import phone
from chalicelib.domain.messages import Status
from chalicelib.storage.tables import IncomingMessage, Message

KINDS = {"outgoing": Message, "incoming": IncomingMessage}
STATUSES = tuple(Status)
PAGE, MAX_PAGES = 100, 5


@dataclass
class Filters:
    kind: str = "outgoing"
    status: str = ""
    device_uid: str = ""
    number: str = ""
    since: str = ""  # YYYY-MM-DD, UTC, inclusive
    until: str = ""

    def check(self) -> "Filters":
        if self.kind not in KINDS:
            raise BadRequest("Type must be outgoing or incoming.", "type")
        if self.status and (self.kind != "outgoing" or self.status not in STATUSES):
            raise BadRequest("Unknown status for this type.", "status")
        if self.number:
            self.number = phone.normalise(self.number)
        for name in ("since", "until"):
            value = getattr(self, name)
            if value:
                try:
                    datetime.strptime(value, "%Y-%m-%d")
                except ValueError:
                    raise BadRequest(f"Invalid date '{value[:20]}': use YYYY-MM-DD.", name)
        if self.since and self.until and self.since > self.until:
            raise BadRequest("The first date is after the last.", "since")
        return self

    def matches(self, item) -> bool:
        return ((not self.status or item.status == self.status)
                and (not self.device_uid or item.device_uid == self.device_uid)
                and (not self.number or item.phone_number == self.number))


@dataclass
class Found:
    items: list = field(default_factory=list)
    next_before: int | None = None  # pass as `before` for the next page
    searched_to: int | None = None  # set when the read budget ran out before `limit` matches


def _day_ms(day: str, plus_days: int = 0) -> int:
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC) + timedelta(days=plus_days)
    return int(start.timestamp() * 1000)


def search(account_id: str, filters: Filters, limit: int = 25,
           before: int | None = None) -> Found:
    filters.check()
    model = KINDS[filters.kind]
    upper = ids.message_id_floor(_day_ms(filters.until, 1)) if filters.until else 2 ** 53
    if before is not None:
        upper = min(upper, before)
    lower = ids.message_id_floor(_day_ms(filters.since)) if filters.since else 0
    found = Found()
    for _ in range(MAX_PAGES):
        if upper <= lower:
            return found
        page = list(model.query(account_id, model.message_id.between(lower, upper - 1),
                                scan_index_forward=False, limit=PAGE))
        for item in page:
            if filters.matches(item):
                if len(found.items) == limit:
                    found.next_before = found.items[-1].message_id
                    return found
                found.items.append(item)
        if len(page) < PAGE:
            return found
        upper = page[-1].message_id
    found.searched_to = upper
    found.next_before = upper
    return found


def get(account_id: str, kind: str, message_id) -> Message | IncomingMessage:
    if kind not in KINDS:
        raise NotFound("No such message type.", "type")
    try:
        number = ascii_int(message_id)
        return KINDS[kind].get(account_id, number)
    except (ValueError, DoesNotExist):
        raise NotFound("No such message in this account.", "message_id")


def timeline(message: Message) -> list[tuple[str, str, str]]:
    """(state, UTC time, note) of each step a message has taken, in order."""
    steps = [("pending", message.created_at, f"accepted, queued for phone {message.device_id}")]
    if message.leased_at:
        steps.append(("processing", message.leased_at,
                      f"taken by the phone (attempt {message.attempts or 1})"))
    if message.processed_at:
        steps.append(("sent", message.processed_at, "the phone sent it"))
    if message.delivered_at:
        steps.append(("delivered", message.delivered_at, "delivery report received"))
    if message.status in ("failed", "expired"):
        note = message.reason or ""
        if message.presumed:
            note += " (presumed by the gateway: the phone did not report in time)"
        steps.append((message.status, message.failed_at or message.expires_at, note.strip()))
    elif message.status in ("pending", "processing"):
        steps.append(("expires", message.expires_at, "ends expired if not sent by then"))
    return [(state, clock.fmt(at), note) for state, at, note in sorted(
        steps, key=lambda s: s[1] or 0)]
