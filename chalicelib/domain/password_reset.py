"""A forgotten password: "Forgot password?" mails a one-time link that lives LINK_MINUTES.

The link is a PasswordLink with purpose `reset`, followed on the same page as the operator's
set-password link (users.set_password): spending it and writing the password is one transaction
conditional on the link being unspent and unexpired, so of two clicks racing one wins, and the
reset ends every session of the user. A password set since the link was made voids it.

The answer is the same for any email, after the same work (one user read, one link written,
one mail): an unknown email gets a mail saying it has no account, so neither the page nor the
time it takes tells which emails exist. Requests are throttled per client address (an IPv6 /64
counts as one) and per email, the same for known and unknown emails.
"""
import secrets

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, settings
from chalicelib.domain import account_mails, signup, throttle, users
from chalicelib.storage.dashboard_tables import PasswordLink, User

LINK_MINUTES = 30
WINDOW_SECONDS = 3600
PER_EMAIL, PER_IP = 3, 10


def request_reset(email: str | None, source_ip: str | None, dashboard_url: str) -> str:
    """Mail a reset link to `email` if it has an account, else a note that it has none;
    returns the normalised email. `dashboard_url`: the dashboard's public URL."""
    email = users.normalise_email(email)
    throttle.take(f"reset-ip#{throttle.address(source_ip)}", PER_IP, WINDOW_SECONDS,
                  "password resets from your network")
    throttle.take(f"reset-email#{email}", PER_EMAIL, WINDOW_SECONDS,
                  "password resets for this email")
    try:
        user = User.get(email, consistent_read=True)
    except DoesNotExist:
        user = None
    token = secrets.token_urlsafe(32)
    now = clock.now_ms()
    expires_at = now + LINK_MINUTES * 60 * 1000
    # Written for an unknown email too (never mailed, and no user to reset): the same work.
    PasswordLink(token_hash=users.token_hash(token), email=email, purpose="reset",
                 account_id=user.account_id if user else "none", created_at=now,
                 expires_at=expires_at, expires=clock.at(expires_at)).save()
    base = dashboard_url.rsplit("/dashboard", 1)[0]
    if user is not None:
        account_mails.send(email, "reset", email=email, base_url=base, minutes=LINK_MINUTES,
                           link=f"{dashboard_url}/set-password?token={token}")
    else:
        hint = (account_mails.text("signup_hint_open", signup=f"{dashboard_url}/signup")
                if signup.is_open() else account_mails.text(
                    f"signup_hint_{settings.current().signup}"))
        account_mails.send(email, "reset_unknown", email=email, base_url=base,
                           signup_hint=hint)
    return email
