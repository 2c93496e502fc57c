"""Storing a new time-ordered record exactly once.

Outgoing and incoming messages get a fresh id (`ids.new_message_id`) whose rare same-millisecond
clash is caught by a conditional put; with an idempotency key, the key's claim and the record are
written in one transaction, so a retried request finds the first record instead of making a
second. One implementation for both, so the rules cannot drift apart.

Two requests with the same key at the same moment: DynamoDB may cancel one transaction with
`TransactionConflict` (the other is writing the same claim) rather than a failed condition. The
loser retries after a short pause; its next attempt meets the winner's claim (a failed condition)
and answers with the winner's record.
"""
import random
import time

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core import clock, ids, settings
from chalicelib.core.errors import Conflict, Unavailable
from chalicelib.storage.tables import Idempotency

ATTEMPTS = 5
CONFLICT_PAUSE_SECONDS = 0.02  # doubled per conflict, with jitter: 1.2 s at most in all
_connection = None


def transaction_connection() -> Connection:
    global _connection
    if _connection is None:
        _connection = Connection(region=settings.current().region)
    return _connection


class RequirementFailed(Exception):
    """The `require` condition of save_new did not hold: nothing was written."""


class CountRefused(Exception):
    """The `count` update of save_new did not hold its condition (a quota): nothing was written."""


def save_new(make_record, idempotency_key: str | None = None, require=None, count=None):
    """Save `make_record(message_id)` under a fresh id. Returns (record, None), or, when
    `idempotency_key` was already claimed (and has not expired), (None, the claimed id).
    `require` = (model, hash key, condition): checked in the same transaction (needs a key);
    RequirementFailed if it does not hold. `count` = (item, actions, condition): a counter's
    UpdateItem in the same transaction (a quota, domain/quotas.py); CountRefused if its
    condition does not hold. A replay under the key counts nothing."""
    assert require is None or idempotency_key is not None
    now = clock.now_ms()
    conflicts = 0
    for _ in range(ATTEMPTS):
        record = make_record(ids.new_message_id())
        new_id = type(record).message_id.does_not_exist()
        if idempotency_key is None and count is None:
            try:
                record.save(new_id)
                return record, None
            except PutError as error:
                if error.cause_response_code == "ConditionalCheckFailedException":
                    continue  # same-millisecond id clash: draw another
                raise
        claim = None if idempotency_key is None else Idempotency(
            key=idempotency_key, message_id=record.message_id, created_at=now,
            expires=clock.at(now + settings.current().idempotency_seconds * 1000))
        try:
            with TransactWrite(connection=transaction_connection()) as tx:
                if claim is not None:
                    tx.save(claim, condition=Idempotency.key.does_not_exist()
                            | (Idempotency.expires < clock.at(now)))
                tx.save(record, condition=new_id)
                if require is not None:
                    model, hash_key, condition = require
                    tx.condition_check(model, hash_key, condition=condition)
                if count is not None:
                    item, actions, condition = count
                    tx.update(item, actions=actions, condition=condition)
            return record, None
        except TransactWriteError as error:
            # PynamoDB sends condition checks first, then puts (claim, record), then updates
            reasons = [r.code if r else None for r in (error.cancellation_reasons or [])]
            if require is not None and reasons:
                if reasons.pop(0) == "ConditionalCheckFailed":
                    raise RequirementFailed()
            counted = reasons.pop() if count is not None and reasons else None
            if claim is not None and reasons and reasons[0] == "ConditionalCheckFailed":
                return None, Idempotency.get(idempotency_key, consistent_read=True).message_id
            if reasons and reasons[-1] == "ConditionalCheckFailed":
                continue  # same-millisecond id clash
            if counted == "ConditionalCheckFailed":
                raise CountRefused()
            if "TransactionConflict" not in reasons + [counted]:
                raise
            conflicts += 1
            time.sleep(CONFLICT_PAUSE_SECONDS * 2 ** conflicts * random.uniform(0.5, 1))
    if conflicts:
        winner = _winner(idempotency_key, now) if idempotency_key else None
        if winner is not None:
            return None, winner
        raise Unavailable("The gateway is busy with other requests of this account (or this "
                          "idempotency_key); retry shortly.", retry_after=1)
    raise Conflict("Could not allocate a message id; retry.", retry_after=1)


def _winner(idempotency_key: str, now: int) -> int | None:
    """The record id a live claim of `idempotency_key` names (None if there is none)."""
    try:
        claim = Idempotency.get(idempotency_key, consistent_read=True)
    except DoesNotExist:
        return None
    return claim.message_id if claim.expires >= clock.at(now) else None
