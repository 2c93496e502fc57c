"""One way to send (chalicelib/domain/outbox.py): every surface's send goes through
`outbox.submit`, and the only writer of a sent `Message` is outbox's own write."""
import ast
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from chalicelib.domain import devices, outbox, pool
from chalicelib.storage import records
from chalicelib.storage.tables import Message

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def writers(monkeypatch):
    """Every Message stored by a send: (the module that stored it, submits so far)."""
    found, submits = [], []
    real_save, real_submit = records.save_new, outbox.submit

    def save_new(make, *args, **kw):
        import inspect
        record, first = real_save(make, *args, **kw)
        if isinstance(record, Message):
            found.append((Path(inspect.stack()[1].filename).name, len(submits)))
        return record, first

    def submit(account_id, request):
        submits.append(request)
        return real_submit(account_id, request)
    monkeypatch.setattr(records, "save_new", save_new)
    monkeypatch.setattr(outbox, "submit", submit)
    return found, submits


def _running(account):
    devices.heartbeat(account[2], "running")
    pool.forget_cached()
    devices.forget_cached()


def test_every_surface_sends_through_submit(client, account, writers, atomic_moto):
    from tests.dashboard_helpers import Visitor, owner
    acct, key, device, _ = account
    _running(account)
    found, submits = writers
    bearer = {"authorization": f"Bearer {key}"}
    form = {**bearer, "content-type": "application/x-www-form-urlencoded"}

    def compat(**values):
        return json.loads(client.http.post("/myAPI.php", headers=form,
                                           body=urlencode(values)).body)
    sends = {
        "compat send_sms, named": lambda: compat(action="send_sms", phone_number="+14155550100",
                                                 message="a", device_id=str(device.device_id)),
        "compat send_sms, pool": lambda: compat(action="send_sms", phone_number="+14155550100",
                                                message="b"),
        "compat send_otp": lambda: compat(action="send_otp", phone_number="+14155550101"),
        "v1 bulk": lambda: client.http.post("/v1/messages", headers={
            **bearer, "content-type": "application/json"}, body=json.dumps(
            {"recipients": ["+14155550102", "+14155550103"], "message": "c"})),
        "SMSGate client API": lambda: client.http.post("/3rdparty/v1/messages", headers={
            **bearer, "content-type": "application/json"}, body=json.dumps(
            {"phoneNumbers": ["+14155550104"], "textMessage": {"text": "d"}})),
    }
    expected = {"v1 bulk": 2}
    for name, send in sends.items():
        before_found, before_submits = len(found), len(submits)
        send()
        made = found[before_found:]
        assert len(made) == expected.get(name, 1), (name, made)
        assert {module for module, _ in made} == {"outbox.py"}, name
        assert len(submits) - before_submits == len(made), name
    owner(acct.account_id, "owner@example.com")
    visitor = Visitor(client)
    visitor.sign_in("owner@example.com")
    before = len(found)
    visitor.submit("/dashboard/try/sms", {"phone": device.device_uid, "number": "+14155550105",
                                          "text": "e", "sim": "1"}, page="/dashboard/try")
    assert [module for module, _ in found[before:]] == ["outbox.py"]
    from chalicelib.domain.insight import csv_sends
    before = len(found)
    csv_sends.send(acct.account_id, csv_sends.parse(b"number,message\n+14155550106,f\n"))
    assert [module for module, _ in found[before:]] == ["outbox.py"]
    assert len(submits) == len(found)


def test_no_module_but_outbox_builds_a_sent_message():
    """Statically: a `Message(...)` with a body (a new message of a send) is built only in
    chalicelib/domain/outbox.py."""
    builders = []
    for path in (ROOT / "chalicelib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Message" \
                    and any(k.arg == "body" for k in node.keywords):
                builders.append(path.relative_to(ROOT).as_posix())
    assert builders == ["chalicelib/domain/outbox.py"]


def test_send_sms_checks_and_counts_its_text_once(api, account, monkeypatch):
    """send_sms's text is checked and its segments counted once, by submit (issue 32 item 4:
    the compat API counted it, then messages counted it again)."""
    from chalicelib.domain import messages, segments
    acct, key, device, _ = account
    counted = []
    for module in (segments, messages):  # messages counted it before; absent since
        real = getattr(module, "count", None)
        if real is not None:
            monkeypatch.setattr(module, "count",
                                lambda text, real=real: counted.append(text) or real(text))
    body, _ = api(api_key=key, action="send_sms", device_id=str(device.device_id),
                  phone_number="+14155550100", message="héllo €")
    assert body["status"] == "success", body
    assert counted == ["héllo €"]
    stored = Message.get(acct.account_id, body["data"]["message_id"])
    assert (stored.segments, stored.encoding) == (1, "GSM-7")  # € costs two septets


def test_the_send_reads_the_account_item_from_the_accounts_cache(account, aws_calls):
    """The account item a send checks (suspension, quotas, opt-out version) has one cache, in
    accounts.py: authenticate's read serves the send without an AWS call, and this container's
    own forget (accounts.forget_cached, as after its own change of the item) drops it."""
    from chalicelib.core import clock
    from chalicelib.core.errors import Suspended
    from chalicelib.domain import accounts
    from chalicelib.storage.tables import Account
    acct, key, device, _ = account
    accounts.authenticate(key, None)
    aws_calls.clear()
    assert accounts.cached_account(acct.account_id).account_id == acct.account_id
    assert aws_calls == []  # authenticate's read, not another GetItem
    Account(account_id=acct.account_id).update(actions=[Account.suspended_at.set(clock.now_ms())])
    accounts.forget_cached()
    with pytest.raises(Suspended):  # was sent: opt_outs kept its own copy of the account
        outbox.submit(acct.account_id, outbox.SendRequest(
            phone_number="+14155550107", text="hi", device=device))
    assert Message.count(acct.account_id) == 0
