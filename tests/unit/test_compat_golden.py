"""The compat API answers the reference's examples byte for byte as main's code does
(tests/golden/compat_answers.json was written by tests/golden/compat_answers.py on main)."""
import json
import os
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
sys.path.insert(0, str(GOLDEN))

import compat_answers  # noqa: E402


def test_compat_answers_unchanged(monkeypatch):
    monkeypatch.setitem(os.environ, "SMSGW_OTP_SECRET", "golden-" + "0" * 40)
    expected = json.loads((GOLDEN / "compat_answers.json").read_text())
    got = json.loads(json.dumps(compat_answers.answers(monkeypatch.setattr)))
    assert [row[0] for row in got] == [row[0] for row in expected]
    for now, then in zip(got, expected, strict=True):
        assert now == then, now[0]
