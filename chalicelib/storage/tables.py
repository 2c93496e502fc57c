"""PynamoDB models: the gateway's whole storage layout. Names come from `settings`.

Every table is keyed so that the API reads by key (GetItem/Query), never Scan, and every
account-owned item carries `account_id` in its key so a lookup cannot cross accounts.
"""
from pynamodb.attributes import (
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.core import settings
from chalicelib.storage.model_base import index_meta, table_meta, update_if  # noqa: F401 (re-exported)


class DeletedAccounts(GlobalSecondaryIndex):
    """Sparse index of accounts their owner deleted, by when: the purge (domain/purge.py)
    Queries those past the settling time instead of scanning the accounts."""
    Meta = index_meta("deleted", keys_only=True)
    deleted = UnicodeAttribute(hash_key=True)
    deleted_at = NumberAttribute(range_key=True)


class Account(Model):
    Meta = table_meta("accounts")
    account_id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()
    created_at = NumberAttribute()
    ip_whitelist = ListAttribute(of=UnicodeAttribute, default=list)
    next_device_id = NumberAttribute(default=0)
    # Bumped by every webhook endpoint added, in the add's own transaction, on condition that it
    # is unchanged since the add counted the endpoints: concurrent adds cannot pass the cap.
    webhook_adds = NumberAttribute(null=True)
    # Every message of the account with an id up to this has had the sweeps' first look
    # (chalicelib/domain/messages/first_look.py).
    swept_to = NumberAttribute(null=True)
    # The key SMSGate-style webhooks are signed with (domain/webhooks/smsgate.py); made on
    # first use, set by the client API's PATCH /settings.
    smsgate_signing_key = UnicodeAttribute(null=True)
    # Recipients' opt-outs (domain/opt_outs.py): bumped by every change of the account's list
    # or of the settings below, so a container's cached list is known stale from this item.
    opt_outs_version = NumberAttribute(null=True)
    opt_out_keywords = ListAttribute(of=UnicodeAttribute, null=True)  # the owner's, added
    opt_in_keywords = ListAttribute(of=UnicodeAttribute, null=True)
    opt_out_reply = UnicodeAttribute(null=True)  # the confirmation sent back; None: none
    otp_to_opted_out = BooleanAttribute(null=True)  # OTPs still go to opted-out numbers
    # Deleted by its owner (domain/account_deletion.py): every credential refused from then on;
    # `deleted` ("deleted") enters the sparse index the purge reads; purge_done / purge_cursor:
    # the purge's steps done and where its current table Scan stands (JSON), so it resumes;
    # purge_uids: its devices' uids (idempotency claims of their incoming SMS are keyed so).
    deleted = UnicodeAttribute(null=True)
    deleted_at = NumberAttribute(null=True)
    purge_done = ListAttribute(of=UnicodeAttribute, null=True)
    purge_cursor = UnicodeAttribute(null=True)
    purge_uids = ListAttribute(of=UnicodeAttribute, null=True)  # its devices: their claims
    deleted_accounts = DeletedAccounts()
    # The operator's console (domain/operators.py, domain/quotas.py): when the account was
    # suspended (absent: active), its own quotas (absent: the stage's default; 0: no limit) and
    # its phones, counted by registration and removal so concurrent registrations cannot pass
    # the phones quota (absent on accounts older than the counter: counted once, then kept).
    suspended_at = NumberAttribute(null=True)
    quota_messages_per_day = NumberAttribute(null=True)
    quota_phones = NumberAttribute(null=True)
    quota_webhooks = NumberAttribute(null=True)
    quota_requests_per_minute = NumberAttribute(null=True)
    phone_count = NumberAttribute(null=True)


class KeysByAccount(GlobalSecondaryIndex):
    Meta = index_meta("by-account")
    account_id = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute(range_key=True)


class ApiKey(Model):
    """Only the SHA-256 of a key is stored; the key itself is shown once at creation."""
    Meta = table_meta("api-keys")
    key_hash = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute()
    account_id = UnicodeAttribute()
    label = UnicodeAttribute(default="")
    created_at = NumberAttribute()
    revoked_at = NumberAttribute(null=True)  # may lie ahead: a rotated key's overlap
    last_used_at = NumberAttribute(null=True)  # hourly resolution (accounts.LAST_USE_STEP)
    by_account = KeysByAccount()


POLL_SLOTS = tuple(f"poll_{i}" for i in range(settings.current().max_live_polls))


class DevicesByAccount(GlobalSecondaryIndex):
    """An account's devices by id. Keys only: pace bookings, poll slots and heartbeats change the
    device item all the time and would rewrite an entry that projected them
    (devices.list_devices reads the items themselves)."""
    Meta = index_meta("by-account", keys_only=True)
    account_id = UnicodeAttribute(hash_key=True)
    device_id = NumberAttribute(range_key=True)


class LiveDevices(GlobalSecondaryIndex):
    """Sparse index of devices whose app said it is running: the liveness sweep Queries those
    silent past the heartbeat window instead of scanning all devices. Keys only (the sweep's
    conditional write needs only `device_uid` and `last_seen`), so a send's pace booking or a
    poll slot does not rewrite the entry; a heartbeat moves it (`last_seen` is its key)."""
    Meta = index_meta("live", keys_only=True)
    live = UnicodeAttribute(hash_key=True)
    last_seen = NumberAttribute(range_key=True)


class Device(Model):
    Meta = table_meta("devices", stream=True)
    device_uid = UnicodeAttribute(hash_key=True)
    account_id = UnicodeAttribute()
    device_id = NumberAttribute()
    name = UnicodeAttribute()
    secret_hash = UnicodeAttribute()
    queue_url = UnicodeAttribute()
    created_at = NumberAttribute()
    sim_count = NumberAttribute(null=True)
    last_seen = NumberAttribute(null=True)
    app_state = UnicodeAttribute(null=True)
    battery = NumberAttribute(null=True)
    signal = NumberAttribute(null=True)
    live = UnicodeAttribute(null=True)  # "live" while the app says running; else absent
    e2e = BooleanAttribute(null=True)  # its agent holds a passphrase: can send encrypted SMS
    # Pacing (chalicelib/domain/pacing/): the owner's SIM rate (parts/hour, None = default)
    # and phone window (parts/30 min, 0 = none), the log of parts handed out (pacing/log.py)
    # with its version, and a SIM's rest after "limit exceeded"/"no service".
    pace_per_hour = NumberAttribute(null=True)
    pace_window = NumberAttribute(null=True)
    pace_log = BinaryAttribute(null=True, legacy_encoding=False)
    pace_ver = NumberAttribute(null=True)
    paused_until_1 = NumberAttribute(null=True)
    paused_until_2 = NumberAttribute(null=True)
    pause_reason_1 = UnicodeAttribute(null=True)
    pause_reason_2 = UnicodeAttribute(null=True)
    # The SIM of a pause the devices stream has not yet read (alert mail, sim.paused event):
    # what lets that record through the stream's filter; the stream function removes it.
    pause_unseen = NumberAttribute(null=True)
    # A phone running SMSGate's app (surfaces/smsgate/mobile.py): kind "app" (absent: our
    # agent), the app version it registered with, and the key it signs its webhooks with.
    kind = UnicodeAttribute(null=True)
    app_version = UnicodeAttribute(null=True)
    signing_key = UnicodeAttribute(null=True)
    # An app phone's "jobs may be waiting" hint (domain/devices/job_hint.py): rung counts queueings,
    # seen is the count the last idle pull cleared, until is when the last paced job shows.
    jobs_rung = NumberAttribute(null=True)
    jobs_seen = NumberAttribute(null=True)
    jobs_until = NumberAttribute(null=True)
    # poll_0..: until when (epoch ms) each live GET /device/jobs holds its slot (devices.start_poll)
    vars().update({name: NumberAttribute(null=True) for name in POLL_SLOTS})
    by_account = DevicesByAccount()
    live_devices = LiveDevices()


class OpenMessages(GlobalSecondaryIndex):
    """Sparse index of open messages that time must still settle, so sweeps Query what is due
    instead of scanning history. A message sent for now enters it only if it is still open at
    the sweeps' first look (first_look.py); paced, scheduled and moved messages at once. Keys
    only, and a lease does not change `open_due`: a message's writes between its entry and its
    outcome do not write this index (the sweeps read the due items themselves)."""
    Meta = index_meta("open", keys_only=True)
    open_shard = UnicodeAttribute(hash_key=True)
    open_due = NumberAttribute(range_key=True)


class PoolMessages(GlobalSecondaryIndex):
    """Sparse index of not-yet-final messages that may move to another device (sent without a
    named device, or with failover=1), by their current device: failover Queries a stopped
    device's messages here. Keys only, so a message's status changes do not write it."""
    Meta = index_meta("pool", keys_only=True)
    pool_uid = UnicodeAttribute(hash_key=True)
    message_id = NumberAttribute(range_key=True)


class Message(Model):
    """An outgoing SMS. `message_id` grows with time, so a reverse Query is newest-first."""
    Meta = table_meta("messages", stream=True)
    account_id = UnicodeAttribute(hash_key=True)
    message_id = NumberAttribute(range_key=True)
    device_uid = UnicodeAttribute()
    device_id = NumberAttribute()
    phone_number = UnicodeAttribute()
    body = UnicodeAttribute()  # OTP codes are redacted here; only the queued job has them
    sim_slot = NumberAttribute()
    segments = NumberAttribute()
    encoding = UnicodeAttribute()
    kind = UnicodeAttribute(default="sms")
    status = UnicodeAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    leased_at = NumberAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    receipt_handle = UnicodeAttribute(null=True)
    attempts = NumberAttribute(default=0)
    processed_at = NumberAttribute(null=True)  # when the device sent it
    delivered_at = NumberAttribute(null=True)
    failed_at = NumberAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    # True when the gateway ended it failed/expired without word from the device (a lease ran
    # out): a late report that the phone did send it corrects the status.
    presumed = BooleanAttribute(null=True)
    idempotency_key = UnicodeAttribute(null=True)
    # The validity the sender asked for ("for:<s>", "until:<epoch s>" or absent for the default),
    # so a retry with the same idempotency key but another validity is told apart.
    requested_validity = UnicodeAttribute(null=True)
    retain_until = TTLAttribute(null=True)
    # While non-terminal: the sweep shard and when a sweep should next look at the message.
    open_shard = UnicodeAttribute(null=True)
    open_due = NumberAttribute(null=True)
    requeues = NumberAttribute(default=0)
    open_messages = OpenMessages()
    # Pool (chalicelib/domain/pool.py): the paced send time, and while the message may still
    # move, its device's uid (the `pool` index); `moves` counts failovers.
    not_before = NumberAttribute(null=True)
    pool_uid = UnicodeAttribute(null=True)
    moves = NumberAttribute(null=True)
    # Scheduled: the requested send time (a failover never moves it earlier); far ahead on a
    # paced phone its pace is booked at release (scheduling.py).
    scheduled_for = NumberAttribute(null=True)
    pace_at_release = BooleanAttribute(null=True)
    pool_messages = PoolMessages()
    # True when the account has had a webhook endpoint at the send: only such messages' changes
    # pass the stream's event filter (events.stream_filters), so the others invoke nothing.
    emits_events = BooleanAttribute(null=True)
    # End-to-end encrypted: phone_number and body are the client's ciphertext (never readable
    # here); group_id: the SMSGate message (one per request, a message per recipient).
    encrypted = BooleanAttribute(null=True)
    group_id = UnicodeAttribute(null=True)
    # SMSGate's Cancelling: a cancel asked of a message an app phone holds and has not yet
    # started to send (when it was asked); the phone answers Cancelled, or Sent if too late.
    cancel_asked_at = NumberAttribute(null=True)
    # when an SMSGate app phone reported it Processed (handed to the radio): too late to cancel
    app_processed_at = NumberAttribute(null=True)


class IncomingMessage(Model):
    """An SMS a device received and pushed to the gateway."""
    Meta = table_meta("incoming", stream=True)
    account_id = UnicodeAttribute(hash_key=True)
    message_id = NumberAttribute(range_key=True)
    device_uid = UnicodeAttribute()
    device_id = NumberAttribute()
    device_message_id = UnicodeAttribute()
    phone_number = UnicodeAttribute()
    body = UnicodeAttribute()
    sim_slot = NumberAttribute(null=True)
    received_at = NumberAttribute()
    created_at = NumberAttribute()
    retain_until = TTLAttribute(null=True)


class Idempotency(Model):
    """Claims a client's idempotency key (or a device's incoming-SMS id) for one record; or,
    for a whole request (domain/idempotency.py), its digest (`request`) and, once answered,
    its answer (`answer`, zlib-compressed JSON; message_id 0)."""
    Meta = table_meta("idempotency")
    key = UnicodeAttribute(hash_key=True)
    message_id = NumberAttribute()
    created_at = NumberAttribute()
    expires = TTLAttribute()
    # An SMSGate message (messages/groups.py): what its request was and its recipients' messages.
    fingerprint = UnicodeAttribute(null=True)
    members = ListAttribute(of=NumberAttribute, null=True)
    request = UnicodeAttribute(null=True)
    answer = BinaryAttribute(null=True, legacy_encoding=False)


class OptOut(Model):
    """A recipient's choice for one account: `opted_out` True after STOP (or the owner's add),
    False after START (or the owner's removal), kept so its stream gives contact.opted_in."""
    Meta = table_meta("opt-outs", stream=True)
    account_id = UnicodeAttribute(hash_key=True)
    phone_number = UnicodeAttribute(range_key=True)
    opted_out = BooleanAttribute()
    changed_at = NumberAttribute()
    source = UnicodeAttribute()  # "sms" (the keyword from the phone), "owner"
    keyword = UnicodeAttribute(null=True)
    device_uid = UnicodeAttribute(null=True)  # the phone that received the keyword
    replied_at = NumberAttribute(null=True)  # the last confirmation reply (one a day)


OTP_SEND_SLOTS = tuple(f"sent_{i}" for i in range(settings.current().otp_hourly_cap))


class Otp(Model):
    """The one live code per (account, phone number), stored only as an HMAC.

    `sent_0`..`sent_{cap-1}` (top-level, so one UpdateItem can fill them on a new item) hold the
    times of the last OTP_HOURLY_CAP sends, oldest first: the conditional write that replaces the
    code shifts them, so cooldown and hourly cap need no read. `expires` (TTL) outlives the code
    by the hour the cap looks back; `expires_at` is what every read and condition checks.
    """
    Meta = table_meta("otps")
    key = UnicodeAttribute(hash_key=True)  # account_id#E.164
    code_hmac = UnicodeAttribute(null=True)
    created_at = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)
    tries = NumberAttribute(default=0)  # guesses counted (right or wrong) since the last send
    # HMACs of those guesses: a repeat is not counted twice, and the code's own HMAC here means
    # the code was used (otp.verify).
    guesses = UnicodeSetAttribute(null=True)
    expires = TTLAttribute(null=True)
    vars().update({name: NumberAttribute(null=True) for name in OTP_SEND_SLOTS})


CORE_MODELS = (Account, ApiKey, Device, Message, IncomingMessage, Idempotency, Otp, OptOut)


def __getattr__(name):
    """`tables.MODELS`: every model of the gateway (the template, the policy, the local gateway
    and the tests enumerate it). The webhook and dashboard models are imported on first use, so
    a request that needs neither does not build their classes at cold start. New model modules
    are listed here."""
    if name == "MODELS":
        from chalicelib.storage import dashboard_tables, insight_tables, webhook_tables
        return (*CORE_MODELS, webhook_tables.Webhook, webhook_tables.WebhookDelivery,
                *dashboard_tables.MODELS, *insight_tables.MODELS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_all(wait: bool = False) -> None:
    """Create missing tables (local gateway and tests; AWS gets them from the template)."""
    for model in __getattr__("MODELS"):
        if not model.exists():
            model.create_table(wait=wait, billing_mode="PAY_PER_REQUEST")
