"""The admin CLI end to end on moto: what it prints is what a script can use."""
import json

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
