"""SMSGate's npm client (android-sms-gateway 3.0.0, pinned in tests/e2e/npm/package-lock.json,
unmodified) against a local gateway with its demo phone, over real HTTP, through node: every
method of the client either works (send, state until Delivered, webhooks with an sms:delivered
event on a receiver, devices, health with releaseId, settings) or answers a clear 400
`not_supported` in SMSGate's error shape (exportInbox, getLogs): never a bare 404. The 3.0.0
client has no list, cancel or encryption (tests/e2e/test_smsgate_client.py covers those with the
PyPI client). `.ci/run` installs the package with `npm ci`; without node, or without the package
and no registry to fetch it from, this module is skipped with the reason."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_device_e2e import until

from tests.localgw_helpers import GatewayProcess

NPM = Path(__file__).resolve().parent / "npm"
CLIENT = NPM / "node_modules" / "android-sms-gateway" / "package.json"
VERSION = "3.0.0"
# Every method of the 3.0.0 client (dist/index.d.ts), and what this gateway answers it.
METHODS = {"send": "works", "getState": "works", "getWebhooks": "works",
           "registerWebhook": "works", "deleteWebhook": "works", "getDevices": "works",
           "deleteDevice": "works", "getHealth": "works", "getSettings": "works",
           "updateSettings": "works", "patchSettings": "works",
           "exportInbox": "not_supported", "getLogs": "not_supported"}


@pytest.fixture(scope="module")
def npm_client():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not CLIENT.exists():
        npm = shutil.which("npm")
        done = npm and subprocess.run([npm, "ci", "--prefer-offline"], cwd=NPM, timeout=300,
                                      capture_output=True, text=True)
        if not done or done.returncode != 0:
            pytest.skip("SMSGate's npm client is not installed (cd tests/e2e/npm && npm ci): "
                        + (done.stderr[-300:] if done else "no npm"))
    assert json.loads(CLIENT.read_text())["version"] == VERSION
    return NPM


@pytest.fixture(scope="module")
def gw(npm_client):
    """A local gateway: its demo phone (sends and delivers), and one more device."""
    gateway = GatewayProcess("--devices", "1")
    yield gateway.info
    gateway.stop()


def npm(gw, method, *args, password=None):
    """One call of the client: its value, or {"status", "body"} for an HTTP error."""
    done = subprocess.run(
        ["node", "call.mjs", gw["url"] + "/3rdparty/v1", gw["account_id"],
         password or gw["api_key"], method, json.dumps(list(args))],
        cwd=NPM, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return answer["value"] if answer["ok"] else {"status": answer["status"],
                                                  "body": answer["body"]}


def test_the_table_names_every_method_of_the_client(npm_client):
    types = (npm_client / "node_modules/android-sms-gateway/dist/index.d.ts").read_text()
    declared = types[types.index("declare class Client"):]
    names = {line.strip().split("(")[0] for line in declared.splitlines()
             if line.startswith("\t") and "(" in line and not line.strip().startswith(
                 ("*", "/", "constructor", "private"))}
    assert names == set(METHODS)
    docs = (Path(__file__).resolve().parents[2] / "docs" / "smsgate.md").read_text()
    for name in METHODS:
        assert f"`{name}`" in docs, name


def test_send_state_webhooks_devices_health_and_settings(gw):
    from bench.webhook_receiver import Receiver
    health = npm(gw, "getHealth")
    assert health["status"] == "pass" and isinstance(health["releaseId"], int)
    devices = npm(gw, "getDevices")
    assert gw["device_uid"] in [d["id"] for d in devices]
    receiver = Receiver()
    try:
        hook = npm(gw, "registerWebhook", {"url": receiver.url, "event": "sms:delivered"})
        assert hook["event"] == "sms:delivered" and hook["id"]
        assert hook["id"] in [w["id"] for w in npm(gw, "getWebhooks")]
        key = "npm-receiver-key-" + "k" * 20
        assert npm(gw, "patchSettings", {"webhooks": {"signing_key": key}})[
            "webhooks"]["signing_key"] == key
        assert npm(gw, "updateSettings", {"webhooks": {"signing_key": key}})[
            "webhooks"]["signing_key"] == key
        assert npm(gw, "getSettings")["webhooks"]["signing_key"] == key
        sent = npm(gw, "send", {"id": "npm-1", "message": "Hello from npm",
                                "phoneNumbers": ["+8801712000101", "+8801712000102"]})
        assert sent["id"] == "npm-1" and sent["state"] == "Pending"
        done = until(lambda: (lambda s: s if s["state"] == "Delivered" else None)(
            npm(gw, "getState", "npm-1")), timeout=60, what="npm-1 delivered")
        assert [r["state"] for r in done["recipients"]] == ["Delivered", "Delivered"]
        until(lambda: len(receiver.requests) >= 2, timeout=60, what="two webhooks")
        events = [json.loads(body) for _, body, _ in receiver.requests]
        assert {(e["event"], e["payload"]["messageId"]) for e in events} == {
            ("sms:delivered", "npm-1")}
        assert npm(gw, "deleteWebhook", hook["id"]) is None
        assert hook["id"] not in [w["id"] for w in npm(gw, "getWebhooks")]
        # a bad request: SMSGate's error shape
        bad = npm(gw, "send", {"message": "x", "phoneNumbers": ["not a number"]})
        assert bad["status"] == 400 and bad["body"]["data"]["parameter"] == "phoneNumbers[0]"
        assert npm(gw, "getState", "no-such-message")["status"] == 404
        assert npm(gw, "getDevices", password="0" * 64)["status"] == 401
    finally:
        receiver.close()
    extra = next(d["id"] for d in devices if d["id"] != gw["device_uid"])
    assert npm(gw, "deleteDevice", extra) is None
    assert extra not in [d["id"] for d in npm(gw, "getDevices")]


@pytest.mark.parametrize("method, args", [
    ("exportInbox", [{"deviceId": "x", "since": {"$date": "2026-01-01T00:00:00Z"},
                      "until": {"$date": "2026-01-02T00:00:00Z"}}]),
    ("getLogs", [{"$date": "2026-01-01T00:00:00Z"}, {"$date": "2026-01-02T00:00:00Z"}])])
def test_what_is_not_here_is_a_clear_400(gw, method, args):
    answer = npm(gw, method, *args)
    assert answer["status"] == 400, answer
    assert set(answer["body"]) == {"message", "code", "data"}
    assert answer["body"]["code"] == 400 and answer["body"]["data"]["code"] == "not_supported"
    assert METHODS[method] == "not_supported"
