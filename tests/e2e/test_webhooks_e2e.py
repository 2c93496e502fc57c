"""Webhooks on the README's local gateway (a separate process: moto server, the app over HTTP,
the event pumps), configured with the admin CLI like an operator would, with no settings
patched: the local stage allows a receiver on 127.0.0.1 by default."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


def cli(info, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMSGW_"))}
    env.update({"AWS_ENDPOINT_URL": info["aws_endpoint"], "SMSGW_STAGE": "local",
                "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": "us-east-1"})
    out = subprocess.run([sys.executable, "cli.py", *args, "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    return json.loads(out.stdout)


def test_events_reach_a_local_receiver_within_seconds(local_gateway):
    info = local_gateway
    receiver = Receiver()
    try:
        account_id = cli(info, "account", "create", "Webhook shop")["account_id"]
        api_key = cli(info, "key", "create", account_id)["api_key"]
        device = cli(info, "device", "register", account_id, "Phone", "--sims", "1")
        hook = cli(info, "webhook", "add", account_id, receiver.url)
        receiver.secrets.append(hook["secret"])
        time.sleep(0.2)
        auth = {"Authorization": f"Bearer {device['device_token']}"}
        url = info["url"]
        assert requests.post(f"{url}/device/heartbeat", json={"app_state": "running"},
                             headers=auth, timeout=10).status_code == 200
        sent = requests.post(f"{url}/myAPI.php", data={
            "api_key": api_key, "action": "send_sms", "device_uid": device["device_uid"],
            "phone_number": "+14155550100", "message": "Hello"}, timeout=10).json()
        assert sent["status"] == "success", sent
        [job] = requests.get(f"{url}/device/jobs?wait=5", headers=auth, timeout=15).json()["jobs"]
        reported = time.time()
        assert requests.post(f"{url}/device/reports", json={"reports": [
            {"message_id": job["message_id"], "status": "sent"}]}, headers=auth,
            timeout=10).status_code == 200
        assert receiver.wait_for(lambda r: r.of_type("sms.sent"), 10)
        arrived = receiver.arrived_at[receiver.of_type("sms.sent")[0]["id"]]
        assert arrived - reported < 5  # "within a second or two"; generous for a busy CI box
        assert receiver.wait_for(lambda r: r.of_type("device.online"), 5)
        assert receiver.bad_signatures == 0
        assert {e["account_id"] for e in receiver.events.values()} == {account_id}
        log = cli(info, "webhook", "deliveries", account_id, hook["webhook_id"])
        assert {row["state"] for row in log} == {"delivered"} and len(log) == 2
    finally:
        receiver.close()
