"""The rehearsal's pass/fail table (deploy/rehearse): one row per step, deploy, journey and
teardown alike, with its time, printed as the run goes and in full at the end."""
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

PASS, FAIL, SKIPPED, KEPT = "pass", "FAIL", "skipped", "kept"


class StepFailed(Exception):
    """A step's check did not hold; its message is the row's detail."""


@dataclass
class Row:
    step: str
    result: str
    seconds: float
    detail: str = ""


class Report:
    def __init__(self, out=None):
        self.rows: list[Row] = []
        self.out = out or sys.stdout

    def add(self, step: str, result: str, seconds: float = 0.0, detail: str = "") -> Row:
        row = Row(step, result, seconds, detail)
        self.rows.append(row)
        print(f"  {result:<7} {step} ({seconds:.1f} s){': ' + detail if detail else ''}",
              file=self.out, flush=True)
        return row

    def skip(self, step: str, why: str) -> Row:
        return self.add(step, SKIPPED, 0.0, why)

    @contextmanager
    def step(self, name: str):
        """Time the body; a StepFailed or any error is a FAIL row with its message. Ctrl-C is
        a FAIL row too, and goes on up (the caller tears down)."""
        started = time.monotonic()
        note = Note()
        try:
            yield note
        except KeyboardInterrupt:
            self.add(name, FAIL, time.monotonic() - started, "interrupted (Ctrl-C)")
            raise
        except Exception as error:  # every failure is a row, never a traceback
            text = str(error) if isinstance(error, StepFailed) else \
                f"{type(error).__name__}: {error}"
            self.add(name, FAIL, time.monotonic() - started, text)
            note.failed = True
        else:
            self.add(name, note.result, time.monotonic() - started, note.detail)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(r.result != FAIL for r in self.rows)

    def table(self) -> str:
        width = max([len(r.step) for r in self.rows] + [4])
        lines = [f"{'step':<{width}}  result   seconds  detail"]
        for r in self.rows:
            lines.append(f"{r.step:<{width}}  {r.result:<7} {r.seconds:8.1f}  {r.detail}")
        failed = sum(1 for r in self.rows if r.result == FAIL)
        lines.append(f"{len(self.rows)} steps: {failed} failed" if failed else
                     f"{len(self.rows)} steps: all passed")
        return "\n".join(lines)


class Note:
    """What a step says about itself: its detail, and `kept`/`skipped` instead of `pass`."""

    def __init__(self):
        self.detail, self.result, self.failed = "", PASS, False
