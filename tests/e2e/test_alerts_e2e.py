"""Alert mails on a local gateway (a separate process, short heartbeat window): the owner opts
in on the profile page; the phone stops beating and one mail is written under the gateway's
data folder, one recovery mail when it beats again, and flapping within the hour adds none."""
import re
import time
from email import message_from_bytes
from pathlib import Path

import pytest
import requests

from tests.localgw_helpers import gateway_fixture

PASSWORD = "a long alert passphrase"
WINDOW = 3  # seconds of silence before the sweep writes the phone `stopped`


@pytest.fixture
def gateway():
    """A user's local gateway (no demo phone) with a short heartbeat window and a sweep a
    second."""
    yield from gateway_fixture("--no-agent", user=True, env={
        "SMSGW_HEARTBEAT_WINDOW_SECONDS": WINDOW, "SMSGW_LOCAL_SCHEDULE_CAP_SECONDS": 1})


def csrf(session, url):
    return re.search(r'name="csrf" value="([^"]+)"', session.get(url, timeout=10).text)[1]


def opt_in(info):
    web = requests.Session()
    url = info["url"] + info["dashboard_set_password"]
    token = url.rsplit("=", 1)[1]
    web.post(info["url"] + "/dashboard/set-password", data={
        "csrf": csrf(web, url), "token": token, "email": info["dashboard_email"],
        "password": PASSWORD, "confirm": PASSWORD}, timeout=10)
    signin = info["url"] + "/dashboard/signin"
    web.post(signin, data={"csrf": csrf(web, signin), "email": info["dashboard_email"],
                           "password": PASSWORD}, timeout=10)
    account = info["url"] + "/dashboard/account"
    answer = web.post(info["url"] + "/dashboard/account/alerts",
                      data={"csrf": csrf(web, account), "alerts": "on"}, timeout=10)
    assert "Stop alert mails" in answer.text


def mails(info):
    folder = Path(info["mail"])
    return [message_from_bytes(p.read_bytes())["Subject"]
            for p in sorted(folder.glob("*.eml"))] if folder.exists() else []


def beat(info):
    assert requests.post(f"{info['url']}/device/heartbeat", json={"app_state": "running"},
                         headers={"Authorization": f"Bearer {info['device_token']}"},
                         timeout=10).status_code == 200


def wait_for(predicate, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return predicate()


def test_a_stopped_phone_mails_once_and_its_recovery_once(gateway):
    opt_in(gateway)
    beat(gateway)
    offline, back = "[smsgw] Phone Demo phone is offline", \
        "[smsgw] Phone Demo phone is back online"
    assert wait_for(lambda: mails(gateway) == [offline])  # silent past the window
    time.sleep(WINDOW)
    assert mails(gateway) == [offline]  # still offline: no second mail
    beat(gateway)
    assert wait_for(lambda: mails(gateway) == [offline, back])
    for _ in range(2):  # flapping: stops and comes back twice more within the hour
        assert wait_for(lambda: requests.post(
            f"{gateway['url']}/myAPI.php", data={"api_key": gateway["api_key"],
                                                 "action": "device_status"},
            timeout=10).json()["data"][0]["status"] == "stopped")
        time.sleep(2)
        beat(gateway)
        time.sleep(2)
    assert mails(gateway) == [offline, back]


def test_a_mail_clients_one_click_unsubscribe_stops_the_mails(gateway):
    """RFC 8058 over real HTTP: the mail's List-Unsubscribe link, opened (a scanner's GET),
    changes nothing; the mail client's POST, with no cookie, unsubscribes."""
    opt_in(gateway)
    beat(gateway)
    assert wait_for(lambda: len(mails(gateway)) == 1)
    [path] = sorted(Path(gateway["mail"]).glob("*.eml"))
    mail = message_from_bytes(path.read_bytes())
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = "".join(mail["List-Unsubscribe"].split()).strip("<>")
    link = gateway["url"] + link[link.index("/dashboard/"):]  # the banner's URL, not PUBLIC_URL
    assert "Stop alert mails" in requests.get(link, timeout=10).text
    answer = requests.post(link, data="List-Unsubscribe=One-Click", timeout=10, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and "no more alert mails" in answer.text
    assert requests.post(link, data="List-Unsubscribe=One-Click", timeout=10, headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 404
    beat(gateway)  # back online: a recovery mail would go out to a subscriber
    time.sleep(2 * WINDOW)
    assert len(mails(gateway)) == 1
