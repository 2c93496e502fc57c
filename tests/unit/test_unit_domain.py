"""Pure domain helpers: phone normalisation, ids, whitelist matching, parameter parsing."""
import pytest

from chalicelib.core import clock, ids
from chalicelib.core.errors import BadRequest
from chalicelib.domain import accounts, phone
from chalicelib.surfaces import params


def test_phone_normalised_to_e164():
    assert phone.normalise("+880 1712-345678") == "+8801712345678"
    assert phone.normalise("+1 (202) 555-0143") == "+12025550143"


def test_plus_sent_unencoded_in_a_form_is_restored():
    assert phone.normalise(" 8801712345678") == "+8801712345678"


@pytest.mark.parametrize("raw", ["", "   ", "abc", "+1 555", "01712345678", "+99912345", "1" * 40])
def test_invalid_numbers_rejected(raw):
    with pytest.raises(BadRequest) as err:
        phone.normalise(raw)
    assert err.value.parameter == "phone_number"


def test_default_region_applies_when_configured(settings_override):
    settings_override(default_region="BD")
    assert phone.normalise("01712345678") == "+8801712345678"


def test_message_ids_are_js_safe_unique_and_time_ordered():
    clock.freeze(1764000000000)
    try:
        first = {ids.new_message_id() for _ in range(200)}
        clock.advance(0.001)
        later = ids.new_message_id()
    finally:
        clock.reset()
    assert all(0 < i < 2 ** 53 for i in first)
    assert later > max(first)
    assert ids.message_id_floor(1764000000000) <= min(first)


@pytest.mark.parametrize("ip,whitelist,allowed", [
    ("1.2.3.4", [], True),
    ("1.2.3.4", ["1.2.3.4/32"], True),
    ("1.2.3.5", ["1.2.3.4/32"], False),
    ("10.0.9.1", ["10.0.0.0/16"], True),
    ("2001:db8::1", ["2001:db8::/32"], True),
    ("2001:db9::1", ["2001:db8::/32"], False),
    ("::ffff:1.2.3.4", ["1.2.3.0/24"], True),
    ("not-an-ip", ["0.0.0.0/0"], False),
    (None, ["0.0.0.0/0"], False),
])
def test_ip_whitelist(ip, whitelist, allowed):
    assert accounts.ip_allowed(ip, whitelist) is allowed


def test_whitelist_entries_validated_and_canonical():
    assert accounts.parse_whitelist(["1.2.3.4", "10.0.0.1/8", "2001:DB8::/32"]) == [
        "1.2.3.4/32", "10.0.0.0/8", "2001:db8::/32"]
    with pytest.raises(BadRequest):
        accounts.parse_whitelist(["1.2.3.999"])


def test_params_from_query_form_and_json():
    assert params.collect({"a": ["1"]}, {}, None) == {"a": "1"}
    assert params.collect(None, {"content-type": "application/x-www-form-urlencoded"},
                          b"a=1&b=%2B2") == {"a": "1", "b": "+2"}
    assert params.collect(None, {"content-type": "application/json"},
                          b'{"a": "x", "sim_slot": 2}') == {"a": "x", "sim_slot": "2"}


def test_params_multipart():
    body = (b"--XX\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\nsend_sms\r\n"
            b"--XX\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nHi there\r\n"
            b"--XX--\r\n")
    got = params.collect(None, {"content-type": "multipart/form-data; boundary=XX"}, body)
    assert got == {"action": "send_sms", "message": "Hi there"}


@pytest.mark.parametrize("query,headers,body,parameter", [
    ({"a": ["1", "2"]}, {}, None, "a"),
    ({"a": ["1"]}, {"content-type": "application/x-www-form-urlencoded"}, b"a=2", "a"),
    (None, {"content-type": "application/json"}, b'{"a": [1]}', "a"),
    (None, {"content-type": "application/json"}, b'{"a": null}', "a"),
    (None, {"content-type": "application/json"}, b'{"a": true}', "a"),
    (None, {"content-type": "application/json"}, b"[1, 2]", None),
    (None, {"content-type": "application/json"}, b"{not json", None),
    (None, {"content-type": "application/xml"}, b"<a/>", None),
    (None, {"content-type": "application/x-www-form-urlencoded"}, b"a=" + b"x" * 20000, None),
    (None, {"content-type": "application/x-www-form-urlencoded"}, b"a=%ff", None),
    ({"a": ["x\x00y"]}, {}, None, "a"),
])
def test_params_rejected(query, headers, body, parameter):
    with pytest.raises(BadRequest) as err:
        params.collect(query, headers, body)
    assert err.value.parameter == parameter


def test_timestamps_are_utc_reference_format():
    assert clock.fmt(1764064800000) == "2025-11-25 10:00:00"
    assert clock.fmt(None) is None
