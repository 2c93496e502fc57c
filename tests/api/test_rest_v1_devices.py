"""GET and PATCH /v1/devices/{device_id}: one phone with its pacing, and the owner setting the
SIM rate and Android's window over the API as the CLI and the dashboard do (docs/pool.md). Every
answer is checked against the OpenAPI document (the `v1` fixture)."""
import re

import pytest

from chalicelib.core import settings
from chalicelib.domain import accounts, devices
from chalicelib.storage.tables import Device


def stored(device):
    item = Device.get(device.device_uid, consistent_read=True)
    return item.pace_per_hour, item.pace_window, item.pace_ver


def test_a_phone_with_its_pacing(v1, account):
    status, body, _ = v1("GET", f"/v1/devices/{account[2].device_id}")
    assert status == 200
    assert body["device_uid"] == account[2].device_uid and body["sim_count"] == 2
    assert body["pace_default"] is True and body["window_default"] is True
    assert body["window_parts"] == (settings.current().pace_window_parts or None)  # tests: none
    assert body["window_used"] == 0 and [s["sim_slot"] for s in body["sims"]] == [1, 2]


def test_setting_pace_and_window_then_back_to_the_defaults(v1, account):
    path = f"/v1/devices/{account[2].device_id}"
    status, body, _ = v1("PATCH", path, {"pace_per_hour": 12, "window_parts": 20})
    assert status == 200
    assert (body["pace_per_hour"], body["window_parts"]) == (12, 20)
    assert body["pace_default"] is False and body["window_default"] is False
    assert stored(account[2])[:2] == (12, 20)
    for sim in body["sims"]:  # RFC 3339, as every v1 time (not the compat API's form)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sim["next_free_at"]), sim
    assert v1("GET", path)[1]["pace_per_hour"] == 12
    # only what is given changes; 0 is "no window" (a phone whose Android limit was raised)
    body = v1("PATCH", path, {"window_parts": 0})[1]
    assert (body["pace_per_hour"], body["window_parts"]) == (12, None)
    assert stored(account[2])[:2] == (12, 0)
    # null puts the gateway's default back
    body = v1("PATCH", path, {"pace_per_hour": None, "window_parts": None})[1]
    assert body["pace_default"] is True and body["window_default"] is True
    assert stored(account[2])[:2] == (None, None)


@pytest.mark.parametrize("patch, parameter", [
    ({}, "pace_per_hour"),
    ({"pace_per_hour": 0}, "pace_per_hour"),
    ({"pace_per_hour": -5}, "pace_per_hour"),
    ({"pace_per_hour": settings.current().max_pace_per_hour + 1}, "pace_per_hour"),
    ({"pace_per_hour": "12"}, "pace_per_hour"),
    ({"pace_per_hour": 1.5}, "pace_per_hour"),
    ({"window_parts": -1}, "window_parts"),
    ({"window_parts": "none"}, "window_parts"),
    ({"window_parts": settings.current().max_window_parts + 1}, "window_parts"),
    ({"pace_per_hour": 10, "pace": 3}, "pace"),
])
def test_bad_limits_are_400_naming_the_field_and_change_nothing(v1, account, patch, parameter):
    before = stored(account[2])
    status, problem, _ = v1("PATCH", f"/v1/devices/{account[2].device_id}", patch)
    assert status == 400, problem
    assert problem["parameter"] == parameter
    assert stored(account[2]) == before


def test_another_accounts_phone_is_unknown_and_unchanged(v1, account):
    other = accounts.create_account("Other")
    theirs, _ = devices.register(other.account_id, "Theirs")
    devices.register(other.account_id, "Theirs 2")  # their device 2; ours has only device 1
    for method, body in (("GET", None), ("PATCH", {"pace_per_hour": 3})):
        status, problem, _ = v1(method, "/v1/devices/2", body)
        assert status == 404 and problem["parameter"] == "device_id"
    assert stored(theirs)[:2] == (None, None)
    assert v1("GET", "/v1/devices/0")[0] == 400  # ids start at 1
    assert v1("GET", "/v1/devices/+1")[0] == 400  # one spelling of a number

