"""Throttles that protect without locking out (issue 25): wrong passwords typed by anyone must
not lock the rightful user out of the dashboard (a browser that signed in before keeps its own
allowance), and per-address limits count an IPv6 /64 as one address (sign-in and pairing)."""
import pytest

from chalicelib.core import clock
from chalicelib.core.errors import RateLimited, Unauthorized
from chalicelib.domain import accounts, pairing, throttle, users
from tests.dashboard_helpers import PASSWORD, Visitor, owner, text

pytestmark = pytest.mark.usefixtures("quick_hashes")


def test_a_remembered_browser_still_signs_in_while_a_guesser_is_throttled(client, aws_mock):
    acct = accounts.create_account("Lockout")
    owner(acct.account_id, "owner@example.com")
    mine = Visitor(client)
    assert mine.sign_in("owner@example.com").status_code == 303
    assert "smsgw_browser" in mine.cookies
    mine.cookies.pop("smsgw_session")  # signed out, the browser still remembered

    guesser = Visitor(client)
    for _ in range(users.SIGNIN_PER_EMAIL):
        assert guesser.sign_in("owner@example.com", "wrong password").status_code == 401
    blocked = guesser.sign_in("owner@example.com")  # even with the right password
    assert blocked.status_code == 429 and "Too many sign-in attempts" in text(blocked)
    forged = Visitor(client)
    forged.cookies["smsgw_browser"] = "made-up-token"  # an invented cookie is no browser
    assert forged.sign_in("owner@example.com").status_code == 429

    assert mine.sign_in("owner@example.com").status_code == 303  # not locked out
    # the remembered browser is limited too, on its own allowance
    mine.cookies.pop("smsgw_session")
    for _ in range(users.SIGNIN_PER_BROWSER):
        assert mine.sign_in("owner@example.com", "typo typo typo").status_code == 401
    assert mine.sign_in("owner@example.com").status_code == 429


def test_a_browser_is_remembered_only_for_the_email_it_signed_in_to(aws_mock):
    acct = accounts.create_account("Two")
    owner(acct.account_id, "a@example.com")
    owner(acct.account_id, "b@example.com")
    browser = users.remember_browser("a@example.com", None)
    for _ in range(users.SIGNIN_PER_EMAIL):
        with pytest.raises(Unauthorized):
            users.check_signin("b@example.com", "wrong", "192.0.2.1", browser)
    with pytest.raises(RateLimited):
        users.check_signin("b@example.com", PASSWORD, "192.0.2.2", browser)
    assert users.check_signin("a@example.com", PASSWORD, "192.0.2.1", browser).email == \
        "a@example.com"
    clock.advance(users.BROWSER_DAYS * 86400)  # forgotten after BROWSER_DAYS
    assert users.remember_browser("a@example.com", browser) != browser


def test_an_ipv6_64_is_one_address_for_sign_in(aws_mock):
    for n in range(users.SIGNIN_PER_IP):
        with pytest.raises(Unauthorized):
            users.check_signin(f"nobody{n}@example.com", "guess", f"2001:db8:1:2::{n + 1:x}")
    with pytest.raises(RateLimited):  # another host of the same /64
        users.check_signin("another@example.com", "guess", "2001:db8:1:2:ffff:1:2:3")
    with pytest.raises(Unauthorized):  # the next /64 is another subscriber
        users.check_signin("another@example.com", "guess", "2001:db8:1:3::1")


def test_an_ipv6_64_is_one_address_for_pairing_codes(aws_mock):
    for n in range(pairing.PAIR_PER_IP):
        with pytest.raises(Unauthorized):
            pairing.redeem("ABCD-EFGH", 1, f"2001:db8:5:6:{n:x}::1")
    with pytest.raises(RateLimited):
        pairing.redeem("ABCD-EFGH", 1, "2001:db8:5:6:abcd::9")


@pytest.mark.parametrize("given, counted", [
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("2001:DB8:1:2::", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"), ("198.51.100.7", "198.51.100.7"),
    ("", "unknown"), (None, "unknown"), ("not an address", "unknown")])
def test_the_address_a_limit_counts(given, counted):
    assert throttle.address(given) == counted
