"""An account's data as a zip its owner takes away: outgoing and incoming messages, phones,
webhook endpoints and opt-outs, each as CSV and as JSON (docs/export.md).

Rows are read a Query page at a time and written straight into the zip, itself a spooled
temporary file (in memory up to SPOOL_BYTES, then on disk), so an account of any size is
exported in bounded memory. Each kind is read once: its CSV goes into the zip as it is read,
its JSON into a spooled file copied in after. Secrets stay out (webhook signing secrets, device
token hashes, signing keys). Bounded by `max_bytes` and `deadline` (the dashboard's and REST
v1's answer must fit Lambda's response); the CLI exports without bounds.
"""
import csv
import io
import json
import shutil
import tempfile
import time
import zipfile

from chalicelib.core import clock, settings
from chalicelib.core.errors import GatewayError
from chalicelib.domain import accounts
from chalicelib.storage.tables import IncomingMessage, Message, OptOut

SPOOL_BYTES = 8 * 1024 * 1024
TIMES = {"created_at", "processed_at", "delivered_at", "failed_at", "expires_at",
         "scheduled_for", "received_at", "last_seen", "changed_at", "disabled_at",
         "last_success_at"}
COLUMNS = {
    "messages": ("message_id", "status", "phone_number", "body", "device_id", "device_uid",
                 "sim_slot", "kind", "segments", "encoding", "encrypted", "group_id",
                 "created_at", "scheduled_for", "processed_at", "delivered_at", "failed_at",
                 "expires_at", "reason", "attempts"),
    "incoming": ("message_id", "phone_number", "body", "device_id", "device_uid", "sim_slot",
                 "device_message_id", "received_at", "created_at"),
    "phones": ("device_id", "device_uid", "name", "kind", "app_version", "sim_count",
               "app_state", "last_seen", "battery", "signal", "pace_per_hour", "pace_window",
               "created_at"),
    "webhooks": ("webhook_id", "url", "events", "description", "state", "disabled_reason",
                 "disabled_at", "style", "smsgate_event", "device_uid", "created_at",
                 "last_success_at"),
    "opt_outs": ("phone_number", "opted_out", "source", "keyword", "device_uid",
                 "changed_at"),
}


class ExportTooLarge(GatewayError):
    http_status = 413
    code = "export_too_large"


def _phones(account_id: str):
    from chalicelib.domain import devices
    yield from devices.list_devices(account_id)


def _webhooks(account_id: str):
    from chalicelib.storage.webhook_tables import Webhook
    yield from Webhook.query(account_id)


def _sources(account_id: str) -> dict:
    return {"messages": Message.query(account_id), "incoming": IncomingMessage.query(account_id),
            "phones": _phones(account_id), "webhooks": _webhooks(account_id),
            "opt_outs": OptOut.query(account_id)}


def row(kind: str, record) -> dict:
    """One record as exported: its columns, times as UTC `YYYY-MM-DD HH:MM:SS`."""
    out = {}
    for name in COLUMNS[kind]:
        value = getattr(record, name, None)
        if name in TIMES:
            value = clock.fmt(value)
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, list):
            value = list(value)
        out[name] = value
    return out


def _csv_value(value):
    if isinstance(value, list):
        return " ".join(value)
    return "" if value is None else value


def write_zip(account_id: str, out, *, max_bytes: int | None = None,
              deadline: float | None = None) -> dict:
    """Write the account's export zip to the binary file `out`; returns the rows per kind.
    ExportTooLarge once the zip passes `max_bytes` or time passes `deadline` (monotonic)."""
    account = accounts.get_account(account_id)
    counts = {}
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for kind, records in _sources(account_id).items():
            counts[kind] = _write_kind(archive, kind, records, out, max_bytes, deadline)
        archive.writestr("account.json", json.dumps({
            "account_id": account.account_id, "name": account.name,
            "created_at": clock.fmt(account.created_at), "exported_at": clock.fmt(
                clock.now_ms()), "rows": counts}, indent=2))
    return counts


def _write_kind(archive, kind, records, out, max_bytes, deadline) -> int:
    count = 0
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES, mode="w+b") as json_part:
        json_text = io.TextIOWrapper(json_part, encoding="utf-8", newline="")
        json_text.write("[")
        with archive.open(f"{kind}.csv", "w", force_zip64=True) as member:
            csv_text = io.TextIOWrapper(member, encoding="utf-8", newline="")
            writer = csv.DictWriter(csv_text, fieldnames=COLUMNS[kind])
            writer.writeheader()
            for record in records:
                values = row(kind, record)
                writer.writerow({k: _csv_value(v) for k, v in values.items()})
                json_text.write(("," if count else "") + "\n" + json.dumps(values))
                count += 1
                if count % 500 == 0:
                    _check(out, max_bytes, deadline)
            csv_text.flush()
            csv_text.detach()
        json_text.write("\n]\n")
        json_text.flush()
        json_part.seek(0)
        with archive.open(f"{kind}.json", "w", force_zip64=True) as member:
            shutil.copyfileobj(json_part, member)
        json_text.detach()
    _check(out, max_bytes, deadline)
    return count


def _check(out, max_bytes, deadline) -> None:
    if max_bytes is not None and out.tell() > max_bytes:
        raise ExportTooLarge(
            f"This account's export is larger than {max_bytes // (1024 * 1024)} MB, the most "
            f"the gateway can answer with (SMSGW_EXPORT_MAX_BYTES): export it with the CLI, "
            f"`smsgw account export ACCOUNT_ID`.", "export")
    if deadline is not None and time.monotonic() > deadline:
        raise ExportTooLarge(
            f"This account's export takes longer than "
            f"{settings.current().export_budget_seconds} s, the "
            f"most the gateway can spend on an answer (SMSGW_EXPORT_BUDGET_SECONDS): export it "
            f"with the CLI, `smsgw account export ACCOUNT_ID`.", "export")


def bounded_zip(account_id: str) -> bytes:
    """The export as the dashboard and REST v1 answer it: within EXPORT_MAX_BYTES and
    EXPORT_BUDGET_SECONDS, else ExportTooLarge."""
    deadline = time.monotonic() + settings.current().export_budget_seconds
    with tempfile.SpooledTemporaryFile(SPOOL_BYTES, mode="w+b") as out:
        write_zip(account_id, out, max_bytes=settings.current().export_max_bytes, deadline=deadline)
        size = out.tell()
        if size > settings.current().export_max_bytes:
            _check(out, settings.current().export_max_bytes, None)
        out.seek(0)
        return out.read()


def filename(account_id: str) -> str:
    return f"smsgw-export-{account_id}-{clock.fmt(clock.now_ms())[:10]}.zip"
