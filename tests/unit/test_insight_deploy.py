"""The template wires count_outcomes as stats.py expects: its own mappings on the messages and
incoming streams, every outcome passing (not only `emits_events` ones), 15-minute tumbling
windows, failures kept."""
import json
import subprocess
import sys
from pathlib import Path

from chalicelib.domain.insight import stats

ROOT = Path(__file__).resolve().parents[2]


def test_count_outcomes_mappings(tmp_path):
    out = tmp_path / "resources.json"
    subprocess.run([sys.executable, "deploy/make_template.py", "prod", "--template", str(out)],
                   cwd=ROOT, check=True)
    resources = json.loads(out.read_text())["Resources"]
    sources = resources["CountOutcomes"]["Properties"]["Events"]
    assert "CountOutcomesDynamodbEventSource" in sources  # replaces chalice's placeholder
    fed = sorted(s["Properties"]["Stream"]["Fn::GetAtt"][0] for s in sources.values())
    assert fed == ["IncomingMessageTable", "MessageTable"]
    for source in sources.values():
        props = source["Properties"]
        table = props["Stream"]["Fn::GetAtt"][0]
        short = "messages" if table == "MessageTable" else "incoming"
        assert props["FilterCriteria"] == {"Filters": stats.stream_filters(short)}
        assert props["TumblingWindowInSeconds"] == stats.WINDOW_SECONDS == 900
        assert props["MaximumBatchingWindowInSeconds"] == 300
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": ["StreamFailureQueue", "Arn"]}  # bounded, then kept (issue 29)
        assert (props["MaximumRetryAttempts"], props["MaximumRecordAgeInSeconds"]) == (100, 21600)
    [pattern] = stats.stream_filters("messages")
    assert "emits_events" not in pattern["Pattern"]
