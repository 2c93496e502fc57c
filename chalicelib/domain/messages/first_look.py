"""The sweeps' first look at new messages, read from the messages table itself.

A message sent for now (no paced or scheduled send time) is written without an `open` index
entry: nearly all are reported within seconds, and an entry would cost two write units (in at
the send, out at the report), a third of what a lone SMS costs in DynamoDB. Instead, each sweep
run reads every account's messages created since the account's watermark `swept_to` and at least
FIRST_LOOK_SECONDS ago, with a consistent Query on the table's own key, and enters in the index
only those still open (pending or processing): a phone that is offline, slow or dead. From then
on the index and `sweeps.settle` decide them, as for every other open message.

Why no open message escapes, whatever the interleaving:
- A message is written without an entry only when it is accepted, and its id is taken from the
  clock just before that write, which ends within the API function's timeout (25 s), well under
  FIRST_LOOK_SECONDS: the Query at time T for ids up to T - FIRST_LOOK_SECONDS reads every such
  message that will ever exist, consistently (no index lag).
- `swept_to` only moves past ids such a Query returned, and each one returned was either no
  longer open (and no message returns to an open state without an entry: only `sweeps.settle`
  moves one back to pending, and it works on entries) or entered, by a write conditional on
  "still open and no entry yet": if that condition fails the message was already entered, or
  left the open states, and both are fine.
- Two runs at once read the same messages; the entries are conditional and `swept_to` only
  grows (a conditional write), so they change each message at most once.
"""
import random
import time

from chalicelib.core import ids, settings
from chalicelib.domain import messages
from chalicelib.storage.tables import Account, Message, update_if

BACKFILL_MS = 24 * 3600 * 1000  # an account without `swept_to` (created before it existed)


def due_at(message: Message) -> int:
    """When the sweeps would first have looked at the message, had it entered the index at
    its send (messages.first_look_due)."""
    return min(messages.first_look_due(message.not_before, message.created_at,
                                   messages.grace_seconds(message.pool_uid)),
               message.expires_at)


def enter(message: Message) -> bool:
    """Give an open message its `open` entry, due when the sweeps would have looked at it.
    False when it is no longer open or was entered meanwhile (nothing to do either way)."""
    shard, due = messages.open_shard(message.message_id), due_at(message)
    if not update_if(message, [Message.open_shard.set(shard), Message.open_due.set(due)],
                     Message.status.is_in(*messages.OPEN) & Message.open_shard.does_not_exist()):
        return False
    message.open_shard, message.open_due = shard, due
    return True


def _unseen(account: Account, upto: int, now: int):
    """The account's messages after its watermark up to `upto`, oldest first, at most a page
    (nothing to read: an empty list)."""
    start = account.swept_to
    if start is None:
        start = ids.message_id_floor(max(account.created_at, now - BACKFILL_MS)) - 1
    if start >= upto:
        return []
    return Message.query(account.account_id, Message.message_id.between(start + 1, upto),
                         consistent_read=True, limit=settings.current().first_look_page)


def look(now: int, deadline: float, accounts=None):
    """One run's first look over every account; yields the messages it entered (the caller
    settles those due now). An account's watermark moves past what was read; an account the
    budget (`deadline`, monotonic) left unread keeps its messages for the next run.
    `accounts`: these only (the bench), instead of every account."""
    age = settings.current().first_look_seconds * 1000
    upto = ids.message_id_floor(now - age + 1) - 1  # inclusive
    accounts = list(Account.scan()) if accounts is None else list(accounts)
    random.shuffle(accounts)  # a run cut short by its budget does not always starve the same
    for account in accounts:
        if time.monotonic() >= deadline:
            return
        found = _unseen(account, upto, now)
        last, cut = None, False
        for message in found:
            if time.monotonic() >= deadline:
                cut = True  # the rest of this account waits for the next run
                break
            if message.status in messages.OPEN and message.open_shard is None \
                    and enter(message):
                yield message
            last = message.message_id
        if cut or getattr(found, "last_evaluated_key", None):
            if last is not None:
                _advance(account, last)
        elif last is not None or account.swept_to is None:
            _advance(account, upto)


def _advance(account: Account, to: int) -> None:
    update_if(Account(account_id=account.account_id), [Account.swept_to.set(to)],
              Account.account_id.exists() & (Account.swept_to.does_not_exist()
                                             | (Account.swept_to < to)))
