"""Members' roles in their account, from least to most: a viewer reads, a developer also
changes what sends (keys, webhooks, phones, opt-outs, sends), an owner also manages the team
and the account (whitelist, export, deletion). A user item without a role is an owner: every
user made before roles existed, and the CLI's by default, so no migration is needed."""
from chalicelib.core.errors import BadRequest

VIEWER, DEVELOPER, OWNER = "viewer", "developer", "owner"
ROLES = (VIEWER, DEVELOPER, OWNER)
RANK = {role: rank for rank, role in enumerate(ROLES)}
DESCRIPTIONS = {VIEWER: "reads every page; changes nothing",
                DEVELOPER: "also keys, webhooks, phones, opt-outs and sends",
                OWNER: "everything: also the team and the account's settings"}


def of(item) -> str:
    """The role of a user or session item: absent, owner; a value this code does not know
    (another branch's, a typo) is read as the least, viewer, never as more."""
    role = getattr(item, "role", None)
    if role is None:
        return OWNER
    return role if role in RANK else VIEWER


def allows(role: str | None, needed: str) -> bool:
    return RANK.get(role or OWNER, -1) >= RANK[needed]


def parse(value: str | None) -> str:
    role = (value or "").strip().lower()
    if role not in RANK:
        raise BadRequest(f"Choose a role: {', '.join(ROLES)}.", "role")
    return role
