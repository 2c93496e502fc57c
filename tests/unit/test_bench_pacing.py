"""bench/pacing.py's simulated run (its own process: it uses the deployed defaults): 200 SMS at
once to one dual-SIM phone never put more than the window in any 30 minutes, and the last one
goes out at the theoretical minimum for that window. Keeps the bench from rotting too."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_hundred_sms_keep_the_window_and_take_the_minimum_time():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "pacing.py"), "--simulated-json"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["window"] == 30 and figures["window_bulk"] == 25
    assert figures["busiest_window"] <= figures["window_bulk"]
    assert figures["busiest_sim_hour"] <= figures["rate"]
    assert figures["total_s"] <= figures["minimum_s"] + 1
    assert figures["old_busiest_window"] > 30  # what the old rule let through
