"""The client's webhook signature check (smsgw_client.webhooks, also clients/smsgw_webhook.py)
against signatures made by the gateway's own signing code: tampering, wrong secret, timestamp
tolerance, rotation (two v1= values), malformed headers. Its twin against real deliveries is
tests/e2e/test_client_e2e.py::test_webhooks_managed_by_the_client_and_verified_by_it."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python" / "src"))

from smsgw_client import InvalidSignature, verified_event, verify  # noqa: E402
from smsgw_client import webhooks as client_webhooks  # noqa: E402

from chalicelib.domain import webhooks  # noqa: E402
from clients import smsgw_webhook  # noqa: E402

SECRET, OLD = "whsec_" + "a" * 43, "whsec_" + "b" * 43
NOW = 1795784238
BODY = json.dumps({"id": "evt_1", "type": "sms.delivered", "data": {"message_id": 7}}).encode()


def gateway_headers(*secrets, timestamp=NOW, body=BODY):
    """What webhook_sender puts on a request: the gateway's own signature code."""
    signed = ",".join(webhooks.signature(s, timestamp, body) for s in secrets)
    return {"X-Smsgw-Signature": signed, "X-Smsgw-Timestamp": str(timestamp)}


def check(headers, secrets, body=BODY, now=NOW, tolerance=300):
    return verify(body, headers.get("X-Smsgw-Signature"), headers.get("X-Smsgw-Timestamp"),
                  secrets, tolerance=tolerance, now=now)


def test_the_copyable_file_is_the_package_module():
    assert Path(smsgw_webhook.__file__).resolve() == Path(client_webhooks.__file__).resolve()


def test_a_gateway_signature_verifies():
    assert check(gateway_headers(SECRET), [SECRET])
    assert check(gateway_headers(SECRET), SECRET)  # one secret as a string
    assert check(gateway_headers(SECRET), [OLD, SECRET])  # any secret held may match
    assert verified_event(BODY, gateway_headers(SECRET), [SECRET], now=NOW)["id"] == "evt_1"
    lower = {k.lower(): v for k, v in gateway_headers(SECRET).items()}
    assert verified_event(BODY.decode(), lower, [SECRET], now=NOW)["type"] == "sms.delivered"


@pytest.mark.parametrize("body", [BODY + b" ", BODY.replace(b"7", b"8"), BODY[:-1], b""])
def test_a_tampered_body_fails(body):
    assert not check(gateway_headers(SECRET), [SECRET], body=body)
    with pytest.raises(InvalidSignature):
        verified_event(body, gateway_headers(SECRET), [SECRET], now=NOW)


def test_a_wrong_secret_fails():
    assert not check(gateway_headers(SECRET), [OLD])
    assert not check(gateway_headers(SECRET), [])
    assert not check(gateway_headers(SECRET), [SECRET[:-1]])


def test_timestamp_tolerance_both_ways_and_a_retimed_signature():
    assert check(gateway_headers(SECRET), [SECRET], now=NOW + 300)
    assert not check(gateway_headers(SECRET), [SECRET], now=NOW + 301)  # replayed later
    assert not check(gateway_headers(SECRET), [SECRET], now=NOW - 301)  # from the future
    assert check(gateway_headers(SECRET), [SECRET], now=NOW + 3000, tolerance=3600)
    moved = {**gateway_headers(SECRET), "X-Smsgw-Timestamp": str(NOW + 1000)}
    assert not check(moved, [SECRET], now=NOW + 1000)  # the timestamp is signed


def test_rotation_sends_two_values_and_either_secret_accepts():
    both = gateway_headers(SECRET, OLD)
    assert both["X-Smsgw-Signature"].count("v1=") == 2
    assert check(both, [SECRET]) and check(both, [OLD])
    assert not check(both, ["whsec_other"])
    assert check({**both, "X-Smsgw-Signature": both["X-Smsgw-Signature"].replace(",", " , ")},
                 [OLD])


@pytest.mark.parametrize("signature,timestamp", [
    (None, str(NOW)), ("", str(NOW)), ("v1=é", str(NOW)), ("v2=abc", str(NOW)),
    ("sha256=" + "0" * 64, str(NOW)), (None, None), ("v1=00", "١٧٩٥٧٨٤٢٣٨"),
    ("v1=00", "-1"), ("v1=00", "1e9"), ("v1=00", ""), ("v1=00", "9" * 40)])
def test_malformed_headers_are_a_refusal_never_an_exception(signature, timestamp):
    real = gateway_headers(SECRET)["X-Smsgw-Signature"]
    for sig in (signature, f"{signature},{real}" if signature and timestamp != str(NOW) else
                signature):
        assert not verify(BODY, sig, timestamp, [SECRET], now=NOW)
