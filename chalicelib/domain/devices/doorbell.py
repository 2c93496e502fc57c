"""The SMSGate app's wake-up when GET /mobile/v1/events holds (SMSGW_MOBILE_EVENTS_HOLD_SECONDS
> 0): a long poll of the device's own queue that only looks. The job is received with a
visibility timeout of 0, so it stays visible for the app's GET /message, which leases it the one
way jobs are leased (jobs.lease_received). The hold takes one of the device's poll slots, as a
job poll does, so one token cannot hold more than MAX_LIVE_POLLS Lambdas."""
from chalicelib.domain import devices
from chalicelib.storage import aws
from chalicelib.storage.tables import Device


def wait(device: Device, seconds: int) -> bool:
    """True as soon as a job is waiting on the device's queue; False after `seconds`."""
    lease = devices.start_poll(device, seconds)
    try:
        answer = aws.sqs().receive_message(QueueUrl=device.queue_url, MaxNumberOfMessages=1,
                                           WaitTimeSeconds=seconds, VisibilityTimeout=0)
    except Exception as exc:
        if aws.queue_missing(exc):  # removed while its token was cached
            devices.removed(device)
        raise
    finally:
        devices.end_poll(device, lease)
    return bool(answer.get("Messages"))
