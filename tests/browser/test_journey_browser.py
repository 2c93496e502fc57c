"""Issue 33's proof, in a real browser (Debian's chromium driven by Playwright) against one local
gateway started as a user starts it (no SMSGW_ variables: sign-up open by the local default),
reading the mails it writes as .eml files and calling its APIs over real HTTP.

The public journey (test_a*): sign up, open the verification mail's link, make a key, pair a
phone (the simulated agent) and send an SMS through REST v1 with the key, invite a viewer who
joins and cannot make keys, forget the password and reset it by mail, export the account (the
zip's files checked), delete it by typing its name; the key is then refused.

The operator journey (test_b*): `smsgw operator add` prints a set-password link; the operator
signs in, sees the demo account at /dashboard/operator/, suspends it (its key is refused with
"suspended"), resumes it, and sets a messages-per-day quota (the send past it is refused with the
quota named).

Each step is one test, in order, sharing the journey's state; a step after a failed one fails
naming the step that broke the journey. Screenshots: docs/screenshots/journey-NN-*.png (1280 px
wide; a few also at 390 px, *-390px.png).
"""
# ruff: noqa: F811 (the browser fixture imported from test_dashboard_browser is a parameter)
import email
import email.policy
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.browser.test_dashboard_browser import (  # noqa: F401 (its browser fixture)
    DESKTOP,
    PHONE,
    ROOT,
    SHOTS,
    browser,
    url,
)
from tests.localgw_helpers import GatewayProcess, gateway_env, wait_for

OWNER, VIEWER, OPERATOR = "founder@example.com", "viewer@example.com", "operator@example.com"
ACCOUNT = "Journey Bakery"
PASSWORD, NEW_PASSWORD = "my own long passphrase", "a newer long passphrase"
VIEWER_PASSWORD, OPERATOR_PASSWORD = "the viewer's passphrase", "the operator's passphrase"
CUSTOMER = "+8801712345678"
AGENT_ENV = {"PYTHONPATH": str(ROOT / "agent"), "SMSGW_DEFAULT_PACE_PER_HOUR": "0",
             "SMSGW_PACE_WINDOW_PARTS": "0"}


# --- the gateway, the browser and the journey's state ----------------------------------------

@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """One local gateway for both journeys (the demo phone's agent off: the public journey
    pairs its own phone, the operator journey's sends only need to be accepted)."""
    process = GatewayProcess("--no-agent", user=True, env=AGENT_ENV)
    info = dict(process.info, dir=tmp_path_factory.mktemp("journey"), agent=None)
    yield info
    if info["agent"] is not None and info["agent"].poll() is None:
        info["agent"].send_signal(signal.SIGINT)
        try:
            info["agent"].wait(timeout=15)
        except subprocess.TimeoutExpired:
            info["agent"].kill()
    process.stop()


def _tab(browser, problems):
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(20000)
    tab.dialogs = []
    tab.on("dialog", lambda d: (tab.dialogs.append((d.type, d.message)), d.accept()))
    # Pages answered 4xx on purpose log "Failed to load resource"; anything else is a finding.
    tab.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
           and problems.append(m.text))
    tab.on("pageerror", lambda e: problems.append(str(e)))
    return tab


class Journey(dict):
    """The state a journey's steps pass on, and which step broke it."""

    def __init__(self, browser):
        super().__init__()
        self.browser, self.problems, self.broken, self.shots = browser, [], None, []

    def tab(self, who):
        """Each person has their own browser context (own cookies)."""
        if who not in self:
            self[who] = _tab(self.browser, self.problems)
        return self[who]


@pytest.fixture(scope="module")
def public(browser):
    journey = Journey(browser)
    yield journey
    assert journey.problems == []  # no CSP violation or script error on any page


@pytest.fixture(scope="module")
def operator(browser):
    journey = Journey(browser)
    yield journey
    assert journey.problems == []


@pytest.fixture
def step(request):
    """The journey this step belongs to; fails at once if an earlier step broke it, and
    records this step as the breaking one if it fails (tests/browser/conftest.py)."""
    journey = request.getfixturevalue("public" if request.node.name.startswith("test_a")
                                      else "operator")
    if journey.broken:
        pytest.fail(f"the journey broke at {journey.broken}")
    yield journey
    if getattr(request.node, "call_failed", False):
        journey.broken = request.node.name


# --- helpers: screenshots, mails, HTTP ------------------------------------------------------

def snap(page, number: int, name: str, narrow: bool = False):
    """docs/screenshots/journey-NN-name.png at 1280 px (and -390px.png when `narrow`)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = f"journey-{number:02d}-{name}"
    page.screenshot(path=str(SHOTS / f"{stem}.png"), full_page=True)
    if narrow:
        page.set_viewport_size(PHONE)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], stem
        page.screenshot(path=str(SHOTS / f"{stem}-390px.png"), full_page=True)
        page.set_viewport_size(DESKTOP)


def mails_to(gateway, address) -> list:
    """The mails the gateway wrote to `address`, oldest first."""
    folder = Path(gateway["mail"])
    paths = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns) \
        if folder.exists() else []
    found = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
             for p in paths]
    return [m for m in found if m["To"] == address]


def the_mail(gateway, address, subject_has: str):
    """The one mail to `address` whose subject has `subject_has`, and its one gateway link."""
    mails = [m for m in mails_to(gateway, address) if subject_has in m["Subject"]]
    assert len(mails) == 1, [m["Subject"] for m in mails_to(gateway, address)]
    links = re.findall(re.escape(gateway["url"]) + r"/\S+\?token=[\w-]+", mails[0].get_content())
    assert len(set(links)) == 1, links
    return mails[0], links[0]


def rest(gateway, method, path, key, body=None):
    """REST v1 over HTTP with an API key: (status, JSON answer)."""
    answer = requests.request(method, gateway["url"] + path, json=body, timeout=30,
                              headers={"Authorization": f"Bearer {key}"})
    return answer.status_code, answer.json()


def myapi(gateway, key, **params):
    """POST /myAPI.php as an application would: the JSON envelope."""
    answer = requests.post(gateway["url"] + "/myAPI.php", data=dict(params, api_key=key),
                           timeout=30)
    return answer.json()


def sign_in(page, gateway, address, password):
    page.goto(url(gateway, "/signin"))
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def set_password_by_link(page, link, password):
    page.goto(link)
    page.get_by_label("New password").fill(password)
    page.get_by_label("Repeat it").fill(password)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(re.compile(r"/dashboard/signin\?done=password-set"))


def cli(gateway, *args) -> subprocess.CompletedProcess:
    """The admin CLI against the local gateway's emulator, as `smsgw local env` sets it up."""
    env = gateway_env(user=True, AWS_ENDPOINT_URL=gateway["aws_endpoint"], SMSGW_STAGE="local",
                      AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local",
                      AWS_DEFAULT_REGION="us-east-1")
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


# --- A. the public journey -------------------------------------------------------------------

def test_a1_sign_up(step, gateway):
    page = step.tab("owner")
    page.goto(url(gateway, "/signin"))
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Account name").fill(ACCOUNT)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Repeat it").fill(PASSWORD)
    snap(page, 1, "signup", narrow=True)
    page.get_by_role("button", name="Create account").click()
    assert f"We sent a mail to {OWNER}" in page.inner_text("main")
    snap(page, 2, "check-mail")


def test_a2_open_the_verification_link(step, gateway):
    page = step["owner"]
    mail, link = the_mail(gateway, OWNER, "Verify your email")
    assert link.startswith(url(gateway, "/verify?token="))
    page.goto(link)
    assert ACCOUNT in page.inner_text("main")
    snap(page, 3, "verify-email")
    page.get_by_role("button", name="Verify and open my dashboard").click()
    page.wait_for_url(re.compile(r"/dashboard/\?done=email-verified"))
    assert page.locator("h1").inner_text() == ACCOUNT
    assert "Your email is verified" in page.inner_text("main")
    snap(page, 4, "dashboard", narrow=True)


def test_a3_make_a_key(step, gateway):
    page = step["owner"]
    page.goto(url(gateway, "/keys"))
    page.get_by_label("Label").fill("shop server")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key-value").input_value()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    snap(page, 5, "key")
    status, devices = rest(gateway, "GET", "/v1/devices", key)
    assert status == 200 and devices["devices"] == [], devices  # a new account: no phone yet
    step["key"] = key


def test_a4_send_an_sms_through_the_api(step, gateway):
    """Pair a phone from the dashboard (the agent's `pair` command with the code shown, then
    the agent on its simulated SIM), POST /v1/messages with the key, and see the phone send
    it: the agent's ledger has the text and the API answers `delivered`."""
    page, phone_dir = step["owner"], gateway["dir"]
    page.goto(url(gateway, "/phones"))
    page.get_by_label("Phone name").fill("Shop phone")
    page.get_by_role("button", name="Pair a phone").click()
    page.wait_for_url(re.compile(r"/dashboard/pair/"))
    code = page.locator("#pair-code").inner_text()
    config = phone_dir / "agent.toml"
    env = gateway_env(user=True, **AGENT_ENV)
    paired = subprocess.run([sys.executable, "-m", "smsgw_agent", "pair", gateway["url"], code,
                             "--config", str(config)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert paired.returncode == 0, paired.stderr
    ledger = phone_dir / "ledger.jsonl"
    gateway["agent"] = subprocess.Popen(
        [sys.executable, "-m", "smsgw_agent", "--config", str(config), "--backend", "simulator",
         "--journal", str(phone_dir / "journal.sqlite3"), "--poll-wait", "1",
         "--delivery-delay", "0.2", "--ledger", str(ledger)], cwd=ROOT,
        env={**env, "SMSGW_HEARTBEAT_SECONDS": "2"})
    page.wait_for_selector("text=Paired", timeout=30000)  # the pair page refreshes by itself

    def phone_running():
        status, answer = rest(gateway, "GET", "/v1/devices", step["key"])
        return [d["status"] for d in answer["devices"]] == ["running"]

    wait_for(phone_running, 30, "the paired phone to be running")
    status, sent = rest(gateway, "POST", "/v1/messages", step["key"], {
        "recipients": [CUSTOMER], "message": "Your bread is ready"})
    assert status == 202, sent
    [message] = sent["messages"]

    def ledger_has_it():
        return ledger.exists() and any(json.loads(line).get("message") == "Your bread is ready"
                                       for line in ledger.read_text().splitlines())

    wait_for(ledger_has_it, 30, "the paired phone to send the SMS")

    def delivered():
        return rest(gateway, "GET", f"/v1/messages/{message['id']}", step["key"])[1].get(
            "status") == "delivered"

    wait_for(delivered, 30, "the message to be delivered")
    page.goto(url(gateway, f"/messages/outgoing/{message['id']}"))
    assert page.locator("#status").inner_text() == "delivered"
    snap(page, 6, "message-delivered", narrow=True)
    step["message_id"] = message["id"]


def test_a5_invite_a_viewer_who_cannot_make_keys(step, gateway):
    """The owner invites a viewer from the Team page; the viewer follows the mailed link in
    their own browser, joins, finds no "Create key", and a forced key POST (with their
    session's own CSRF token) is refused naming the role."""
    page = step["owner"]
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Team").click()
    page.get_by_label("Email").fill(VIEWER)
    page.get_by_label("Role").select_option("viewer")
    page.get_by_role("button", name="Invite").click()
    assert f"Invitation mailed to {VIEWER}" in page.inner_text("main")
    mail, link = the_mail(gateway, VIEWER, "invited")
    assert ACCOUNT in mail["Subject"] and link.startswith(url(gateway, "/join?token="))
    viewer = step.tab("viewer")
    viewer.goto(link)
    assert "as viewer" in viewer.inner_text("main")
    snap(viewer, 7, "join-as-viewer")
    viewer.get_by_label("Password").fill(VIEWER_PASSWORD)
    viewer.get_by_label("Repeat it").fill(VIEWER_PASSWORD)
    viewer.get_by_role("button", name="Join").click()
    viewer.wait_for_url(re.compile(r"/dashboard/\?done=joined"))
    assert viewer.locator("h1").inner_text() == ACCOUNT
    viewer.goto(url(gateway, "/keys"))
    assert viewer.get_by_role("button", name="Create key").count() == 0
    assert "You are a viewer" in viewer.inner_text("main")
    assert "shop server" in viewer.inner_text("main")  # they see the keys, read-only
    snap(viewer, 8, "viewer-keys", narrow=True)
    csrf = viewer.locator("input[name=csrf]").first.input_value()
    forced = viewer.request.post(url(gateway, "/keys"), form={"csrf": csrf, "label": "sneaky"},
                                 headers={"Origin": gateway["url"]})
    assert forced.status == 403 and "needs the developer role" in forced.text()
    page.goto(url(gateway, "/team"))
    members = page.locator("tr", has_text=VIEWER).inner_text()
    assert "viewer" in members and "(no password yet)" not in members
    page.goto(url(gateway, "/keys"))
    assert "sneaky" not in page.inner_text("main")


def test_a6_forget_the_password_and_reset_it_by_mail(step, gateway):
    page = step.tab("forgetful owner")  # a browser where the owner is not signed in
    page.goto(url(gateway, "/signin"))
    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Email").fill(OWNER)
    page.get_by_role("button", name="Mail me a link").click()
    assert f"We sent a mail to {OWNER}" in page.inner_text("main")
    _, link = the_mail(gateway, OWNER, "Reset")
    set_password_by_link(page, link, NEW_PASSWORD)
    snap(page, 9, "password-reset")
    sign_in(page, gateway, OWNER, PASSWORD)
    assert "Wrong email or password" in page.inner_text("main")
    sign_in(page, gateway, OWNER, NEW_PASSWORD)
    page.wait_for_url(re.compile(r"/dashboard/$"))
    assert page.locator("h1").inner_text() == ACCOUNT
    # The reset ended the owner's other session (the first browser's).
    step["owner"].goto(url(gateway, "/keys"))
    assert "/dashboard/signin" in step["owner"].url
    step["owner"] = page


def test_a7_export_the_account(step, gateway):
    pytest.fail("step 7 (export, branch export) is not built yet")


def test_a8_delete_the_account_then_the_key_fails(step, gateway):
    pytest.fail("step 8 (deletion, branch export) is not built yet")


# --- B. the operator journey -----------------------------------------------------------------

def test_b1_operator_add_prints_a_set_password_link(step, gateway):
    pytest.fail("journey B (branch operator) is not built yet")
