"""A 1,000-recipient v1 send without a named device, through the real handlers: spread over the
account's pool of running phones at each SIM's pace, one message per recipient, and every one
handed to a phone once and delivered once when the phones drain their queues."""
import json
import time
from collections import Counter, defaultdict

from chalicelib.domain import devices, jobs, pacing, pool
from chalicelib.storage.tables import Message

RECIPIENTS = [f"+4917{n:09d}" for n in range(1000)]
PACE = 36000  # segments per hour per SIM: 100 ms apart, so the test drains in seconds


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
    assert len(ids) == 1000 and all(m["status"] == "pending" for m in accepted)

    stored = list(Message.query(acct.account_id))
    per_sim = defaultdict(list)
    for m in stored:
        per_sim[(m.device_uid, m.sim_slot)].append(m.not_before or m.created_at)
    assert len(per_sim) == 8  # every SIM of every phone took a share
    interval = pacing.interval_ms(devices.resolve(acct.account_id, "1"))
    for times in per_sim.values():  # at the SIM's pace: n messages span n - 1 intervals
        # (a message whose slot passed before it was written goes at once: ms of jitter)
        assert max(times) - min(times) >= (len(times) - 1) * interval - 200
    assert min(len(t) for t in per_sim.values()) >= 1000 // 8 // 2  # no SIM starved

    handed, deadline = Counter(), time.monotonic() + 180
    while sum(handed.values()) < 1000 and time.monotonic() < deadline:
        for phone in phones:  # jobs become visible at their paced time (SQS delay)
            for job in jobs.fetch(phone, 0, 10):
                handed[job["message_id"]] += 1
                assert jobs.report(phone, job["message_id"], "delivered")["result"] == "ok"
    assert set(handed) == ids and set(handed.values()) == {1}
    assert Counter(m.status for m in Message.query(acct.account_id)) == \
        Counter({"delivered": 1000})
