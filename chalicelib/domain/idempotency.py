"""An idempotency key names one whole request, in one surface's key space.

A retry under the same key must be the same request: the request's parts (recipients, text,
options) are kept as digests under the key, and a request that differs in any of them is a
Conflict naming the parts, before anything is sent. A request whose answer was kept is
answered again from it (one read, however many recipients). Each surface has its own key space
(the compat API's keys are stored as they always were; v1's and SMSGate's carry their name and
a separator no ASCII key contains), so the same key on two surfaces names two requests.
"""
import hashlib
import json
import zlib

from pynamodb.exceptions import PutError

from chalicelib.core import clock, settings
from chalicelib.core.errors import Conflict
from chalicelib.storage.tables import Idempotency

SPACES = ("compat", "v1", "smsgate")
_SEPARATOR = "\u00a7"  # never in a key: keys are printable ASCII on every surface


def claim_key(account_id: str, key: str, space: str = "compat") -> str:
    """The stored claim of `key` (one message's, e.g. `key#3` for a bulk's fourth recipient)."""
    if space not in SPACES:
        raise ValueError(f"unknown key space {space!r}")
    if space == "compat":  # as stored since the first release: keeps retries across upgrades
        return f"{account_id}#{key}"
    return f"{account_id}#{space}{_SEPARATOR}{key}"


def _request_key(account_id: str, key: str, space: str) -> str:
    return f"{account_id}#{space}{_SEPARATOR}request{_SEPARATOR}{key}"


def _digests(parts: dict) -> dict:
    return {name: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode())
            .hexdigest()[:32] for name, value in parts.items()}


class Claim:
    """The request claimed under a key: `answer` is the kept answer (None until kept)."""

    def __init__(self, record: Idempotency, answer):
        self.record, self.answer = record, answer

    def keep(self, answer) -> None:
        """Keep the answer: a later retry gets it without sending anything."""
        self.record.update(actions=[Idempotency.answer.set(
            zlib.compress(json.dumps(answer, separators=(",", ":")).encode()))])

    def release(self) -> None:
        """Nothing was created: the key is free again (a corrected request may use it)."""
        self.record.delete(condition=Idempotency.answer.does_not_exist())


def claim(account_id: str, key: str, space: str, parts: dict) -> Claim:
    """Claim `key` for the request made of `parts` (name -> value, compared as digests).
    Returns the claim; `.answer` is set when the same request was answered before. Raises
    Conflict naming the parts that differ when the key was used for another request."""
    digests = _digests(parts)
    now = clock.now_ms()
    record = Idempotency(key=_request_key(account_id, key, space), message_id=0,
                         created_at=now, request=json.dumps(digests, sort_keys=True),
                         expires=clock.at(now + settings.current().idempotency_seconds * 1000))
    try:
        record.save(condition=Idempotency.key.does_not_exist()
                    | (Idempotency.expires < clock.at(now)))
        return Claim(record, None)
    except PutError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
    kept = Idempotency.get(record.key, consistent_read=True)
    before = json.loads(kept.request or "{}")
    differ = sorted(name for name in set(digests) | set(before)
                    if digests.get(name) != before.get(name))
    if differ:
        raise Conflict(f"idempotency_key was already used for a different request (it differs "
                       f"in {', '.join(differ)}); nothing was sent.", "idempotency_key")
    answer = json.loads(zlib.decompress(kept.answer)) if kept.answer else None
    return Claim(kept, answer)
