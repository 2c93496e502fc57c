"""One translation of message states between our lifecycle and SMSGate's, shared by both
SMSGate faces (the app's device API and the client API), so they can never disagree.

SMSGate's `ProcessingState` (per message and per recipient; the server's models.go, the app's
domain/ProcessingState.kt, client-go's ProcessingState): Pending, Cancelling, Cancelled,
Processed, Sent, Delivered, Failed. Ours: pending, processing, sent, delivered, failed, expired,
cancelled. SMSGate has no expired state: ours is `Failed`, with our reason as the error. Our
`cancelling` mark (a cancel asked of a message an app phone holds, waiting for the phone to
confirm) shows as `Cancelling`.
"""
TO_SMSGATE = {
    "pending": "Pending",
    "processing": "Processed",
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
    "expired": "Failed",
    "cancelled": "Cancelled",
}
STATES = ("Pending", "Cancelling", "Cancelled", "Processed", "Sent", "Delivered", "Failed")

# What a state the app reports means for us; `Pending` changes nothing (the app has not
# taken the message yet), so it has no entry.
FROM_SMSGATE = {
    "Processed": "processing",
    "Sent": "sent",
    "Delivered": "delivered",
    "Failed": "failed",
    # The app cancelled it (its own cancel, or ours confirmed): it will not send it.
    "Cancelled": "cancelled",
}


def to_smsgate(status: str, cancelling: bool = False) -> str:
    """Our status as SMSGate's state; `cancelling`: a cancel waits for the phone's answer."""
    if cancelling and status == "processing":
        return "Cancelling"
    return TO_SMSGATE[status]


def from_smsgate(state: str) -> str | None:
    """The status an SMSGate state moves a message to; None for `Pending` (no change).
    Raises KeyError for a state SMSGate does not have (the surface answers 400)."""
    if state == "Pending":
        return None
    return FROM_SMSGATE[state]


def message_state(recipient_states) -> str:
    """SMSGate's state of a message from its recipients' SMSGate states, by the app's rule
    (MessageWithRecipients.kt `state`): Pending if any is, then Cancelling, Cancelled,
    Processed if any is; Failed if all failed, Delivered if all were delivered; else Sent."""
    found = list(recipient_states)
    for state in ("Pending", "Cancelling", "Cancelled", "Processed"):
        if state in found:
            return state
    for state in ("Failed", "Delivered"):
        if found and all(s == state for s in found):
            return state
    return "Sent"


def group_state(statuses) -> str:
    """SMSGate's state of a message from its recipients' statuses (ours)."""
    return message_state(to_smsgate(s) for s in statuses)
