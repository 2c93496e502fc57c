"""The local data folder is its owner's only (issue 30, item 2): after real `local_gateway.py
--data DIR` runs that wrote a snapshot, an alert mail, the demo phone's journal and ledger and
the schedule log, then (`--tls`, no demo phone: it does not trust the CA yet) TLS keys, the
folder and every folder in it are 0700 and every file 0600. Before, snapshot.json (every table:
texts, one-time codes, hashes, secrets) and the mails were 0644 in a 0755 folder, and the TLS
key was written first and chmod'ed after.

The gateway runs under the test's umask (022); what it creates must not depend on it."""
import os
import signal
import stat
import time

import pytest
import requests
from test_alerts_e2e import mails, opt_in, wait_for

from tests.localgw_helpers import GatewayProcess


def modes(folder):
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_everything_in_the_data_folder_is_its_owners_only(tmp_path, loose_umask):
    data = tmp_path / "data"
    gateway = GatewayProcess("--devices", "1", data=data, user=True, env={
        "SMSGW_HEARTBEAT_WINDOW_SECONDS": 3, "SMSGW_LOCAL_SCHEDULE_CAP_SECONDS": 1,
        "SMSGW_LOCAL_SCHEDULE_LOG": data / "schedules.jsonl"})
    try:
        info = gateway.info
        opt_in(info)
        [phone] = info["devices"]  # beats once, then goes silent: an alert mail
        assert requests.post(f"{info['url']}/device/heartbeat", json={"app_state": "running"},
                             headers={"Authorization": f"Bearer {phone['device_token']}"},
                             timeout=10).status_code == 200
        sent = requests.post(f"{info['url']}/myAPI.php", timeout=10, data={
            "api_key": info["api_key"], "action": "send_sms", "device_uid": info["device_uid"],
            "phone_number": "+8801712345678", "message": "a private text"}).json()
        assert sent["status"] == "success", sent
        assert wait_for(lambda: len(mails(info)) == 1)
        assert wait_for(lambda: (data / "sent.jsonl").exists())  # the demo phone sent it
        assert wait_for(lambda: (data / "snapshot.json").exists())
        time.sleep(1)
    finally:
        assert gateway.stop(signal.SIGINT, timeout=30) == 0
    gateway = GatewayProcess("--tls", "--no-agent", data=data, user=True)
    try:
        assert gateway.info["tls_ca"] and requests.get(
            f"{gateway.info['url']}/dashboard/signin", verify=gateway.info["tls_ca"], timeout=10)
    finally:
        assert gateway.stop(signal.SIGINT, timeout=30) == 0
    found = modes(data)
    for name in ("snapshot.json", "config.json", "demo.json", "lock",
                 "sent.jsonl", "demo-phone.db", "schedules.jsonl", "tls/ca-key.pem",
                 "tls/server-key.pem", "tls/ca.pem", "tls/server.pem", "mail", "tls"):
        assert name in found, sorted(found)
    assert any(name.startswith("mail/") and name.endswith(".eml") for name in found)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    wrong = {name: oct(mode) for name, mode in found.items()
             if mode != (0o700 if (data / name).is_dir() else 0o600)}
    assert wrong == {}
