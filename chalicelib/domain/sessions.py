"""Dashboard sessions, kept server-side in DynamoDB (TTL removes them; every read checks
`expires_at` too). The browser holds only a random token; the table key is its SHA-256, so a
leaked table cannot be replayed as cookies. Each session has its own CSRF token that every
state-changing form must carry. A session holds its user's role as it was at sign-in
(domain/roles.py); changing a member's role or removing them ends their sessions."""
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock
from chalicelib.core.errors import Unauthorized
from chalicelib.domain import roles
from chalicelib.storage.dashboard_tables import Session, User

LIFETIME_SECONDS = 12 * 3600


@dataclass(frozen=True)
class SignedIn:
    email: str
    account_id: str
    csrf_token: str
    session_hash: str
    role: str = roles.OWNER


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(user: User) -> str:
    """A new session for `user` (as read when its password was checked); returns the token
    for the cookie. If the password was set (a reset) or the user removed since that read, the
    session is deleted and Unauthorized raised: the reset's end_for_user may have run before
    this write, and the re-read after it sees any reset that committed before it (a role
    change or a removal likewise)."""
    token = secrets.token_urlsafe(32)
    now = clock.now_ms()
    expires_at = now + LIFETIME_SECONDS * 1000
    session = Session(session_hash=_sha256(token), email=user.email,
                      account_id=user.account_id, csrf_token=secrets.token_urlsafe(32),
                      created_at=now, expires_at=expires_at, expires=clock.at(expires_at),
                      role=roles.of(user))
    session.save()
    try:
        current = User.get(user.email, consistent_read=True)
    except DoesNotExist:
        current = None
    if current is None or (current.account_id, current.password_set_at, roles.of(current)) != (
            user.account_id, user.password_set_at, roles.of(user)):
        session.delete()
        raise Unauthorized("Your password or role was just changed: sign in again.",
                           "password")
    return token


def find(token: str | None) -> SignedIn | None:
    """The live session behind a cookie token, or None."""
    if not token or len(token) > 100:
        return None
    try:
        item = Session.get(_sha256(token))
    except DoesNotExist:
        return None
    if item.expires_at <= clock.now_ms():
        return None
    return SignedIn(item.email, item.account_id, item.csrf_token, item.session_hash,
                    roles.of(item))


def csrf_ok(session: SignedIn, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf_token, given)


def end(session: SignedIn) -> None:
    Session(session_hash=session.session_hash).delete()


def end_all(session: SignedIn) -> int:
    """Sign out everywhere: every session of this session's user."""
    return end_for_user(session.email)


def end_for_user(email: str) -> int:
    ended = 0
    for item in Session.by_user.query(email):
        Session(session_hash=item.session_hash).delete()
        ended += 1
    return ended
