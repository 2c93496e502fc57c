"""Leaving with the data in a real browser (Debian's chromium driven by Playwright) against a
local gateway (issue 33 item 4): the owner downloads the export zip from Profile, then deletes the
account by typing its name (a wrong name is refused and deletes nothing); the API key then fails
and the dashboard is signed out. Screenshots: docs/screenshots/export-*.png and
delete-account-*.png."""
# ruff: noqa: F811 (the fixtures imported from test_dashboard_browser are parameters)
import csv
import io
import re
import zipfile

from tests.browser.test_dashboard_browser import (  # noqa: F401 (its fixtures)
    api,
    browser,
    gateway,
    page,
    shoot,
    url,
)
from tests.browser.test_opt_outs_browser import sign_in


def test_download_the_export_then_delete_the_account_by_its_name(page, gateway, tmp_path):
    sign_in(page, gateway)
    page.goto(url(gateway, "/account"))
    shoot(page, "export")
    with page.expect_download() as download:
        page.locator("#export-download").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert re.fullmatch(r"smsgw-export-acc_[0-9a-f]+-\d{4}-\d\d-\d\d\.zip", saved.name)
    archive = zipfile.ZipFile(saved)
    assert {"messages.csv", "messages.json", "phones.csv", "opt_outs.json",
            "account.json"} <= set(archive.namelist())
    phones = list(csv.DictReader(io.StringIO(archive.read("phones.csv").decode())))
    assert [p["device_uid"] for p in phones] == [gateway["device_uid"]]

    page.locator("#delete-link").click()
    page.wait_for_url(re.compile(r"/dashboard/account/delete$"))
    name = page.locator("label[for=confirm-name] strong").inner_text()
    page.get_by_label(re.compile("Type the account's name")).fill(name + "x")
    page.get_by_role("button", name="Delete the account").click()
    assert "type its name exactly" in page.locator("main .error").inner_text()
    assert api(gateway, action="device_status", api_key=gateway["api_key"])["status"] \
        == "success"
    page.get_by_label(re.compile("Type the account's name")).fill(name)
    shoot(page, "delete-account")
    page.get_by_role("button", name="Delete the account").click()
    page.wait_for_url(re.compile(r"/dashboard/signin\?done=account-deleted"))
    assert "The account is deleted" in page.locator("main").inner_text()
    assert api(gateway, action="device_status", api_key=gateway["api_key"])["status"] == "error"
    page.goto(url(gateway, "/keys"))
    page.wait_for_url(re.compile(r"/dashboard/signin"))
    assert page.problems == []
