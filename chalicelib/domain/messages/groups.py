"""Groups: one request to several recipients as one message of its own id (SMSGate's model), over
our lifecycle of one message per recipient.

A group is a record in the idempotency table, `smsgate-group#<account>#<group id>`, holding the
request's fingerprint and, once every recipient is accepted, its members' message ids; each
member carries `group_id`. The group claim is written first (conditional: absent), so a second
request with the same id meets it: the same fingerprint resumes or replays the first (each
recipient's own claim, in the `smsgate#` space, makes it accepted once), a different one is a
Conflict. The claims live in their own key space, so neither the compat API's nor REST v1's
idempotency keys can ever name one of these. A send is all or nothing: if a recipient is
refused, those accepted in this request are cancelled and the group claim removed.

Concurrent requests with one id, for every interleaving DynamoDB allows: the group claim is one
conditional put, so exactly one request makes it; a twin with other content meets it (409),
one with the same content sends through the recipients' claims (each a transaction
conditional on its absence, records.save_new), so every recipient is one message whoever
writes it. The members are written on condition that the claim still holds this content; an
undo deletes the claim only while it has no members. So a record with members always names
accepted messages, and a claim freed by an undo makes its twin answer 503 (retry).
"""
import hashlib
import json
import re
import secrets
from dataclasses import asdict, dataclass

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from chalicelib.core import clock, ids, settings
from chalicelib.core.errors import BadRequest, Conflict, GatewayError, NotFound, Unavailable
from chalicelib.domain import devices, idempotency, messages, outbox, segments
from chalicelib.domain.messages import history
from chalicelib.storage.tables import Device, Idempotency, Message

KEY_SPACE = "smsgate"
ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,36}")
MAX_SCAN = 2000  # messages read at most for one page of groups


@dataclass(frozen=True)
class GroupSend:
    """One send, checked: numbers are E.164, or ciphertext when `encrypted`."""
    numbers: tuple
    text: str
    encrypted: bool = False
    sim_slot: int | None = None
    device_uid: str | None = None
    valid_for: int | None = None
    requested_validity: str | None = None
    send_at: int | None = None
    urgent: bool = False

    def fingerprint(self) -> str:
        """What identifies the request whenever it is retried: `valid_for` is left out (a
        validUntil's seconds shrink as time passes; `requested_validity` keeps the instant)."""
        asked = {k: v for k, v in asdict(self).items() if k != "valid_for"}
        canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def new_id() -> str:
    return "sg" + secrets.token_urlsafe(15)  # 22 characters, never all digits


def check_id(group_id: str, parameter: str = "id") -> str:
    if not isinstance(group_id, str) or not ID_PATTERN.fullmatch(group_id):
        raise BadRequest(f"Invalid {parameter}: 1-36 letters, digits, '.', '_' or '-'.",
                         parameter)
    return group_id


def _key(account_id: str, group_id: str) -> str:
    return f"smsgate-group#{account_id}#{group_id}"


def _claim(account_id: str, group_id: str, fingerprint: str) -> Idempotency | None:
    """Write the group's claim; None if it was new, else the existing claim."""
    now = clock.now_ms()
    record = Idempotency(key=_key(account_id, group_id), message_id=0, created_at=now,
                         fingerprint=fingerprint,
                         expires=clock.at(now + settings.current().retention_days * 86400 * 1000))
    try:
        record.save(Idempotency.key.does_not_exist() | (Idempotency.expires < clock.at(now)))
        return None
    except PutError as error:
        if error.cause_response_code != "ConditionalCheckFailedException":
            raise
    return Idempotency.get(record.key, consistent_read=True)


def send(caller, group_id: str | None, request: GroupSend) -> tuple[str, list[Message], bool]:
    """Accept one group: (group id, its messages in recipient order, replayed). Without a
    client id nobody can repeat the request, so nothing is claimed: the messages are written,
    then the group record (a crash between leaves them listed under the id, never lost)."""
    given = group_id is not None
    group_id = check_id(group_id) if given else new_id()
    device = devices.resolve(caller.account_id, device_uid=request.device_uid) \
        if request.device_uid else None
    if device is not None and request.encrypted:  # whether it can decrypt, as of now
        device = Device.get(device.device_uid, consistent_read=True)
    segments.check(request.text, encrypted=request.encrypted)
    fingerprint = request.fingerprint()
    existing = _claim(caller.account_id, group_id, fingerprint) if given else None
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise Conflict(f"Message {group_id} already exists with different content or "
                           "options: a client id makes a send idempotent, so a new message "
                           "needs a new id.", "id", code="conflict")
        if existing.members:
            return group_id, _members(caller.account_id, existing.members), True
    accepted = []
    try:
        for index, number in enumerate(request.numbers):
            accepted.append(_send_one(caller, group_id if given else None, group_id, index,
                                      number, request, device))
    except GatewayError as error:
        _undo(caller.account_id, group_id, accepted, fingerprint if given else None)
        if len(request.numbers) > 1:
            error.message = f"phoneNumbers[{len(accepted)}]: {error.message}"
        raise
    members = [a.message.message_id for a in accepted]
    if given:  # only while the claim is still this content's: a twin's undo may have freed it
        try:
            Idempotency(key=_key(caller.account_id, group_id)).update(
                actions=[Idempotency.members.set(members)],
                condition=Idempotency.fingerprint == fingerprint)
        except UpdateError:
            raise Unavailable(f"A concurrent request with id {group_id} was refused meanwhile; "
                              "retry.", "id", retry_after=1)
    else:
        now = clock.now_ms()
        Idempotency(key=_key(caller.account_id, group_id), message_id=0, created_at=now,
                    fingerprint=fingerprint, members=members,
                    expires=clock.at(now + settings.current().retention_days * 86400 * 1000)).save()
    return group_id, [a.message for a in accepted], existing is not None or any(
        a.replayed for a in accepted)


def _send_one(caller, claimed, group_id, index, number, request, device):
    common = {"valid_for_seconds": request.valid_for, "send_at": request.send_at,
              "requested_validity": request.requested_validity, "urgent": request.urgent,
              "idempotency_key": f"{claimed}#{index}" if claimed else None,
              "key_space": KEY_SPACE,
              "events": caller.events, "encrypted": request.encrypted, "group_id": group_id}
    return outbox.submit(caller.account_id, outbox.SendRequest(
        phone_number=number, text=request.text, device=device, sim_slot=request.sim_slot,
        **common))


def _undo(account_id, group_id, accepted, fingerprint) -> None:
    """A refused recipient: cancel what this request accepted and free its recipients' claims,
    then free the id (only if the claim is still this request's: a concurrent twin with the
    same content may own it)."""
    for index, one in enumerate(accepted):
        if one.replayed:
            continue
        try:
            messages.cancel(account_id, one.message.message_id)
        except GatewayError:
            continue  # a phone took it already: it is sent, and its claim stays
        if fingerprint is None:
            continue  # nothing was claimed
        try:
            key = idempotency.claim_key(account_id, f"{group_id}#{index}", KEY_SPACE)
            Idempotency(key=key).delete(Idempotency.message_id == one.message.message_id)
        except DeleteError:
            pass
    if fingerprint is None:
        return
    try:
        Idempotency(key=_key(account_id, group_id)).delete(
            (Idempotency.fingerprint == fingerprint) & Idempotency.members.does_not_exist())
    except DeleteError:
        pass


def _members(account_id: str, message_ids) -> list[Message]:
    found = {m.message_id: m for m in Message.batch_get(
        [(account_id, message_id) for message_id in message_ids])}
    return [found[i] for i in message_ids if i in found]


def get(account_id: str, group_id: str) -> list[Message]:
    """The group's messages; a message sent through another API is a group of one under its
    own number."""
    check_id(group_id)
    try:
        claim = Idempotency.get(_key(account_id, group_id), consistent_read=True)
    except DoesNotExist:
        claim = None
    if claim is not None and claim.members:
        found = _members(account_id, claim.members)
        if found:
            return found
    if group_id.isascii() and group_id.isdigit() and len(group_id) < 16:
        try:
            return [Message.get(account_id, int(group_id))]
        except DoesNotExist:
            pass
    raise NotFound(f"Message not found: no message {group_id} in this account.", "id")


def cancel(account_id: str, group_id: str) -> list[Message]:
    """SMSGate's cancel, which takes only a message still Pending (the server's
    Repository.CancelMessage; else ErrMessageNotPending, a 409): every recipient no phone has
    taken becomes cancelled at once; one an SMSGate app phone holds and has not started to send
    is asked to cancel (cancelling.py: Cancelling until the phone answers). Conflict if no
    recipient could be, which includes a second cancel."""
    from chalicelib.domain.messages import cancelling
    found, answer, done = get(account_id, group_id), [], False
    for message in found:
        try:
            answer.append(messages.cancel(account_id, message.message_id, again_ok=False))
            done = True
            continue
        except Conflict:
            pass
        current = Message.get(account_id, message.message_id, consistent_read=True)
        asked = cancelling.ask(current)
        done = done or asked is not None
        answer.append(asked or current)
    if not done:
        raise Conflict(f"Message {group_id} cannot be cancelled: it is not pending (no "
                       "recipient is waiting for a phone: taken and started, already "
                       "cancelled, or final).", "id", code="not_cancellable")
    return answer


def page(account_id: str, since_ms: int | None = None, until_ms: int | None = None,
         device_uid: str | None = None, ascending: bool = False, wanted: int = 50,
         keep=None) -> tuple[list[list[Message]], bool]:
    """Groups newest (or oldest) first that `keep(messages)` accepts, read with one Query until
    more than `wanted` are found; (groups, complete: these are all that match)."""
    low = ids.message_id_floor(since_ms) if since_ms is not None else None
    high = ids.message_id_floor(until_ms) if until_ms is not None else None
    condition = history.id_range(Message, low, high)
    where = Message.device_uid == device_uid if device_uid else None
    groups, kept, read = {}, [], 0
    for message in Message.query(account_id, condition, filter_condition=where,
                                 scan_index_forward=ascending, page_size=200):
        read += 1
        key = message.group_id or str(message.message_id)
        if key not in groups:
            if groups:  # the previous group is whole (a group's messages are written together)
                _judge(groups, kept, keep)
                if len(kept) > wanted:
                    return kept, False
            groups[key] = []
        groups[key].append(message)
        if read >= MAX_SCAN:
            return kept, False
    if groups:
        _judge(groups, kept, keep)
    return kept, True


def _judge(groups: dict, kept: list, keep) -> None:
    last = sorted(groups[next(reversed(groups))], key=lambda m: m.message_id)
    if keep is None or keep(last):
        kept.append(last)
