"""The OTP guess cap under concurrency (issue 14): at most OTP_MAX_TRIES guesses per code are ever
compared, for real threads against moto and for every interleaving a scheduler can pick."""
import json
import random
import re
import threading
from collections import Counter

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core import settings as gateway_settings
from chalicelib.core.errors import InvalidOtp, RateLimited
from chalicelib.domain import otp
from chalicelib.storage.tables import Otp

NUMBER = "+8801712345678"


def _issue(acct, device, length):
    otp.send(acct.account_id, device, NUMBER, length=length)
    sqs = boto3.client("sqs", region_name=gateway_settings.current().region)
    got = sqs.receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=10,
                              VisibilityTimeout=600)["Messages"]
    [job] = [json.loads(m["Body"]) for m in got]
    return re.fullmatch(rf"Your verification code is (\d{{{length}}})\. .*", job["message"])[1]


def _tries(acct) -> int:
    return Otp.get(f"{acct.account_id}#{NUMBER}", consistent_read=True).tries


@pytest.fixture
def compares(monkeypatch):
    """Counts every comparison of a guess with a stored code (otp._matches), across threads."""
    counted = Counter()
    lock = threading.Lock()
    original = getattr(otp, "_matches", None)  # absent before issue 14: nothing to count

    def counting(stored, guess):
        with lock:
            counted["compared"] += 1
        return original(stored, guess)
    monkeypatch.setattr(otp, "_matches", counting, raising=False)
    return counted


def _verdict(fn):
    try:
        fn()
        return "ok"
    except (InvalidOtp, RateLimited) as error:
        return error.code


def breadth_first(waiting, made):
    """The issue's attack as a schedule: every guess makes its first call before any makes a
    second (all compare before any is counted, in the two-write design)."""
    return min(range(len(waiting)), key=lambda i: made[waiting[i]])


def _guess_all(acct, scheduler, guesses):
    verdicts = {}
    scheduler.run([lambda i=i, g=g: verdicts.__setitem__(
        i, _verdict(lambda: otp.verify(acct.account_id, NUMBER, g)))
        for i, g in enumerate(guesses)])
    return verdicts


def test_all_at_once_schedule_cannot_reach_the_right_code(monkeypatch, account, compares):
    """Deterministic worst case: 99 wrong codes, then the right one, each making its first
    DynamoDB call before any guess makes a second. The two-write design accepted the code here
    after comparing all 100 guesses."""
    acct, _, device, _ = account
    code = _issue(acct, device, 4)
    guesses = [f"{(int(code) + k) % 10_000:04d}" for k in range(1, 100)] + [code]
    verdicts = _guess_all(acct, Scheduler(monkeypatch, breadth_first), guesses)
    max_tries = gateway_settings.current().otp_max_tries
    assert verdicts[99] == "rate_limited"
    assert Counter(verdicts.values()) == Counter(
        {"invalid_otp": max_tries, "rate_limited": 100 - max_tries})
    assert compares["compared"] == max_tries and _tries(acct) == max_tries


def test_burst_of_100_guesses_compares_at_most_the_cap(account, atomic_moto, compares):
    """The issue's attack: 99 distinct wrong 4-digit codes and the right one, shuffled, fired
    at once from 100 threads. Deterministic: however the threads interleave, exactly the cap is
    counted and at most the cap is compared."""
    acct, _, device, _ = account
    code = _issue(acct, device, 4)
    wrong = [f"{n:04d}" for n in random.Random(14).sample(range(10_000), 120) if f"{n:04d}" != code]
    guesses = wrong[:99] + [code]
    random.Random(1).shuffle(guesses)
    start = threading.Barrier(len(guesses))
    outcomes = Counter()
    lock = threading.Lock()

    def guess(value):
        start.wait()
        verdict = _verdict(lambda: otp.verify(acct.account_id, NUMBER, value))
        with lock:
            outcomes[verdict] += 1

    threads = [threading.Thread(target=guess, args=(g,)) for g in guesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    max_tries = gateway_settings.current().otp_max_tries
    assert _tries(acct) == max_tries  # every one of the cap's guesses was counted...
    assert outcomes["ok"] <= 1 and sum(outcomes.values()) == 100
    assert 1 <= compares["compared"] <= max_tries  # ...and nothing beyond them compared
    if outcomes["ok"] == 0:  # the right code was not among the counted: the code is blocked
        assert outcomes["rate_limited"] == 100 - max_tries
        with pytest.raises(RateLimited):
            otp.verify(acct.account_id, NUMBER, code)


class Scheduler:
    """Runs each guess in its own thread but lets exactly one run at a time: every AWS call is a
    step, and `choose(waiting, made)` picks which of the threads waiting at a step goes next
    (`made`: how many calls each thread has made). So any interleaving of whole AWS calls (the
    unit DynamoDB serialises) can be forced."""

    def __init__(self, monkeypatch, choose):
        import botocore.client
        self.choose = choose
        self.cv = threading.Condition()
        self.running = 0
        self.waiting = []  # (thread name, Event) waiting to make an AWS call
        self.order = []  # (thread name, operation) in the order the calls were made
        original = botocore.client.BaseClient._make_api_call
        scheduler = self

        def stepped(client, operation, params):
            name = threading.current_thread().name
            if name.startswith("guess-"):
                scheduler._step(name, operation)
            return original(client, operation, params)
        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", stepped)

    def _step(self, name, operation):
        go = threading.Event()
        with self.cv:
            self.running -= 1
            self.waiting.append((name, go))
            self.cv.notify_all()
        go.wait()
        self.order.append((name, operation))

    def run(self, jobs: list):
        threads = []
        for name, job in enumerate(jobs):
            def body(job=job):
                try:
                    job()
                finally:
                    with self.cv:
                        self.running -= 1
                        self.cv.notify_all()
            threads.append(threading.Thread(target=body, name=f"guess-{name}", daemon=True))
        self.running = len(threads)
        for t in threads:
            t.start()
        while True:
            with self.cv:
                assert self.cv.wait_for(lambda: self.running == 0, timeout=10)
                if not self.waiting:
                    break
                self.waiting.sort(key=lambda w: int(w[0].rpartition("-")[2]))  # not arrival
                made = Counter(name for name, _ in self.order)
                _, go = self.waiting.pop(self.choose([n for n, _ in self.waiting], made))
                self.running += 1
            go.set()
        for t in threads:
            t.join()


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), cap=st.integers(1, 4), n=st.integers(2, 9),
       mode=st.sampled_from(["any", "breadth_first"]))
def test_any_interleaving_compares_at_most_the_cap(monkeypatch, account, compares, data, cap, n,
                                                  mode, settings_override):
    """For any interleaving of n concurrent guesses (repeats and the right code among them):
    at most `cap` guesses are compared, the code is accepted at most once, and only if fewer
    than `cap` other distinct guesses reached DynamoDB before it."""
    acct, _, device, _ = account
    Otp(key=f"{acct.account_id}#{NUMBER}").delete()  # each example starts with no code
    code = _issue(acct, device, 6)
    pool = [code] + [f"{(int(code) + k) % 10 ** 6:06d}" for k in (1, 2, 3, 4, 5, 6)]
    guesses = data.draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)
                        .filter(lambda g: code in g), label="guesses")
    order = data.draw(st.permutations(range(n)), label="priority")
    compares.clear()

    def choose(waiting, made):
        if mode == "breadth_first":  # ties broken by the drawn priority
            return min(range(len(waiting)), key=lambda i: (
                made[waiting[i]], order.index(int(waiting[i].rpartition("-")[2]))))
        return data.draw(st.integers(0, len(waiting) - 1))

    with monkeypatch.context() as patch:
        settings_override(otp_max_tries=cap)
        scheduler = Scheduler(patch, choose)
        verdicts = _guess_all(acct, scheduler, guesses)
    accepted = [i for i, v in verdicts.items() if v == "ok"]
    assert len(accepted) <= 1
    if accepted:
        first_call = {}
        for name, _ in scheduler.order:
            first_call.setdefault(name, len(first_call))
        mine = first_call[f"guess-{accepted[0]}"]
        earlier = {guesses[int(name.rpartition("-")[2])]
                   for name, at in first_call.items() if at < mine}
        assert len(earlier - {code}) < cap, (guesses, scheduler.order)
    assert len(accepted) <= compares["compared"] <= cap
    assert _tries(acct) <= cap
