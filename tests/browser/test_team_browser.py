"""Team members in a real browser (Debian's chromium driven by Playwright) against a local
gateway started as a user would (sign-up open by default, so invitations work), reading the
mails it writes as .eml files. Journey: an owner signs up, invites a viewer from the Team page;
the viewer follows the mailed link in another browser, joins, finds no "Create key" on the API
keys page, and a forced key POST (with the session's own CSRF token) gets 403 naming the role.
Saves docs/screenshots/team-*.png (desktop and 390 px)."""
import re

from tests.browser import test_signup_browser as signup_journey
from tests.browser.test_dashboard_browser import DESKTOP, join, shoot, url
from tests.browser.test_signup_browser import mails_to, only_link

gateway, page = signup_journey.gateway, signup_journey.page  # its fixtures: a gateway, a tab

OWNER, VIEWER = "team-owner@example.com", "team-viewer@example.com"
PASSWORD = "my own long passphrase"


def sign_up_owner(page, gateway):
    page.goto(url(gateway, "/signup"))
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Account name").fill("Team shop")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Repeat it").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    [mail] = mails_to(gateway, OWNER)
    page.goto(only_link(mail))
    page.get_by_role("button", name="Verify and open my dashboard").click()
    page.wait_for_url(re.compile(r"/dashboard/\?done=email-verified"))


def test_invite_a_viewer_who_joins_and_cannot_make_keys(page, gateway):
    page.context.clear_cookies()
    sign_up_owner(page, gateway)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Team").click()
    page.get_by_label("Email").fill(VIEWER)
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Invite").click()
    assert f"Invitation mailed to {VIEWER}" in page.inner_text("main")
    assert "Pending invitations" in page.inner_text("main")
    shoot(page, "team-invited")
    [mail] = mails_to(gateway, VIEWER)
    assert mail["Subject"] == 'You are invited to the SMS gateway account "Team shop"'
    link = only_link(mail)
    assert link.startswith(gateway["url"] + "/dashboard/join?token=")

    viewer_context = page.context.browser.new_context(viewport=DESKTOP)  # another browser
    viewer = viewer_context.new_page()
    viewer.goto(link)
    assert "as viewer" in viewer.inner_text("main")
    shoot(viewer, "team-join")
    join(viewer, PASSWORD)
    viewer.goto(url(gateway, "/keys"))
    assert viewer.get_by_role("button", name="Create key").count() == 0
    assert "You are a viewer" in viewer.inner_text("main")
    shoot(viewer, "team-viewer-keys")
    csrf = viewer.locator("input[name=csrf]").first.input_value()
    forced = viewer.request.post(url(gateway, "/keys"), form={"csrf": csrf,
                                                               "label": "sneaky"},
                                 headers={"Origin": gateway["url"]})
    assert forced.status == 403
    assert "needs the developer role" in forced.text()
    viewer.goto(url(gateway, "/team"))
    assert viewer.get_by_role("button", name="Invite").count() == 0
    viewer_context.close()

    page.goto(url(gateway, "/keys"))
    assert "sneaky" not in page.inner_text("main")
    page.goto(url(gateway, "/team"))
    assert "viewer" in page.inner_text("main") and VIEWER in page.inner_text("main")
    shoot(page, "team")
