"""A 1,000-recipient v1 send without a named device, through the real handlers: spread over the
account's pool of running phones within each SIM's rate, one message per recipient, and every one
handed to a phone once and delivered once when the phones drain their queues."""
import json
import time
from collections import Counter, defaultdict

from chalicelib.core import settings
from chalicelib.domain import devices, jobs, pool
from chalicelib.storage.tables import Message
from tests.pacing_replay import busiest

RECIPIENTS = [f"+4917{n:09d}" for n in range(1000)]
PACE = 36000  # parts per hour per SIM: the whole burst fits, so the test drains in seconds


def test_thousand_recipients_spread_over_the_pool_each_delivered_once(client, account,
                                                                     atomic_moto):
    acct, key, first, _ = account
    phones = [first] + [devices.register(acct.account_id, f"Phone {n}", sim_count=2)[0]
                        for n in (2, 3, 4)]
    for phone in phones:
        devices.heartbeat(phone, "running")
        pool.set_device_pace(acct.account_id, str(phone.device_id), PACE)
    answer = client.http.post("/v1/messages", headers={
        "authorization": f"Bearer {key}", "content-type": "application/json"},
        body=json.dumps({"recipients": RECIPIENTS, "message": "Bulk"}))
    assert answer.status_code == 202
    accepted = json.loads(answer.body)["messages"]
    assert [m["phone_number"] for m in accepted] == RECIPIENTS
    ids = {m["id"] for m in accepted}
    assert [m["error"] for m in accepted if m["status"] == "rejected"] == []
    assert len(ids) == 1000 and all(m["status"] == "pending" for m in accepted)

    stored = list(Message.query(acct.account_id))
    per_sim = defaultdict(list)
    for m in stored:
        per_sim[(m.device_uid, m.sim_slot)].append(m.not_before or m.created_at)
    assert len(per_sim) == 8  # every SIM of every phone took a share
    for times in per_sim.values():  # within each SIM's rate (a burst that fits goes at once)
        assert busiest([(t, 1, 1, False) for t in times],
                       settings.current().pace_rate_seconds) <= PACE
    assert min(len(t) for t in per_sim.values()) >= 1000 // 8 // 2  # no SIM starved

    handed, deadline = Counter(), time.monotonic() + 180
    while sum(handed.values()) < 1000 and time.monotonic() < deadline:
        for phone in phones:  # jobs become visible at their paced time (SQS delay)
            for job in jobs.lease_from_queue(phone, 0, 10):
                handed[job["message_id"]] += 1
                assert jobs.report(phone, job["message_id"], "delivered")["result"] == "ok"
    assert set(handed) == ids and set(handed.values()) == {1}
    assert Counter(m.status for m in Message.query(acct.account_id)) == \
        Counter({"delivered": 1000})
