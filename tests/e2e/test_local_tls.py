"""`./run-local --tls`: HTTPS with a local CA the phone installs (localgw/tls.py). The SMSGate
app player registers and pulls over TLS, verifying the gateway's certificate against that CA
and nothing else; the certificate is kept across restarts."""
import json
import signal
import subprocess
import sys
from pathlib import Path

import requests

from bench.smsgate_app import SmsgateApp
from local_gateway import free_port

ROOT = Path(__file__).resolve().parents[2]


def start(data: Path, port: int):
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith("AWS_") and not k.startswith("SMSGW_")}
    proc = subprocess.Popen([sys.executable, str(ROOT / "local_gateway.py"), "--host",
                             "127.0.0.1", "--port", str(port), "--tls", "--json", "--no-agent",
                             "--data", str(data), "--quiet"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
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
