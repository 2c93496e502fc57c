"""Recipients' opt-outs: a number that replies STOP to one of the account's phones gets nothing
more from the account (outbox.submit refuses it) until it replies START. The owner may list a
number, remove one, add keywords in other languages, ask for a confirmation reply, and let
OTPs through. docs/opt-outs.md has the rules; the consistency argument is there too.

Cost: the list lives in its own table (`opt-outs`, one item per number that ever used a
keyword), and the account item carries `opt_outs_version`, bumped in the same transaction as
every change. A container keeps each account's list with the version it was read at; it trusts
it while it has seen the account item within AUTH_CACHE_SECONDS (the accounts' cache:
accounts.cached_read, which authenticate fills anyway), so a warm send makes no AWS call for
the check, and the list is read again (one Query) only when the version moved. An account that
never had an opt-out (version absent) never queries.
"""
import re
import threading
import unicodedata
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core import clock, settings
from chalicelib.core.errors import BadRequest, NotFound, OptedOut
from chalicelib.domain import accounts
from chalicelib.storage import records
from chalicelib.storage.tables import Account, OptOut, update_if

OPT_OUT_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                    "OPTOUT", "OPT OUT")
OPT_IN_KEYWORDS = ("START", "UNSTOP", "YES")
REPLY_EVERY_MS = 86400 * 1000  # at most one confirmation reply a day per number
MAX_KEYWORDS = 20
MAX_REPLY = 300
_lock = threading.Lock()
_lists = {}  # account_id -> Listing


@dataclass(frozen=True)
class Listing:
    version: int
    numbers: frozenset
    account: Account
    read_at: int  # when the account item behind it was read (ms)


def keyword(text: str | None) -> str:
    """A text as keywords are compared: letters and digits, upper case, punctuation dropped,
    spaces trimmed and single ("Stop!" and " opt-out " are STOP and OPTOUT)."""
    kept = "".join(ch for ch in unicodedata.normalize("NFKC", text or "")
                   if not unicodedata.category(ch).startswith(("P", "S", "C")) or ch.isspace())
    return re.sub(r"\s+", " ", kept).strip().upper()


def keywords(account: Account) -> tuple[tuple, tuple]:
    """(opt-out keywords, opt-in keywords) of the account: the standard ones and its own."""
    return ((*OPT_OUT_KEYWORDS, *(account.opt_out_keywords or ())),
            (*OPT_IN_KEYWORDS, *(account.opt_in_keywords or ())))


def meaning(account: Account, text: str | None) -> bool | None:
    """True: the whole text is an opt-out keyword; False: an opt-in one; None: neither."""
    said = keyword(text)
    stop, start = keywords(account)
    if said in stop:
        return True
    if said in start:
        return False
    return None


def forget_cached() -> None:
    with _lock:
        _lists.clear()


def _forget(account_id: str) -> None:
    """This container changed the account's list or settings (its version moved)."""
    with _lock:
        _lists.pop(account_id, None)
    accounts.forget_account(account_id)


def _listing(account_id: str) -> Listing:
    """The account's list as of an account read at most AUTH_CACHE_SECONDS old."""
    now, window = clock.now_ms(), settings.current().auth_cache_seconds * 1000
    found = _lists.get(account_id)
    if found is not None and now - found.read_at <= window:
        return found
    account, read_at = accounts.cached_read(account_id)
    version = account.opt_outs_version or 0
    if found is not None and found.version == version:
        numbers = found.numbers
    elif version == 0:
        numbers = frozenset()
    else:
        numbers = frozenset(e.phone_number for e in OptOut.query(
            account_id, consistent_read=True, filter_condition=OptOut.opted_out == True))  # noqa: E712
    listing = Listing(version, numbers, account, read_at)
    with _lock:
        current = _lists.get(account_id)
        if current is None or current.read_at <= read_at:
            _lists[account_id] = listing
    return listing


def refuse(account_id: str, phone_number: str, otp: bool = False) -> None:
    """Raise OptedOut if `phone_number` opted out of this account's messages (an OTP goes if
    the owner allows OTPs to opted-out numbers)."""
    listing = _listing(account_id)
    if phone_number not in listing.numbers or (otp and listing.account.otp_to_opted_out):
        return
    what = "OTPs are not sent to it either (the account's setting)" if otp else \
        "nothing was sent"
    raise OptedOut(f"{phone_number} has opted out of this account's messages (it replied STOP, "
                   f"or the owner listed it): {what}. It opts in again by replying START.",
                   "phone_number", phone_number=phone_number)


def opted_out(account_id: str, phone_numbers) -> set[str]:
    """Which of these numbers are opted out (the CSV preview asks what the send will)."""
    return set(phone_numbers) & _listing(account_id).numbers


def change(account_id: str, phone_number: str, out: bool, source: str,
           said: str | None = None, device_uid: str | None = None) -> bool:
    """Put the number on the list (`out`) or take it off, with the account's version bumped in
    the same transaction. False if it already was so (nothing written, no event)."""
    now = clock.now_ms()
    for _ in range(records.ATTEMPTS):
        try:
            entry = OptOut.get(account_id, phone_number, consistent_read=True)
        except DoesNotExist:
            entry = None
        if entry is not None and entry.opted_out == out:
            return False
        if entry is None and not out:
            return False
        new = OptOut(account_id=account_id, phone_number=phone_number, opted_out=out,
                     changed_at=max(now, (entry.changed_at + 1) if entry else now),
                     source=source, keyword=said, device_uid=device_uid,
                     replied_at=entry.replied_at if entry else None)
        unchanged = OptOut.phone_number.does_not_exist() if entry is None else \
            (OptOut.changed_at == entry.changed_at)
        try:
            with TransactWrite(connection=records.transaction_connection()) as tx:
                tx.save(new, condition=unchanged)
                tx.update(Account(account_id=account_id),
                          actions=[Account.opt_outs_version.add(1)],
                          condition=Account.account_id.exists())
        except TransactWriteError as error:
            reasons = [r.code if r else None for r in (error.cancellation_reasons or [])]
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                raise NotFound(f"Unknown account: {account_id}.", "account_id")
            if "ConditionalCheckFailed" in reasons or "TransactionConflict" in reasons:
                continue  # a concurrent change: read it and decide again
            raise
        _forget(account_id)
        return True
    return False


def entries(account_id: str) -> list[OptOut]:
    """The numbers on the list, newest first."""
    found = [e for e in OptOut.query(account_id, consistent_read=True) if e.opted_out]
    return sorted(found, key=lambda e: e.changed_at, reverse=True)


def entry(account_id: str, phone_number: str) -> OptOut | None:
    try:
        return OptOut.get(account_id, phone_number, consistent_read=True)
    except DoesNotExist:
        return None


def add(account_id: str, phone_number: str) -> bool:
    """The owner lists a number (it asked elsewhere): True if it was not listed."""
    return change(account_id, phone_number, True, "owner")


def remove(account_id: str, phone_number: str) -> bool:
    """The owner takes a number off (it asked to receive again): True if it was listed."""
    return change(account_id, phone_number, False, "owner")


def _checked_keywords(raw, parameter: str) -> list[str]:
    words = [keyword(w) for w in (raw or []) if keyword(w)]
    if len(words) > MAX_KEYWORDS or any(len(w) > 40 for w in words):
        raise BadRequest(f"Invalid {parameter}: at most {MAX_KEYWORDS} keywords of at most 40 "
                         "characters.", parameter)
    return sorted(set(words))


def configure(account_id: str, *, opt_out_keywords=None, opt_in_keywords=None,
              reply: str | None = None, otp_allowed: bool | None = None) -> Account:
    """The owner's settings; None leaves one as it is ("" turns the reply off). A keyword may
    not mean both: the standard ones win over an owner's of the other kind."""
    actions = []
    if opt_out_keywords is not None:
        words = _checked_keywords(opt_out_keywords, "opt_out_keywords")
        actions.append(Account.opt_out_keywords.set(words))
    if opt_in_keywords is not None:
        words = _checked_keywords(opt_in_keywords, "opt_in_keywords")
        clash = sorted(set(words) & set(OPT_OUT_KEYWORDS))
        if clash:
            raise BadRequest(f"Invalid opt_in_keywords: {clash[0]} is an opt-out keyword.",
                             "opt_in_keywords")
        actions.append(Account.opt_in_keywords.set(words))
    if reply is not None:
        if len(reply.strip()) > MAX_REPLY:
            raise BadRequest(f"Invalid reply: at most {MAX_REPLY} characters.", "reply")
        actions.append(Account.opt_out_reply.set(reply.strip()) if reply.strip()
                       else Account.opt_out_reply.remove())
    if otp_allowed is not None:
        actions.append(Account.otp_to_opted_out.set(True) if otp_allowed
                       else Account.otp_to_opted_out.remove())
    if not actions:
        return Account.get(account_id, consistent_read=True)
    actions.append(Account.opt_outs_version.add(1))
    if not update_if(Account(account_id=account_id), actions, Account.account_id.exists()):
        raise NotFound(f"Unknown account: {account_id}.", "account_id")
    _forget(account_id)
    return Account.get(account_id, consistent_read=True)


def on_incoming(device, sender: str, text: str) -> str | None:
    """An SMS a phone received: a keyword changes the sender's choice. Returns the owner's
    confirmation to send back through that phone (incoming.store sends it with outbox), or
    None: not an opt-out, no reply set, or one already sent within the day (a conditional
    write on the entry decides, so racing STOPs reply once)."""
    if len(text or "") > 40:
        return None  # no keyword is longer: most SMS skip even the cached account
    account = _listing(device.account_id).account  # its keywords as of AUTH_CACHE_SECONDS
    out = meaning(account, text)
    if out is None or not sender.startswith("+"):
        return None
    change(device.account_id, sender, out, "sms", keyword(text), device.device_uid)
    if not (out and account.opt_out_reply):
        return None
    now = clock.now_ms()
    entry = OptOut(account_id=account.account_id, phone_number=sender)
    if not update_if(entry, [OptOut.replied_at.set(now)], OptOut.phone_number.exists() & (
            OptOut.replied_at.does_not_exist() | (OptOut.replied_at < now - REPLY_EVERY_MS))):
        return None
    return account.opt_out_reply
