"""The dashboard in a real browser: Debian's chromium driven by Playwright, against the local
gateway (a separate process, moto as AWS), with a phone simulated by the device agent after it
paired through the dashboard's code. The tests run in order, as one owner's session; each saves
screenshots of the pages it visits, at desktop width and at 390 px, under docs/screenshots/.
"""
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.localgw_helpers import GatewayProcess, gateway_env, stop_process

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "a long demo passphrase"
NUMBER = "+8801712345678"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 390, "height": 844}


def _gateway_env():
    # pacing is tested in tests/api/test_pool*.py and test_pacing_window.py
    return {"PYTHONPATH": str(ROOT / "agent"), "SMSGW_DEFAULT_PACE_PER_HOUR": "0",
            "SMSGW_PACE_WINDOW_PARTS": "0"}


def _clean_env():
    return gateway_env(user=True, **_gateway_env())


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """The local gateway (no demo phone): its JSON banner, plus where the test phone lives."""
    gateway = GatewayProcess("--no-agent", user=True, env=_gateway_env())
    info = gateway.info
    info["dir"] = tmp_path_factory.mktemp("phone")
    info["agent"] = None
    yield info
    if info["agent"] is not None:
        stop_process(info["agent"])
    gateway.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser, gateway):
    context = browser.new_context(viewport=DESKTOP)
    tab = context.new_page()
    tab.set_default_timeout(20000)
    tab.dialogs, tab.problems = [], []
    # Confirmation dialogs are accepted; any other dialog (an alert) is a finding.
    tab.on("dialog", lambda d: (tab.dialogs.append((d.type, d.message)), d.accept()))
    # Errors in the console (a CSP violation, a script error); the pages answered 4xx on
    # purpose (a refused form, a spent link) log "Failed to load resource", which is expected.
    tab.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
           and tab.problems.append(m.text))
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    yield tab
    context.close()


def shoot(page, name):
    """Screenshots of the current page at desktop width and at 390 px."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-desktop.png"), full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=str(SHOTS / f"{name}-390px.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def api(gateway, **params):
    """POST /myAPI.php as an application would (from 127.0.0.1)."""
    port = int(gateway["url"].rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("POST", "/myAPI.php", body=urlencode(params),
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return answer


def url(gateway, path):
    return gateway["url"] + "/dashboard" + path


def join(page, password):
    """On an invitation's page: choose the password and join; the account's dashboard opens."""
    page.get_by_label("Password").fill(password)
    page.get_by_label("Repeat it").fill(password)
    page.get_by_role("button", name="Join").click()
    page.wait_for_url(re.compile(r"/dashboard/\?done=joined"))


def assert_fits(page, viewport, selector, *, visible_only=False):
    """At `viewport`: no horizontal scroll, and every element of `selector` (with
    `visible_only`, every visible one) within the page's width."""
    page.set_viewport_size(viewport)
    width = viewport["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, viewport
    parts = page.locator(selector)
    for n in range(parts.count()):
        if not visible_only or parts.nth(n).is_visible():
            left, right = parts.nth(n).evaluate(
                "el => { const r = el.getBoundingClientRect(); return [r.left, r.right]; }")
            assert 0 <= left and right <= width, (viewport, n, left, right)


def create_key(page, gateway, label):
    page.goto(url(gateway, "/keys"))
    page.get_by_label("Label").fill(label)
    page.get_by_role("button", name="Create key").click()
    return page.locator("#new-key-value").input_value()


# --- the owner's session, in order ----------------------------------------------------------

def test_set_password_then_sign_in_with_the_keyboard(page, gateway):
    page.goto(gateway["url"] + gateway["dashboard_set_password"])
    assert "demo@example.com" in page.content()
    shoot(page, "set-password")
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_label("Repeat it").fill(PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(re.compile(r"/dashboard/signin"))
    assert "Your password is set" in page.inner_text("main")
    shoot(page, "signin")
    # Keyboard only: the email field has focus; Tab to the password, Enter submits.
    page.keyboard.type("demo@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert page.locator("h1").inner_text() == "Demo"
    cookie = next(c for c in page.context.cookies() if c["name"] == "smsgw_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # The set-password link worked once.
    page.goto(gateway["url"] + gateway["dashboard_set_password"])
    assert "used already" in page.inner_text("main")


def test_key_created_used_on_myapi_then_revoked_and_refused(page, gateway):
    key = create_key(page, gateway, "web shop")
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert "will not be shown again" in page.inner_text("main")
    page.get_by_role("button", name="Copy").focus()  # reachable and labelled
    shoot(page, "keys-new-key")
    answer = api(gateway, action="device_status", api_key=key)
    assert answer["status"] == "success", answer
    page.goto(url(gateway, "/keys"))
    assert key not in page.content()  # shown once only
    row = page.locator("tr", has_text="web shop")
    assert "never" not in row.inner_text()  # its last use is recorded
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_url(re.compile(r"done=key-revoked"))
    assert page.dialogs and page.dialogs[-1][0] == "confirm"
    assert "revoked" in page.locator("tr", has_text="web shop").inner_text()
    shoot(page, "keys")
    answer = api(gateway, action="device_status", api_key=key)
    assert answer["status"] == "error" and answer["data"]["error_code"] == "unauthorized"


def test_whitelist_set_from_the_dashboard_applies_to_the_api(page, gateway):
    key = create_key(page, gateway, "server")
    page.goto(url(gateway, "/whitelist"))
    assert page.locator("#your-ip").inner_text() == "127.0.0.1"
    field = page.get_by_label("IP address or CIDR range")
    field.fill("300.1.2.3")
    page.get_by_role("button", name="Add").click()
    assert "Not an IP address" in page.locator(".error").inner_text()
    field.fill("2001:db8::/48")
    page.get_by_role("button", name="Add").click()
    assert "Tick the box" in page.locator(".error").inner_text()  # the lock-out warning
    field.fill("2001:db8::/48")
    page.get_by_label("I understand").check()
    page.get_by_role("button", name="Add").click()
    page.wait_for_url(re.compile(r"done=whitelist-saved"))
    assert "not on the whitelist" in page.inner_text("main")
    refused = api(gateway, action="device_status", api_key=key)
    assert refused["status"] == "error" and refused["data"]["error_code"] == "forbidden"
    field.fill("127.0.0.1")
    page.get_by_role("button", name="Add").click()
    page.wait_for_url(re.compile(r"done=whitelist-saved"))
    assert "on the whitelist" in page.locator(".you").inner_text()
    shoot(page, "whitelist")
    assert api(gateway, action="device_status", api_key=key)["status"] == "success"
    page.locator("li", has_text="127.0.0.1/32").get_by_role("button", name="Remove").click()
    page.wait_for_url(re.compile(r"done=whitelist-saved"))
    assert api(gateway, action="device_status", api_key=key)["status"] == "error"
    page.locator("li", has_text="2001:db8::/48").get_by_role("button", name="Remove").click()
    page.wait_for_url(re.compile(r"done=whitelist-saved"))
    assert "Empty: any address" in page.inner_text("main")
    assert api(gateway, action="device_status", api_key=key)["status"] == "success"
    gateway["key"] = key


def test_pair_a_simulated_phone_with_the_code(page, gateway):
    page.goto(url(gateway, "/phones"))
    page.get_by_label("Phone name").fill("Test phone")
    page.get_by_role("button", name="Pair a phone").click()
    page.wait_for_url(re.compile(r"/dashboard/pair/"))
    assert page.locator(".qr svg").count() == 1
    code = page.locator("#pair-code").inner_text()
    assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}", code)
    shoot(page, "pair")
    config = gateway["dir"] / "agent.toml"
    paired = subprocess.run([sys.executable, "-m", "smsgw_agent", "pair", gateway["url"], code,
                             "--config", str(config), "--sim-count", "2"], cwd=ROOT,
                            env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert paired.returncode == 0, paired.stderr
    assert "token" in config.read_text() and oct(config.stat().st_mode)[-3:] == "600"
    again = subprocess.run([sys.executable, "-m", "smsgw_agent", "pair", gateway["url"], code,
                            "--config", str(gateway["dir"] / "other.toml")], cwd=ROOT,
                           env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "used or expired" in again.stderr  # one time only
    env = {**_clean_env(), "SMSGW_INCOMING_SECONDS": "1", "SMSGW_HEARTBEAT_SECONDS": "2"}
    gateway["inbox"], gateway["ledger"] = gateway["dir"] / "inbox.jsonl", \
        gateway["dir"] / "ledger.jsonl"
    gateway["inbox"].touch()
    gateway["agent"] = subprocess.Popen(
        [sys.executable, "-m", "smsgw_agent", "--config", str(config), "--backend",
         "simulator", "--journal", str(gateway["dir"] / "journal.sqlite3"), "--poll-wait", "1",
         "--delivery-delay", "0.5", "--inbox", str(gateway["inbox"]), "--ledger",
         str(gateway["ledger"])], cwd=ROOT, env=env)
    page.wait_for_selector("text=Paired", timeout=30000)  # the page refreshes by itself
    page.goto(url(gateway, "/phones"))
    row = page.locator("tr", has_text="Test phone")
    deadline = time.time() + 30
    while "running" not in row.inner_text() and time.time() < deadline:
        time.sleep(1)
        page.reload()
    assert "running" in row.inner_text()
    shoot(page, "phones")


def test_send_a_test_sms_and_watch_it_reach_delivered(page, gateway):
    page.goto(url(gateway, "/try"))
    test_phone = page.locator("#sms-phone option", has_text="Test phone").get_attribute("value")
    page.locator("#sms-phone").select_option(test_phone)
    page.locator("#sms-number").fill(NUMBER)
    page.locator("#sms-text").fill("Hello from the browser test")
    shoot(page, "try")
    page.get_by_role("button", name="Send SMS").click()
    page.wait_for_url(re.compile(r"/dashboard/messages/outgoing/\d+"))
    page.wait_for_selector("#status:text-is('delivered')", timeout=45000)
    timeline = page.locator(".timeline").inner_text()
    for state in ("pending", "processing", "sent", "delivered"):
        assert state in timeline
    shoot(page, "message")


def _overview_figures(page):
    """Per series: the figure caption's total, the sum of the chart's bars, the sum of the
    table's column and today's bar and table cell."""
    figures = {}
    for series in ("delivered", "sent", "failed", "expired", "cancelled", "received"):
        bars = [int(v) for v in page.locator(f'svg[data-series="{series}"] rect').evaluate_all(
            "rects => rects.map(r => r.getAttribute('data-value'))")]
        cells = [int(v) for v in page.locator(f'#insight-table td[data-series="{series}"]')
                 .all_inner_texts()] if page.locator("#insight-table").count() else []
        today = page.locator(f'svg[data-series="{series}"] rect').last.get_attribute("data-day")
        row = page.locator(f'#insight-table tr[data-day="{today}"] td[data-series="{series}"]')
        figures[series] = {
            "total": int(page.locator(f'[data-total="{series}"]').inner_text()),
            "bars": sum(bars), "table": sum(cells), "today_bar": bars[-1],
            "today_cell": int(row.inner_text()) if row.count() else 0}
    return figures


def test_overview_charts_agree_with_messages_sent(page, gateway):
    """Two SMS sent here show in the overview's charts and its table, which agree; the page
    has no horizontal scroll at 390 px and keeps its CSP."""
    page.goto(url(gateway, "/"))
    before = _overview_figures(page)
    phones = api(gateway, action="device_status", api_key=gateway["key"])["data"]
    device_id = next(d["device_id"] for d in phones if d["name"] == "Test phone")
    for n in range(2):
        answer = api(gateway, action="send_sms", api_key=gateway["key"], phone_number=NUMBER,
                     message=f"Chart message {n}", device_id=device_id)
        assert answer["status"] == "success", answer
    deadline = time.time() + 60
    while time.time() < deadline:
        response = page.goto(url(gateway, "/"))
        after = _overview_figures(page)
        if after["delivered"]["total"] >= before["delivered"]["total"] + 2:
            break
        time.sleep(1)
    assert after["delivered"]["total"] == before["delivered"]["total"] + 2
    assert after["sent"]["total"] == before["sent"]["total"] + 2
    for series, f in after.items():
        assert f["total"] == f["bars"] == f["table"], (series, f)
        assert f["today_bar"] == f["today_cell"], (series, f)
    assert after["delivered"]["today_bar"] >= 2
    from chalicelib.surfaces.dashboard import web
    assert response.headers["content-security-policy"] == web.CSP
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    shoot(page, "overview-charts")
    page.goto(url(gateway, "/phones"))
    page.locator("a", has_text="Test phone").first.click()
    page.wait_for_url(re.compile(r"/dashboard/phones/[0-9a-f]+$"))
    assert int(page.locator('[data-figure="sent"]').inner_text()) >= 2
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    shoot(page, "phone-insight")
    assert not page.problems, page.problems


def test_csv_list_previews_bad_line_sends_valid_rows_once(page, gateway, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("number,name\n+8801712345670,Ann\nnot-a-number,Bob\n"
                       "+8801712345671,Cy\n")

    def upload_and_send():
        page.goto(url(gateway, "/csv"))
        page.get_by_label("CSV file").set_input_files(str(listing))
        page.get_by_label("Message template (optional)").fill("Hello {name} from a list")
        page.get_by_role("button", name="Preview").click()
        assert page.locator("#rows-valid").inner_text() == "2"
        assert page.locator("#invalid-rows [data-line]").all_inner_texts() == ["3"]
        return page.get_by_role("button", name="Send 2 messages")

    send = upload_and_send()
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_viewport_size(DESKTOP)
    shoot(page, "csv-preview")
    send.click()
    page.wait_for_url(re.compile(r"/dashboard/csv/[0-9a-f]{32}"))
    assert page.locator("#queued").inner_text() == "2"
    assert page.locator("#sent-summary").inner_text().startswith("2 queued now")
    shoot(page, "csv-progress")
    upload_and_send().click()  # the same file again: nothing more is sent
    page.wait_for_url(re.compile(r"/dashboard/csv/[0-9a-f]{32}"))
    assert page.locator("#sent-summary").inner_text().startswith(
        "0 queued now, 2 already sent before")
    assert page.locator("#queued").inner_text() == "2"
    history = api(gateway, action="get_history", api_key=gateway["key"], limit="100")
    assert json.dumps(history).count("from a list") == 2, history  # one message per row
    assert not page.problems, page.problems


def test_otp_from_try_it_is_verified_and_never_shown(page, gateway):
    page.goto(url(gateway, "/try"))
    page.locator("#otp-phone").select_option(
        page.locator("#otp-phone option", has_text="Test phone").get_attribute("value"))
    page.locator("#otp-number").fill("+8801712345679")
    page.get_by_role("button", name="Send OTP").click()
    assert "OTP sent" in page.inner_text("main")
    deadline, code = time.time() + 30, None
    while code is None and time.time() < deadline:
        lines = gateway["ledger"].read_text().splitlines() if gateway["ledger"].exists() else []
        for line in lines:
            sent = json.loads(line)
            if sent.get("phone_number") == "+8801712345679":
                code = re.search(r"\b(\d{6})\b", sent["message"])[1]
        time.sleep(0.5)
    assert code, "the simulated phone never sent the OTP"
    page.get_by_label("Code received").fill(code)
    page.get_by_role("button", name="Verify").click()
    assert "OTP verified" in page.inner_text("main")
    page.goto(url(gateway, "/messages"))
    assert code not in page.content()
    page.locator("a", has_text="+8801712345679").first.click()
    assert code not in page.content() and "******" in page.inner_text("#body")


def test_incoming_script_is_rendered_as_text(page, gateway):
    evil = "<script>alert(1)</script>"
    with open(gateway["inbox"], "a", encoding="utf-8") as inbox:
        inbox.write(json.dumps({"phone_number": "+8801700000000", "message": evil}) + "\n")
    page.goto(url(gateway, "/messages?type=incoming"))
    deadline = time.time() + 90
    while page.locator("td.text").count() == 0 and time.time() < deadline:
        time.sleep(1)
        page.reload()
    assert page.locator("td.text").first.inner_text() == evil
    shoot(page, "messages-incoming")
    page.locator("a", has_text="+8801700000000").first.click()
    assert page.locator("#body").inner_text() == evil
    assert page.locator("script:not([src])").count() == 0
    shoot(page, "message-incoming")
    assert not [d for d in page.dialogs if d[0] == "alert"]


def test_set_a_phone_pace_from_the_phones_page(page, gateway):
    page.goto(url(gateway, "/phones"))
    row = page.locator("tr", has_text="Test phone")
    field = row.get_by_label(re.compile(r"^Pace"))
    field.fill("0")
    row.get_by_role("button", name="Set the pace of Test phone").click()
    assert "0 or less would never send" in page.locator(".error").inner_text()
    assert "unpaced" in page.locator("tr", has_text="Test phone").inner_text()  # unchanged
    row = page.locator("tr", has_text="Test phone")
    row.get_by_label(re.compile(r"^Pace")).fill("600")
    row.get_by_role("button", name="Set the pace of Test phone").click()
    page.wait_for_url(re.compile(r"done=pace-saved"))
    assert "600 parts/h per SIM" in page.locator("tr", has_text="Test phone").inner_text()
    shoot(page, "phones-pace")
    row = page.locator("tr", has_text="Test phone")
    row.get_by_label(re.compile(r"^Pace")).fill("default")
    row.get_by_role("button", name="Set the pace of Test phone").click()
    page.wait_for_url(re.compile(r"done=pace-saved"))
    assert "unpaced" in page.locator("tr", has_text="Test phone").inner_text()


def device_call(gateway, method, path, body=None):
    """The device protocol as the Demo phone (no agent runs for it in these tests)."""
    port = int(gateway["url"].rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    connection.request(method, path, body=json.dumps(body) if body is not None else None,
                       headers={"Authorization": f"Bearer {gateway['device_token']}",
                                "Content-Type": "application/json"})
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return answer


# Rendered size of an element's text: its font size times the scale of the SVG it is drawn in.
RENDERED_FONT = """el => parseFloat(getComputedStyle(el).fontSize)
                   * (el.ownerSVGElement ? el.ownerSVGElement.getScreenCTM().a : 1)"""
BOX = "el => { const r = el.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; }"
REASONS = ("RESULT_ERROR_GENERIC_FAILURE", "RESULT_ERROR_NO_SERVICE (no signal at the time)")


def test_failure_reasons_chart_and_pace_column_fit_at_both_widths(page, gateway):
    """A phone's "Failures by reason" chart labels each bar in the page's text size, whole,
    beside its bar and inside the card (the label was drawn ~31 px high and ran into its bar,
    cut off as RESULT_ERROR_GENERIC_...), and the Phones table's pace cell is two lines (it
    wrapped to five), at 1280 px and at 390 px."""
    for reason in REASONS:
        sent = api(gateway, action="send_sms", api_key=gateway["api_key"],
                   phone_number=NUMBER, message=f"fails: {reason}", device_id=1)
        assert sent["status"] == "success", sent
        taken = []
        deadline = time.time() + 30
        while not taken and time.time() < deadline:
            taken = device_call(gateway, "GET", "/device/jobs?wait=1&max=10")["jobs"]
        assert [job["message_id"] for job in taken] == [sent["data"]["message_id"]]
        device_call(gateway, "POST", "/device/reports", {"reports": [
            {"message_id": taken[0]["message_id"], "status": "failed", "reason": reason}]})
    card = page.locator("section.card", has_text="Failures by reason")
    deadline = time.time() + 30  # the insight counts failures from the table's stream
    while True:
        page.goto(url(gateway, f"/phones/{gateway['device_uid']}"))
        if card.locator("tbody tr").count() == len(REASONS) or time.time() > deadline:
            break
        time.sleep(1)
    figure = card.locator("figure")
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        left, right, _, _ = figure.evaluate(BOX)
        labels = figure.locator("text, .share-label")
        assert labels.count() == len(REASONS)
        for n in range(labels.count()):
            label = labels.nth(n)
            size = label.evaluate(RENDERED_FONT)
            assert 11 <= size <= 16, (viewport, label.text_content(), size)
            assert label.text_content() in REASONS, label.text_content()
            box = label.evaluate(BOX)
            assert left <= box[0] and box[1] <= right, (viewport, box, (left, right))
            bar = figure.locator("rect").nth(n).evaluate(BOX)
            assert box[1] <= bar[0], (viewport, "the label runs into its bar", box, bar)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.set_viewport_size(DESKTOP)
    shoot(page, "phone-failures")

    for window, lines in (("none", 2), ("20", 3)):  # a window's line may break in two
        page.goto(url(gateway, "/phones"))
        row = page.locator("tr", has_text="Demo phone")
        row.get_by_label(re.compile(r"^Pace")).fill("600")
        row.get_by_label(re.compile(r"^Window")).fill(window)
        row.get_by_role("button", name="Set the pace of Demo phone").click()
        page.wait_for_url(re.compile(r"done=pace-saved"))
        cell = page.locator("tr", has_text="Demo phone").locator('td[data-label="Pace"]')
        assert "600 parts/h per SIM" in cell.inner_text()
        if window != "none":
            assert "20 parts/30 min per phone" in cell.inner_text()
        for viewport in (DESKTOP, PHONE):
            page.set_viewport_size(viewport)
            line = cell.evaluate("el => parseFloat(getComputedStyle(el).lineHeight)")
            # the text's own box (the cell itself is as tall as its row's form)
            height = cell.evaluate("el => { const r = document.createRange(); "
                                   "r.selectNodeContents(el); return r.getBoundingClientRect()"
                                   ".height; }")
            assert height <= lines * line + 2, (viewport, window, height, line)
            wrap = page.locator("table.cards").locator("xpath=..")
            assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth"), str(
                (viewport, window, wrap.evaluate(
                    "el => [el.scrollWidth, el.clientWidth, ...[...el.querySelectorAll("
                    "'tr:nth-child(1) td')].map(t => Math.round(t.getBoundingClientRect()"
                    ".width))]")))
        page.set_viewport_size(DESKTOP)
    shoot(page, "phones-pace-window")
    row = page.locator("tr", has_text="Demo phone")
    row.get_by_label(re.compile(r"^Pace")).fill("default")
    row.get_by_label(re.compile(r"^Window")).fill("default")
    row.get_by_role("button", name="Set the pace of Demo phone").click()
    page.wait_for_url(re.compile(r"done=pace-saved"))
    assert not page.problems, page.problems


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint on 127.0.0.1 that answers 200 and keeps what it got."""
    got = []

    def do_POST(self):  # noqa: N802 (the http.server name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.got.append((dict(self.headers), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/smsgw-events"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_add_a_webhook_and_see_a_test_delivery_in_its_log(page, gateway, receiver):
    page.goto(url(gateway, "/webhooks"))
    page.get_by_label("Endpoint URL").fill(receiver)
    page.get_by_label("Description (optional)").fill("browser test receiver")
    page.get_by_label("sms.delivered").check()
    page.get_by_label("sms.received").check()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.locator("#new-secret-value").input_value()
    assert secret.startswith("whsec_") and "will not be shown again" in page.inner_text("main")
    page.get_by_role("button", name="Copy").focus()
    shoot(page, "webhooks-new-secret")
    page.goto(url(gateway, "/webhooks"))
    assert secret not in page.content()  # shown once only
    row = page.locator("tr", has_text=receiver)
    assert "sms.delivered, sms.received" in row.inner_text() and "enabled" in row.inner_text()
    shoot(page, "webhooks")
    row.get_by_role("button", name="Send test event").click()
    page.wait_for_url(re.compile(r"/dashboard/webhooks/wh_[0-9a-f]{16}\?sent="))
    event_id = page.url.rsplit("sent=", 1)[1]
    # The page reloads itself until the local gateway's pump has delivered the event.
    logged = page.locator("tr", has_text=event_id)
    logged.wait_for(timeout=45000)
    assert "delivered" in logged.inner_text() and "200" in logged.inner_text()
    assert [b["id"] for _, b in Receiver.got] == [event_id]
    headers = Receiver.got[0][0]
    assert headers["X-Smsgw-Signature"].startswith("v1=")
    shoot(page, "webhook-deliveries")
    logged.get_by_role("button", name=f"Redeliver {event_id}").click()
    page.wait_for_url(re.compile(r"done=webhook-redelivered"))
    deadline = time.time() + 45
    while len(Receiver.got) < 2 and time.time() < deadline:
        time.sleep(0.5)
    assert [b["id"] for _, b in Receiver.got] == [event_id, event_id]  # same event again


def test_messages_filters_and_remaining_pages(page, gateway):
    page.goto(url(gateway, "/messages"))
    page.get_by_label("Status").select_option("delivered")
    page.get_by_role("button", name="Filter").click()
    assert "Hello from the browser test" in page.inner_text("table")
    shoot(page, "messages")
    page.get_by_label("Number").fill("not a number")
    page.get_by_role("button", name="Filter").click()
    assert page.locator(".error").count() == 1
    page.goto(url(gateway, "/"))
    shoot(page, "overview")
    page.goto(url(gateway, "/api"))
    example = page.locator("#curl-example").inner_text()
    assert example.startswith(f"curl -X POST {gateway['url']}/myAPI.php")
    shoot(page, "api")
    # The page's curl example, run as shown with a live key, sends.
    if subprocess.run(["which", "curl"], capture_output=True).returncode == 0:
        command = example.replace("YOUR_KEY", gateway["key"]).replace("\\\n", " ")
        ran = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
        assert json.loads(ran.stdout)["message"] == "SMS queued successfully.", ran.stdout
    page.goto(url(gateway, "/no-such-page"))
    shoot(page, "not-found")
    assert not page.problems, page.problems  # no CSP violation or script error anywhere


def test_alert_mails_on_then_stopped_from_the_mails_link(page, gateway):
    """The account page's opt-in, then the link every alert mail carries: opening it only asks
    (mail scanners open links); its button unsubscribes (RFC 8058's POST has no form token)."""
    import boto3
    page.goto(url(gateway, "/account"))
    page.get_by_role("button", name="Mail me alerts").click()
    assert page.get_by_role("button", name="Stop alert mails").count() == 1
    dynamodb = boto3.client("dynamodb", endpoint_url=gateway["aws_endpoint"],
                            region_name="us-east-1", aws_access_key_id="local",
                            aws_secret_access_key="local")
    [table] = [t for t in dynamodb.list_tables()["TableNames"] if "alert" in t.lower()
               and "subscr" in t.lower()]
    [sub] = dynamodb.scan(TableName=table)["Items"]
    link = url(gateway, f"/unsubscribe/{sub['account_id']['S']}/{sub['token']['S']}")
    page.goto(link)
    assert dynamodb.scan(TableName=table)["Items"]  # opening the link changed nothing
    shoot(page, "unsubscribe")
    page.get_by_role("button", name="Stop alert mails").click()
    assert "You will get no more alert mails." in page.locator("main").inner_text()
    assert dynamodb.scan(TableName=table)["Items"] == []
    page.goto(url(gateway, "/account"))
    assert page.get_by_role("button", name="Mail me alerts").count() == 1
    assert not page.problems, page.problems


def test_sign_out_everywhere(page, browser, gateway):
    other = browser.new_context()
    second = other.new_page()
    second.goto(url(gateway, "/signin"))
    second.get_by_label("Email").fill("demo@example.com")
    second.get_by_label("Password").fill(PASSWORD)
    second.get_by_role("button", name="Sign in").click()
    second.wait_for_url(re.compile(r"/dashboard/$"))
    page.goto(url(gateway, "/account"))
    shoot(page, "profile")
    page.get_by_role("button", name="Sign out everywhere").click()
    page.wait_for_url(re.compile(r"/dashboard/signin"))
    second.goto(url(gateway, "/keys"))
    assert "/dashboard/signin" in second.url  # the other browser is signed out too
    other.close()
