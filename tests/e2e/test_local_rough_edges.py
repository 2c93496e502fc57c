"""Rough edges of the local gateway's restarts (issue 30, item 9), on real processes: the
banner stops printing the demo's set-password link once it was used; a gateway started in the
background (SIGINT ignored, as a script's `./run-local &` starts it) still stops cleanly on
SIGINT; errors on /3rdparty and /mobile log their code in the request log's result column, as
docs/local.md describes (they logged `-`)."""
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests
from test_alerts_e2e import PASSWORD, csrf

from tests.localgw_helpers import ROOT, GatewayProcess, gateway_env

BANNER_END = "Ctrl-C stops everything."


def set_password(info):
    web = requests.Session()
    url = info["url"] + info["dashboard_set_password"]
    answer = web.post(info["url"] + "/dashboard/set-password", data={
        "csrf": csrf(web, url), "token": url.rsplit("=", 1)[1], "email": info["dashboard_email"],
        "password": PASSWORD, "confirm": PASSWORD}, timeout=10)
    assert answer.status_code == 200, answer.text


def log_lines(path: Path, route: str):
    return [line for line in path.read_text().splitlines() if f" {route} " in line]


def test_errors_on_smsgate_faces_log_their_code(tmp_path):
    log = tmp_path / "gateway.log"
    gateway = GatewayProcess("--no-agent", log=log)
    try:
        url = gateway.info["url"]
        assert requests.get(f"{url}/3rdparty/v1/messages", timeout=10).status_code == 401
        assert requests.get(f"{url}/mobile/v1/device", timeout=10, headers={
            "Authorization": "Bearer not-a-token"}).status_code == 401
        assert requests.get(f"{url}/3rdparty/v1/nowhere", timeout=10, auth=(
            gateway.info["account_id"], gateway.info["api_key"])).status_code == 404
    finally:
        gateway.stop()
    [third] = log_lines(log, "/3rdparty/v1/messages")
    [mobile] = log_lines(log, "/mobile/v1/device")
    [missing] = log_lines(log, "/3rdparty/v1/nowhere")
    assert re.search(r" 401 unauthorized \d+ms$", third), third
    assert re.search(r" 401 unauthorized \d+ms$", mobile), mobile
    assert re.search(r" 404 not_found \d+ms$", missing), missing


def test_a_restarted_background_gateway_shows_no_spent_link_and_stops_on_sigint(tmp_path):
    data = tmp_path / "data"
    first = GatewayProcess("--no-agent", data=data, user=True)
    try:
        info = first.info
        assert info["dashboard_link"] == "live"
        set_password(info)
    finally:
        assert first.stop(timeout=30) == 0
    # `./run-local &` from a script: the shell starts it with SIGINT ignored.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "local_gateway.py"), "--no-agent", "--quiet",
         "--data", str(data), "--port", "0"], cwd=ROOT, env=gateway_env(user=True),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if BANNER_END in line:
                break
        text = "".join(banner)
        assert "Restored" in text, text
        assert info["dashboard_set_password"] not in text and "set-password?token" not in text
        assert f"{info['dashboard_email']} (its password is set) signs in at" in text, text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert "stopped. Data kept in" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads((data / "demo.json").read_text())["api_key"] == info["api_key"]
