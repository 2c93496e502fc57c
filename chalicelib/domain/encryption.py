"""End-to-end encrypted messages (SMSGate's format): what the gateway checks, and what it may
know, about a text or phone number it can never read.

The client encrypts the text and every phone number; only the phone holds the passphrase:
`$aes-256-cbc/pbkdf2-sha1$i=<iterations>$<salt, base64>$<ciphertext, base64>`, the key
PBKDF2-HMAC-SHA1(passphrase, salt, iterations, 32 bytes) and the salt (16 bytes) the CBC IV.
The gateway only checks the form, and bounds the SMS segments from the ciphertext's length so
pacing never counts fewer parts than the phone will send. It never decrypts, so nothing here
imports a cipher. OTPs cannot be end-to-end: the gateway makes the code.
"""
import base64
import binascii
import math
import re

from chalicelib.core import settings
from chalicelib.core.errors import BadRequest

ALGORITHM = "aes-256-cbc/pbkdf2-sha1"
MAX_ITERATIONS = 10_000_000  # a phone must still derive the key
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
BLOCK = 16
UCS2_SINGLE = 70
UCS2_PART = 66  # 67 units a part, less one a pair may leave unused (never split)


def _b64(text: str, what: str, parameter: str) -> bytes:
    if not _B64.fullmatch(text):
        raise BadRequest(f"Invalid {parameter}: the {what} is not base64.", parameter)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"Invalid {parameter}: the {what} is not base64.", parameter)


def check(value, parameter: str) -> int:
    """Check one encrypted field's form; returns the ciphertext's length in bytes. Raises
    BadRequest saying what is wrong (never echoing the value)."""
    if not isinstance(value, str):
        raise BadRequest(f"Invalid {parameter}: an encrypted value is a string.", parameter)
    chunks = value.split("$")
    if len(chunks) != 5 or chunks[0] != "":
        raise BadRequest(f"Invalid {parameter}: isEncrypted needs the form "
                         f"${ALGORITHM}$i=<iterations>$<salt b64>$<ciphertext b64>.", parameter)
    if chunks[1] != ALGORITHM:
        raise BadRequest(f"Invalid {parameter}: unsupported algorithm (only {ALGORITHM}).",
                         parameter)
    params = dict(p.partition("=")[::2] for p in chunks[2].split(","))
    iterations = params.get("i", "")
    if not iterations.isascii() or not iterations.isdigit() or not (
            1 <= int(iterations) <= MAX_ITERATIONS):
        raise BadRequest(f"Invalid {parameter}: the iteration count i= must be 1-"
                         f"{MAX_ITERATIONS}.", parameter)
    if len(_b64(chunks[3], "salt", parameter)) != BLOCK:
        raise BadRequest(f"Invalid {parameter}: the salt (the IV) must be {BLOCK} bytes.",
                         parameter)
    cipher = _b64(chunks[4], "ciphertext", parameter)
    if not cipher or len(cipher) % BLOCK:
        raise BadRequest(f"Invalid {parameter}: the ciphertext is not whole AES blocks.",
                         parameter)
    return len(cipher)


def segments_bound(cipher_bytes: int) -> int:
    """The most SMS parts a text of this ciphertext length can need. PKCS#7 pads at least one
    byte, so the UTF-8 text has at most `cipher_bytes - 1` bytes; each UCS-2 unit takes at least
    one UTF-8 byte (an emoji's two units take four), and GSM-7, at two septets per byte at
    worst, packs more per part than UCS-2, so UCS-2 at one unit per byte is the worst case
    (segments.count never splits a surrogate pair, so a part may hold one unit less)."""
    units = cipher_bytes - 1
    return 1 if units <= UCS2_SINGLE else math.ceil(units / UCS2_PART)


def check_text(value, parameter: str = "message") -> int:
    """An encrypted SMS text: its form, and its segment bound within the gateway's limit."""
    bound = segments_bound(check(value, parameter))
    if bound > settings.current().max_segments:
        raise BadRequest(f"Message too long: the ciphertext may need {bound} SMS segments; at "
                         f"most {settings.current().max_segments} are allowed.", parameter)
    return bound


def refuse_otp() -> None:
    raise BadRequest("OTPs cannot be end-to-end encrypted: the gateway makes the code, so it "
                     "knows it. Send OTPs without isEncrypted.", "isEncrypted")
