"""Custom CloudWatch metrics written as log lines (Embedded Metric Format).

CloudWatch Logs turns these lines into metrics, so emitting one needs no API call and no IAM
permission beyond writing logs. The deploy template (deploy/make_template.py) alarms on the
names defined here, so the alarm and the code that feeds it share one spelling.
"""
import json
import os

from chalicelib.core import clock, settings

NAMESPACE = "SMSGW"
# Messages a sweep found stuck: pending but never queued, or leased past their lease and
# attempts. The cleanup sweeps emit it on every run (0 included, so the alarm sees data).
STUCK_MESSAGES = "StuckMessages"


def emit(name: str, value: float, unit: str = "Count") -> str:
    """Print one metric datum for the current stage (only inside Lambda, where CloudWatch reads
    it; the local gateway's console stays quiet); returns the line (for tests)."""
    line = json.dumps({
        "_aws": {"Timestamp": clock.now_ms(),
                 "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["Stage"]],
                                        "Metrics": [{"Name": name, "Unit": unit}]}]},
        "Stage": settings.current().stage,
        name: value,
    }, separators=(",", ":"))
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        print(line, flush=True)
    return line
