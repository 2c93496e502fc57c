"""AWS calls per device-protocol request, counted in-process against moto (deterministic).

    python bench/device_aws_calls.py

Patches botocore's BaseClient._make_api_call (PynamoDB and boto3 both go through it) and drives
the real handlers through chalice.test.Client.
"""
import collections
import json
import os
import sys
from unittest import mock

os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                   "AWS_DEFAULT_REGION": "us-east-1", "SMSGW_STAGE": "bench"})
os.environ.pop("AWS_ENDPOINT_URL", None)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import moto  # noqa: E402
from botocore.client import BaseClient  # noqa: E402

calls = []
_real = BaseClient._make_api_call


def counting(self, operation, params):
    calls.append(operation)
    return _real(self, operation, params)


def measure(label, fn):
    calls.clear()
    result = fn()
    counted = collections.Counter(calls)
    print(f"  {label:<44} {len(calls):>2}  {dict(counted)}")
    return result


def main():
    with moto.mock_aws(), mock.patch.object(BaseClient, "_make_api_call", counting):
        from chalice.test import Client

        from app import app
        from chalicelib import accounts, devices, messages, tables
        tables.create_all()
        account = accounts.create_account("Bench")
        device, token = devices.register(account.account_id, "Phone", sim_count=2)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with Client(app) as client:
            def poll():
                return json.loads(client.http.get("/device/jobs?wait=0&max=10",
                                                  headers=headers).body)["jobs"]

            def report(message_id, status):
                return client.http.post("/device/reports", headers=headers, body=json.dumps(
                    {"reports": [{"message_id": message_id, "status": status}]}))

            print("AWS calls per device request (operation counts):")
            measure("heartbeat", lambda: client.http.post(
                "/device/heartbeat", headers=headers, body='{"app_state": "running"}'))
            measure("poll, empty (last_seen fresh)", poll)
            sent = messages.send(account.account_id, device, "+8801712345678", "hi").message
            jobs = measure("poll, 1 job", poll)
            assert [j["message_id"] for j in jobs] == [sent.message_id]
            measure("report sent (1 item)", lambda: report(sent.message_id, "sent"))
            measure("report delivered (1 item)", lambda: report(sent.message_id, "delivered"))
            measure("report repeated/late (1 item, ignored)",
                    lambda: report(sent.message_id, "sent"))
            measure("incoming SMS (1 item)", lambda: client.http.post(
                "/device/incoming", headers=headers, body=json.dumps({"messages": [
                    {"device_message_id": "1", "phone_number": "+8801812345678",
                     "message": "hello", "received_at": 1_760_000_000_000}]})))
            print("Notes: every request reads the device once (token check, GetItem). A poll "
                  "also writes last_seen when it is older than "
                  f"{devices.SEEN_REFRESH_SECONDS} s (one UpdateItem); an idle device polling "
                  "with wait=20 costs 1 GetItem + 1 ReceiveMessage per 20 s.")


if __name__ == "__main__":
    main()
