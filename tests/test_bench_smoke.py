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
