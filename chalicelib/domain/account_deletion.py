"""An owner deletes their account: every credential stops working at once, the data goes within
minutes (domain/purge.py).

The deletion is one conditional write to the account item (`deleted_at`, and `deleted` that
enters the purge's sparse index). Every way in reads that item or a credential item this module
deletes right after, in the same request:
- API keys: deleted; a cache miss reads the account too (accounts.authenticate), which a
  deleted account fails.
- Dashboard sessions: deleted with the account's users, so a sign-in racing the deletion finds
  no user when it re-reads it (sessions.start) and drops its session.
- Device tokens: the account's devices are deleted, and their queues.
- App tokens (SMSGate app private tokens): a first registration fails on the account item's
  condition (devices.register), a later one finds its device deleted.
A warm container other than the one that served the deletion may still hold a verified key or
device for up to AUTH_CACHE_SECONDS (as after a key's revocation): whatever it writes for the
account meanwhile is written before the purge starts (PURGE_AFTER_SECONDS), and purged.
"""
from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, text
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.domain import accounts, devices, sessions
from chalicelib.storage import aws
from chalicelib.storage.dashboard_tables import User
from chalicelib.storage.tables import Account, ApiKey, Device, update_if

DELETED = "deleted"


def check_name(account: Account, typed: str | None) -> None:
    if text.one_line(typed or "").strip() != account.name:
        raise BadRequest(f"To delete the account, type its name exactly: {account.name}",
                         "name")


def delete(account_id: str, typed_name: str | None) -> Account:
    """Delete the account once its name is typed; returns it as it was."""
    account = accounts.get_account(account_id, consistent=True)
    check_name(account, typed_name)
    now = clock.now_ms()
    if not update_if(account, [Account.deleted.set(DELETED), Account.deleted_at.set(now)],
                     Account.account_id.exists() & Account.deleted_at.does_not_exist()):
        raise NotFound(f"Unknown account: {account_id}.", "account_id")
    uids = revoke_credentials(account_id)["uids"]
    if uids:  # the purge deletes what is keyed by them (purge.py)
        update_if(account, [Account.purge_uids.set(uids)], Account.deleted_at.exists())
    return account


def revoke_credentials(account_id: str) -> dict:
    """Delete the account's API keys, users (and their sessions) and devices (and their queues);
    forget this container's cached keys and devices. Counts what it deleted."""
    done = {"api_keys": 0, "users": 0, "sessions": 0, "devices": 0, "uids": []}
    for key in ApiKey.by_account.query(account_id):
        key.delete()
        done["api_keys"] += 1
    for user in User.by_account.query(account_id):
        user.delete(User.account_id == account_id)
        done["users"] += 1
        done["sessions"] += sessions.end_for_user(user.email)
    for entry in Device.by_account.query(account_id):
        delete_device(entry.device_uid, account_id)
        done["devices"] += 1
        done["uids"].append(entry.device_uid)
    accounts.forget_cached()
    devices.forget_cached()
    return done


def delete_device(device_uid: str, account_id: str) -> None:
    """A device of a deleted account and its queue (either may be gone already)."""
    try:
        device = Device.get(device_uid, consistent_read=True)
    except DoesNotExist:
        return
    if device.account_id != account_id:
        return
    try:
        aws.sqs().delete_queue(QueueUrl=device.queue_url)
    except Exception as error:  # noqa: BLE001
        if not aws.queue_missing(error):
            raise
    device.delete(Device.account_id == account_id)
