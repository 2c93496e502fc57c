"""How long the strict JSON reader (chalicelib/surfaces/jsonbody.py) takes on hostile bodies, as
against a benign body of the same size: these routes parse before they know who is asking.

"before" is the string-stripping regular expression the reader used until issue 30, run on the
same body in a child process with a time limit; past it, the figure is extrapolated from the
same shape at smaller sizes (its time grows with the square of the size).

    python bench/json_parse.py [--before-limit SECONDS]
"""
import json
import re
import subprocess
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

SIZES = (24 * 1024, 256 * 1024)
OLD_STRINGS = rb'"(?:[^"\\]|\\.)*"'  # the reader's pattern before issue 30


def _fill(size: int, head: bytes, unit: bytes, tail: bytes = b"") -> bytes:
    body = head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail
    return body + b" " * (size - len(body))


def benign(size: int) -> bytes:
    """A 1,000-recipient send whose text fills the rest: the largest body a client sends."""
    numbers = json.dumps([f"+4917{n:09d}" for n in range(1000)]).encode()
    head = b'{"recipients": ' + numbers + b', "message": "'
    return _fill(size, head, "Grüße, ".encode(), b'"}')


def hostile(size: int) -> dict:
    """Bodies shaped to cost a reader the most: strings that never close, escapes, nesting,
    brackets inside strings, values by the thousand, duplicate keys, a lone surrogate."""
    return {
        "unclosed strings": _fill(size, b"", b'"a'),
        "unclosed after escapes": _fill(size, b"", b'"\\'),
        "escaped quotes": _fill(size, b'["', b'\\"', b'"]'),
        "escaped backslashes": _fill(size, b'["', b"\\\\", b'"]'),
        "unicode escapes": _fill(size, b'{"message": "', b"\\u00e9", b'"}'),
        "brackets in strings": _fill(size, b"[", b'"[{",', b'"x"]'),
        "deep arrays": b"[" * (size // 2) + b"]" * (size // 2),
        "deep objects": _fill(size, b"", b'{"a":'),
        "unclosed arrays": b"[" * size,
        "many values": _fill(size, b"[", b"0,", b"0]"),
        "many objects": _fill(size, b"[", b"{},", b"{}]"),
        "nested objects": _fill(size, b"[", b'{"a":{"b":{"c":[]}}},', b"{}]"),
        "duplicate keys": _fill(size, b"{", b'"a":1,', b'"a":1}'),
        "lone surrogate": _fill(size, b'{"m": "', b"x", b'\\ud800"}'),
    }


def time_parse(body: bytes, repeats: int = 5) -> float:
    """Best of `repeats` runs of jsonbody.parse, in seconds (a refusal counts as done)."""
    from chalicelib.core.errors import BadRequest
    from chalicelib.surfaces import jsonbody
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            jsonbody.parse(body, len(body))
        except BadRequest:
            pass
        best = min(best, time.perf_counter() - started)
    return best


def _old_strip(body: bytes) -> float:
    started = time.perf_counter()
    re.sub(OLD_STRINGS, b'""', body, flags=re.DOTALL)
    return time.perf_counter() - started


def old_time(body: bytes, limit: float) -> tuple[float, bool]:
    """(seconds, measured) of the old regex on `body`, in a child process killed at `limit`;
    past it, extrapolated (quadratic) from the largest quarter size that finished."""
    probe = (f"import re,sys,time;b=sys.stdin.buffer.read();t=time.perf_counter();"
             f"re.sub({OLD_STRINGS!r},b'\"\"',b,flags=re.DOTALL);print(time.perf_counter()-t)")
    try:
        done = subprocess.run([sys.executable, "-c", probe], input=body, capture_output=True,
                              timeout=limit, check=True)
        return float(done.stdout), True
    except subprocess.TimeoutExpired:
        smaller = old_time(body[:len(body) // 4], limit)[0]
        return smaller * 16, False


def measure(before_limit: float = 20.0) -> list[dict]:
    rows = []
    for size in SIZES:
        base = time_parse(benign(size))
        rows.append({"size": size, "shape": "benign (1,000 recipients + text)",
                     "before_s": _old_strip(benign(size)), "before_measured": True,
                     "after_s": base, "ratio": 1.0})
        for shape, body in hostile(size).items():
            before, measured = old_time(body, before_limit)
            after = time_parse(body)
            rows.append({"size": size, "shape": shape, "before_s": before,
                         "before_measured": measured, "after_s": after, "ratio": after / base})
    return rows


def main() -> None:
    limit = float(sys.argv[sys.argv.index("--before-limit") + 1]) if "--before-limit" in \
        sys.argv else 20.0
    print("| size | body | before (old regex alone) | after (whole parse) | after / benign |")
    print("|---:|---|---:|---:|---:|")
    for row in measure(limit):
        before = f"{row['before_s']:.3f} s" + ("" if row["before_measured"] else " (extrap.)")
        print(f"| {row['size'] // 1024} KB | {row['shape']} | {before} | "
              f"{row['after_s'] * 1000:.2f} ms | {row['ratio']:.1f}x |")


if __name__ == "__main__":
    main()
