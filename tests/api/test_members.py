"""Team members (domain/members.py, dashboard/team_pages.py) through the real handlers on
moto: invitations mailed as .eml files, joining once under real concurrency, expiry, an email
registered elsewhere, throttles, the last-owner rule under racing owners, and removal or a role
change ending sessions at once."""
import re

import pytest

from chalicelib.core import clock
from chalicelib.core.errors import Conflict, Forbidden, RateLimited, Unauthorized
from chalicelib.domain import accounts, members, roles, users
from chalicelib.storage.dashboard_tables import PasswordLink, Session, User
from tests.concurrency import race
from tests.dashboard_helpers import PASSWORD, Visitor, text

DASHBOARD = "http://localhost/dashboard"


pytestmark = pytest.mark.usefixtures("quick_hashes")


@pytest.fixture
def team(aws_mock, settings_override):
    settings_override(signup="invite")
    acct = accounts.create_account("Team")
    add(acct.account_id, "boss@example.com", "owner")
    return acct.account_id


def add(account_id, address, role):
    _, token = users.add(account_id, address, role=role)
    users.set_password(token, PASSWORD, PASSWORD)


def signed_in(client, address):
    visitor = Visitor(client)
    assert visitor.sign_in(address).status_code == 303
    return visitor


def join_token(message):
    return re.search(r"http://localhost/dashboard/join\?token=([\w-]+)", message.get_content())[1]


def invite(account_id, address, role="viewer"):
    return members.invite(account_id, "boss@example.com", address, role,
                          dashboard_url=DASHBOARD)


def test_an_owner_invites_from_the_team_page_and_the_invitee_joins_with_the_role(
        client, team, mailbox):
    boss = signed_in(client, "boss@example.com")
    answer = boss.submit("/dashboard/team/invite", {"email": "Ann@Example.com",
                                                    "role": "developer"}, "/dashboard/team")
    assert answer.status_code == 303
    page = text(boss.get(answer.headers["Location"]))
    assert "Invitation mailed to ann@example.com" in page and "Pending invitations" in page
    [mail] = mailbox()
    assert mail["To"] == "ann@example.com" and "Team" in mail["Subject"]
    body = mail.get_content()
    assert "boss@example.com invites you" in body and "as developer" in body
    assert "within 7 days" in body and not mail.is_multipart()
    ann = Visitor(client)
    token = join_token(mail)
    form = ann.get(f"/dashboard/join?token={token}")
    assert form.status_code == 200 and "Join “Team”" in text(form)
    joined = ann.post("/dashboard/join", {"csrf": ann.cookies["smsgw_pre"], "token": token,
                                          "password": PASSWORD, "confirm": PASSWORD})
    assert joined.status_code == 303 and "smsgw_session" in ann.cookies
    assert roles.of(User.get("ann@example.com")) == "developer"
    assert ann.get("/dashboard/team").status_code == 200
    assert "Pending invitations" not in text(boss.get("/dashboard/team"))
    again = Visitor(client).get(f"/dashboard/join?token={token}")
    assert again.status_code == 410 and "used already" in text(again)


def test_invitations_are_off_when_signup_is_closed(client, team, mailbox, settings_override):
    settings_override(signup="closed")
    with pytest.raises(Forbidden, match="Invitations are off"):
        invite(team, "ann@example.com")
    boss = signed_in(client, "boss@example.com")
    assert "Invitations are off" in text(boss.get("/dashboard/team"))
    assert mailbox() == [] and [k for k in PasswordLink.scan() if k.purpose == "invite"] == []


def test_an_invitation_expires_after_seven_days(team, mailbox):
    invite(team, "late@example.com")
    token = join_token(mailbox()[0])
    clock.freeze()
    clock.advance(members.LINK_DAYS * 86400 + 1)
    with pytest.raises(Unauthorized, match="expired"):
        members.join(token, PASSWORD, PASSWORD)
    assert [u.email for u in User.scan()] == ["boss@example.com"]


def test_racing_clicks_on_one_invitation_make_one_member(team, mailbox, atomic_moto):
    invite(team, "race@example.com", "developer")
    token = join_token(mailbox()[0])
    outcomes = race(8, lambda: members.join(token, PASSWORD, PASSWORD))
    assert sum(isinstance(o, User) for o in outcomes) == 1, outcomes
    assert all(isinstance(o, (User, Unauthorized)) for o in outcomes), outcomes
    assert sorted(u.email for u in User.scan()) == ["boss@example.com", "race@example.com"]


def test_an_email_of_another_account_is_told_and_the_inviter_learns_nothing(
        client, team, mailbox):
    other = accounts.create_account("Elsewhere")
    add(other.account_id, "taken@example.com", "owner")
    boss = signed_in(client, "boss@example.com")
    answers = [boss.submit("/dashboard/team/invite", {"email": address, "role": "viewer"},
                           "/dashboard/team") for address in ("taken@example.com",
                                                              "free@example.com")]
    assert [a.status_code for a in answers] == [303, 303]
    assert [a.headers["Location"].replace("taken", "X").replace("free", "X")
            for a in answers] == [answers[0].headers["Location"].replace("taken", "X")] * 2
    taken, free = mailbox()
    assert taken.get_content().replace("taken", "X") == free.get_content().replace(
        "free", "X").replace(join_token(free), join_token(taken))
    page = Visitor(client).get(f"/dashboard/join?token={join_token(taken)}")
    assert page.status_code == 410 and "one account only" in text(page)
    with pytest.raises(Conflict, match="one account only"):
        members.join(join_token(taken), PASSWORD, PASSWORD)
    assert User.get("taken@example.com").account_id == other.account_id


def test_a_member_is_not_invited_twice(team, mailbox):
    with pytest.raises(Conflict, match="member of this account already"):
        invite(team, "boss@example.com")
    assert mailbox() == []


def test_invitations_are_throttled_per_email_and_per_account(team, mailbox):
    for _ in range(members.PER_EMAIL):
        invite(team, "target@example.com")
    with pytest.raises(RateLimited):
        invite(team, "target@example.com")
    for n in range(members.PER_ACCOUNT - members.PER_EMAIL):
        invite(team, f"person{n}@example.com")
    with pytest.raises(RateLimited):
        invite(team, "one-more@example.com")
    assert len(mailbox()) == members.PER_ACCOUNT


def test_a_withdrawn_invitation_no_longer_works(client, team, mailbox):
    invite(team, "ann@example.com")
    [pending] = members.pending_invitations(team)
    boss = signed_in(client, "boss@example.com")
    assert boss.submit("/dashboard/team/revoke", {"invitation": pending.token_hash},
                       "/dashboard/team").status_code == 303
    with pytest.raises(Unauthorized, match="not valid"):
        members.join(join_token(mailbox()[0]), PASSWORD, PASSWORD)


def test_the_last_owner_can_neither_leave_nor_be_demoted(client, team):
    add(team, "dev@example.com", "developer")
    with pytest.raises(Conflict, match="last owner"):
        members.set_role(team, "boss@example.com", "developer")
    with pytest.raises(Conflict, match="last owner"):
        members.remove(team, "boss@example.com")
    boss = signed_in(client, "boss@example.com")
    left = boss.submit("/dashboard/team/leave", {}, "/dashboard/team")
    assert left.status_code == 409 and "last owner" in text(left)
    assert roles.of(User.get("boss@example.com")) == "owner"
    members.set_role(team, "dev@example.com", "owner")
    members.set_role(team, "boss@example.com", "viewer")
    assert roles.of(User.get("boss@example.com")) == "viewer"


def test_two_owners_demoting_each_other_at_once_leave_one_owner(team, atomic_moto):
    """Each transaction writes the item the other checks: exactly one commits, each round."""
    previous = ["boss@example.com"]
    for round_ in range(5):
        pair = (f"a{round_}@example.com", f"b{round_}@example.com")
        for address in pair:
            add(team, address, "owner")
        for address in previous:
            members.remove(team, address)
        outcomes = race(2, lambda n, pair=pair: members.set_role(team, pair[n], "viewer"),
                         numbered=True)
        assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "User"], outcomes
        assert len([u for u in users.list_users(team) if roles.of(u) == "owner"]) == 1
        previous = list(pair)


def test_removal_ends_the_members_sessions_at_once(client, team):
    add(team, "ann@example.com", "developer")
    ann = signed_in(client, "ann@example.com")
    other_browser = signed_in(client, "ann@example.com")
    assert ann.get("/dashboard/keys").status_code == 200
    boss = signed_in(client, "boss@example.com")
    assert boss.submit("/dashboard/team/remove", {"email": "ann@example.com"},
                       "/dashboard/team").status_code == 303
    assert [s for s in Session.scan() if s.email == "ann@example.com"] == []
    for browser in (ann, other_browser):
        assert browser.get("/dashboard/keys").headers["Location"].endswith("/signin")
    with pytest.raises(Unauthorized):
        users.check_signin("ann@example.com", PASSWORD, "192.0.2.9")


def test_a_role_change_ends_sessions_and_the_next_one_has_the_new_role(client, team):
    add(team, "ann@example.com", "viewer")
    ann = signed_in(client, "ann@example.com")
    assert ann.submit("/dashboard/keys", {"label": "x"}, "/dashboard/keys").status_code == 403
    members.set_role(team, "ann@example.com", "developer")
    assert ann.get("/dashboard/keys").headers["Location"].endswith("/signin")
    ann = signed_in(client, "ann@example.com")
    made = ann.submit("/dashboard/keys", {"label": "shop"}, "/dashboard/keys")
    assert made.status_code == 200 and "New key" in text(made)


def test_a_member_leaves(client, team):
    add(team, "ann@example.com", "viewer")
    ann = signed_in(client, "ann@example.com")
    left = ann.submit("/dashboard/team/leave", {}, "/dashboard/team")
    assert left.status_code == 303 and left.headers["Location"].endswith("done=left")
    assert [u.email for u in users.list_users(team)] == ["boss@example.com"]
    assert ann.get("/dashboard/").headers["Location"].endswith("/signin")


def test_users_without_a_role_are_owners_and_the_cli_takes_a_role(team):
    legacy = User(email="old@example.com", account_id=team, created_at=1)
    legacy.save()
    assert roles.of(User.get("old@example.com")) == "owner"
    assert roles.of(User(email="odd@example.com", role="operator")) == "viewer"
    from click.testing import CliRunner

    import cli
    result = CliRunner().invoke(cli.main, ["user", "add", team, "dev2@example.com", "--role",
                                           "developer"])
    assert result.exit_code == 0, result.output
    assert roles.of(User.get("dev2@example.com")) == "developer"
    bad = CliRunner().invoke(cli.main, ["user", "add", team, "x@example.com", "--role", "boss"])
    assert bad.exit_code != 0 and "boss" in bad.output


def test_in_invite_mode_signup_is_refused_and_a_reset_mail_says_invitations(
        client, team, mailbox):
    page = Visitor(client).get("/dashboard/signup")
    assert page.status_code == 403 and "by invitation only" in text(page)
    from chalicelib.domain import password_reset
    password_reset.request_reset("nobody@example.com", "192.0.2.1", DASHBOARD)
    [mail] = mailbox()
    assert "when an account's owner invites them" in mail.get_content()

