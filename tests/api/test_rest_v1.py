"""REST v1 through the real Chalice handlers against moto: sends (bulk, scheduled, idempotent),
cancel (also racing a phone's lease), listing, OTP, devices, errors as problem+json, account
isolation, and every answer checked against the served OpenAPI document."""
import json
import threading
from collections import Counter

import pytest
from openapi_spec_validator import validate as validate_spec

from chalicelib.core import clock, settings
from chalicelib.domain import accounts, devices, jobs, messages, sweeps
from chalicelib.storage import aws
from chalicelib.storage.tables import Message
from tests import sending
from tests.openapi_helpers import route_of

NUMBERS = [f"+49170{n:07d}" for n in range(1000)]


def queued(device):
    answer = aws.sqs().receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                                       VisibilityTimeout=0)
    return [json.loads(m["Body"])["message_id"] for m in answer.get("Messages", [])]


def test_openapi_document_is_valid_31_and_covers_every_v1_route(client):
    from app import app
    document = json.loads(client.http.get("/v1/openapi.json").body)
    validate_spec(document)
    assert document["openapi"] == "3.1.0"
    served = {(method, path) for path, entry in app.routes.items() if path.startswith("/v1/")
              for method in entry}
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    # every method reaches each v1 path (the ones it does not serve answer 405 problem+json)
    assert documented <= served
    assert {p for _, p in served} == {p for _, p in documented}


def test_docs_page_is_self_hosted(client):
    response = client.http.get("/v1/docs")
    assert response.status_code == 200
    page = response.body.decode()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "POST /v1/messages" in page and "id=error-not-cancellable" in page


def test_bulk_send_one_message_per_recipient(v1, account):
    device = account[2]
    status, body, _ = v1("POST", "/v1/messages", {"recipients": NUMBERS[:3], "message": "Hi",
                                                   "device_id": device.device_id})
    assert status == 202
    ids = [m["id"] for m in body["messages"]]
    assert [m["phone_number"] for m in body["messages"]] == NUMBERS[:3]
    assert len(set(ids)) == 3 and all(m["status"] == "pending" for m in body["messages"])
    assert sorted(queued(device)) == sorted(ids)
    status, one, _ = v1("GET", f"/v1/messages/{ids[1]}")
    assert status == 200 and one["phone_number"] == NUMBERS[1] and one["message"] == "Hi"


def test_idempotent_retry_answers_the_same_messages(v1, account):
    request = {"recipients": NUMBERS[:2], "message": "Once", "device_id": 1,
               "idempotency_key": "batch-7"}
    _, first, _ = v1("POST", "/v1/messages", request)
    _, again, _ = v1("POST", "/v1/messages", request)
    assert [m["id"] for m in again["messages"]] == [m["id"] for m in first["messages"]]
    assert all(m["replayed"] for m in again["messages"])
    assert len(queued(account[2])) == 2
    status, clash, _ = v1("POST", "/v1/messages", {**request, "message": "Other"})
    assert status == 409 and clash["code"] == "conflict"


def _stored_count(account):
    return len(list(Message.query(account[0].account_id)))


@pytest.mark.parametrize("raw,status,parameter", [
    ('{"recipients": ["+4917000000001"], "message": "x", "message": "y"}', 400, "message"),
    ('{"recipients": ["+4917000000001"], "message": "x", "devce_id": 1}', 400, "devce_id"),
    ('{"recipients": "+4917000000001", "message": "x"}', 400, "recipients"),
    ('{"recipients": [], "message": "x"}', 400, "recipients"),
    (json.dumps({"recipients": NUMBERS + ["+4917100000000"], "message": "x"}), 400,
     "recipients"),
    ('{"recipients": ["+4917000000001"], "message": "x", "device_id": "1"}', 400, "device_id"),
    ('{"recipients": ["+4917000000001"], "message": "x", "device_id": true}', 400,
     "device_id"),
    ('{"recipients": ["+4917000000001"], "message": "x", "send_at": "tomorrow"}', 400,
     "send_at"),
    ('[1, 2]', 400, None),
    ('{"recipients": [[[[[[[[[[[["x"]]]]]]]]]]]], "message": "x"}', 400, None),
    ('not json', 400, None),
    ('{"recipients": ["+4917000000001", "12"], "message": "x", "device_id": 1}', 422,
     "recipients[1]"),
    ('{"recipients": ["+4917000000001", "+49 1700 0000001"], "message": "x", "device_id": 1}',
     422, "recipients[1]"),
    ('{"recipients": ["+4917000000001"], "message": "   ", "device_id": 1}', 422, "message"),
    ('{"recipients": ["+4917000000001"], "message": "x", "device_id": 99}', 404, "device_id"),
    ('{"recipients": ["+4917000000001"], "message": "x", "device_id": 1, '
     '"send_at": "2099-01-01T00:00:00Z"}', 422, "send_at"),
])
def test_bad_input_is_a_problem_and_changes_nothing(v1, account, raw, status, parameter):
    got, problem, headers = v1("POST", "/v1/messages", raw=raw)
    assert (got, problem.get("parameter")) == (status, parameter), problem
    assert problem["status"] == status and problem["detail"]
    assert _stored_count(account) == 0 and queued(account[2]) == []


def test_auth_errors(v1, account, from_ip):
    status, problem, headers = v1("GET", "/v1/devices", key=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert v1("GET", "/v1/devices", key="f" * 64)[0] == 401
    assert v1("GET", "/v1/devices", headers={"authorization": f"Basic {account[1]}"},
              key=None)[0] == 401
    accounts.set_whitelist(account[0].account_id, ["10.0.0.0/8"])
    from_ip("192.0.2.7")
    status, problem, _ = v1("GET", "/v1/devices")
    assert status == 403 and problem["code"] == "forbidden"
    from_ip("10.1.2.3")
    assert v1("GET", "/v1/devices")[0] == 200


def test_unknown_query_parameter_and_bad_id(v1):
    assert v1("GET", "/v1/messages?limt=5")[1]["parameter"] == "limt"
    assert v1("GET", "/v1/messages/abc")[0] == 400
    assert v1("GET", "/v1/messages/123")[0] == 404


def test_cancel_before_the_phone_takes_it_and_409_after(v1, account, client):
    device, token = account[2], account[3]
    _, body, _ = v1("POST", "/v1/messages", {"recipients": NUMBERS[:2], "message": "Hi",
                                              "device_id": 1})
    first, second = (m["id"] for m in body["messages"])
    status, cancelled, _ = v1("DELETE", f"/v1/messages/{first}")
    assert status == 200 and cancelled["status"] == "cancelled"
    assert v1("DELETE", f"/v1/messages/{first}")[1]["status"] == "cancelled"  # repeatable
    polled = client.http.get("/device/jobs?wait=0&max=10",
                             headers={"authorization": f"Bearer {token}"})
    handed = [job["message_id"] for job in json.loads(polled.body)["jobs"]]
    assert handed == [second]  # the cancelled job is dropped from the queue, not handed out
    status, problem, _ = v1("DELETE", f"/v1/messages/{second}")
    assert status == 409 and problem["code"] == "not_cancellable"
    assert problem["current_status"] == "processing"
    assert queued(device) == []


def _race_cancel_and_lease(account_id, device, message_id) -> dict:
    outcome, start = {}, threading.Barrier(2)

    def cancel():
        start.wait()
        try:
            outcome["cancel"] = messages.cancel(account_id, message_id).status
        except Exception as error:  # noqa: BLE001 (the Conflict is the outcome)
            outcome["cancel"] = getattr(error, "code", repr(error))

    def lease():
        start.wait()
        handed = jobs.lease_from_queue(device, 0, 10)  # as GET /device/jobs
        outcome["lease"] = "leased" if [j["message_id"] for j in handed] == [message_id] \
            else "drop"
    threads = [threading.Thread(target=cancel), threading.Thread(target=lease)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return outcome


def test_cancel_racing_a_lease_has_one_winner(account, atomic_moto):
    """Real threads: a cancel and the phone's lease both write `status == pending`
    conditionally, so DynamoDB lets exactly one through whatever the interleaving."""
    acct, _, device, _ = account
    winners = Counter()
    for _ in range(15):
        m = sending.send(acct.account_id, device, NUMBERS[0], "race").message
        outcome = _race_cancel_and_lease(acct.account_id, device, m.message_id)
        final = Message.get(acct.account_id, m.message_id, consistent_read=True).status
        assert sorted(outcome.values()) in (["cancelled", "drop"],
                                            ["leased", "not_cancellable"]), outcome
        assert final == ("cancelled" if outcome["cancel"] == "cancelled" else "processing")
        winners[outcome["cancel"]] += 1
    assert queued(device) == []  # a cancelled job left the queue; a leased one is invisible
    assert winners["cancelled"] + winners["not_cancellable"] == 15


def test_scheduled_send_is_held_and_released_on_time_never_early(v1, account, aws_calls):
    device = account[2]
    clock.freeze()
    t0 = clock.now_ms() // 1000 * 1000
    clock.freeze(t0)
    send_at = t0 + 3 * 3600 * 1000
    _, body, _ = v1("POST", "/v1/messages", {
        "recipients": NUMBERS[:2], "message": "Later", "device_id": 1,
        "send_at": clock.fmt(send_at).replace(" ", "T") + "Z", "valid_for": 600})
    ids = [m["id"] for m in body["messages"]]
    assert queued(device) == []  # held in DynamoDB, not on a paid timer
    v1("DELETE", f"/v1/messages/{ids[1]}")  # cancellable while held
    held = Message.get(account[0].account_id, ids[0])
    assert held.expires_at == send_at + 600 * 1000
    aws_calls.clear()
    minute = 60 * 1000
    release = None
    for now in range(t0, send_at + 2 * minute, minute):  # the sweep, once a minute
        clock.freeze(now)
        sweeps.settle_due_messages()
        sends = [p for s, op, p in aws_calls.requests if op == "SendMessage"]
        if sends and release is None:
            release = now
            assert len(sends) == 1 and json.loads(sends[0]["MessageBody"])["message_id"] == \
                ids[0]
            visible_at = now + sends[0]["DelaySeconds"] * 1000
            assert send_at <= visible_at < send_at + 1000  # never early, on time
    longest = settings.current().max_queue_delay_seconds
    assert release is not None and release <= send_at - (longest - 60) * 1000


def test_list_filters_and_cursor_pagination(v1, account):
    clock.freeze()
    made = []
    for index in range(5):
        clock.advance(1)
        _, body, _ = v1("POST", "/v1/messages", {"recipients": [NUMBERS[index % 2]],
                                                  "message": f"m{index}", "device_id": 1})
        made.append(body["messages"][0]["id"])
    v1("DELETE", f"/v1/messages/{made[0]}")
    seen, cursor = [], None
    while True:
        _, page, _ = v1("GET", "/v1/messages?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["messages"]) <= 2
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == made[::-1]
    by_number = v1("GET", f"/v1/messages?phone_number={NUMBERS[1].replace('+', '%2B')}")[1]
    assert [m["id"] for m in by_number["messages"]] == [made[3], made[1]]
    assert [m["id"] for m in v1("GET", "/v1/messages?status=cancelled")[1]["messages"]] == \
        [made[0]]
    middle = clock.fmt(Message.get(account[0].account_id, made[2]).created_at)
    since = v1("GET", f"/v1/messages?since={middle.replace(' ', 'T')}Z")[1]["messages"]
    assert [m["id"] for m in since] == made[:1:-1]
    status, problem, _ = v1("GET", f"/v1/messages?status=sent&cursor={cursor or 'x'}")
    assert status == 400 or problem.get("parameter") == "cursor"


def test_otp_send_and_verify(v1, account):
    from chalicelib.domain import otp
    status, sent, _ = v1("POST", "/v1/otp", {"phone_number": NUMBERS[5], "device_id": 1,
                                              "length": 6})
    assert status == 202 and 298 <= sent["expires_in"] <= 300  # real clock, loaded machine
    job = json.loads(aws.sqs().receive_message(QueueUrl=account[2].queue_url)["Messages"][0]
                     ["Body"])
    code = next(w for w in job["message"].split() if w.strip(".").isdigit()).strip(".")
    assert v1("POST", "/v1/otp/verify", {"phone_number": NUMBERS[5], "otp_code": "000000"}
              if code != "000000" else {"phone_number": NUMBERS[5], "otp_code": "111111"}
              )[0] == 422
    status, ok, _ = v1("POST", "/v1/otp/verify", {"phone_number": NUMBERS[5], "otp_code": code})
    assert status == 200 and ok == {"verified": True}
    assert otp.PLACEHOLDER not in job["message"]


def test_every_route_is_scoped_to_the_callers_account(v1, account, settings_override, monkeypatch,
                                                      client):
    from chalicelib.domain import webhooks
    from chalicelib.domain.webhooks import dispatch as webhook_delivery
    from chalicelib.surfaces.rest_v1 import schema
    other = accounts.create_account("Other")
    other_key, _ = accounts.create_key(other.account_id)
    devices.register(other.account_id, "Theirs")
    templates = {"paths": {op.path: None for op in schema.OPERATIONS}}
    called = set()

    def theirs(method, path, body=None):
        called.add((method, route_of(templates, path)))
        return v1(method, path, body, key=other_key)

    _, body, _ = v1("POST", "/v1/messages", {"recipients": [NUMBERS[0]], "message": "Mine",
                                              "device_id": 1})
    mine = body["messages"][0]["id"]
    assert theirs("GET", f"/v1/messages/{mine}")[0] == 404
    assert theirs("DELETE", f"/v1/messages/{mine}")[0] == 404
    assert theirs("GET", "/v1/messages")[1]["messages"] == []
    assert [d["name"] for d in theirs("GET", "/v1/devices")[1]["devices"]] == ["Theirs"]
    assert theirs("GET", "/v1/stats")[1]["phones"] == []
    assert theirs("GET", "/v1/devices/1")[1]["name"] == "Theirs"
    assert theirs("PATCH", "/v1/devices/1", {"pace_per_hour": 7})[1]["pace_per_hour"] == 7
    assert v1("GET", "/v1/devices/1")[1]["pace_default"] is True  # ours: unchanged
    devices.register(other.account_id, "Theirs 2")  # their device_id 2; ours has only 1
    assert v1("POST", "/v1/messages", {"recipients": [NUMBERS[2]], "message": "x",
                                       "device_id": 2})[0] == 404
    assert theirs("POST", "/v1/messages", {"recipients": [NUMBERS[2]], "message": "x",
                                           "device_id": 1})[1]["messages"][0]["device_id"] \
        == 1  # their own device 1
    assert v1("POST", "/v1/otp", {"phone_number": NUMBERS[3], "device_id": 2})[0] == 404
    theirs("POST", "/v1/otp", {"phone_number": NUMBERS[4], "device_id": 1})
    v1("POST", "/v1/otp", {"phone_number": NUMBERS[1], "device_id": 1})
    assert theirs("POST", "/v1/otp/verify", {"phone_number": NUMBERS[1],
                                             "otp_code": "123456"})[0] == 422
    assert Message.get(account[0].account_id, mine).status == "pending"

    # webhooks: a delivery of ours in the log (its real attempt fails: nothing listens there)
    settings_override(webhook_allow_private=True)
    webhooks.ensure_queue()
    hook = v1("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook"})[1]
    event = v1("POST", f"/v1/webhooks/{hook['webhook_id']}/test")[1]["event_id"]
    jobs_ = aws.sqs().receive_message(QueueUrl=webhooks.queue_url())["Messages"]
    webhook_delivery.deliver([m["Body"] for m in jobs_])
    path = f"/v1/webhooks/{hook['webhook_id']}"
    assert v1("GET", f"{path}/deliveries/{event}")[1]["state"] == "retrying"
    assert theirs("GET", "/v1/webhooks")[1]["webhooks"] == []
    for method, route, body in [
            ("GET", path, None), ("PATCH", path, {"enabled": False}), ("DELETE", path, None),
            ("POST", f"{path}/test", None), ("POST", f"{path}/rotate-secret", {"overlap": 0}),
            ("GET", f"{path}/deliveries", None), ("GET", f"{path}/deliveries/{event}", None),
            ("POST", f"{path}/deliveries/{event}/redeliver", None),
            ("POST", f"{path}/redeliver", {"since": "2020-01-01T00:00:00Z"})]:
        assert theirs(method, route, body)[0] == 404, (method, route)
    theirs_made = theirs("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/theirs"})[1]
    assert [w["webhook_id"] for w in v1("GET", "/v1/webhooks")[1]["webhooks"]] == \
        [hook["webhook_id"]]
    assert v1("GET", f"/v1/webhooks/{theirs_made['webhook_id']}")[0] == 404
    unchanged = v1("GET", path)[1]
    assert unchanged["status"] == "failing" and unchanged["rotation_ends"] is None  # not off
    assert [d["event_id"] for d in v1("GET", f"{path}/deliveries")[1]["deliveries"]] == [event]
    # opt-outs: each account's own list
    v1("POST", "/v1/opt-outs", {"phone_number": NUMBERS[5]})
    assert theirs("GET", "/v1/opt-outs")[1]["opt_outs"] == []
    assert theirs("DELETE", "/v1/opt-outs/%2B" + NUMBERS[5][1:])[1]["changed"] is False
    assert theirs("POST", "/v1/opt-outs", {"phone_number": NUMBERS[6]})[1]["changed"] is True
    assert [e["phone_number"] for e in v1("GET", "/v1/opt-outs")[1]["opt_outs"]] == [NUMBERS[5]]
    # the export (a zip, not JSON): theirs holds nothing of ours
    import io
    import zipfile
    called.add(("GET", "/v1/export"))
    response = client.http.get("/v1/export", headers={"Authorization": f"Bearer {other_key}",
                                                      "Accept": "application/zip"})
    archive = zipfile.ZipFile(io.BytesIO(response.body))
    exported = "".join(archive.read(name).decode() for name in archive.namelist())
    assert other.account_id in exported and "Theirs" in exported
    for ours in (account[0].account_id, account[2].device_uid, hook["webhook_id"], "Mine",
                 NUMBERS[5]):
        assert ours not in exported, ours
    every = {(op.method, op.path) for op in schema.OPERATIONS if op.auth}
    assert called == every, every - called  # a route added later must be added here too


def test_aws_calls_of_a_v1_send(v1, account, aws_calls):
    v1("GET", "/v1/devices")  # warm: key and device cached like a warm Lambda
    v1("POST", "/v1/messages", {"recipients": [NUMBERS[0]], "message": "w", "device_id": 1})
    aws_calls.clear()
    v1("POST", "/v1/messages", {"recipients": [NUMBERS[1]], "message": "x", "device_id": 1})
    assert sorted(op for _, op in aws_calls) == ["PutItem", "SendMessage"]
    aws_calls.clear()
    v1("POST", "/v1/messages", {"recipients": NUMBERS[2:12], "message": "y", "device_id": 1})
    assert sorted(op for _, op in aws_calls) == ["PutItem"] * 10 + ["SendMessage"] * 10


def test_aws_calls_of_a_keyed_v1_send(v1, account, aws_calls):
    """A key adds the request's claim and its kept answer (domain/idempotency.py) and each
    recipient's key claim to the unkeyed send's calls: what bench/cost.py's keyed line adds."""
    v1("GET", "/v1/devices")
    v1("POST", "/v1/messages", {"recipients": [NUMBERS[0]], "message": "w", "device_id": 1})
    aws_calls.clear()
    v1("POST", "/v1/messages", {"recipients": [NUMBERS[1]], "message": "x", "device_id": 1,
                                "idempotency_key": "k-1"})
    # the request's claim (PutItem), the message with its recipient's key claim in one
    # transaction (instead of the unkeyed PutItem), its job, the kept answer (UpdateItem)
    assert [(op, p.get("TableName", "")) for _, op, p in aws_calls.requests] == [
        ("PutItem", settings.current().table_name("idempotency")), ("TransactWriteItems", ""),
        ("SendMessage", ""), ("UpdateItem", settings.current().table_name("idempotency"))]


def test_idempotent_scheduled_send_is_the_same_request_whenever_retried(v1, account):
    clock.freeze()
    at = clock.now_ms() + 3600 * 1000
    request = {"recipients": [NUMBERS[0]], "message": "Later", "device_id": 1,
               "send_at": clock.fmt(at).replace(" ", "T") + "Z", "idempotency_key": "sched-1"}
    first = v1("POST", "/v1/messages", request)[1]["messages"][0]
    clock.advance(2 * 3600)  # retried after send_at has passed: still the same request
    again = v1("POST", "/v1/messages", request)[1]["messages"][0]
    assert (again["id"], again["replayed"]) == (first["id"], True)
    moved = {**request, "send_at": clock.fmt(at + 60000).replace(" ", "T") + "Z"}
    status, problem, _ = v1("POST", "/v1/messages", moved)
    assert status == 409 and "send_at" in problem["detail"]


def test_without_a_device_the_pool_chooses_and_reports_what_it_cannot_take(v1, account):
    from chalicelib.domain import pool
    devices.heartbeat(account[2], "running")
    pool.set_device_pace(account[0].account_id, "1", 1)  # one segment an hour per SIM
    status, body, _ = v1("POST", "/v1/messages", {"recipients": NUMBERS[:6], "message": "Hi"})
    assert status == 202
    entries = body["messages"]
    taken = [m for m in entries if m["status"] == "pending"]
    refused = [m for m in entries if m["status"] == "rejected"]
    assert taken and refused and len(taken) + len(refused) == 6
    assert all(m["device_id"] == 1 for m in taken)
    assert {m["error"]["code"] for m in refused} == {"pool_at_capacity"}
    assert all(m["error"]["status"] == 429 for m in refused)
    assert len(list(Message.query(account[0].account_id))) == len(taken)


@pytest.mark.parametrize("named", [True, False])
def test_an_urgent_message_is_not_held_behind_a_paced_backlog(v1, account, named):
    from chalicelib.domain import pool
    clock.freeze()
    devices.heartbeat(account[2], "running")
    pool.set_device_pace(account[0].account_id, "1", 3)  # 3 parts an hour, 1 kept for urgent
    where = {"device_id": 1, "sim_slot": 1} if named else {"sim_slot": 1}
    backlog = v1("POST", "/v1/messages", {"recipients": NUMBERS[:5], "message": "Promo",
                                          **where})[1]["messages"]
    held = [m for m in backlog if m.get("send_at")]  # recipients are accepted 8 at a time
    if named:  # 2 now, 2 in an hour, 1 in two
        assert len(held) == 3 and len({m["send_at"] for m in held}) == 2
    else:  # the pool takes only what it can send within the hour (SMSGW_POOL_BACKLOG_SECONDS)
        assert all(m["status"] == "rejected" for m in backlog if m not in held and m["queued"]
                   is False)
    status, body, _ = v1("POST", "/v1/messages", {"recipients": [NUMBERS[9]], "message": "Now",
                                                  "priority": "urgent", **where})
    [urgent] = body["messages"]
    assert status == 202 and urgent["send_at"] is None and urgent["device_id"] == 1
    visible = queued(account[2])  # SQS hides the backlog's jobs until their slots
    assert urgent["id"] in visible and not {m["id"] for m in held} & set(visible)
    assert Message.get(account[0].account_id, urgent["id"]).not_before is None
    status, after, _ = v1("POST", "/v1/messages", {"recipients": [NUMBERS[10]],
                                                   "message": "Later", "priority": "normal",
                                                   **where})
    # the urgent one still counted: the next normal message comes after backlog + urgent
    if named:
        assert schema_ms(after["messages"][0]["send_at"]) >= clock.now_ms() + 5 * 60 * 1000
    else:  # nothing fits within the pool's backlog of an hour
        assert status == 429 and after["code"] == "pool_at_capacity", after
    status, problem, _ = v1("POST", "/v1/messages", {"recipients": [NUMBERS[11]], "message": "x",
                                                     "priority": "high", **where})
    assert (status, problem["parameter"]) == (400, "priority")


def schema_ms(text):
    from chalicelib.surfaces.rest_v1.validation import epoch_ms
    return epoch_ms(text)


@pytest.mark.parametrize("named", [True, False])
def test_a_scheduled_burst_is_paced_at_release_not_at_accept(v1, account, aws_calls, named):
    from chalicelib.domain import pool
    clock.freeze()
    t0 = clock.now_ms() // 60000 * 60000
    clock.freeze(t0)
    devices.heartbeat(account[2], "running")
    pool.set_device_pace(account[0].account_id, "1", 60)  # 60 parts an hour per SIM
    where = {"device_id": 1, "sim_slot": 1} if named else {"sim_slot": 1}
    send_at = t0 + 3 * 3600 * 1000
    burst = v1("POST", "/v1/messages", {"recipients": NUMBERS[:5], "message": "Tomorrow's",
                                        "send_at": clock.fmt(send_at).replace(" ", "T") + "Z",
                                        **where})[1]["messages"]
    assert {m["send_at"] for m in burst} == {clock.fmt(send_at).replace(" ", "T") + "Z"}
    stored = devices.Device.get(account[2].device_uid, consistent_read=True)
    assert not stored.pace_log  # the burst took nothing of today's pace
    live = v1("POST", "/v1/messages", {"recipients": [NUMBERS[9]], "message": "Now",
                                       **where})[1]["messages"][0]
    assert live["send_at"] is None  # not held behind the scheduled burst
    aws_calls.clear()
    visible = {}
    for now in range(t0 + 60000, send_at + 10 * 60000, 60000):  # the sweep, once a minute
        clock.freeze(now)
        sweeps.settle_due_messages()
        for _, op, sent in aws_calls.requests:
            if op == "SendMessage":
                message_id = json.loads(sent["MessageBody"])["message_id"]
                visible.setdefault(message_id, now + sent.get("DelaySeconds", 0) * 1000)
        aws_calls.clear()
    ids = [m["id"] for m in burst]
    assert set(visible) >= set(ids)
    # released at send_at, never early, and paced from there: 5 fit the SIM's rate at once
    assert sorted(visible[i] for i in ids) == [send_at] * 5
    for message_id in ids:
        message = Message.get(account[0].account_id, message_id)
        assert message.pace_at_release is None and (message.not_before or send_at) == \
            visible[message_id]


@pytest.mark.parametrize("pace,ahead", [(60, 3 * 3600), ("default", 3 * 3600), (60, 600)])
def test_a_scheduled_message_moved_off_a_stopped_phone_keeps_its_send_time(v1, account, pace,
                                                                          ahead):
    """Held and paced at release (60/h, 3 h), held on an unpaced phone (the tests' default
    pace is 0), or queued with a delay (10 min): a failover moves it to another phone, never
    to an earlier time."""
    from chalicelib.domain import pool
    clock.freeze()
    second, _ = devices.register(account[0].account_id, "Phone 2", sim_count=1)
    for device in (account[2], second):
        devices.heartbeat(device, "running")
        pool.set_device_pace(account[0].account_id, str(device.device_id), pace)
    send_at = clock.now_ms() // 1000 * 1000 + ahead * 1000
    sent = v1("POST", "/v1/messages", {"recipients": NUMBERS[:20], "message": "Later",
                                       "send_at": clock.fmt(send_at).replace(" ", "T") + "Z"}
              )[1]["messages"]
    assert {m["device_id"] for m in sent} == {1, 2}  # spread over the pool (p fail < 0.1 %)
    on_first = [m["id"] for m in sent if m["device_id"] == 1]
    assert pool.failover_device(devices.Device.get(account[2].device_uid)) == len(on_first)
    for message_id in on_first:
        moved = Message.get(account[0].account_id, message_id)
        assert moved.device_uid == second.device_uid and moved.not_before >= send_at
        assert moved.pace_at_release == (True if pace == 60 and ahead > 900 else None)
        if ahead > 900:
            assert moved.open_due < send_at  # looked at again before its time
    assert queued(second) == []  # not queued yet, or hidden until send_at


def test_each_message_says_when_it_will_go_and_the_phone_gets_it_no_earlier(v1, account,
                                                                            settings_override):
    """Issue 21: POST /v1/messages answers expected_at / expected_in per message, as send_sms
    does. Real time, real SQS delays (moto honours them): a window of 2 parts per 2 s, so the
    third recipient is announced for later, and the phone cannot get any job before its
    expected_at (nor is one announced later than the phone could have it, beyond a second)."""
    import time
    settings_override(pace_window_parts=2, pace_window_seconds=2, pace_otp_reserve=0)
    device = account[2]
    before = clock.now_ms()
    status, body, _ = v1("POST", "/v1/messages", {"recipients": NUMBERS[:3], "message": "Hi",
                                                   "device_id": device.device_id})
    assert status == 202
    expected = {m["id"]: schema_ms(m["expected_at"]) for m in body["messages"]}
    ins = sorted(m["expected_in"] for m in body["messages"])
    assert ins[:2] == [0, 0] and 1 <= ins[2] <= 5, body["messages"]
    assert all(at >= before - 1000 for at in expected.values())
    assert max(expected.values()) > before + 1000  # the third waits for the window
    seen = {}
    deadline = time.time() + 15
    while len(seen) < 3 and time.time() < deadline:
        for job in jobs.lease_from_queue(device, 0, 10):
            seen.setdefault(job["message_id"], clock.now_ms())
        time.sleep(0.2)
    assert set(seen) == set(expected)
    for message_id, at in seen.items():
        assert expected[message_id] <= at, (message_id, at, expected[message_id])
        assert at <= expected[message_id] + 3000, (message_id, at, expected[message_id])
    # a replay of the same request recomputes expected_in from the same expected_at
    key = {"idempotency_key": "when-1"}
    first = v1("POST", "/v1/messages", {"recipients": NUMBERS[5:6], "message": "Hi",
                                        "device_id": device.device_id, **key})[1]["messages"]
    again = v1("POST", "/v1/messages", {"recipients": NUMBERS[5:6], "message": "Hi",
                                        "device_id": device.device_id, **key})[1]["messages"]
    assert again[0]["replayed"] and again[0]["expected_at"] == first[0]["expected_at"]
