"""Test setup: fake AWS credentials and moto before any gateway import, so no test can reach AWS."""
import os

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "SMSGW_STAGE": "test",
    "SMSGW_OTP_SECRET": "test-otp-secret-0123456789abcdef0123456789abcdef",
})
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

import moto  # noqa: E402
import pytest  # noqa: E402

from chalicelib import accounts, aws, clock, devices, tables  # noqa: E402


@pytest.fixture
def aws_mock():
    """A fresh in-process moto backend with the gateway's tables."""
    with moto.mock_aws():
        aws.reset()
        accounts.forget_cached()
        devices.forget_cached()
        clock.reset()
        tables.create_all()
        yield
        clock.reset()
        aws.reset()


@pytest.fixture
def account(aws_mock):
    """An account with one key and one dual-SIM device: (account, key, device, device_token)."""
    acct = accounts.create_account("Acme")
    key, _ = accounts.create_key(acct.account_id, "test")
    device, token = devices.register(acct.account_id, "Phone 1", sim_count=2)
    return acct, key, device, token


@pytest.fixture
def client(aws_mock):
    from chalice.test import Client

    from app import app
    with Client(app) as test_client:
        yield test_client


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS API call made from now on, as (service, operation), boto3's and PynamoDB's alike
    (PynamoDB has its own botocore session, so this hooks the botocore client class itself)."""
    import botocore.client

    calls = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation_name, api_params):
        calls.append((self.meta.service_model.service_name, operation_name))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return calls
