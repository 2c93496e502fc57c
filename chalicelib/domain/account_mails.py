"""The mails a person gets about their own account (sign-up, password reset, an invitation
into a team), with every word
of them here, in one catalog per language, so they can be translated without touching code.

They are plain text with no tracking: no HTML, no images, no redirecting or tagged links, no
unsubscribe (a person asked for each one). They go through the alert mail path
(domain/insight/alerts.deliver): SES on AWS, `.eml` files and a printed subject locally.
To translate: copy the "en" catalog under another language code, add the code to
core/settings.MAIL_LANGUAGES and set SMSGW_MAIL_LANGUAGE (settings.current().mail_language).
"""
from chalicelib.core import settings

CATALOGS = {
    "en": {
        "verify": (
            "Verify your email for your SMS gateway account",
            "Hello,\n\n"
            "Someone, probably you, asked to create the account \"{account_name}\" on the SMS "
            "gateway at {base_url} with this email address.\n\n"
            "To verify your email and open your dashboard, follow this link within {hours} "
            "hours:\n\n{link}\n\n"
            "If you did not ask for this, ignore this mail: no account is created without "
            "this link.\n"),
        "signup_known": (
            "You already have an SMS gateway account",
            "Hello,\n\n"
            "Someone, probably you, asked to create an account on the SMS gateway at "
            "{base_url} with this email address, but you already have an account there: no "
            "new account was made.\n\n"
            "Sign in: {signin}\n"
            "Forgot your password? Reset it: {forgot}\n\n"
            "If you did not ask for this, ignore this mail: nothing changed.\n"),
        "reset": (
            "Reset your SMS gateway password",
            "Hello,\n\n"
            "Someone, probably you, asked to reset the password of {email} on the SMS gateway "
            "at {base_url}.\n\n"
            "To choose a new password, follow this link within {minutes} minutes. It works "
            "once, and signs you out everywhere else:\n\n{link}\n\n"
            "If you did not ask for this, ignore this mail: your password stays as it is.\n"),
        "reset_unknown": (
            "Reset your SMS gateway password",
            "Hello,\n\n"
            "Someone, probably you, asked to reset the password of {email} on the SMS gateway "
            "at {base_url}, but there is no account with this email address there.\n\n"
            "If you have an account, it may be under another address of yours. "
            "{signup_hint}\n\n"
            "If you did not ask for this, ignore this mail.\n"),
        "signup_hint_open": "To create one: {signup}",
        "signup_hint_closed": "Accounts there are created by its operator.",
        "signup_hint_invite": "People join accounts there when an account's owner invites "
                              "them.",
        "invite": (
            "You are invited to the SMS gateway account \"{account_name}\"",
            "Hello,\n\n"
            "{inviter} invites you to join the account \"{account_name}\" on the SMS gateway "
            "at {base_url}, as {role}: {role_means}.\n\n"
            "To accept, choose your password by following this link within {days} days. It "
            "works once:\n\n{link}\n\n"
            "If you did not expect this, ignore this mail: nothing happens without this "
            "link.\n"),
        "role_owner": "you may do everything, including managing the team",
        "role_developer": "you may manage API keys, webhooks, phones and opt-outs, and send",
        "role_viewer": "you may see everything, and change nothing",
    },
}


def text(name: str, **values) -> str:
    """One string of the catalog, filled in."""
    return CATALOGS[settings.current().mail_language][name].format(**values)


def compose(name: str, **values) -> tuple[str, str]:
    """(subject, body) of the mail `name`, filled in."""
    subject, body = CATALOGS[settings.current().mail_language][name]
    return subject.format(**values), body.format(**values)


def send(to: str, name: str, **values) -> None:
    from chalicelib.domain.insight import alerts
    subject, body = compose(name, **values)
    alerts.deliver(to, subject, body)
