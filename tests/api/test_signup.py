"""Sign-up and password reset by mail (domain/signup.py, domain/password_reset.py), through the
real dashboard handlers on moto: the stage setting, verification before anything exists, the
same answers and the same work for known and unknown emails, throttles per address (/64) and
per email, links that expire and work once under real concurrency, and sessions ended."""
import re

import pytest

from chalicelib.core import clock, settings
from chalicelib.core.errors import Forbidden, RateLimited, Unauthorized
from chalicelib.domain import (
    account_mails,
    accounts,
    password_reset,
    sessions,
    signup,
    users,
)
from chalicelib.storage.dashboard_tables import PasswordLink, Session, User
from chalicelib.storage.tables import Account
from tests.concurrency import race
from tests.dashboard_helpers import PASSWORD, Visitor, owner, text

DASHBOARD = "http://localhost/dashboard"


pytestmark = pytest.mark.usefixtures("quick_hashes")


@pytest.fixture
def open_signup(settings_override, aws_mock):
    settings_override(signup="open")


def link_in(message, page):
    return re.search(rf"http://localhost/dashboard/{page}\?token=([\w-]+)",
                     message.get_content())[1]


def sign_up(visitor, address, name="Shop", password=PASSWORD):
    token = visitor.csrf("/dashboard/signup")
    return visitor.post("/dashboard/signup", {"csrf": token, "email": address,
                                              "account_name": name, "password": password,
                                              "confirm": password})


def forgot(visitor, address):
    token = visitor.csrf("/dashboard/forgot")
    return visitor.post("/dashboard/forgot", {"csrf": token, "email": address})


# --- the stage setting ----------------------------------------------------------------------

@pytest.mark.parametrize("mode", [None, "closed", "invite"])
def test_signup_is_closed_unless_the_stage_opens_it(client, mailbox, settings_override, mode):
    # None: the default; a mode not known stops the start (tests/unit/test_settings.py)
    settings_override(signup=mode or settings.Settings.from_environ({}).signup)
    visitor = Visitor(client)
    signin = text(visitor.get("/dashboard/signin"))
    assert "Create an account" not in signin and "Forgot password?" in signin
    page = visitor.get("/dashboard/signup")
    assert page.status_code == 403
    assert ("by invitation only" if mode == "invite" else "does not take sign-ups") in text(page)
    answer = visitor.post("/dashboard/signup", {"csrf": visitor.cookies["smsgw_pre"],
                                                "email": "a@example.com", "account_name": "A",
                                                "password": PASSWORD, "confirm": PASSWORD})
    assert answer.status_code == 403
    with pytest.raises(Forbidden):
        signup.sign_up("a@example.com", PASSWORD, PASSWORD, "A", "192.0.2.1", DASHBOARD)
    assert mailbox() == [] and list(PasswordLink.scan()) == []


def test_the_local_gateway_opens_signup_by_default():
    import local_gateway
    assert local_gateway.LOCAL_DEFAULTS["SMSGW_SIGNUP"] == "open"


# --- sign-up, then verification -------------------------------------------------------------

def test_nothing_exists_before_the_email_is_verified_then_verify_creates_both(
        client, open_signup, mailbox):
    visitor = Visitor(client)
    assert "Create an account" in text(visitor.get("/dashboard/signin"))
    answer = sign_up(visitor, "New@Example.com", name="Corner shop")
    assert answer.status_code == 200 and "Check your mail" in text(answer)
    [mail] = mailbox()
    assert mail["To"] == "new@example.com" and "Verify your email" in mail["Subject"]
    assert "Corner shop" in mail.get_content()
    # Before the link is followed: no user, no account, so no sign-in, no key, no send.
    assert list(User.scan()) == [] and list(Account.scan()) == []
    assert visitor.sign_in("new@example.com").status_code == 401
    assert visitor.get("/dashboard/keys").status_code == 303  # to sign-in
    token = link_in(mail, "verify")
    page = visitor.get(f"/dashboard/verify?token={token}")  # a mail scanner's GET: no change
    assert page.status_code == 200 and "Corner shop" in text(page)
    assert list(Account.scan()) == []
    done = visitor.post("/dashboard/verify", {"csrf": visitor.cookies["smsgw_pre"],
                                              "token": token})
    assert done.status_code == 303 and "done=email-verified" in done.headers["Location"]
    [account] = Account.scan()
    assert account.name == "Corner shop"
    assert User.get("new@example.com").account_id == account.account_id
    keys = visitor.submit("/dashboard/keys", {"label": "shop"}, page="/dashboard/keys")
    assert keys.status_code == 200 and len(accounts.list_keys(account.account_id)) == 1
    again = visitor.post("/dashboard/verify", {"csrf": visitor.cookies["smsgw_pre"],
                                               "token": token})
    assert again.status_code == 410 and len(list(Account.scan())) == 1
    signed_out = Visitor(client)
    assert signed_out.sign_in("new@example.com").status_code == 303


def test_bad_signup_input_gets_a_clear_error_and_writes_nothing(client, open_signup, mailbox):
    visitor = Visitor(client)
    for address, name, password, confirm, words in [
            ("not-an-email", "A", PASSWORD, PASSWORD, "Not an email address"),
            ("a@example.com", "", PASSWORD, PASSWORD, "Account name must be"),
            ("a@example.com", "A", "short", "short", "at least 12"),
            ("a@example.com", "A", PASSWORD, PASSWORD + "x", "passwords differ")]:
        token = visitor.csrf("/dashboard/signup")
        answer = visitor.post("/dashboard/signup", {
            "csrf": token, "email": address, "account_name": name, "password": password,
            "confirm": confirm})
        assert answer.status_code == 400 and words in text(answer), words
    assert mailbox() == [] and list(PasswordLink.scan()) == []


def test_a_verification_link_expires_after_a_day(open_signup, mailbox):
    signup.sign_up("late@example.com", PASSWORD, PASSWORD, "Late", "192.0.2.1", DASHBOARD)
    token = link_in(mailbox()[0], "verify")
    clock.freeze()
    clock.advance(signup.LINK_HOURS * 3600 + 1)
    with pytest.raises(Unauthorized, match="expired"):
        signup.verify(token)
    assert list(Account.scan()) == [] and list(User.scan()) == []


def test_two_clicks_racing_on_one_verification_link_make_one_account(
        open_signup, mailbox, atomic_moto):
    signup.sign_up("race@example.com", PASSWORD, PASSWORD, "Race", "192.0.2.1", DASHBOARD)
    token = link_in(mailbox()[0], "verify")
    outcomes = race(8, lambda: signup.verify(token))
    assert sum(isinstance(o, User) for o in outcomes) == 1, outcomes
    assert all(isinstance(o, (User, Unauthorized)) for o in outcomes), outcomes
    assert len(list(Account.scan())) == 1 and len(list(User.scan())) == 1


def test_two_pending_signups_of_one_email_make_one_account(open_signup, mailbox):
    for name in ("First", "Second"):
        signup.sign_up("twice@example.com", PASSWORD, PASSWORD, name, "192.0.2.1", DASHBOARD)
    first, second = (link_in(m, "verify") for m in mailbox())
    signup.verify(second)
    with pytest.raises(Unauthorized, match="account with this email already"):
        signup.verify(first)
    assert [a.name for a in Account.scan()] == ["Second"]


# --- never telling which emails exist ------------------------------------------------------

def _shape(body: str) -> str:
    """An answer with the parts that always differ taken out (the typed email, form tokens)."""
    body = re.sub(r"[\w.+-]+@example\.com", "EMAIL", body)
    return re.sub(r'value="[\w-]{20,}"', 'value="TOKEN"', body)


def _dynamodb_ops(calls):
    return [op for service, op in calls if service == "dynamodb"]


def _for_known_and_unknown(client, aws_calls, page, submit):
    """`submit` the form of /dashboard/`page` for a registered email, then for an unknown one,
    each from a new browser: their answers (status, _shape) and their DynamoDB operations."""
    answers, ops = [], []
    for address in ("known@example.com", "unknown@example.com"):
        visitor = Visitor(client)
        visitor.csrf(f"/dashboard/{page}")
        aws_calls.clear()
        answer = submit(visitor, address)
        ops.append(_dynamodb_ops(aws_calls))
        answers.append((answer.status_code, _shape(text(answer))))
    return answers, ops


def test_signup_answers_and_works_the_same_for_a_registered_email(
        client, open_signup, mailbox, aws_calls):
    existing = accounts.create_account("Old")
    owner(existing.account_id, "known@example.com")
    accounts_before = len(list(Account.scan()))
    answers, ops = _for_known_and_unknown(client, aws_calls, "signup", sign_up)
    assert answers[0] == answers[1] and answers[0][0] == 200
    assert ops[0] == ops[1], ops  # the same reads and writes, in the same order
    known, unknown = mailbox()
    assert known["To"] == "known@example.com" and unknown["To"] == "unknown@example.com"
    assert "already have an account" in known.get_content()
    assert "/dashboard/signin" in known.get_content()
    assert "/dashboard/forgot" in known.get_content()
    assert "verify?token=" not in known.get_content()
    assert "verify?token=" in unknown.get_content()
    assert len(list(Account.scan())) == accounts_before
    assert User.get("known@example.com").account_id == existing.account_id


def test_forgot_answers_and_works_the_same_for_any_email(client, aws_mock, mailbox,
                                                         aws_calls):
    existing = accounts.create_account("Old")
    owner(existing.account_id, "known@example.com")
    answers, ops = _for_known_and_unknown(client, aws_calls, "forgot", forgot)
    assert answers[0] == answers[1] and answers[0][0] == 200
    assert "Check your mail" in answers[0][1]
    assert ops[0] == ops[1], ops
    known, unknown = mailbox()
    assert "set-password?token=" in known.get_content()
    assert "no account with this email" in unknown.get_content()
    assert "token=" not in unknown.get_content()
    assert "created by its operator" in unknown.get_content()  # sign-up closed here


def test_account_mails_are_plain_text_without_tracking(open_signup, mailbox):
    signup.sign_up("plain@example.com", PASSWORD, PASSWORD, "Plain", "192.0.2.1", DASHBOARD)
    password_reset.request_reset("nobody@example.com", "192.0.2.1", DASHBOARD)
    for mail in mailbox():
        assert not mail.is_multipart() and mail.get_content_type() == "text/plain"
        assert "List-Unsubscribe" not in mail and "<img" not in mail.get_content()
        links = re.findall(r"https?://[^\s,]+", mail.get_content())
        # only this gateway's own pages, with no tracking parameters
        assert links and all(link == "http://localhost" or link.startswith(DASHBOARD)
                             for link in links), links
        assert all(re.fullmatch(r"[^?]*(\?token=[\w-]+)?", link) for link in links), links
    # Every word comes from the catalog (translatable): one place, filled in.
    subject, body = account_mails.compose("verify", base_url="B", account_name="N", hours=24,
                                          link="L")
    assert subject == mailbox()[0]["Subject"] and "L" in body


def test_ses_sends_account_mails_without_unsubscribe_headers(aws_mock, settings_override,
                                                             aws_calls):
    settings_override(alert_sender="gw@example.com")
    from chalicelib.storage import aws
    aws.ses().create_email_identity(EmailIdentity="gw@example.com")
    password_reset.request_reset("nobody@example.com", "192.0.2.1", DASHBOARD)
    [params] = [p for service, op, p in aws_calls.requests if op == "SendEmail"]
    assert params["Destination"] == {"ToAddresses": ["nobody@example.com"]}
    assert "Headers" not in params["Content"]["Simple"]
    assert "no account" in params["Content"]["Simple"]["Body"]["Text"]["Data"]


# --- throttles ------------------------------------------------------------------------------

def test_signup_is_throttled_per_email_for_known_and_unknown_alike(open_signup, mailbox):
    existing = accounts.create_account("Old")
    owner(existing.account_id, "known@example.com")
    for address in ("known@example.com", "unknown@example.com"):
        for n in range(signup.PER_EMAIL):
            signup.sign_up(address, PASSWORD, PASSWORD, "A", f"192.0.2.{n}", DASHBOARD)
        with pytest.raises(RateLimited, match="this email"):
            signup.sign_up(address, PASSWORD, PASSWORD, "A", "192.0.2.99", DASHBOARD)
    assert len(mailbox()) == 2 * signup.PER_EMAIL


@pytest.mark.parametrize("attempt", ["signup", "reset"])
def test_throttled_per_address_an_ipv6_64_counting_as_one(open_signup, mailbox, attempt):
    module = signup if attempt == "signup" else password_reset

    def ask(n, ip):
        address = f"person{n}@example.com"
        if attempt == "signup":
            signup.sign_up(address, PASSWORD, PASSWORD, "A", ip, DASHBOARD)
        else:
            password_reset.request_reset(address, ip, DASHBOARD)
    for n in range(module.PER_IP):
        ask(n, f"2001:db8:1:2::{n + 1:x}")  # one subscriber's /64, any host part
    with pytest.raises(RateLimited, match="your network"):
        ask(99, "2001:db8:1:2:ffff::1")
    ask(100, "2001:db8:1:3::1")  # the next /64 is someone else
    assert len(mailbox()) == module.PER_IP + 1


def test_reset_requests_are_throttled_per_email(aws_mock, mailbox):
    for n in range(password_reset.PER_EMAIL):
        password_reset.request_reset("who@example.com", f"192.0.2.{n}", DASHBOARD)
    with pytest.raises(RateLimited, match="this email"):
        password_reset.request_reset("who@example.com", "192.0.2.99", DASHBOARD)
    clock.freeze()
    clock.advance(password_reset.WINDOW_SECONDS)
    password_reset.request_reset("who@example.com", "192.0.2.99", DASHBOARD)
    assert len(mailbox()) == password_reset.PER_EMAIL + 1


def test_a_throttled_signup_page_says_when_to_try_again(client, open_signup, mailbox):
    visitor = Visitor(client)
    for _ in range(signup.PER_EMAIL):
        assert sign_up(visitor, "x@example.com").status_code == 200
    answer = sign_up(visitor, "x@example.com")
    assert answer.status_code == 429 and "try again in" in text(answer)


# --- the reset link -------------------------------------------------------------------------

def _reset_token(mailbox, address="boss@example.com"):
    password_reset.request_reset(address, "192.0.2.1", DASHBOARD)
    return link_in(mailbox()[-1], "set-password")


def test_reset_by_mail_sets_the_password_and_ends_every_session(client, aws_mock, mailbox):
    acct = accounts.create_account("Boss")
    owner(acct.account_id, "boss@example.com")
    phone, laptop = Visitor(client), Visitor(client)
    for browser in (phone, laptop):
        assert browser.sign_in("boss@example.com").status_code == 303
    assert len(list(Session.scan())) == 2
    token = _reset_token(mailbox)
    helper = Visitor(client)
    form = helper.get(f"/dashboard/set-password?token={token}")
    assert form.status_code == 200 and "boss@example.com" in text(form)
    new = "a brand new passphrase"
    done = helper.post("/dashboard/set-password", {"csrf": helper.cookies["smsgw_pre"],
                                                   "token": token, "password": new,
                                                   "confirm": new})
    assert done.status_code == 303 and "done=password-set" in done.headers["Location"]
    assert list(Session.scan()) == []  # both browsers signed out
    assert phone.get("/dashboard/keys").status_code == 303
    assert helper.sign_in("boss@example.com").status_code == 401  # the old password
    assert helper.sign_in("boss@example.com", new).status_code == 303


def test_a_reset_link_lives_30_minutes(aws_mock, mailbox):
    acct = accounts.create_account("Boss")
    owner(acct.account_id, "boss@example.com")
    clock.freeze()
    token = _reset_token(mailbox)
    clock.advance(password_reset.LINK_MINUTES * 60 - 1)
    assert users.link_user(token).email == "boss@example.com"
    clock.advance(1)
    with pytest.raises(Unauthorized, match="expired"):
        users.link_user(token)
    with pytest.raises(Unauthorized):
        users.set_password(token, "a brand new passphrase", "a brand new passphrase")
    assert users.check_signin("boss@example.com", PASSWORD, "192.0.2.1")


def test_two_clicks_racing_on_one_reset_link_set_one_password(aws_mock, mailbox, atomic_moto):
    acct = accounts.create_account("Boss")
    owner(acct.account_id, "boss@example.com")
    token = _reset_token(mailbox)
    passwords = [f"racing passphrase {n}" for n in range(8)]
    outcomes = race(len(passwords),
                     lambda n: users.set_password(token, passwords[n], passwords[n]),
                     numbered=True)
    winners = [n for n, o in enumerate(outcomes) if isinstance(o, User)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, (User, Unauthorized)) for o in outcomes), outcomes
    assert users.check_signin("boss@example.com", passwords[winners[0]], "192.0.2.1")
    assert PasswordLink.get(users.token_hash(token)).used_at is not None


def test_a_reset_voids_older_links_and_links_do_not_cross_purposes(open_signup, mailbox):
    acct = accounts.create_account("Boss")
    owner(acct.account_id, "boss@example.com")
    older, newer = _reset_token(mailbox), _reset_token(mailbox)
    users.set_password(newer, "a brand new passphrase", "a brand new passphrase")
    with pytest.raises(Unauthorized, match="password was set since"):
        users.set_password(older, "an attacker's passphrase", "an attacker's passphrase")
    signup.sign_up("fresh@example.com", PASSWORD, PASSWORD, "Fresh", "192.0.2.1", DASHBOARD)
    verification = link_in(mailbox()[-1], "verify")
    with pytest.raises(Unauthorized, match="not valid"):
        users.set_password(verification, "a brand new passphrase", "a brand new passphrase")
    reset = _reset_token(mailbox)
    with pytest.raises(Unauthorized, match="not valid"):
        signup.verify(reset)


def test_reset_page_links_and_unknown_link_answer(client, aws_mock):
    visitor = Visitor(client)
    assert 'href="/dashboard/forgot"' in text(visitor.get("/dashboard/signin"))
    assert visitor.get("/dashboard/forgot").status_code == 200
    bad = visitor.get("/dashboard/set-password?token=nope")
    assert bad.status_code == 410 and "not valid" in text(bad)


def test_a_signin_checked_before_a_reset_gets_no_session_after_it(aws_mock, mailbox):
    """The interleaving: the old password checked, then the reset (its transaction and its end
    of sessions), then the sign-in's session write. The session must not survive; the other
    orders are covered: a check after the reset fails, a session written before the reset's
    end of sessions is ended by it."""
    acct = accounts.create_account("Boss")
    owner(acct.account_id, "boss@example.com")
    checked = users.check_signin("boss@example.com", PASSWORD, "192.0.2.1")
    users.set_password(_reset_token(mailbox), "a brand new passphrase",
                       "a brand new passphrase")
    with pytest.raises(Unauthorized, match="was just changed"):
        sessions.start(checked)
    assert list(Session.scan()) == []
    assert sessions.find(sessions.start(users.check_signin(
        "boss@example.com", "a brand new passphrase", "192.0.2.1"))) is not None


def test_a_verification_link_creates_nothing_once_signup_is_closed(open_signup, mailbox,
                                                                    settings_override):
    signup.sign_up("late@example.com", PASSWORD, PASSWORD, "Late", "192.0.2.1", DASHBOARD)
    token = link_in(mailbox()[0], "verify")
    settings_override(signup="closed")
    with pytest.raises(Forbidden, match="closed"):
        signup.verify(token)
    assert list(Account.scan()) == [] and list(User.scan()) == []
