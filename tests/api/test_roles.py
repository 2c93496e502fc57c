"""Roles on the dashboard (domain/roles.py, surfaces/dashboard/access.py): every route the
router knows, enumerated from it, tried by a viewer, a developer and an owner through the real
handlers on moto. A route without a line in the access table fails here; a refused request
gets a 403 naming the role it needs and changes no item in any table."""
import pytest

from chalicelib.core import settings
from chalicelib.domain import accounts, devices, pairing, roles, users, webhooks
from chalicelib.storage import tables
from chalicelib.surfaces import dashboard
from chalicelib.surfaces.dashboard import access
from tests.dashboard_helpers import PASSWORD, Visitor, text

ROUTES = sorted(dashboard.ROUTES, key=lambda r: (r[1], r[0]))
REFUSED = "does not allow this"


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    from argon2 import PasswordHasher
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))


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


def _path(pattern, ids):
    parts = [ids.get(pattern[0], "x") if p == "*" else p for p in pattern]
    return "/dashboard/" + "/".join(parts) if parts else "/dashboard/"


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
    assert viewer_posts == {("signout",), ("account", "alerts"), ("team", "leave")}
    secrets_or_sends = {("pair", "*"), ("try",), ("csv",)}
    for (method, pattern), need in access.NEEDS.items():
        if method == "GET" and need != access.PUBLIC:
            assert need == (roles.DEVELOPER if pattern in secrets_or_sends else roles.VIEWER)
    owners = {r[1] for r, need in access.NEEDS.items() if need == roles.OWNER}
    assert owners == {("whitelist",), ("team", "invite"), ("team", "revoke"),
                      ("team", "role"), ("team", "remove")}


@pytest.mark.parametrize("role", roles.ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r[0]} /{'/'.join(r[1])}")
def test_each_role_on_each_route(client, monkeypatch, route, role):
    monkeypatch.setenv("SMSGW_SIGNUP", "invite")
    method, pattern = route
    needed = access.NEEDS.get(route, roles.OWNER)
    acct = accounts.create_account("Team")
    users.add(acct.account_id, "boss@example.com", role="owner")
    users.add(acct.account_id, "other@example.com", role="developer")
    monkeypatch.setattr(settings, "WEBHOOK_ALLOW_PRIVATE", True)  # as on the local gateway
    _, key = accounts.create_key(acct.account_id, "shop")
    device, _ = devices.register(acct.account_id, "Phone one", sim_count=1)
    ids = {"keys": key.key_id, "phones": device.device_uid,
           "webhooks": webhooks.add(acct.account_id, "http://127.0.0.1:9/in",
                                    ["sms.sent"]).webhook_id,
           "pair": pairing.create(acct.account_id, "Phone two", "x").code}
    visitor = member(client, acct.account_id, f"{role}@example.com", role)
    path = _path(pattern, ids)
    before = snapshot()
    if method == "GET":
        answer = visitor.get(path)
    else:
        form = {"csrf": visitor.csrf(), **FORMS.get(tuple(pattern), {})}
        answer = visitor.post(path, form)
    body = text(answer)
    if needed == access.PUBLIC or roles.allows(role, needed):
        assert REFUSED not in body, (answer.status_code, body[:300])
        return
    assert answer.status_code == 403, body[:300]
    assert REFUSED in body and f"needs the {needed} role" in body
    assert f"you are a {role}" in body and "Nothing was changed" in body
    assert snapshot() == before
