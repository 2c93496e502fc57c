"""Sign-up: a person creates an account and its first user from the sign-in page, when the
stage's SMSGW_SIGNUP is `open` (settings.current().signup).

Nothing exists until the email is verified: sign-up stores only a pending link (PasswordLink,
purpose `signup`: the token's SHA-256, the account's id and name, the argon2 hash of the chosen
password) and mails its token. Following the link creates the account and the user in one
transaction, conditional on the link being unspent and unexpired and on no user having that
email, so two clicks create one account, and an unverified person has no account to make a key
for, sign in to or send from.

Sign-up never tells whether an email is registered: a known email gets the same answer, after
the same work (a password hash, one pending link written, one mail), and its mail says "you
already have an account". Attempts are throttled per client address (an IPv6 /64 counts as
one) and per email, the same for known and unknown emails.
"""
import secrets

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core import clock, settings
from chalicelib.core.errors import Forbidden, Unauthorized
from chalicelib.domain import account_mails, accounts, throttle, users
from chalicelib.storage import records
from chalicelib.storage.dashboard_tables import PasswordLink, User
from chalicelib.storage.tables import Account

LINK_HOURS = 24
WINDOW_SECONDS = 3600
PER_EMAIL, PER_IP = 3, 10
CONFLICT_RETRIES = 3


def is_open() -> bool:
    """Open to anyone; `invite`: people join only through an owner's invitation
    (domain/members.py)."""
    return settings.current().signup == "open"


def sign_up(email: str | None, password: str | None, confirm: str | None,
            account_name: str | None, source_ip: str | None, dashboard_url: str) -> str:
    """Check the form, take a throttle slot, and mail the email's owner: a verification link,
    or, if they have an account already, a note saying so. Returns the normalised email; the
    caller answers the same whatever was mailed. `dashboard_url`: the dashboard's public URL
    (links in the mail)."""
    if not is_open():
        raise Forbidden("Sign-up is closed on this gateway: ask its operator for an account.")
    email = users.normalise_email(email)
    password = users.check_password_rules(password, confirm)
    account = accounts.new_account(account_name)  # checks the name; saved on verification
    throttle.take(f"signup-ip#{throttle.address(source_ip)}", PER_IP, WINDOW_SECONDS,
                  "sign-ups from your network")
    throttle.take(f"signup-email#{email}", PER_EMAIL, WINDOW_SECONDS, "sign-ups for this email")
    password_hash = users.hash_password(password)
    token = secrets.token_urlsafe(32)
    now = clock.now_ms()
    expires_at = now + LINK_HOURS * 3600 * 1000
    known = _exists(email)
    # Written for a known email too (never mailed): the same work, so the same time.
    PasswordLink(token_hash=users.token_hash(token), email=email, purpose="signup",
                 account_id=account.account_id, account_name=account.name,
                 password_hash=password_hash, created_at=now, expires_at=expires_at,
                 expires=clock.at(expires_at)).save()
    base = dashboard_url.rsplit("/dashboard", 1)[0]
    if known:
        account_mails.send(email, "signup_known", base_url=base,
                           signin=f"{dashboard_url}/signin", forgot=f"{dashboard_url}/forgot")
    else:
        account_mails.send(email, "verify", base_url=base, account_name=account.name,
                           hours=LINK_HOURS, link=f"{dashboard_url}/verify?token={token}")
    return email


def _exists(email: str) -> bool:
    try:
        User.get(email, consistent_read=True)
        return True
    except DoesNotExist:
        return False


def pending(token: str | None) -> PasswordLink:
    """The live sign-up behind a verification link (for showing its page)."""
    if not is_open():  # closed since the link was mailed: it creates nothing
        raise Forbidden("Sign-up is closed on this gateway: ask its operator for an account.")
    link = users.live_link(token, purpose="signup")
    if _exists(link.email):
        raise Unauthorized("You have an account with this email already: sign in, or reset "
                           "your password.", "token")
    return link


def verify(token: str | None) -> User:
    """Spend the link, and create its account and user, all in one transaction."""
    link = pending(token)
    now = clock.now_ms()
    account = accounts.new_account(link.account_name)
    account.account_id = link.account_id
    user = User(email=link.email, account_id=link.account_id, created_at=now,
                password_hash=link.password_hash, password_set_at=now)
    for attempt in range(CONFLICT_RETRIES):
        try:
            with TransactWrite(connection=records.transaction_connection()) as transaction:
                users.spend_link(transaction, link, now)
                transaction.save(user, condition=User.email.does_not_exist())
                transaction.save(account, condition=Account.account_id.does_not_exist())
            return user
        except TransactWriteError as error:
            if not users.lost_to_a_conflict(error, attempt):
                break
    if _exists(link.email) and User.get(link.email).account_id == link.account_id:
        raise Unauthorized("This link was used already: sign in.", "token")
    raise Unauthorized("This link was used already or is no longer valid.", "token")
