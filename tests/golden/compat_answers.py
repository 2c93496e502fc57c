"""The compat API's answers to the reference's examples (and its documented errors), byte for
byte, made deterministic: frozen clock, counter-based randomness. tests/unit/test_compat_golden.py
compares them with compat_answers.json, which was written by this script run on main's code:

    git archive main | tar -x -C /tmp/main-tree
    cp tests/golden/compat_answers.py /tmp/main-tree/tests/golden/
    (cd /tmp/main-tree && PYTHONPATH=. /path/to/.venv/bin/python tests/golden/compat_answers.py) \
        > tests/golden/compat_answers.json

so a branch that changes any compat answer (e.g. REST v1's shared domain changes) fails it.
"""
import itertools
import json
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import urlencode

FROZEN_MS = 1790000000000


def _deterministic(monkeypatch_setattr):
    counter = itertools.count(1)
    monkeypatch_setattr(secrets, "token_hex",
                        lambda n=32: f"{next(counter):0{2 * n}x}"[-2 * n:])
    monkeypatch_setattr(secrets, "randbits", lambda k: next(counter) % (1 << k))


def answers(monkeypatch_setattr) -> list:
    """(request label, HTTP status, sorted headers, body text) for each example."""
    import moto
    from chalice.test import Client

    from chalicelib.core import clock
    from chalicelib.domain import accounts, devices
    from chalicelib.storage import aws, tables
    _deterministic(monkeypatch_setattr)
    out = []
    with moto.mock_aws():
        aws.reset()
        accounts.forget_cached()
        devices.forget_cached()
        clock.freeze(FROZEN_MS)
        try:
            tables.create_all()
            acct = accounts.create_account("Golden")
            key, _ = accounts.create_key(acct.account_id)
            device, _ = devices.register(acct.account_id, "Phone", sim_count=2)
            from app import app
            with Client(app) as client:
                form = {"content-type": "application/x-www-form-urlencoded"}

                def call(label, method="GET", body=None, **query):
                    query = {k: v.replace("KEY", key).replace("UID", device.device_uid)
                             for k, v in query.items()}
                    path = "/myAPI.php" + ("?" + urlencode(query) if query else "")
                    if method == "POST":
                        body = {k: v.replace("KEY", key).replace("UID", device.device_uid)
                                for k, v in (body or {}).items()}
                        answer = client.http.post(path, headers=form, body=urlencode(body))
                    else:
                        answer = client.http.get(path)
                    out.append([label, answer.status_code, sorted(answer.headers.items()),
                                answer.body.decode()])
                    clock.advance(1)
                    return json.loads(answer.body)

                sent = call("send_sms (reference curl)", "POST", {
                    "api_key": "KEY", "action": "send_sms", "device_uid": "UID",
                    "phone_number": "+8801712345678", "message": "Hello World",
                    "sim_slot": "1"})
                mid = str(sent["data"]["message_id"])
                call("check_status", action="check_status", api_key="KEY", message_id=mid)
                call("get_history outgoing", action="get_history", api_key="KEY",
                     type="outgoing", limit="5")
                call("get_history incoming", action="get_history", api_key="KEY",
                     type="incoming", limit="5")
                call("get_history all", action="get_history", api_key="KEY", limit="1")
                call("device_status", action="device_status", api_key="KEY")
                call("send_otp", "POST", {"api_key": "KEY", "action": "send_otp",
                                          "device_uid": "UID", "phone_number": "+8801712345679",
                                          "length": "6", "expiry": "5"})
                call("verify_otp wrong", "POST", {"api_key": "KEY", "action": "verify_otp",
                                                  "phone_number": "+8801712345679",
                                                  "otp_code": "000000x"})
                call("send_sms idempotent replay", "POST", {
                    "api_key": "KEY", "action": "send_sms", "device_id": "1",
                    "phone_number": "+8801712345678", "message": "Once",
                    "idempotency_key": "k1"})
                call("send_sms idempotent replay 2", "POST", {
                    "api_key": "KEY", "action": "send_sms", "device_id": "1",
                    "phone_number": "+8801712345678", "message": "Once",
                    "idempotency_key": "k1"})
                call("missing key", action="device_status")
                call("bad number", "POST", {"api_key": "KEY", "action": "send_sms",
                                            "device_uid": "UID", "phone_number": "12",
                                            "message": "x"})
                call("unknown action", action="send_fax", api_key="KEY")
                call("unknown message", action="check_status", api_key="KEY",
                     message_id="99")
                call("too long", "POST", {"api_key": "KEY", "action": "send_sms",
                                          "device_uid": "UID", "phone_number": "+8801712345678",
                                          "message": "x" * 1601})
        finally:
            clock.reset()
            aws.reset()
    return out


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "SMSGW_STAGE": "test",
                       "SMSGW_OTP_SECRET": "golden-" + "0" * 40,
                       "SMSGW_DEFAULT_PACE_PER_HOUR": "0"})  # as tests/conftest.py sets
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    print(json.dumps(answers(lambda obj, name, value: setattr(obj, name, value)), indent=1))
