"""Verify an smsgw webhook request (standard library only; copy this file into your app).

    from smsgw_webhook import verify
    ok = verify(raw_body, request.headers.get("X-Smsgw-Signature"),
                request.headers.get("X-Smsgw-Timestamp"), [secret])

`raw_body` must be the exact bytes received (before any JSON parsing). The signature is
`v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`; during a secret rotation the gateway
sends two, comma-separated, and either may match. Requests older (or newer) than `tolerance`
seconds are refused, so a captured request cannot be replayed later. After verifying, dedupe by
the payload's `id` (a redelivery carries the same id) and order one message's events by
`sequence` (a string: compare as strings).
"""
import hashlib
import hmac
import time

DEFAULT_TOLERANCE = 300


def sign(secret: str, timestamp, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(body: bytes, signature_header: str | None, timestamp_header: str | None,
           secrets, tolerance: int = DEFAULT_TOLERANCE, now: float | None = None) -> bool:
    """True when a `v1` signature matches one of `secrets` and the timestamp is recent."""
    if isinstance(secrets, str):
        secrets = [secrets]
    if not signature_header or not timestamp_header or not timestamp_header.strip().isdigit():
        return False
    timestamp = int(timestamp_header.strip())
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    if isinstance(body, str):
        body = body.encode()
    given = [part.strip() for part in signature_header.split(",")]
    return any(hmac.compare_digest(sign(secret, timestamp, body), candidate)
               for secret in secrets for candidate in given if candidate.startswith("v1="))
