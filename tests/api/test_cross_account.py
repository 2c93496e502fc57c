"""No action lets one account's key see or touch another account's devices or messages."""
import pytest

from chalicelib.core.errors import NotFound
from chalicelib.domain import accounts, devices
from chalicelib.storage.tables import Message

PHONE = "+8801712345678"


@pytest.fixture
def two_accounts(account, api):
    acct_a, key_a, device_a, _ = account
    sent, _ = api(api_key=key_a, action="send_sms", device_uid=device_a.device_uid,
                  phone_number=PHONE, message="secret for A")
    acct_b = accounts.create_account("Other")
    key_b, _ = accounts.create_key(acct_b.account_id)
    device_b, _ = devices.register(acct_b.account_id, "B phone")
    return {"a": (acct_a, key_a, device_a, sent["data"]["message_id"]),
            "b": (acct_b, key_b, device_b)}


def test_b_cannot_send_through_a_device_by_uid_or_id(api, two_accounts):
    acct_a, _, device_a, _ = two_accounts["a"]
    _, key_b, device_b = two_accounts["b"]
    by_uid, _ = api(api_key=key_b, action="send_sms", device_uid=device_a.device_uid,
                    phone_number=PHONE, message="x")
    assert by_uid["status"] == "error" and by_uid["data"]["error_code"] == "not_found"
    # device ids are per account: B's id 1 is B's own phone, never A's
    by_id, _ = api(api_key=key_b, action="send_sms", device_id=str(device_a.device_id),
                   phone_number=PHONE, message="x")
    assert by_id["status"] == "success"
    assert Message.get(two_accounts["b"][0].account_id,
                       by_id["data"]["message_id"]).device_uid == device_b.device_uid
    assert len(list(Message.query(acct_a.account_id))) == 1


def test_b_cannot_read_a_message_status(api, two_accounts):
    _, key_a, _, mid = two_accounts["a"]
    _, key_b, _ = two_accounts["b"]
    assert api("query", api_key=key_a, action="check_status", message_id=mid)[0]["status"] \
        == "success"
    body, _ = api("query", api_key=key_b, action="check_status", message_id=mid)
    assert body["status"] == "error" and body["data"]["error_code"] == "not_found"


def test_b_history_and_devices_hold_only_b(api, two_accounts):
    _, key_b, device_b = two_accounts["b"]
    history, _ = api("query", api_key=key_b, action="get_history")
    assert history["data"]["messages"] == []
    status, _ = api("query", api_key=key_b, action="device_status")
    assert [d["device_uid"] for d in status["data"]] == [device_b.device_uid]


def test_b_cannot_revoke_or_remove_a_things(two_accounts):
    acct_a, _, device_a, _ = two_accounts["a"]
    acct_b = two_accounts["b"][0]
    [key_a] = accounts.list_keys(acct_a.account_id)
    with pytest.raises(NotFound):
        accounts.revoke_key(acct_b.account_id, key_a.key_id)
    with pytest.raises(NotFound):
        devices.remove(acct_b.account_id, device_a.device_uid)
    assert accounts.list_keys(acct_a.account_id)[0].revoked_at is None
    assert devices.list_devices(acct_a.account_id)[0].device_uid == device_a.device_uid
