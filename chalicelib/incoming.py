"""SMS a device received, pushed to the gateway and kept for get_history(type=incoming).

A device may push the same SMS twice (it retries after a lost answer), so each is claimed in the
Idempotency table under `in#<device_uid>#<device_message_id>` in the same transaction that stores
it: stored once, and a repeat answers with the id it got the first time.
"""
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib import clock, ids, messages, settings
from chalicelib.errors import Conflict
from chalicelib.tables import Device, Idempotency, IncomingMessage


def sender(raw: str) -> str:
    """E.164 when the sender is a phone number; otherwise (a short code, 'BANK') as given."""
    import phonenumbers  # on first use: cold starts that parse no number skip its ~11 ms

    text = raw.strip()
    try:
        number = phonenumbers.parse(text, settings.DEFAULT_REGION)
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return text


def store(device: Device, device_message_id: str, phone_number: str, text: str,
          sim_slot: int | None, received_at: int) -> tuple[int, bool]:
    """Store one received SMS once. Returns (message_id, stored_now)."""
    now = clock.now_ms()
    key = f"in#{device.device_uid}#{device_message_id}"
    for _ in range(5):
        message_id = ids.new_message_id()
        item = IncomingMessage(
            account_id=device.account_id, message_id=message_id, device_uid=device.device_uid,
            device_id=device.device_id, device_message_id=device_message_id,
            phone_number=sender(phone_number), body=text, sim_slot=sim_slot,
            received_at=received_at, created_at=now,
            retain_until=clock.at(now + settings.RETENTION_DAYS * 86400 * 1000))
        claim = Idempotency(key=key, message_id=message_id, created_at=now,
                            expires=clock.at(now + settings.IDEMPOTENCY_SECONDS * 1000))
        try:
            with TransactWrite(connection=messages._transaction_connection()) as tx:
                tx.save(claim, condition=Idempotency.key.does_not_exist()
                        | (Idempotency.expires < clock.at(now)))
                tx.save(item, condition=IncomingMessage.message_id.does_not_exist())
        except TransactWriteError as error:
            reasons = [r.code if r else None for r in (error.cancellation_reasons or [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return Idempotency.get(key, consistent_read=True).message_id, False
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                continue
            raise
        return message_id, True
    raise Conflict("Could not allocate a message id; retry.", retry_after=1)
