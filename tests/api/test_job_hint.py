"""The app phone's "jobs may be waiting" hint (domain/devices/job_hint.py) on moto: an idle
pull makes no SQS call, only app phones' sends ring it, and no job is missed whatever the order
in which a send's queue write and ring land between a pull's read, receive and clear (real
threads)."""
import threading

import botocore.client
import pytest

from chalicelib.core import clock
from chalicelib.domain import devices, jobs, messages
from chalicelib.domain.devices import app_phones, job_hint
from chalicelib.storage.tables import Device, Message
from tests import sending

PHONE = "+8801712345678"


@pytest.fixture
def app_device(account):
    acct = account[0]
    device, _ = app_phones.register_with_token(app_phones.make_token(acct.account_id),
                                               "Hint", 1, "1.68.0", "127.0.0.1")
    return acct, Device.get(device.device_uid)


def send(acct, device, text="Hello", **extra):
    return sending.send(acct.account_id, device, PHONE, text, **extra).message.message_id


def ops(aws_calls, since=0):
    """(operation, table or queue) of the calls recorded after `since`."""
    return [(op, "sqs" if service == "sqs" else params.get("TableName", "").rsplit("-", 1)[-1])
            for service, op, params in aws_calls.requests[since:]]


def test_an_idle_pull_asks_sqs_nothing_until_a_job_is_queued(app_device, aws_calls):
    acct, device = app_device
    start = len(aws_calls.requests)
    assert jobs.lease_if_hinted(device, 10) == []
    assert ops(aws_calls, start) == [("GetItem", "devices")]  # one consistent read, no SQS
    message_id = send(acct, device)
    assert [job["message_id"] for job in jobs.lease_if_hinted(device, 10)] == [message_id]
    start = len(aws_calls.requests)
    assert jobs.lease_if_hinted(device, 10) == []  # the jobs were taken: one empty receive clears
    assert ops(aws_calls, start) == [("GetItem", "devices"), ("ReceiveMessage", "sqs"),
                                     ("UpdateItem", "devices")]
    start = len(aws_calls.requests)
    assert jobs.lease_if_hinted(device, 10) == []
    assert ops(aws_calls, start) == [("GetItem", "devices")]


def test_only_app_phones_sends_ring(app_device, account, aws_calls):
    """The agent's warm send path is what it was (PutItem, SendMessage); an app phone's adds
    exactly one UpdateItem of its device, after the SendMessage. (A container's first send
    reads the account's opt-out list once per AUTH_CACHE_SECONDS: warmed here.)"""
    acct, app = app_device
    agent = account[2]
    send(acct, agent, text="warm")
    start = len(aws_calls.requests)
    send(acct, agent)
    agent_ops = ops(aws_calls, start)
    start = len(aws_calls.requests)
    send(acct, app)
    app_ops = ops(aws_calls, start)
    assert agent_ops == [("PutItem", "messages"), ("SendMessage", "sqs")]
    assert app_ops == agent_ops + [("UpdateItem", "devices")]
    assert Device.get(agent.device_uid).jobs_rung is None


def test_a_clear_older_than_a_ring_fails_and_leaves_the_hint_set(app_device):
    acct, device = app_device
    send(acct, device)
    rung = job_hint.look(device)
    send(acct, device)  # a ring between the pull's read and its clear
    assert job_hint.clear(device, rung) is False
    assert job_hint.look(device) == rung + 1


def test_a_delayed_job_keeps_the_hint_until_it_shows(app_device):
    """An empty receive before a paced or scheduled job's DelaySeconds end must not clear its
    hint."""
    acct, device = app_device
    first = send(acct, device)
    second = send(acct, device, send_at=clock.now_ms() + 60_000)  # hidden a minute on SQS
    assert [job["message_id"] for job in jobs.lease_if_hinted(device, 10)] == [first]
    assert jobs.lease_if_hinted(device, 10) == []  # the second is hidden: nothing received...
    assert job_hint.look(device) is not None  # ...and the hint stays
    until = Device.get(device.device_uid).jobs_until
    assert until >= Message.get(acct.account_id, second).not_before + job_hint.VISIBLE_MARGIN_MS
    clock.freeze(until - 1)
    assert job_hint.clear(device, job_hint.look(device)) is False
    clock.freeze(until)
    assert job_hint.clear(device, job_hint.look(device)) is True
    assert job_hint.look(device) is None


def _pause_in(monkeypatch, operation, reached, proceed):
    """Stop the first `operation` call made on a thread named 'sender' until `proceed`."""
    original = botocore.client.BaseClient._make_api_call

    def call(self, name, params):
        if name == operation and threading.current_thread().name == "sender" \
                and not reached.is_set():
            reached.set()
            assert proceed.wait(10)
        return original(self, name, params)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", call)


def _drain(device) -> list[int]:
    """Pulls as the app makes them once sends stop, obeying the hint, until it is clear."""
    taken = []
    for _ in range(5):
        taken += [job["message_id"] for job in jobs.lease_if_hinted(device, 10)]
        if job_hint.look(device) is None:
            return taken
    raise AssertionError("the hint never cleared")


@pytest.mark.parametrize("pause_at", ["SendMessage", "UpdateItem"])
def test_a_pull_inside_a_send_misses_nothing(app_device, monkeypatch, atomic_moto, pause_at):
    """A whole pull (read, receive, clear) runs while the send is stopped before its queue
    write, or between its queue write and its ring, on a phone whose hint was set (an earlier
    job taken): the job is taken by that pull or by the next ones."""
    acct, device = app_device
    send(acct, device)
    taken = [job["message_id"] for job in jobs.lease_if_hinted(device, 10)]
    reached, proceed, sent = threading.Event(), threading.Event(), []
    _pause_in(monkeypatch, pause_at, reached, proceed)
    sender = threading.Thread(target=lambda: sent.append(send(acct, device)), name="sender")
    sender.start()
    assert reached.wait(10)
    taken += [job["message_id"] for job in jobs.lease_if_hinted(device, 10)]
    proceed.set()
    sender.join()
    taken += _drain(device)
    assert sent[0] in taken and len(taken) == len(set(taken)) == 2


def test_racing_sends_and_idle_pulls_never_miss_a_job(app_device, monkeypatch, atomic_moto):
    """Real threads: in each round one sender sends while two pullers pull in a loop; once the
    sender is done, pulls obeying the hint must take every job sent (the last send of a round
    is the one a lost ring would strand: no later send rings for it)."""
    monkeypatch.setattr(job_hint, "RECEIVE_SECONDS", 0)  # moto has no servers to sample
    acct, device = app_device
    sent, taken, lock = [], [], threading.Lock()
    for _ in range(25):
        done = threading.Event()

        def sender(done=done):
            for _ in range(2):
                sent.append(send(acct, device))
            done.set()

        def puller(done=done):
            while True:
                finished = done.is_set()
                got = [job["message_id"] for job in jobs.lease_if_hinted(device, 10)]
                with lock:
                    taken.extend(got)
                if finished:
                    return

        threads = [threading.Thread(target=sender)] + [threading.Thread(target=puller)
                                                       for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        taken.extend(_drain(device))
        assert set(sent) <= set(taken), sorted(set(sent) - set(taken))
    assert len(taken) == len(set(taken)) == len(sent) == 50
    devices.forget_cached()


def test_a_failed_queue_write_rings_when_the_sweep_queues_it_again(app_device, monkeypatch):
    """The send's SendMessage fails: no ring (nothing is on the queue), the message stays
    pending; the outbox sweep's enqueue (as the pool's move and a scheduled release) rings."""
    from botocore.exceptions import ClientError
    acct, device = app_device
    original = botocore.client.BaseClient._make_api_call

    def failing(self, name, params):
        if name == "SendMessage":
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, name)
        return original(self, name, params)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", failing)
    accepted = sending.send(acct.account_id, device, PHONE, "Hello")
    assert accepted.queued is False and job_hint.look(device) is None
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", original)
    message = Message.get(acct.account_id, accepted.message.message_id)
    assert messages.enqueue(device, message, message.body) is True
    assert [job["message_id"] for job in jobs.lease_if_hinted(device, 10)] == [message.message_id]
