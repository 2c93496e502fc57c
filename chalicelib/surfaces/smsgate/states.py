"""One translation of message states between our lifecycle and SMSGate's, shared by both
SMSGate faces (the app's device API and the client API), so they can never disagree.

SMSGate's `ProcessingState` (per message and per recipient): Pending, Processed, Sent,
Delivered, Failed. Ours: pending, processing, sent, delivered, failed, expired, cancelled.
SMSGate has no expired or cancelled state: both are `Failed`, with our reason as the error.
"""
TO_SMSGATE = {
    "pending": "Pending",
    "processing": "Processed",
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
    "expired": "Failed",
    "cancelled": "Failed",
}

# What a state the app reports means for us; `Pending` changes nothing (the app has not
# taken the message yet), so it has no entry.
FROM_SMSGATE = {
    "Processed": "processing",
    "Sent": "sent",
    "Delivered": "delivered",
    "Failed": "failed",
    # The app's own cancel (its ProcessingState has Cancelled): it will not send the message,
    # which ends it failed for us, with "cancelled on the phone" as the reason.
    "Cancelled": "failed",
}


def to_smsgate(status: str) -> str:
    """Our status as SMSGate's state."""
    return TO_SMSGATE[status]


def from_smsgate(state: str) -> str | None:
    """The status an SMSGate state moves a message to; None for `Pending` (no change).
    Raises KeyError for a state SMSGate does not have (the surface answers 400)."""
    if state == "Pending":
        return None
    return FROM_SMSGATE[state]


# A group's state (one SMSGate message, several recipients): the least advanced recipient's,
# failed recipients aside; `Failed` only when every recipient failed.
ORDER = ("Pending", "Processed", "Sent", "Delivered")


def group_state(statuses) -> str:
    """SMSGate's state of a message from its recipients' statuses (ours)."""
    theirs = [to_smsgate(s) for s in statuses]
    going = [s for s in theirs if s != "Failed"]
    return min(going, key=ORDER.index) if going else "Failed"
