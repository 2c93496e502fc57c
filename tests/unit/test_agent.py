"""The device agent's own parts: the Termux backend against fake termux-* executables that record
how they were called (termux-api's real command-line contract), the journal, and the config."""
import json
import os
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))

from smsgw_agent import backends, config  # noqa: E402
from smsgw_agent.agent import Agent  # noqa: E402
from smsgw_agent.journal import Journal  # noqa: E402

TOKEN = "0123456789abcdef.secret"


def fake_command(bin_dir: Path, name: str, stdout: str = "", exit_code: int = 0):
    """A stand-in for a termux-api command: records argv and stdin to <name>.calls."""
    script = bin_dir / name
    script.write_text(f"""#!{sys.executable}
import json, sys
with open({str(bin_dir / (name + '.calls'))!r}, "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "stdin": sys.stdin.read()}}) + "\\n")
sys.stdout.write({stdout!r})
sys.exit({exit_code})
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return lambda: [json.loads(x) for x in (bin_dir / (name + ".calls")).read_text()
                    .splitlines()]


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", f"{path}{os.pathsep}{os.environ['PATH']}")
    return path


def test_termux_send_uses_zero_based_slot_and_stdin(bin_dir):
    calls = fake_command(bin_dir, "termux-sms-send")
    backend = backends.TermuxBackend()
    backend.send("+8801712345678", "Hi -n \\n \"there\"", 1)
    backend.send("+8801712345678", "second SIM", 2)
    assert calls() == [
        {"argv": ["-n", "+8801712345678", "-s", "0"], "stdin": "Hi -n \\n \"there\""},
        {"argv": ["-n", "+8801712345678", "-s", "1"], "stdin": "second SIM"}]


def test_termux_send_failure_is_a_send_error(bin_dir):
    fake_command(bin_dir, "termux-sms-send", "no permission", exit_code=1)
    with pytest.raises(backends.SendError, match="exit 1"):
        backends.TermuxBackend().send("+8801712345678", "x", 1)


def test_termux_missing_is_a_send_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(backends.SendError, match="not found"):
        backends.TermuxBackend().send("+8801712345678", "x", 1)


def test_termux_inbox_and_battery(bin_dir):
    listed = [{"threadid": 3, "type": "inbox", "read": False, "address": "+8801812345678",
               "number": "+8801812345678", "received": "2025-06-01 10:20:30", "body": "Hello",
               "_id": 17},
              {"threadid": 4, "type": "inbox", "address": "BANK", "number": "BANK",
               "received": "garbage", "body": "skipped", "_id": 18}]
    list_calls = fake_command(bin_dir, "termux-sms-list", json.dumps(listed))
    fake_command(bin_dir, "termux-battery-status",
                 json.dumps({"health": "GOOD", "percentage": 57, "status": "DISCHARGING"}))
    backend = backends.TermuxBackend()
    received = backend.received()
    assert list_calls()[0]["argv"] == ["-t", "inbox", "-l", "50"]
    assert [(r["device_message_id"], r["phone_number"], r["message"]) for r in received] == [
        ("17", "+8801812345678", "Hello")]
    from datetime import datetime
    assert received[0]["received_at"] == int(
        datetime(2025, 6, 1, 10, 20, 30).timestamp() * 1000)  # the phone's local time
    assert backend.status() == {"battery": 57, "signal": None}


def test_journal_survives_restart(tmp_path):
    path = str(tmp_path / "j.sqlite3")
    journal = Journal(path)
    journal.begin(5)
    journal.finish(5, "sent")
    journal.close()
    again = Journal(path)
    assert again.job(5) == ("sent", None)
    assert again.pending_reports() == [(5, "sent", None)]
    again.reported(again.pending_reports())
    assert again.pending_reports() == []


def _agent(tmp_path, **overrides):
    cfg = config.AgentConfig(url="http://127.0.0.1:9", token=TOKEN, backend="simulator",
                             journal=str(tmp_path / "j.sqlite3"), **overrides).check()
    return Agent(cfg)


JOB = {"message_id": 99, "phone_number": "+8801712345678", "message": "Hi", "sim_slot": 2,
       "expires_at": 2 ** 52, "kind": "sms"}


def test_a_job_seen_twice_is_sent_once_and_reported_twice(tmp_path):
    agent = _agent(tmp_path)
    agent.handle(JOB)
    agent.journal.reported(agent.journal.pending_reports())
    agent.handle(JOB)
    assert [e["message_id"] for e in agent.backend.ledger] == [99]
    assert agent.journal.pending_reports() == [(99, "sent", None)]


def test_interrupted_send_is_reported_failed_not_resent(tmp_path):
    agent = _agent(tmp_path)
    agent.journal.begin(99)  # as if the process died inside the send
    agent.handle(JOB)
    assert agent.backend.ledger == []
    [(message_id, state, reason)] = agent.journal.pending_reports()
    assert (message_id, state) == (99, "failed") and "duplicate" in reason


def test_simulated_failures_are_reported_with_reason(tmp_path):
    agent = _agent(tmp_path, failure_rate=1.0)
    agent.handle(JOB)
    assert agent.journal.pending_reports() == [(99, "failed", "Simulated send failure.")]


def test_unreachable_gateway_is_retryable_not_fatal(tmp_path):
    from smsgw_agent.client import Retryable
    agent = _agent(tmp_path, report_hold=0)
    agent.handle(JOB)
    with pytest.raises(Retryable):
        agent.flush_reports()
    assert agent.journal.pending_reports() == [(99, "sent", None)]  # kept for later


def test_config_from_env_file_and_flags(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('url = "https://gw.example/"\nbackend = "simulator"\npoll_wait = 5\n')
    loaded = config.load(str(path), {"SMSGW_DEVICE_TOKEN": TOKEN, "SMSGW_POLL_WAIT": "7"},
                         sim_count=2)
    assert (loaded.url, loaded.token, loaded.poll_wait, loaded.sim_count) == (
        "https://gw.example", TOKEN, 7, 2)
    for bad in ({"SMSGW_URL": "ftp://x", "SMSGW_DEVICE_TOKEN": TOKEN},
                {"SMSGW_URL": "http://x", "SMSGW_DEVICE_TOKEN": "short"},
                {"SMSGW_URL": "http://x", "SMSGW_DEVICE_TOKEN": TOKEN,
                 "SMSGW_POLL_WAIT": "99"}):
        with pytest.raises(config.ConfigError):
            config.load(None, bad)
    path.write_text("nonsense = 1\n")
    with pytest.raises(config.ConfigError, match="nonsense"):
        config.load(str(path), {})


def test_ca_file_checks_the_gateway_against_that_ca(tmp_path):
    """`ca_file` (SMSGW_CA_FILE): every call checks the gateway's certificate against that CA
    (passed per request: a session's own setting loses to $REQUESTS_CA_BUNDLE); without it, the
    system's CAs. A missing file is a config error. (Real TLS: tests/e2e/test_local_tls.py.)"""
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"SMSGW_URL": "https://gw.example", "SMSGW_DEVICE_TOKEN": TOKEN}
    loaded = config.load(None, env | {"SMSGW_CA_FILE": str(ca)})
    assert loaded.ca_file == str(ca)
    with pytest.raises(config.ConfigError, match="no such file"):
        config.load(None, env | {"SMSGW_CA_FILE": str(tmp_path / "missing.pem")})
    import requests
    seen = []

    def request(*_args, **kwargs):
        seen.append(kwargs["verify"])
        raise requests.ConnectionError("not sent")
    for cfg, verify in ((loaded, str(ca)), (config.load(None, env), True)):
        agent = Agent(cfg, backend=object(), journal=Journal(":memory:"))
        agent.client.session.request = request
        with pytest.raises(Exception, match="not sent"):
            agent.client.heartbeat("running")
        assert seen.pop() == verify
