"""Phone numbers in, E.164 out, through Google's libphonenumber port.

`phonenumbers` is imported on first use (~11 ms): a cold container whose first request needs no
phone number (device polls, status, history) does not pay for it.
"""
from chalicelib.core import settings
from chalicelib.core.errors import BadRequest


def normalise(raw: str, parameter: str = "phone_number") -> str:
    text = (raw or "").strip()
    if raw and raw[0] == " " and text[:1].isdigit():
        # An unencoded '+' in a form body (curl -d "phone_number=+880...", as the reference's
        # own example sends it) arrives as a space: restore it.
        text = "+" + text
    if not text:
        raise BadRequest(f"Missing required parameter: {parameter}.", parameter)
    if len(text) > 32:
        raise BadRequest(f"Invalid {parameter}: too long.", parameter)
    import phonenumbers

    region = settings.current().default_region
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        hint = "" if region else " Write it in international form, e.g. +8801712345678."
        raise BadRequest(f"Invalid {parameter}: '{text}' is not a phone number.{hint}", parameter)
    if not phonenumbers.is_valid_number(number):
        raise BadRequest(f"Invalid {parameter}: '{text}' is not a valid phone number.", parameter)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
