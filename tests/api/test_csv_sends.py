"""CSV sends (chalicelib/domain/insight/csv_sends.py and the dashboard's /dashboard/csv): the
preview names every bad line, a bad file sends nothing, a row is sent once however often the
file is sent."""
import html
import re

import pytest

from chalicelib.core.errors import BadRequest
from chalicelib.domain.insight import csv_sends
from chalicelib.storage.tables import Message
from tests.dashboard_helpers import Visitor, owner, text

GOOD = (b"number,name,message\n"
        b"+14155550100,Ann,Hello Ann\n"
        b"not a number,Bob,Hello Bob\n"
        b"\n"
        b"+14155550101,Cy,Hello Cy\n"
        b"+14155550102,Di\n")


@pytest.fixture
def running(account):
    from chalicelib.domain import devices
    devices.heartbeat(account[2], "running")
    return account


def sent(account_id):
    return list(Message.query(account_id))


def test_preview_lists_bad_lines_by_number(account):
    plan = csv_sends.parse(GOOD)
    assert [(r.line, r.number) for r in plan.rows] == [(2, "+14155550100"), (5, "+14155550101")]
    assert [line for line, _ in plan.invalid] == [3, 6]
    assert "number" in plan.invalid[0][1].lower()
    assert "2 fields" in plan.invalid[1][1]


def test_template_fills_columns_and_unknown_placeholder_is_refused(account):
    plan = csv_sends.parse(b"phone;name\n+14155550100;Ann\n", "Hi {name}!")
    assert plan.rows[0].text == "Hi Ann!"
    with pytest.raises(BadRequest, match=r"\{nick\}"):
        csv_sends.parse(b"phone;name\n+14155550100;Ann\n", "Hi {nick}!")


@pytest.mark.parametrize("raw, message", [
    (b"", "Choose a CSV file"),
    (b"who,message\nx,y\n", "No number column"),
    (b"number,other\n+14155550100,x\n", "No message column"),
    (b"number,message\n", "no rows"),
    (b"\xff\xfenumber", "not UTF-8"),
    (b"number,message\n" + b"+14155550100,hi\n" * (csv_sends.MAX_ROWS + 1), "more than"),
    (b"x" * (csv_sends.MAX_BYTES + 1), "at most"),
])
def test_a_bad_file_is_refused_whole(account, raw, message):
    with pytest.raises(BadRequest, match=message):
        csv_sends.parse(raw)
    assert sent(account[0].account_id) == []


def test_sending_twice_sends_each_row_once(running):
    account = running
    acct = account[0]
    plan = csv_sends.parse(GOOD)
    assert csv_sends.send(acct.account_id, plan) == {"accepted": 2, "replayed": 0, "refused": []}
    again = csv_sends.parse(GOOD.replace(b"\n", b"\r\n"))  # as the preview's form sends it back
    assert again.batch == plan.batch
    assert csv_sends.send(acct.account_id, again) == {"accepted": 0, "replayed": 2,
                                                       "refused": []}
    assert sorted(m.phone_number for m in sent(acct.account_id)) == ["+14155550100",
                                                                      "+14155550101"]
    assert csv_sends.progress(acct.account_id, plan.batch, 6) == {
        "queued": 2, "by_status": {"pending": 2}}


def _multipart(fields: dict, boundary="XyZ") -> tuple[bytes, str]:
    parts = []
    for name, value in fields.items():
        if isinstance(value, bytes):
            head = f'Content-Disposition: form-data; name="{name}"; filename="list.csv"\r\n' \
                   "Content-Type: text/csv\r\n\r\n"
            parts.append(f"--{boundary}\r\n{head}".encode() + value + b"\r\n")
        else:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                         f"{value}\r\n".encode())
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"


def _signed_in_preview(client, account_id, raw: bytes):
    """The owner signs in and uploads `raw`: (visitor, csrf, the preview page's text)."""
    owner(account_id, "owner@example.com")
    visitor = Visitor(client)
    visitor.sign_in("owner@example.com")
    csrf = visitor.csrf("/dashboard/csv")
    body, kind = _multipart({"csrf": csrf, "file": raw, "template": ""})
    preview = text(client.http.post("/dashboard/csv", body=body, headers=visitor._headers(
        {"content-type": kind, "origin": visitor.origin})))
    return visitor, csrf, preview


def test_dashboard_upload_preview_send_and_resend(client, running):
    account = running
    acct = account[0]
    visitor, csrf, preview = _signed_in_preview(client, acct.account_id, GOOD)
    assert re.search(r'data-line="3">3<', preview) and re.search(r'data-line="6">6<', preview)
    assert 'id="rows-valid">2<' in preview
    assert sent(acct.account_id) == []  # a preview sends nothing
    csv_text = re.search(r'name="csv_text" value="([^"]*)"', preview)[1]
    for _ in range(2):  # the Send button clicked twice
        body, kind = _multipart({"csrf": csrf, "csv_text": html.unescape(csv_text).replace(
            "\n", "\r\n"), "template": ""})
        answer = client.http.post("/dashboard/csv/send", body=body, headers=visitor._headers(
            {"content-type": kind, "origin": visitor.origin}))
        assert answer.status_code == 303
    assert len(sent(acct.account_id)) == 2
    location = answer.headers.get("Location") or answer.headers["location"]
    progress = text(visitor.get(location.split("localhost", 1)[-1]))
    assert 'id="queued">2<' in progress and "2 already sent before" in progress
    bad, kind = _multipart({"csrf": csrf, "file": b"who,message\nx,y\n", "template": ""})
    refused = client.http.post("/dashboard/csv", body=bad, headers=visitor._headers(
        {"content-type": kind, "origin": visitor.origin}))
    assert refused.status_code == 400 and "No number column" in text(refused)
    assert "Nothing was sent" in text(refused)


def test_preview_says_which_rows_the_pool_would_refuse_and_sending_agrees(
        running, atomic_moto, monkeypatch, client, settings_override):
    """Automatic sends refuse a message the pool could not hand out within
    SMSGW_POOL_BACKLOG_SECONDS; the preview counts those rows instead of promising a time the
    send will not honour, and sending the file refuses exactly that many."""
    from chalicelib.core import clock
    from chalicelib.domain import pool
    settings_override(pace_window_parts=30)  # the deployed defaults
    settings_override(default_pace_per_hour=60, pool_backlog_seconds=3600)
    monkeypatch.setattr(pool.random, "random", lambda: 0.5)
    pool.forget_cached()
    clock.freeze()
    acct = running[0]
    raw = b"number,message\n" + b"".join(b"+1415555%04d,Hello\n" % n for n in range(120))
    plan = csv_sends.parse(raw)
    forecast = csv_sends.forecast(acct.account_id, plan)
    assert 0 < len(forecast.refused) < 120
    assert forecast.last_at <= clock.now_ms() + 3600 * 1000  # what is promised is honoured
    preview = _signed_in_preview(client, acct.account_id, raw)[2]
    assert f'id="rows-refused">{len(forecast.refused)}<' in preview
    assert "split the file" in preview
    done = csv_sends.send(acct.account_id, plan)
    assert done["accepted"] == 120 - len(forecast.refused)
    assert len(done["refused"]) == len(forecast.refused)
    assert max(m.not_before or m.created_at for m in sent(acct.account_id)) == forecast.last_at
