"""Issue 14 end to end: the attacks of the issue over real HTTP against a local gateway process of
our own (its output captured), with no test hooks in the gateway. The gateway must answer every
client mistake with a clear client error and print no traceback and no internal_error."""
import json
import os
import random
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
import requests

from tests.localgw_helpers import GatewayProcess

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "+8801712345678"
MAX_TRIES = 5  # the local gateway's default SMSGW_OTP_MAX_TRIES


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    log = tmp_path_factory.mktemp("gateway") / "output.txt"
    # AWS's auth-cache window (the local default is 2 s): the removed-device test relies on the
    # gateway still having the device cached after the CLI removed it.
    gateway = GatewayProcess("--no-agent", log=log, user=True,
                             env={"SMSGW_AUTH_CACHE_SECONDS": "30"})
    info = gateway.info
    info["log"] = log
    info["aws"] = dict(endpoint_url=info["aws_endpoint"], region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    yield info
    gateway.stop()
    output = log.read_text()
    assert "Traceback" not in output and "internal_error" not in output, output[-3000:]


def api(g, method="POST", data=None, json_text=None, **params):
    params.setdefault("api_key", g["api_key"])
    if json_text is not None:
        response = requests.post(g["url"] + "/myAPI.php", timeout=30,
                                 data=json_text.encode("utf-8", "surrogatepass"),
                                 headers={"Content-Type": "application/json"})
    elif method == "GET":
        response = requests.get(g["url"] + "/myAPI.php", params=params, timeout=30)
    else:
        response = requests.post(g["url"] + "/myAPI.php", data=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def cli(g, *args):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMSGW_"))},
           "AWS_ENDPOINT_URL": g["aws_endpoint"], "SMSGW_STAGE": "local",
           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_DEFAULT_REGION": "us-east-1"}
    done = subprocess.run([sys.executable, "cli.py", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_otp_burst_of_100_concurrent_guesses(gateway):
    """The issue's reproduction: a 4-digit code, 99 distinct wrong codes and the right one,
    shuffled, sent concurrently (20 connections at a time: the local gateway's HTTP server
    resets connections beyond its listen backlog)."""
    g = gateway
    sent = api(g, action="send_otp", device_uid=g["device_uid"], phone_number=NUMBER, length=4)
    assert sent["status"] == "success", sent
    sqs = boto3.client("sqs", **g["aws"])
    url = sqs.get_queue_url(QueueName=f"smsgw-local-device-{g['device_uid']}")["QueueUrl"]
    [job] = [json.loads(m["Body"]) for m in sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600)["Messages"]
        if json.loads(m["Body"])["message_id"] == sent["data"]["message_id"]]
    code = re.search(r"\d{4}", job["message"])[0]
    guesses = [f"{(int(code) + k) % 10_000:04d}" for k in range(1, 100)] + [code]
    random.Random(14).shuffle(guesses)
    retried = []

    def guess(code):
        for attempt in range(5):  # a reset connection is retried: a repeated guess is not
            try:                  # counted twice, so a retry cannot change the counts
                return api(g, action="verify_otp", phone_number=NUMBER, otp_code=code)
            except requests.ConnectionError:
                retried.append(code)
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("the gateway kept resetting connections")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(guess, guesses))
    item = boto3.client("dynamodb", **g["aws"]).get_item(
        TableName="smsgw-local-otps", ConsistentRead=True,
        Key={"key": {"S": f"{g['account_id']}#{NUMBER}"}})["Item"]
    tries = int(item["tries"]["N"])
    successes = sum(a["status"] == "success" for a in answers)
    limited = sum((a["data"] or {}).get("error_code") == "rate_limited" for a in answers)
    # Every compared guess was counted first: the cap's worth of guesses is counted (the
    # two-write design left tries at 0-2 here). moto's server does not make one UpdateItem
    # atomic as DynamoDB does, so this checks ">=" where DynamoDB guarantees "==".
    assert tries >= MAX_TRIES and successes <= 1
    if successes == 0 and not retried:  # (a lost answer may hide the success)
        assert limited == 100 - tries
    assert all(a["status"] == "success" or a["message"] == "Invalid or Expired OTP."
               or a["data"]["error_code"] == "rate_limited" for a in answers)


BAD_JSON = [
    '{"action": "send_sms", "phone_number": "+8801712345678", "phone_number": "+8801712345679",'
    ' "message": "hi", "device_uid": "%(device_uid)s", "api_key": "%(api_key)s"}',
    '{"action": "device_status", "api_key": "%(api_key)s", "api_key": "%(api_key)s"}',
    "[" * 5000,
    '{"action": "send_sms", "message": "hi \\ud800", "phone_number": "+8801712345678",'
    ' "device_uid": "%(device_uid)s", "api_key": "%(api_key)s"}',
    '{"action": "send_sms", "message": Infinity, "phone_number": "+8801712345678",'
    ' "device_uid": "%(device_uid)s", "api_key": "%(api_key)s"}',
    '{"action": "send_sms", "sim_slot": NaN, "message": "hi", "phone_number": "+8801712345678",'
    ' "device_uid": "%(device_uid)s", "api_key": "%(api_key)s"}',
]


def test_bad_input_is_a_clear_client_error(gateway):
    g = gateway
    answers = [api(g, json_text=text % g) for text in BAD_JSON]
    answers += [api(g, action="send_sms", device_uid=g["device_uid"], phone_number=NUMBER,
                    message="hi", sim_slot=slot) for slot in ("\u0662", "+1", "0_1")]
    answers.append(api(g, "GET", action="check_status", message_id="1_000"))
    import base64
    cursor = base64.urlsafe_b64encode(b'{"t":"all","o":true}').decode()
    answers.append(api(g, "GET", action="get_history", cursor=cursor))
    for answer in answers:
        assert answer["status"] == "error", answer
        assert answer["data"]["error_code"] == "invalid_parameter", answer
        assert "retry_after" not in answer["data"]
    headers = {"Authorization": f"Bearer {g['device_token']}",
               "Content-Type": "application/json"}
    for endpoint in ("reports", "incoming", "heartbeat", "claims", "credentials"):
        response = requests.post(f"{g['url']}/device/{endpoint}", data="[" * 5000,
                                 headers=headers, timeout=30)
        assert response.status_code == 400, (endpoint, response.text)
    response = requests.post(f"{g['url']}/device/heartbeat", headers=headers, timeout=30,
                             data='{"app_state": "running", "app_state": "stopped"}')
    assert response.status_code == 400 and "Duplicate" in response.text


def test_poll_limit_and_removed_device(gateway):
    g = gateway
    device = cli(g, "device", "register", g["account_id"], "Spare")
    headers = {"Authorization": f"Bearer {device['device_token']}"}

    def poll(wait):
        began = time.monotonic()
        response = requests.get(f"{g['url']}/device/jobs?wait={wait}", headers=headers,
                                timeout=30)
        return response.status_code, time.monotonic() - began

    with ThreadPoolExecutor(6) as pool:
        # Long enough that the two admitted polls still hold their slots when the last of the six
        # arrives, even on a loaded machine (a 3 s wait let finished polls free their slots).
        polls = list(pool.map(lambda _: poll(8), range(6)))
    assert sorted(status for status, _ in polls) == [200, 200, 429, 429, 429, 429]
    assert all(took < 6 for status, took in polls if status == 429)  # refused, not held

    assert poll(0)[0] == 200  # the gateway has the device cached, as a warm Lambda would
    cli(g, "device", "remove", g["account_id"], device["device_uid"])  # another process
    response = requests.post(f"{g['url']}/device/incoming", timeout=30, headers={
        **headers, "Content-Type": "application/json"}, json={"messages": [{
            "device_message_id": "x-1", "phone_number": NUMBER, "message": "hi",
            "received_at": 1}]})
    assert response.status_code == 401 and response.json()["error"]["code"] == "device_removed"
    assert poll(0)[0] == 401
    history = api(g, "GET", action="get_history", type="incoming")
    assert history["data"]["messages"] == []


POLL_IN_ITS_OWN_PROCESS = """
import json, sys
from chalicelib.surfaces import device_api
from chalicelib.surfaces.request import HttpRequest
print("ready", flush=True)
sys.stdin.readline()  # all processes start their poll together
status, headers, body = device_api.handle(HttpRequest.of(
    "GET", "/device/jobs", headers={"Authorization": "Bearer " + sys.argv[1]},
    query={"wait": ["3"]}))
print(json.dumps([status, headers.get("Retry-After")]))
"""


def test_poll_limit_holds_across_processes(gateway):
    """As on Lambda, where every poll is its own container: six processes, each with its own
    (cold) caches, poll one token at once against the same DynamoDB; two wait, four are
    refused."""
    g = gateway
    device = cli(g, "device", "register", g["account_id"], "Multi")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SMSGW_"))},
           "AWS_ENDPOINT_URL": g["aws_endpoint"], "SMSGW_STAGE": "local",
           "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
           "AWS_DEFAULT_REGION": "us-east-1"}
    procs = [subprocess.Popen([sys.executable, "-c", POLL_IN_ITS_OWN_PROCESS,
                               device["device_token"]], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(6)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert sorted(status for status, _ in results) == [200, 200, 429, 429, 429, 429], results
