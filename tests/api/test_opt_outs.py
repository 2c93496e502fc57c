"""Recipients' opt-outs (chalicelib/domain/opt_outs.py, docs/opt-outs.md): on every sending
surface, a STOP from a phone refuses the next send to that number (nothing written, booked or
queued), and a START lets the one after it go."""
import itertools
import json
from urllib.parse import urlencode

import pytest

from chalicelib.core import clock, settings
from chalicelib.core.errors import NotFound, OptedOut
from chalicelib.domain import accounts, devices, opt_outs
from chalicelib.domain.webhooks import events
from chalicelib.storage import aws
from chalicelib.storage.tables import Account, Device, Message, OptOut
from chalicelib.surfaces.rest_v1.validation import rfc3339

NUMBER = "+14155550123"
OTHER = "+14155550124"
_ids = itertools.count(1)


def phone_says(client, token, text, number=NUMBER):
    """The phone pushes an SMS it received from `number`, as the agent does."""
    item = {"device_message_id": f"in-{next(_ids)}", "phone_number": number, "message": text,
            "sim_slot": 1, "received_at": clock.now_ms()}
    answer = client.http.post("/device/incoming", headers={
        "authorization": f"Bearer {token}", "content-type": "application/json"},
        body=json.dumps({"messages": [item]}))
    assert answer.status_code == 200, answer.body


def compat(client, key, **values):
    return json.loads(client.http.post("/myAPI.php", headers={
        "authorization": f"Bearer {key}", "content-type": "application/x-www-form-urlencoded"},
        body=urlencode(values)).body)


def written(account_id, number=NUMBER):
    return [m for m in Message.query(account_id) if m.phone_number == number]


def queued(device):
    attributes = aws.sqs().get_queue_attributes(QueueUrl=device.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return sum(int(v) for v in attributes.values())


def booked(device):
    return Device.get(device.device_uid, consistent_read=True).pace_ver


def assert_nothing_kept(account, before_queued, before_booked, number=NUMBER):
    assert written(account[0].account_id, number) == []
    assert queued(account[2]) == before_queued
    assert booked(account[2]) == before_booked


@pytest.mark.parametrize("text", ["STOP", "stop", " Stop! ", "opt out", "Opt-Out", "unsubscribe.",
                                  "QUIT", "end", "Revoke", "cancel", "STOPALL", "OptOut"])
def test_opt_out_keywords_are_the_whole_text_any_case_and_punctuation(running_account, client,
                                                                       text):
    phone_says(client, running_account[3], text)
    assert [e.phone_number for e in opt_outs.entries(running_account[0].account_id)] == [NUMBER]


@pytest.mark.parametrize("text", ["STOP sending at night", "stopp", "please stop", "STARTED"])
def test_other_texts_change_nothing(running_account, client, text):
    phone_says(client, running_account[3], text)
    assert opt_outs.entries(running_account[0].account_id) == []


def test_compat_send_sms_stop_send_start_send(running_account, client):
    acct, key, device, token = running_account
    for named in (True, False):
        where = {"device_id": str(device.device_id)} if named else {}
        phone_says(client, token, "STOP")
        before_queued, before_booked = queued(device), booked(device)
        answer = compat(client, key, action="send_sms", phone_number=NUMBER, message="Hi",
                        **where)
        assert answer["status"] == "error" and answer["response"] is False
        assert answer["data"] == {"error_code": "opted_out", "parameter": "phone_number"}
        assert NUMBER in answer["message"] and "START" in answer["message"]
        assert_nothing_kept(running_account, before_queued, before_booked)
        phone_says(client, token, "Start")
        answer = compat(client, key, action="send_sms", phone_number=NUMBER, message="Hi",
                        **where)
        assert answer["status"] == "success", answer
        assert len(written(acct.account_id)) == 1
        Message(account_id=acct.account_id, message_id=answer["data"]["message_id"]).delete()


def test_compat_send_otp_refused_unless_the_owner_allows(running_account, client):
    acct, key, device, token = running_account
    phone_says(client, token, "STOP")
    answer = compat(client, key, action="send_otp", phone_number=NUMBER)
    assert answer["data"]["error_code"] == "opted_out" and "OTP" in answer["message"]
    assert written(acct.account_id) == []
    phone_says(client, token, "START")
    assert compat(client, key, action="send_otp", phone_number=NUMBER)["status"] == "success"
    phone_says(client, token, "STOP")
    opt_outs.configure(acct.account_id, otp_allowed=True)
    clock.advance(settings.current().otp_cooldown_seconds + 1)
    assert compat(client, key, action="send_otp", phone_number=NUMBER)["status"] == "success"


def v1_send(client, key, body):
    answer = client.http.post("/v1/messages", headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"},
        body=json.dumps(body))
    return answer.status_code, json.loads(answer.body)


def test_v1_single_and_bulk(running_account, client):
    acct, key, device, token = running_account
    phone_says(client, token, "STOP")
    before_queued, before_booked = queued(device), booked(device)
    status, problem = v1_send(client, key, {"recipients": [NUMBER], "message": "Hi"})
    assert status == 422 and problem["code"] == "opted_out" and NUMBER in problem["detail"]
    assert_nothing_kept(running_account, before_queued, before_booked)
    status, answer = v1_send(client, key, {"recipients": [NUMBER, OTHER], "message": "Hi"})
    assert status == 202
    refused, sent = answer["messages"]
    assert refused["status"] == "rejected" and refused["error"]["code"] == "opted_out"
    assert sent["status"] == "pending" and written(acct.account_id) == []
    assert len(written(acct.account_id, OTHER)) == 1
    phone_says(client, token, "UNSTOP")
    status, answer = v1_send(client, key, {"recipients": [NUMBER], "message": "Hi"})
    assert status == 202 and len(written(acct.account_id)) == 1


def test_smsgate_client_api(running_account, client):
    acct, key, device, token = running_account
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

    def send(numbers):
        answer = client.http.post("/3rdparty/v1/messages", headers=headers, body=json.dumps(
            {"phoneNumbers": numbers, "textMessage": {"text": "Hi"}}))
        return answer.status_code, json.loads(answer.body)
    phone_says(client, token, "STOP")
    status, answer = send([NUMBER])
    assert status == 400 and NUMBER in answer["message"] and "opted out" in answer["message"]
    assert written(acct.account_id) == []
    status, answer = send([OTHER, NUMBER])  # SMSGate's message is all or nothing
    assert status == 400 and answer["message"].startswith("phoneNumbers[1]")
    assert [m.status for m in written(acct.account_id, OTHER)] == ["cancelled"]
    phone_says(client, token, "YES")
    assert send([NUMBER])[0] == 202 and len(written(acct.account_id)) == 1


def test_csv_preview_and_send(running_account, client):
    from chalicelib.domain.insight import csv_sends
    from tests.api.test_csv_sends import _signed_in_preview
    acct, key, device, token = running_account
    raw = f"number,message\n{NUMBER},Hi\n{OTHER},Hi\n".encode()
    phone_says(client, token, "STOP")
    _, _, preview = _signed_in_preview(client, acct.account_id, raw)
    assert 'data-opted-out="2"' in preview and "opted out" in preview
    done = csv_sends.send(acct.account_id, csv_sends.parse(raw))
    assert done["accepted"] == 1 and [line for line, _ in done["refused"]] == [2]
    assert written(acct.account_id) == []
    phone_says(client, token, "START")
    assert csv_sends.send(acct.account_id, csv_sends.parse(raw))["accepted"] == 1
    assert len(written(acct.account_id)) == 1


def test_scheduled_release_refuses_a_number_that_opted_out_since(running_account, client,
                                                                 monkeypatch):
    from chalicelib.domain import pacing
    from chalicelib.domain.messages import scheduling
    acct, key, device, token = running_account
    pacing.set_pace(Device.get(device.device_uid), 60)
    devices.forget_cached()
    at = clock.now_ms() + 3600 * 1000

    def schedule():
        return v1_send(client, key, {"recipients": [NUMBER], "message": "Later",
                                     "device_id": device.device_id,
                                     "send_at": rfc3339(at)})
    status, answer = schedule()
    assert status == 202, answer
    held = Message.get(acct.account_id, answer["messages"][0]["id"])
    assert held.pace_at_release
    phone_says(client, token, "STOP")
    assert scheduling.release(held, at - 60_000) == "failed"
    failed = Message.get(acct.account_id, held.message_id)
    assert failed.status == "failed" and "opted out" in failed.reason
    status, problem = schedule()  # while opted out, a new one is refused at once
    assert status == 422 and problem["code"] == "opted_out"
    phone_says(client, token, "START")
    status, answer = schedule()
    assert status == 202
    again = Message.get(acct.account_id, answer["messages"][0]["id"])
    assert scheduling.release(again, at - 60_000) in ("released", "held")


def test_confirmation_reply_once_a_day_through_the_phone_that_got_the_stop(running_account, client):
    acct, key, device, token = running_account
    opt_outs.configure(acct.account_id, reply="You will get no more messages. Reply START.")
    phone_says(client, token, "STOP")
    phone_says(client, token, "START")
    phone_says(client, token, "STOP")
    replies = written(acct.account_id)
    assert [(m.body[:12], m.device_uid) for m in replies] == [("You will get", device.device_uid)]
    clock.advance(86400 + 1)
    phone_says(client, token, "START")
    phone_says(client, token, "STOP")
    assert len(written(acct.account_id)) == 2


def test_owner_keywords_list_add_remove(running_account, client):
    acct, key, device, token = running_account
    opt_outs.configure(acct.account_id, opt_out_keywords=["arrêt"], opt_in_keywords=["Oui"])
    phone_says(client, token, "ARRÊT!")
    assert [e.phone_number for e in opt_outs.entries(acct.account_id)] == [NUMBER]
    phone_says(client, token, "oui")
    assert opt_outs.entries(acct.account_id) == []
    assert opt_outs.add(acct.account_id, OTHER) and not opt_outs.add(acct.account_id, OTHER)
    with pytest.raises(OptedOut):
        opt_outs.refuse(acct.account_id, OTHER)
    assert opt_outs.remove(acct.account_id, OTHER)
    opt_outs.refuse(acct.account_id, OTHER)


def test_a_warm_send_makes_no_aws_call_for_the_check(running_account, client, aws_calls):
    acct, key, device, token = running_account
    for n in range(5):
        opt_outs.add(acct.account_id, f"+1415555099{n}")
    for _ in range(2):
        assert compat(client, key, action="send_sms", phone_number=OTHER,
                      message="Hi")["status"] == "success"
    aws_calls.clear()
    assert compat(client, key, action="send_sms", phone_number=OTHER,
                  message="Hi")["status"] == "success"
    assert sorted(aws_calls) == [("dynamodb", "PutItem"), ("sqs", "SendMessage")]  # unpaced


def test_another_containers_change_is_seen_within_the_auth_cache_window(running_account, client):
    """A container that did not record the STOP keeps its list only while its account read
    is at most AUTH_CACHE_SECONDS old (docs/opt-outs.md: the bound)."""
    acct, key, device, token = running_account
    assert compat(client, key, action="send_sms", phone_number=NUMBER,
                  message="Hi")["status"] == "success"
    stale = dict(opt_outs._lists)  # this container's list, as another container would keep it
    noted = dict(accounts._items._items)  # and its account item (the TTLCache's entries)
    opt_outs.add(acct.account_id, NUMBER)
    opt_outs._lists.update(stale)
    accounts._items._items.update(noted)
    clock.advance(settings.current().auth_cache_seconds + 1)
    answer = compat(client, key, action="send_sms", phone_number=NUMBER, message="Hi")
    assert answer["data"]["error_code"] == "opted_out"


def test_webhook_events_from_the_stream():
    def record(old, new):
        image = {k: ({"BOOL": v} if isinstance(v, bool) else {"N": str(v)} if isinstance(v, int)
                     else {"S": v}) for k, v in new.items()}
        old_image = {k: ({"BOOL": v} if isinstance(v, bool) else {"N": str(v)}
                         if isinstance(v, int) else {"S": v}) for k, v in (old or {}).items()}
        return {"eventName": "MODIFY" if old else "INSERT",
                "eventSourceARN": "arn:aws:dynamodb:x:0:table/"
                                  f"{settings.current().table_name('opt-outs')}/stream/1",
                "dynamodb": {"SequenceNumber": "7", "NewImage": image, "OldImage": old_image}}
    base = {"account_id": "acc_1", "phone_number": NUMBER, "source": "sms", "changed_at": 5}
    out, = events.from_stream_record(record(None, {**base, "opted_out": True}))
    assert out.type == "contact.opted_out" and out.data["phone_number"] == NUMBER
    back, = events.from_stream_record(record({**base, "opted_out": True},
                                             {**base, "opted_out": False, "changed_at": 6}))
    assert back.type == "contact.opted_in" and back.id != out.id
    assert events.from_stream_record(record({**base, "opted_out": True},
                                            {**base, "opted_out": True, "replied_at": 9})) == []
    assert "contact.opted_out" in events.TYPES and "contact.opted_in" in events.TYPES


def test_an_entry_and_its_version_are_one_write(running_account):
    acct = running_account[0]
    opt_outs.add(acct.account_id, NUMBER)
    assert Account.get(acct.account_id).opt_outs_version == 1
    assert OptOut.get(acct.account_id, NUMBER).opted_out is True
    with pytest.raises(NotFound):
        opt_outs.add("acc_missing", NUMBER)
    assert list(OptOut.query("acc_missing")) == []


def test_owners_rest_v1_list_add_remove(running_account, client, v1):
    acct, key, device, token = running_account
    phone_says(client, token, "STOP")
    status, listed, _ = v1("GET", "/v1/opt-outs")
    assert status == 200 and [(e["phone_number"], e["source"], e["keyword"])
                              for e in listed["opt_outs"]] == [(NUMBER, "sms", "STOP")]
    status, added, _ = v1("POST", "/v1/opt-outs", {"phone_number": OTHER})
    assert status == 200 and added["opted_out"] and added["changed"]
    assert v1("POST", "/v1/opt-outs", {"phone_number": OTHER})[1]["changed"] is False
    assert v1("POST", "/v1/opt-outs", {"phone_number": "nope"})[0] == 422
    status, removed, _ = v1("DELETE", "/v1/opt-outs/%2B" + NUMBER[1:])
    assert status == 200 and removed["opted_out"] is False and removed["changed"]
    assert [e["phone_number"] for e in v1("GET", "/v1/opt-outs")[1]["opt_outs"]] == [OTHER]
    document = json.loads(client.http.get("/v1/openapi.json").body)
    assert {"get", "post"} <= set(document["paths"]["/v1/opt-outs"])
    assert "delete" in document["paths"]["/v1/opt-outs/{phone_number}"]


def test_owners_dashboard_page(running_account, client):
    from tests.dashboard_helpers import Visitor, owner, text
    acct, key, device, token = running_account
    phone_says(client, token, "STOP")
    owner(acct.account_id, "owner@example.com")
    visitor = Visitor(client)
    visitor.sign_in("owner@example.com")
    page = text(visitor.get("/dashboard/opt-outs"))
    assert f'data-number="{NUMBER}"' in page and "replied STOP" in page and ">Opt-outs<" in page
    visitor.submit("/dashboard/opt-outs", {"number": OTHER}, page="/dashboard/opt-outs")
    visitor.submit("/dashboard/opt-outs/remove", {"number": NUMBER}, page="/dashboard/opt-outs")
    assert [e.phone_number for e in opt_outs.entries(acct.account_id)] == [OTHER]
    answer = visitor.submit("/dashboard/opt-outs/settings", {"own_out": "ARRET", "reply": "Bye",
                                                              "otp": "1"},
                            page="/dashboard/opt-outs")
    assert "Settings saved" in text(answer)
    saved = Account.get(acct.account_id)
    assert saved.opt_out_keywords == ["ARRET"] and saved.opt_out_reply == "Bye"
    assert saved.otp_to_opted_out


def test_owners_cli(running_account):
    from click.testing import CliRunner

    import cli
    acct = running_account[0]
    runner = CliRunner()
    assert runner.invoke(cli.main, ["opt-out", "add", acct.account_id, NUMBER]).exit_code == 0
    shown = runner.invoke(cli.main, ["opt-out", "list", acct.account_id, "--json"])
    assert [e["phone_number"] for e in json.loads(shown.output)] == [NUMBER]
    assert runner.invoke(cli.main, ["opt-out", "remove", acct.account_id, NUMBER]).exit_code == 0
    assert opt_outs.entries(acct.account_id) == []
