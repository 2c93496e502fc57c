"""Phones running SMSGate's Android app (docs/android-app.md): how they join an account. Once
registered, an app phone is a device like any other (devices.py): same token, queue, pool,
pacing and sweeps; only its kind, app version and webhook signing key are its own.

The owner pairs an app with a private token (typed into the app's "private server" settings)
or with a dashboard pairing code (pairing.py, one-use). A private token is one per phone and
lasting for that phone: its first registration binds it to the device it creates, and the app,
which registers again by itself whenever its device token gets a 401 or its answer was lost
(GatewayService.registerDevice), gets the same device back with a fresh device token. Once the
owner removes that device the token stops working too, so a removed phone cannot come back by
itself (a token lasting for the whole account would re-create it at the app's next 401; a
one-use token would strand a phone whose registration answer was lost). Unused tokens expire
after UNUSED_DAYS; any token is revocable. Only the token's SHA-256 is stored.
"""
import hashlib
import secrets

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, text
from chalicelib.core.errors import Conflict, GatewayError, NotFound, Unauthorized
from chalicelib.domain import devices, pairing, throttle
from chalicelib.domain.accounts import get_account
from chalicelib.storage.dashboard_tables import PairingCode
from chalicelib.storage.model_base import update_if
from chalicelib.storage.tables import Device

KIND = "app"
UNUSED_DAYS = 7
BOUND_YEARS = 20  # a bound token lives as long as its device; the record's TTL is moot
REGISTER_PER_IP, REGISTER_WINDOW_SECONDS = 20, 15 * 60
CLAIM_SECONDS = 60  # a first registration that takes longer than this died
DAY_MS = 86400 * 1000
INVALID = ("Invalid private token: unknown, revoked, expired or mistyped. Make one with "
           "`smsgw device app-token ACCOUNT_ID` or on the dashboard's Pair a phone page.")


def _key(token: str) -> str:
    """The token's record key: never the token itself (pairing codes cannot look like it)."""
    return "app:" + hashlib.sha256(token.encode()).hexdigest()


def make_token(account_id: str, name: str = "", created_by: str = "cli") -> str:
    """A new private token for one phone of the account (shown once)."""
    name = text.name(name, parameter="name", what="Phone name", required=False)
    get_account(account_id)
    now = clock.now_ms()
    token = "sgw_" + secrets.token_urlsafe(18)
    expires_at = now + UNUSED_DAYS * DAY_MS
    PairingCode(code=_key(token), account_id=account_id, name=name,
                created_by=created_by, created_at=now, expires_at=expires_at,
                expires=clock.at(expires_at)).save(PairingCode.code.does_not_exist())
    return token


def revoke_token(account_id: str, token: str) -> None:
    """The token stops working at once; a phone already registered keeps its device token."""
    try:
        item = PairingCode.get(_key(token.strip()), consistent_read=True)
    except DoesNotExist:
        item = None
    if item is None or item.account_id != account_id:
        raise NotFound("No such private token in this account.", "token")
    item.delete()


def _token(token: str | None, source_ip: str | None) -> PairingCode:
    """The token's record. Only wrong tokens count toward their address's cap (an IPv6 /64 is
    one address), and one past it is answered 429; a valid token always registers, so phones
    behind one shared address (CGNAT, an office) are never locked out by someone's typos.
    Checking a token past the cap gives nothing away: it holds 144 random bits."""
    item = _valid_token(token)
    if item is None:
        throttle.take(f"app-token-ip#{throttle.address(source_ip)}", REGISTER_PER_IP,
                      REGISTER_WINDOW_SECONDS, "registrations with a wrong token")
        raise Unauthorized(INVALID, "authorization")
    return item


def _valid_token(token: str | None) -> PairingCode | None:
    if not token or len(token) > 200:
        return None
    try:
        item = PairingCode.get(_key(token), consistent_read=True)
    except DoesNotExist:
        return None
    if item.device_uid is None and item.expires_at <= clock.now_ms():
        return None
    return item


def sim_count(sim_cards: list | None) -> int | None:
    """Our 1 or 2 SIM slots from the app's list of active SIMs (None: unknown)."""
    if not sim_cards:
        return None
    return min(2, len(sim_cards))


def _mark(device: Device, version: str | None) -> Device:
    device.kind, device.app_version = KIND, version
    device.signing_key = device.signing_key or secrets.token_urlsafe(24)
    actions = [Device.kind.set(KIND), Device.signing_key.set(device.signing_key)]
    if version:
        actions.append(Device.app_version.set(version))
    devices.update_alive(device, actions)
    return device


def register_with_token(token: str | None, app_name: str, sims: int | None,
                        version: str | None, source_ip: str | None) -> tuple[Device, str]:
    """The token's phone: created at its first use, the same device (new device token) after."""
    item = _token(token, source_ip)
    if item.device_uid is None:
        first = _first_registration(item, app_name, sims, version)
        if first:
            return first
        item = PairingCode.get(item.code, consistent_read=True)
        if item.device_uid is None:
            raise Conflict("This private token is registering a phone right now; retry in a "
                           "few seconds.", "authorization", retry_after=5)
    try:
        device = Device.get(item.device_uid, consistent_read=True)
    except DoesNotExist:
        raise Unauthorized("The phone this private token paired was removed from the account: "
                           "make a new token to pair it again.", "authorization",
                           code="device_removed")
    device_token = devices.new_secret(device)
    if sims is not None:
        devices.update_alive(device, [Device.sim_count.set(sims)])
    return _mark(device, version), device_token


def _first_registration(item: PairingCode, app_name: str, sims: int | None,
                        version: str | None) -> tuple[Device, str] | None:
    """Create the token's phone, if this call wins the claim (one conditional write: of racing
    registrations exactly one wins; a claim left CLAIM_SECONDS by a registration that died
    may be taken over). The device is bound only while this call's claim still holds, so a
    slow winner overtaken by a takeover removes its device instead of leaving a second one."""
    now = clock.now_ms()
    free = PairingCode.device_uid.does_not_exist() & (
        PairingCode.used_at.does_not_exist() | (PairingCode.used_at < now - CLAIM_SECONDS * 1000))
    if not update_if(item, [PairingCode.used_at.set(now)], free):
        return None
    try:
        device, device_token = devices.register(item.account_id, item.name or app_name, sims)
    except GatewayError:  # refused (suspended, phones quota): the token may try again later
        update_if(item, [PairingCode.used_at.remove()], PairingCode.used_at == now)
        raise
    bound = now + BOUND_YEARS * 365 * DAY_MS
    if not update_if(item, [PairingCode.device_uid.set(device.device_uid),
                            PairingCode.expires_at.set(bound),
                            PairingCode.expires.set(clock.at(bound))],
                     (PairingCode.used_at == now) & PairingCode.device_uid.does_not_exist()):
        devices.remove(item.account_id, device.device_uid)
        return None
    return _mark(device, version), device_token


def register_with_code(code: str | None, sims: int | None, version: str | None,
                       source_ip: str | None) -> tuple[Device, str]:
    """Spend a dashboard pairing code (pairing.redeem: one-use, ten minutes) for an app."""
    device, device_token = pairing.redeem(code, sims, source_ip)
    return _mark(device, version), device_token


def update(device: Device, sims: int | None, version: str | None) -> None:
    """PATCH /device: the app's SIM count and version, and a sign of life (one write)."""
    actions = [Device.last_seen.set(clock.now_ms()), Device.app_state.set("running"),
               Device.live.set(devices.LIVE)]
    if sims is not None:
        actions.append(Device.sim_count.set(sims))
    if version:
        actions.append(Device.app_version.set(version))
    devices.update_alive(device, actions)
