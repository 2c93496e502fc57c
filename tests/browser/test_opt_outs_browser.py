"""The Opt-outs page in a real browser (Debian's chromium driven by Playwright) against a local
gateway (issue 32): the owner opens it from the navigation, lists a number and removes it; the
demo phone pushes an incoming STOP and the number appears; Try it refuses a send to it with the
opted_out error; START takes it off. The page fits at 1280 px and 390 px (screenshots under
docs/screenshots/opt-outs-*.png)."""
# ruff: noqa: F811 (the fixtures imported from test_dashboard_browser are parameters)
import re
import time

from tests.browser.test_dashboard_browser import (  # noqa: F401 (its fixtures)
    DESKTOP,
    PASSWORD,
    PHONE,
    assert_fits,
    browser,
    device_call,
    gateway,
    page,
    shoot,
    url,
)

LISTED = "+8801711111111"
CUSTOMER = "+8801722222222"
LABEL_FONT = "el => getComputedStyle(el, '::before').fontFamily"


def sign_in(page, gateway):
    page.goto(gateway["url"] + gateway["dashboard_set_password"])
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Repeat it").fill(PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(re.compile(r"/dashboard/signin"))
    page.get_by_label("Email").fill("demo@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/dashboard/$"))


def listed(page):
    return page.locator("#opt-outs td[data-number]").all_inner_texts()


def demo_phone_receives(gateway, text, number=CUSTOMER):
    """The demo phone pushes an SMS it received, as its agent does."""
    item = {"device_message_id": f"browser-{text}-{time.time_ns()}", "phone_number": number,
            "message": text, "sim_slot": 1, "received_at": int(time.time() * 1000)}
    answer = device_call(gateway, "POST", "/device/incoming", {"messages": [item]})
    assert "error" not in str(answer.get("status", "")), answer


def test_add_and_remove_a_number_from_the_navigation(page, gateway):
    sign_in(page, gateway)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Opt-outs").click()
    page.wait_for_url(re.compile(r"/dashboard/opt-outs$"))
    assert page.locator("#no-opt-outs").is_visible()
    page.get_by_label("Phone number").fill(LISTED)
    page.get_by_role("button", name="Add to the list").click()
    assert "is listed" in page.locator("#opt-out-done").inner_text()
    row = page.locator("#opt-outs tr", has_text=LISTED)
    assert listed(page) == [LISTED] and "listed by you" in row.inner_text()
    row.get_by_role("button", name="Remove").click()
    assert "is off the list" in page.locator("#opt-out-done").inner_text()
    assert page.dialogs and page.dialogs[-1][0] == "confirm"
    assert page.locator("#no-opt-outs").is_visible()


def test_stop_from_the_phone_is_listed_and_try_it_is_refused_until_start(page, gateway):
    demo_phone_receives(gateway, "Stop")
    page.goto(url(gateway, "/opt-outs"))
    row = page.locator("#opt-outs tr", has_text=CUSTOMER)
    assert listed(page) == [CUSTOMER] and "replied STOP" in row.inner_text()
    page.goto(url(gateway, "/try"))
    page.locator("#sms-number").fill(CUSTOMER)
    page.locator("#sms-text").fill("Our new offer")
    page.get_by_role("button", name="Send SMS").click()
    error = page.locator("main .error").inner_text()
    assert f"{CUSTOMER} has opted out" in error and "nothing was sent" in error
    assert "replying START" in error
    demo_phone_receives(gateway, "START")
    page.goto(url(gateway, "/opt-outs"))
    assert page.locator("#no-opt-outs").is_visible()


def test_the_page_fits_at_1280_and_390_px(page, gateway):
    """No horizontal scroll; the table, its Remove buttons and the forms inside the viewport.
    At 1280 px the navigation shows all its links (with Opt-outs added, "Profile" was cut to
    "Profil" under Sign out); at 390 px the Number column's label is in the other labels' font
    (it was in the number's monospace)."""
    page.goto(url(gateway, "/opt-outs"))
    for number in (LISTED, CUSTOMER):
        page.get_by_label("Phone number").fill(number)
        page.get_by_role("button", name="Add to the list").click()
        assert "is listed" in page.locator("#opt-out-done").inner_text()
    page.goto(url(gateway, "/opt-outs"))
    for viewport in (DESKTOP, PHONE):
        assert_fits(page, viewport, "main form, main input, main button, #opt-outs, #opt-outs td")
        cells = page.locator("#opt-outs tr").nth(1).locator("td")
        assert cells.nth(0).evaluate(LABEL_FONT) == cells.nth(1).evaluate(LABEL_FONT)
    page.set_viewport_size(DESKTOP)
    nav = page.get_by_role("navigation", name="Main")
    assert nav.evaluate("el => el.scrollWidth <= el.clientWidth"), "a link is cut off"
    shoot(page, "opt-outs")
    assert page.problems == []
