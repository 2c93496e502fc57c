"""Adding a phone by pairing: the dashboard makes a short one-time code, valid for minutes; the
phone's agent sends it to POST /device/pair and gets back its device token. Nobody copies a
token by hand.

A code is 8 characters from an alphabet without look-alikes (32^8, about 10^12 codes), valid
CODE_MINUTES; guesses are throttled per client address. It is spent by one conditional write
(unused and unexpired -> used) before the device is registered, so two phones racing with one
code get one device between them.
"""
import re
import secrets
from urllib.parse import quote

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.core import clock, text
from chalicelib.core.errors import BadRequest, NotFound, Unauthorized
from chalicelib.domain import devices, throttle
from chalicelib.domain.accounts import get_account
from chalicelib.storage.dashboard_tables import PairingCode
from chalicelib.storage.model_base import update_if

ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
CODE_MINUTES = 10
PAIR_PER_IP, PAIR_WINDOW_SECONDS = 20, 15 * 60
CODE_PATTERN = re.compile(r"^[A-Z2-9]{8}$")


def normalise(code: str | None) -> str:
    code = re.sub(r"[\s-]", "", (code or "")).upper()
    if not CODE_PATTERN.match(code):
        raise BadRequest("Invalid pairing code: 8 letters and digits (e.g. ABCD-2345).", "code")
    return code


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def create(account_id: str, name: str, created_by: str) -> PairingCode:
    name = text.name(name, parameter="name", what="Phone name")
    get_account(account_id)
    now = clock.now_ms()
    expires_at = now + CODE_MINUTES * 60 * 1000
    for _ in range(5):
        code = "".join(secrets.choice(ALPHABET) for _ in range(8))
        item = PairingCode(code=code, account_id=account_id, name=name, created_by=created_by,
                           created_at=now, expires_at=expires_at, expires=clock.at(expires_at))
        try:
            item.save(PairingCode.code.does_not_exist())
            return item
        except PutError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
    raise BadRequest("Could not make a pairing code; try again.", None)


def status(account_id: str, code: str) -> PairingCode:
    """A code of this account (for the dashboard's waiting page)."""
    try:
        item = PairingCode.get(normalise(code), consistent_read=True)
    except DoesNotExist:
        item = None
    if item is None or item.account_id != account_id:
        raise NotFound("No such pairing code in this account.", "code")
    return item


def pair_url(base_url: str, code: str) -> str:
    """What the QR code holds: `smsgw-agent pair <this>` works with it alone."""
    return f"{base_url}/device/pair?code={quote(display(code))}"


def redeem(code: str | None, sim_count: int | None, source_ip: str | None):
    """Spend a code and register its phone: returns (device, token)."""
    throttle.take(f"pair-ip#{throttle.address(source_ip)}", PAIR_PER_IP, PAIR_WINDOW_SECONDS,
                  "pairing attempts")
    code = normalise(code)
    invalid = Unauthorized("Unknown, used or expired pairing code: make a new one in the "
                           "dashboard.", "code")
    try:
        item = PairingCode.get(code)
    except DoesNotExist:
        raise invalid
    now = clock.now_ms()
    if not update_if(item, [PairingCode.used_at.set(now)],
                     PairingCode.used_at.does_not_exist() & (PairingCode.expires_at > now)):
        raise invalid
    device, token = devices.register(item.account_id, item.name, sim_count)
    item.update(actions=[PairingCode.device_uid.set(device.device_uid)])
    return device, token
