"""The account's export and the purge of a deleted account, per 1,000 messages, on moto: the
gateway's own time (the time inside AWS calls taken out: moto's is not DynamoDB's), the AWS
calls by operation (exact), and the zip's size, for accounts of 1,000 and 10,000 messages
(printed, never asserted).

    python bench/export.py [--quick] [--json]
"""
import io
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402


class Calls(Counter):
    """AWS calls by operation, and the seconds spent inside them (moto's, not DynamoDB's)."""
    inside = 0.0

    def clear(self):
        super().clear()
        self.inside = 0.0


def _recording():
    import botocore.client
    calls = Calls()
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        calls[operation_name] += 1
        start = time.perf_counter()
        try:
            return original(self, operation_name, api_params)
        finally:
            calls.inside += time.perf_counter() - start
    botocore.client.BaseClient._make_api_call = recording
    return calls


def _fill(account_id: str, device, count: int) -> None:
    from chalicelib.core import clock, ids
    from chalicelib.storage.tables import Message
    now, message_ids = clock.now_ms(), set()
    while len(message_ids) < count:  # as sends make them: time and random bits, all distinct
        message_ids.add(ids.new_message_id())
    with Message.batch_write() as batch:
        for n, message_id in enumerate(sorted(message_ids)):
            batch.save(Message(account_id=account_id, message_id=message_id,
                               device_uid=device.device_uid, device_id=device.device_id,
                               phone_number="+14155550100", body=f"Your order {n} has shipped "
                               "and will arrive tomorrow between 9 and 12.", sim_slot=1,
                               segments=1, encoding="GSM-7", status="delivered",
                               created_at=now, expires_at=now + 86400000,
                               delivered_at=now + 5000))


def measure(quick: bool = False) -> dict:
    _env.prepare()
    import moto
    sizes = (1000,) if quick else (1000, 10000)
    result = {}
    with moto.mock_aws():
        from chalicelib.core import clock, settings
        from chalicelib.domain import account_deletion, accounts, devices, export, purge
        from chalicelib.storage import tables
        tables.create_all()
        calls = _recording()
        for size in sizes:
            account = accounts.create_account(f"Bench {size}")
            device, _ = devices.register(account.account_id, "Phone", sim_count=1)
            _fill(account.account_id, device, size)
            calls.clear()
            out = io.BytesIO()
            start = time.perf_counter()
            export.write_zip(account.account_id, out)
            export_s = time.perf_counter() - start - calls.inside  # the gateway's own work
            export_calls = dict(calls)
            account_deletion.delete(account.account_id, account.name)
            clock.advance(settings.current().purge_after_seconds + 1)
            calls.clear()
            start = time.perf_counter()
            runs = 0
            while True:
                runs += 1
                if not purge.purge_deleted(budget_seconds=600)["accounts_left"]:
                    break
            purge_s = time.perf_counter() - start - calls.inside
            per = 1000 / size
            result[str(size)] = {
                "zip_bytes": out.tell(), "zip_bytes_per_1000": round(out.tell() * per),
                "export_s_per_1000": round(export_s * per, 3),
                "export_calls": export_calls,
                "export_calls_per_1000": round(sum(export_calls.values()) * per, 1),
                "purge_s_per_1000": round(purge_s * per, 3), "purge_runs": runs,
                "purge_calls": dict(calls),
                "purge_calls_per_1000": round(sum(calls.values()) * per, 1)}
    return result


def markdown(result: dict) -> str:
    return _env.markdown_table(
        ["messages", "zip bytes", "export CPU s / 1,000", "export AWS calls",
         "purge CPU s / 1,000", "purge AWS calls / 1,000"],
        ([size, f"{row['zip_bytes']:,}", row["export_s_per_1000"],
          f"{sum(row['export_calls'].values())} ({row['export_calls']})",
          row["purge_s_per_1000"],
          f"{row['purge_calls_per_1000']} ({sum(row['purge_calls'].values())}: "
          f"{row['purge_calls']})"]
         for size, row in result.items()))


if __name__ == "__main__":
    _env.run_command(measure, markdown, __doc__, "1,000 messages only.")
