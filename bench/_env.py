"""Puts the repository on sys.path and gives a bench process fake AWS credentials and its own
stage, before any gateway module is imported: a benchmark can never reach real AWS."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def prepare(stage: str = "bench") -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "SMSGW_STAGE": stage})
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)
    os.environ.setdefault("SMSGW_OTP_SECRET", "bench-" + "0" * 58)
    # Benches time the gateway, not a phone's carrier limit: devices are unpaced unless a bench
    # paces one itself (scenarios.Fixture does, so send_sms is counted with its slot write).
    os.environ.setdefault("SMSGW_DEFAULT_PACE_PER_HOUR", "0")
    os.environ.setdefault("SMSGW_PACE_WINDOW_PARTS", "0")


def run_command(measure, markdown, doc: str, quick_help: str) -> None:
    """The command line every bench script shares: `[--quick] [--json]`, markdown by default."""
    import json

    import click

    @click.command(help=doc)
    @click.option("--quick", is_flag=True, help=quick_help)
    @click.option("--json", "as_json", is_flag=True, help="Print the raw figures as JSON.")
    def cli(quick, as_json):
        result = measure(quick)
        click.echo(json.dumps(result) if as_json else markdown(result))
    cli()


def markdown_table(header: list[str], rows, align: str = "---") -> str:
    """A markdown table: `header`'s cells, then one line per row (its cells, in order)."""
    lines = ["| " + " | ".join(header) + " |", "|" + f"{align}|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
