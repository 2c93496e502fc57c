"""The reference's own examples, verbatim but for base URL, key and device, against the local
gateway started as README says (a separate process, real HTTP)."""
import json
import shutil
import subprocess

import pytest
import requests


def curl(*args):
    out = subprocess.run(["curl", "-s", *args], capture_output=True, text=True, timeout=30)
    return json.loads(out.stdout)


def test_reference_curl_send_then_status_and_history(local_gateway):
    g = local_gateway
    sent = curl("-X", "POST", f"{g['url']}/myAPI.php",
                "-d", f"api_key={g['api_key']}",
                "-d", "action=send_sms",
                "-d", f"device_uid={g['device_uid']}",
                "-d", "phone_number=+8801712345678",
                "-d", "message=Hello World",
                "-d", "sim_slot=1")
    assert sent["status"] == "success", sent
    assert sent["message"] == "SMS queued successfully."
    assert sent["data"]["status"] == "pending" and sent["data"]["sim_slot"] == 1
    mid = sent["data"]["message_id"]

    status = curl(f"{g['url']}/myAPI.php?action=check_status&api_key={g['api_key']}"
                  f"&message_id={mid}")
    assert status["status"] == "success" and status["message"] == "Status found."
    assert status["data"]["status"] == "pending"
    assert status["data"]["phone_number"] == "+8801712345678"

    history = curl(f"{g['url']}/myAPI.php?action=get_history&api_key={g['api_key']}"
                   "&type=outgoing&limit=5")
    assert mid in [m["message_id"] for m in history["data"]["messages"]]
    incoming = curl(f"{g['url']}/myAPI.php?action=get_history&api_key={g['api_key']}"
                    "&type=incoming&limit=5")
    assert incoming["status"] == "success"

    devices = curl(f"{g['url']}/myAPI.php?action=device_status&api_key={g['api_key']}")
    assert devices["status"] == "success"
    assert devices["data"][0]["device_uid"] == g["device_uid"]


def test_sends_to_an_unpaced_phone_promise_no_send_time(local_gateway):
    """The reference answer's data over real HTTP, send after send: a phone without pacing
    gets no expected_at/expected_in (a second read of the clock in pacing made some look
    paced; tests/api/test_api_core.py forces the tick)."""
    g = local_gateway
    with requests.Session() as web:
        for n in range(40):
            sent = web.post(f"{g['url']}/myAPI.php", data={
                "api_key": g["api_key"], "action": "send_sms", "device_uid": g["device_uid"],
                "phone_number": "+8801712345678", "message": f"unpaced {n}"},
                timeout=10).json()
            assert set(sent["data"]) == {"message_id", "status", "sim_slot"}, sent


def test_errors_are_envelopes_with_http_200(local_gateway):
    g = local_gateway
    response = requests.get(f"{g['url']}/myAPI.php", params={"action": "check_status",
                                                             "api_key": "0" * 64,
                                                             "message_id": "1"}, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "message", "response", "data"}
    assert body["status"] == "error" and body["message"] == "Invalid API key."
    bad_method = requests.post(f"{g['url']}/myAPI.php", data=b"\x00\xff",
                               headers={"Content-Type": "application/octet-stream"}, timeout=10)
    assert bad_method.status_code == 200 and bad_method.json()["status"] == "error"


PHP_CLIENT = r"""<?php
$response = file_get_contents('%(url)s/myAPI.php?' . http_build_query([
    'api_key' => '%(api_key)s',
    'action' => 'send_sms',
    'device_uid' => '%(device_uid)s',
    'phone_number' => '+8801712345678',
    'message' => 'Hello from PHP',
]));
$sent = json_decode($response, true);
$status = json_decode(file_get_contents('%(url)s/myAPI.php?' . http_build_query([
    'api_key' => '%(api_key)s', 'action' => 'check_status',
    'message_id' => $sent['data']['message_id'],
])), true);
$error = file_get_contents('%(url)s/myAPI.php?' . http_build_query([
    'api_key' => 'WRONG', 'action' => 'device_status',
]));
echo json_encode(['sent' => $sent, 'status' => $status, 'error' => json_decode($error, true)]);
"""


@pytest.mark.skipif(shutil.which("php") is None, reason="php not installed (.ci/run installs it)")
def test_php_file_get_contents_client(local_gateway, tmp_path):
    script = tmp_path / "client.php"
    script.write_text(PHP_CLIENT % local_gateway)
    out = subprocess.run(["php", str(script)], capture_output=True, text=True, timeout=60)
    result = json.loads(out.stdout)
    assert result["sent"]["status"] == "success"
    assert result["status"]["data"]["status"] == "pending"
    assert result["status"]["data"]["phone_number"] == "+8801712345678"
    # file_get_contents returns false on non-2xx: the error envelope must still be readable
    assert result["error"]["status"] == "error"
    assert "Malformed API key" in result["error"]["message"]
