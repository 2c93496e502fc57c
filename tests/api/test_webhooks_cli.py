"""The admin CLI's webhook commands end to end on moto, delivering to a real receiver on
127.0.0.1 through the app's queue function (local_events.EventPumps running as on the local
gateway)."""
import json

import pytest
from click.testing import CliRunner

from chalicelib.domain import accounts
from cli import main
from clients import smsgw_webhook


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def running(webhook_receiver):
    return webhook_receiver


def test_add_list_test_deliveries_rotate_redeliver_remove(running):
    receiver = running
    account_id = accounts.create_account("Shop").account_id
    added = json.loads(run("webhook", "add", account_id, receiver.url, "--events",
                           "sms.sent,sms.delivered", "--events", "device.online",
                           "--json").output)
    assert added["webhook_id"].startswith("wh_") and added["secret"].startswith("whsec_")
    assert len(added["secret"]) >= 6 + 43  # 32 random bytes, base64url
    assert added["events"] == ["device.online", "sms.delivered", "sms.sent"]
    receiver.secrets.append(added["secret"])
    hook = added["webhook_id"]
    [row] = json.loads(run("webhook", "list", account_id, "--json").output)
    assert (row["webhook_id"], row["status"], row["url"]) == (hook, "enabled", receiver.url)
    assert added["secret"] not in run("webhook", "list", account_id).output

    result = run("webhook", "test", account_id, hook, "--json")
    assert result.exit_code == 0, result.output
    tested = json.loads(result.output)
    assert tested["state"] == "delivered" and tested["log"][0]["status_code"] == 200
    assert receiver.bad_signatures == 0 and receiver.of_type("webhook.test")

    rows = json.loads(run("webhook", "deliveries", account_id, hook, "--json").output)
    assert [r["event_id"] for r in rows] == [tested["event_id"]]
    assert rows[0]["log"][0]["latency_ms"] >= 0
    assert tested["event_id"] in run("webhook", "deliveries", account_id, hook).output

    rotated = json.loads(run("webhook", "rotate-secret", account_id, hook, "--overlap", "600",
                             "--json").output)
    assert rotated["secret"] != added["secret"] and rotated["old_secret_until"]
    receiver.secrets = [rotated["secret"]]
    again = json.loads(run("webhook", "redeliver", account_id, hook, tested["event_id"],
                           "--json").output)
    assert again["queued"] == [tested["event_id"]]
    assert receiver.wait_for(lambda r: r.arrivals[tested["event_id"]] == 2, 15)
    headers = receiver.requests[-1][0]
    assert len(headers["X-Smsgw-Signature"].split(",")) == 2  # new and old during the overlap
    assert smsgw_webhook.verify(receiver.requests[-1][1], headers["X-Smsgw-Signature"],
                                headers["X-Smsgw-Timestamp"], [added["secret"]])

    assert json.loads(run("webhook", "redeliver", account_id, hook, "--since", "1h",
                          "--json").output)["queued"] == []  # nothing failed
    assert "disabled" in run("webhook", "disable", account_id, hook).output
    assert json.loads(run("webhook", "list", account_id, "--json").output)[0]["status"] == \
        "disabled"
    run("webhook", "enable", account_id, hook)
    run("webhook", "remove", account_id, hook)
    assert json.loads(run("webhook", "list", account_id, "--json").output) == []


def test_cli_webhook_errors_are_messages(running, settings_override):
    account_id = accounts.create_account("Shop").account_id
    settings_override(webhook_allow_private=False)
    bad = run("webhook", "add", account_id, "http://169.254.169.254/latest/")
    assert bad.exit_code == 1 and "Refused url" in bad.output and "Traceback" not in bad.output
    bogus = run("webhook", "add", account_id, "https://x.example/", "--events", "sms.bogus")
    assert bogus.exit_code == 1 and "Unknown event type sms.bogus" in bogus.output
    assert "Unknown webhook" in run("webhook", "remove", account_id, "wh_0000000000000000").output
    usage = run("webhook", "redeliver", account_id, "wh_0000000000000000")
    assert usage.exit_code == 2 and "EVENT_ID or --since" in usage.output
    assert run("webhook", "redeliver", account_id, "wh_0000000000000000", "--since",
               "yesterday").exit_code == 2
