"""Tests' short way to send one SMS on a named device through the one send command."""
from chalicelib.domain import outbox


def send(account_id: str, device, phone_number: str, text: str, **options) -> outbox.SendResult:
    return outbox.submit(account_id, outbox.SendRequest(
        device=device, phone_number=phone_number, text=text, **options))
