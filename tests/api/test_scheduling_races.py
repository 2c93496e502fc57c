"""A scheduled message paced at release (domain/scheduling.py) raced by its sender's cancel and
the phone's poll, in real threads: the release writes only while the message is pending with
the open_due it read, the cancel only while pending and never leased, the lease only while
pending. Whatever the interleaving: either it is cancelled and no phone ever gets it, or a
phone leased it and the cancel is refused; never both, never lost."""
import random
import threading
import time

from chalicelib.core import clock
from chalicelib.domain import devices, jobs, messages, pool, sweeps
from chalicelib.storage.tables import Message
from tests.api.test_rest_v1 import NUMBERS, queued


def _race(account_id, device, message):
    outcome, start = {}, threading.Barrier(3)

    def cancel():  # a little later now and then, so every order happens over the loop
        start.wait()
        time.sleep(random.random() * 0.08)
        try:
            outcome["cancel"] = messages.cancel(account_id, message.message_id).status
        except Exception as error:  # noqa: BLE001 (the Conflict is the outcome)
            outcome["cancel"] = getattr(error, "code", repr(error))

    def release():
        start.wait()
        outcome["release"] = sweeps.settle(message, clock.now_ms())

    def lease():  # polls until the other two are done, as a phone on a short interval
        start.wait()
        handed = []
        while not handed and ("cancel" not in outcome or "release" not in outcome):
            handed = [j["message_id"] for j in jobs.lease_from_queue(device, 0, 10)]
        handed = handed or [j["message_id"] for j in jobs.lease_from_queue(device, 0, 10)]
        outcome["lease"] = "leased" if handed == [message.message_id] else "none"
    threads = [threading.Thread(target=f) for f in (cancel, release, lease)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return outcome


def test_cancel_racing_the_release_and_a_poll(v1, account, atomic_moto):  # noqa: F811
    acct, _, device, _ = account
    clock.freeze()
    t0 = clock.now_ms() // 60000 * 60000
    clock.freeze(t0)
    devices.heartbeat(device, "running")
    pool.set_device_pace(acct.account_id, "1", 60)
    send_at = t0 + 3 * 3600 * 1000
    made = v1("POST", "/v1/messages", {
        "recipients": NUMBERS[:10], "message": "Later", "device_id": 1, "sim_slot": 1,
        "send_at": clock.fmt(send_at).replace(" ", "T") + "Z"})[1]["messages"]
    seen = set()
    for n, made_one in enumerate(made):
        clock.freeze(send_at + n * 60000)  # its slot (a minute apart): visible once released
        message = Message.get(acct.account_id, made_one["id"], consistent_read=True)
        assert message.pace_at_release
        outcome = _race(acct.account_id, device, message)
        final = Message.get(acct.account_id, message.message_id, consistent_read=True)
        if outcome["cancel"] == "cancelled":
            assert outcome["lease"] == "none" and final.status == "cancelled", outcome
        else:
            assert outcome["cancel"] == "not_cancellable" and outcome["lease"] == "leased"
            assert final.status == "processing", outcome
        seen.add((outcome["cancel"], outcome["release"]))
        # later polls never hand out a cancelled message
        handed = jobs.lease_from_queue(device, 0, 10)
        assert message.message_id not in [j["message_id"] for j in handed]
    assert queued(device) == []
    print("outcomes seen:", sorted(seen))
