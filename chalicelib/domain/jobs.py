"""The device's side of the outbox: handing jobs out under a lease, and recording what the device
reports about them.

SQS delivers at least once and a device may die holding a job, so the message item in DynamoDB,
not the queue, decides: a job is handed out only by a conditional write that leases it
(pending -> processing, or an expired lease -> processing again), and its SQS message is deleted
only once an outcome (sent / failed) is recorded. A job nobody reports comes back when its SQS
visibility timeout (= the lease) ends and is leased again, up to MAX_ATTEMPTS times.
"""
import json
import logging

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock, settings
from chalicelib.domain import messages, pool
from chalicelib.domain.devices import job_hint
from chalicelib.domain.messages import cancelling
from chalicelib.storage import aws
from chalicelib.storage.tables import Device, Message, update_if

log = logging.getLogger("smsgw")

OUTCOMES = ("sent", "delivered", "failed")  # what an agent reports
APP_CANCELLED = "cancelled"  # only an SMSGate app phone can cancel what it took
# States from which each report may move a message (forward only; `expired` and `delivered`
# are final, and a failure after `sent` is a delivery failure).
REPORT_FROM = {"sent": ("pending", "processing"),
               "delivered": ("pending", "processing", "sent"),
               "failed": ("pending", "processing", "sent"),
               # an SMSGate app phone's own cancel, or its answer to one asked (cancelling.py)
               "cancelled": ("pending", "processing")}
# the SQS message is no longer needed in these states
QUEUE_DONE = ("sent", "delivered", "failed", "expired", "cancelled")


def _delete(queue_url: str, receipt_handle: str | None) -> None:
    """Delete one SQS message; a stale or unknown receipt handle is fine (already gone or
    received again by a later poll, which will settle it)."""
    if not receipt_handle:
        return
    try:
        aws.sqs().delete_message(QueueUrl=queue_url, ReceiptHandle=receipt_handle)
    except (ClientError, BotoCoreError) as exc:
        log.info("delete of an SQS message failed (harmless): %r", exc)


def _lease(device: Device, message_id: int, receipt_handle: str, now: int) -> str:
    """Try to lease one received job. Returns what happened: 'leased', 'skip' (someone holds a live
    lease: leave the SQS message alone) or 'drop' (settled or unknown: delete the SQS message)."""
    message = Message(account_id=device.account_id, message_id=message_id)
    lease_until = now + settings.current().lease_seconds * 1000
    leasable = (Message.device_uid == device.device_uid) & (Message.expires_at > now) & (
        Message.attempts < settings.current().max_attempts) & (
        (Message.status == "pending")
        | ((Message.status == "processing") & (Message.lease_until < now)))
    if update_if(message, [Message.status.set("processing"), Message.attempts.add(1),
                              Message.leased_at.set(now), Message.lease_until.set(lease_until),
                              # open_due stays: a lease writes only the item (the `open`
                              # index is keys only); a sweep that finds the message leased
                              # at its due looks again when the lease ends (sweeps.settle)
                              Message.receipt_handle.set(receipt_handle)], leasable):
        return "leased"
    try:
        current = Message.get(device.account_id, message_id, consistent_read=True)
    except DoesNotExist:
        return "drop"
    if current.device_uid != device.device_uid or current.status in QUEUE_DONE:
        return "drop"
    if current.expires_at <= now:
        messages.close(current, "expired", "Not sent within its validity period.",
                       presumed=current.attempts > 0 or None)
        return "drop"
    if current.status == "processing" and (current.lease_until or 0) >= now:
        return "skip"
    if current.attempts >= settings.current().max_attempts:
        messages.close(current, "failed", presumed=True, failed_at=now, reason=(
            f"The device took it {current.attempts} times without reporting a result."))
        return "drop"
    return "skip"  # changed under us; the next receive decides again


def lease_received(device: Device, message_id: int | None, receipt_handle: str) -> str:
    """Decide one SQS message received from the device's queue, whoever received it (the
    gateway's long-poll, lease_from_queue, or the device itself, lease_claimed): lease it,
    leave it ('skip') or delete it ('drop'; `message_id` None means its body was not a job).
    The one place jobs are leased, so every way of polling hands a job out on the same terms."""
    outcome = "drop" if message_id is None else _lease(device, message_id, receipt_handle,
                                                       clock.now_ms())
    if outcome == "drop":
        _delete(device.queue_url, receipt_handle)
    return outcome


def parse_job(body: str) -> dict | None:
    """The job in an SQS message body (messages.job_payload), or None if it is not one."""
    try:
        job = json.loads(body)
    except ValueError:
        return None
    if not isinstance(job, dict) or isinstance(job.get("message_id"), bool) \
            or not isinstance(job.get("message_id"), int):
        return None
    return job


def lease_from_queue(device: Device, wait_seconds: int, max_jobs: int) -> list[dict]:
    """The gateway polls for the device (GET /device/jobs): long-poll its queue and lease what
    arrives; returns the job payloads the device may send."""
    return _receive(device, wait_seconds, max_jobs)[0]


def _receive(device: Device, wait_seconds: int, max_jobs: int) -> tuple[list[dict], int]:
    """lease_from_queue(), and how many SQS messages arrived (leased or not): 0 means the queue
    had none visible (with wait_seconds >= 1, which asks every SQS server)."""
    answer = aws.sqs().receive_message(
        QueueUrl=device.queue_url, MaxNumberOfMessages=max_jobs, WaitTimeSeconds=wait_seconds,
        VisibilityTimeout=settings.current().lease_seconds)
    jobs = []
    for sqs_message in answer.get("Messages", []):
        job = parse_job(sqs_message["Body"])
        if job is None:
            log.warning("dropping a malformed job on %s", device.device_uid)
        elif cancelling.is_notice(job):  # left on the queue while still to be answered
            if cancelling.take_notice(device, job["message_id"]):
                jobs.append(job)
            else:
                _delete(device.queue_url, sqs_message["ReceiptHandle"])
            continue
        if lease_received(device, job and job["message_id"],
                          sqs_message["ReceiptHandle"]) == "leased":
            jobs.append(job)
    return jobs, len(answer.get("Messages", []))


def lease_claimed(device: Device, claims: list[tuple[int | None, str]]) -> list[dict]:
    """Direct polling (POST /device/claims): the device received these SQS messages itself, as
    (message_id or None for a body that is no job, receipt handle), and asks for their leases.
    Each is leased exactly as lease_from_queue leases; the device sends only those answered
    'leased'."""
    return [{"message_id": message_id, "result": lease_received(device, message_id,
                                                                 receipt_handle)}
            for message_id, receipt_handle in claims]


def delete_batch(queue_url: str, receipt_handles: list[str]) -> None:
    """Delete SQS messages ten per request (SQS bills a batch as one request); failures are
    harmless for the same reason as in _delete."""
    for start in range(0, len(receipt_handles), 10):
        entries = [{"Id": str(n), "ReceiptHandle": handle}
                   for n, handle in enumerate(receipt_handles[start:start + 10])]
        try:
            answer = aws.sqs().delete_message_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            log.info("batch delete of SQS messages failed (harmless): %r", exc)
            continue
        if answer.get("Failed"):
            log.info("SQS batch delete: %d not deleted (harmless)", len(answer["Failed"]))


def report(device: Device, message_id: int, outcome: str, reason: str | None = None,
           deletes: list | None = None) -> dict:
    """Record one outcome a device reports. Answers {message_id, result: ok|ignored|rejected,
    status} where `ignored` means the message is already at or past that state. With `deletes`
    (a list), the SQS receipt handle to delete is appended to it instead of deleted here, so a
    batch of reports deletes with one request (delete_batch)."""
    assert outcome in OUTCOMES or outcome == APP_CANCELLED
    now = clock.now_ms()
    message = Message(account_id=device.account_id, message_id=message_id)
    condition = Message.status.is_in(*REPORT_FROM[outcome])
    if outcome in ("sent", "delivered"):  # the phone sent it: that corrects a presumed failure
        condition = condition | (Message.status.is_in("failed", "expired")
                                 & (Message.presumed == True))  # noqa: E712
    condition = (Message.device_uid == device.device_uid) & condition
    corrected = [Message.presumed.remove(), Message.reason.remove(), Message.failed_at.remove()]
    if outcome == "sent":
        actions = [Message.status.set("sent"), Message.processed_at.set(now), *corrected]
    elif outcome == "delivered":
        actions = [Message.status.set("delivered"), Message.delivered_at.set(now),
                   Message.processed_at.set(Message.processed_at | now), *corrected]
    elif outcome == "cancelled":
        actions = [Message.status.set("cancelled"), Message.reason.set(reason)]
    else:
        actions = [Message.status.set("failed"), Message.failed_at.set(now),
                   Message.reason.set(reason)]
    # None of these states is open any more: leave the sweeps' index.
    actions += [Message.open_shard.remove(), Message.open_due.remove(), Message.pool_uid.remove()]
    if update_if(message, actions, condition):
        if outcome == "failed":
            pool.on_failure(device, message, reason)
        # The queue no longer needs the job once it left pending/processing.
        if outcome != "delivered" or message.processed_at == now:
            if outcome != "failed" or message.processed_at is None:
                if deletes is None:
                    _delete(device.queue_url, message.receipt_handle)
                elif message.receipt_handle:
                    deletes.append(message.receipt_handle)
        return {"message_id": message_id, "result": "ok", "status": message.status}
    try:
        current = Message.get(device.account_id, message_id, consistent_read=True)
    except DoesNotExist:
        current = None
    if current is None or current.device_uid != device.device_uid:
        return {"message_id": message_id, "result": "rejected", "status": None,
                "error": {"code": "not_found",
                          "message": "No such message for this device."}}
    return {"message_id": message_id, "result": "ignored", "status": current.status}


def lease_if_hinted(device: Device, max_jobs: int) -> list[dict]:
    """An SMSGate app phone's pull (GET /mobile/v1/message): lease its waiting jobs as
    lease_from_queue does, or none without asking SQS when its "jobs may be waiting" hint is
    clear (job_hint.py), so an idle phone's frequent pulls cost no SQS request; clears the hint
    after a receive that got nothing."""
    rung = job_hint.look(device)
    if rung is None:
        return []
    found, received = _receive(device, job_hint.RECEIVE_SECONDS, max_jobs)
    if not received:
        job_hint.clear(device, rung)
    return found
