"""An idempotency key names one whole request (issue 25, domain/idempotency.py): the same key
with other recipients, text or options is 409 naming what differs and creates nothing; a
replay answers the original answer from one read; keys of different surfaces never meet."""
import json

import pytest

from chalicelib.storage.tables import Message

NUMBERS = [f"+49170{n:07d}" for n in range(20)]


@pytest.fixture
def post(client, account, atomic_moto):
    def send(body, headers=None):
        response = client.http.post("/v1/messages", body=json.dumps(body), headers={
            "content-type": "application/json", "authorization": f"Bearer {account[1]}",
            **(headers or {})})
        return response.status_code, json.loads(response.body)
    return send


def _count(account):
    return Message.count(account[0].account_id)


def test_the_same_key_with_another_request_is_409_naming_what_differs(post, account):
    first = {"recipients": NUMBERS[:2], "message": "hello", "device_id": 1,
             "idempotency_key": "bulk-1"}
    assert post(first)[0] == 202
    made = _count(account)
    for changed, named in ((dict(recipients=NUMBERS[:3]), "recipients"),
                           (dict(recipients=NUMBERS[1::-1]), "recipients"),
                           (dict(message="hello!"), "message"),
                           (dict(sim_slot=2), "sim_slot"),
                           (dict(valid_for=600, priority="urgent"), "priority, valid_for")):
        status, problem = post({**first, **changed})
        assert (status, problem["code"]) == (409, "conflict"), problem
        assert f"differs in {named})" in problem["detail"], (changed, problem["detail"])
        assert problem["parameter"] == "idempotency_key"
        assert _count(account) == made  # nothing created, not even the new recipient


def test_a_replay_is_the_original_answer_from_one_read(post, account, aws_calls):
    body = {"recipients": NUMBERS[:10], "message": "hello", "device_id": 1,
            "idempotency_key": "bulk-2"}
    status, original = post(body)
    assert status == 202 and not any(m["replayed"] for m in original["messages"])
    aws_calls.clear()
    status, again = post(body)
    assert status == 202
    assert again == {"messages": [{**m, "replayed": True} for m in original["messages"]]}
    assert sorted(op for _, op in aws_calls) == ["GetItem", "PutItem"]  # the claim, refused
    status, by_header = post({k: v for k, v in body.items() if k != "idempotency_key"},
                             headers={"Idempotency-Key": "bulk-2"})
    assert by_header == again


def test_a_request_that_created_nothing_frees_its_key(post, account):
    status, problem = post({"recipients": ["+1"], "message": "x", "device_id": 1,
                            "idempotency_key": "bulk-3"})
    assert status == 422, problem
    status, answer = post({"recipients": NUMBERS[:1], "message": "x", "device_id": 1,
                           "idempotency_key": "bulk-3"})
    assert status == 202 and not answer["messages"][0]["replayed"]


def test_keys_of_the_compat_api_and_v1_never_meet(post, account, api):
    _, key, device, _ = account
    status, v1_answer = post({"recipients": NUMBERS[:1], "message": "from v1", "device_id": 1,
                              "idempotency_key": "shared-key-1"})
    assert status == 202
    v1_id = v1_answer["messages"][0]["id"]
    # v1 claims each recipient as <key>#<index>: a compat key spelled so must not find it
    envelope, _ = api(api_key=key, action="send_sms", device_uid=device.device_uid,
                      phone_number=NUMBERS[0], message="from compat",
                      idempotency_key="shared-key-1#0")
    assert envelope["status"] == "success", envelope
    assert envelope["data"]["message_id"] != v1_id
    assert Message.get(account[0].account_id, envelope["data"]["message_id"]).body == \
        "from compat"


def test_key_spaces_are_distinct_for_every_surface():
    from chalicelib.domain import idempotency
    keys = {idempotency.claim_key("acc_1", "k#0", space) for space in idempotency.SPACES}
    assert len(keys) == len(idempotency.SPACES)
    assert idempotency.claim_key("acc_1", "k", "compat") == "acc_1#k"  # as stored before
