"""Direct polling: credentials that let one device long-poll its own SQS queue without Lambda.

A phone long-polling GET /device/jobs keeps a Lambda running (and billed) for every second it
waits. In direct mode the device waits on SQS itself, with temporary credentials from STS
AssumeRole on the stage's device role (SMSGW_DEVICE_ROLE_ARN) narrowed by a session policy to
sqs:ReceiveMessage on this device's queue alone: the effective permissions are the intersection
of the role's policy and the session policy. It then claims what it received through
POST /device/claims, which leases each job exactly as GET /device/jobs does
(jobs.lease_received), and reports as before. The device can neither delete, send nor read
another queue.
"""
import json
import os
from urllib.parse import urlparse

from chalicelib.core import settings
from chalicelib.core.errors import Conflict
from chalicelib.storage import aws
from chalicelib.storage.tables import Device

DEVICE_ACTIONS = ["sqs:ReceiveMessage"]


def queue_arn(queue_url: str, partition: str = "aws") -> str:
    """ARN of a queue from its URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`)."""
    account, name = urlparse(queue_url).path.strip("/").split("/")[-2:]
    return f"arn:{partition}:sqs:{settings.current().region}:{account}:{name}"


def session_policy(device: Device, role_arn: str) -> dict:
    """The session policy for one device: receive from its own queue, nothing else."""
    partition = role_arn.split(":")[1] if role_arn.count(":") >= 5 else "aws"
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": DEVICE_ACTIONS,
         "Resource": queue_arn(device.queue_url, partition)}]}


def credentials(device: Device) -> dict:
    """Temporary credentials for `device` (one STS AssumeRole call)."""
    role_arn = settings.current().device_role_arn
    if not role_arn:
        raise Conflict("Direct polling is not enabled on this stage (SMSGW_DEVICE_ROLE_ARN is "
                       "not set): poll GET /device/jobs.", None, code="direct_polling_disabled")
    answer = aws.sts().assume_role(
        RoleArn=role_arn, RoleSessionName=device.device_uid,
        DurationSeconds=settings.current().device_credentials_seconds,
        Policy=json.dumps(session_policy(device, role_arn), separators=(",", ":")))
    granted = answer["Credentials"]
    return {"access_key_id": granted["AccessKeyId"],
            "secret_access_key": granted["SecretAccessKey"],
            "session_token": granted["SessionToken"],
            "expiration": int(granted["Expiration"].timestamp() * 1000),
            "queue_url": device.queue_url,
            "region": settings.current().region,
            # Only where the gateway itself talks to a stand-in for AWS (the local gateway).
            "endpoint_url": os.environ.get("AWS_ENDPOINT_URL_SQS")
            or os.environ.get("AWS_ENDPOINT_URL") or None,
            "lease_seconds": settings.current().lease_seconds,
            "wait_seconds": settings.current().max_poll_wait_seconds}
