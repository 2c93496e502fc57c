"""The local gateway's data folder (default `local-data/` in the project, ignored by git):

    snapshot.json   the emulated AWS state (localgw.snapshot), restored at start
    config.json     what must stay the same across restarts: the OTP secret, the emulator port
    demo.json       the demo account's key and device token (so they keep working)
    inbox.jsonl     SMS the demo phone "receives" (append lines to it)
    gateway.json    present while a gateway runs: its URL and emulator endpoint, so the admin
                    CLI (`smsgw ...`) finds it by itself
    lock            held by the running gateway: two gateways never share one folder

It holds message texts, incoming SMS (one-time codes too), password hashes, webhook secrets and
keys: the folder is 0700 and every file in it is created 0600 (`create_private`), never
loosened and then tightened by a chmod (a reader could open it in between). The running
gateway also sets its umask to 077 (local_gateway.main), for files made by libraries (SQLite).
"""
import fcntl
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "local-data"
STATE_FILE = "gateway.json"


class DataDirBusy(Exception):
    pass


def data_dir(option: str | None = None) -> Path:
    """The folder in use: --data, else $SMSGW_DATA, else local-data/ in the project."""
    return Path(option or os.environ.get("SMSGW_DATA") or DEFAULT_DIR).resolve()


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


PRIVATE_FILE, PRIVATE_FOLDER = 0o600, 0o700


def create_private(path, flags: int = os.O_WRONLY | os.O_TRUNC) -> int:
    """A descriptor of `path`, created 0600 when it does not exist (the mode is the one it is
    born with: os.open applies it at creation, so there is no moment it is readable by
    others)."""
    return os.open(path, flags | os.O_CREAT, PRIVATE_FILE)


def private_folder(path: Path) -> Path:
    """`path` as a folder only its owner can list and enter: made 0700, or narrowed to it if an
    older version made it 0755 (what is inside is then unreachable for others)."""
    path = Path(path)
    path.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_FOLDER)
    return path


def write_json(path: Path, value: dict) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with os.fdopen(create_private(temporary), "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
    os.replace(temporary, path)


class DataDir:
    """An opened data folder: locked for this process until close()."""

    def __init__(self, path: Path):
        self.path = private_folder(path)
        self._lock = os.fdopen(create_private(self.path / "lock", os.O_RDWR | os.O_APPEND),
                               "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            state = read_json(self.path / STATE_FILE) or {}
            raise DataDirBusy(f"another local gateway uses {self.path}"
                              + (f" (pid {state['pid']}, {state.get('url')})" if state else "")
                              + ": stop it, or start this one with --data DIR or --memory")
        self.config = read_json(self.path / "config.json") or {}

    def file(self, name: str) -> str:
        return str(self.path / name)

    def remember(self, **values) -> None:
        self.config.update(values)
        write_json(self.path / "config.json", self.config)

    def demo(self) -> dict | None:
        return read_json(self.path / "demo.json")

    def save_demo(self, info: dict) -> None:
        write_json(self.path / "demo.json", info)

    def announce(self, state: dict) -> None:
        write_json(self.path / STATE_FILE, {"pid": os.getpid(), **state})

    def close(self) -> None:
        try:
            (self.path / STATE_FILE).unlink()
        except FileNotFoundError:
            pass
        self._lock.close()


def running_gateway(path: Path | None = None) -> dict | None:
    """The state of the local gateway running on the data folder, or None if none runs (its
    lock is free: a gateway that was killed leaves gateway.json but not the lock)."""
    folder = path or data_dir()
    state = read_json(folder / STATE_FILE)
    if not state:
        return None
    try:
        with os.fdopen(create_private(folder / "lock", os.O_RDWR | os.O_APPEND), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return state
    except OSError:
        return None
    return None


def use_local_gateway() -> dict | None:
    """For the admin CLI: with no stage chosen (no SMSGW_STAGE, no AWS_ENDPOINT_URL), point the
    environment at the local gateway running on the data folder. Returns its state, or None."""
    if os.environ.get("SMSGW_STAGE") or os.environ.get("AWS_ENDPOINT_URL"):
        return None
    state = running_gateway()
    if state:
        os.environ.update({
            "SMSGW_STAGE": state.get("stage", "local"), "AWS_ENDPOINT_URL": state["aws_endpoint"],
            "AWS_DEFAULT_REGION": state.get("region", "us-east-1"),
            "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
            "SMSGW_AUTH_CACHE_SECONDS": os.environ.get("SMSGW_AUTH_CACHE_SECONDS", "2")})
        for name in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
            os.environ.pop(name, None)
    return state
