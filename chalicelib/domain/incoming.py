"""SMS a device received, pushed to the gateway and kept for get_history(type=incoming).

A device may push the same SMS twice (it retries after a lost answer), so each is claimed in the
Idempotency table under `in#<device_uid>#<device_message_id>` in the same transaction that stores
it: stored once, and a repeat answers with the id it got the first time.
"""
import logging

from chalicelib.core import clock, settings
from chalicelib.domain import devices
from chalicelib.storage import records
from chalicelib.storage.tables import Device, IncomingMessage

log = logging.getLogger("smsgw")


def sender(raw: str) -> str:
    """E.164 when the sender is a phone number; otherwise (a short code, 'BANK') as given."""
    import phonenumbers  # on first use: cold starts that parse no number skip its ~11 ms

    text = raw.strip()
    try:
        number = phonenumbers.parse(text, settings.current().default_region)
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return text


def store(device: Device, device_message_id: str, phone_number: str, text: str,
          sim_slot: int | None, received_at: int) -> tuple[int, bool]:
    """Store one received SMS once. Returns (message_id, stored_now)."""
    now = clock.now_ms()

    def make(message_id):
        return IncomingMessage(
            account_id=device.account_id, message_id=message_id, device_uid=device.device_uid,
            device_id=device.device_id, device_message_id=device_message_id,
            phone_number=sender(phone_number), body=text, sim_slot=sim_slot,
            received_at=received_at, created_at=now,
            retain_until=clock.at(now + settings.current().retention_days * 86400 * 1000))

    try:  # stored only while the device exists: a removed device's token stores nothing
        item, first_id = records.save_new(
            make, f"in#{device.device_uid}#{device_message_id}",
            require=(Device, device.device_uid, Device.device_uid.exists()))
    except records.RequirementFailed:
        devices.removed(device)
    # STOP and START (docs/opt-outs.md); a repeat too, in case the first push failed after its
    # store: a choice already recorded is not recorded again.
    from chalicelib.domain import opt_outs
    reply = opt_outs.on_incoming(device, sender(phone_number), text)
    if reply:
        _confirm(device, sender(phone_number), reply)
    return (item.message_id, True) if item else (first_id, False)


def _confirm(device: Device, number: str, reply: str) -> None:
    """The owner's confirmation of an opt-out, through the phone that received the STOP."""
    from chalicelib.domain import outbox
    try:
        outbox.submit(device.account_id, outbox.SendRequest(
            phone_number=number, text=reply, device=device, despite_opt_out=True))
    except Exception:  # the STOP is recorded whatever becomes of the courtesy reply
        log.warning("could not send the opt-out confirmation to %s", number, exc_info=True)
