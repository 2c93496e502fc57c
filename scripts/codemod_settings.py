"""Rewrite old-style settings reads and test patches to the frozen Settings (issue 32, item 3).

    python scripts/codemod_settings.py [--check] [PATH ...]   # default: the whole repository

- `settings.LEASE_SECONDS` -> `settings.current().lease_seconds` (every UPPER name but the
  module's constants TABLES, EVENT_SOURCE_TABLES, SIGNUP_MODES and MAIL_LANGUAGES);
- `settings.table_name(...)` and the other derived names -> `settings.current().table_name(...)`;
  `settings.mail_dir()` -> `settings.current().mail_dir`; `settings.signup_mode()` ->
  `settings.current().signup`;
- `settings.LEASE_SECONDS = 5` on one line (benches) ->
  `settings.install(settings.current().replace(lease_seconds=5))`;
- in tests, `monkeypatch.setattr(settings, "LEASE_SECONDS", 5)` ->
  `settings_override(lease_seconds=5)`, and `settings_override` is added to the parameters of
  the function around it (a fixture of tests/conftest.py).

`settings` is whatever name the file binds `chalicelib.core.settings` to (`import ... as x`
included). What it cannot rewrite it prints, with the line, for a hand edit: assignments
over several lines, `getattr(settings, ...)`, patches spread over several lines, and
`setenv("SMSGW_...")` in tests that do not start a process. Then it drops the imports of
settings left unused and wraps the lines that grew past 100 columns (after a comma, under the
open bracket; `ruff check` shows the few it cannot wrap). --check lists the files it would
change and exits 1 if any.
"""
import ast
import re
import subprocess
import sys
from pathlib import Path

CONSTANTS = {"TABLES", "EVENT_SOURCE_TABLES", "SIGNUP_MODES", "MAIL_LANGUAGES"}
METHODS = ("table_name", "queue_name", "device_role_path", "webhook_queue_name",
           "stream_failure_queue_name")
RENAMED_CALLS = {"mail_dir": "mail_dir", "signup_mode": "signup"}
LINE = 100
SKIP = {"chalicelib/core/settings.py", "scripts/codemod_settings.py",
        "tests/unit/test_codemod_settings.py"}


def aliases(source: str) -> list[str]:
    """Names the file gives the settings module."""
    found = re.findall(r"from chalicelib\.core import [^\n]*?\bsettings(?: as (\w+))?", source)
    return [alias or "settings" for alias in found]


def rewrite(source: str) -> tuple[str, list[str]]:
    """(new source, lines left for a hand edit)."""
    names = list(dict.fromkeys(aliases(source)))
    if not names:
        return source, []
    manual = []
    for name in names:
        n = re.escape(name)
        patch = re.compile(
            rf"(?P<mp>\w+)\.setattr\(\s*{n}\s*,\s*[\"'](?P<attr>[A-Z][A-Z0-9_]*)[\"']\s*,\s*"
            rf"(?P<value>.*?)\)(?P<tail>\s*(#.*)?)$")
        lines = source.split("\n")
        patched_at = []
        for i, line in enumerate(lines):
            found = patch.search(line)
            if found and found["attr"] not in CONSTANTS and _balanced(found["value"]):
                lines[i] = (line[:found.start()] + f"settings_override({found['attr'].lower()}="
                            f"{found['value']}){found['tail']}")
                patched_at.append(i + 1)
        source = "\n".join(lines)
        source = re.sub(  # outside tests (benches): settings.X = value on one line
            rf"^(?P<indent>[ \t]*){n}\.(?P<attr>[A-Z][A-Z0-9_]*) = (?P<value>[^\n=]+?)"
            rf"(?P<tail>[ \t]*#[^\n]*)?$",
            lambda m, n=name: m[0] if not _balanced(m["value"]) or m["value"].endswith("(")
            else (f"{m['indent']}{n}.install({n}.current().replace({m['attr'].lower()}="
                  f"{m['value']})){m['tail'] or ''}"), source, flags=re.M)
        if patched_at:
            source = _add_fixture(source, patched_at)
            source = _merge_overrides(source)
        source = re.sub(rf"\b{n}\.(mail_dir|signup_mode)\(\)",
                        lambda m, n=name: f"{n}.current().{RENAMED_CALLS[m[1]]}", source)
        source = re.sub(rf"\b{n}\.({'|'.join(METHODS)})\(",
                        lambda m, n=name: f"{n}.current().{m[1]}(", source)
        source = re.sub(rf"\b{n}\.([A-Z][A-Z0-9_]*)\b(?!\s*=[^=])",
                        lambda m, n=name: m[0] if m[1] in CONSTANTS
                        else f"{n}.current().{m[1].lower()}", source)
        for number, line in enumerate(source.split("\n"), 1):
            if re.search(rf"\b{n}\.[A-Z][A-Z0-9_]*\s*=[^=]|getattr\({n}\b|setattr\({n}\b",
                         line) or re.search(r"setenv\([\"']SMSGW_", line):
                manual.append(f"{number}: {line.strip()}")
    return source, manual


def _merge_overrides(source: str) -> str:
    """Consecutive `settings_override(a=1)` lines (the first without a comment) as one call."""
    call = re.compile(r"^(?P<indent>[ \t]*)settings_override\((?P<args>[^#\n]*)\)(?P<tail>.*)$")
    merged = []
    for line in source.split("\n"):
        this, last = call.match(line), call.match(merged[-1]) if merged else None
        joined = (last and this and last["indent"] == this["indent"] and not last["tail"].strip()
                  and f"{this['indent']}settings_override({last['args']}, {this['args']})"
                  f"{this['tail']}")
        if joined and len(joined) <= LINE:
            merged[-1] = joined
        else:
            merged.append(line)
    return "\n".join(merged)


def _balanced(text: str) -> bool:
    return text.count("(") == text.count(")") and text.count("[") == text.count("]")


def _add_fixture(source: str, lines: list[int]) -> str:
    """Add `settings_override` to the parameters of each function holding one of `lines`."""
    tree = ast.parse(source)
    defs = [node for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    targets = {}
    for line in lines:
        around = [d for d in defs if d.lineno <= line <= d.end_lineno]
        if around:
            inner = max(around, key=lambda d: d.lineno)
            if "settings_override" not in {a.arg for a in inner.args.args}:
                targets[inner.lineno] = inner
    text = source.split("\n")
    for node in sorted(targets.values(), key=lambda d: -d.lineno):
        args = node.args.args
        body = "\n".join(text[node.body[0].lineno - 1:node.end_lineno])
        patcher = next((a for a in args if a.arg == "monkeypatch"), None)
        if patcher and not re.search(r"\bmonkeypatch\b", body):  # its last use is gone
            row = patcher.lineno - 1
            text[row] = (text[row][:patcher.col_offset] + "settings_override"
                         + text[row][patcher.end_col_offset:])
        elif args:  # after the last positional parameter
            last = args[-1]
            row = last.end_lineno - 1
            text[row] = (text[row][:last.end_col_offset] + ", settings_override"
                         + text[row][last.end_col_offset:])
        else:
            row = node.lineno - 1
            text[row] = text[row].replace(f"{node.name}()", f"{node.name}(settings_override)", 1)
    return "\n".join(text)


def tidy(paths: list[Path]) -> None:
    """Drop the imports of settings left unused, and wrap the lines the longer reads pushed
    past 100 columns, in the code's own style: after a comma, aligned under the open bracket."""
    files = [str(p) for p in paths]
    subprocess.run([sys.executable, "-m", "ruff", "check", "--fix", "--select", "F401",
                    "--quiet", *files])
    for path in paths:
        old = path.read_text().split("\n")
        new = [part for line in old for part in wrap(line)]
        if new != old:
            path.write_text("\n".join(new))


def wrap(line: str, width: int = LINE) -> list[str]:
    """`line` as lines of at most `width` where a comma inside brackets opened on it allows
    (else as it is: the by-hand list names it)."""
    if len(line) <= width:
        return [line]
    opened, quote, cut = [], None, None
    for i, char in enumerate(line):
        if quote:
            if char == "\\":
                continue
            if line.startswith(quote, i) and (i == 0 or line[i - 1] != "\\"):
                quote = None
        elif char in "\"'":
            quote = line[i:i + 3] if line[i:i + 3] in ('"""', "'''") else char
        elif char == "#":
            break
        elif char in "([{":
            opened.append(i)
        elif char in ")]}":
            if opened:
                opened.pop()
        elif char == "," and opened and i < width - 1 and line[i + 1:i + 2] == " ":
            cut = (i, opened[-1])
    if cut is None:
        return [line]
    comma, bracket = cut
    rest = " " * (bracket + 1) + line[comma + 2:]
    return [line[:comma + 1]] + wrap(rest, width)


def python_files(paths: list[str]) -> list[Path]:
    if paths:
        found = []
        for path in map(Path, paths):
            found += sorted(path.rglob("*.py")) if path.is_dir() else [path]
        return found
    listed = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True,
                            check=True).stdout.split()
    return [Path(p) for p in listed]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    changed = []
    for path in python_files([a for a in argv if a != "--check"]):
        if path.as_posix() in SKIP or not path.exists():
            continue
        old = path.read_text()
        new, manual = rewrite(old)
        if new != old:
            changed.append(path)
            if not check:
                path.write_text(new)
        for line in manual:
            print(f"{path}:{line}  <- by hand")
    for path in changed:
        print(("would rewrite " if check else "rewrote ") + str(path))
    if changed and not check:
        tidy(changed)
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
