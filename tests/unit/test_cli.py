"""The admin CLI end to end on moto: what it prints is what a script can use."""
import json

import pytest
from click.testing import CliRunner

from chalicelib.domain import accounts, devices
from cli import main


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_full_admin_flow(aws_mock):
    created = json.loads(run("account", "create", "Shop", "--json").output)
    account_id = created["account_id"]
    key = json.loads(run("key", "create", account_id, "--label", "web", "--json").output)
    assert len(key["api_key"]) == 64
    assert accounts.authenticate(key["api_key"], "1.2.3.4").account_id == account_id
    listed = json.loads(run("key", "list", account_id, "--json").output)
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    assert key["api_key"] not in run("key", "list", account_id).output
    run("key", "revoke", account_id, key["key_id"])
    assert json.loads(run("key", "list", account_id, "--json").output)[0]["revoked_at"]

    shown = json.loads(run("whitelist", "set", account_id, "10.0.0.0/8", "::1", "--json").output)
    assert shown["ip_whitelist"] == ["10.0.0.0/8", "::1/128"]
    assert "10.0.0.0/8" in run("whitelist", "show", account_id).output

    device = json.loads(run("device", "register", account_id, "Pixel", "--sims", "2",
                            "--json").output)
    assert device["device_id"] == 1 and device["device_token"].startswith(device["device_uid"])
    assert devices.authenticate(device["device_token"]).device_uid == device["device_uid"]
    rows = json.loads(run("device", "list", account_id, "--json").output)
    assert rows[0]["status"] == "stopped" and rows[0]["sim_count"] == 2
    run("device", "remove", account_id, device["device_uid"])
    assert json.loads(run("device", "list", account_id, "--json").output) == []
    assert account_id in run("account", "list").output


def test_cli_errors_are_messages_not_tracebacks(aws_mock):
    result = run("key", "create", "acc_missing")
    assert result.exit_code == 1 and "Unknown account" in result.output
    account_id = json.loads(run("account", "create", "X", "--json").output)["account_id"]
    bad = run("whitelist", "set", account_id, "300.1.1.1")
    assert bad.exit_code == 1 and "Not an IP address" in bad.output
    assert run("device", "register", account_id, "P", "--sims", "3").exit_code == 2


def test_key_rotate_keeps_the_old_key_for_the_overlap_then_revokes_it(aws_mock):
    from chalicelib.core import clock
    from chalicelib.core.errors import Unauthorized
    account_id = json.loads(run("account", "create", "R", "--json").output)["account_id"]
    old = json.loads(run("key", "create", account_id, "--label", "web", "--json").output)
    accounts.authenticate(old["api_key"], "1.2.3.4")  # warm in the auth cache
    rotated = run("key", "rotate", account_id, old["key_id"], "--overlap", "600", "--json")
    new = json.loads(rotated.output)
    assert new["replaces"] == old["key_id"] and len(new["api_key"]) == 64
    assert accounts.authenticate(new["api_key"], "1.2.3.4").account_id == account_id
    clock.advance(599)
    assert accounts.authenticate(old["api_key"], "1.2.3.4").key_id == old["key_id"]
    clock.advance(2)  # the overlap is over: refused, although the key sits in the cache
    with pytest.raises(Unauthorized):
        accounts.authenticate(old["api_key"], "1.2.3.4")
    assert accounts.authenticate(new["api_key"], "1.2.3.4").key_id == new["key_id"]
    listed = {k["key_id"]: k for k in json.loads(run("key", "list", account_id,
                                                     "--json").output)}
    assert listed[old["key_id"]]["revoked"] and not listed[new["key_id"]]["revoked"]
    again = run("key", "rotate", account_id, old["key_id"])
    assert again.exit_code == 1 and "already revoked" in again.output


def test_revoking_twice_says_so_and_whitelist_clear_says_what_it_did(aws_mock):
    account_id = json.loads(run("account", "create", "T", "--json").output)["account_id"]
    key = json.loads(run("key", "create", account_id, "--json").output)
    first = run("key", "revoke", account_id, key["key_id"]).output
    assert first.startswith(f"revoked {key['key_id']}: takes effect within")
    second = run("key", "revoke", account_id, key["key_id"])
    assert second.exit_code == 0 and "was already revoked" in second.output
    assert "nothing changed" in second.output
    run("whitelist", "set", account_id, "10.0.0.0/8")
    cleared = run("whitelist", "clear", account_id).output
    assert "whitelist cleared: any IP address may now use this account's keys" in cleared
    assert json.loads(run("whitelist", "show", account_id, "--json").output)["ip_whitelist"] == []
