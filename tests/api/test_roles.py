"""Roles on the dashboard (domain/roles.py, surfaces/dashboard/access.py): every route the
router knows, enumerated from it, tried by a viewer, a developer and an owner through the real
handlers on moto. A route without a line in the access table fails here; a refused request
gets a 403 naming the role it needs and changes no item in any table."""
import pytest

from chalicelib.domain import accounts, devices, pairing, roles, users, webhooks
from chalicelib.storage import tables
from chalicelib.surfaces import dashboard
from chalicelib.surfaces.dashboard import access
from tests.dashboard_helpers import PASSWORD, Visitor, text

ROUTES = sorted(dashboard.ROUTES, key=lambda r: (r[1], r[0]))
REFUSED = "does not allow this"


pytestmark = pytest.mark.usefixtures("quick_hashes")


def member(client, account_id, email, role):
    _, token = users.add(account_id, email, role=role)
    users.set_password(token, PASSWORD, PASSWORD)
    visitor = Visitor(client)
    assert visitor.sign_in(email).status_code == 303
    return visitor


def snapshot() -> dict:
    """Every item of every table, as plain data."""
    return {model.Meta.table_name: sorted(str(item.attribute_values) for item in model.scan())
            for model in tables.MODELS}


# Forms that would change something if the role allowed them (so "nothing changed" is a claim).
FORMS = {("keys",): {"label": "made by a test"}, ("team", "invite"): {
    "email": "new@example.com", "role": "viewer"},
    ("team", "role"): {"email": "other@example.com", "role": "owner"},
    ("team", "remove"): {"email": "other@example.com"},
    ("whitelist",): {"entry": "203.0.113.7", "understood": "1"},
    ("webhooks",): {"url": "https://example.com/hook", "event:sms.sent": "1"},
    ("opt-outs",): {"number": "+8801712345678"}, ("phones",): {"name": "Phone two"},
    ("account", "alerts"): {"alerts": "on"}, ("opt-outs", "settings"): {"footer": "on"},
    ("keys", "*", "rotate"): {"overlap": "0"}}


def test_every_route_has_a_line_in_the_access_table_and_no_line_is_stale():
    assert {r for r in dashboard.ROUTES if r not in access.NEEDS} == set()
    assert {r for r in access.NEEDS if r not in dashboard.ROUTES} == set()
    assert set(access.NEEDS.values()) <= {access.PUBLIC, *roles.ROLES}


def test_a_route_without_a_line_needs_an_owner():
    assert access.needed("POST", ("export",)) == roles.OWNER


def test_the_policy_drawn():
    """What each role may do, stated as rules rather than restating the table."""
    viewer_posts = {r[1] for r, need in access.NEEDS.items()
                    if r[0] == "POST" and need == roles.VIEWER}
    # operators: any member role, then the page checks the stage-wide operator flag
    assert viewer_posts - {("operator", "*", a) for a in ("suspend", "resume", "quota")} == {
        ("signout",), ("account", "alerts"), ("team", "leave")}
    secrets_or_sends = {("pair", "*"), ("try",), ("csv",)}
    leaving = {("account", "export"), ("account", "delete")}  # the owner's, with the data
    for (method, pattern), need in access.NEEDS.items():
        if method == "GET" and need != access.PUBLIC and pattern not in leaving:
            assert need == (roles.DEVELOPER if pattern in secrets_or_sends else roles.VIEWER)
    owners = {r[1] for r, need in access.NEEDS.items() if need == roles.OWNER}
    assert owners == {("whitelist",), ("team", "invite"), ("team", "revoke"),
                      ("team", "role"), ("team", "remove"), *leaving}


def _ids(account_id, first_part):
    """A real id for the route's "*" (so an allowed request would act on something)."""
    if first_part == "keys":
        return accounts.create_key(account_id, "shop")[1].key_id
    if first_part == "phones":
        return devices.register(account_id, "Phone one", sim_count=1)[0].device_uid
    if first_part == "webhooks":
        return webhooks.add(account_id, "http://127.0.0.1:9/in", ["sms.sent"]).webhook_id
    if first_part == "pair":
        return pairing.create(account_id, "Phone two", "x").code
    return "x"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r[0] + "_" + (
    "_".join(r[1]).replace("*", "ID").replace("-", "") or "home"))
def test_each_role_on_each_route(client, route, settings_override):
    """Viewer, developer, owner in turn (refusals first: they change nothing)."""
    settings_override(signup="invite", webhook_allow_private=True)  # as on the local gateway
    method, pattern = route
    needed = access.NEEDS.get(route, roles.OWNER)
    assert route in access.NEEDS, "add this route to dashboard/access.py"
    acct = accounts.create_account("Team")
    users.add(acct.account_id, "other@example.com", role="developer")
    visitors = {role: member(client, acct.account_id, f"{role}@example.com", role)
                for role in roles.ROLES}
    star = _ids(acct.account_id, pattern[0]) if "*" in pattern else None
    path = "/dashboard/" + "/".join(star if p == "*" else p for p in pattern)
    before = snapshot()
    refused = []
    for role in roles.ROLES:
        allowed = needed == access.PUBLIC or roles.allows(role, needed)
        if allowed and refused and before is not None:  # refusals first: nothing ran yet
            assert snapshot() == before, refused
            before = None
        visitor = visitors[role]
        if method == "GET":
            answer = visitor.get(path)
        else:
            answer = visitor.post(path, {"csrf": visitor.csrf(), **FORMS.get(pattern, {})})
        body = text(answer)
        if allowed:
            assert REFUSED not in body, (role, answer.status_code, body[:300])
            continue
        assert answer.status_code == 403, (role, body[:300])
        assert f"needs the {needed} role" in body and f"you are a {role}" in body, role
        assert "Nothing was changed" in body
        refused.append(role)
    if before is not None and refused:  # refused by every role
        assert snapshot() == before, refused
    expected = [r for r in roles.ROLES if needed != access.PUBLIC
                and not roles.allows(r, needed)]
    assert refused == expected
