"""smsgw-send: a bulk send from a CSV file (numbers in the first column; a header row is
skipped), in requests of 1,000 with a progress bar; prints each id and every failure.

    SMSGW_URL=http://127.0.0.1:8000 SMSGW_API_KEY=... smsgw-send --csv numbers.csv -m "Hi"

Each request carries an idempotency key made from the file's content and the chunk, so running
the same command again after an interruption sends nothing twice.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys

from smsgw_client import MAX_RECIPIENTS, ApiError, Client


def read_numbers(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row and row[0].strip()]
    if rows and not rows[0][0].strip().lstrip("+").replace(" ", "")[:1].isdigit():
        rows = rows[1:]  # a header row
    return [row[0].strip() for row in rows]


def progress(done: int, total: int, out=None) -> None:
    out = out or sys.stderr
    width = 30
    filled = width * done // max(total, 1)
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="smsgw-send", description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True, help="CSV file, phone numbers in column 1")
    parser.add_argument("-m", "--message", required=True, help="the SMS text")
    parser.add_argument("--device-id", type=int, help="send through this device")
    parser.add_argument("--send-at", help="RFC 3339 time to send at (at most 30 days ahead)")
    parser.add_argument("--url", default=os.environ.get("SMSGW_URL"), help="$SMSGW_URL")
    parser.add_argument("--api-key", default=os.environ.get("SMSGW_API_KEY"),
                        help="$SMSGW_API_KEY")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not args.url or not args.api_key:
        parser.error("give --url and --api-key (or SMSGW_URL and SMSGW_API_KEY)")
    numbers = read_numbers(args.csv)
    client = Client(args.url, args.api_key)
    batch = hashlib.sha256(json.dumps([numbers, args.message, args.device_id,
                                       args.send_at]).encode()).hexdigest()[:24]
    results, failures = [], 0
    progress(0, len(numbers))
    for start in range(0, len(numbers), MAX_RECIPIENTS):
        chunk = numbers[start:start + MAX_RECIPIENTS]
        try:
            answer = client.send(chunk, args.message, device_id=args.device_id,
                                 send_at=args.send_at,
                                 idempotency_key=f"csv-{batch}-{start // MAX_RECIPIENTS}")
        except ApiError as error:
            answer = [{"id": None, "phone_number": number, "status": "rejected",
                       "error": error.problem} for number in chunk]
        results += answer
        progress(len(results), len(numbers))
    sys.stderr.write("\n")
    for entry in results:
        if entry["status"] == "rejected":
            failures += 1
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for entry in results:
            error = entry.get("error") or {}
            print(f"{entry['phone_number']}\t{entry.get('id') or '-'}\t{entry['status']}"
                  + (f"\t{error.get('code')}: {error.get('detail')}" if error else ""))
        print(f"{len(results) - failures} accepted, {failures} failed", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
