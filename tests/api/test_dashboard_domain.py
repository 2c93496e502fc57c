"""What the dashboard adds below it: pairing codes and POST /device/pair, key rotation with an
overlap, the key's last use (and what recording it costs), message search, the admin CLI's
`user` commands, and the agent's `pair` command."""
import json
import threading

import pytest
from click.testing import CliRunner

from chalicelib.core import clock
from chalicelib.core.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
)
from chalicelib.domain import accounts, devices, messages, pairing, users
from chalicelib.domain.messages import search as message_search
from cli import main as cli_main
from tests import sending


def pair(client, body, ip=None):
    response = client.http.post("/device/pair", body=json.dumps(body) if isinstance(
        body, dict) else body, headers={"Content-Type": "application/json"})
    return response.status_code, json.loads(response.body)


def test_a_pairing_code_registers_one_phone_once(client, account):
    acct = account[0]
    item = pairing.create(acct.account_id, "Kitchen phone", "o@example.com")
    status, answer = pair(client, {"code": pairing.display(item.code).lower(), "sim_count": 2})
    assert status == 200 and answer["name"] == "Kitchen phone"
    device = devices.authenticate(answer["device_token"])
    assert device.account_id == acct.account_id and device.sim_count == 2
    assert pairing.status(acct.account_id, item.code).device_uid == device.device_uid
    status, again = pair(client, {"code": item.code})
    assert status == 401 and again["error"]["parameter"] == "code"
    assert len(devices.list_devices(acct.account_id)) == 2  # the fixture's phone and this one


def test_an_expired_code_is_refused(client, account):
    item = pairing.create(account[0].account_id, "Late", "o@example.com")
    clock.advance(pairing.CODE_MINUTES * 60)
    assert pair(client, {"code": item.code})[0] == 401
    assert len(devices.list_devices(account[0].account_id)) == 1


@pytest.mark.parametrize("body, parameter", [
    ({}, "code"), ({"code": "short"}, "code"), ({"code": "ABCD-EFGH", "extra": 1}, "extra"),
    ({"code": "ABCD-EFGH", "sim_count": 3}, "sim_count"), ({"code": 12345678}, "code")])
def test_bad_pairing_requests_say_what_is_wrong(client, aws_mock, body, parameter):
    status, answer = pair(client, body)
    assert status == 400 and answer["error"]["parameter"] == parameter
    assert pair(client, b"not json")[0] == 400


def test_two_phones_racing_with_one_code_get_one_device(account, atomic_moto):
    acct = account[0]
    item = pairing.create(acct.account_id, "Raced", "o@example.com")
    start, outcomes = threading.Barrier(8), []

    def redeem(n):
        start.wait()
        try:
            pairing.redeem(item.code, None, f"192.0.2.{n}")
            outcomes.append("paired")
        except Unauthorized:
            outcomes.append("refused")

    threads = [threading.Thread(target=redeem, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["paired"] + ["refused"] * 7
    assert len(devices.list_devices(acct.account_id)) == 2


def test_pairing_guesses_are_throttled_per_address(aws_mock):
    for _ in range(pairing.PAIR_PER_IP):
        with pytest.raises(Unauthorized):
            pairing.redeem("ABCD-EFGH", None, "198.51.100.1")
    with pytest.raises(RateLimited, match="Too many pairing attempts"):
        pairing.redeem("ABCD-EFGH", None, "198.51.100.1")


def test_rotation_keeps_the_old_key_for_the_overlap(account):
    acct, key, _, _ = account
    clock.freeze()
    [old] = accounts.list_keys(acct.account_id)
    new_key, new, _ = accounts.rotate_key(acct.account_id, old.key_id, 3600)
    assert new.label == old.label and new.key_id != old.key_id
    assert accounts.authenticate(key, None).key_id == old.key_id  # overlap: still works
    assert accounts.authenticate(new_key, None).key_id == new.key_id
    clock.advance(3601)  # the cached entry knows when the key ends
    with pytest.raises(Unauthorized):
        accounts.authenticate(key, None)
    accounts.forget_cached()
    with pytest.raises(Unauthorized):
        accounts.authenticate(key, None)
    with pytest.raises(Conflict):
        accounts.rotate_key(acct.account_id, old.key_id, 0)  # revoked keys are not rotated
    # A later, longer revocation never postpones the one set.
    accounts.revoke_key(acct.account_id, new.key_id, clock.now_ms() + 60000)
    accounts.revoke_key(acct.account_id, new.key_id, clock.now_ms() + 3600000)
    assert accounts.get_key(acct.account_id, new.key_id).revoked_at == clock.now_ms() + 60000


def test_last_use_costs_one_write_per_key_per_hour(account, aws_calls):
    acct, key, _, _ = account
    clock.freeze()
    accounts.forget_cached()
    aws_calls.clear()
    accounts.authenticate(key, "1.2.3.4")
    assert aws_calls.count(("dynamodb", "UpdateItem")) == 1
    used = accounts.get_key(acct.account_id, accounts.list_keys(acct.account_id)[0].key_id)
    assert used.last_used_at == clock.now_ms()
    for _ in range(3):  # more cold lookups within the hour write nothing
        clock.advance(600)
        accounts.forget_cached()
        aws_calls.clear()
        accounts.authenticate(key, "1.2.3.4")
        assert ("dynamodb", "UpdateItem") not in aws_calls
    clock.advance(1800)
    accounts.forget_cached()
    aws_calls.clear()
    accounts.authenticate(key, "1.2.3.4")
    assert aws_calls.count(("dynamodb", "UpdateItem")) == 1


def test_a_refused_address_does_not_count_as_use(account):
    acct, key, _, _ = account
    accounts.set_whitelist(acct.account_id, ["10.0.0.1"])
    with pytest.raises(Forbidden):
        accounts.authenticate(key, "10.9.9.9")
    assert accounts.list_keys(acct.account_id)[0].last_used_at is None


def test_message_search_filters_and_pages(account):
    acct, _, device, _ = account
    sent = []
    for n in range(7):
        clock.advance(1)
        sent.append(sending.send(acct.account_id, device, f"+1415555010{n % 2}",
                                  f"text {n}").message)
    messages.close(sent[0], "failed", "no credit", failed_at=clock.now_ms())
    found = message_search.search(acct.account_id, message_search.Filters(), limit=3)
    assert [m.message_id for m in found.items] == [m.message_id for m in sent[::-1][:3]]
    rest = message_search.search(acct.account_id, message_search.Filters(), limit=10,
                                 before=found.next_before)
    assert len(rest.items) == 4 and rest.next_before is None
    odd = message_search.search(acct.account_id, message_search.Filters(number="+14155550101"))
    assert {m.body for m in odd.items} == {"text 1", "text 3", "text 5"}
    failed = message_search.search(acct.account_id, message_search.Filters(status="failed"))
    assert [m.reason for m in failed.items] == ["no credit"]
    day = clock.fmt(clock.now_ms())[:10]
    assert len(message_search.search(acct.account_id, message_search.Filters(
        since=day, until=day)).items) == 7
    assert message_search.search(acct.account_id, message_search.Filters(
        until="2025-01-01")).items == []
    steps = message_search.timeline(failed.items[0])
    assert [s[0] for s in steps] == ["pending", "failed"] and steps[-1][2] == "no credit"
    for bad in (message_search.Filters(kind="x"), message_search.Filters(since="01/02/2025"),
                message_search.Filters(kind="incoming", status="sent"),
                message_search.Filters(since="2025-02-02", until="2025-02-01")):
        with pytest.raises(BadRequest):
            message_search.search(acct.account_id, bad)
    with pytest.raises(NotFound):
        message_search.get("acc_other", "outgoing", sent[0].message_id)


def run(*args):
    return CliRunner().invoke(cli_main, list(args), catch_exceptions=False)


def test_cli_user_add_prints_a_one_time_link(account, monkeypatch):
    acct = account[0]
    added = json.loads(run("user", "add", acct.account_id, "Boss@Example.com", "--url",
                           "https://sms.example.com/api", "--json").output)
    assert added["email"] == "boss@example.com" and added["expires_in_hours"] <= 24
    link = added["set_password_link"]
    assert link.startswith("https://sms.example.com/api/dashboard/set-password?token=")
    token = link.rsplit("=", 1)[1]
    assert users.link_user(token).email == "boss@example.com"
    duplicate = CliRunner().invoke(cli_main, ["user", "add", acct.account_id,
                                              "boss@example.com"])
    assert duplicate.exit_code != 0 and "exists already" in duplicate.output
    listed = json.loads(run("user", "list", acct.account_id, "--json").output)
    # created a moment ago on the real clock: within a few seconds on a loaded machine
    assert listed[0]["created_at"] in {clock.fmt(clock.now_ms() - back * 1000)
                                       for back in range(5)}
    assert listed == [{"email": "boss@example.com", "role": "owner",
                       "created_at": listed[0]["created_at"],
                       "password_set": False}]
    fresh = json.loads(run("user", "link", "boss@example.com", "--json").output)
    assert fresh["set_password_link"].startswith("/dashboard/set-password?token=")
    assert json.loads(run("user", "remove", acct.account_id, "boss@example.com",
                          "--json").output)["removed"] is True
    with pytest.raises(Unauthorized):
        users.link_user(token)


def test_agent_pair_parses_both_forms_and_writes_a_private_config(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))
    from smsgw_agent import pair as agent_pair
    assert agent_pair.parse_target("http://gw:8000/", "ABCD-EFGH") == ("http://gw:8000",
                                                                        "ABCD-EFGH")
    assert agent_pair.parse_target("https://x.example/api/device/pair?code=ABCD-EFGH",
                                   None) == ("https://x.example/api", "ABCD-EFGH")
    with pytest.raises(agent_pair.PairError):
        agent_pair.parse_target("https://x.example/api", None)
    config = tmp_path / "agent.toml"
    config.write_text('backend = "simulator"\ntoken = "old"\n')
    agent_pair.write_config(config, "https://x.example/api", "0123456789abcdef.s3cret", 2)
    from smsgw_agent.config import load
    loaded = load(str(config), environ={})
    assert (loaded.url, loaded.token, loaded.sim_count, loaded.backend) == (
        "https://x.example/api", "0123456789abcdef.s3cret", 2, "simulator")
    assert oct(config.stat().st_mode)[-3:] == "600"


def test_the_public_api_never_imports_the_dashboard():
    """Cold start: `import app` loads none of the dashboard's code or libraries."""
    import subprocess
    import sys
    from pathlib import Path
    probe = ("import sys, app; print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('jinja2', 'argon2', '_argon2_cffi_bindings', 'segno', 'markupsafe') or "
             "m.startswith(('chalicelib.surfaces.dashboard', 'chalicelib.surfaces.pairing_api',"
             " 'chalicelib.domain.users', 'chalicelib.domain.sessions'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
