"""Storage of the owner's dashboard: its users, their set-password links and sessions, the
sign-in throttle counters, and the pairing codes that add a phone. Every item that only time
must remove carries a TTL attribute; reads check expiry themselves (TTL deletion is lazy)."""
from pynamodb.attributes import BooleanAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.storage.model_base import index_meta, table_meta


class UsersByAccount(GlobalSecondaryIndex):
    Meta = index_meta("by-account")
    account_id = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute(range_key=True)


class User(Model):
    """A person who signs in to one account's dashboard. `password_hash` is argon2id; absent
    until the user follows their set-password link."""
    Meta = table_meta("users")
    email = UnicodeAttribute(hash_key=True)  # lower-cased
    account_id = UnicodeAttribute()
    created_at = NumberAttribute()
    password_hash = UnicodeAttribute(null=True)
    password_set_at = NumberAttribute(null=True)
    role = UnicodeAttribute(null=True)  # domain/roles.py: absent means owner
    # May use the operator's console (domain/operators.py): a stage-wide role, not a member's.
    operator = BooleanAttribute(null=True)
    by_account = UsersByAccount()


class InvitationsByAccount(GlobalSecondaryIndex):
    """An account's invitations (domain/members.py); sparse: only they have `invited_to`."""
    Meta = index_meta("invitations")
    invited_to = UnicodeAttribute(hash_key=True)
    created_at = NumberAttribute(range_key=True)


class PasswordLink(Model):
    """A one-time link mailed or printed to a person; only the SHA-256 of its token is stored.
    `purpose`: absent for the operator's set-password link, `reset` for a forgotten password
    (domain/password_reset.py), `signup` for a sign-up's verification (domain/signup.py), which
    also holds the account to create (`account_id`, `account_name`) and the chosen
    `password_hash` until the email is verified, `invite` for an owner's invitation into
    `account_id` (and `invited_to`, the same, for the index) with `role`, made `by`."""
    Meta = table_meta("password-links")
    token_hash = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute()
    account_id = UnicodeAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    used_at = NumberAttribute(null=True)
    expires = TTLAttribute()
    purpose = UnicodeAttribute(null=True)
    account_name = UnicodeAttribute(null=True)
    password_hash = UnicodeAttribute(null=True)
    invited_to = UnicodeAttribute(null=True)
    role = UnicodeAttribute(null=True)
    by = UnicodeAttribute(null=True)
    invitations = InvitationsByAccount()


class SessionsByUser(GlobalSecondaryIndex):
    """Sign out everywhere: every session of one user."""
    Meta = index_meta("by-user", keys_only=True)
    email = UnicodeAttribute(hash_key=True)
    created_at = NumberAttribute(range_key=True)


class Session(Model):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is the key."""
    Meta = table_meta("sessions")
    session_hash = UnicodeAttribute(hash_key=True)
    email = UnicodeAttribute()
    account_id = UnicodeAttribute()
    csrf_token = UnicodeAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    expires = TTLAttribute()
    role = UnicodeAttribute(null=True)  # the user's when it started (absent: owner)
    by_user = SessionsByUser()


class Throttle(Model):
    """An attempt counter for one subject (`signin-email#...`, `signin-ip#...`, `pair-ip#...`)
    in one fixed time window; raised only by a conditional ADD, so it never passes its cap."""
    Meta = table_meta("throttles")
    key = UnicodeAttribute(hash_key=True)
    attempts = NumberAttribute(default=0)
    expires = TTLAttribute()


class PairingCode(Model):
    """A short one-time code that lets a phone register itself into an account."""
    Meta = table_meta("pairing-codes")
    code = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    name = UnicodeAttribute()
    created_by = UnicodeAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    used_at = NumberAttribute(null=True)
    device_uid = UnicodeAttribute(null=True)
    expires = TTLAttribute()


class OperatorAction(Model):
    """One entry of the operators' audit log (domain/operators.py): who did what to which
    account, when. One partition (`log` = "operator"): operators act a few times a day, and the
    console reads it newest first with one Query. Never changed, never expired."""
    Meta = table_meta("operator-log")
    log = UnicodeAttribute(hash_key=True)
    entry_id = NumberAttribute(range_key=True)  # time-ordered (ids.new_message_id)
    at = NumberAttribute()
    operator = UnicodeAttribute()  # the operator's email, or "cli" for the operator's CLI
    action = UnicodeAttribute()
    account_id = UnicodeAttribute(null=True)
    detail = UnicodeAttribute(null=True)


MODELS = (User, PasswordLink, Session, Throttle, PairingCode, OperatorAction)
