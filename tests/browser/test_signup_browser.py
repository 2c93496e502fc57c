"""Sign-up and password reset in a real browser (Debian's chromium driven by Playwright) against
a local gateway started as a user would (no SMSGW_ variables: sign-up is open by the local
gateway's default), reading the mails it writes as .eml files under its data folder. Journeys:
sign up, open the verification mail's link, make a key and use it on /myAPI.php; forget the
password, reset it by the mailed link, sign in with the new one (the old one refused). Saves
screenshots under docs/screenshots/ (desktop and 390 px).
"""
import email
import email.policy
import re
from pathlib import Path

import pytest

from tests.browser.test_dashboard_browser import (
    ARGS,
    CHROMIUM,
    DESKTOP,
    api,
    create_key,
    shoot,
    url,
)
from tests.localgw_helpers import GatewayProcess

PASSWORD = "my own long passphrase"
NEW_PASSWORD = "a newer long passphrase"
EMAIL = "founder@example.com"


@pytest.fixture(scope="module")
def gateway():
    process = GatewayProcess("--no-agent", user=True)
    yield process.info
    process.stop()


@pytest.fixture(scope="module")
def page(gateway):
    import os
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport=DESKTOP)
        tab = context.new_page()
        tab.set_default_timeout(20000)
        tab.problems = []
        tab.on("console", lambda m: m.type == "error" and "Failed to load resource" not in
               m.text and tab.problems.append(m.text))
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))
        yield tab
        assert tab.problems == []  # no CSP violation or script error on any page
        browser.close()


def mails_to(gateway, address):
    folder = Path(gateway["mail"])
    found = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
             for p in sorted(folder.glob("*.eml"))] if folder.exists() else []
    return [m for m in found if m["To"] == address]


def only_link(mail) -> str:
    [link] = re.findall(r"http://\S+\?token=[\w-]+", mail.get_content())
    return link


def test_sign_up_verify_by_mail_then_make_a_key_that_works(page, gateway):
    page.goto(url(gateway, "/signin"))
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Account name").fill("Founder's shop")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Repeat it").fill(PASSWORD)
    shoot(page, "signup")
    page.get_by_role("button", name="Create account").click()
    assert "We sent a mail to founder@example.com" in page.inner_text("main")
    [mail] = mails_to(gateway, EMAIL)
    assert mail["Subject"] == "Verify your email for your SMS gateway account"
    link = only_link(mail)
    assert link.startswith(gateway["url"] + "/dashboard/verify?token=")
    # Not verified yet: the password does not sign in (there is no account yet).
    page.goto(url(gateway, "/signin"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert "Wrong email or password" in page.inner_text("main")
    page.goto(link)
    assert "Founder's shop" in page.inner_text("main")
    shoot(page, "verify-email")
    page.get_by_role("button", name="Verify and open my dashboard").click()
    page.wait_for_url(re.compile(r"/dashboard/\?done=email-verified"))
    assert page.locator("h1").inner_text() == "Founder's shop"
    assert "Your email is verified" in page.inner_text("main")
    key = create_key(page, gateway, "first key")
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert api(gateway, action="device_status", api_key=key)["status"] == "success"
    page.goto(link)  # the link worked once
    assert "used already" in page.inner_text("main")


def test_forgot_password_reset_by_mail_then_sign_in(page, gateway):
    page.context.clear_cookies()
    page.goto(url(gateway, "/signin"))
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Email").fill(EMAIL)
    shoot(page, "forgot-password")
    page.get_by_role("button", name="Mail me a link").click()
    known = page.inner_text("main")
    assert "within 30 minutes" in known
    [mail] = [m for m in mails_to(gateway, EMAIL) if "Reset" in m["Subject"]]
    page.goto(only_link(mail))
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Repeat it").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(re.compile(r"/dashboard/signin\?done=password-set"))
    for password, landed in ((PASSWORD, False), (NEW_PASSWORD, True)):
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        if landed:
            page.wait_for_url(re.compile(r"/dashboard/$"))
        else:
            assert "Wrong email or password" in page.inner_text("main")
    assert page.locator("h1").inner_text() == "Founder's shop"
    # An unknown email gets the same page.
    page.context.clear_cookies()
    page.goto(url(gateway, "/forgot"))
    page.get_by_label("Email").fill("stranger@example.com")
    page.get_by_role("button", name="Mail me a link").click()
    assert page.inner_text("main") == known.replace(EMAIL, "stranger@example.com")
    [note] = mails_to(gateway, "stranger@example.com")
    assert "no account with this email" in note.get_content()
