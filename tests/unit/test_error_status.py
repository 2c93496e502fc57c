"""Every HTTP surface answers a domain error with the status its class carries
(core/errors.py), subclasses included: a named send refused by pacing is 429 with its retry
time on the SMSGate client API too, not a 400 (its old by-name table missed subclasses)."""
import json

from chalicelib.core.errors import BadRequest, GatewayError, NotFound, Unavailable
from chalicelib.domain import pacing
from chalicelib.surfaces.smsgate import thirdparty_request


def test_subclasses_keep_their_family_status_on_the_smsgate_client_api():
    status, _, body = thirdparty_request.error_answer(pacing.AtCapacity(free_at=61_000,
                                                                        now=1_000))
    assert status == 429 and json.loads(body)["data"]["retryAfter"] == 60
    assert thirdparty_request.error_answer(pacing.Busy("try again", retry_after=1))[0] == 503


def test_each_family_has_its_status_and_others_are_400():
    assert (BadRequest("x").http_status, NotFound("x").http_status,
            Unavailable("x").http_status, GatewayError("x").http_status) == (400, 404, 503, 400)
