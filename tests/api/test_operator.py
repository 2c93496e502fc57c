"""The operator's console (issue 33 item 5; chalicelib/domain/operators.py, docs/operator.md):
`smsgw operator add` makes an operator, who sees every account at /dashboard/operator/,
suspends one (its API key, phone and dashboard then say "suspended", nothing is deleted),
resumes it, and sets a messages-per-day quota that the next send past it meets. Every action
is in the audit log. Real handlers against moto; the CLI through click's runner."""
import json
import re
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

from chalicelib.core import clock, settings
from chalicelib.domain import accounts, devices, operators, users
from chalicelib.storage.tables import ApiKey, Device, Message
from tests.dashboard_helpers import PASSWORD, Visitor, owner, text

NUMBER = "+14155550123"


def cli(*args):
    import cli as cli_module
    result = CliRunner().invoke(cli_module.main, list(args), catch_exceptions=False)
    return result


def send(client, key, **extra):
    return json.loads(client.http.post("/myAPI.php", headers={
        "authorization": f"Bearer {key}", "content-type": "application/x-www-form-urlencoded"},
        body=urlencode({"action": "send_sms", "phone_number": NUMBER, "message": "Hi",
                        **extra})).body)


def operator_visitor(client, email="op@example.com") -> Visitor:
    """An operator in no account, made by the CLI, signed in through the printed link."""
    result = cli("operator", "add", email, "--url", "http://localhost/api")
    assert result.exit_code == 0, result.output
    token = re.search(r"token=([\w-]+)", result.output)[1]
    users.set_password(token, PASSWORD, PASSWORD)
    visitor = Visitor(client)
    assert visitor.sign_in(email).status_code == 303
    return visitor


def console(visitor) -> str:
    response = visitor.get("/dashboard/operator")
    assert response.status_code == 200, response.body
    return text(response)


def act(visitor, account_id, what, data=None):
    return visitor.submit(f"/dashboard/operator/{account_id}/{what}", data,
                          page="/dashboard/operator")


def test_the_operator_journey(client, running_account, monkeypatch):
    account, key, device, token = running_account
    owner(account.account_id, "owner@example.com")
    assert send(client, key)["status"] == "success"
    visitor = operator_visitor(client)
    # an operator in no account lands on the console, whatever page they open
    assert visitor.get("/dashboard/").headers["Location"].endswith("/dashboard/operator")
    page = console(visitor)
    row = page[page.index(f'data-account="{account.account_id}"'):]
    row = row[:row.index("</tr>")]
    assert "Acme" in row and "owner@example.com" in row
    assert ">1<" in row  # one phone
    assert "active" in row

    # suspend: the key, the phone and the dashboard say so; nothing is deleted
    assert "Acme is suspended." in text(act(visitor, account.account_id, "suspend"))
    answer = send(client, key)
    assert answer["status"] == "error" and "suspended" in answer["message"]
    assert answer["data"]["error_code"] == "account_suspended"
    v1 = client.http.get("/v1/devices", headers={"authorization": f"Bearer {key}"})
    assert v1.status_code == 403 and "suspended" in json.loads(v1.body)["detail"]
    poll = client.http.get("/device/jobs?wait=0", headers={"authorization": f"Bearer {token}"})
    assert poll.status_code == 403 and "suspended" in json.loads(poll.body)["error"]["message"]
    member = Visitor(client)
    assert member.sign_in("owner@example.com").status_code == 303
    refused = member.get("/dashboard/keys")
    assert refused.status_code == 403 and "suspended" in text(refused)
    assert len(list(Message.query(account.account_id))) == 1
    assert Device.get(device.device_uid) and list(ApiKey.by_account.query(account.account_id))
    assert "suspended" in console(visitor).split(f'data-account="{account.account_id}"')[1][:2000]

    # resume: everything works again
    assert "Acme is active again." in text(act(visitor, account.account_id, "resume"))
    assert send(client, key)["status"] == "success"
    assert member.get("/dashboard/keys").status_code == 200

    # a messages-per-day quota of 3: two were sent today (counted when the quota is set), one
    # more goes, the next is refused
    done = text(act(visitor, account.account_id, "quota",
                    {"quota": "messages_per_day", "value": "3"}))
    assert "messages per day set to 3" in done
    assert send(client, key)["status"] == "success"
    refused = send(client, key)
    assert refused["status"] == "error" and refused["data"]["error_code"] == "quota_exceeded"
    assert "messages per day" in refused["message"] and "resets at" in refused["message"]
    assert refused["data"]["quota"] == "messages_per_day"
    now = clock.now_ms()  # read once: two reads may straddle midnight
    tomorrow = now - now % 86_400_000 + 86_400_000
    assert refused["data"]["resets_at"] == tomorrow
    assert len(list(Message.query(account.account_id))) == 3

    # the audit log: who, what, which account, when
    log = operators.log()
    assert [(e["operator"], e["action"], e["account_id"]) for e in log[:3]] == [
        ("op@example.com", "set quota", account.account_id),
        ("op@example.com", "resume", account.account_id),
        ("op@example.com", "suspend", account.account_id)]
    assert log[0]["detail"] == "messages_per_day = 3"
    assert "set quota" in console(visitor) and "op@example.com" in console(visitor)


def test_the_console_is_for_operators_only(client, running_account):
    account = running_account[0]
    owner(account.account_id, "owner@example.com")
    member = Visitor(client)
    member.sign_in("owner@example.com")
    assert member.get("/dashboard/operator").status_code == 404
    csrf = member.csrf()
    assert member.post(f"/dashboard/operator/{account.account_id}/suspend",
                       {"csrf": csrf}).status_code == 404
    assert accounts.get_account(account.account_id).suspended_at is None
    # the role is granted to an existing user: their account and the console
    result = cli("operator", "add", "owner@example.com")
    assert result.exit_code == 0 and "sign in with their password" in result.output
    assert member.get("/dashboard/operator").status_code == 200
    assert member.get("/dashboard/keys").status_code == 200
    # and taken back at once
    assert cli("operator", "remove", "owner@example.com").exit_code == 0
    assert member.get("/dashboard/operator").status_code == 404


def test_suspension_from_the_cli_and_the_warm_cache(client, running_account, monkeypatch):
    """Another container's warm cache (here: this one's, not told) honours a suspension within
    AUTH_CACHE_SECONDS, as it does a revoked key; a send, whose check reads the same cached
    account item, too. The dashboard and registration read the account item: at once."""
    account, key, device, token = running_account
    assert send(client, key)["status"] == "success"  # the key and account are now cached
    monkeypatch.setattr(operators, "_forget_cached", lambda: None)  # as in another container
    result = cli("operator", "suspend", account.account_id)
    assert result.exit_code == 0 and "is suspended" in result.output
    assert send(client, key)["status"] == "success"  # still warm: within the cache's time
    with pytest.raises(Exception, match="suspended"):
        devices.register(account.account_id, "New phone")
    clock.advance(settings.current().auth_cache_seconds + 1)
    answer = send(client, key)
    assert answer["data"]["error_code"] == "account_suspended", answer
    assert cli("operator", "resume", account.account_id).exit_code == 0
    clock.advance(settings.current().auth_cache_seconds + 1)
    assert send(client, key)["status"] == "success"
    result = cli("operator", "log", "--json")
    assert [e["action"] for e in json.loads(result.output)[:2]] == ["resume", "suspend"]
    assert json.loads(result.output)[0]["operator"] == "cli"


def test_accounts_are_paged(client, running_account, monkeypatch):
    for n in range(5):
        accounts.create_account(f"Extra {n}")
    visitor = operator_visitor(client)
    monkeypatch.setattr(operators, "PAGE", 4)
    seen, cursor = [], None
    for _ in range(5):
        rows, cursor = operators.page(cursor, size=4)
        seen += [r["account_id"] for r in rows]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 6
    first = console(visitor)
    assert "Next page" not in first  # the page shows 25
    assert visitor.get("/dashboard/operator?cursor=bad!").status_code == 400


def test_messages_in_30_days_come_from_the_insight_counters(client, running_account):
    from chalicelib.storage.insight_tables import DailyCount
    account = running_account[0]
    from chalicelib.storage import records
    today = clock.fmt(clock.now_ms())[:10]
    records.transaction_connection().client.update_item(
        TableName=DailyCount.Meta.table_name,
        Key={"account_id": {"S": account.account_id}, "day": {"S": today}},
        UpdateExpression="ADD sent :s, failed :f, received :r",
        ExpressionAttributeValues={":s": {"N": "40"}, ":f": {"N": "2"}, ":r": {"N": "7"}})
    row = operators.overview(accounts.get_account(account.account_id))
    assert (row["messages_30d"], row["received_30d"]) == (42, 7)
