"""docs/deploy.md's table of what each function may do is the template's roles, as
deploy/permissions_doc.py prints them (regenerate with `--write`)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_doc_lists_what_the_template_grants():
    printed = subprocess.run([sys.executable, "deploy/permissions_doc.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert printed.splitlines()[0] in doc, "the markers are missing from docs/deploy.md"
    assert printed in doc, "docs/deploy.md is stale: run python deploy/permissions_doc.py --write"
    for role in ("ApiHandlerRole", "SettleMessagesRole", "StopSilentDevicesRole",
                 "EmitEventsRole", "CountOutcomesRole", "DeliverWebhooksRole", "PurgeAccountsRole",
                 "DeviceRole"):
        assert f"`{role}`" in printed, role
