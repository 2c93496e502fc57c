"""`./run-local --tls`: HTTPS with a local CA the phone installs (localgw/tls.py). The SMSGate
app player registers and pulls over TLS, verifying the gateway's certificate against that CA
and nothing else; the certificate is kept across restarts."""
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.smsgate_app import SmsgateApp
from local_gateway import free_port

ROOT = Path(__file__).resolve().parents[2]


def start(data: Path, port: int, *options, stderr=subprocess.DEVNULL):
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith("AWS_") and not k.startswith("SMSGW_")}
    options = options or ("--no-agent", "--quiet")
    proc = subprocess.Popen([sys.executable, str(ROOT / "local_gateway.py"), "--host",
                             "127.0.0.1", "--port", str(port), "--tls", "--json",
                             "--data", str(data), *options], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=stderr, text=True)
    line = proc.stdout.readline()
    assert line, "the gateway did not start"
    return proc, json.loads(line)


def stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_tls_gateway_serves_the_app_over_https(tmp_path):
    port = free_port()
    proc, info = start(tmp_path, port)
    try:
        assert info["url"] == f"https://127.0.0.1:{port}"
        ca = info["tls_ca"]
        assert Path(ca).read_text().startswith("-----BEGIN CERTIFICATE-----")
        try:
            requests.get(f"{info['url']}/mobile/v1/device", timeout=10)
            raise AssertionError("a certificate not signed by a trusted CA was accepted")
        except requests.exceptions.SSLError:
            pass
        out = subprocess.run([sys.executable, str(ROOT / "cli.py"), "device", "app-token",
                              info["account_id"], "--json"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, env={
                                 k: v for k, v in __import__("os").environ.items()
                                 if not k.startswith("AWS_") and not k.startswith("SMSGW_")}
                             | {"SMSGW_DATA": str(tmp_path)})
        pairing = json.loads(out.stdout)
        assert pairing["server_url"] == f"https://127.0.0.1:{port}/mobile/v1"
        app = SmsgateApp(pairing["server_url"], pairing["private_token"], verify=ca)
        registration = app.register()
        assert all(h["url"].startswith(f"https://127.0.0.1:{port}/") for h in app.webhooks)
        answer = app.api.get(f"{pairing['server_url']}/message", timeout=10, verify=ca,
                             headers={"Authorization": f"Bearer {registration['token']}"})
        assert answer.status_code == 200 and answer.json() == []
        cert = (tmp_path / "tls" / "server.pem").read_bytes()
    finally:
        stop(proc)
    proc, info = start(tmp_path, port)  # restarted: the same CA and certificate
    try:
        assert (tmp_path / "tls" / "server.pem").read_bytes() == cert
        assert requests.get(f"{info['url']}/mobile/v1/device", verify=info["tls_ca"],
                            timeout=10).status_code == 200
    finally:
        stop(proc)


def test_the_demo_phone_delivers_over_tls(tmp_path):
    """`./run-local --tls`: the demo phone's agent checks the gateway's certificate against the
    CA the gateway made (never unchecked), so a send over HTTPS is delivered."""
    proc, info = start(tmp_path / "data", free_port(), "--quiet")
    try:
        ca = info["tls_ca"]
        sent = requests.post(f"{info['url']}/myAPI.php", verify=ca, timeout=30, data={
            "api_key": info["api_key"], "action": "send_sms", "device_uid": info["device_uid"],
            "phone_number": "+8801712345678", "message": "over TLS", "sim_slot": "1"}).json()
        assert sent["status"] == "success", sent
        message_id, status = sent["data"]["message_id"], None
        deadline = time.monotonic() + 60
        while status != "delivered" and time.monotonic() < deadline:
            time.sleep(0.5)
            history = requests.get(f"{info['url']}/myAPI.php", verify=ca, timeout=30, params={
                "action": "get_history", "api_key": info["api_key"], "limit": 5}).json()
            status = next(m["status"] for m in history["data"]["messages"]
                          if m["message_id"] == message_id)
        assert status == "delivered"
        env = {k: v for k, v in __import__("os").environ.items()
               if not k.startswith("AWS_") and not k.startswith("SMSGW_")}
        exports = subprocess.run([sys.executable, str(ROOT / "cli.py"), "local", "env"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=60,
                                 env=env | {"SMSGW_DATA": str(tmp_path / "data")}).stdout
        assert f"SMSGW_DATA={tmp_path / 'data'} " in exports
        assert f"SMSGW_CA={ca}" in exports
    finally:
        stop(proc)


REQUEST_LINE = re.compile(r"^\d\d:\d\d:\d\d \S+ [A-Z]+ /")


def test_a_failed_handshake_is_one_log_line(tmp_path):
    """A client that does not trust the local CA, and plain HTTP to the HTTPS port: one line
    each, saying why (it was a 25-line traceback per attempt)."""
    log = tmp_path / "gateway.log"
    with open(log, "w") as stderr:
        proc, info = start(tmp_path / "data", free_port(), "--no-agent", stderr=stderr)
    port = int(info["url"].rsplit(":", 1)[1])
    try:
        for _ in range(3):
            try:
                requests.get(f"{info['url']}/mobile/v1/device", timeout=10)
                raise AssertionError("an untrusted certificate was accepted")
            except requests.exceptions.SSLError:
                pass
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
                plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                plain.recv(100)
        assert requests.get(f"{info['url']}/mobile/v1/device", verify=info["tls_ca"],
                            timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while log.read_text().count("TLS handshake failed") < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop(proc)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    others = [line for line in lines if not REQUEST_LINE.match(line)
              and line not in ("stopping...", "stopped.") and not line.startswith("stopped.")]
    assert len(others) == 5, "\n".join(lines)
    assert sum("TLSV1_ALERT_UNKNOWN_CA (the client does not trust the local CA" in line
               for line in others) == 3
    assert sum("HTTP_REQUEST (plain HTTP to the HTTPS port" in line for line in others) == 2
