"""deploy/iam_eval.py decides as AWS's documented policy evaluation logic does (the rehearsal's
permission checks rest on it: tests/api/test_rehearsal.py)."""
import pytest

from deploy import iam_eval

TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/smsgw-dev-accounts"


def policy(*statements):
    return [{"Version": "2012-10-17", "Statement": list(statements)}]


def allow(action, resource, **more):
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def test_nothing_matching_is_an_implicit_deny():
    assert iam_eval.decide(policy(), "dynamodb:GetItem", TABLE) == "implicit-deny"
    assert iam_eval.decide(policy(allow("dynamodb:PutItem", TABLE)), "dynamodb:GetItem",
                           TABLE) == "implicit-deny"


def test_actions_ignore_case_resources_do_not():
    p = policy(allow("DynamoDB:getitem", TABLE))
    assert iam_eval.allows(p, "dynamodb:GetItem", TABLE)
    assert not iam_eval.allows(p, "dynamodb:GetItem", TABLE.replace("accounts", "Accounts"))


def test_wildcards_and_literal_dots():
    p = policy(allow("sqs:*Message", "arn:aws:sqs:*:*:smsgw-dev-device-*"),
               allow("s3:GetObject", "arn:aws:s3:::a.b/?.txt"))
    assert iam_eval.allows(p, "sqs:SendMessage",
                           "arn:aws:sqs:eu-west-1:123456789012:smsgw-dev-device-ab12")
    assert not iam_eval.allows(p, "sqs:SendMessageBatch",
                               "arn:aws:sqs:eu-west-1:123456789012:smsgw-dev-device-ab12")
    assert not iam_eval.allows(p, "sqs:SendMessage",
                               "arn:aws:sqs:eu-west-1:123456789012:smsgw-prod-device-ab12")
    assert iam_eval.allows(p, "s3:GetObject", "arn:aws:s3:::a.b/x.txt")
    assert not iam_eval.allows(p, "s3:GetObject", "arn:aws:s3:::aXb/x.txt")  # "." is literal
    assert not iam_eval.allows(p, "s3:GetObject", "arn:aws:s3:::a.b/xy.txt")


def test_arn_components_match_separately():
    p = policy(allow("dynamodb:Query", "arn:aws:dynamodb:*:*:table/t"))
    assert iam_eval.allows(p, "dynamodb:Query", "arn:aws:dynamodb:eu-west-1:1:table/t")
    assert not iam_eval.allows(p, "dynamodb:Query", "arn:aws:dynamodb:eu-west-1:1:table/t/index/i")
    assert not iam_eval.allows(p, "dynamodb:Query", "arn:aws:sqs:eu-west-1:1:table/t")


def test_explicit_deny_wins_and_not_elements():
    p = policy(allow("dynamodb:*", "*"),
               {"Effect": "Deny", "NotAction": ["dynamodb:GetItem"], "Resource": TABLE})
    assert iam_eval.allows(p, "dynamodb:GetItem", TABLE)
    assert iam_eval.decide(p, "dynamodb:Scan", TABLE) == "deny"
    p = policy({"Effect": "Allow", "Action": "dynamodb:Scan", "NotResource": TABLE})
    assert not iam_eval.allows(p, "dynamodb:Scan", TABLE)
    assert iam_eval.allows(p, "dynamodb:Scan", TABLE + "x")


def test_conditions():
    p = policy(allow("kms:Decrypt", "*", Condition={
        "StringEquals": {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}}))
    assert iam_eval.allows(p, "kms:Decrypt", "k", {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"})
    assert not iam_eval.allows(p, "kms:Decrypt", "k", {"kms:ViaService": "s3.eu-west-1"})
    assert not iam_eval.allows(p, "kms:Decrypt", "k")  # a missing key fails the condition
    # an unmet condition on an Allow is no match (implicit deny), not an explicit deny
    assert iam_eval.decide(p, "kms:Decrypt", "k") == "implicit-deny"
    p = policy(allow("sqs:SendMessage", "*", Condition={
        "StringNotEquals": {"aws:SourceAccount": "999"}, "BoolIfExists": {"aws:SecureTransport":
                                                                          "true"}}))
    assert iam_eval.allows(p, "sqs:SendMessage", "q")  # absent keys: negated / IfExists hold
    assert not iam_eval.allows(p, "sqs:SendMessage", "q", {"aws:SourceAccount": "999"})
    assert not iam_eval.allows(p, "sqs:SendMessage", "q", {"aws:SecureTransport": "false"})
    p = policy(allow("sqs:SendMessage", "*", Condition={
        "ArnLike": {"aws:SourceArn": "arn:aws:lambda:*:*:function:smsgw-*"}}))
    assert iam_eval.allows(p, "sqs:SendMessage", "q",
                           {"aws:SourceArn": "arn:aws:lambda:eu-west-1:1:function:smsgw-dev"})


def test_an_unknown_operator_fails_closed():
    p = policy(allow("sqs:SendMessage", "*", Condition={"IpAddress": {"aws:SourceIp": "10/8"}}))
    with pytest.raises(ValueError):
        iam_eval.allows(p, "sqs:SendMessage", "q", {"aws:SourceIp": "10.0.0.1"})
