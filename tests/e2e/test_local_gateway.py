"""The local gateway as a user runs it (`local_gateway.py`, a real process with real sockets):
the caller's real address, bursts of connections, the demo phone's inbox file, --host, data kept
across a clean stop and a kill -9, the installed admin CLI finding it, the request log.

Only loopback addresses are used (127.0.0.0/8): 127.0.0.2 and 127.0.0.3 stand in for phones and
computers on a LAN. Waits poll with deadlines; nothing asserts how long anything took, except
the documented 2 s local auth-cache window."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from test_device_e2e import until

from tests.localgw_helpers import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
SMSGW = ROOT / ".venv" / "bin" / "smsgw"


def clean_env(**extra):
    """The environment of a user's shell: no AWS or stage variables."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("SMSGW_")}
    env.update(extra)
    return env


class Gateway(GatewayProcess):
    """`local_gateway.py ARGS --json` as a process in a user's environment; .info is its JSON
    line."""

    def __init__(self, *args, data=None, log=None, env=None):
        super().__init__(*args, data=data, log=log, env=env, user=True)

    def stop(self, sig=signal.SIGINT):
        code = super().stop(sig, timeout=30)
        if code is None:
            pytest.fail("local gateway did not stop")
        return code


@pytest.fixture
def gateways():
    started = []

    def start(*args, **kwargs):
        gateway = Gateway(*args, **kwargs)
        started.append(gateway)
        return gateway
    yield start
    for gateway in started:
        gateway.stop(signal.SIGKILL)


def call(url, source="127.0.0.1", method="POST", path="/myAPI.php", **params):
    """One request from a chosen local source address (a real socket bound to it)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30,
                                            source_address=(source, 0))
    try:
        body = urlencode(params)
        if method == "GET":
            connection.request("GET", f"{path}?{body}")
        else:
            connection.request("POST", path, body=body,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def smsgw(*args, data, check=True):
    """The installed admin CLI, as a user types it: no environment, it finds the gateway."""
    done = subprocess.run([str(SMSGW), *args], env=clean_env(SMSGW_DATA=str(data)),
                          capture_output=True, text=True, timeout=60, cwd="/")
    if check:
        assert done.returncode == 0, done.stderr
    return done


def send(info, source="127.0.0.1", **extra):
    device_uid = extra.pop("device_uid", None) or info["device_uid"]
    answer = call(info["url"], source, api_key=info["api_key"], action="send_sms",
                  device_uid=device_uid, phone_number="+8801712345678", message="Hello",
                  **extra)
    assert answer["status"] == "success", answer
    return answer["data"]["message_id"]


def status_of(info, message_id):
    return call(info["url"], api_key=info["api_key"], action="check_status",
                message_id=str(message_id))["data"]["status"]


class Agent:
    """The device agent (simulator backend) as a process, with a ledger of what it sent."""

    def __init__(self, url, token, tmp_path):
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.ledger = tmp_path / "ledger.jsonl"
        env = {**clean_env(), "PYTHONPATH": str(ROOT / "agent"), "SMSGW_URL": url,
               "SMSGW_DEVICE_TOKEN": token}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smsgw_agent", "--backend", "simulator", "--journal",
             str(tmp_path / "journal.db"), "--ledger", str(self.ledger), "--poll-wait", "1",
             "--delivery-delay", "0.2"], env=env, stderr=subprocess.DEVNULL)

    def sent(self):
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)


# Bug 1: the caller's real address ------------------------------------------------------------

def test_whitelist_sees_each_callers_real_address(gateways, tmp_path):
    gw = gateways("--no-agent", "--quiet", data=tmp_path / "data")
    info = gw.info
    smsgw("whitelist", "set", info["account_id"], "127.0.0.2", data=tmp_path / "data")

    def device_status(source):
        return call(info["url"], source, api_key=info["api_key"], action="device_status")
    assert device_status("127.0.0.2")["status"] == "success"
    refused = device_status("127.0.0.3")
    assert refused["data"]["error_code"] == "forbidden"
    assert "127.0.0.3" in refused["message"]
    assert device_status("127.0.0.1")["data"]["error_code"] == "forbidden"

    # Locally a whitelist change works within the 2 s auth cache.
    smsgw("whitelist", "set", info["account_id"], "127.0.0.3", data=tmp_path / "data")
    time.sleep(2.5)
    assert device_status("127.0.0.3")["status"] == "success"
    assert device_status("127.0.0.2")["data"]["error_code"] == "forbidden"


# Bug 2: bursts of connections ------------------------------------------------------------------

def test_a_burst_of_200_connections_is_served_not_reset(gateways):
    info = gateways("--no-agent", "--quiet").info
    barrier = threading.Barrier(200)
    results, lock = [], threading.Lock()

    def client():
        barrier.wait()
        try:
            answer = call(info["url"], method="GET", api_key=info["api_key"],
                          action="device_status")["status"]
        except OSError as exc:  # ConnectionResetError and friends
            answer = repr(exc)
        with lock:
            results.append(answer)
    threads = [threading.Thread(target=client) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results.count("success") == 200, [r for r in results if r != "success"][:5]


# Bug 3: the demo phone's inbox file ------------------------------------------------------------

def test_a_malformed_inbox_line_is_skipped_and_later_sms_arrive(gateways, tmp_path):
    info = gateways("--quiet", data=tmp_path / "data").info
    inbox = Path(info["inbox"])
    with inbox.open("a") as handle:
        handle.write('{"phone_number": "+8801711111111", "message": "before"}\n')
        handle.write("this is not json\n")
        handle.write('{"phone_number": "+8801722222222"}\n')
        handle.write('{"phone_number": "BANK", "message": "alphanumeric sender"}\n')
        handle.write('{"phone_number": "+8801733333333", "message": "after"}\n')

    def incoming():
        answer = call(info["url"], api_key=info["api_key"], action="get_history",
                      type="incoming")
        texts = sorted(m["message"] for m in answer["data"]["messages"])
        return texts if len(texts) >= 3 else None
    assert until(incoming, what="incoming SMS") == ["after", "alphanumeric sender", "before"]


# 4: --host, a phone on the LAN -----------------------------------------------------------------

def test_host_serves_a_lan_address_with_a_warning_a_request_log_and_a_second_phone(
        tmp_path):
    from local_gateway import free_port
    data = tmp_path / "data"
    port = free_port("127.0.0.2")
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "local_gateway.py"), "--host", "127.0.0.2", "--port",
         str(port), "--no-agent", "--data", str(data)], cwd=ROOT, env=clean_env(),
        stdout=open(out, "w"), stderr=open(err, "w"))
    agent = None
    try:
        banner = until(lambda: "Ctrl-C stops" in out.read_text() and out.read_text(),
                       what="banner")
        url = f"http://127.0.0.2:{port}"
        assert f"SMS gateway running at {url}" in banner
        assert "PLAIN HTTP" in banner and "trust" in banner
        assert f"runs the agent with this URL:\n  {url}" in banner
        key = re.search(r"API key\s+(\w{64})", banner).group(1)
        account = re.search(r"account\s+(acc_\w+)", banner).group(1)

        # A second phone, registered with the installed CLI, polls over the LAN address.
        phone = json.loads(smsgw("device", "register", account, "LAN phone", "--json",
                                 data=data).stdout)
        agent = Agent(url, phone["device_token"], tmp_path / "agent")
        info = {"url": url, "api_key": key}
        message_id = send(info, source="127.0.0.3", device_uid=phone["device_uid"])
        until(lambda: status_of(info, message_id) == "delivered", what="delivered over LAN")
        assert [s["message_id"] for s in agent.sent()] == [message_id]

        # One log line per request, with the caller's own address (written once the answer is
        # sent: the report's line may follow the status it recorded by a moment).
        log = until(lambda: "POST /device/reports" in err.read_text() and err.read_text(),
                    what="the report's log line")
        assert re.search(r" 127\.0\.0\.3 POST /myAPI\.php send_sms 200 ok \d+ms", log), log
        assert re.search(r"POST /device/reports - 200 ok \d+ms", log), log
        # The call that took the job: a gateway poll, or a claim when the agent discovered direct
        # polling (its default mode, `auto`, finds the local gateway's device role).
        assert re.search(r"(GET /device/jobs|POST /device/claims) - 200 ok \d+ms", log), log
    finally:
        if agent:
            agent.stop()
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def test_quiet_logs_no_requests(gateways, tmp_path):
    log = tmp_path / "err.txt"
    info = gateways("--no-agent", "--quiet", log=log).info
    send(info)
    assert "/myAPI.php" not in log.read_text()


# 5: data kept across restarts -----------------------------------------------------------------

def test_a_clean_stop_keeps_keys_tokens_otp_state_and_queued_jobs(gateways, tmp_path):
    data = tmp_path / "data"
    first = gateways("--no-agent", "--quiet", data=data)
    info = first.info
    queued = send(info)
    otp = call(info["url"], api_key=info["api_key"], action="send_otp",
               device_uid=info["device_uid"], phone_number="+8801799999999")
    assert otp["status"] == "success", otp
    assert first.stop() == 0
    assert not (data / "gateway.json").exists()
    assert smsgw("account", "list", data=data, check=False).returncode == 1

    second = gateways("--no-agent", "--quiet", data=data)
    again = second.info
    assert again["api_key"] == info["api_key"] and again["restored"]["jobs"] == 2
    assert status_of(again, queued) == "pending"
    # The device's token still works: a phone starting now gets the queued SMS and the OTP.
    agent = Agent(again["url"], info["device_token"], tmp_path / "agent")
    try:
        until(lambda: status_of(again, queued) == "delivered", what="queued SMS delivered")
        code = until(lambda: next((re.search(r"\d{6}", s["message"]).group(0)
                                   for s in agent.sent() if s["phone_number"].endswith("999")),
                                  None), what="OTP sent")
    finally:
        agent.stop()
    verified = call(again["url"], api_key=info["api_key"], action="verify_otp",
                    phone_number="+8801799999999", otp_code=code)
    assert verified["status"] == "success", verified


def test_a_kill_9_loses_at_most_the_last_snapshot_interval(gateways, tmp_path):
    data = tmp_path / "data"
    first = gateways("--no-agent", "--quiet", "--snapshot-seconds", "1", data=data)
    info = first.info
    created = json.loads(smsgw("account", "create", "Kept", "--json", data=data).stdout)
    message_id = send(info)

    def snapshotted():
        if not (data / "snapshot.json").exists():  # (written whole and renamed: never partial)
            return False
        saved = json.loads((data / "snapshot.json").read_text())
        return any(created["account_id"] in json.dumps(item) for item in
                   saved["tables"]["smsgw-local-accounts"]) and any(
            q["messages"] for q in saved["queues"])
    until(snapshotted, timeout=20, what="a snapshot with the new records")
    first.stop(signal.SIGKILL)
    # Killed: its state file stays, but the CLI sees that nothing runs.
    assert (data / "gateway.json").exists()
    hint = smsgw("account", "list", data=data, check=False)
    assert hint.returncode == 1 and "no local gateway is running" in hint.stderr
    assert "Traceback" not in hint.stderr

    second = gateways("--no-agent", "--quiet", data=data)
    assert second.info["api_key"] == info["api_key"]
    assert created["account_id"] in smsgw("account", "list", data=data).stdout
    assert status_of(second.info, message_id) == "pending"
    agent = Agent(second.info["url"], info["device_token"], tmp_path / "agent")
    try:
        until(lambda: status_of(second.info, message_id) == "delivered", what="delivered")
    finally:
        agent.stop()


def test_two_gateways_never_share_a_data_folder(gateways, tmp_path):
    from local_gateway import free_port
    gateways("--no-agent", "--quiet", data=tmp_path / "data")
    second = subprocess.run([sys.executable, str(ROOT / "local_gateway.py"), "--port",
                             str(free_port()), "--data", str(tmp_path / "data"), "--no-agent"],
                            cwd=ROOT, env=clean_env(), capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 1 and "another local gateway uses" in second.stderr
    assert "Traceback" not in second.stderr


# 6 and 7: the CLI without a gateway; temp folders ---------------------------------------------

def test_cli_without_a_gateway_gives_a_one_line_hint(tmp_path):
    done = smsgw("key", "list", "acc_x", data=tmp_path / "nothing", check=False)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "./run-local" in done.stderr
    # A stage chosen but unreachable: one line too, never a traceback.
    unreachable = subprocess.run(
        [str(SMSGW), "account", "list"], capture_output=True, text=True, timeout=60,
        env=clean_env(SMSGW_STAGE="local", AWS_ENDPOINT_URL="http://127.0.0.1:9",
                      AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                      AWS_DEFAULT_REGION="us-east-1", AWS_MAX_ATTEMPTS="1"))
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert unreachable.stderr.startswith("Error: cannot reach stage 'local'"), unreachable.stderr


def test_a_memory_run_leaves_no_temp_folder_behind(gateways, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    gw = gateways("--quiet", env={"TMPDIR": str(temp)}, log=tmp_path / "err.txt")
    assert Path(gw.info["inbox"]).parent.parent == temp
    assert gw.stop() == 0, (tmp_path / "err.txt").read_text()
    assert list(temp.iterdir()) == []


def test_the_request_log_only_glances_at_bodies():
    from localgw.server import request_action
    form = {"content-type": "application/x-www-form-urlencoded"}
    json_type = {"Content-Type": "application/json"}
    assert request_action("/myAPI.php?action=check_status", {}, None) == "check_status"
    assert request_action("/myAPI.php", form, b"api_key=x&action=send_sms") == "send_sms"
    assert request_action("/myAPI.php", json_type, b'{"action": "send_otp"}') == "send_otp"
    assert request_action("/myAPI.php", json_type, b"[" * 100000) == "-"  # no parse, no recursion
    assert request_action("/myAPI.php", json_type, b'{"action": 7}') == "-"
