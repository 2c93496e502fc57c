"""Dashboard users: people who sign in to one account's dashboard, their passwords and their
one-time set-password links.

Passwords are hashed with argon2id (argon2-cffi's defaults: 64 MiB, 3 passes), imported on first
use so the public API never loads it. The admin CLI adds a user and prints a link valid for
LINK_HOURS; following it sets the password, once: the link is spent and the password written
in one transaction, conditional on the link being unused and unexpired. Sign-in is throttled
per email and per client address (an IPv6 /64 counts as one; chalicelib/domain/throttle.py)
before any hash is checked. So that wrong passwords typed by anyone cannot lock the rightful
user out, a browser that signed in before (its random token, kept for BROWSER_DAYS) has its own
allowance instead: a guesser without that cookie exhausts only the email's and the address's.
"""
import hashlib
import re
import secrets

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core import clock
from chalicelib.core.errors import BadRequest, Conflict, NotFound, Unauthorized
from chalicelib.domain import sessions, throttle
from chalicelib.domain.accounts import get_account
from chalicelib.storage import records
from chalicelib.storage.dashboard_tables import PasswordLink, Throttle, User

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,63}$")
LINK_HOURS = 24
MIN_PASSWORD, MAX_PASSWORD = 12, 256
# Sign-in attempts per window: per email (a targeted guesser) and per client address (a spray).
SIGNIN_WINDOW_SECONDS = 15 * 60
SIGNIN_PER_EMAIL, SIGNIN_PER_IP, SIGNIN_PER_BROWSER = 5, 30, 10
BROWSER_DAYS = 90
_hasher = None


def _argon2():
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher
        _hasher = PasswordHasher()
    return _hasher


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


token_hash = _sha256  # the key a link's token is stored under (domain/signup.py)


def hash_password(password: str) -> str:
    return _argon2().hash(password)


def normalise_email(email: str | None) -> str:
    email = (email or "").strip().lower()
    if not EMAIL.match(email):
        raise BadRequest("Not an email address.", "email")
    return email


def add(account_id: str, email: str, role: str = "owner") -> tuple[User, str]:
    """Add a user to an account with `role` (domain/roles.py); returns it and its
    set-password link token (shown once)."""
    from chalicelib.domain import roles
    email = normalise_email(email)
    role = roles.parse(role)
    get_account(account_id)
    user = User(email=email, account_id=account_id, created_at=clock.now_ms(), role=role)
    try:
        user.save(User.email.does_not_exist())
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            raise Conflict(f"A user {email} exists already (users belong to one account).",
                           "email")
        raise
    return user, new_link(user)


def new_link(user: User) -> str:
    """A fresh one-time set-password link token for `user` (a new one does not void older)."""
    token = secrets.token_urlsafe(32)
    now = clock.now_ms()
    expires_at = now + LINK_HOURS * 3600 * 1000
    PasswordLink(token_hash=_sha256(token), email=user.email, account_id=user.account_id,
                 created_at=now, expires_at=expires_at,
                 expires=clock.at(expires_at)).save()
    return token


def get(email: str) -> User:
    try:
        return User.get(normalise_email(email))
    except DoesNotExist:
        raise NotFound(f"No user {email}.", "email")


def list_users(account_id: str) -> list[User]:
    return list(User.by_account.query(account_id))


def remove(account_id: str, email: str) -> User:
    """Delete the user and sign them out everywhere."""
    user = get(email)
    if user.account_id != account_id:
        raise NotFound(f"Account {account_id} has no user {email}.", "email")
    user.delete(User.account_id == account_id)
    sessions.end_for_user(user.email)
    return user


def link_user(token: str | None) -> User:
    """The user a set-password or reset link is for, if the link is live (for its form)."""
    return _link_and_user(token)[1]


def _link_and_user(token: str | None) -> tuple[PasswordLink, User]:
    link = live_link(token)
    try:
        user = User.get(link.email, consistent_read=True)
    except DoesNotExist:
        raise Unauthorized("This link is no longer valid.", "token")
    if user.account_id != link.account_id or (
            user.password_set_at is not None and user.password_set_at >= link.created_at):
        # the password was set since this link was made: an older link is void
        raise Unauthorized("This link is no longer valid: your password was set since. "
                           + _ASK_AGAIN[link.purpose], "token")
    return link, user


_ASK_AGAIN = {None: "Ask your operator for a new one.",
              "reset": "Ask for a new one: Forgot password? on the sign-in page.",
              "signup": "Sign up again.",
              "invite": "Ask the account's owner to invite you again."}


def live_link(token: str | None, purpose: str | None = None) -> PasswordLink:
    """The link behind `token` if it is unspent, unexpired and for `purpose` (None: the
    operator's set-password link or a reset link, whose forms are the same)."""
    try:
        link = PasswordLink.get(_sha256(token or ""), consistent_read=True)
    except DoesNotExist:
        link = None
    wanted = (purpose,) if purpose else (None, "reset")
    if link is None or link.purpose not in wanted:
        raise Unauthorized("This link is not valid. " + _ASK_AGAIN[purpose], "token")
    if link.used_at is not None:
        raise Unauthorized("This link was used already. " + _ASK_AGAIN[link.purpose], "token")
    if link.expires_at <= clock.now_ms():
        raise Unauthorized("This link has expired. " + _ASK_AGAIN[link.purpose], "token")
    return link


def link_state(token: str | None) -> str:
    """What a set-password link is now: "live", "used", "expired" or "unknown" (the local
    gateway's banner shows a link only while it works)."""
    try:
        live_link(token)
    except Unauthorized as refused:
        return next((state for state in ("used", "expired") if state in refused.message),
                    "unknown")
    return "live"


def lost_to_a_conflict(error: TransactWriteError, attempt: int) -> bool:
    """Whether a cancelled transaction met another one on the same item (DynamoDB's
    TransactionConflict) rather than a failed condition: then pause and try again; the next
    attempt sees the other's result."""
    import random
    import time
    reasons = [r.code if r else None for r in (error.cancellation_reasons or [])]
    if "TransactionConflict" not in reasons or "ConditionalCheckFailed" in reasons:
        return False
    time.sleep(0.02 * 2 ** attempt * random.uniform(0.5, 1))
    return True


def spend_link(transaction: TransactWrite, link: PasswordLink, now: int) -> None:
    """Spend a one-time link within `transaction`, on condition that it is unspent and unexpired
    at `now`: the transaction's other writes happen only if this one link was still live."""
    transaction.update(link, actions=[PasswordLink.used_at.set(now)],
                       condition=PasswordLink.used_at.does_not_exist()
                       & (PasswordLink.expires_at > now))


def check_password_rules(password: str | None, confirm: str | None) -> str:
    password = password or ""
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"Use at least {MIN_PASSWORD} characters.", "password")
    if len(password) > MAX_PASSWORD:
        raise BadRequest(f"Use at most {MAX_PASSWORD} characters.", "password")
    if password != (confirm or ""):
        raise BadRequest("The two passwords differ.", "confirm")
    return password


def set_password(token: str | None, password: str | None, confirm: str | None) -> User:
    """Spend the link and set the password, atomically; every other session of the user ends."""
    password = check_password_rules(password, confirm)
    link, _ = _link_and_user(token)
    password_hash = _argon2().hash(password)
    user = User(email=link.email)
    for attempt in range(3):
        now = clock.now_ms()
        try:
            with TransactWrite(connection=records.transaction_connection()) as transaction:
                spend_link(transaction, link, now)
                transaction.update(user, actions=[User.password_hash.set(password_hash),
                                                  User.password_set_at.set(now)],
                                   condition=User.email.exists()
                                   & (User.account_id == link.account_id)
                                   & (User.password_set_at.does_not_exist()
                                      | (User.password_set_at < link.created_at)))
            break
        except TransactWriteError as error:
            if not lost_to_a_conflict(error, attempt):
                raise Unauthorized("This link was used already or is no longer valid.",
                                   "token")
    else:
        raise Unauthorized("This link was used already or is no longer valid.", "token")
    sessions.end_for_user(link.email)
    return User.get(link.email)


def _known_browser(email: str, browser: str | None) -> str | None:
    """The stored key of `browser` (a token from the browser cookie) if it signed in to
    `email` before and is still remembered; else None."""
    if not browser or len(browser) > 128:
        return None
    key = f"signin-known#{email}#{_sha256(browser)}"
    try:
        known = Throttle.get(key, consistent_read=True)
    except DoesNotExist:
        return None
    return key if known.expires and known.expires > clock.at(clock.now_ms()) else None


def remember_browser(email: str, browser: str | None) -> str:
    """After a right password: remember this browser for `email` (a new token unless it
    brought a remembered one); returns the token for its cookie."""
    email = normalise_email(email)
    if not _known_browser(email, browser):
        browser = secrets.token_urlsafe(32)
    Throttle(key=f"signin-known#{email}#{_sha256(browser)}", attempts=0,
             expires=clock.at(clock.now_ms() + BROWSER_DAYS * 86400 * 1000)).save()
    return browser


def _signin_subjects(email: str, source_ip: str | None,
                     browser: str | None = None) -> list[tuple[str, int]]:
    known = _known_browser(email, browser)
    if known:  # its own allowance: others' wrong passwords do not count against it
        return [(f"signin-browser#{known}", SIGNIN_PER_BROWSER)]
    return [(f"signin-email#{email}", SIGNIN_PER_EMAIL),
            (f"signin-ip#{throttle.address(source_ip)}", SIGNIN_PER_IP)]


_DUMMY_HASH = None


def check_signin(email: str | None, password: str | None, source_ip: str | None,
                 browser: str | None = None) -> User:
    """The user, if email and password match; throttled per email and per address, or, for
    a browser remembered for this email (`browser`: its cookie's token), per browser. Unknown
    users cost the same hash as known ones, so timing does not tell which emails exist."""
    global _DUMMY_HASH
    wrong = Unauthorized("Wrong email or password.", "password")
    try:
        email = normalise_email(email)
    except BadRequest:
        raise wrong
    subjects = _signin_subjects(email, source_ip, browser)
    for subject, cap in subjects:
        throttle.take(subject, cap, SIGNIN_WINDOW_SECONDS, "sign-in attempts")
    try:
        user = User.get(email)
    except DoesNotExist:
        user = None
    hasher = _argon2()
    from argon2.exceptions import InvalidHashError, VerificationError
    if user is None or not user.password_hash:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hasher.hash(secrets.token_hex(16))
        try:
            hasher.verify(_DUMMY_HASH, password or "")
        except VerificationError:
            pass
        raise wrong
    try:
        hasher.verify(user.password_hash, password or "")
    except (VerificationError, InvalidHashError):
        raise wrong
    for subject, _ in subjects:  # a right password gives its slots back
        throttle.release(subject, SIGNIN_WINDOW_SECONDS)
    return user
