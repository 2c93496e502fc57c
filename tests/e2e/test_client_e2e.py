"""The Python client (clients/python) against the local gateway over real HTTP: sends, reads,
lists, cancels, OTP, devices, problem errors, Retry-After retries, the CSV bulk CLI, and
webhook management with the client's signature check on what the gateway delivers to a real
receiver."""
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

CLIENT_SRC = Path(__file__).resolve().parents[2] / "clients" / "python" / "src"
sys.path.insert(0, str(CLIENT_SRC))

from smsgw_client import ApiError, Client, InvalidSignature, verified_event  # noqa: E402
from smsgw_client.cli import main as send_csv  # noqa: E402


@pytest.fixture(scope="module")
def gw(local_gateway):
    return Client(local_gateway["url"], local_gateway["api_key"])


def test_send_get_list_cancel(gw, local_gateway):
    device = local_gateway["device_id"]
    later = datetime.now(UTC) + timedelta(hours=2)
    sent = gw.send(["+8801712000001", "+8801712000002"], "From the client", device_id=device,
                   send_at=later, idempotency_key="client-e2e-1")
    assert [m["status"] for m in sent] == ["pending", "pending"]
    assert sent[0]["send_at"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert gw.send(["+8801712000001", "+8801712000002"], "From the client", device_id=device,
                   send_at=later, idempotency_key="client-e2e-1")[1]["id"] == sent[1]["id"]
    assert gw.get(sent[0]["id"])["message"] == "From the client"
    assert gw.cancel(sent[0]["id"])["status"] == "cancelled"
    listed = [m["id"] for m in gw.messages(phone_number="+8801712000001", page_size=1)]
    assert sent[0]["id"] in listed
    assert sent[1]["id"] in [m["id"] for m in gw.messages(status="pending")]


def test_problems_are_api_errors(gw):
    with pytest.raises(ApiError) as caught:
        gw.send(["+8801712000003", "not a number"], "x", device_id=1)
    assert (caught.value.status, caught.value.parameter) == (422, "recipients[1]")
    with pytest.raises(ApiError) as caught:
        gw.get(12345)
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as caught:
        Client(gw.base_url, "0" * 64).devices()
    assert caught.value.status == 401


def test_otp_and_devices(gw, local_gateway):
    assert [d["device_id"] for d in gw.devices()] == [local_gateway["device_id"]]
    paced = gw.set_pacing(local_gateway["device_id"], pace_per_hour=40, window_parts=0)
    assert (paced["pace_per_hour"], paced["window_parts"]) == (40, None)
    back = gw.set_pacing(local_gateway["device_id"], pace_per_hour=None, window_parts=None)
    assert back["pace_default"] and back["window_default"]
    assert gw.device(local_gateway["device_id"])["pace_default"] is True
    assert gw.send_otp("+8801712000009", device_id=local_gateway["device_id"])["expires_in"]
    assert gw.verify_otp("+8801712000009", "000000000") is False


def test_429_is_retried_after_retry_after(local_gateway):
    waits = []
    patient = Client(local_gateway["url"], local_gateway["api_key"], max_retries=2,
                     sleep=waits.append)
    patient.send_otp("+8801712000010", device_id=local_gateway["device_id"])
    with pytest.raises(ApiError) as caught:  # the cooldown outlasts the (recorded) waits
        patient.send_otp("+8801712000010", device_id=local_gateway["device_id"])
    assert caught.value.status == 429 and caught.value.code == "rate_limited"
    assert len(waits) == 2 and all(0 < w <= 30 for w in waits)
    impatient = Client(local_gateway["url"], local_gateway["api_key"], max_retry_wait=0,
                       sleep=waits.append)
    with pytest.raises(ApiError):
        impatient.send_otp("+8801712000010", device_id=local_gateway["device_id"])
    assert len(waits) == 2  # Retry-After beyond max_retry_wait: raised at once


def test_webhooks_managed_by_the_client_and_verified_by_it(gw):
    from bench.webhook_receiver import Receiver
    receiver = Receiver()  # records every request; the client's check runs below
    try:
        made = gw.create_webhook(receiver.url, description="client e2e")
        assert made["secret"].startswith("whsec_") and made["status"] == "enabled"
        assert [w["webhook_id"] for w in gw.webhooks()] == [made["webhook_id"]]
        assert "secret" not in gw.webhook(made["webhook_id"])
        event_id = gw.test_webhook(made["webhook_id"])
        assert receiver.wait_for(lambda r: r.arrivals[event_id] == 1, 30)
        headers, body, _ = receiver.requests[-1]
        assert verified_event(body, headers, [made["secret"]])["id"] == event_id
        with pytest.raises(InvalidSignature):
            verified_event(body, headers, ["whsec_someone_else"])
        with pytest.raises(InvalidSignature):
            verified_event(body.replace(b"test", b"tesT"), headers, [made["secret"]])

        rotated = gw.rotate_webhook_secret(made["webhook_id"], overlap=300)
        assert rotated["secret"] != made["secret"] and rotated["rotation_ends"]
        assert gw.redeliver(made["webhook_id"], event_id) == [event_id]
        assert receiver.wait_for(lambda r: r.arrivals[event_id] == 2, 30)
        headers, body, _ = receiver.requests[-1]
        # the old secret signs all through the overlap (the new one too, once the delivery
        # function's endpoint cache, 10 s, has seen the rotation): holding both always works
        assert verified_event(body, headers, [made["secret"]])["id"] == event_id
        assert verified_event(body, headers, [rotated["secret"], made["secret"]])
        log = list(gw.webhook_deliveries(made["webhook_id"], page_size=1))
        assert [d["event_id"] for d in log] == [event_id] and log[0]["state"] == "delivered"
        assert gw.webhook_delivery(made["webhook_id"], event_id)["body"] == body.decode()
        assert gw.redeliver_failed(made["webhook_id"], datetime.now(UTC) - timedelta(hours=1)
                                   ) == []
        assert gw.set_webhook_enabled(made["webhook_id"], False)["status"] == "disabled"
        gw.delete_webhook(made["webhook_id"])
        with pytest.raises(ApiError) as caught:
            gw.webhook(made["webhook_id"])
        assert caught.value.status == 404
    finally:
        receiver.close()


def test_csv_bulk_cli_is_idempotent(local_gateway, tmp_path, capsys):
    path = tmp_path / "numbers.csv"
    path.write_text("phone\n+8801712000100\n+8801712000101\nbogus\n")
    argv = ["--csv", str(path), "-m", "Bulk hello", "--device-id",
            str(local_gateway["device_id"]), "--url", local_gateway["url"], "--api-key",
            local_gateway["api_key"]]
    assert send_csv(argv) == 1  # one bad number: the whole chunk is refused, nothing sent
    assert "invalid_parameter" in capsys.readouterr().out
    path.write_text("phone\n+8801712000100\n+8801712000101\n")
    assert send_csv(argv) == 0
    first = capsys.readouterr()
    assert "2 accepted, 0 failed" in first.err and "[" in first.err
    assert send_csv(argv) == 0
    assert capsys.readouterr().out == first.out  # same ids: nothing sent twice


def test_client_package_installs(tmp_path):
    source = shutil.copytree(CLIENT_SRC.parent, tmp_path / "source")  # builds leave files
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation",
                    "--no-deps", "--target", str(tmp_path / "site"), str(source)],
                   check=True, capture_output=True, timeout=120)
    assert (tmp_path / "site" / "smsgw_client" / "py.typed").exists()
    assert (tmp_path / "site" / "smsgw_client" / "cli.py").exists()
