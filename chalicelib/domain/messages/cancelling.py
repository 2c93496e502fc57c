"""A cancel asked of a message a phone has already taken: only an SMSGate app phone can honour
it, because the app keeps taken messages in a local queue (its send delays and limits) and
cancels one there while it is still waiting (MessagesService.cancelMessage). As SMSGate's server
does (CancelMessage -> Cancelling, then the app answers Cancelled), the message is marked
`cancel_asked_at` and stays `processing` until the phone answers: `cancelled`, or `sent` if it
had already started (the mark then changes nothing).

The app learns of it on its next pull: a *notice*, the job again with `"cancel": true`, goes on
its queue (and rings its hint), and GET /message hands it as state Cancelling (the server's
listPending hands Pending and Cancelling messages). A notice stays on the queue, coming back each
lease period, while the message is processing with the mark, so a lost answer is repeated; once
the phone has answered, the next receive deletes it.

Races: the mark is one conditional write (processing, held by this app phone, never reported
Processed or sent, not yet asked), so two cancels mark once; a report of Processed or Sent
racing it either lands first (the mark's condition fails: 409, as SMSGate answers a message no
longer Pending) or after it (the phone sent it anyway: its report wins, as on SMSGate).
"""
import json

from pynamodb.exceptions import DoesNotExist

from chalicelib.core import clock
from chalicelib.domain.devices import job_hint
from chalicelib.storage import aws
from chalicelib.storage.tables import Device, Message, update_if


def ask(message: Message) -> Message | None:
    """Mark a message an app phone holds as asked to cancel, and notify the phone; None if it
    cannot be (not an app phone's, no longer processing, already Processed or asked)."""
    if message.status != "processing":
        return None
    try:
        device = Device.get(message.device_uid)
    except DoesNotExist:
        return None
    if device.kind != job_hint.KIND:
        return None  # an agent sends what it takes at once: nothing left to cancel
    now = clock.now_ms()
    key = Message(account_id=message.account_id, message_id=message.message_id)
    if not update_if(key, [Message.cancel_asked_at.set(now)],
                     (Message.status == "processing")
                     & (Message.device_uid == device.device_uid)
                     & Message.cancel_asked_at.does_not_exist()
                     & Message.app_processed_at.does_not_exist()):
        return None
    from chalicelib.domain import messages
    notice = {**messages.job_payload(message, message.body), "cancel": True}
    aws.sqs().send_message(QueueUrl=device.queue_url, MessageBody=json.dumps(notice))
    job_hint.ring(device)
    message.cancel_asked_at = now
    return message


def is_notice(job: dict) -> bool:
    return job.get("cancel") is True


def take_notice(device: Device, message_id: int) -> bool:
    """Whether a notice received from `device`'s queue is still to be handed (the message is
    processing, held by this phone, asked to cancel); if not, the caller deletes it."""
    try:
        current = Message.get(device.account_id, message_id, consistent_read=True)
    except DoesNotExist:
        return False
    return current.device_uid == device.device_uid and current.status == "processing" \
        and bool(current.cancel_asked_at)
