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
quota named); the account the public journey deleted is not offered to it as active.

Each step is one test, in order, sharing the journey's state; a step after a failed one fails
naming the step that broke the journey. Screenshots: docs/screenshots/journey-NN-*.png (1280 px
wide; a few also at 390 px, *-390px.png).
"""
# ruff: noqa: F811 (the browser fixture imported from test_dashboard_browser is a parameter)
import csv
import email
import email.policy
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from tests.browser.test_dashboard_browser import (  # noqa: F401 (its browser fixture)
    DESKTOP,
    PHONE,
    ROOT,
    SHOTS,
    browser,
    join,
    url,
)
from tests.localgw_helpers import GatewayProcess, gateway_env, stop_process, wait_for

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
    """One local gateway for both journeys, as ./run-local starts it (its demo phone takes the
    demo account's messages, used by the operator journey; the public journey pairs its own)."""
    process = GatewayProcess(user=True, env=AGENT_ENV)
    info = dict(process.info, dir=tmp_path_factory.mktemp("journey"), agent=None)
    yield info
    if info["agent"] is not None:
        stop_process(info["agent"])
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
        self.browser, self.problems, self.broken = browser, [], None

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

# The journey's screenshots in order: docs/screenshots/journey-NN-NAME.png (docs/dashboard.md).
JOURNEY_SHOTS = ("signup", "check-mail", "verify-email", "dashboard", "key", "phone-paired",
                 "message-delivered", "team-invited", "join-as-viewer", "viewer-keys",
                 "password-reset", "account-leaving", "delete-account", "account-deleted",
                 "operator-console", "operator-suspended", "operator-quota")


def snap(page, name: str, narrow: bool = False):
    """docs/screenshots/journey-NN-name.png at 1280 px (and -390px.png when `narrow`, after
    checking the page has no horizontal scroll at 390 px)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = f"journey-{JOURNEY_SHOTS.index(name) + 1:02d}-{name}"
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
    snap(page, "signup", narrow=True)
    page.get_by_role("button", name="Create account").click()
    assert f"We sent a mail to {OWNER}" in page.inner_text("main")
    snap(page, "check-mail")


def test_a2_open_the_verification_link(step, gateway):
    page = step["owner"]
    mail, link = the_mail(gateway, OWNER, "Verify your email")
    assert link.startswith(url(gateway, "/verify?token="))
    page.goto(link)
    assert ACCOUNT in page.inner_text("main")
    snap(page, "verify-email")
    page.get_by_role("button", name="Verify and open my dashboard").click()
    page.wait_for_url(re.compile(r"/dashboard/\?done=email-verified"))
    assert page.locator("h1").inner_text() == ACCOUNT
    assert "Your email is verified" in page.inner_text("main")
    snap(page, "dashboard", narrow=True)


def test_a3_make_a_key(step, gateway):
    page = step["owner"]
    page.goto(url(gateway, "/keys"))
    page.get_by_label("Label").fill("shop server")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key-value").input_value()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    snap(page, "key")
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
    step["agent_log"] = open(phone_dir / "agent.log", "w")  # closed when the agent has stopped
    gateway["agent"] = subprocess.Popen(
        [sys.executable, "-m", "smsgw_agent", "--config", str(config), "--backend", "simulator",
         "--journal", str(phone_dir / "journal.sqlite3"), "--poll-wait", "1",
         "--delivery-delay", "0.2", "--ledger", str(ledger)], cwd=ROOT, env=env,
        stderr=step["agent_log"])
    # The page reloads by itself every 3 s (test_dashboard_browser.py); here it is reloaded
    # until it says so, a reload racing the page's own being retried.
    from playwright.sync_api import Error as PlaywrightError
    pair_page = page.url

    def says_paired():
        try:
            page.goto(pair_page)
        except PlaywrightError:  # net::ERR_ABORTED: the page's own reload came first
            return False
        return page.get_by_role("heading", name="Paired").is_visible()

    wait_for(says_paired, 30, "the pairing page to say Paired", every=1)
    snap(page, "phone-paired")

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
    snap(page, "message-delivered", narrow=True)
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
    assert "viewer" in page.locator("tr", has_text=VIEWER).inner_text()  # pending
    snap(page, "team-invited")
    mail, link = the_mail(gateway, VIEWER, "invited")
    assert ACCOUNT in mail["Subject"] and link.startswith(url(gateway, "/join?token="))
    viewer = step.tab("viewer")
    viewer.goto(link)
    assert "as viewer" in viewer.inner_text("main")
    snap(viewer, "join-as-viewer")
    join(viewer, VIEWER_PASSWORD)
    assert viewer.locator("h1").inner_text() == ACCOUNT
    viewer.goto(url(gateway, "/keys"))
    assert viewer.get_by_role("button", name="Create key").count() == 0
    assert "You are a viewer" in viewer.inner_text("main")
    assert "shop server" in viewer.inner_text("main")  # they see the keys, read-only
    snap(viewer, "viewer-keys", narrow=True)
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
    snap(page, "password-reset")
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
    """The owner downloads the export from the Account page: a zip with the message sent in
    step 4 (delivered), the paired phone and the account's name; the viewer may not export."""
    page = step["owner"]
    page.goto(url(gateway, "/account"))
    snap(page, "account-leaving")
    with page.expect_download() as download:
        page.locator("#export-download").click()
    zipped = download.value
    assert re.fullmatch(r"smsgw-export-\w+-\d{4}-\d\d-\d\d\.zip", zipped.suggested_filename)
    archive = zipfile.ZipFile(io.BytesIO(Path(zipped.path()).read_bytes()))
    kinds = ("messages", "incoming", "phones", "webhooks", "opt_outs")
    assert sorted(archive.namelist()) == sorted(
        ["account.json"] + [f"{k}.{ext}" for k in kinds for ext in ("csv", "json")])
    account = json.loads(archive.read("account.json"))
    assert account["name"] == ACCOUNT
    assert account["rows"] == {"messages": 1, "incoming": 0, "phones": 1, "webhooks": 0,
                               "opt_outs": 0}
    [message] = json.loads(archive.read("messages.json"))
    assert (message["message_id"], message["body"], message["status"], message["phone_number"]
            ) == (step["message_id"], "Your bread is ready", "delivered", CUSTOMER)
    [phone] = csv.DictReader(io.StringIO(archive.read("phones.csv").decode()))
    assert phone["name"] == "Shop phone"
    refused = step["viewer"].request.get(url(gateway, "/account/export"))
    assert refused.status == 403 and refused.headers["content-type"].startswith("text/html")


def test_a8_delete_the_account_then_the_key_fails(step, gateway):
    """A wrong name deletes nothing; the account's name deletes it: the owner lands signed
    out, the key that worked a moment before is refused, the phone's agent is refused and
    stops, the viewer's session is over, and the owner's password no longer signs in."""
    page, key = step["owner"], step["key"]
    page.goto(url(gateway, "/account"))
    page.locator("#delete-link").click()
    page.wait_for_url(re.compile(r"/dashboard/account/delete$"))
    page.get_by_label("Type the account's name").fill("Journey Bakery!")
    page.get_by_role("button", name="Delete the account").click()
    refusal = page.get_by_role("alert").all_inner_texts()
    assert refusal[0] == f"To delete the account, type its name exactly: {ACCOUNT}"
    assert rest(gateway, "GET", "/v1/devices", key)[0] == 200  # a wrong name deleted nothing
    page.get_by_label("Type the account's name").fill(ACCOUNT)
    snap(page, "delete-account", narrow=True)
    page.get_by_role("button", name="Delete the account").click()
    page.wait_for_url(re.compile(r"/dashboard/signin\?done=account-deleted"))
    snap(page, "account-deleted")
    # The account's keys are deleted with it: its key gets the unknown key's answer (not a
    # suspension's, nor a phone's or a whitelist's), where it worked a moment before.
    status, refused = rest(gateway, "GET", "/v1/devices", key)
    assert (status, refused["code"], refused["detail"]) == (
        401, "unauthorized", "Invalid API key."), refused
    answer = myapi(gateway, key, action="send_sms", phone_number=CUSTOMER, message="After")
    assert (answer["data"]["error_code"], answer["message"]) == (
        "unauthorized", "Invalid API key."), answer
    step["viewer"].goto(url(gateway, "/keys"))
    assert "/dashboard/signin" in step["viewer"].url
    agent = gateway["agent"]
    agent.wait(timeout=30)  # the device token is refused: the agent stops by itself
    assert agent.returncode == 1
    step["agent_log"].close()
    assert "the gateway refused this device" in (gateway["dir"] / "agent.log").read_text()
    sign_in(page, gateway, OWNER, NEW_PASSWORD)
    assert "Wrong email or password" in page.inner_text("main")
    assert len(refusal) == 1, f"the delete page showed its error {len(refusal)} times"
    step["deleted"] = True


# --- B. the operator journey -----------------------------------------------------------------

def test_b1_operator_add_prints_a_set_password_link(step, gateway):
    done = cli(gateway, "operator", "add", OPERATOR, "--url", gateway["url"])
    assert done.returncode == 0, done.stderr
    [link] = re.findall(r"http://\S+", done.stdout)
    assert link.startswith(url(gateway, "/set-password?token=")), done.stdout
    step["link"] = link


def test_b2_the_operator_sets_a_password_and_signs_in(step, gateway):
    page = step.tab("operator")
    set_password_by_link(page, step["link"], OPERATOR_PASSWORD)
    sign_in(page, gateway, OPERATOR, OPERATOR_PASSWORD)
    page.wait_for_url(re.compile(r"/dashboard/"))
    page.goto(url(gateway, "/operator/"))
    assert page.locator("h1").inner_text() == "Operator"


def demo_row(page):
    return page.locator("#accounts tr", has_text="demo@example.com")


def test_b3_the_operator_sees_the_account(step, gateway):
    page = step["operator"]
    row = demo_row(page)
    assert row.count() == 1
    text = row.inner_text()
    assert "Demo" in text and gateway["account_id"] in text and "active" in text
    snap(page, "operator-console", narrow=True)


def test_b4_suspend_then_the_key_says_suspended(step, gateway):
    page, key = step["operator"], gateway["api_key"]
    assert myapi(gateway, key, action="device_status")["status"] == "success"
    demo_row(page).get_by_role("button", name="Suspend").click()
    assert page.locator("#operator-done").inner_text() == "Demo is suspended."
    assert page.dialogs and page.dialogs[-1][0] == "confirm"
    assert "suspended" in demo_row(page).locator(".state").inner_text()
    snap(page, "operator-suspended")
    answer = myapi(gateway, key, action="send_sms", phone_number=CUSTOMER, message="Hi")
    assert answer["data"]["error_code"] == "account_suspended", answer
    assert "Account 'Demo'" in answer["message"] and "is suspended" in answer["message"]
    status, refused = rest(gateway, "GET", "/v1/devices", key)
    assert status == 403 and "suspended" in refused["detail"], refused


def test_b5_resume_then_the_key_works(step, gateway):
    page, key = step["operator"], gateway["api_key"]
    demo_row(page).get_by_role("button", name="Resume").click()
    assert page.locator("#operator-done").inner_text() == "Demo is active again."
    resumed = myapi(gateway, key, action="device_status")
    assert resumed["status"] == "success", resumed
    # The demo phone waited out the suspension (backing off, not exiting) and is heard again.
    heard_before = resumed["data"][0]["last_seen"]
    wait_for(lambda: myapi(gateway, key, action="device_status")["data"][0]["last_seen"]
             > heard_before, 90, "the demo phone to be heard again after the resume", every=1)


def test_b6_a_messages_per_day_quota_refuses_the_send_past_it(step, gateway):
    """The demo account sent nothing today: with a quota of 2, two sends are accepted and
    the third is refused naming the quota and when it resets; the audit log lists the
    operator's actions."""
    page, key = step["operator"], gateway["api_key"]
    row = demo_row(page)
    row.locator("summary", has_text="Quotas").click()
    row.get_by_label("Quota", exact=True).select_option("messages_per_day")
    row.get_by_label("Limit").fill("2")
    row.get_by_role("button", name="Set quota").click()
    assert page.locator("#operator-done").inner_text() == "Demo: messages per day set to 2."
    for n in (1, 2):
        answer = myapi(gateway, key, action="send_sms", phone_number=CUSTOMER,
                       message=f"Within the quota {n}")
        assert answer["status"] == "success", answer
    answer = myapi(gateway, key, action="send_sms", phone_number=CUSTOMER,
                   message="Past the quota")
    assert answer["status"] == "error", answer
    quota = {k: answer["data"].get(k) for k in ("error_code", "quota", "limit")}
    assert quota == {"error_code": "quota_exceeded", "quota": "messages_per_day", "limit": 2}
    assert "2 messages per day" in answer["message"] and "resets at" in answer["message"]
    status, refused = rest(gateway, "POST", "/v1/messages", key, {
        "recipients": [CUSTOMER], "message": "Past the quota too"})
    assert status == 429 and "messages per day" in json.dumps(refused), refused
    log = page.locator("#audit-log").inner_text()
    for action in ("suspend", "resume", "set quota", "messages_per_day = 2"):
        assert action in log, log
    snap(page, "operator-quota", narrow=True)


def test_b7_the_deleted_account_is_not_offered_as_active(step, gateway, public):
    """The public journey's account, deleted in step 8 and waiting for its purge, is not shown
    to the operator as an active account to suspend (absent, or marked deleted)."""
    if not public.get("deleted"):
        pytest.fail(f"the public journey did not delete its account (broke at {public.broken})")
    page = step["operator"]
    page.goto(url(gateway, "/operator/"))
    row = page.locator("#accounts tr", has_text=ACCOUNT)
    if row.count():
        state = row.locator(".state").inner_text()
        assert "deleted" in state and row.get_by_role("button", name="Suspend").count() == 0, (
            f"the deleted account {ACCOUNT} is listed as {state!r}")
