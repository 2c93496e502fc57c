"""Lazily created AWS clients shared by warm invocations, with botocore's standard retries.

Nothing is created at import time: a cold start pays only for what its request uses.
"""
import functools

import boto3
from botocore.config import Config

from chalicelib.core import settings

RETRY_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"},
                      connect_timeout=3, read_timeout=25)


@functools.cache
def sqs():
    return boto3.session.Session().client("sqs", region_name=settings.current().region,
                                          config=RETRY_CONFIG)


@functools.cache
def ssm():
    return boto3.session.Session().client("ssm", region_name=settings.current().region,
                                          config=RETRY_CONFIG)


@functools.cache
def sts():
    """STS at the regional endpoint (botocore's default), for device credentials."""
    return boto3.session.Session().client("sts", region_name=settings.current().region,
                                          config=RETRY_CONFIG)


@functools.cache
def ses():
    """SES v2, for alert mails (chalicelib/domain/insight/alerts.py)."""
    return boto3.session.Session().client("sesv2", region_name=settings.current().region,
                                          config=RETRY_CONFIG)


def reset() -> None:
    """Forget cached clients (tests switch moto backends between cases)."""
    sqs.cache_clear()
    ssm.cache_clear()
    sts.cache_clear()
    ses.cache_clear()


QUEUE_MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def queue_missing(exc: BaseException) -> bool:
    """True if `exc` says the SQS queue does not exist (its device was removed)."""
    response = getattr(exc, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in QUEUE_MISSING
