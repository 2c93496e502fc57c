"""Accounts, their API keys and IP whitelists, and authentication of API requests.

Keys are 64 hex characters from `secrets`, shown once; only their SHA-256 is stored (a
random 256-bit key needs no slow hash). A warm container remembers a verified key for
AUTH_CACHE_SECONDS, so revocation and whitelist changes take effect within that time.

A key's last use is kept to the hour: when a container first verifies a key (a cache miss) and
the stored time is older than LAST_USE_STEP, one conditional UpdateItem records it, so a busy key
costs at most about one write per hour, and an idle one none.
"""
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, ids, settings, text
from chalicelib.core.cache import TTLCache
from chalicelib.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Suspended,
    Unauthorized,
)
from chalicelib.storage.tables import Account, ApiKey, update_if

KEY_PATTERN = re.compile(r"^[0-9a-f]{64}\Z")
LAST_USE_STEP_MS = 3600 * 1000
log = logging.getLogger("smsgw")
_auth_cache = TTLCache(lambda: settings.current().auth_cache_seconds)
# The account items this container read, with when (ms): authenticate's reads, or
# cached_account's own. A send checks suspension, quotas and the opt-out list's version on them
# (outbox.submit, opt_outs.py), trusting one for AUTH_CACHE_SECONDS, so a warm send reads none.
_items = TTLCache(lambda: settings.current().auth_cache_seconds)  # id -> (Account, read_at)


@dataclass(frozen=True)
class Caller:
    account_id: str
    key_id: str
    # The account has had a webhook endpoint: its messages are stamped for the event stream
    # (Message.emits_events). Read with the key, so it follows an add within the key cache.
    events: bool = True


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_account(name: str) -> Account:
    account = new_account(name)
    account.save(Account.account_id.does_not_exist())
    return account


def new_account(name: str) -> Account:
    """An account named `name` (checked), not yet saved (sign-up saves it in a transaction)."""
    name = text.name(name, parameter="name", what="Account name")
    now = clock.now_ms()
    account = Account(account_id="acc_" + secrets.token_hex(6), name=name, created_at=now,
                      ip_whitelist=[], next_device_id=0, phone_count=0,
                      swept_to=ids.message_id_floor(now) - 1)  # first_look starts here
    return account


def get_account(account_id: str, consistent: bool = False) -> Account:
    """The account; a deleted one (being purged) is unknown to every caller but the purge."""
    try:
        account = Account.get(account_id, consistent_read=consistent)
    except DoesNotExist:
        account = None
    if account is None or account.deleted_at is not None:
        raise NotFound(f"Unknown account: {account_id}.", "account_id")
    return account


def cached_read(account_id: str) -> tuple[Account, int]:
    """(the account item, when it was read): as read at most AUTH_CACHE_SECONDS ago
    (authenticate's read), else one consistent GetItem."""
    hit = _items.get(account_id)
    if hit is not None:
        return hit
    try:
        hit = Account.get(account_id, consistent_read=True), clock.now_ms()
    except DoesNotExist:
        raise NotFound(f"Unknown account: {account_id}.", "account_id")
    _items.put(account_id, hit)
    return hit


def cached_account(account_id: str) -> Account:
    """The account item as read at most AUTH_CACHE_SECONDS ago (cached_read)."""
    return cached_read(account_id)[0]


def forget_account(account_id: str) -> None:
    """This container changed the account item: its next use reads it again."""
    _items.drop(account_id)


def refuse_suspended(account: Account) -> None:
    """Raise Suspended if the operator suspended the account (domain/operators.py)."""
    if account.suspended_at is not None:
        raise Suspended(f"Account '{account.name}' ({account.account_id}) is suspended by this "
                        "gateway's operator: its API keys, phones and dashboard are refused "
                        "until it is resumed. Nothing was deleted.", "account")


def list_accounts() -> list[Account]:
    """Admin listing for the CLI. The accounts table is the only one ever Scanned (here and by
    the sweeps' first look, first_look.py), never on a request path."""
    return sorted(Account.scan(), key=lambda a: a.created_at)


def create_key(account_id: str, label: str = "") -> tuple[str, ApiKey]:
    """Returns the plain key (show it once) and its stored record."""
    label = text.name(label, parameter="label", what="A key's label", required=False)
    get_account(account_id)
    plain = secrets.token_hex(32)
    record = ApiKey(key_hash=_hash_key(plain), key_id="key_" + secrets.token_hex(4),
                    account_id=account_id, label=label, created_at=clock.now_ms())
    record.save(ApiKey.key_hash.does_not_exist())
    return plain, record


def list_keys(account_id: str) -> list[ApiKey]:
    return list(ApiKey.by_account.query(account_id))


def get_key(account_id: str, key_id: str) -> ApiKey:
    for record in ApiKey.by_account.query(account_id, ApiKey.key_id == key_id):
        return record
    raise NotFound(f"Account {account_id} has no key {key_id}.", "key_id")


def revoke_key(account_id: str, key_id: str, at_ms: int | None = None) -> ApiKey:
    """Revoke a key now (or at `at_ms`, for a rotation's overlap). A key already revoked keeps
    its time, and a later revocation never postpones an earlier one."""
    now = clock.now_ms()
    when = now if at_ms is None else at_ms
    record = get_key(account_id, key_id)
    if not key_revoked(record, now) and (record.revoked_at or when + 1) > when:
        record.update(actions=[ApiKey.revoked_at.set(when)])
    _auth_cache.drop(record.key_hash)
    return record


def key_revoked(record: ApiKey, now_ms: int | None = None) -> bool:
    """True once the key's revocation time has come (a rotation sets one in the future)."""
    now = clock.now_ms() if now_ms is None else now_ms
    return record.revoked_at is not None and record.revoked_at <= now


def rotate_key(account_id: str, key_id: str, overlap_seconds: int) -> tuple[str, ApiKey, ApiKey]:
    """A new key with the old one's label; the old one keeps working for `overlap_seconds`,
    then is revoked (no job needed: authentication compares its revocation time with the
    clock). Returns (new plain key, new record, old record)."""
    old = get_key(account_id, key_id)
    if key_revoked(old):
        raise Conflict(f"Key {key_id} is already revoked: create a new key instead.", "key_id")
    label = text.one_line(old.label or "")[:100]  # one stored before labels were checked
    plain, new = create_key(account_id, label)
    old = revoke_key(account_id, key_id, clock.now_ms() + overlap_seconds * 1000)
    return plain, new, old


def _note_use(record: ApiKey) -> None:
    now = clock.now_ms()
    if record.last_used_at is not None and now - record.last_used_at < LAST_USE_STEP_MS:
        return
    try:
        update_if(record, [ApiKey.last_used_at.set(now)],
                  ApiKey.last_used_at.does_not_exist()
                  | (ApiKey.last_used_at < now - LAST_USE_STEP_MS))
    except Exception:  # bookkeeping only: never fail the request over it
        log.warning("could not record the last use of key %s", record.key_id, exc_info=True)


# Shortest prefixes (widest ranges) an entry may have without `allow_wide`: a /0 is a typo or a
# mistake that lets every address in, not a whitelist.
MIN_PREFIX = {4: 8, 6: 32}


def _network(entry: str, allow_wide: bool):
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        raise BadRequest(f"Not an IP address or CIDR range: '{entry[:60]}'.", "ip_whitelist")
    mapped = network.version == 6 and network.network_address.ipv4_mapped
    if mapped:  # ::ffff:a.b.c.d is how IPv6 sockets show IPv4 clients: store the IPv4 form
        # (a prefix under /96 masks the ffff away, so a mapped network is always /96 or more)
        network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    if network.prefixlen < MIN_PREFIX[network.version] and not allow_wide:
        raise BadRequest(f"'{entry}' allows {network.num_addresses:,} addresses (/"
                         f"{network.prefixlen}); the widest allowed without --allow-wide is /"
                         f"{MIN_PREFIX[network.version]} for IPv{network.version}.",
                         "ip_whitelist")
    return network


def parse_whitelist(entries, allow_wide: bool = False) -> list[str]:
    """Validate addresses and CIDR ranges (IPv4 and IPv6); returns them in canonical form, with
    IPv4-mapped IPv6 as IPv4. Ranges wider than MIN_PREFIX need `allow_wide`."""
    result = []
    for entry in entries:
        entry = entry.strip()
        if entry:
            result.append(str(_network(entry, allow_wide)))
    return result


def set_whitelist(account_id: str, entries, allow_wide: bool = False) -> list[str]:
    networks = parse_whitelist(entries, allow_wide)
    account = get_account(account_id)
    account.update(actions=[Account.ip_whitelist.set(networks)])
    _auth_cache.clear()
    return networks


def ip_allowed(source_ip: str | None, whitelist) -> bool:
    if not whitelist:
        return True
    try:
        address = ipaddress.ip_address(source_ip or "")
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net) for net in whitelist)


def authenticate(key: str | None, source_ip: str | None) -> Caller:
    """The account behind an API key, if the key is live and the caller's address allowed."""
    if not key:
        raise Unauthorized("Missing API key: pass api_key (or an Authorization: Bearer or "
                           "X-API-Key header).", "api_key")
    if not KEY_PATTERN.match(key):
        raise Unauthorized("Malformed API key: expected 64 hexadecimal characters.", "api_key")
    key_hash = _hash_key(key)
    cached, fresh = _auth_cache.get(key_hash), None
    if cached is None:
        try:
            record = ApiKey.get(key_hash)
        except DoesNotExist:
            raise Unauthorized("Invalid API key.", "api_key")
        if not hmac.compare_digest(record.key_hash, key_hash) or key_revoked(record):
            raise Unauthorized("Invalid API key.", "api_key")
        try:
            account = get_account(record.account_id)
        except NotFound:  # deleted: its keys are deleted too, this one is being
            raise Unauthorized("Invalid API key.", "api_key")
        _items.put(account.account_id, (account, clock.now_ms()))  # the send's, for the window
        whitelist = tuple(account.ip_whitelist or ())
        from chalicelib.domain import quotas
        # the account as read: suspended or not, and its requests quota, for AUTH_CACHE_SECONDS
        cached = (Caller(record.account_id, record.key_id, bool(account.webhook_adds)),
                  whitelist, record.revoked_at, account,
                  quotas.limit(account, quotas.REQUESTS_PER_MINUTE))
        _auth_cache.put(key_hash, cached)
        fresh = record
    caller, whitelist, revoked_at, account, per_minute = cached
    if revoked_at is not None and revoked_at <= clock.now_ms():  # a rotation's overlap ended
        _auth_cache.drop(key_hash)
        raise Unauthorized("Invalid API key.", "api_key")
    refuse_suspended(account)
    if not ip_allowed(source_ip, whitelist):
        raise Forbidden(f"IP address {source_ip} is not whitelisted for this account.", "ip")
    if per_minute:
        from chalicelib.domain import quotas
        quotas.take_request(caller.account_id, per_minute)
    if fresh is not None:
        _note_use(fresh)
    return caller


def forget_cached() -> None:
    _auth_cache.clear()
    _items.clear()
