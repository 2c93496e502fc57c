"""send_otp / verify_otp through /myAPI.php (the chalice test client on the real app, moto)."""
import json
import re
from urllib.parse import urlencode

import boto3
import pytest

from chalicelib.core import clock, settings
from chalicelib.domain import accounts

NUMBER = "+8801712345678"
SUCCESS = {"status": "success", "message": "OTP Verified Successfully.", "response": True,
           "data": None}
INVALID = {"status": "error", "message": "Invalid or Expired OTP.", "response": False,
           "data": None}


def get(client, **params):
    response = client.http.get("/myAPI.php?" + urlencode(params))
    assert response.status_code == 200
    return response, json.loads(response.body)


def post(client, **params):
    response = client.http.post("/myAPI.php", body=urlencode(params), headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    return json.loads(response.body)


def jobs(device):
    sqs = boto3.client("sqs", region_name=settings.current().region)
    found = []
    while got := sqs.receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                                     VisibilityTimeout=600).get("Messages", []):
        found += [json.loads(m["Body"]) for m in got]
    return found


def send(client, key, device, **extra):
    _, answer = get(client, api_key=key, action="send_otp", device_uid=device.device_uid,
                    phone_number=NUMBER, **extra)
    return answer


def test_reference_php_example_as_get_query(client, account):
    acct, key, device, _ = account
    clock.freeze(1_767_225_600_000)
    _, answer = get(client, api_key=key, action="send_otp", device_uid=device.device_uid,
                    phone_number="+8801712345678",
                    message="Your login code is {otp}. Valid for 5 mins.", length=4)
    assert answer["status"] == "success" and answer["response"] is True
    data = answer["data"]
    assert data["expires_at"] == "2026-01-01 00:05:00" and data["expires_in"] == 300
    assert data["phone_number"] == NUMBER and data["status"] == "pending"
    [job] = jobs(device)
    assert job["message_id"] == data["message_id"] and job["kind"] == "otp"
    code = re.fullmatch(r"Your login code is (\d{4})\. Valid for 5 mins\.", job["message"])[1]
    assert code not in json.dumps(answer)
    assert post(client, api_key=key, action="verify_otp", phone_number=NUMBER,
                otp_code=code) == SUCCESS
    assert post(client, api_key=key, action="verify_otp", phone_number=NUMBER,
                otp_code=code) == INVALID


def test_code_absent_from_history_and_status(client, account):
    acct, key, device, _ = account
    answer = send(client, key, device, length=8)
    code = re.search(r"\d{8}", jobs(device)[0]["message"])[0]
    _, status = get(client, api_key=key, action="check_status",
                    message_id=answer["data"]["message_id"])
    _, history = get(client, api_key=key, action="get_history", type="all")
    assert status["status"] == "success" and history["data"]["messages"]
    assert code not in json.dumps(status) and code not in json.dumps(history)
    assert history["data"]["messages"][0]["message"] == \
        "Your verification code is ******. It expires in 5 minutes."


def test_wrong_code_answers_the_reference_error_exactly(client, account):
    acct, key, device, _ = account
    send(client, key, device, length=6)
    code = re.search(r"\d{6}", jobs(device)[0]["message"])[0]
    wrong = str((int(code) + 1) % 10 ** 6).zfill(6)
    assert post(client, api_key=key, action="verify_otp", phone_number=NUMBER,
                otp_code=wrong) == INVALID
    # unknown number: same answer
    assert post(client, api_key=key, action="verify_otp", phone_number="+8801712345679",
                otp_code=code) == INVALID
    # the national form of the same number is the same number
    assert post(client, api_key=key, action="verify_otp", phone_number="+880 1712-345678",
                otp_code=code) == SUCCESS


def test_tries_cap_is_a_rate_limit_error(client, account):
    acct, key, device, _ = account
    clock.freeze(1_767_225_600_000)
    send(client, key, device, length=6)
    code = re.search(r"\d{6}", jobs(device)[0]["message"])[0]
    for k in range(1, settings.current().otp_max_tries + 1):
        assert post(client, api_key=key, action="verify_otp", phone_number=NUMBER,
                    otp_code=str((int(code) + k) % 10 ** 6).zfill(6)) == INVALID
    response, answer = get(client, api_key=key, action="verify_otp", phone_number=NUMBER,
                           otp_code=code)
    assert answer["status"] == "error" and answer["response"] is False
    assert answer["data"] == {"error_code": "rate_limited", "parameter": "otp_code",
                              "retry_after": settings.current().otp_cooldown_seconds}
    assert response.headers["Retry-After"] == str(settings.current().otp_cooldown_seconds)


def test_cooldown_and_hourly_cap_answers(client, account):
    acct, key, device, _ = account
    clock.freeze(1_767_225_600_000)
    assert send(client, key, device)["status"] == "success"
    clock.advance(5)
    answer = send(client, key, device)
    assert answer["data"] == {"error_code": "rate_limited", "parameter": "phone_number",
                              "retry_after": settings.current().otp_cooldown_seconds - 5}
    for _ in range(settings.current().otp_hourly_cap - 1):
        clock.advance(settings.current().otp_cooldown_seconds)
        assert send(client, key, device)["status"] == "success"
    clock.advance(settings.current().otp_cooldown_seconds)
    answer = send(client, key, device)
    assert answer["data"]["error_code"] == "rate_limited" and "per hour" in answer["message"]
    assert answer["data"]["retry_after"] == 3600 - 5 - settings.current().otp_hourly_cap * \
        settings.current().otp_cooldown_seconds
    assert len(jobs(device)) == settings.current().otp_hourly_cap


def test_other_account_cannot_verify(client, account):
    acct, key, device, _ = account
    send(client, key, device)
    code = re.search(r"\d{6}", jobs(device)[0]["message"])[0]
    other = accounts.create_account("Other")
    other_key, _ = accounts.create_key(other.account_id)
    assert post(client, api_key=other_key, action="verify_otp", phone_number=NUMBER,
                otp_code=code) == INVALID
    # nor send through A's device
    _, answer = get(client, api_key=other_key, action="send_otp", device_uid=device.device_uid,
                    phone_number=NUMBER)
    assert answer["data"]["error_code"] == "not_found"
    assert post(client, api_key=key, action="verify_otp", phone_number=NUMBER,
                otp_code=code) == SUCCESS


@pytest.mark.parametrize("params, parameter", [
    ({"length": "3"}, "length"),
    ({"length": "11"}, "length"),
    ({"length": "six"}, "length"),
    ({"expiry": "0"}, "expiry"),
    ({"expiry": "31"}, "expiry"),
    ({"message": "Your code is ready"}, "message"),
    ({"phone_number": "12345"}, "phone_number"),
    ({"phone_number": ""}, "phone_number"),
    ({"device_uid": "0000000000000000"}, "device_uid"),
    ({"sim_slot": "1"}, "sim_slot"),
    ({"otp_code": "1234"}, "otp_code"),
])
def test_bad_send_parameters_change_nothing(client, account, params, parameter):
    acct, key, device, _ = account
    request = {"api_key": key, "action": "send_otp", "device_uid": device.device_uid,
               "phone_number": NUMBER, **params}
    _, answer = get(client, **request)
    assert answer["status"] == "error" and answer["data"]["parameter"] == parameter
    assert answer["data"]["error_code"] in ("invalid_parameter", "not_found")
    assert jobs(device) == []
    assert send(client, key, device)["status"] == "success"  # no cooldown was started


@pytest.mark.parametrize("params, parameter", [
    ({"otp_code": "12a456"}, "otp_code"),
    ({"otp_code": ""}, "otp_code"),
    ({"otp_code": "123"}, "otp_code"),
    ({"phone_number": "not a number"}, "phone_number"),
    ({"device_uid": "0000000000000000"}, "device_uid"),
])
def test_bad_verify_parameters(client, account, params, parameter):
    acct, key, device, _ = account
    send(client, key, device)
    code = re.search(r"\d{6}", jobs(device)[0]["message"])[0]
    _, answer = get(client, **{"api_key": key, "action": "verify_otp", "phone_number": NUMBER,
                               "otp_code": code, **params})
    assert answer["status"] == "error"
    assert answer["data"] == {"error_code": "invalid_parameter", "parameter": parameter}
    # the code is untouched: no try burnt, still verifiable
    assert post(client, api_key=key, action="verify_otp", phone_number=NUMBER,
                otp_code=code) == SUCCESS


def test_device_id_works_too(client, account):
    acct, key, device, _ = account
    _, answer = get(client, api_key=key, action="send_otp", device_id=str(device.device_id),
                    phone_number=NUMBER, expiry="30")
    assert answer["status"] == "success" and answer["data"]["expires_in"] == 1800


def test_aws_calls_per_request(client, account, aws_calls):
    """Deterministic call counts (the figures in README, OTP)."""
    acct, key, device, _ = account
    second = "+8801712345679"
    counts = {}

    def measure(label, **params):
        aws_calls.clear()
        _, answer = get(client, api_key=key, **params)
        counts[label] = list(aws_calls)
        return answer

    measure("send_otp cold", action="send_otp", device_uid=device.device_uid,
            phone_number=NUMBER, length=6)
    measure("send_otp warm", action="send_otp", device_uid=device.device_uid,
            phone_number=second, length=6)
    codes = [re.search(r"\d{6}", j["message"])[0] for j in jobs(device)]
    measure("verify_otp right", action="verify_otp", phone_number=NUMBER, otp_code=codes[0])
    wrong = str((int(codes[1]) + 1) % 10 ** 6).zfill(6)
    measure("verify_otp wrong", action="verify_otp", phone_number=second, otp_code=wrong)
    measure("verify_otp spent", action="verify_otp", phone_number=NUMBER, otp_code=codes[0])
    measure("send_otp cooldown", action="send_otp", device_uid=device.device_uid,
            phone_number=NUMBER)
    assert counts["send_otp warm"] == [("dynamodb", "UpdateItem"), ("dynamodb", "PutItem"),
                                       ("sqs", "SendMessage")]
    # Cold: key, account (+ the key's first use this hour recorded), device, then as warm.
    assert counts["send_otp cold"] == [("dynamodb", "GetItem")] * 2 + [
        ("dynamodb", "UpdateItem"), ("dynamodb", "GetItem")] + counts["send_otp warm"]
    assert counts["verify_otp right"] == [("dynamodb", "UpdateItem")]
    # one write per guess, right or wrong (issue 14); a refused guess reads why
    assert counts["verify_otp wrong"] == [("dynamodb", "UpdateItem")]
    assert counts["verify_otp spent"] == [("dynamodb", "UpdateItem"), ("dynamodb", "GetItem")]
    assert counts["send_otp cooldown"] == [("dynamodb", "UpdateItem"), ("dynamodb", "GetItem")]


def test_storage_failure_after_claim_restores_the_otp(client, account):
    """The message write fails (table gone) after the code was stored: the client gets a
    retryable error and may retry at once, no cooldown charged."""
    from chalicelib.storage.tables import Message, Otp
    acct, key, device, _ = account
    boto3.client("dynamodb", region_name=settings.current().region).delete_table(
        TableName=settings.current().table_name("messages"))
    answer = send(client, key, device)
    assert answer["status"] == "error" and answer["data"]["error_code"] == "internal_error"
    assert list(Otp.scan()) == [] and jobs(device) == []
    Message.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
    assert send(client, key, device)["status"] == "success"
