"""The reference's send_otp PHP example and verify_otp, over real HTTP against the local gateway
(its per-run OTP secret included); the code is read where a phone would get it: the SQS job."""
import json
import re
import shutil
import subprocess

import boto3
import pytest
import requests

PHP_SEND_OTP = r"""<?php
$response = file_get_contents('%(url)s/myAPI.php?' . http_build_query([
    'api_key' => '%(api_key)s',
    'action' => 'send_otp',
    'device_uid' => '%(device_uid)s',
    'phone_number' => '+8801712345678',
    'message' => 'Your login code is {otp}. Valid for 5 mins.',
    'length' => 4
]));
echo $response;
"""


def otp_job(g, message_id):
    sqs = boto3.client("sqs", endpoint_url=g["aws_endpoint"], region_name="us-east-1",
                       aws_access_key_id="local", aws_secret_access_key="local")
    url = sqs.get_queue_url(QueueName=f"smsgw-local-device-{g['device_uid']}")["QueueUrl"]
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                     VisibilityTimeout=600).get("Messages", []):
        for m in got:
            job = json.loads(m["Body"])
            if job["message_id"] == message_id:
                return job
    raise AssertionError("OTP job not on the device queue")


@pytest.mark.skipif(shutil.which("php") is None, reason="php not installed (.ci/run installs it)")
def test_reference_php_send_otp_then_verify(local_gateway, tmp_path):
    g = local_gateway
    script = tmp_path / "send_otp.php"
    script.write_text(PHP_SEND_OTP % g)
    out = subprocess.run(["php", str(script)], capture_output=True, text=True, timeout=60)
    sent = json.loads(out.stdout)
    assert sent["status"] == "success" and sent["response"] is True, sent
    job = otp_job(g, sent["data"]["message_id"])
    code = re.fullmatch(r"Your login code is (\d{4})\. Valid for 5 mins\.", job["message"])[1]
    assert code not in out.stdout

    def verify(otp_code):
        return requests.post(f"{g['url']}/myAPI.php", timeout=10, data={
            "api_key": g["api_key"], "action": "verify_otp",
            "phone_number": "+8801712345678", "otp_code": otp_code}).json()

    assert verify(code) == {"status": "success", "message": "OTP Verified Successfully.",
                            "response": True, "data": None}
    assert verify(code) == {"status": "error", "message": "Invalid or Expired OTP.",
                            "response": False, "data": None}
