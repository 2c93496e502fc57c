"""Every name and limit the gateway reads from its environment, in one frozen `Settings`,
parsed and checked once per process: a bad value stops the start with the variable's name.

Code reads `settings.current().lease_seconds`; tests override through the `settings_override`
fixture (tests/conftest.py). The reference, with each variable's bounds, is docs/settings.md.

Table and queue names here are the ones the deployment template and IAM policy use
(`.chalice/config.json` sets the environment per stage), so code and infrastructure
cannot drift apart.
"""
import os
import re
from dataclasses import dataclass, field, fields

TABLES = ("accounts", "api-keys", "devices", "messages", "incoming", "idempotency", "otps",
          "opt-outs",
          "webhooks", "webhook-deliveries",
          # the owner's dashboard (chalicelib/storage/dashboard_tables.py)
          "users", "password-links", "sessions", "throttles", "pairing-codes",
          # the owner's insight (chalicelib/storage/insight_tables.py)
          "daily-counts", "counted-windows", "alert-states", "alert-subscriptions",
          # the operator's console (chalicelib/domain/operators.py)
          "operator-log")
# Webhooks (docs/webhooks.md). Events come from the DynamoDB streams of these tables.
EVENT_SOURCE_TABLES = ("messages", "incoming", "devices", "opt-outs")
SIGNUP_MODES = ("closed", "invite", "open")
# The languages of the account mails' catalogs (chalicelib/domain/account_mails.py; core cannot
# import it, so tests/unit/test_settings.py checks that the two lists agree).
MAIL_LANGUAGES = ("en",)


class SettingsError(ValueError):
    """A variable of the environment that cannot be used; the message names it."""


# --- how one variable is read ---------------------------------------------------------------
# A field's metadata: env (the variable; none: a fixed limit), parse (text -> value, raising
# ValueError), must (what a good value is, for the message) and default (a value, or a function
# of the fields read before it and the environment). An unset or blank variable takes the
# default.

def _spec(env, default, parse=str, must=""):
    return field(metadata={"env": env, "default": default, "parse": parse, "must": must})


def _fixed(value):
    """A limit of the code (AWS's or the device's), not read from the environment."""
    return field(metadata={"env": None, "default": value})


def _whole(env, default, low=0, high=None, unit="seconds"):
    def parse(raw):
        value = int(raw)  # "abc", "1.5": ValueError
        if value < low or (high is not None and value > high):
            raise ValueError
        return value
    bounds = f"≥ {low}" if high is None else f"from {low} to {high}"
    return _spec(env, default, parse, f"a whole number of {unit} {bounds}")


def _decimal(env, default, high):
    def parse(raw):
        value = float(raw)
        if not 0 < value <= high:  # nan fails too
            raise ValueError
        return value
    return _spec(env, default, parse, f"a number of seconds above 0 and at most {high:g}")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(env, default):
    def parse(raw):
        word = raw.lower()
        if word not in _TRUE + _FALSE:
            raise ValueError
        return word in _TRUE
    return _spec(env, default, parse, "one of 1, true, yes, on, 0, false, no, off")


def _choice(env, default, options):
    def parse(raw):
        if raw.lower() not in options:
            raise ValueError
        return raw.lower()
    return _spec(env, default, parse, "one of " + ", ".join(options))


def _matching(env, default, pattern, must, clean=str):
    def parse(raw):
        if not re.fullmatch(pattern, clean(raw)):
            raise ValueError
        return clean(raw)
    return _spec(env, default, parse, must)


def _name(env, default):
    """A part of AWS resource names (DynamoDB tables, SQS queues, IAM paths)."""
    return _matching(env, default, r"[A-Za-z0-9_-]{1,40}",
                     "1 to 40 letters, digits, '-' or '_'")


# init=False: a generated __init__ of 60 frozen fields costs a cold start ~10 ms to compile;
# instances are made by from_environ and replace.
@dataclass(frozen=True, init=False)
class Settings:
    """The gateway's settings, one field per variable (the field is the variable's name after
    SMSGW_, in lower case). Derived names are methods."""

    stage: str = _name("SMSGW_STAGE", "dev")
    prefix: str = _name("SMSGW_PREFIX", lambda got, _: f"smsgw-{got['stage']}")
    region: str = _spec("AWS_DEFAULT_REGION",
                        lambda got, environ: environ.get("AWS_REGION") or "us-east-1")

    # Seconds a warm Lambda may reuse an API key or device lookup (revocation takes effect
    # within this; 0: no reuse).
    auth_cache_seconds: int = _whole("SMSGW_AUTH_CACHE_SECONDS", 30)
    # Region assumed for numbers written without a +country code; None: such numbers are
    # rejected.
    default_region: str | None = _matching(
        "SMSGW_DEFAULT_REGION", None, r"[A-Z]{2}", "a two-letter region code such as GB",
        clean=str.upper)
    max_segments: int = _whole("SMSGW_MAX_SEGMENTS", 10, 1, unit="segments")
    max_body_bytes: int = _whole("SMSGW_MAX_BODY_BYTES", 16384, 1, unit="bytes")
    # How long a device may hold a job before it comes back (SQS visibility timeout = lease;
    # SQS allows at most 12 hours).
    lease_seconds: int = _whole("SMSGW_LEASE_SECONDS", 60, 1, 43200)
    max_attempts: int = _whole("SMSGW_MAX_ATTEMPTS", 3, 1, unit="attempts")
    heartbeat_window_seconds: int = _whole("SMSGW_HEARTBEAT_WINDOW_SECONDS", 120, 1)
    # The heartbeat interval the gateway suggests to devices; any call that counts as a sign of
    # life (poll, claim, report, credentials) postpones a heartbeat (docs/cost.md: deployed
    # stages use a 240 s interval in a 540 s window, so a silent phone shows `stopped` within
    # 9-10 minutes).
    heartbeat_seconds: int = _whole("SMSGW_HEARTBEAT_SECONDS",
                                    lambda got, _: max(1, got["heartbeat_window_seconds"] // 3),
                                    1)
    # SQS long polls wait at most 20 s.
    max_poll_wait_seconds: int = _whole("SMSGW_MAX_POLL_WAIT_SECONDS", 20, 0, 20)
    # Live GET /device/jobs polls one device token may hold at once (each holds a Lambda while
    # it waits); a poll beyond them is refused with 429 until one ends (docs/hardening.md).
    max_live_polls: int = _whole("SMSGW_MAX_LIVE_POLLS", 2, 1, unit="polls")
    # Default validity of an outgoing message: not sent by then, it ends `expired`.
    message_validity_seconds: int = _whole("SMSGW_MESSAGE_VALIDITY_SECONDS", 24 * 3600, 1)
    # Shortest validity a caller may ask for (valid_for / expires_at). 60 s in production; soak
    # runs lower it so messages expire within a short test.
    min_validity_seconds: int = _whole("SMSGW_MIN_VALIDITY_SECONDS", 60, 1)
    retention_days: int = _whole("SMSGW_RETENTION_DAYS", 90, 1, unit="days")
    idempotency_seconds: int = _whole("SMSGW_IDEMPOTENCY_SECONDS", 24 * 3600, 1)
    # A `pending` message not taken by its device within this is queued again (in case the
    # first queue call was lost), then again after twice as long, and so on.
    outbox_grace_seconds: int = _whole("SMSGW_OUTBOX_GRACE_SECONDS", 120, 1)
    open_shards: int = _whole("SMSGW_OPEN_SHARDS", 8, 1, unit="shards")
    # The sweeps' first look (domain/first_look.py) reads messages at least this old. It must
    # exceed the longest a send can take from choosing its id to its write (the API function's
    # timeout, 25 s) plus clock skew: tests/api/test_first_look.py checks it against the
    # deployed timeout.
    first_look_seconds: int = _whole("SMSGW_FIRST_LOOK_SECONDS", 60, 1)
    # Messages one first look reads per account per run (one consistent Query page or a few).
    first_look_page: int = _whole("SMSGW_FIRST_LOOK_PAGE", 1000, 1, unit="messages")
    # A sweep run stops taking messages after this many seconds (the functions' timeout is
    # 120 s); the rest stay due for the next run. bench/scale.py measures a 10,000 backlog.
    sweep_budget_seconds: int = _whole("SMSGW_SWEEP_BUDGET_SECONDS", 45, 1)
    max_validity_seconds: int = _fixed(7 * 24 * 3600)
    # Direct polling (docs/device-protocol.md): devices long-poll their own SQS queue with
    # credentials vended by POST /device/credentials, by assuming this role with a session
    # policy scoped to their queue. Empty: the mode is off and devices poll GET /device/jobs.
    device_role_arn: str = _matching("SMSGW_DEVICE_ROLE_ARN", "", r"arn:[^\s]+",
                                     "an IAM role ARN (arn:aws:iam::...)")
    # Lifetime of those credentials: STS's 15 min to 1 h (a Lambda role assuming a role is
    # "role chaining", which AWS caps at one hour).
    device_credentials_seconds: int = _whole("SMSGW_DEVICE_CREDENTIALS_SECONDS", 3600, 900,
                                             3600)

    # One-time passcodes: wrong guesses allowed per code, seconds between sends to one number,
    # and sends per number per account in any sliding hour.
    otp_max_tries: int = _whole("SMSGW_OTP_MAX_TRIES", 5, 1, unit="tries")
    otp_cooldown_seconds: int = _whole("SMSGW_OTP_COOLDOWN_SECONDS", 30)
    otp_hourly_cap: int = _whole("SMSGW_OTP_HOURLY_CAP", 5, 1, unit="codes")
    # The HMAC key for stored codes: given directly (local runs, tests) or, on AWS, the name of
    # an SSM Parameter Store SecureString read once per container. Never kept in the repository.
    otp_secret: str = _spec("SMSGW_OTP_SECRET", "")
    otp_secret_param: str = _spec("SMSGW_OTP_SECRET_PARAM", "")

    # http:// and private/loopback/link-local receivers: allowed by default only on the local
    # gateway's stage (a developer's own receiver); refused on every AWS stage. A local gateway
    # that listens beyond loopback refuses the private ones unless its owner opts in
    # (local_gateway.py --allow-private-webhooks), and still allows http://.
    webhook_allow_private: bool = _flag("SMSGW_WEBHOOK_ALLOW_PRIVATE",
                                        lambda got, _: got["stage"] == "local")
    webhook_allow_http: bool = _flag("SMSGW_WEBHOOK_ALLOW_HTTP",
                                     lambda got, _: got["stage"] == "local")
    webhook_timeout_seconds: float = _decimal("SMSGW_WEBHOOK_TIMEOUT_SECONDS", 10.0, 10.0)
    # Multiplies the retry schedule (tests and soaks shrink it; production keeps 1).
    webhook_retry_scale: float = _decimal("SMSGW_WEBHOOK_RETRY_SCALE", 1.0, 1000.0)
    # An endpoint with no success for this long, and at least webhook_disable_min_failures
    # failed attempts in a row, is disabled automatically.
    webhook_disable_after_seconds: int = _whole("SMSGW_WEBHOOK_DISABLE_AFTER_SECONDS",
                                                3 * 86400, 1)
    webhook_disable_min_failures: int = _whole("SMSGW_WEBHOOK_DISABLE_MIN_FAILURES", 20, 1,
                                               unit="attempts")
    webhook_log_days: int = _whole("SMSGW_WEBHOOK_LOG_DAYS", 30, 1, unit="days")
    # Seconds a warm function may reuse an account's endpoint list (a new endpoint gets events
    # within this).
    webhook_cache_seconds: int = _whole("SMSGW_WEBHOOK_CACHE_SECONDS", 10)
    webhook_max_per_account: int = _whole("SMSGW_WEBHOOK_MAX_PER_ACCOUNT", 10, 1,
                                          unit="endpoints")

    # Phones as a pool (docs/pool.md, "Pacing"): two limits, each in SMS parts. Per phone, a
    # sliding window: Android's SmsUsageMonitor asks the user before an app's 31st part in 30
    # minutes (sms_outgoing_check_max_count 30, sms_outgoing_check_interval_ms 1,800,000),
    # which stops an unattended phone; the default is exactly that window, of which bulk may use
    # all but the OTP reserve. Per SIM, the carrier's rate in any hour, inside carriers' usual
    # 30-200. 0 (either default) turns that limit off for devices without their own value.
    pace_window_parts: int = _whole("SMSGW_PACE_WINDOW_PARTS", 30, 0, 10000, unit="parts")
    pace_window_seconds: int = _whole("SMSGW_PACE_WINDOW_SECONDS", 1800, 1)
    default_pace_per_hour: int = _whole("SMSGW_DEFAULT_PACE_PER_HOUR", 60, 0, 36000,
                                        unit="parts")
    pace_rate_seconds: int = _whole("SMSGW_PACE_RATE_SECONDS", 3600, 1)
    # Parts of each limit that only OTPs (and urgent messages) may use (at most half the limit).
    pace_otp_reserve: int = _whole("SMSGW_PACE_OTP_RESERVE", 5, unit="parts")
    max_pace_per_hour: int = _fixed(36000)
    max_window_parts: int = _fixed(10000)
    # The most distinct hand-out times a device's pacing log keeps (6 bytes each on the device
    # item, which must stay under 1 KB so a send's slot write costs one write unit; bursts
    # share one).
    pace_log_entries: int = _fixed(48)
    # A message sent without a named device that its device has not taken this long after its
    # paced send time moves to another running device of the account.
    pool_grace_seconds: int = _whole("SMSGW_POOL_GRACE_SECONDS", 60, 1)
    # Automatic choice reads the account's devices once per this many seconds per container.
    pool_cache_seconds: int = _whole("SMSGW_POOL_CACHE_SECONDS", 5)
    # Automatic choice accepts a message only if some device can send it within this backlog.
    pool_backlog_seconds: int = _whole("SMSGW_POOL_BACKLOG_SECONDS", 3600, 60)
    # A SIM whose phone reported "limit exceeded" / "no service" rests this long.
    sim_pause_limit_seconds: int = _whole("SMSGW_SIM_PAUSE_LIMIT_SECONDS", 1800, 1)
    sim_pause_service_seconds: int = _whole("SMSGW_SIM_PAUSE_SERVICE_SECONDS", 300, 1)
    # SQS's longest DelaySeconds: later paced messages are held and released by the outbox
    # sweep.
    max_queue_delay_seconds: int = _fixed(900)
    # The gateway's public base URL as the dashboard shows it (QR codes, API examples, links).
    # Empty: API Gateway's domain and stage, or locally the Host the browser used.
    public_url: str = _matching("SMSGW_PUBLIC_URL", "", r"https?://[^\s/]+(/[^\s]*)?",
                                "an http:// or https:// URL", clean=lambda u: u.rstrip("/"))
    # How far ahead a send may be scheduled (REST v1 send_at).
    max_schedule_seconds: int = _fixed(30 * 24 * 3600)
    # SMSGate app phones (surfaces/smsgate/mobile.py): how long GET /mobile/v1/events waits for
    # a job before answering (0: at once; the app's pull on every reconnect is then the
    # doorbell). At most max_poll_wait_seconds.
    mobile_events_hold_seconds: int = _whole("SMSGW_MOBILE_EVENTS_HOLD_SECONDS", 0, 0, 20)

    # Alert mails (chalicelib/domain/insight/alerts.py): sent through SES from this verified
    # identity on AWS (the template's AlertSender parameter); without one, written as .eml
    # files under mail_dir (the local gateway's data folder) and their subject printed.
    alert_sender: str = _matching("SMSGW_ALERT_SENDER", "", r"[^\s@]+@[^\s@]+",
                                  "an e-mail address")
    mail_dir: str = _spec("SMSGW_MAIL_DIR", "")
    alert_min_seconds: int = _whole("SMSGW_ALERT_MIN_SECONDS", 3600)  # one mail per cause
    # Who may create an account from the sign-in page (domain/signup.py): `closed` (the
    # default: the operator's CLI only), `invite` (for now the same as closed: invitations are
    # not built yet) or `open` (the local gateway's default).
    signup: str = _choice("SMSGW_SIGNUP", "closed", SIGNUP_MODES)
    # The language of the account mails (sign-up, reset, invitation): one with a catalog. A
    # language without one fails the start rather than mail English to people the operator
    # meant to address in their own language.
    mail_language: str = _choice("SMSGW_MAIL_LANGUAGE", "en", MAIL_LANGUAGES)
    # Leaving with the data (docs/export.md). The dashboard and REST v1 answer an export zip of
    # at most export_max_bytes (Lambda's response limit is 6 MB, and a binary answer is base64:
    # 4/3) made within export_budget_seconds (the API function's timeout is 25 s); a bigger one
    # is the CLI's (`smsgw account export`). A deleted account is purged from
    # purge_after_seconds after its deletion: by then every credential a warm container cached
    # has expired (auth_cache_seconds), every request it allowed has ended (25 s), and the
    # stream windows counting its last outcomes (300 s) are written (domain/purge.py).
    export_max_bytes: int = _whole("SMSGW_EXPORT_MAX_BYTES", 4 * 1024 * 1024, 1024, 4718592,
                                   unit="bytes")
    export_budget_seconds: int = _whole("SMSGW_EXPORT_BUDGET_SECONDS", 20, 1, 25)
    purge_after_seconds: int = _whole("SMSGW_PURGE_AFTER_SECONDS", 420, 0)
    # Quotas per account (docs/operator.md): the stage's defaults, which an operator may change
    # per account (`smsgw operator quota`); 0 is no limit. Webhook endpoints:
    # webhook_max_per_account is that quota's default.
    quota_messages_per_day: int = _whole("SMSGW_QUOTA_MESSAGES_PER_DAY", 0, 0,
                                         unit="messages")  # UTC days
    quota_phones: int = _whole("SMSGW_QUOTA_PHONES", 0, 0, unit="phones")
    quota_requests_per_minute: int = _whole("SMSGW_QUOTA_REQUESTS_PER_MINUTE", 0, 0,
                                            unit="requests")  # per API key

    @classmethod
    def from_environ(cls, environ=None) -> "Settings":
        """Read and check every variable; SettingsError names each bad one."""
        environ = os.environ if environ is None else environ
        got, errors = {}, []
        for f in fields(cls):
            spec = f.metadata
            raw = (environ.get(spec["env"]) or "").strip() if spec["env"] else ""
            default = spec["default"]
            got[f.name] = default(got, environ) if callable(default) else default
            if raw:
                try:
                    got[f.name] = spec["parse"](raw)
                except ValueError:  # the default stands in, so later defaults can be read
                    errors.append(f"{spec['env']} must be {spec['must']}, got {raw!r}")
        if errors:
            raise SettingsError("; ".join(errors))
        return cls._made(got)

    def replace(self, **changes) -> "Settings":
        """A copy with these fields changed (tests: the settings_override fixture)."""
        unknown = sorted(set(changes) - set(vars(self)))
        if unknown:
            raise TypeError(f"no such setting: {', '.join(unknown)}")
        return self._made(vars(self) | changes)

    @classmethod
    def _made(cls, values: dict) -> "Settings":
        made = object.__new__(cls)
        for name, value in values.items():
            object.__setattr__(made, name, value)
        return made

    # --- names derived from the prefix -------------------------------------------------------
    def table_name(self, short: str) -> str:
        """Physical DynamoDB table name for one of TABLES."""
        assert short in TABLES, short
        return f"{self.prefix}-{short}"

    def queue_name(self, device_uid: str) -> str:
        """SQS queue name of one device: the IAM policy grants the `{prefix}-device-*`
        prefix."""
        return f"{self.prefix}-device-{device_uid}"

    def device_role_path(self) -> str:
        """IAM path of the role devices assume in direct polling mode (the Lambda policy grants
        sts:AssumeRole on roles under it; the stack creates exactly one)."""
        return f"/{self.prefix}/"

    def webhook_queue_name(self, dead_letter: bool = False) -> str:
        """The one SQS queue webhook deliveries wait in (and its dead-letter queue)."""
        return f"{self.prefix}-webhooks" + ("-dlq" if dead_letter else "")

    def stream_failure_queue_name(self) -> str:
        """Where the stream functions' mappings record the batches they gave up on
        (deploy/)."""
        return f"{self.prefix}-stream-failures"

    @property
    def events_stream_placeholder(self) -> str:
        """The stream ARN app.py's decorators name; deploy/ replaces it with the real one."""
        return (f"arn:aws:dynamodb:{self.region}:000000000000:table/"
                f"{self.prefix}-messages/stream/placeholder")


_current: Settings | None = None


def current() -> Settings:
    """The process's settings, read from the environment on first use (a process's start:
    app.py's import, cli.py, local_gateway.py) and never again."""
    global _current
    if _current is None:
        _current = Settings.from_environ()
    return _current


def install(value: Settings) -> Settings:
    """Make `value` the process's settings (the local gateway once it set its environment;
    tests through the settings_override fixture). Returns the one replaced."""
    global _current
    previous, _current = current(), value
    return previous


def refresh(*names: str) -> Settings | None:
    """Read these fields again from the environment, the others kept: the local gateway,
    whose code tests and benches may have imported before it set its environment."""
    global _current
    if _current is None:  # nothing read yet: the first use reads them all
        return None
    fresh = Settings.from_environ()
    _current = _current.replace(**{name: getattr(fresh, name) for name in names})
    return _current
