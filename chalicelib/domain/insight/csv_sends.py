"""Sends from a CSV file (the dashboard's "Send a list"): parse and check every row before
anything is sent, then queue the valid rows through the same path as POST /v1/messages without
a device (the pool's choice, paced), one idempotency key per row.

Why a key per row from the file: `csv:<hash of file and template>:<line>`. A double click, a
resubmitted form or a second upload of the same file gives the same keys, so each row is
accepted once (outbox.submit answers a replay with the message it made); a row the first
attempt could not queue is tried again. Limits: MAX_ROWS rows and MAX_BYTES bytes a file.
"""
import csv
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from chalicelib.core import clock
from chalicelib.core.errors import BadRequest, GatewayError, from_unexpected
from chalicelib.core.text import SMS_CONTROLS, refuse_controls, size_text

MAX_ROWS = 1000
MAX_BYTES = 200 * 1024
NUMBER_COLUMNS = ("number", "phone", "phone_number", "to", "mobile")
MESSAGE_COLUMNS = ("message", "text", "body")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
WORKERS = 8


@dataclass
class Row:
    line: int
    number: str
    text: str
    segments: int


@dataclass
class Plan:
    file_hash: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)

    @property
    def batch(self) -> str:
        return self.file_hash[:32]

    def key(self, row: Row) -> str:
        return f"csv:{self.batch}:{row.line}"


def _text(raw: bytes) -> str:
    if not raw:
        raise BadRequest("Choose a CSV file to upload.", "file")
    if len(raw) > MAX_BYTES:
        raise BadRequest(f"The file is {size_text(len(raw), MAX_BYTES)}.", "file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("The file is not UTF-8 text: save it as CSV UTF-8.", "file")


def _column(header: list[str], names: tuple, what: str) -> int:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    raise BadRequest(f"No {what} column: name one of {', '.join(names)} in the first line "
                     f"(found: {', '.join(h[:30] for h in header) or 'nothing'}).", "file")


def parse(raw: bytes, template: str | None = None) -> Plan:
    """Check a whole file. A file that cannot be read raises BadRequest (nothing is sent);
    rows that cannot be sent are listed in `invalid` with their line number and reason."""
    from chalicelib.domain import phone, segments
    text = _text(raw)
    template = (template or "").replace("\r\n", "\n").strip() or None
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise BadRequest("The file is empty: its first line names the columns.", "file")
    number_at = _column(header, NUMBER_COLUMNS, "number")
    names = [h.strip() for h in header]
    if template:
        unknown = [p for p in PLACEHOLDER.findall(template) if p.strip() not in names]
        if unknown:
            raise BadRequest(f"The template names {{{unknown[0]}}}, which is not a column "
                             f"(columns: {', '.join(names)}).", "template")
        message_at = None
    else:
        message_at = _column(header, MESSAGE_COLUMNS, "message")
    # Hashed as text with \n line ends: the preview's form sends the file back with \r\n.
    same = (text.replace("\r\n", "\n") + "\0" + (template or "").replace("\r\n", "\n"))
    plan = Plan(hashlib.sha256(same.encode()).hexdigest(), names)
    try:
        for values in reader:
            line = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(plan.rows) + len(plan.invalid) >= MAX_ROWS:
                raise BadRequest(f"The file has more than {MAX_ROWS} rows; split it.", "file")
            if len(values) != len(header):
                plan.invalid.append((line, f"{len(values)} fields where the first line has "
                                           f"{len(header)}"))
                continue
            cells = dict(zip(names, values, strict=True))
            body = PLACEHOLDER.sub(lambda m, c=cells: c[m.group(1).strip()], template) if template \
                else values[message_at]
            try:
                refuse_controls(values[number_at], parameter="number", what="the number")
                refuse_controls(body, parameter="message", what="the message",
                                     allowed=SMS_CONTROLS)
                number = phone.normalise(values[number_at].strip(), "number")
                counted = segments.check(body, "message")
            except GatewayError as error:
                plan.invalid.append((line, error.message))
                continue
            plan.rows.append(Row(line, number, body, counted.segments))
    except csv.Error as error:
        raise BadRequest(f"The file is not valid CSV near line {reader.line_num}: {error}.",
                         "file")
    if not plan.rows and not plan.invalid:
        raise BadRequest("The file has no rows under its first line.", "file")
    return plan


@dataclass
class Forecast:
    last_at: int | None  # when the last row the pool would take is handed out, epoch ms
    refused: list[int]  # lines the pool would refuse now: beyond its backlog (split the file)
    opted_out: list[Row] = field(default_factory=list)  # rows send refuses: the number said STOP


def forecast(account_id: str, plan: Plan, now: int | None = None) -> Forecast:
    """What sending the plan now would do: rows to opted-out numbers refused (as
    outbox.submit will), the others under pacing (pacing.handouts): automatic choice
    refuses a row it could not hand out within SMSGW_POOL_BACKLOG_SECONDS (send's rows carry
    no valid_for, so the default validity caps that too), so those rows are counted, never
    promised a time."""
    from chalicelib.domain import opt_outs, pacing, pool
    now = clock.now_ms() if now is None else now
    stopped = opt_outs.opted_out(account_id, [row.number for row in plan.rows])
    rows = [row for row in plan.rows if row.number not in stopped]
    horizon = pool.horizon_ms(None)  # the send's rows carry no valid_for
    running = pool.running(account_id, now, fresh=True)
    found = pacing.handouts(running, [row.segments for row in rows], now, horizon) \
        if rows else []
    taken = [at for at in found if at is not None]
    return Forecast(max(taken) if taken else None,
                    [row.line for row, at in zip(rows, found, strict=True) if at is None],
                    [row for row in plan.rows if row.number in stopped])


def send(account_id: str, plan: Plan) -> dict:
    """Queue every valid row (POST /v1/messages's path without a device: the pool's choice).
    Returns counts: accepted (new), replayed (already sent by an earlier submit), refused
    [(line, reason)]."""
    from chalicelib.domain import accounts, outbox
    events = bool(accounts.get_account(account_id).webhook_adds)

    def one(row: Row):
        try:
            accepted = outbox.submit(account_id, outbox.SendRequest(
                phone_number=row.number, text=row.text, idempotency_key=plan.key(row),
                events=events))
            return "replayed" if accepted.replayed else "accepted"
        except Exception as exc:  # one row's trouble is reported, the others still go
            error = exc if isinstance(exc, GatewayError) else from_unexpected(exc)
            return (row.line, error.message)

    with ThreadPoolExecutor(WORKERS) as workers:
        outcomes = list(workers.map(one, plan.rows))
    return {"accepted": outcomes.count("accepted"), "replayed": outcomes.count("replayed"),
            "refused": [o for o in outcomes if isinstance(o, tuple)]}


def progress(account_id: str, batch: str, last_line: int) -> dict:
    """Where a sent file's messages stand (`batch`: Plan.batch, `last_line`: its last row's
    line): counts by status, found through the rows' keys (no file kept on the server)."""
    from chalicelib.storage.tables import Idempotency, Message
    if not re.fullmatch(r"[0-9a-f]{32}", batch or "") or not 2 <= last_line <= 2 * MAX_ROWS + 1:
        raise BadRequest("Unknown list: send the file again to see its progress.", "batch")
    keys = [f"{account_id}#csv:{batch}:{line}" for line in range(2, last_line + 1)]
    ids = [claim.message_id for claim in Idempotency.batch_get(keys)]
    counts = {}
    for message in Message.batch_get([(account_id, i) for i in ids]):
        counts[message.status] = counts.get(message.status, 0) + 1
    return {"queued": len(ids), "by_status": dict(sorted(counts.items()))}
