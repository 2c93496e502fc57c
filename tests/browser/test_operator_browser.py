"""The operator's console in a real browser (Debian's chromium driven by Playwright) against a
local gateway (issue 33 item 5): an operator made by `smsgw operator add` sets a password from
the printed link, signs in and lands on /dashboard/operator/, sees the demo account, suspends
it (its API key then answers "suspended"), resumes it, sets a messages-per-day quota (the next
send past it is refused with the quota named), and finds each action in the audit log. The
page fits at 1280 px and 390 px (screenshots docs/screenshots/operator-*.png)."""
# ruff: noqa: F811 (the fixtures imported from test_dashboard_browser are parameters)
import os
import re
import subprocess
import sys

from tests.browser.test_dashboard_browser import (  # noqa: F401 (its fixtures)
    DESKTOP,
    PASSWORD,
    PHONE,
    ROOT,
    api,
    assert_fits,
    browser,
    gateway,
    page,
    shoot,
    url,
)

EMAIL = "ops@example.com"


def smsgw(gateway, *args) -> str:
    """The operator's CLI against this gateway's DynamoDB."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMSGW_"))}
    env.update(SMSGW_STAGE="local", AWS_ENDPOINT_URL=gateway["aws_endpoint"],
               AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="local",
               AWS_SECRET_ACCESS_KEY="local")
    ran = subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


def row(page, account_id):
    return page.locator(f'#accounts tr[data-account="{account_id}"]')


def test_the_operator_journey_in_the_browser(page, gateway):
    printed = smsgw(gateway, "operator", "add", EMAIL, "--url", gateway["url"])
    link = re.search(r"https?://\S+", printed)[0]
    page.goto(link)
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Repeat it").fill(PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(re.compile(r"/dashboard/signin"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/dashboard/operator$"))  # no account of their own
    account = gateway["account_id"]
    assert "active" in row(page, account).locator(".state").inner_text()

    row(page, account).get_by_role("button", name="Suspend").click()
    assert "is suspended" in page.locator("#operator-done").inner_text()
    assert page.dialogs and page.dialogs[-1][0] == "confirm"
    refused = api(gateway, action="device_status", api_key=gateway["api_key"])
    assert refused["data"]["error_code"] == "account_suspended" and "suspended" in \
        refused["message"]
    row(page, account).get_by_role("button", name="Resume").click()
    assert "is active again" in page.locator("#operator-done").inner_text()
    assert api(gateway, action="device_status", api_key=gateway["api_key"])["status"] == \
        "success"

    quotas = row(page, account).locator("details.quotas")
    quotas.locator("summary").click()
    quotas.get_by_label("Quota").select_option("messages_per_day")
    quotas.get_by_label("Limit").fill("1")
    quotas.get_by_role("button", name="Set quota").click()
    assert "messages per day set to 1" in page.locator("#operator-done").inner_text()
    send = {"action": "send_sms", "api_key": gateway["api_key"], "message": "Hi",
            "phone_number": "+8801712345678", "device_uid": gateway["device_uid"]}
    assert api(gateway, **send)["status"] == "success"
    refused = api(gateway, **send)
    assert refused["data"]["quota"] == "messages_per_day" and "resets at" in refused["message"]

    log = page.locator("#audit-log tbody tr").all_inner_texts()
    assert [next(a for a in ("set quota", "resume", "suspend") if a in line)
            for line in log[:3]] == ["set quota", "resume", "suspend"]
    assert all(EMAIL in line for line in log[:3])
    assert page.problems == []


def test_the_console_fits_at_1280_and_390_px(page, gateway):
    page.goto(url(gateway, "/operator"))
    for viewport in (DESKTOP, PHONE):
        assert_fits(page, viewport, "main button, #accounts td, #audit-log td", visible_only=True)
    page.set_viewport_size(DESKTOP)
    shoot(page, "operator")
    assert page.problems == []
