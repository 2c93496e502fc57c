"""Every name and limit the gateway reads from its environment, in one place.

Table and queue names here are the ones the deployment template and IAM policy use
(`.chalice/config.json` sets the environment per stage), so code and infrastructure
cannot drift apart.
"""
import os

STAGE = os.environ.get("SMSGW_STAGE", "dev")
PREFIX = os.environ.get("SMSGW_PREFIX", f"smsgw-{STAGE}")
REGION = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"

TABLES = ("accounts", "api-keys", "devices", "messages", "incoming", "idempotency", "otps",
          "opt-outs",
          "webhooks", "webhook-deliveries",
          # the owner's dashboard (chalicelib/storage/dashboard_tables.py)
          "users", "password-links", "sessions", "throttles", "pairing-codes",
          # the owner's insight (chalicelib/storage/insight_tables.py)
          "daily-counts", "counted-windows", "alert-states", "alert-subscriptions",
          # the operator's console (chalicelib/domain/operators.py)
          "operator-log")


def table_name(short: str) -> str:
    """Physical DynamoDB table name for one of TABLES."""
    assert short in TABLES, short
    return f"{PREFIX}-{short}"


def queue_name(device_uid: str) -> str:
    """SQS queue name of one device: the IAM policy grants the `{PREFIX}-device-*` prefix."""
    return f"{PREFIX}-device-{device_uid}"


def device_role_path() -> str:
    """IAM path of the role devices assume in direct polling mode (the Lambda policy grants
    sts:AssumeRole on roles under it; the stack creates exactly one)."""
    return f"/{PREFIX}/"


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Seconds a warm Lambda may reuse an API key or device lookup (revocation takes effect within this).
AUTH_CACHE_SECONDS = _int("SMSGW_AUTH_CACHE_SECONDS", 30)
# Region assumed for numbers written without a +country code; empty means such numbers are rejected.
DEFAULT_REGION = os.environ.get("SMSGW_DEFAULT_REGION", "").upper() or None
MAX_SEGMENTS = _int("SMSGW_MAX_SEGMENTS", 10)
MAX_BODY_BYTES = _int("SMSGW_MAX_BODY_BYTES", 16384)
# How long a device may hold a job before it comes back (SQS visibility timeout = lease).
LEASE_SECONDS = _int("SMSGW_LEASE_SECONDS", 60)
MAX_ATTEMPTS = _int("SMSGW_MAX_ATTEMPTS", 3)
HEARTBEAT_WINDOW_SECONDS = _int("SMSGW_HEARTBEAT_WINDOW_SECONDS", 120)
# The heartbeat interval the gateway suggests to devices; any call that counts as a sign of life
# (poll, claim, report, credentials) postpones a heartbeat (docs/cost.md: deployed stages use a
# 240 s interval in a 540 s window, so a silent phone shows `stopped` within 9-10 minutes).
HEARTBEAT_SECONDS = max(1, _int("SMSGW_HEARTBEAT_SECONDS", HEARTBEAT_WINDOW_SECONDS // 3))
MAX_POLL_WAIT_SECONDS = _int("SMSGW_MAX_POLL_WAIT_SECONDS", 20)
# Live GET /device/jobs polls one device token may hold at once (each holds a Lambda while it
# waits); a poll beyond them is refused with 429 until one ends (docs/hardening.md).
MAX_LIVE_POLLS = max(1, _int("SMSGW_MAX_LIVE_POLLS", 2))
# Default validity of an outgoing message: not sent by then, it ends `expired`.
MESSAGE_VALIDITY_SECONDS = _int("SMSGW_MESSAGE_VALIDITY_SECONDS", 24 * 3600)
# Shortest validity a caller may ask for (valid_for / expires_at). 60 s in production; soak runs
# lower it so messages expire within a short test.
MIN_VALIDITY_SECONDS = max(1, _int("SMSGW_MIN_VALIDITY_SECONDS", 60))
RETENTION_DAYS = _int("SMSGW_RETENTION_DAYS", 90)
IDEMPOTENCY_SECONDS = _int("SMSGW_IDEMPOTENCY_SECONDS", 24 * 3600)
# A `pending` message not taken by its device within this is queued again (in case the first
# queue call was lost), then again after twice as long, and so on.
OUTBOX_GRACE_SECONDS = _int("SMSGW_OUTBOX_GRACE_SECONDS", 120)
OPEN_SHARDS = _int("SMSGW_OPEN_SHARDS", 8)
# The sweeps' first look (domain/first_look.py) reads messages at least this old. It must exceed
# the longest a send can take from choosing its id to its write (the API function's timeout,
# 25 s) plus clock skew: tests/api/test_first_look.py checks it against the deployed timeout.
FIRST_LOOK_SECONDS = _int("SMSGW_FIRST_LOOK_SECONDS", 60)
# Messages one first look reads per account per run (one consistent Query page or a few).
FIRST_LOOK_PAGE = _int("SMSGW_FIRST_LOOK_PAGE", 1000)
# A sweep run stops taking messages after this many seconds (the functions' timeout is 120 s);
# the rest stay due for the next run. bench/scale.py measures a run with a 10,000 backlog.
SWEEP_BUDGET_SECONDS = _int("SMSGW_SWEEP_BUDGET_SECONDS", 45)
MAX_VALIDITY_SECONDS = 7 * 24 * 3600
# Direct polling (docs/device-protocol.md): devices long-poll their own SQS queue with
# credentials vended by POST /device/credentials, by assuming this role with a session policy
# scoped to their queue. Unset: the mode is off and devices poll GET /device/jobs.
DEVICE_ROLE_ARN = os.environ.get("SMSGW_DEVICE_ROLE_ARN", "")
# Lifetime of those credentials: 15 min to 1 h (a Lambda role assuming a role is "role chaining",
# which AWS caps at one hour).
DEVICE_CREDENTIALS_SECONDS = min(3600, max(900, _int("SMSGW_DEVICE_CREDENTIALS_SECONDS", 3600)))

# One-time passcodes: wrong guesses allowed per code, seconds between sends to one number, and
# sends per number per account in any sliding hour.
OTP_MAX_TRIES = max(1, _int("SMSGW_OTP_MAX_TRIES", 5))
OTP_COOLDOWN_SECONDS = max(0, _int("SMSGW_OTP_COOLDOWN_SECONDS", 30))
OTP_HOURLY_CAP = max(1, _int("SMSGW_OTP_HOURLY_CAP", 5))
# The HMAC key for stored codes: given directly (local runs, tests) or, on AWS, the name of an
# SSM Parameter Store SecureString read once per container. Never kept in the repository.
OTP_SECRET = os.environ.get("SMSGW_OTP_SECRET", "")
OTP_SECRET_PARAM = os.environ.get("SMSGW_OTP_SECRET_PARAM", "")

# Webhooks (docs/webhooks.md). Events come from the DynamoDB streams of these tables.
EVENT_SOURCE_TABLES = ("messages", "incoming", "devices", "opt-outs")
EVENTS_STREAM_PLACEHOLDER = (f"arn:aws:dynamodb:{REGION}:000000000000:table/"
                             f"{PREFIX}-messages/stream/placeholder")


def webhook_queue_name(dead_letter: bool = False) -> str:
    """The one SQS queue webhook deliveries wait in (and its dead-letter queue)."""
    return f"{PREFIX}-webhooks" + ("-dlq" if dead_letter else "")


def stream_failure_queue_name() -> str:
    """Where the stream functions' mappings record the batches they gave up on (deploy/)."""
    return f"{PREFIX}-stream-failures"


def _flag(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0").strip().lower() in ("1", "true", "yes")


# http:// and private/loopback/link-local receivers: allowed by default only on the local
# gateway's stage (a developer's own receiver); refused on every AWS stage. A local gateway
# that listens beyond loopback refuses the private ones unless its owner opts in
# (local_gateway.py --allow-private-webhooks), and still allows http://.
WEBHOOK_ALLOW_PRIVATE = _flag("SMSGW_WEBHOOK_ALLOW_PRIVATE", STAGE == "local")
WEBHOOK_ALLOW_HTTP = _flag("SMSGW_WEBHOOK_ALLOW_HTTP", STAGE == "local")
WEBHOOK_TIMEOUT_SECONDS = min(10.0, float(os.environ.get("SMSGW_WEBHOOK_TIMEOUT_SECONDS", 10)))
# Multiplies the retry schedule (tests and soaks shrink it; production keeps 1).
WEBHOOK_RETRY_SCALE = float(os.environ.get("SMSGW_WEBHOOK_RETRY_SCALE", 1))
# An endpoint with no success for this long, and at least WEBHOOK_DISABLE_MIN_FAILURES failed
# attempts in a row, is disabled automatically.
WEBHOOK_DISABLE_AFTER_SECONDS = _int("SMSGW_WEBHOOK_DISABLE_AFTER_SECONDS", 3 * 86400)
WEBHOOK_DISABLE_MIN_FAILURES = max(1, _int("SMSGW_WEBHOOK_DISABLE_MIN_FAILURES", 20))
WEBHOOK_LOG_DAYS = _int("SMSGW_WEBHOOK_LOG_DAYS", 30)
# Seconds a warm function may reuse an account's endpoint list (a new endpoint gets events
# within this).
WEBHOOK_CACHE_SECONDS = _int("SMSGW_WEBHOOK_CACHE_SECONDS", 10)
WEBHOOK_MAX_PER_ACCOUNT = _int("SMSGW_WEBHOOK_MAX_PER_ACCOUNT", 10)  # quotas.WEBHOOKS' default


# Phones as a pool (docs/pool.md, "Pacing"): two limits, each in SMS parts. Per phone, a sliding
# window: Android's SmsUsageMonitor asks the user before an app's 31st part in 30 minutes
# (sms_outgoing_check_max_count 30, sms_outgoing_check_interval_ms 1,800,000), which stops an
# unattended phone; the default is exactly that window, of which bulk may use all but the OTP
# reserve. Per SIM, the carrier's rate in any hour, inside carriers' usual 30-200. 0 (either
# default) turns that limit off for devices without their own value.
PACE_WINDOW_PARTS = max(0, _int("SMSGW_PACE_WINDOW_PARTS", 30))
PACE_WINDOW_SECONDS = max(1, _int("SMSGW_PACE_WINDOW_SECONDS", 1800))
DEFAULT_PACE_PER_HOUR = max(0, _int("SMSGW_DEFAULT_PACE_PER_HOUR", 60))
PACE_RATE_SECONDS = max(1, _int("SMSGW_PACE_RATE_SECONDS", 3600))
# Parts of each limit that only OTPs (and urgent messages) may use (at most half the limit).
PACE_OTP_RESERVE = max(0, _int("SMSGW_PACE_OTP_RESERVE", 5))
MAX_PACE_PER_HOUR = 36000
MAX_WINDOW_PARTS = 10000
# The most distinct hand-out times a device's pacing log keeps (6 bytes each on the device item,
# which must stay under 1 KB so a send's slot write costs one write unit; bursts share one).
PACE_LOG_ENTRIES = 48
# A message sent without a named device that its device has not taken this long after its
# paced send time moves to another running device of the account.
POOL_GRACE_SECONDS = max(1, _int("SMSGW_POOL_GRACE_SECONDS", 60))
# Automatic choice reads the account's devices once per this many seconds per warm container.
POOL_CACHE_SECONDS = max(0, _int("SMSGW_POOL_CACHE_SECONDS", 5))
# Automatic choice accepts a message only if some device can send it within this backlog.
POOL_BACKLOG_SECONDS = max(60, _int("SMSGW_POOL_BACKLOG_SECONDS", 3600))
# A SIM whose phone reported "limit exceeded" / "no service" rests this long.
SIM_PAUSE_LIMIT_SECONDS = max(1, _int("SMSGW_SIM_PAUSE_LIMIT_SECONDS", 1800))
SIM_PAUSE_SERVICE_SECONDS = max(1, _int("SMSGW_SIM_PAUSE_SERVICE_SECONDS", 300))
# SQS's longest DelaySeconds: later paced messages are held and released by the outbox sweep.
MAX_QUEUE_DELAY_SECONDS = 900
# The gateway's public base URL as the dashboard shows it (QR codes, API examples, links).
# Unset: API Gateway's domain and stage, or locally the Host the browser used.
PUBLIC_URL = os.environ.get("SMSGW_PUBLIC_URL", "").rstrip("/")
# How far ahead a send may be scheduled (REST v1 send_at).
MAX_SCHEDULE_SECONDS = 30 * 24 * 3600
# SMSGate app phones (surfaces/smsgate/mobile.py): how long GET /mobile/v1/events waits for a
# job before answering (0: at once; the app's pull on every reconnect is then the doorbell).
MOBILE_EVENTS_HOLD_SECONDS = _int("SMSGW_MOBILE_EVENTS_HOLD_SECONDS", 0)


# Alert mails (chalicelib/domain/insight/alerts.py): sent through SES from this verified
# identity on AWS (the template's AlertSender parameter); without one, written as .eml files
# under SMSGW_MAIL_DIR (the local gateway's data folder) and their subject printed.
ALERT_SENDER = os.environ.get("SMSGW_ALERT_SENDER", "")


def mail_dir() -> str:
    """Read when mailing: the local gateway sets it after this module may have loaded."""
    return os.environ.get("SMSGW_MAIL_DIR", "")


ALERT_MIN_SECONDS = _int("SMSGW_ALERT_MIN_SECONDS", 3600)  # one mail per cause per hour

SIGNUP_MODES = ("closed", "invite", "open")


def signup_mode() -> str:
    """Who may create an account from the sign-in page (domain/signup.py): `closed` (the
    default: the operator's CLI only), `invite` (for now the same as closed: invitations are
    not built yet) or `open` (the local gateway's default). Read when asked, like mail_dir."""
    mode = os.environ.get("SMSGW_SIGNUP", "closed").strip().lower()
    return mode if mode in SIGNUP_MODES else "closed"


# The operator's quotas per account (chalicelib/domain/quotas.py, docs/operator.md): the stage's
# defaults, which an operator may change per account (`smsgw operator quota`); 0 is no limit.
# Webhook endpoints: WEBHOOK_MAX_PER_ACCOUNT above is that quota's default.
QUOTA_MESSAGES_PER_DAY = max(0, _int("SMSGW_QUOTA_MESSAGES_PER_DAY", 0))  # UTC days
QUOTA_PHONES = max(0, _int("SMSGW_QUOTA_PHONES", 0))
QUOTA_REQUESTS_PER_MINUTE = max(0, _int("SMSGW_QUOTA_REQUESTS_PER_MINUTE", 0))  # per API key
