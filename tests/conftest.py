"""Test setup: fake AWS credentials and moto before any gateway import, so no test can reach AWS."""
import json
import os

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "SMSGW_STAGE": "test",
    "SMSGW_OTP_SECRET": "test-otp-secret-0123456789abcdef0123456789abcdef",
    # Local gateways that tests start keep nothing on disk unless a test passes --data.
    "SMSGW_LOCAL_MEMORY": "1",
    # Pacing off unless a test paces a device itself (tests/api/test_pool.py checks the default).
    "SMSGW_DEFAULT_PACE_PER_HOUR": "0",
    "SMSGW_PACE_WINDOW_PARTS": "0",
})
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

import jsonschema  # noqa: E402
import moto  # noqa: E402
import pytest  # noqa: E402

from localgw.botocore_models import share_loader  # noqa: E402

share_loader()  # botocore's JSON parsed once per test process, not for each new client

from chalicelib.core import clock  # noqa: E402
from chalicelib.domain import accounts, devices, pool  # noqa: E402
from chalicelib.storage import aws, tables  # noqa: E402
from tests.openapi_helpers import route_of  # noqa: E402


@pytest.fixture
def settings_override():
    """settings_override(lease_seconds=5, ...): the gateway's settings with these fields changed
    for the rest of the test (chalicelib/core/settings.py), all restored after it. The one way
    tests change a setting; tests that start a process set its environment instead."""
    from chalicelib.core import settings
    before = settings.current()

    def override(**changes):
        settings.install(settings.current().replace(**changes))
        return settings.current()
    yield override
    settings.install(before)


@pytest.fixture
def quick_hashes(monkeypatch):
    """argon2 at its cheapest, for tests that set many passwords (the rules are unchanged)."""
    from argon2 import PasswordHasher

    from chalicelib.domain import users
    monkeypatch.setattr(users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                         parallelism=1))
    monkeypatch.setattr(users, "_DUMMY_HASH", None)


@pytest.fixture
def mailbox(tmp_path, settings_override):
    """Mails as the local gateway writes them (.eml files); mailbox() -> parsed, oldest first."""
    import email
    import email.policy
    folder = tmp_path / "mail"
    settings_override(mail_dir=str(folder), alert_sender="")

    def read():
        return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                for path in sorted(folder.glob("*.eml"))] if folder.exists() else []
    return read


@pytest.fixture
def aws_mock():
    """A fresh in-process moto backend with the gateway's tables."""
    with moto.mock_aws():
        aws.reset()
        accounts.forget_cached()
        devices.forget_cached()
        pool.forget_cached()
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
def running_account(client, account, atomic_moto):
    """`account` with its phone running and no container cache left: (account, key, device,
    device_token)."""
    from chalicelib.domain import opt_outs, quotas
    devices.heartbeat(account[2], "running")
    for module in (pool, devices, accounts, opt_outs, quotas):
        module.forget_cached()
    return account


@pytest.fixture
def client(aws_mock):
    from chalice.test import Client

    from app import app
    with Client(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def local_gateway():
    """The README's local gateway (no simulated phone), a separate process on free ports:
    yields its JSON banner (url, aws_endpoint, account_id, api_key, device_id, device_uid,
    device_token). Modules that need other flags use tests/localgw_helpers.py directly."""
    from tests.localgw_helpers import gateway_fixture
    yield from gateway_fixture("--no-agent")


@pytest.fixture
def api(client):
    """Call /myAPI.php through the Chalice test client: api(how="form"|"query"|"json",
    headers=..., **params) -> (decoded envelope, response)."""
    import json
    from urllib.parse import urlencode

    def call(how="form", headers=None, **values):
        headers = dict(headers or {})
        if how == "query":
            response = client.http.get("/myAPI.php?" + urlencode(values), headers=headers)
        elif how == "json":
            headers.setdefault("content-type", "application/json")
            response = client.http.post("/myAPI.php", headers=headers, body=json.dumps(values))
        else:
            headers.setdefault("content-type", "application/x-www-form-urlencoded")
            response = client.http.post("/myAPI.php", headers=headers, body=urlencode(values))
        return json.loads(response.body), response
    return call



@pytest.fixture
def from_ip(monkeypatch):
    """from_ip("1.2.3.4") makes the test client report that address as API Gateway's sourceIp."""
    from chalice.local import LambdaEventConverter

    def set_ip(ip):
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", ip)
    return set_ip


class RecordedCalls(list):
    """(service, operation) of every AWS call made; `.requests` also has the parameters."""

    def __init__(self):
        super().__init__()
        self.requests = []

    def clear(self):
        super().clear()
        self.requests.clear()


@pytest.fixture
def aws_calls(monkeypatch):
    """Records every AWS operation made (service, operation) — PynamoDB's included."""
    import botocore.client
    calls = RecordedCalls()
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        service = self.meta.service_model.service_name
        calls.append((service, operation_name))
        calls.requests.append((service, operation_name, api_params))
        return original(self, operation_name, api_params)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


@pytest.fixture
def atomic_moto(monkeypatch):
    """Real DynamoDB applies a conditional write atomically per item; moto checks and writes
    without a lock, so threads could interleave inside one call. Serialise moto's item
    operations as the local gateway does (only whole calls: our code still races between its
    calls)."""
    from localgw.atomic import serialise_moto_dynamodb
    serialise_moto_dynamodb(monkeypatch.setattr)


@pytest.fixture
def webhook_receiver(aws_mock, settings_override):
    """A real receiver on 127.0.0.1 (bench.webhook_receiver) fed by the app's stream and queue
    functions, run by local_events.EventPumps as on the local gateway; local URLs allowed,
    no endpoint cache, retries 1,000 times faster."""
    from bench.webhook_receiver import Receiver
    from chalicelib.domain import webhooks
    from chalicelib.domain.webhooks import dispatch as webhook_delivery
    from localgw import events as local_events
    settings_override(webhook_allow_private=True, webhook_cache_seconds=0)
    settings_override(webhook_retry_scale=0.001)
    webhooks.forget_cached()
    webhook_delivery.forget_cached()
    pumps = local_events.EventPumps().start()
    receiver = Receiver()
    yield receiver
    pumps.stop()
    receiver.close()


@pytest.fixture
def v1(client, account, atomic_moto):
    """v1(method, path, body=None, key=...) -> (status, decoded body, headers); every answer is
    checked against the OpenAPI document's schema for that operation and status. A request's
    recipients are written by 8 threads: `atomic_moto` gives moto DynamoDB's per-item atomicity
    (without it two pacing ADDs could read one old value and share a slot, which DynamoDB
    never allows)."""
    document = json.loads(client.http.get("/v1/openapi.json").body)

    def call(method, path, body=None, key=account[1], headers=None, raw=None):
        sent = {"content-type": "application/json", **(headers or {})}
        if key is not None:
            sent["authorization"] = f"Bearer {key}"
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = getattr(client.http, method.lower())(path, headers=sent, body=payload)
        decoded = json.loads(response.body)
        template = route_of(document, path)
        operation = document["paths"][template][method.lower()]
        answer = operation["responses"].get(str(response.status_code))
        assert answer is not None, (response.status_code, decoded)
        media, = answer["content"]
        assert response.headers["Content-Type"] == media
        found = answer["content"][media]["schema"]
        found = document["components"]["schemas"]["Problem"] if "$ref" in found else found
        jsonschema.validate(decoded, found)
        return response.status_code, decoded, response.headers
    return call


# Scheduling on CI's cores (./run-tests: `-n auto --dist loadgroup --no-loadscope-reorder`):
# xdist hands tests out in collection order, so the long ones go first (a long test last is a
# tail with one core idle), and a module whose tests share a module-scoped fixture (a gateway, a
# browser, a packaged template) is one unit of work: one worker starts that fixture once,
# instead of every worker that gets one of its tests.
SLOW_FIRST = (  # the longest tests of the last CI runs, longest first (measured with --durations)
    "tests/e2e/test_local_restarts.py", "tests/unit/test_bench_cost.py",
    "tests/e2e/test_rehearse_e2e.py", "tests/e2e/test_local_data_at_rest.py",
    "tests/e2e/test_soak.py", "tests/browser/", "tests/e2e/test_local_lan_webhooks.py",
    "tests/e2e/test_alerts_e2e.py", "tests/e2e/test_local_tls.py", "tests/e2e/test_docs.py",
    "tests/e2e/test_pool_e2e.py", "tests/e2e/", "tests/unit/test_template.py",
    "tests/unit/test_webhooks_deploy.py", "tests/unit/test_bench_", "tests/unit/test_rehearse.py")


def _rank(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return next((n for n, prefix in enumerate(SLOW_FIRST) if path.startswith(prefix)),
                len(SLOW_FIRST))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    items.sort(key=_rank)  # stable: a module's tests stay together and in order
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info else ()
        if any(d[-1].scope == "module" for d in defs if d):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
