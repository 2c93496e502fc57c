"""One translation of message states between our lifecycle and SMSGate's, shared by both
SMSGate faces (the app's device API and the client API), so they can never disagree.

SMSGate's `ProcessingState` (per message and per recipient; the server's models.go, the app's
domain/ProcessingState.kt, client-go's ProcessingState): Pending, Cancelling, Cancelled,
Processed, Sent, Delivered, Failed. Ours: pending, processing, sent, delivered, failed, expired,
cancelled. SMSGate has no expired state: ours is `Failed`, with our reason as the error. Our
`cancelling` mark (a cancel asked of a message an app phone holds, waiting for the phone to
confirm) shows as `Cancelling`.
"""
from enum import StrEnum

from chalicelib.domain.messages import Status


class State(StrEnum):
    """SMSGate's ProcessingState: the only place this gateway spells its names."""
    PENDING = "Pending"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"
    PROCESSED = "Processed"
    SENT = "Sent"
    DELIVERED = "Delivered"
    FAILED = "Failed"


TO_SMSGATE = {
    Status.PENDING: State.PENDING,
    Status.PROCESSING: State.PROCESSED,
    Status.SENT: State.SENT,
    Status.DELIVERED: State.DELIVERED,
    Status.FAILED: State.FAILED,
    Status.EXPIRED: State.FAILED,
    Status.CANCELLED: State.CANCELLED,
}
STATES = tuple(State)

# What a state the app reports means for us; `Pending` changes nothing (the app has not
# taken the message yet), so it has no entry.
FROM_SMSGATE = {
    State.PROCESSED: Status.PROCESSING,
    State.SENT: Status.SENT,
    State.DELIVERED: Status.DELIVERED,
    State.FAILED: Status.FAILED,
    # The app cancelled it (its own cancel, or ours confirmed): it will not send it.
    State.CANCELLED: Status.CANCELLED,
}
# When a message entered each state, as SMSGate's `states` history shows it: our field.
STAMPS = ((State.PENDING, "created_at"), (State.PROCESSED, "leased_at"),
          (State.SENT, "processed_at"), (State.DELIVERED, "delivered_at"),
          (State.FAILED, "failed_at"))


def to_smsgate(status: str, cancelling: bool = False) -> State:
    """Our status as SMSGate's state; `cancelling`: a cancel waits for the phone's answer."""
    if cancelling and status == Status.PROCESSING:
        return State.CANCELLING
    return TO_SMSGATE[status]


def from_smsgate(state: str) -> Status | None:
    """The status an SMSGate state moves a message to; None for `Pending` (no change).
    Raises KeyError for a state SMSGate does not have (the surface answers 400)."""
    if state == State.PENDING:
        return None
    return FROM_SMSGATE[state]


def message_state(recipient_states) -> State:
    """SMSGate's state of a message from its recipients' SMSGate states, by the app's rule
    (MessageWithRecipients.kt `state`): Pending if any is, then Cancelling, Cancelled,
    Processed if any is; Failed if all failed, Delivered if all were delivered; else Sent."""
    found = list(recipient_states)
    for state in (State.PENDING, State.CANCELLING, State.CANCELLED, State.PROCESSED):
        if state in found:
            return state
    for state in (State.FAILED, State.DELIVERED):
        if found and all(s == state for s in found):
            return state
    return State.SENT


def group_state(statuses) -> State:
    """SMSGate's state of a message from its recipients' statuses (ours)."""
    return message_state(to_smsgate(s) for s in statuses)
