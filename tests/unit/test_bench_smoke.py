"""The benchmark's AWS-call counter on the real handlers (moto): counts are deterministic, so
these are exact assertions, not timings. They also keep bench/ from rotting."""
import pytest

from bench import aws_calls, awsrec, scenarios


@pytest.fixture
def bench(client):
    awsrec.install()
    try:
        yield scenarios.Fixture(history=1), scenarios.ChaliceInvoker(client)
    finally:
        awsrec.uninstall()


def _scenario(name):
    return next(sc for sc in scenarios.SCENARIOS if sc.name == name)


def test_send_sms_makes_exactly_three_aws_calls_when_warm(bench):
    fx, inv = bench
    row = aws_calls._measure_one(_scenario("send_sms"), fx, inv, repeats=2)
    assert row["ok"] and row["stable"], row
    # the paced device's slot (docs/pool.md), the message, the job
    assert row["warm"]["by_op"] == {"dynamodb.UpdateItem(devices)": 1,
                                    "dynamodb.PutItem(messages)": 1, "sqs.SendMessage": 1}
    assert row["warm"]["calls"] == 3
    # cold: the key, its account and the device are looked up first (PynamoDB's own client
    # is seen by the counter too), and the key's first use this hour is recorded
    assert row["cold"]["by_op"]["dynamodb.GetItem(api-keys)"] == 1
    assert row["cold"]["by_op"]["dynamodb.UpdateItem(api-keys)"] == 1
    assert row["cold"]["calls"] == 7


def test_send_sms_with_automatic_choice_makes_three_aws_calls_when_warm(bench):
    fx, inv = bench
    row = aws_calls._measure_one(_scenario("send_sms, automatic device choice"), fx, inv,
                                 repeats=2)
    assert row["ok"] and row["stable"], row
    assert row["warm"]["by_op"] == {"dynamodb.UpdateItem(devices)": 1,
                                    "dynamodb.PutItem(messages)": 1, "sqs.SendMessage": 1}
    assert row["goal_met"] is True
    assert row["cold"]["by_op"]["dynamodb.Query(devices)"] == 1  # the account's devices
    assert row["cold"]["by_op"]["dynamodb.BatchGetItem"] == 1  # ... their items (keys-only index)


@pytest.fixture
def exact_bench(client):
    from chalicelib.storage import tables
    awsrec.learn_indexes(tables.MODELS)
    awsrec.install(exact_units=True)
    try:
        yield scenarios.Fixture(history=1), scenarios.ChaliceInvoker(client)
    finally:
        awsrec.uninstall()


@pytest.mark.parametrize("name, wru", [
    ("send_sms", 2),  # device (pacing slot), message: no `open` entry (first_look.py)
    ("send_sms, automatic device choice", 3),  # ... and its `pool` entry
    ("device: claim 1 job (direct)", 1),  # the lease writes the message only
    ("device: heartbeat", 3),  # device, its `live` entry moved (last_seen is its key)
    ("device: jobs poll, idle (wait=1 s)", 1),  # a poll slot: no index entry rewritten
    ("device: report sent+delivered, 1 message", 1),  # the message: it never entered `open`
    # the sweeps' first look: one watermark write for the run's 23 messages, none when idle
    ("sweep: first look, 23 reported messages (one account, one run)", 1),
    ("sweep: first look, nothing new (one account, one run)", 0),
])
def test_write_units_per_action(exact_bench, name, wru):
    """Exact DynamoDB write units (bench/awsrec.py's per-index rules): these fail if a lease
    moved `open_due` again, a message sent for now entered the `open` index at its send, or an
    index projected what pacing, polls or heartbeats change."""
    fx, inv = exact_bench
    row = aws_calls._measure_one(_scenario(name), fx, inv, repeats=1)
    assert row["ok"], row
    assert row["warm"]["wru"] == wru, row["warm"]


def test_awsrec_counts_index_writes_by_projection():
    awsrec.GSI_KEY_SETS["t"] = [{"a"}, {"a"}, {"a"}]
    awsrec.GSI_PROJECTED["t"] = [None, set(), {"x"}]  # ALL, KEYS_ONLY, INCLUDE x
    try:
        def units(before, after):
            return awsrec._update_units(before, after, "t")
        n = {"N": "1"}
        assert units({"a": n, "x": n}, {"a": n, "x": {"N": "2"}}) == 1 + 1 + 0 + 1
        assert units({"a": n, "y": n}, {"a": n, "y": {"N": "2"}}) == 1 + 1 + 0 + 0
        assert units({"a": n}, {"a": {"N": "2"}}) == 1 + 2 * 3  # a key moves every entry
        assert units({"a": n}, {}) == 1 + 3  # leaving the sparse indexes
        assert units({"a": n, "y": n}, {"a": n, "y": n}) == 1  # nothing changed
    finally:
        del awsrec.GSI_KEY_SETS["t"], awsrec.GSI_PROJECTED["t"]


def test_check_status_makes_at_most_two_aws_calls_when_warm(bench):
    fx, inv = bench
    row = aws_calls._measure_one(_scenario("check_status"), fx, inv, repeats=2)
    assert row["ok"] and row["stable"], row
    assert row["warm"]["calls"] <= 2
    assert row["goal_met"] is True


def test_get_history_reads_in_proportion_to_limit(bench):
    fx, inv = bench
    small = aws_calls._measure_one(_scenario("get_history limit=1"), fx, inv, repeats=1)
    assert small["ok"] and small["warm"]["calls"] <= 2
    assert small["warm"]["items_read"] <= 2  # one per kind (outgoing, incoming) at most
