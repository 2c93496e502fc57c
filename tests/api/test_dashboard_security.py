"""The dashboard's security properties, through the real handlers on moto: one account's user
can neither see nor change anything of another account on any route (by URL or by form);
requests without a session or CSRF token are refused; set-password links work once and expire;
sign-in throttling holds under concurrency; headers, cookies and escaping are right."""
import threading

import pytest

from chalicelib.core import clock, settings
from chalicelib.core.errors import RateLimited, Unauthorized
from chalicelib.domain import (
    accounts,
    devices,
    incoming,
    opt_outs,
    pairing,
    sessions,
    users,
    webhooks,
)
from chalicelib.storage.dashboard_tables import Session
from chalicelib.storage.tables import ApiKey, Device, Message
from chalicelib.surfaces import dashboard
from chalicelib.surfaces.request import HttpRequest
from tests import sending
from tests.concurrency import run_together
from tests.dashboard_helpers import PASSWORD, Visitor, owner, text


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch):
    """argon2id with small costs, so these tests do not spend minutes hashing; the production
    parameters are checked in test_passwords_are_argon2id_with_the_library_defaults."""
    from argon2 import PasswordHasher
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))
    monkeypatch.setattr(users, "_DUMMY_HASH", None)


def test_passwords_are_argon2id_with_the_library_defaults(aws_mock, monkeypatch):
    from argon2 import PasswordHasher
    monkeypatch.setattr(users, "_hasher", None)
    acct = accounts.create_account("Hash")
    owner(acct.account_id, "h@example.com")
    stored = users.get("h@example.com").password_hash
    defaults = PasswordHasher()
    assert stored.startswith(f"$argon2id$v=19$m={defaults.memory_cost},t={defaults.time_cost},"
                             f"p={defaults.parallelism}$")
    assert defaults.memory_cost >= 65536  # memory-hard: 64 MiB per guess
    assert PASSWORD not in stored
    assert users.check_signin("h@example.com", PASSWORD, "192.0.2.1").email == "h@example.com"


def make_tenant(name):
    acct = accounts.create_account(name)
    _, key = accounts.create_key(acct.account_id, f"{name} key")
    device, _ = devices.register(acct.account_id, f"{name} phone", sim_count=2)
    sent = sending.send(acct.account_id, device, "+14155550100", f"{name} secret text").message
    received, _ = incoming.store(device, "in-1", "+14155550101", f"{name} inbox text", 1,
                                 clock.now_ms())
    code = pairing.create(acct.account_id, f"{name} new phone", "x").code
    email = f"owner@{name.lower()}.example"
    owner(acct.account_id, email)
    hook = webhooks.add(acct.account_id, f"http://127.0.0.1:9/{name.lower()}-hook",
                        ["sms.sent"])
    opt_outs.add(acct.account_id, "+14155550177")
    return {"account": acct, "key": key, "device": device, "sent": sent, "received": received,
            "code": code, "email": email, "name": name, "hook": hook}


@pytest.fixture
def two(client, settings_override):
    settings_override(webhook_allow_private=True)  # as on the local gateway
    a, b = make_tenant("Alpha"), make_tenant("Bravo")
    visitor = Visitor(client)
    assert visitor.sign_in(a["email"]).status_code == 303
    return a, b, visitor


def b_state(b):
    """Everything of account B a route could change."""
    acct = accounts.get_account(b["account"].account_id)
    return {"keys": [(k.key_id, k.revoked_at) for k in accounts.list_keys(acct.account_id)],
            "whitelist": list(acct.ip_whitelist), "devices": [
                d.device_uid for d in devices.list_devices(acct.account_id)],
            "messages": sorted(m.message_id for m in Message.query(acct.account_id)),
            "sessions": sum(1 for _ in Session.by_user.query(b["email"])),
            "paces": [Device.get(d.device_uid).pace_per_hour
                      for d in devices.list_devices(acct.account_id)],
            "webhooks": [(w.webhook_id, w.url, w.state, w.secret, w.previous_secret)
                         for w in webhooks.list_all(acct.account_id)],
            "opt_outs": [e.phone_number for e in opt_outs.entries(acct.account_id)],
            "opt_out_settings": (acct.opt_out_keywords, acct.opt_out_reply)}


# Every route, with B's identifiers where it takes any: GETs must not show B, POSTs must not
# change B. ("*" parts of the route are filled from B.)
def cross_account_requests(a, b):
    bk, bd, bw = b["key"].key_id, b["device"].device_uid, b["hook"].webhook_id
    return {
        ("GET", ()): ("/dashboard/", None),
        ("GET", ("signin",)): ("/dashboard/signin", None),
        ("POST", ("signin",)): None,  # public, covered by the sign-in tests
        ("POST", ("signout",)): None,  # ends only the caller's own session(s): tested below
        ("GET", ("set-password",)): None,  # link-based: tested below
        ("POST", ("set-password",)): None,
        # sign-up, verification, forgot password: public, tests/api/test_signup.py
        ("GET", ("signup",)): ("/dashboard/signup", None),
        ("POST", ("signup",)): None,
        ("GET", ("verify",)): None,
        ("POST", ("verify",)): None,
        ("GET", ("forgot",)): ("/dashboard/forgot", None),
        ("POST", ("forgot",)): None,
        ("GET", ("keys",)): ("/dashboard/keys", None),
        ("POST", ("keys",)): ("/dashboard/keys", {"label": "made by A"}),
        ("POST", ("keys", "*", "revoke")): (f"/dashboard/keys/{bk}/revoke", {}),
        ("POST", ("keys", "*", "rotate")): (f"/dashboard/keys/{bk}/rotate", {"overlap": "0"}),
        ("GET", ("whitelist",)): ("/dashboard/whitelist", None),
        ("POST", ("whitelist",)): ("/dashboard/whitelist", {"entry": "10.0.0.1",
                                                           "understood": "1"}),
        ("GET", ("account",)): ("/dashboard/account", None),
        ("GET", ("api",)): ("/dashboard/api", None),
        ("GET", ("phones",)): ("/dashboard/phones", None),
        ("POST", ("phones",)): ("/dashboard/phones", {"name": "A's phone"}),
        ("GET", ("pair", "*")): (f"/dashboard/pair/{b['code']}", None),
        ("POST", ("pair", "*", "app-token")): (f"/dashboard/pair/{b['code']}/app-token", {}),
        ("POST", ("phones", "*", "remove")): (f"/dashboard/phones/{bd}/remove", {}),
        ("POST", ("phones", "*", "pace")): (f"/dashboard/phones/{bd}/pace", {"pace": "7"}),
        ("GET", ("phones", "*")): (f"/dashboard/phones/{bd}", None),
        ("GET", ("csv",)): ("/dashboard/csv", None),
        ("POST", ("csv",)): ("/dashboard/csv", {"file": "number,message\n+14155550100,x\n"}),
        ("POST", ("csv", "send")): ("/dashboard/csv/send", {"csv_text": "number,message\n"
                                                                 "+14155550100,x\n"}),
        ("GET", ("csv", "*")): ("/dashboard/csv/" + "0" * 32 + "?last=3", None),
        ("POST", ("account", "alerts")): ("/dashboard/account/alerts", {"alerts": "on"}),
        # A's export (its members are read: nothing of B's in them); B's name typed in A's
        # session deletes nothing (A's own deletion: tests/api/test_account_deletion.py)
        ("GET", ("account", "export")): ("/dashboard/account/export", None),
        ("GET", ("account", "delete")): ("/dashboard/account/delete", None),
        ("POST", ("account", "delete")): ("/dashboard/account/delete", {"name": b["name"]}),
        ("GET", ("unsubscribe", "*", "*")): (
            f"/dashboard/unsubscribe/{b['account'].account_id}/{'f' * 32}", None),
        ("POST", ("unsubscribe", "*", "*")): (
            f"/dashboard/unsubscribe/{b['account'].account_id}/{'f' * 32}", {}),
        ("GET", ("webhooks",)): ("/dashboard/webhooks", None),
        ("POST", ("webhooks",)): ("/dashboard/webhooks", {"url": "http://127.0.0.1:9/made-by-a",
                                                          "event:sms.failed": "1"}),
        ("GET", ("webhooks", "*")): (f"/dashboard/webhooks/{bw}", None),
        ("POST", ("webhooks", "*", "enable")): (f"/dashboard/webhooks/{bw}/enable", {}),
        ("POST", ("webhooks", "*", "disable")): (f"/dashboard/webhooks/{bw}/disable", {}),
        ("POST", ("webhooks", "*", "remove")): (f"/dashboard/webhooks/{bw}/remove", {}),
        ("POST", ("webhooks", "*", "test")): (f"/dashboard/webhooks/{bw}/test", {}),
        ("POST", ("webhooks", "*", "rotate")): (f"/dashboard/webhooks/{bw}/rotate",
                                               {"overlap": "3600"}),
        ("POST", ("webhooks", "*", "redeliver")): (f"/dashboard/webhooks/{bw}/redeliver",
                                                  {"event": "evt_test_0"}),
        ("GET", ("messages",)): (f"/dashboard/messages?phone={bd}", None),
        ("GET", ("messages", "*", "*")): (f"/dashboard/messages/outgoing/"
                                          f"{b['sent'].message_id}", None),
        ("GET", ("opt-outs",)): ("/dashboard/opt-outs", None),
        ("POST", ("opt-outs",)): ("/dashboard/opt-outs", {"number": "+14155550178"}),
        ("POST", ("opt-outs", "remove")): ("/dashboard/opt-outs/remove",
                                           {"number": "+14155550177"}),
        ("POST", ("opt-outs", "settings")): ("/dashboard/opt-outs/settings",
                                             {"own_out": "HALT", "reply": "Bye"}),
        ("GET", ("team",)): ("/dashboard/team", None),
        ("POST", ("team", "invite")): ("/dashboard/team/invite", {"email": b["email"],
                                                                   "role": "owner"}),
        ("POST", ("team", "role")): ("/dashboard/team/role", {"email": b["email"],
                                                               "role": "viewer"}),
        ("POST", ("team", "remove")): ("/dashboard/team/remove", {"email": b["email"]}),
        ("POST", ("team", "revoke")): ("/dashboard/team/revoke", {"invitation": "x"}),
        ("POST", ("team", "leave")): None,  # the caller's own membership: test_members.py
        # operators only, any account: tests/api/test_operator.py
        ("POST", ("operator", "*", "suspend")): None,
        ("POST", ("operator", "*", "resume")): None,
        ("POST", ("operator", "*", "quota")): None, ("GET", ("operator",)): None,
        ("GET", ("join",)): None,  # link-based: tests/api/test_members.py
        ("POST", ("join",)): None,
        ("GET", ("try",)): ("/dashboard/try", None),
        ("POST", ("try", "sms")): ("/dashboard/try/sms", {"phone": bd, "number": "+14155550100",
                                                          "text": "hi", "sim": "1"}),
        ("POST", ("try", "otp")): ("/dashboard/try/otp", {"phone": bd,
                                                          "number": "+14155550100"}),
        ("POST", ("try", "verify")): ("/dashboard/try/verify", {"number": "+14155550100",
                                                                "code": "123456"}),
    }


def b_secrets(b):
    return [b["name"], b["device"].device_uid, b["key"].key_id, b["code"],
            b["account"].account_id, pairing.display(b["code"]), b["hook"].webhook_id,
            b["hook"].secret, "bravo-hook"]


def test_the_cases_cover_every_route(two):
    a, b, _ = two
    assert set(cross_account_requests(a, b)) == set(dashboard.ROUTES)


def test_nothing_of_account_b_is_visible_to_a(two):
    a, b, visitor = two
    pages = [req[0] for (method, _), req in cross_account_requests(a, b).items()
             if method == "GET" and req] + [
        f"/dashboard/messages/incoming/{b['received']}",
        f"/dashboard/messages?type=incoming&phone={b['device'].device_uid}",
        f"/dashboard/pair/{pairing.display(b['code'])}"]
    for path in pages:
        response = visitor.get(path)
        assert response.status_code in (200, 303, 404), path
        body = text(response)
        for secret in b_secrets(b):
            assert secret not in body, (path, secret)
    # A's own things are there (the pages are not simply empty).
    assert a["sent"].body in text(visitor.get("/dashboard/messages"))
    assert visitor.get(f"/dashboard/messages/outgoing/{b['sent'].message_id}"
                       ).status_code == 404
    assert visitor.get(f"/dashboard/pair/{b['code']}").status_code == 404


def test_nothing_of_account_b_can_be_changed_by_a(two):
    a, b, visitor = two
    before = b_state(b)
    for route, req in cross_account_requests(a, b).items():
        if route[0] == "POST" and req:
            path, form = req
            response = visitor.submit(path, form)
            # A's own errors answer their class's status, as every style answers them: 403
            # (invitations off), 422 (a wrong OTP), 503 (A's CSV preview: no device of A
            # running); never a 500
            status = response.status_code
            assert status in (200, 303, 503) or 400 <= status < 500, (route, status)
            for secret in b_secrets(b):
                assert secret not in text(response), (route, secret)
    assert b_state(b) == before
    # ... while the same forms did change A where they were A's to change.
    assert any(k.label == "made by A" for k in accounts.list_keys(a["account"].account_id))
    assert accounts.get_account(a["account"].account_id).ip_whitelist == ["10.0.0.1/32"]
    made = [w for w in webhooks.list_all(a["account"].account_id) if w.url.endswith("made-by-a")]
    assert len(made) == 1 and made[0].events == ["sms.failed"]


def all_posts(a, b):
    """Every POST that needs a session or the signed-out form token (not the unsubscribe link's,
    whose proof is the token in its path)."""
    return [req for route, req in cross_account_requests(a, b).items()
            if route[0] == "POST" and req and route[1][0] != "unsubscribe"] + [
        ("/dashboard/signout", {"everywhere": "1"})]


def test_without_a_session_every_page_is_refused(client, two):
    a, b, _ = two
    stranger = Visitor(client)
    before = (b_state(a), b_state(b))
    for route, req in cross_account_requests(a, b).items():
        if route == ("GET", ("unsubscribe", "*", "*")):  # public: the mail's token is proof
            assert stranger.get(req[0]).status_code == 404  # a wrong token changes nothing
            continue
        if route == ("POST", ("unsubscribe", "*", "*")):
            assert stranger.post(req[0], req[1]).status_code == 404
            continue
        if route[0] == "GET" and req and route[1] in (("signup",), ("forgot",)):
            assert stranger.get(req[0]).status_code in (200, 403)  # public (test_signup.py)
            continue
        if route[0] == "GET" and req and route[1] != ("signin",):
            response = stranger.get(req[0])
            assert response.status_code == 303 and response.headers["Location"].endswith(
                "/dashboard/signin"), req[0]
    stranger.get("/dashboard/signin")  # has the signed-out form's token, still no session
    for path, form in all_posts(a, b):
        response = stranger.post(path, {"csrf": stranger.cookies["smsgw_pre"], **form})
        assert response.status_code == 403, path
    forged = {"smsgw_session": "forged-" + "x" * 40}
    stranger.cookies.update(forged)
    assert stranger.get("/dashboard/keys").status_code == 303
    assert (b_state(a), b_state(b)) == before


def test_without_the_csrf_token_every_form_is_refused(client, two):
    a, b, visitor = two
    other = Visitor(client)
    other.sign_in(b["email"])
    foreign_token = other.csrf()  # a real token, of another session
    before = (b_state(a), b_state(b))
    for path, form in all_posts(a, b):
        for token in (None, "", "wrong", foreign_token):
            data = dict(form) if token is None else {"csrf": token, **form}
            response = visitor.post(path, data)
            assert response.status_code == 403, (path, token)
            assert "security token" in text(response)
    assert (b_state(a), b_state(b)) == before
    assert visitor.get("/dashboard/keys").status_code == 200  # still signed in


def test_a_form_from_another_origin_is_refused(client, two):
    a, _, visitor = two
    token = visitor.csrf()
    response = visitor.post("/dashboard/keys", {"csrf": token, "label": "x"},
                            headers={"origin": "https://evil.example"})
    assert response.status_code == 403
    assert [k.label for k in accounts.list_keys(a["account"].account_id)] == ["Alpha key"]


def test_signed_out_forms_need_their_double_submit_token(client, aws_mock):
    acct = accounts.create_account("Solo")
    owner(acct.account_id, "solo@example.com")
    visitor = Visitor(client)
    visitor.get("/dashboard/signin")
    for token in (None, "wrong"):
        data = {"email": "solo@example.com", "password": PASSWORD}
        if token is not None:
            data["csrf"] = token
        assert visitor.post("/dashboard/signin", data).status_code == 403
    assert "smsgw_session" not in visitor.cookies


def test_a_used_or_expired_set_password_link_is_refused(client, aws_mock):
    acct = accounts.create_account("Links")
    _, token = users.add(acct.account_id, "new@example.com")
    visitor = Visitor(client)
    page = visitor.get(f"/dashboard/set-password?token={token}")
    assert page.status_code == 200 and "new@example.com" in text(page)
    pre = visitor.cookies["smsgw_pre"]
    form = {"csrf": pre, "token": token, "password": PASSWORD, "confirm": PASSWORD}
    short = visitor.post("/dashboard/set-password", {**form, "password": "short",
                                                      "confirm": "short"})
    assert short.status_code == 400 and "at least 12" in text(short)
    assert visitor.post("/dashboard/set-password", form).status_code == 303
    assert visitor.get(f"/dashboard/set-password?token={token}").status_code == 410
    again = visitor.post("/dashboard/set-password", {**form, "password": "x" * 20,
                                                      "confirm": "x" * 20})
    assert again.status_code == 410 and "used already" in text(again)
    assert visitor.sign_in("new@example.com", "x" * 20).status_code == 401
    assert visitor.sign_in("new@example.com").status_code == 303

    later = users.new_link(users.get("new@example.com"))
    clock.advance(users.LINK_HOURS * 3600 + 1)
    assert visitor.get(f"/dashboard/set-password?token={later}").status_code == 410
    expired = visitor.post("/dashboard/set-password", {**form, "token": later})
    assert expired.status_code == 410 and "expired" in text(expired)
    assert visitor.get("/dashboard/set-password?token=nonsense").status_code == 410


def test_setting_a_password_signs_out_other_sessions(client, aws_mock):
    acct = accounts.create_account("Reset")
    owner(acct.account_id, "r@example.com")
    visitor = Visitor(client)
    visitor.sign_in("r@example.com")
    users.set_password(users.new_link(users.get("r@example.com")), "another password 1",
                       "another password 1")
    assert visitor.get("/dashboard/keys").status_code == 303


def test_signin_is_throttled_per_email(client, aws_mock):
    acct = accounts.create_account("Throttle")
    owner(acct.account_id, "t@example.com")
    visitor = Visitor(client)
    for _ in range(users.SIGNIN_PER_EMAIL):
        assert visitor.sign_in("t@example.com", "wrong password").status_code == 401
    blocked = visitor.sign_in("t@example.com")  # even the right password now
    assert blocked.status_code == 429 and "Too many sign-in attempts" in text(blocked)
    clock.advance(users.SIGNIN_WINDOW_SECONDS)
    assert visitor.sign_in("t@example.com").status_code == 303


def test_signin_is_throttled_per_address(aws_mock):
    for n in range(users.SIGNIN_PER_IP):
        with pytest.raises(Unauthorized):
            users.check_signin(f"nobody{n}@example.com", "guess", "198.51.100.7")
    with pytest.raises(RateLimited):
        users.check_signin("another@example.com", "guess", "198.51.100.7")
    with pytest.raises(Unauthorized):  # another address is not affected
        users.check_signin("another@example.com", "guess", "198.51.100.8")


def test_signin_throttle_holds_under_concurrent_guesses(aws_mock, atomic_moto):
    """Each guess takes its slot with one conditional write before any hash is checked, so
    however the 16 interleave, exactly the cap get checked."""
    acct = accounts.create_account("Race")
    owner(acct.account_id, "race@example.com")
    outcomes, lock, start = [], threading.Lock(), threading.Barrier(16)

    def guess(n):
        start.wait()
        try:
            users.check_signin("race@example.com", f"guess {n}", f"203.0.113.{n}")
            result = "in"
        except RateLimited:
            result = "throttled"
        except Unauthorized:
            result = "checked"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(16)]
    run_together(threads)
    assert outcomes.count("checked") == users.SIGNIN_PER_EMAIL
    assert outcomes.count("throttled") == 16 - users.SIGNIN_PER_EMAIL


def test_cookies_headers_and_csp_on_every_page(client, two, settings_override):
    a, b, visitor = two
    for route, req in cross_account_requests(a, b).items():
        if route[0] == "GET" and req:
            response = visitor.get(req[0])
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert "unsafe-inline" not in csp and "http" not in csp
            assert response.headers["X-Frame-Options"] == "DENY"
            assert "<script>" not in text(response) and " style=" not in text(response)
    for static in ("app.css", "app.js"):
        assert visitor.get(f"/dashboard/static/{static}").status_code == 200
    assert visitor.get("/dashboard/static/..%2Fweb.py").status_code == 404
    fresh = Visitor(client)
    fresh.get("/dashboard/signin")
    token = fresh.cookies["smsgw_pre"]
    answer = fresh.post("/dashboard/signin", {"csrf": token, "email": a["email"],
                                              "password": PASSWORD})
    cookies = answer.headers["Set-Cookie"]
    cookies = [cookies] if isinstance(cookies, str) else cookies
    assert {c.split("=")[0] for c in cookies} == {"smsgw_session", "smsgw_browser"}
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    settings_override(public_url="https://sms.example.com")
    secure = Visitor(client, origin="https://sms.example.com")
    secure.get("/dashboard/signin")
    answer = secure.post("/dashboard/signin", {"csrf": secure.cookies["smsgw_pre"],
                                               "email": a["email"], "password": PASSWORD})
    assert all("; Secure" in c for c in answer.headers["Set-Cookie"])
    assert answer.headers["Strict-Transport-Security"]


def test_user_controlled_text_is_escaped(two):
    a, _, visitor = two
    evil = '<img src=x onerror="alert(1)">'
    account_id = a["account"].account_id
    device, _ = devices.register(account_id, evil)
    accounts.create_key(account_id, evil)
    sent = sending.send(account_id, device, "+14155550100", evil).message
    incoming.store(device, "evil", evil, evil, 1, clock.now_ms())
    hook = webhooks.add(account_id, "http://127.0.0.1:9/in", None, evil)
    for path in ("/dashboard/", "/dashboard/phones", "/dashboard/keys", "/dashboard/messages",
                 "/dashboard/webhooks", f"/dashboard/webhooks/{hook.webhook_id}",
                 "/dashboard/messages?type=incoming", "/dashboard/try",
                 f"/dashboard/messages/outgoing/{sent.message_id}"):
        body = text(visitor.get(path))
        assert "<img src=x" not in body, path
        assert "&lt;img src=x onerror=" in body, path


def test_sign_out_and_sign_out_everywhere(client, two):
    a, _, visitor = two
    second = Visitor(client)
    second.sign_in(a["email"])
    third = Visitor(client)
    third.sign_in(a["email"])
    visitor.submit("/dashboard/signout")
    assert visitor.get("/dashboard/keys").status_code == 303
    assert second.get("/dashboard/keys").status_code == 200
    second.submit("/dashboard/signout", {"everywhere": "1"})
    assert third.get("/dashboard/keys").status_code == 303
    assert sum(1 for _ in Session.by_user.query(a["email"])) == 0


def test_an_expired_session_is_refused(two):
    _, _, visitor = two
    clock.advance(sessions.LIFETIME_SECONDS + 1)
    assert visitor.get("/dashboard/keys").status_code == 303


def test_removing_a_user_ends_their_sessions_and_sign_in(two):
    a, _, visitor = two
    users.remove(a["account"].account_id, a["email"])
    assert visitor.get("/dashboard/").status_code == 303
    assert visitor.sign_in(a["email"]).status_code == 401


def test_unknown_pages_and_bad_forms_answer_cleanly(two):
    _, _, visitor = two
    assert visitor.get("/dashboard/nope/nope/nope").status_code == 404
    assert visitor.get("/dashboard/messages/outgoing/abc").status_code == 404
    assert visitor.get("/dashboard/messages?since=yesterday").status_code == 400
    assert visitor.get("/dashboard/messages?before=x").status_code == 400
    response = visitor.client.http.post("/dashboard/keys", body=b"\xff\xfe",
                                        headers=visitor._headers({"content-type":
                                                                  "text/plain"}))
    assert response.status_code == 400
    assert visitor.submit("/dashboard/keys", {"label": ""}).status_code == 400
    assert visitor.submit("/dashboard/keys/key_nothere/revoke").status_code == 404
    assert visitor.submit("/dashboard/whitelist", {"entry": "10.0.0.0/33",
                                                   "understood": "1"}).status_code == 400
    assert visitor.submit("/dashboard/whitelist", {"entry": "0.0.0.0/0",
                                                   "understood": "1"}).status_code == 400
    assert visitor.submit("/dashboard/try/sms", {"phone": "", "number": "1"}).status_code == 400


def test_device_rows_unchanged_by_cross_account_remove(two):
    _, b, visitor = two
    visitor.submit(f"/dashboard/phones/{b['device'].device_uid}/remove")
    assert Device.get(b["device"].device_uid).account_id == b["account"].account_id
    assert ApiKey.count() >= 2


def page(part, context, headers=None):
    """GET /dashboard/<part> as app.py hands it over, from 1.2.3.4."""
    return dashboard.handle(HttpRequest.of("GET", "/dashboard/{page}", path_params={"page": part},
                                           headers=headers, source_ip="1.2.3.4",
                                           context=context))


def test_links_follow_the_stage_and_never_the_host_header(aws_mock):
    on_aws = {"domainName": "abc123.execute-api.eu-west-1.amazonaws.com", "stage": "api"}
    status, headers, _ = page("keys", on_aws)
    assert status == 303 and headers["Location"] == "/api/dashboard/signin"
    _, headers, body = page("signin", on_aws)
    assert 'action="/api/dashboard/signin"' in body
    assert headers["Set-Cookie"].endswith("; Secure; Max-Age=3600")  # https on API Gateway
    status, headers, _ = page("keys", {}, {"Host": "evil.example//x"})
    assert headers["Location"] == "/dashboard/signin"


def test_links_on_the_http_apis_default_stage_have_no_stage_prefix(aws_mock):
    """The HTTP API (the default front door) serves its `$default` stage at the root."""
    on_http_api = {"domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
                   "stage": "$default"}
    status, headers, _ = page("keys", on_http_api)
    assert status == 303 and headers["Location"] == "/dashboard/signin"
    _, headers, body = page("signin", on_http_api)
    assert 'action="/dashboard/signin"' in body and "$default" not in body
    assert headers["Set-Cookie"].endswith("; Secure; Max-Age=3600")


def test_the_pace_form_sets_resets_and_refuses_bad_values(two):
    a, _, visitor = two
    uid = a["device"].device_uid
    for form, words in (({"pace": "0"}, "0 or less"), ({"pace": "-5"}, "0 or less"),
                        ({"pace": "fast"}, "whole number"),
                        ({"pace": str(settings.current().max_pace_per_hour + 1)}, "1-36,000"),
                        ({"pace": ""}, "Give a pace"), ({"window": "0"}, "Invalid window"),
                        ({"pace": "10", "window": "many"}, "Invalid window")):
        response = visitor.submit(f"/dashboard/phones/{uid}/pace", form)
        assert response.status_code == 400 and words in text(response), form
        stored = Device.get(uid)
        assert (stored.pace_per_hour, stored.pace_window) == (None, None), form
    assert visitor.submit(f"/dashboard/phones/{uid}/pace", {"pace": "120"}).status_code == 303
    assert Device.get(uid).pace_per_hour == 120
    assert "120 parts/h per SIM" in text(visitor.get("/dashboard/phones"))
    assert visitor.submit(f"/dashboard/phones/{uid}/pace",
                          {"pace": "", "window": "20"}).status_code == 303
    stored = Device.get(uid)
    assert (stored.pace_per_hour, stored.pace_window) == (120, 20)  # a blank field keeps
    assert "20 parts/30 min per phone" in text(visitor.get("/dashboard/phones"))
    assert visitor.submit(f"/dashboard/phones/{uid}/pace",
                          {"pace": "Default", "window": "none"}).status_code == 303
    stored = Device.get(uid)
    assert (stored.pace_per_hour, stored.pace_window) == (None, 0)
    assert visitor.submit("/dashboard/phones/0123456789abcdef/pace",
                          {"pace": "5"}).status_code == 404


def test_the_webhook_pages_manage_the_accounts_endpoints(two, settings_override):
    a, _, visitor = two
    webhooks.ensure_queue()  # made by the stage's template / the local gateway
    account_id = a["account"].account_id
    added = visitor.submit("/dashboard/webhooks", {"url": "http://127.0.0.1:9/in",
                                                   "event:sms.sent": "1",
                                                   "event:sms.received": "1"})
    made = [w for w in webhooks.list_all(account_id) if w.url.endswith("/in")][0]
    assert added.status_code == 200 and made.secret in text(added)
    assert made.events == ["sms.received", "sms.sent"]
    listing = text(visitor.get("/dashboard/webhooks"))
    assert made.webhook_id in listing and made.secret not in listing  # shown once
    base = f"/dashboard/webhooks/{made.webhook_id}"
    assert visitor.submit(f"{base}/disable").status_code == 303
    assert webhooks.status(webhooks.get(account_id, made.webhook_id)) == "disabled"
    assert "Disabled by the owner." in text(visitor.get("/dashboard/webhooks"))
    assert visitor.submit(f"{base}/enable").status_code == 303
    assert webhooks.status(webhooks.get(account_id, made.webhook_id)) == "enabled"
    rotated = visitor.submit(f"{base}/rotate", {"overlap": "3600"})
    now = webhooks.get(account_id, made.webhook_id)
    assert now.secret != made.secret and now.previous_secret == made.secret
    assert now.secret in text(rotated) and "also signs until" in text(rotated)
    bad = visitor.submit(f"{base}/rotate", {"overlap": "forever"})
    assert bad.status_code == 400 and "Invalid overlap" in text(bad)
    assert webhooks.get(account_id, made.webhook_id).secret == now.secret
    tested = visitor.submit(f"{base}/test")
    assert tested.status_code == 303 and "sent=evt_test_" in tested.headers["Location"]
    missing = visitor.submit(f"{base}/redeliver", {"event": "evt_nothere"})
    assert missing.status_code == 404 and "No delivery of event evt_nothere" in text(missing)
    assert visitor.get(f"{base}").status_code == 200
    assert visitor.submit(f"{base}/remove").status_code == 303
    assert made.webhook_id not in [w.webhook_id for w in webhooks.list_all(account_id)]
    settings_override(webhook_allow_private=False)  # as on an AWS stage
    refused = visitor.submit("/dashboard/webhooks", {"url": "http://127.0.0.1:9/x"})
    assert refused.status_code == 400 and "must be https" in text(refused)
    assert [w.url for w in webhooks.list_all(account_id)] == [a["hook"].url]
    bad_event = visitor.submit("/dashboard/webhooks", {"url": "not a url"})
    assert bad_event.status_code == 400 and "Invalid url" in text(bad_event)
