"""Who may use each dashboard page and action: ONE table, consulted by the router
(dashboard/__init__.py) before any page runs, so a page cannot forget its check.

Each route (method, path pattern) names the least role it needs (domain/roles.py), or PUBLIC
for the signed-out pages. A route missing here needs an owner (closed by default), and
tests/api/test_roles.py fails until it has its entry. Branches adding pages (export,
deletion: OWNER; the operator's console has its own role) add their lines here.

The line drawn: a viewer reads every page and may change only what is theirs (sign out, their
own alert mails, leave the team); a developer also changes what sends and what the API
accepts (keys, phones and pairing, pacing, webhooks, opt-outs, test and CSV sends); an owner
also the team and the account's own settings (the IP whitelist, and export and deletion).
"""
from chalicelib.domain.roles import DEVELOPER, OWNER, VIEWER

PUBLIC = "public"

NEEDS = {
    # signed out: their proof is a link token or the password
    ("GET", ("signin",)): PUBLIC, ("POST", ("signin",)): PUBLIC,
    ("GET", ("set-password",)): PUBLIC, ("POST", ("set-password",)): PUBLIC,
    ("GET", ("signup",)): PUBLIC, ("POST", ("signup",)): PUBLIC,
    ("GET", ("verify",)): PUBLIC, ("POST", ("verify",)): PUBLIC,
    ("GET", ("forgot",)): PUBLIC, ("POST", ("forgot",)): PUBLIC,
    ("GET", ("join",)): PUBLIC, ("POST", ("join",)): PUBLIC,
    ("GET", ("unsubscribe", "*", "*")): PUBLIC, ("POST", ("unsubscribe", "*", "*")): PUBLIC,
    # every member: reading, and what is their own
    ("GET", ()): VIEWER,
    ("GET", ("keys",)): VIEWER, ("GET", ("whitelist",)): VIEWER,
    ("GET", ("account",)): VIEWER, ("GET", ("api",)): VIEWER,
    ("GET", ("phones",)): VIEWER, ("GET", ("phones", "*")): VIEWER,
    ("GET", ("messages",)): VIEWER, ("GET", ("messages", "*", "*")): VIEWER,
    ("GET", ("webhooks",)): VIEWER, ("GET", ("webhooks", "*")): VIEWER,
    ("GET", ("opt-outs",)): VIEWER, ("GET", ("csv", "*")): VIEWER,
    ("GET", ("team",)): VIEWER,
    ("POST", ("signout",)): VIEWER, ("POST", ("account", "alerts")): VIEWER,
    ("POST", ("team", "leave")): VIEWER,
    # developers: what sends, and what the API accepts
    ("POST", ("keys",)): DEVELOPER, ("POST", ("keys", "*", "revoke")): DEVELOPER,
    ("POST", ("keys", "*", "rotate")): DEVELOPER,
    ("POST", ("phones",)): DEVELOPER, ("GET", ("pair", "*")): DEVELOPER,
    ("POST", ("pair", "*", "app-token")): DEVELOPER,
    ("POST", ("phones", "*", "remove")): DEVELOPER, ("POST", ("phones", "*", "pace")): DEVELOPER,
    ("GET", ("try",)): DEVELOPER, ("POST", ("try", "sms")): DEVELOPER,
    ("POST", ("try", "otp")): DEVELOPER, ("POST", ("try", "verify")): DEVELOPER,
    ("GET", ("csv",)): DEVELOPER, ("POST", ("csv",)): DEVELOPER,
    ("POST", ("csv", "send")): DEVELOPER,
    ("POST", ("webhooks",)): DEVELOPER, ("POST", ("webhooks", "*", "enable")): DEVELOPER,
    ("POST", ("webhooks", "*", "disable")): DEVELOPER,
    ("POST", ("webhooks", "*", "remove")): DEVELOPER,
    ("POST", ("webhooks", "*", "test")): DEVELOPER,
    ("POST", ("webhooks", "*", "rotate")): DEVELOPER,
    ("POST", ("webhooks", "*", "redeliver")): DEVELOPER,
    ("POST", ("opt-outs",)): DEVELOPER, ("POST", ("opt-outs", "remove")): DEVELOPER,
    ("POST", ("opt-outs", "settings")): DEVELOPER,
    # owners: the team and the account's own settings
    ("POST", ("whitelist",)): OWNER,
    ("POST", ("team", "invite")): OWNER, ("POST", ("team", "revoke")): OWNER,
    ("POST", ("team", "role")): OWNER, ("POST", ("team", "remove")): OWNER,
    # the operator's console: any member role, then the page asks for the stage-wide operator
    # flag (domain/operators.py), which is no member's role
    ("GET", ("operator",)): VIEWER, ("POST", ("operator", "*", "suspend")): VIEWER,
    ("POST", ("operator", "*", "resume")): VIEWER, ("POST", ("operator", "*", "quota")): VIEWER,
    ("GET", ("account", "export")): OWNER,
    ("GET", ("account", "delete")): OWNER, ("POST", ("account", "delete")): OWNER,
}


def needed(method: str, pattern: tuple) -> str:
    """The least role `pattern` needs (an owner if it has no line: closed by default)."""
    return NEEDS.get((method, pattern), OWNER)
