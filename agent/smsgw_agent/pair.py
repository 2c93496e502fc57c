"""`smsgw-agent pair <gateway-url> <code>` (or `smsgw-agent pair '<link from the QR code>'`):
redeem a pairing code the dashboard showed for this phone's device token, and store URL and
token in the agent's config file, so a plain `smsgw-agent` then runs as that device. Nobody
copies a token by hand."""
import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

DEFAULT_CONFIG = Path.home() / ".smsgw-agent" / "config.toml"


class PairError(Exception):
    pass


def parse_target(target: str, code: str | None) -> tuple[str, str]:
    """(gateway base URL, code) from `URL CODE` or from the QR code's `URL/device/pair?code=`."""
    if not target.startswith(("http://", "https://")):
        raise PairError("the gateway URL must start with http:// or https://")
    parts = urlsplit(target)
    if code is None:
        found = parse_qs(parts.query).get("code")
        if not parts.path.endswith("/device/pair") or not found:
            raise PairError("give the pairing code too: smsgw-agent pair <gateway-url> <code>")
        return target[:target.index("/device/pair")], found[0]
    return target.rstrip("/"), code


def redeem(url: str, code: str, sim_count: int | None = None, timeout: float = 20.0) -> dict:
    body = {"code": code}
    if sim_count:
        body["sim_count"] = sim_count
    try:
        answer = requests.post(f"{url}/device/pair", json=body, timeout=timeout,
                               headers={"User-Agent": "smsgw-agent/0.1"})
    except requests.RequestException as exc:
        raise PairError(f"cannot reach {url}: {exc}")
    try:
        document = answer.json()
    except ValueError:
        raise PairError(f"{url} answered HTTP {answer.status_code}, not the gateway's JSON")
    if answer.status_code != 200:
        raise PairError((document.get("error") or {}).get("message")
                        or f"HTTP {answer.status_code}")
    return document


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string of printable ASCII is a valid TOML basic string


def write_config(path: Path, url: str, token: str, sim_count: int | None) -> None:
    """Write (or update) url/token/sim_count in the TOML config, readable by its owner only."""
    lines = []
    if path.exists():
        keep = ("url", "token", "sim_count")
        lines = [line for line in path.read_text().splitlines()
                 if line.split("=", 1)[0].strip() not in keep]
    lines = [f"url = {toml_string(url)}", f"token = {toml_string(token)}"] + (
        [f"sim_count = {sim_count}"] if sim_count else []) + lines
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(temporary, path)


def main(argv) -> int:
    parser = argparse.ArgumentParser(prog="smsgw-agent pair", description=__doc__)
    parser.add_argument("target", help="gateway URL, or the link in the dashboard's QR code")
    parser.add_argument("code", nargs="?", help="the pairing code the dashboard shows")
    parser.add_argument("--config", default=os.environ.get("SMSGW_CONFIG") or
                        str(DEFAULT_CONFIG), help="config file to store URL and token in "
                        f"(default: $SMSGW_CONFIG or {DEFAULT_CONFIG})")
    parser.add_argument("--sim-count", type=int, choices=[1, 2], dest="sim_count")
    args = parser.parse_args(argv)
    try:
        url, code = parse_target(args.target, args.code)
        device = redeem(url, code, args.sim_count)
    except PairError as exc:
        print(f"smsgw-agent pair: {exc}", file=sys.stderr)
        return 1
    write_config(Path(args.config), url, device["device_token"], args.sim_count)
    print(f"Paired: this phone is device {device['device_id']} ({device['name']}, uid "
          f"{device['device_uid']}).\nSaved to {args.config}. Start sending with: smsgw-agent"
          + ("" if Path(args.config) == DEFAULT_CONFIG else f" --config {args.config}"))
    return 0
