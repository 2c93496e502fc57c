"""The account's export (issue 33 item 4): one zip of CSV and JSON files, the same from REST v1,
the dashboard and the CLI; nothing of another account and no secret in it; bounded where the
answer must fit Lambda's response, with an error that names the bound and the CLI."""
import csv
import io
import json
import zipfile
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner

import cli
from chalicelib.core import clock
from chalicelib.domain import accounts, devices, export, webhooks
from chalicelib.storage.tables import Message
from tests.dashboard_helpers import Visitor, owner

KINDS = ("messages", "incoming", "phones", "webhooks", "opt_outs")


def _api(client, **params):
    response = client.http.post("/myAPI.php", body=urlencode(params), headers={
        "content-type": "application/x-www-form-urlencoded"})
    return json.loads(response.body)


@pytest.fixture
def filled(client, settings_override):
    """Two accounts with a sent and a received SMS, an opt-out (the STOP) and a webhook."""
    settings_override(webhook_allow_private=True, webhook_allow_http=True)
    made = {}
    for name in ("Alpha", "Bravo"):
        account = accounts.create_account(name)
        key, _ = accounts.create_key(account.account_id)
        device, token = devices.register(account.account_id, f"{name} phone", sim_count=2)
        assert _api(client, action="send_sms", api_key=key, device_uid=device.device_uid,
                    phone_number="+14155550100", message=f"hello from {name}, \"quoted\", "
                    "comma")["status"] == "success"
        response = client.http.post("/device/incoming", body=json.dumps({"messages": [{
            "device_message_id": "in-1", "phone_number": "+14155550102", "message": "STOP",
            "sim_slot": 1, "received_at": clock.now_ms()}]}), headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert response.status_code == 200, response.body
        hook = webhooks.add(account.account_id, f"http://127.0.0.1:9/{name}")
        made[name] = {"account": account, "key": key, "device": device, "hook": hook}
    return made


def members(body: bytes) -> dict:
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    return {name: archive.read(name).decode() for name in archive.namelist()}


def check_export(files: dict, mine: dict, theirs: dict) -> None:
    assert set(files) == {f"{kind}.{ext}" for kind in KINDS for ext in ("csv", "json")} | {
        "account.json"}
    for kind in KINDS:
        rows = list(csv.DictReader(io.StringIO(files[f"{kind}.csv"])))
        as_json = json.loads(files[f"{kind}.json"])
        assert len(rows) == len(as_json) == 1, kind
        assert set(rows[0]) == set(as_json[0]) == set(export.COLUMNS[kind])
        for name, value in as_json[0].items():  # the CSV says the same
            expected = "" if value is None else " ".join(value) if isinstance(value, list) \
                else str(value)
            assert rows[0][name] == expected, (kind, name)
    name = mine["account"].name
    assert json.loads(files["messages.json"])[0]["body"] == f'hello from {name}, "quoted", comma'
    assert json.loads(files["incoming.json"])[0]["body"] == "STOP"
    assert json.loads(files["opt_outs.json"])[0]["phone_number"] == "+14155550102"
    assert json.loads(files["phones.json"])[0]["device_uid"] == mine["device"].device_uid
    assert json.loads(files["webhooks.json"])[0]["url"].endswith(name)
    assert json.loads(files["account.json"])["rows"] == dict.fromkeys(KINDS, 1)
    everything = "".join(files.values())
    for secret in (mine["hook"].secret, mine["device"].secret_hash, mine["key"]):
        assert secret not in everything
    for other in (theirs["account"].account_id, theirs["device"].device_uid,
                  theirs["hook"].webhook_id, theirs["account"].name):
        assert other not in everything


def test_rest_v1_export_is_a_zip_of_csv_and_json(client, filled):
    a, b = filled["Alpha"], filled["Bravo"]
    response = client.http.get("/v1/export", headers={"Authorization": f"Bearer {a['key']}",
                                                      "Accept": "application/zip"})
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "application/zip"
    assert f"smsgw-export-{a['account'].account_id}-" in response.headers["Content-Disposition"]
    check_export(members(response.body), a, b)
    document = json.loads(client.http.get("/v1/openapi.json").body)
    answer = document["paths"]["/v1/export"]["get"]["responses"]
    assert answer["200"]["content"] == {"application/zip": {"schema": {
        "type": "string", "format": "binary"}}}
    assert "413" in answer


def test_rest_v1_export_needs_the_key(client, filled):
    response = client.http.get("/v1/export", headers={"Accept": "*/*"})
    assert response.status_code == 401
    assert json.loads(response.body)["code"] == "unauthorized"


def test_a_big_export_is_refused_naming_the_bound_and_the_cli(client, filled, settings_override):
    a = filled["Alpha"]
    settings_override(export_max_bytes=1024)
    response = client.http.get("/v1/export", headers={"Authorization": f"Bearer {a['key']}",
                                                      "Accept": "*/*"})
    assert response.status_code == 413
    problem = json.loads(response.body)
    assert problem["code"] == "export_too_large" and "SMSGW_EXPORT_MAX_BYTES" in problem["detail"]
    assert "smsgw account export" in problem["detail"]
    settings_override(export_max_bytes=4 * 1024 * 1024, export_budget_seconds=-1)
    response = client.http.get("/v1/export", headers={"Authorization": f"Bearer {a['key']}",
                                                      "Accept": "*/*"})
    assert response.status_code == 413 and "SMSGW_EXPORT_BUDGET_SECONDS" in response.body.decode()


def test_the_dashboard_downloads_the_same_export(client, filled):
    a, b = filled["Alpha"], filled["Bravo"]
    owner(a["account"].account_id, "alpha@example.com")
    visitor = Visitor(client)
    assert visitor.sign_in("alpha@example.com").status_code == 303
    assert 'href="/dashboard/account/export"' in visitor.get("/dashboard/account").body.decode()
    response = visitor.get("/dashboard/account/export")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    check_export(members(response.body), a, b)


def test_the_cli_exports_without_a_bound(filled, tmp_path, settings_override):
    a, b = filled["Alpha"], filled["Bravo"]
    settings_override(export_max_bytes=1)  # not the CLI's business
    path = tmp_path / "out.zip"
    result = CliRunner().invoke(cli.main, ["account", "export", a["account"].account_id,
                                           "--output", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == dict.fromkeys(KINDS, 1)
    check_export(members(path.read_bytes()), a, b)


def test_many_messages_stream_through_query_pages(filled, aws_calls):
    """2,500 messages: every one in the zip, read by Query pages (not one call per message)."""
    a = filled["Alpha"]
    first = Message.query(a["account"].account_id).next()
    with Message.batch_write() as batch:
        for n in range(2500):
            batch.save(Message(**{**first.attribute_values, "message_id": first.message_id + 1
                                  + n, "body": f"bulk {n}"}))
    aws_calls.clear()
    out = io.BytesIO()
    counts = export.write_zip(a["account"].account_id, out)
    assert counts["messages"] == 2501
    queries = [call for call in aws_calls.requests if call[1] == "Query"
               and call[2]["TableName"].endswith("-messages")]
    assert 1 <= len(queries) < 10, len(queries)
    rows = list(csv.DictReader(io.StringIO(members(out.getvalue())["messages.csv"])))
    assert {r["body"] for r in rows} >= {f"bulk {n}" for n in range(2500)}
