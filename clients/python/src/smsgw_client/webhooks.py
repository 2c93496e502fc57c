"""Verify an smsgw webhook request (standard library only).

Part of the `smsgw_client` package (`from smsgw_client.webhooks import verify`); the file has
no other dependency, so it can also be copied into an app on its own (it is
`clients/smsgw_webhook.py` in the repository, `from smsgw_webhook import verify`).

    ok = verify(raw_body, request.headers.get("X-Smsgw-Signature"),
                request.headers.get("X-Smsgw-Timestamp"), [secret])
    event = verified_event(raw_body, request.headers, [secret])  # or InvalidSignature

`raw_body` must be the exact bytes received (before any JSON parsing). The signature is
`v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`; during a secret rotation the gateway
sends two, comma-separated, and either may match. Requests older (or newer) than `tolerance`
seconds are refused, so a captured request cannot be replayed later. After verifying, dedupe by
the payload's `id` (a redelivery carries the same id) and order one message's events by
`sequence` (a string: compare as strings).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_TOLERANCE = 300
SIGNATURE_HEADER = "X-Smsgw-Signature"
TIMESTAMP_HEADER = "X-Smsgw-Timestamp"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class InvalidSignature(Exception):
    """The request is not from the gateway (no valid signature, or too old or new)."""


def sign(secret: str, timestamp, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(body: bytes | str, signature_header: str | None, timestamp_header: str | None,
           secrets: Iterable[str] | str, tolerance: int = DEFAULT_TOLERANCE,
           now: float | None = None) -> bool:
    """True when a `v1` signature matches one of `secrets` and the timestamp is recent."""
    if isinstance(secrets, str):
        secrets = [secrets]
    if not signature_header or not timestamp_header or \
            not _TIMESTAMP.fullmatch(timestamp_header.strip()):
        return False
    timestamp = int(timestamp_header.strip())
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    if isinstance(body, str):
        body = body.encode()
    # bytes, so that a header with non-ASCII text is a mismatch, not a TypeError
    given = [part.strip().encode("utf-8", "replace") for part in signature_header.split(",")]
    return any(hmac.compare_digest(sign(secret, timestamp, body).encode(), candidate)
               for secret in secrets for candidate in given if candidate.startswith(b"v1="))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    found = headers.get(name)
    if found is None:
        found = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return found


def verified_event(body: bytes | str, headers: Mapping[str, str], secrets: Iterable[str] | str,
                   tolerance: int = DEFAULT_TOLERANCE, now: float | None = None) -> dict[str, Any]:
    """The event of a verified request (headers looked up case-insensitively), or raise
    InvalidSignature."""
    if not verify(body, _header(headers, SIGNATURE_HEADER), _header(headers, TIMESTAMP_HEADER),
                  secrets, tolerance, now):
        raise InvalidSignature("no valid X-Smsgw-Signature for a recent X-Smsgw-Timestamp")
    return json.loads(body)
