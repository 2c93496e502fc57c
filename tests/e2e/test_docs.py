"""The documentation's commands, run: every shell block in README.md and docs/*.md.

Convention (also in docs/CONTRIBUTING-docs.md):

- A fenced block tagged ```bash (or sh, shell, console) is RUN, in order with the other blocks
  of the same file, in one bash session (`set -euo pipefail`) from the project root, with a
  fresh data folder ($SMSGW_DATA) and TMPDIR. A new .md file in docs/ is covered by itself.
- `./run-local ...` at the start of a line starts the local gateway in the background (on a free
  port) and waits until it serves; it is stopped at the end of the file. Then
  `eval "$(.venv/bin/smsgw local env)"` gives SMSGW_URL, API_KEY, ACCOUNT_ID, DEVICE_UID, ...
  The blocks' own shell has no $SMSGW_DATA, as a user's has none: `./run-local` and
  `.venv/bin/smsgw` are pointed at the fresh folder, and `smsgw local env` exports it.
- A block fails if a command fails, or if its output holds an error envelope
  (`"status": "error"`) unless the block is tagged `expect-error`.
- A block that cannot run here says why: ```bash skip-test: needs an AWS account. Everything
  else in the file still runs. Blocks without a shell tag (```json, ```text, indented code) are
  not commands.
"""
import json
import os
import re
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHELLS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^[ \t]*```([^\n]*)\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
ERROR_ENVELOPE = re.compile(r'"status":\s*"error"')
MARK = "::smsgw-doc-block::"

PRELUDE = r"""
set -euo pipefail
# The blocks run as pasted in a fresh shell: no $SMSGW_DATA (it is what `smsgw local env`
# exports). Only the gateway and the admin CLI are pointed at this run's own data folder.
__doc_data="$SMSGW_DATA"
unset SMSGW_DATA
__smsgw() { SMSGW_DATA="$__doc_data" .venv/bin/smsgw "$@"; }
__gw_pid=
__stop_gateway() {
  if [ -n "$__gw_pid" ]; then
    kill -TERM "$__gw_pid" 2>/dev/null || true  # a clean stop (background jobs ignore INT)
    wait "$__gw_pid" || true
  fi
  __gw_pid=
}
trap __stop_gateway EXIT
__start_gateway() {
  __stop_gateway
  rm -f "$__doc_data/gateway.json"
  SMSGW_DATA="$__doc_data" ./run-local "$@" --port 0 >>"$SMSGW_DOC_LOG" 2>&1 &
  __gw_pid=$!
  for _ in $(seq 1 600); do
    [ -f "$__doc_data/gateway.json" ] && return 0
    if ! kill -0 "$__gw_pid" 2>/dev/null; then
      echo "./run-local exited" >&2; tail -20 "$SMSGW_DOC_LOG" >&2; return 1
    fi
    sleep 0.2
  done
  echo "./run-local did not start" >&2; return 1
}
"""


def doc_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: Path):
    """(line, info string, body) of every fenced block with a shell tag."""
    text = path.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        info = match.group(1).strip()
        if info.split(" ")[0].lower() in SHELLS:
            yield (text[:match.start()].count("\n") + 1, info,
                   textwrap.dedent(match.group(2)))


def runnable(path: Path):
    return [(line, info, body) for line, info, body in blocks(path) if "skip-test" not in info]


def script_for(path: Path, only=lambda body: True) -> str:
    parts = [PRELUDE]
    for line, _info, body in runnable(path):
        if not only(body):
            continue
        body = re.sub(r"^\./run-local\b", "__start_gateway", body, flags=re.M)
        body = re.sub(r"(?<![\w./-])\.venv/bin/smsgw\b", "__smsgw", body)
        parts.append(f'echo "{MARK}{line}"\n{body}')
    return "\n".join(parts)


def run(script: str, tmp_path: Path):
    """The script in bash with a fresh data folder, TMPDIR and HOME: (process, output, the
    gateway's log)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("SMSGW_")}
    (tmp_path / "tmp").mkdir()
    log = tmp_path / "gateway.log"
    env.update(SMSGW_DATA=str(tmp_path / "data"), SMSGW_DOC_LOG=str(log),
               TMPDIR=str(tmp_path / "tmp"), HOME=str(tmp_path))
    proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the gateway it started too
        output, _ = proc.communicate(timeout=60)
        output += "\n(timed out)"
    return proc, output, log.read_text() if log.exists() else ""


def test_every_skipped_block_says_why():
    for path in doc_files():
        for line, info, _ in blocks(path):
            if "skip-test" in info:
                reason = info.split("skip-test", 1)[1].lstrip(":").strip()
                assert reason, f"{path.name}:{line}: skip-test needs a reason"


def test_the_docs_show_commands_and_run_most_of_them():
    ran = sum(len(runnable(p)) for p in doc_files())
    shown = sum(len(list(blocks(p))) for p in doc_files())
    assert ran >= 10 and shown >= ran


@pytest.mark.parametrize("path", [p for p in doc_files() if runnable(p)],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_doc_commands_run(path, tmp_path):
    done, output, log = run(script_for(path), tmp_path)
    sections = output.split(MARK)
    last = sections[-1].split("\n", 1)[0] if len(sections) > 1 else "?"
    gateway = log[-3000:]
    assert done.returncode == 0, (f"{path.name}: the block at line {last} failed:\n"
                                  f"{sections[-1][-3000:]}\n--- gateway log ---\n{gateway}")
    expect_error = {line for line, info, _ in runnable(path) if "expect-error" in info}
    for section in sections[1:]:
        line, _, out = section.partition("\n")
        if int(line) not in expect_error:
            assert not ERROR_ENVELOPE.search(out), f"{path.name}:{line} answered an error:\n{out}"


def test_the_android_pairing_snippet_tells_the_phone_an_address_it_can_reach(tmp_path):
    """docs/android-app.md's pairing block, as pasted: the app's API URL is HTTPS on this
    machine's LAN address (without --host it was https://127.0.0.1:..., the phone itself)."""
    from local_gateway import lan_addresses
    done, output, log = run(script_for(ROOT / "docs" / "android-app.md",
                                       only=lambda body: "app-token" in body), tmp_path)
    assert done.returncode == 0, output[-3000:] + "\n--- gateway log ---\n" + log[-3000:]
    block = next(b for b in output.split("::smsgw-doc-block::") if '"server_url"' in b)
    pairing = json.loads(block[block.index("{"):block.rindex("}") + 1])
    expected = [f"https://{a}:" for a in lan_addresses()] or ["https://127.0.0.1:"]
    assert pairing["server_url"].startswith(expected[0]), pairing["server_url"]
    assert pairing["server_url"].endswith("/mobile/v1")
