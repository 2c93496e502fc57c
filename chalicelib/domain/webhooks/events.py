"""Events for webhooks, read from the DynamoDB streams of the messages, incoming, devices and
opt-outs tables.

Why streams: a state change and its event are the same write. The request path makes no extra
AWS call to emit an event, and an event cannot be lost between the write and an enqueue,
because DynamoDB keeps each change in the stream (24 h) until the stream function has fanned it
out; if that function fails, Lambda retries the same records.

An event's `id` is derived from the state it reports (account, subject, type and that state's own
timestamp), never from the transport: a retried stream batch, a re-queued delivery or a
`redeliver` carries the same id, so receivers deduplicate by it. `sequence` is the stream
record's sequence number, zero-padded to 40 digits: for one message (or device) a later change
has a larger number, so receivers order events of one subject by comparing it as a string.
When one write takes a message from processing to delivered (the agent reports `sent` and
`delivered` in one call), its record gives both `sms.sent` and `sms.delivered`; the former's
sequence is one below the record's.
"""
import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal

from chalicelib.core import clock, settings

MESSAGE_TYPES = {"sent": "sms.sent", "delivered": "sms.delivered", "failed": "sms.failed",
                 "expired": "sms.expired", "cancelled": "sms.cancelled"}
# The attribute holding the time a message reached each status (expired and cancelled happen
# once).
STATUS_STAMP = {"sent": "processed_at", "delivered": "delivered_at", "failed": "failed_at",
                "expired": None, "cancelled": None}
TYPES = (*MESSAGE_TYPES.values(), "sms.received", "device.online", "device.offline",
         "sim.paused", "webhook.disabled", "contact.opted_out", "contact.opted_in")
TEST_TYPE = "webhook.test"
SEQUENCE_DIGITS = 40


@dataclass
class Event:
    account_id: str
    id: str
    type: str
    created_at: int  # ms
    sequence: str
    data: dict
    # What other APIs' bodies need and ours does not show (an SMSGate group id): never sent.
    extra: dict = field(default_factory=dict)

    def payload(self) -> dict:
        return {"id": self.id, "type": self.type, "created_at": clock.fmt(self.created_at),
                "created_at_ms": self.created_at, "sequence": self.sequence,
                "account_id": self.account_id, "data": self.data}


def event_id(account_id: str, kind: str, subject, stamp) -> str:
    digest = hashlib.sha256(f"{account_id}|{kind}|{subject}|{stamp}".encode()).hexdigest()
    return "evt_" + digest[:32]


def _plain(value: dict | None) -> dict:
    """A stream image (DynamoDB JSON) as plain Python values, numbers as int."""
    if not value:
        return {}
    from boto3.dynamodb.types import TypeDeserializer
    deserializer = TypeDeserializer()
    out = {}
    for name, typed in value.items():
        item = deserializer.deserialize(typed)
        if isinstance(item, Decimal):
            item = int(item) if item == item.to_integral_value() else float(item)
        out[name] = item
    return out


def _table(record: dict) -> str:
    arn = record.get("eventSourceARN", "")
    name = arn.split(":table/", 1)[-1].split("/", 1)[0]
    for short in settings.EVENT_SOURCE_TABLES:
        if name == settings.current().table_name(short):
            return short
    return ""


def _sequence(record: dict) -> str:
    return str(record["dynamodb"]["SequenceNumber"]).zfill(SEQUENCE_DIGITS)


# Statuses from which a message reaching `delivered` was never seen `sent` on the stream: the
# agent reports `sent` and `delivered` together and the gateway records both in one write.
NOT_YET_SENT = (None, "pending", "processing")


def _message_event(record, old, new) -> list[Event]:
    status = new.get("status")
    if status not in MESSAGE_TYPES or old.get("status") == status or not new.get("emits_events"):
        return []
    found = [_status_event(record, new, status)]
    if status == "delivered" and old.get("status") in NOT_YET_SENT and new.get("processed_at"):
        # The same `sms.sent` (same id, from processed_at) a separate `sent` write would give.
        # Its sequence is the record's minus one: below `sms.delivered`'s, and above any earlier
        # event of this message (those came before the record of the old, eventless status).
        sequence = str(int(record["dynamodb"]["SequenceNumber"]) - 1).zfill(SEQUENCE_DIGITS)
        found.insert(0, _status_event(record, new, "sent", sequence))
    return found


def _status_event(record, new, status: str, sequence: str | None = None) -> Event:
    kind = MESSAGE_TYPES[status]
    stamp_name = STATUS_STAMP[status]
    stamp = new.get(stamp_name) if stamp_name else None
    data = {"message_id": new["message_id"], "phone_number": new.get("phone_number"),
            "status": status, "device_id": new.get("device_id"),
            "device_uid": new.get("device_uid"), "sim_slot": new.get("sim_slot"),
            "kind": new.get("kind", "sms"), "segments": new.get("segments")}
    if status in ("failed", "expired", "cancelled"):
        data["failed_reason"] = new.get("reason")
    return Event(new["account_id"], event_id(new["account_id"], kind, new["message_id"], stamp),
                 kind, stamp or _record_ms(record), sequence or _sequence(record), data,
                 {"group_id": new.get("group_id")})


def _incoming_event(record, old, new) -> list[Event]:
    if old or not new:
        return []
    data = {"message_id": new["message_id"], "phone_number": new.get("phone_number"),
            "status": "received", "message": new.get("body"), "device_id": new.get("device_id"),
            "device_uid": new.get("device_uid"), "sim_slot": new.get("sim_slot"),
            "received_at": clock.fmt(new.get("received_at"))}
    return [Event(new["account_id"], event_id(new["account_id"], "sms.received",
                                              new["message_id"], ""),
                  "sms.received", new.get("created_at") or _record_ms(record),
                  _sequence(record), data)]


def _device_event(record, old, new) -> list[Event]:
    return _app_state_event(record, old, new) + _pause_events(record, old, new)


def _pause_events(record, old, new) -> list[Event]:
    """A SIM paused (pacing.pause: "limit exceeded", "no service", a stalled phone)."""
    from chalicelib.domain import pacing
    if not new.get("account_id"):
        return []
    found = []
    for sim, until, reason in pacing.pauses_in(old, new):
        data = {"device_id": new.get("device_id"), "device_uid": new.get("device_uid"),
                "name": new.get("name"), "sim_slot": sim, "reason": reason,
                "paused_until": clock.fmt(until)}
        found.append(Event(new["account_id"], event_id(
            new["account_id"], "sim.paused", f"{new.get('device_uid')}#{sim}", until),
            "sim.paused", _record_ms(record), _sequence(record), data))
    return found


def _app_state_event(record, old, new) -> list[Event]:
    was, now = old.get("app_state") == "running", new.get("app_state") == "running"
    if not new or was == now:
        return []
    kind = "device.online" if now else "device.offline"
    data = {"device_id": new.get("device_id"), "device_uid": new.get("device_uid"),
            "name": new.get("name"), "status": "running" if now else "stopped",
            "last_seen": clock.fmt(new.get("last_seen")), "battery": new.get("battery"),
            "signal": new.get("signal")}
    return [Event(new["account_id"], event_id(new["account_id"], kind, new["device_uid"],
                                              new.get("last_seen")),
                  kind, _record_ms(record), _sequence(record), data)]


def _opt_out_event(record, old, new) -> list[Event]:
    """A number put on the account's opt-out list, or taken off (domain/opt_outs.py)."""
    if not new or bool(old.get("opted_out")) == bool(new.get("opted_out")):
        return []  # a confirmation reply's stamp, or no change
    kind = "contact.opted_out" if new.get("opted_out") else "contact.opted_in"
    data = {"phone_number": new["phone_number"], "source": new.get("source"),
            "keyword": new.get("keyword"), "device_uid": new.get("device_uid"),
            "changed_at": clock.fmt(new.get("changed_at"))}
    return [Event(new["account_id"], event_id(new["account_id"], kind, new["phone_number"],
                                              new.get("changed_at")),
                  kind, new.get("changed_at") or _record_ms(record), _sequence(record), data)]


def _record_ms(record: dict) -> int:
    at = record["dynamodb"].get("ApproximateCreationDateTime")
    return int(float(at) * 1000) if at else clock.now_ms()


READERS = {"messages": _message_event, "incoming": _incoming_event, "devices": _device_event,
           "opt-outs": _opt_out_event}


def from_stream_record(record: dict) -> list[Event]:
    """The events one stream record (Lambda's DynamoDB event format) stands for, in order: none,
    one, or two (`sms.sent` then `sms.delivered` when one write recorded both)."""
    reader = READERS.get(_table(record))
    if reader is None or record.get("eventName") == "REMOVE":
        return []
    change = record["dynamodb"]
    return reader(record, _plain(change.get("OldImage")), _plain(change.get("NewImage")))


def stream_filters(short: str) -> list[dict]:
    """Lambda event-filter patterns (ORed) for the stream of table `short`: they only spare
    the stream function records that cannot be events (pending/processing writes, heartbeats
    and polls of a running phone), so each must match every record `from_stream_record` turns
    into an event; the code still decides (tests/unit/test_webhooks_deploy.py checks both)."""
    if short == "messages":
        patterns = [{"dynamodb": {"NewImage": {"status": {"S": sorted(MESSAGE_TYPES)},
                                               "emits_events": {"BOOL": [True]}}}}]
    elif short == "incoming":
        patterns = [{"eventName": ["INSERT"]}]
    elif short == "opt-outs":
        patterns = [{"eventName": ["INSERT", "MODIFY"]}]
    else:  # devices: anything but "running before and after", and a pause not yet read
        patterns = [{"dynamodb": {image: {"app_state": {"S": [condition]}}}}
                    for image in ("OldImage", "NewImage")
                    for condition in ({"anything-but": ["running"]}, {"exists": False})]
        patterns.append({"dynamodb": {"NewImage": {"pause_unseen": {"N": [{"exists": True}]}}}})
    return [{"Pattern": json.dumps(p, separators=(",", ":"))} for p in patterns]


def test_event(account_id: str, webhook_id: str) -> Event:
    import secrets
    now = clock.now_ms()
    return Event(account_id, "evt_test_" + secrets.token_hex(12), TEST_TYPE, now,
                 "0" * SEQUENCE_DIGITS, {"webhook_id": webhook_id,
                                         "message": "A test event from smsgw."})
