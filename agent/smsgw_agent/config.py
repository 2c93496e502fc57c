"""Agent settings: defaults, then a TOML file (`--config` or SMSGW_CONFIG), then the environment,
then command-line flags."""
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

ENV = {  # environment variable -> field
    "SMSGW_URL": "url", "SMSGW_DEVICE_TOKEN": "token", "SMSGW_BACKEND": "backend",
    "SMSGW_JOURNAL": "journal", "SMSGW_POLL_WAIT": "poll_wait", "SMSGW_SIM_COUNT": "sim_count",
    "SMSGW_HEARTBEAT_SECONDS": "heartbeat_seconds",
    "SMSGW_INCOMING_SECONDS": "incoming_seconds", "SMSGW_REPORT_HOLD": "report_hold",
    "SMSGW_POLL_MODE": "mode",
    "SMSGW_SIM_FAILURE_RATE": "failure_rate", "SMSGW_SIM_DELIVERY_DELAY": "delivery_delay",
    "SMSGW_SIM_LEDGER": "ledger", "SMSGW_SIM_INBOX": "inbox",
    "SMSGW_E2E_PASSPHRASE": "e2e_passphrase", "SMSGW_CA_FILE": "ca_file",
}


class ConfigError(ValueError):
    pass


@dataclass
class AgentConfig:
    url: str = ""
    token: str = ""
    backend: str = "termux"  # termux | simulator
    journal: str = field(default_factory=lambda: str(Path.home() / ".smsgw-agent" /
                                                     "journal.sqlite3"))
    # gateway: long-poll GET /device/jobs; direct: long-poll the device's SQS queue with
    # credentials the gateway vends (needs boto3; no Lambda is billed while waiting); auto:
    # direct when the gateway offers it (and boto3 is installed), gateway otherwise
    mode: str = "auto"
    poll_wait: int = 20  # seconds a job poll may wait (long poll)
    max_jobs: int = 10
    sim_count: int | None = None
    heartbeat_seconds: float = 40.0
    # seconds a `sent` report waits for the same message's `delivered`, so both go in one call
    # (one write on the gateway); well inside the gateway's lease (60 s). 0: report at once.
    report_hold: float = 10.0
    incoming_seconds: float = 15.0  # how often the phone's inbox is read
    push_existing: bool = False  # on the first run, also push SMS already in the inbox
    # decrypts end-to-end encrypted messages (SMSGate's format; needs the "e2e" extra); the
    # gateway never sees it, and sends encrypted messages only to agents that have one
    e2e_passphrase: str | None = None
    # a PEM file of the CA(s) the gateway's HTTPS certificate is checked against, instead of the
    # system's (a local gateway's own CA, `./run-local --tls`); the check itself is never skipped
    ca_file: str | None = None
    # simulator only
    failure_rate: float = 0.0
    delivery_delay: float = 2.0  # seconds from "sent" to "delivered"; negative: never delivered
    ledger: str | None = None  # JSON-lines file of every simulated send
    inbox: str | None = None  # JSON-lines file the simulator reads incoming SMS from
    # testing only: exit abruptly at a point of the job's handling: 'take' (leased, not sent),
    # 'backend' (sent, outcome not yet journaled) or 'send' (sent and journaled, not reported)
    crash_after: str | None = None

    def check(self) -> "AgentConfig":
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError("Set the gateway URL (SMSGW_URL or url = ...), http(s)://...")
        self.url = self.url.rstrip("/")
        uid, _, secret = self.token.partition(".")
        if len(uid) != 16 or not secret:
            raise ConfigError("Set the device token (SMSGW_DEVICE_TOKEN or token = ...), "
                              "'<device_uid>.<secret>' as the gateway showed it.")
        if self.backend not in ("termux", "simulator"):
            raise ConfigError("backend must be termux or simulator.")
        if self.mode not in ("auto", "gateway", "direct"):
            raise ConfigError("mode must be auto, gateway or direct.")
        if not 0 <= self.poll_wait <= 20:
            raise ConfigError("poll_wait must be 0-20 seconds.")
        if not 0.0 <= self.report_hold <= 30.0:
            raise ConfigError("report_hold must be 0-30 seconds (well inside the lease).")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ConfigError("failure_rate must be between 0 and 1.")
        if self.ca_file and not os.path.isfile(self.ca_file):
            raise ConfigError(f"ca_file {self.ca_file}: no such file (a PEM CA certificate).")
        if self.sim_count not in (None, 1, 2):
            raise ConfigError("sim_count must be 1 or 2.")
        return self


def _convert(name: str, value):
    kind = {f.name: f.type for f in fields(AgentConfig)}[name]
    if isinstance(value, str):
        if "int" in str(kind) and "float" not in str(kind):
            return int(value) if value.strip() else None
        if "float" in str(kind):
            return float(value)
        if "bool" in str(kind):
            return value.strip().lower() in ("1", "true", "yes", "on")
    return value


def _paired_config(environ) -> str | None:
    """The file `smsgw-agent pair` writes by default, when it exists."""
    home = environ.get("HOME")
    candidate = Path(home) / ".smsgw-agent" / "config.toml" if home else None
    return str(candidate) if candidate and candidate.is_file() else None


def load(path: str | None = None, environ=None, **overrides) -> AgentConfig:
    environ = os.environ if environ is None else environ
    values = {}
    path = path or environ.get("SMSGW_CONFIG") or _paired_config(environ)
    if path:
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"Cannot read config file {path}: {exc}")
        known = {f.name for f in fields(AgentConfig)}
        unknown = sorted(set(document) - known)
        if unknown:
            raise ConfigError(f"Unknown setting in {path}: {unknown[0]}")
        values.update(document)
    for variable, name in ENV.items():
        if environ.get(variable):
            values[name] = environ[variable]
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        values = {k: _convert(k, v) for k, v in values.items()}
    except ValueError as exc:
        raise ConfigError(f"Bad setting: {exc}")
    return AgentConfig(**values).check()
