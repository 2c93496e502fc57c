"""A 1,000-recipient v1 send through the real handlers: one message per recipient, and every
one handed to the phone once and delivered once when the phone drains its queue."""
import json
from collections import Counter

from chalicelib.domain import jobs
from chalicelib.storage.tables import Message

RECIPIENTS = [f"+4917{n:09d}" for n in range(1000)]


def test_thousand_recipients_each_delivered_exactly_once(client, account):
    acct, key, device, _ = account
    answer = client.http.post("/v1/messages", headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"},
        body=json.dumps({"recipients": RECIPIENTS, "message": "Bulk", "device_id": 1}))
    assert answer.status_code == 202
    accepted = json.loads(answer.body)["messages"]
    assert [m["phone_number"] for m in accepted] == RECIPIENTS
    ids = {m["id"] for m in accepted}
    assert len(ids) == 1000 and all(m["status"] == "pending" and m["queued"] for m in accepted)
    handed = Counter()
    while True:
        batch = jobs.fetch(device, 0, 10)
        if not batch:
            break
        for job in batch:
            handed[job["message_id"]] += 1
            assert jobs.report(device, job["message_id"], "delivered")["result"] == "ok"
    assert set(handed) == ids and set(handed.values()) == {1}
    stored = Counter(m.status for m in Message.query(acct.account_id))
    assert stored == Counter({"delivered": 1000})
