"""Team members: an owner invites people by email into the account with a role
(domain/roles.py), changes roles, removes members; a member leaves.

A person belongs to one account (the users table is keyed by email). An invitation is a
PasswordLink with purpose `invite`, mailed through account_mails and living LINK_DAYS; only
its token's SHA-256 is stored. Accepting it spends the link and creates the user, in one
transaction conditional on the link being unspent and unexpired, on no user having the email
and on the account still existing: of two clicks racing, one joins. The inviter learns
nothing about the email beyond what the team page shows: the same answer and the same mail
whether or not the email has an account elsewhere; the person opening the link is told.

An account never loses its last owner: demoting or removing an owner (or an owner leaving) is
one transaction that also checks, consistently, that another member is still an owner. Two
owners demoting each other at once are two transactions each writing the item the other
checks; DynamoDB serializes them (TransactionConflict or the second one's condition fails),
so at most one goes through. Removal and role changes end the member's sessions at once.
"""
import secrets

from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.core import clock, settings
from chalicelib.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from chalicelib.domain import account_mails, accounts, roles, sessions, throttle, users
from chalicelib.storage import records
from chalicelib.storage.dashboard_tables import PasswordLink, User
from chalicelib.storage.tables import Account

LINK_DAYS = 7
WINDOW_SECONDS = 3600
PER_ACCOUNT, PER_EMAIL = 20, 3  # invitations an account sends, and one address gets, per hour
RETRIES = 3
_IS_OWNER = User.role.does_not_exist() | (User.role == roles.OWNER)


def invitations_allowed() -> bool:
    """SMSGW_SIGNUP `invite` or `open`: people may join through an invitation."""
    return settings.current().signup in ("invite", "open")


def _closed():
    return Forbidden("Invitations are off on this gateway (SMSGW_SIGNUP is closed): its "
                     "operator adds users (smsgw user add --role).")


def invite(account_id: str, inviter: str, email: str | None, role: str | None, *,
           dashboard_url: str) -> str:
    """Mail `email` a one-time link to join `account_id` as `role`; returns the email."""
    if not invitations_allowed():
        raise _closed()
    email = users.normalise_email(email)
    role = roles.parse(role)
    account = accounts.get_account(account_id)
    try:
        if User.get(email, consistent_read=True).account_id == account_id:
            raise Conflict(f"{email} is a member of this account already.", "email")
    except DoesNotExist:
        pass
    throttle.take(f"invite-email#{email}", PER_EMAIL, WINDOW_SECONDS,
                  "invitations to this email")
    throttle.take(f"invite-account#{account_id}", PER_ACCOUNT, WINDOW_SECONDS,
                  "invitations from this account")
    token = secrets.token_urlsafe(32)
    now = clock.now_ms()
    expires_at = now + LINK_DAYS * 86400 * 1000
    PasswordLink(token_hash=users.token_hash(token), email=email, purpose="invite",
                 account_id=account_id, invited_to=account_id, role=role, by=inviter,
                 account_name=account.name, created_at=now, expires_at=expires_at,
                 expires=clock.at(expires_at)).save()
    account_mails.send(email, "invite", base_url=dashboard_url.rsplit("/dashboard", 1)[0],
                       inviter=inviter, account_name=account.name, role=role,
                       role_means=account_mails.text("role_" + role), days=LINK_DAYS,
                       link=f"{dashboard_url}/join?token={token}")
    return email


def pending_invitations(account_id: str) -> list[PasswordLink]:
    now = clock.now_ms()
    return [link for link in PasswordLink.invitations.query(account_id)
            if link.purpose == "invite" and link.used_at is None and link.expires_at > now]


def revoke_invitation(account_id: str, token_hash: str | None) -> None:
    """Void a pending invitation (its link then says it is not valid)."""
    try:
        PasswordLink(token_hash=token_hash or "-").delete(
            (PasswordLink.invited_to == account_id) & PasswordLink.used_at.does_not_exist())
    except DeleteError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise NotFound("No such pending invitation.", "invitation")
        raise


def invitation(token: str | None) -> PasswordLink:
    """The live invitation behind a link, if its email can join (for its page)."""
    if not invitations_allowed():
        raise _closed()
    link = users.live_link(token, purpose="invite")
    try:
        existing = User.get(link.email, consistent_read=True)
    except DoesNotExist:
        return link
    if existing.account_id == link.account_id:
        raise Unauthorized("You are a member of this account already: sign in.", "token")
    raise Conflict(f"{link.email} has an account on this gateway already, and a person "
                   "belongs to one account only. To join this one, leave your other account "
                   "first (Team, then Leave) and open this link again while it is valid, or "
                   "ask for an invitation to another address of yours.", "token")


def join(token: str | None, password: str | None, confirm: str | None) -> User:
    """Spend the invitation and create the member with their password, in one transaction."""
    password = users.check_password_rules(password, confirm)
    link = invitation(token)
    password_hash = users.hash_password(password)
    for attempt in range(RETRIES):
        now = clock.now_ms()
        user = User(email=link.email, account_id=link.account_id, created_at=now,
                    password_hash=password_hash, password_set_at=now, role=roles.of(link))
        try:
            with TransactWrite(connection=records.transaction_connection()) as transaction:
                users.spend_link(transaction, link, now)
                transaction.save(user, condition=User.email.does_not_exist())
                transaction.condition_check(Account, link.account_id,
                                            condition=Account.account_id.exists())
            return user
        except TransactWriteError as error:
            if not users.lost_to_a_conflict(error, attempt):
                break
    invitation(token)  # the clearer answer if the email joined, or the link was spent
    raise Unauthorized("This invitation was used already or is no longer valid.", "token")


def member(account_id: str, email: str | None) -> User:
    try:
        user = User.get(users.normalise_email(email), consistent_read=True)
    except DoesNotExist:
        user = None
    if user is None or user.account_id != account_id:
        raise NotFound("This account has no such member.", "email")
    return user


def set_role(account_id: str, email: str | None, role: str | None) -> User:
    """Change a member's role; their sessions end (they sign in again with the new role)."""
    role = roles.parse(role)
    user = member(account_id, email)
    if roles.of(user) == role:
        return user
    action = {"update": [User.role.set(role)]}
    if roles.of(user) == roles.OWNER:
        _keeping_an_owner(account_id, user, action)
    else:
        _unless_changed(user, lambda: user.update(
            actions=action["update"], condition=(User.account_id == account_id) & ~_IS_OWNER))
    sessions.end_for_user(user.email)
    user.role = role
    return user


def remove(account_id: str, email: str | None) -> User:
    """Remove a member (an owner's action, or the member leaving); their sessions end."""
    user = member(account_id, email)
    if roles.of(user) == roles.OWNER:
        _keeping_an_owner(account_id, user, {"delete": True})
    else:
        _unless_changed(user, lambda: user.delete((User.account_id == account_id)
                                                  & ~_IS_OWNER))
    sessions.end_for_user(user.email)
    return user


def _unless_changed(user: User, write) -> None:
    try:
        write()
    except (UpdateError, DeleteError) as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
        raise Conflict(f"{user.email} was made an owner or removed meanwhile: reload and try "
                       "again.", "email")


def _keeping_an_owner(account_id: str, user: User, action: dict) -> None:
    """Demote or delete the owner `user` in one transaction with a consistent check that
    another member is an owner; Conflict if none is."""
    last = Conflict(f"{user.email} is the account's last owner: make another member an owner "
                    "first (an account always has one).", "email")
    for attempt in range(RETRIES + 1):
        others = [u for u in users.list_users(account_id)
                  if u.email != user.email and roles.of(u) == roles.OWNER]
        if not others:
            raise last
        mine = (User.account_id == account_id) & _IS_OWNER
        try:
            with TransactWrite(connection=records.transaction_connection()) as transaction:
                if "delete" in action:
                    transaction.delete(user, condition=mine)
                else:
                    transaction.update(user, actions=action["update"], condition=mine)
                transaction.condition_check(User, others[0].email, condition=(
                    User.account_id == account_id) & _IS_OWNER)
            return
        except TransactWriteError as error:
            if users.lost_to_a_conflict(error, attempt):
                continue
            # a condition failed: the other was demoted or left, or this one changed: look again
            user = member(account_id, user.email)
            if roles.of(user) != roles.OWNER:
                raise Conflict(f"{user.email}'s role changed meanwhile: reload and try again.",
                               "email")
    raise last
