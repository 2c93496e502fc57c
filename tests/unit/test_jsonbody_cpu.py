"""Issue 30, item 1: the strict JSON reader runs before authentication on several routes, so
its cost on the worst body of the largest allowed size must stay within a small multiple of a
benign body of that size. Measured as a ratio within one run (bench/json_parse.py prints the
figures). The old reader stripped strings with a backtracking regex: a 24 KB body of escaped
quotes that never close took seconds, 256 KB about half an hour."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import json_parse
from chalicelib.core.errors import BadRequest
from chalicelib.surfaces import jsonbody

ROOT = Path(__file__).resolve().parents[2]
SIZE = 256 * 1024  # the largest body any route accepts
RATIO = 10
CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench import json_parse as j
size = int(sys.argv[2])
base = j.time_parse(j.benign(size), repeats=7)
for shape, body in j.hostile(size).items():
    print(json.dumps({"shape": shape, "s": j.time_parse(body, repeats=7)}), flush=True)
base = min(base, j.time_parse(j.benign(size), repeats=7))
print(json.dumps({"shape": "benign", "s": base}), flush=True)
"""


def test_hostile_bodies_cost_a_small_multiple_of_a_benign_one():
    """In a child process with a deadline, so a reader that takes minutes fails in one."""
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(SIZE)],
                              capture_output=True, text=True, timeout=180, check=True)
        lines = done.stdout
    except subprocess.TimeoutExpired as stopped:
        lines = (stopped.stdout or b"").decode()
        finished = [json.loads(line)["shape"] for line in lines.splitlines()]
        pytest.fail(f"the reader did not finish within 180 s; finished only: {finished}")
    times = {row["shape"]: row["s"] for row in map(json.loads, lines.splitlines())}
    benign = times.pop("benign")
    slow = {shape: round(s / benign, 1) for shape, s in times.items() if s > RATIO * benign}
    assert not slow, (f"benign {benign * 1000:.2f} ms; over {RATIO}x: {slow}")


@pytest.mark.parametrize("shape, message", [
    ("unclosed strings", "Malformed JSON body"),
    ("unclosed after escapes", "Malformed JSON body"),
    ("deep arrays", "nested too deeply"),
    ("deep objects", "brackets do not match"),
    ("unclosed arrays", "brackets do not match"),
    ("many values", "too many values"),
    ("many objects", "too many values"),
    ("nested objects", "too many values"),
    ("brackets in strings", "too many values"),
    ("duplicate keys", "too many values"),
    ("lone surrogate", "lone surrogate"),
])
def test_each_hostile_shape_is_refused_with_what_was_wrong(shape, message):
    with pytest.raises(BadRequest) as refused:
        jsonbody.parse(json_parse.hostile(SIZE)[shape], SIZE)
    assert message in refused.value.message
    assert refused.value.code == "invalid_parameter"


def test_benign_bodies_of_every_shape_a_client_sends_still_parse():
    assert len(jsonbody.parse(json_parse.benign(SIZE), SIZE)["recipients"]) == 1000
    patch = [{"id": str(n), "state": "Delivered", "recipients": [
        {"phoneNumber": "+4917000000001", "state": "Delivered", "error": None}],
        "states": {"Pending": "2026-01-01T00:00:00Z", "Sent": "2026-01-01T00:00:01Z",
                   "Delivered": "2026-01-01T00:00:02Z"}} for n in range(100)]
    assert jsonbody.parse(json.dumps(patch).encode(), SIZE) == patch
    tricky = {"text": 'a "quoted" \\ back\\slash [{ "}] \\"', "k\\\"ey": [[[[[[[1]]]]]]],
              "e": "\U0001f600 é", "": {"": ""}}
    assert jsonbody.parse(json.dumps(tricky).encode(), SIZE) == tricky
    assert jsonbody.parse(json.dumps(tricky, ensure_ascii=False).encode(), SIZE) == tricky


@pytest.mark.parametrize("body, message", [
    (b'{"a": 1, "a": 2}', "Duplicate key in the JSON body: a."),
    (b'{"x": {"b": 1, "c": {"b": 2, "b": 3}}}', "Duplicate key in the JSON body: b."),
    (b'{"k": "\\ud800"}', "Invalid text in k"),
    (b"[" * 9 + b"]" * 9, "nested too deeply (at most 8 levels)"),
    (b'{"a": [1}', "brackets do not match"),
    (b'{"a": "[[[[[[[[[[[["}x', "Malformed JSON body"),
    (b'{"a": NaN}', "NaN is not allowed"),
])
def test_small_bodies_keep_their_clear_errors(body, message):
    with pytest.raises(BadRequest) as refused:
        jsonbody.parse(body, SIZE)
    assert message in refused.value.message


def test_depth_eight_is_accepted_and_brackets_inside_strings_do_not_count():
    assert jsonbody.parse(b"[" * 8 + b"]" * 8, SIZE) == [[[[[[[[]]]]]]]]
    assert jsonbody.parse(b'["' + b"[" * 100 + b'\\"' + b"{" * 100 + b'"]', SIZE)


@pytest.mark.parametrize("size, limit, shown", [
    (250 * 1024, 200 * 1024, "250 KB; at most 200 KB"),
    (200 * 1024 + 1, 200 * 1024, "201 KB; at most 200 KB"),
    (16385, 16384, "17 KB; at most 16 KB"),
    (1001, 1000, "1,001 bytes; at most 1,000 bytes"),
])
def test_an_oversize_body_reads_right(size, limit, shown):
    with pytest.raises(BadRequest) as refused:
        jsonbody.parse(b" " * size, limit)
    assert refused.value.message == f"Request body too large: {shown}."
