"""One-time passcodes: issue a code by SMS, verify it once.

There is one live code per (account, phone number), stored only as an HMAC-SHA256 under a server
secret (a 6-digit code's plain hash falls to brute force). Every state change is a single
conditional UpdateItem on that one item, so DynamoDB settles races:

- send: replace the code AND enforce cooldown and hourly cap in one write (the send times live
  in a shift register of OTP_HOURLY_CAP slots on the item); then queue the SMS. If the SMS
  cannot be accepted, the item is put back as it was, so a failed send costs no cooldown.
- verify: one write per guess, right or wrong, counts it before it is compared (see `verify`
  for why at most OTP_MAX_TRIES guesses per code are ever compared, for any interleaving).

The code itself goes only into the device's SQS job; the stored message, history, check_status
and logs see it redacted.
"""
import hashlib
import hmac
import logging
import math
import secrets
import threading
from dataclasses import dataclass

from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, InvalidOtp, RateLimited, Unavailable
from chalicelib.domain import devices, messages, outbox, segments
from chalicelib.storage import aws
from chalicelib.storage.tables import OTP_SEND_SLOTS, Device, Message, Otp

log = logging.getLogger("smsgw")

PLACEHOLDER = "{otp}"
REDACTED = "******"
DEFAULT_TEMPLATE = "Your verification code is {otp}. It expires in {minutes} minutes."
LENGTHS = (4, 10)
EXPIRY_MINUTES = (1, 30)
HOUR_MS = 3600 * 1000
MIN_SECRET_CHARS = 32

_secret_lock = threading.Lock()
_secret_from_ssm = None


@dataclass
class Sent:
    message: Message
    phone_number: str
    expires_at: int  # epoch ms

    def expires_in(self) -> int:
        return max(0, math.ceil((self.expires_at - clock.now_ms()) / 1000))


def _secret() -> bytes:
    """SMSGW_OTP_SECRET if set (local runs, tests); else the SecureString named by
    SMSGW_OTP_SECRET_PARAM, fetched once per container on first use."""
    global _secret_from_ssm
    value = settings.current().otp_secret
    if not value and settings.current().otp_secret_param:
        with _secret_lock:
            if _secret_from_ssm is None:
                _secret_from_ssm = aws.ssm().get_parameter(
                    Name=settings.current().otp_secret_param,
                    WithDecryption=True)["Parameter"]["Value"]
        value = _secret_from_ssm
    if not value or len(value) < MIN_SECRET_CHARS:
        log.error("OTP secret missing or shorter than %d characters: set SMSGW_OTP_SECRET or "
                  "SMSGW_OTP_SECRET_PARAM", MIN_SECRET_CHARS)
        raise Unavailable("OTP is not configured on this gateway.", retry_after=60,
                          code="not_configured")
    return value.encode()


def forget_secret() -> None:
    """Drop the cached SSM secret (tests; a rotated parameter otherwise needs a new container)."""
    global _secret_from_ssm
    _secret_from_ssm = None


def _key(account_id: str, phone_number: str) -> str:
    return f"{account_id}#{phone_number}"


def _hmac(key: str, code: str) -> str:
    # Bound to the item key: the same code for another number or account has another HMAC.
    return hmac.new(_secret(), f"{key}\n{code}".encode(), hashlib.sha256).hexdigest()


def new_code(length: int) -> str:
    """Uniform random digits from the OS CSPRNG; leading zeros allowed."""
    return "".join(secrets.choice("0123456789") for _ in range(length))


def render_template(template: str | None, expiry_minutes: int) -> str:
    """The SMS template: the caller's (must contain {otp}) or the default."""
    if template is None or not template.strip():
        return DEFAULT_TEMPLATE.replace("{minutes}", str(expiry_minutes))
    if PLACEHOLDER not in template:
        raise BadRequest("Invalid message: the OTP template must contain the {otp} placeholder.",
                         "message")
    return template


def check_code(raw: str | None) -> str:
    code = (raw or "").strip()
    if not code:
        raise BadRequest("Missing required parameter: otp_code.", "otp_code")
    low, high = LENGTHS
    if not (code.isascii() and code.isdigit() and low <= len(code) <= high):
        raise BadRequest(f"Invalid otp_code: expected {low}-{high} digits.", "otp_code")
    return code


def _send_wait_ms(item: Otp | None, now: int) -> tuple[int, str | None]:
    """How long until a send to this item's number is allowed, and which limit holds it back."""
    if item is None:
        return 0, None
    times = [getattr(item, name) or 0 for name in OTP_SEND_SLOTS]
    cooldown = times[-1] + settings.current().otp_cooldown_seconds * 1000 - now
    hourly = times[0] + HOUR_MS - now
    if hourly > 0 and hourly >= cooldown:
        return hourly, "hourly"
    if cooldown > 0:
        return cooldown, "cooldown"
    return 0, None


def _seconds(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


def _claim(key: str, code_hmac: str, now: int, expiry_minutes: int) -> Otp | None:
    """The one conditional write of a send: checks cooldown and hourly cap, shifts the send
    times, replaces the code. Returns the item as it was before (None if there was none)."""
    slots = [getattr(Otp, name) for name in OTP_SEND_SLOTS]
    expires_at = now + expiry_minutes * 60 * 1000
    # Ascending order: slot i takes slot i+1's old value (DynamoDB evaluates every operand on the
    # item as it was before the update; the order keeps moto's sequential evaluation equal).
    actions = [slots[i].set(slots[i + 1] | 0) for i in range(len(slots) - 1)]
    actions += [
        slots[-1].set(now),
        Otp.code_hmac.set(code_hmac), Otp.created_at.set(now), Otp.expires_at.set(expires_at),
        Otp.tries.set(0), Otp.guesses.remove(),
        Otp.expires.set(clock.at(max(expires_at, now + HOUR_MS))),
    ]
    condition = ((slots[0].does_not_exist() | (slots[0] <= now - HOUR_MS))
                 & (slots[-1].does_not_exist()
                    | (slots[-1] <= now - settings.current().otp_cooldown_seconds * 1000)))
    try:
        data = Otp._get_connection().update_item(
            key, actions=actions, condition=condition, return_values=ALL_OLD)
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        _raise_send_limited(key, now)
    old = data.get("Attributes")
    return Otp.from_raw_data(old) if old else None


def _raise_send_limited(key: str, now: int):
    try:
        item = Otp.get(key, consistent_read=True)
    except DoesNotExist:
        item = None
    wait, which = _send_wait_ms(item, now)
    if which == "hourly":
        raise RateLimited(f"Too many OTPs for this phone number: at most "
                          f"{settings.current().otp_hourly_cap} per hour.", "phone_number",
                          retry_after=_seconds(wait))
    if which == "cooldown":
        raise RateLimited(f"An OTP was just sent to this phone number: wait "
                          f"{settings.current().otp_cooldown_seconds} seconds between sends.",
                          "phone_number", retry_after=_seconds(wait))
    raise RateLimited("Another OTP for this phone number is being sent; retry shortly.",
                      "phone_number", retry_after=1)


def _restore(key: str, code_hmac: str, old: Otp | None) -> None:
    """Undo a claim whose SMS was not accepted, unless a newer send has replaced it since."""
    ours = Otp.code_hmac == code_hmac
    try:
        if old is None:
            Otp(key=key).delete(condition=ours)
        else:
            old.save(condition=ours)
    except (PutError, DeleteError) as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            log.error("could not restore OTP state after a failed send (%s)",
                      error.cause_response_code)


def _fail_unqueued(message: Message) -> None:
    """A redacted OTP message must never be queued later by the outbox sweep: end it now."""
    try:
        messages.close(message, "failed", "otp_not_queued", failed_at=clock.now_ms())
    except UpdateError as error:
        log.error("could not mark unqueued OTP message failed (%s)", error.cause_response_code)


def send(account_id: str, device: Device | None, phone_number: str,
         template: str | None = None, length: int = 6, expiry_minutes: int = 5,
         events: bool = True) -> Sent:
    """Issue a new code for `phone_number` (E.164), replacing any live one, and queue its SMS
    (`device` None: the pool's choice, SIM 1)."""
    if not LENGTHS[0] <= length <= LENGTHS[1]:
        raise BadRequest(f"Invalid length: must be {LENGTHS[0]}-{LENGTHS[1]}.", "length")
    if not EXPIRY_MINUTES[0] <= expiry_minutes <= EXPIRY_MINUTES[1]:
        raise BadRequest(f"Invalid expiry: must be {EXPIRY_MINUTES[0]}-{EXPIRY_MINUTES[1]} "
                         "minutes.", "expiry")
    template = render_template(template, expiry_minutes)
    code = new_code(length)
    text = template.replace(PLACEHOLDER, code)
    segments.check(text)
    if device is not None:
        devices.check_sim_slot(device, 1)
    key = _key(account_id, phone_number)
    code_hmac = _hmac(key, code)
    now = clock.now_ms()
    old = _claim(key, code_hmac, now, expiry_minutes)
    try:
        accepted = outbox.submit(account_id, outbox.SendRequest(
            phone_number=phone_number, text=text, device=device, sim_slot=1, kind="otp",
            stored_text=template.replace(PLACEHOLDER, REDACTED),
            valid_for_seconds=expiry_minutes * 60, events=events))
    except Exception:
        _restore(key, code_hmac, old)
        raise
    if not accepted.queued:
        _fail_unqueued(accepted.message)
        _restore(key, code_hmac, old)
        raise Unavailable("The OTP could not be queued to the device; nothing was sent and no "
                          "cooldown applies. Retry shortly.", retry_after=5)
    return Sent(accepted.message, phone_number, now + expiry_minutes * 60 * 1000)


def _matches(stored_hmac: str, guess_hmac: str) -> bool:
    """The one place a guess is compared with the stored code (constant time)."""
    return hmac.compare_digest(stored_hmac, guess_hmac)


def _used(item: Otp) -> bool:
    return bool(item.code_hmac) and item.code_hmac in (item.guesses or ())


def verify(account_id: str, phone_number: str, code: str) -> None:
    """Returns if `code` is the live code for this number in this account, and uses it up;
    raises InvalidOtp (wrong, expired, used, unknown) or RateLimited (too many wrong tries).

    Every guess, right or wrong, costs one conditional UpdateItem that COUNTS it before anything
    compares it:

        condition  code_hmac exists AND expires_at > now AND tries < OTP_MAX_TRIES
                   AND NOT contains(guesses, hmac(guess))
        update     ADD tries 1, guesses {hmac(guess)}      returning the item as it was

    Only a guess whose write succeeded is compared, in Python, with the code HMAC that write
    returned. Why at most OTP_MAX_TRIES guesses are compared per code, for every interleaving:
    DynamoDB applies conditional writes to one item one at a time, each seeing all earlier
    ones. A send resets `tries` to 0 with the new code; after that each successful guess write
    raises `tries` by exactly 1 and needs `tries < max` before it, so at most `max` guess writes
    succeed for that code, whatever the number of concurrent requests or how their calls
    interleave; a failed write compares nothing. A comparison and its count are one write, so
    no guess can be compared "before it is counted". The returned code HMAC is the one the
    counted write saw, so a concurrent send cannot make a guess count against one code and be
    compared with another.

    Single use: the right guess adds the code's own HMAC to `guesses`, so a second identical
    right guess fails `NOT contains(guesses, :g)`, and a different guess afterwards sees the
    code's HMAC in `guesses` (used) and is refused without comparing. A repeated wrong guess
    also fails the condition: retyping the same wrong code burns no try (it tells nothing new).
    """
    code = check_code(code)
    key = _key(account_id, phone_number)
    guess = _hmac(key, code)
    now = clock.now_ms()
    condition = (Otp.code_hmac.exists() & (Otp.expires_at > now)
                 & (Otp.tries < settings.current().otp_max_tries) & ~Otp.guesses.contains(guess))
    try:
        data = Otp._get_connection().update_item(
            key, actions=[Otp.tries.add(1), Otp.guesses.add({guess})], condition=condition,
            return_values=ALL_OLD)
    except UpdateError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        _raise_refused(key, now)
    before = Otp.from_raw_data(data["Attributes"])
    if _used(before) or not _matches(before.code_hmac, guess):
        raise InvalidOtp()


def _raise_refused(key: str, now: int):
    """The guess was not counted, so nothing compared it: say why without looking at the code."""
    try:
        item = Otp.get(key, consistent_read=True)
    except DoesNotExist:
        raise InvalidOtp()
    blocked = (item.code_hmac and not _used(item) and (item.expires_at or 0) > now
               and item.tries >= settings.current().otp_max_tries)
    if blocked:
        wait, _ = _send_wait_ms(item, now)
        raise RateLimited(f"Too many wrong attempts: this OTP is blocked after "
                          f"{settings.current().otp_max_tries} wrong codes. Request a new one with "
                          "send_otp.", "otp_code", retry_after=_seconds(wait))
    raise InvalidOtp()
