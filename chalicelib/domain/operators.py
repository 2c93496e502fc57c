"""The gateway's operators: people who see every account, suspend and resume one, and set its
quotas (domain/quotas.py), at /dashboard/operator/ or with `smsgw operator ...`. Every such
action is written to the operators' audit log.

An operator is a dashboard user with the stage-wide `operator` flag, granted by the CLI only
(`smsgw operator add EMAIL`). An operator need not belong to an account: one who did not
already have a user gets one in no account (NO_ACCOUNT), who signs in to the console only.
The flag is read (consistently) on every console request, so a removal takes effect at once.

Suspension: `Account.suspended_at`. Nothing is deleted. Refused with "suspended": API keys
(accounts.authenticate), phones (devices.authenticate), sends (outbox.submit), registration,
and the account's dashboard. The API paths see it within AUTH_CACHE_SECONDS (they keep the
account item they read with a key or device that long, as they keep a revoked key), the
dashboard and registration at once; docs/operator.md argues the choice.
"""
import base64
import json

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib.core import clock, ids
from chalicelib.core.errors import BadRequest, Conflict, NotFound
from chalicelib.domain import accounts, quotas, users
from chalicelib.storage.dashboard_tables import OperatorAction, User
from chalicelib.storage.model_base import update_if
from chalicelib.storage.tables import Account, ApiKey, Message

NO_ACCOUNT = "-"  # an operator's user that belongs to no account (a GSI key cannot be empty)
LOG = "operator"
CLI = "cli"  # the operator named in the log for actions made with the CLI
PAGE = 25


# --- the role ---------------------------------------------------------------------------------

def grant(email: str) -> tuple[User, str | None]:
    """Make `email` an operator. Returns the user and a set-password link token when the user
    is new or has no password yet (None: they sign in with their password)."""
    email = users.normalise_email(email)
    try:
        user = User.get(email, consistent_read=True)
    except DoesNotExist:
        user = User(email=email, account_id=NO_ACCOUNT, created_at=clock.now_ms(), operator=True)
        try:
            user.save(User.email.does_not_exist())
        except PutError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
            raise Conflict(f"A user {email} was added at the same moment; try again.", "email")
    else:
        user.update(actions=[User.operator.set(True)])
    record(CLI, "grant operator", None, email)
    return user, (users.new_link(user) if user.password_hash is None else None)


def revoke(email: str) -> None:
    """Take the role back (an operator in no account is removed, and signed out)."""
    user = users.get(email)
    if not user.operator:
        raise NotFound(f"{user.email} is not an operator.", "email")
    if user.account_id == NO_ACCOUNT:
        user.delete()
        users.sessions.end_for_user(user.email)
    else:
        user.update(actions=[User.operator.remove()])
    record(CLI, "revoke operator", None, user.email)


def is_operator(email: str) -> bool:
    try:
        return bool(User.get(email, consistent_read=True).operator)
    except DoesNotExist:
        return False


# --- accounts ---------------------------------------------------------------------------------

def _cursor_out(key: dict | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def _cursor_in(cursor: str | None) -> dict | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        account_id = key["account_id"]["S"]
        assert isinstance(account_id, str) and len(key) == 1
    except Exception:
        raise BadRequest("Invalid page cursor.", "cursor")
    return key


def page(cursor: str | None = None, size: int = PAGE) -> tuple[list[dict], str | None]:
    """One page of every account (a Scan page of the accounts table, the only table ever
    scanned), each as the console shows it; and the next page's cursor (None: the last)."""
    results = Account.scan(limit=size, page_size=size, last_evaluated_key=_cursor_in(cursor))
    found = list(results)
    rows = [overview(a) for a in sorted(found, key=lambda a: a.created_at)]
    return rows, _cursor_out(results.last_evaluated_key) if len(found) == size else None


def overview(account: Account) -> dict:
    """Name, owner, created, phones, messages in the last 30 days (the insight counters), last
    activity (newest message, key use or phone contact), suspension, deletion and quotas."""
    from chalicelib.domain import devices
    from chalicelib.domain.insight import stats
    counted = stats.read(account.account_id)["totals"]
    phones = devices.list_devices(account.account_id)
    owners = sorted(users.list_users(account.account_id), key=lambda u: u.created_at)
    newest = next(iter(Message.query(account.account_id, scan_index_forward=False, limit=1)),
                  None)
    times = [newest.created_at if newest else None,
             *(k.last_used_at for k in ApiKey.by_account.query(account.account_id)),
             *(d.last_seen for d in phones)]
    last = max((t for t in times if t), default=None)
    return {"account_id": account.account_id, "name": account.name,
            "owner": owners[0].email if owners else None, "created": clock.fmt(account.created_at),
            "phones": len(phones),
            "messages_30d": sum(counted[k] for k in ("sent", "failed", "expired", "cancelled")),
            "received_30d": counted["received"], "last_activity": clock.fmt(last),
            "suspended": clock.fmt(account.suspended_at), "quotas": quotas.describe(account),
            # deleted by its owner, waiting for its purge: shown, never acted on
            "deleted": clock.fmt(getattr(account, "deleted_at", None))}


def _forget_cached() -> None:
    """This container's caches of the account item (other containers: AUTH_CACHE_SECONDS)."""
    from chalicelib.domain import devices, opt_outs
    accounts.forget_cached()
    devices.forget_cached()
    opt_outs.forget_cached()
    quotas.forget_cached()


def suspend(operator: str, account_id: str) -> bool:
    """Suspend the account (False: it already was). Nothing is deleted."""
    accounts.get_account(account_id)
    changed = update_if(Account(account_id=account_id),
                        [Account.suspended_at.set(clock.now_ms())],
                        Account.account_id.exists() & Account.suspended_at.does_not_exist())
    _forget_cached()
    if changed:
        record(operator, "suspend", account_id)
    return changed


def resume(operator: str, account_id: str) -> bool:
    accounts.get_account(account_id)
    changed = update_if(Account(account_id=account_id), [Account.suspended_at.remove()],
                        Account.suspended_at.exists())
    _forget_cached()
    if changed:
        record(operator, "resume", account_id)
    return changed


def set_quota(operator: str, account_id: str, name: str, value) -> dict:
    """Set one of the account's quotas (a number, 0 = no limit; "default": the stage's)."""
    quota, number = quotas.parse(name, value)
    accounts.get_account(account_id)
    attribute = getattr(Account, quota.attribute)
    action = attribute.remove() if number is None else attribute.set(number)
    Account(account_id=account_id).update(actions=[action],
                                          condition=Account.account_id.exists())
    if quota is quotas.MESSAGES_PER_DAY and number:
        quotas.start_counting(account_id)
    _forget_cached()
    record(operator, "set quota", account_id,
           f"{quota.name} = {'default' if number is None else number}")
    return next(q for q in quotas.describe(accounts.get_account(account_id, consistent=True))
                if q["name"] == quota.name)


# --- the audit log ----------------------------------------------------------------------------

def record(operator: str, action: str, account_id: str | None, detail: str | None = None):
    now = clock.now_ms()
    for _ in range(5):
        entry = OperatorAction(log=LOG, entry_id=ids.new_message_id(), at=now,
                               operator=operator, action=action, account_id=account_id,
                               detail=detail)
        try:
            entry.save(OperatorAction.entry_id.does_not_exist())
            return entry
        except PutError as error:  # a same-millisecond id: draw another
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
    raise Conflict("Could not record the operator's action; retry.")


def log(limit: int = 50, account_id: str | None = None) -> list[dict]:
    """The newest entries first (of one account, if given)."""
    condition = OperatorAction.account_id == account_id if account_id else None
    entries = OperatorAction.query(LOG, scan_index_forward=False, limit=limit,
                                   filter_condition=condition, consistent_read=True)
    return [{"at": clock.fmt(e.at), "operator": e.operator, "action": e.action,
             "account_id": e.account_id, "detail": e.detail} for e in entries]
