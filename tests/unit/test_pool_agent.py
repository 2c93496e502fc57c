"""The agent's part of the pool (issue 10): it keeps its SIM's pace (OTPs never wait, a restart
does not reset it) and names Android's failure kinds from termux-api's output."""
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "agent"))

from smsgw_agent import backends, config  # noqa: E402
from smsgw_agent.agent import Agent  # noqa: E402

from tests.unit.test_agent import bin_dir, fake_command  # noqa: E402,F401

TOKEN = "0123456789abcdef.secret"


def _agent(tmp_path):
    cfg = config.AgentConfig(url="http://127.0.0.1:9", token=TOKEN, backend="simulator",
                             journal=str(tmp_path / "j.sqlite3")).check()
    agent = Agent(cfg)
    agent.pace_ms = 400  # as the heartbeat answer gives it
    return agent


def job(message_id, sim_slot=1, kind="sms", segments=1):
    return {"message_id": message_id, "phone_number": "+8801712345678", "message": "Hi",
            "sim_slot": sim_slot, "expires_at": 2 ** 52, "kind": kind, "segments": segments}


def sent_at(agent):
    return {e["message_id"]: e["at"] for e in agent.backend.ledger}


def test_bulk_sends_keep_the_sim_pace_and_otps_do_not_wait(tmp_path):
    agent = _agent(tmp_path)
    agent.handle(job(1, segments=2))  # two segments: the SIM is busy for 0.8 s
    agent.handle(job(2, kind="otp"))  # at once, though it counts
    agent.handle(job(3, sim_slot=2))  # the other SIM is free
    agent.handle(job(4))
    at = sent_at(agent)
    assert at[2] - at[1] < 0.2 and at[3] - at[1] < 0.2
    assert at[4] - at[1] >= 0.8 + 0.4 - 0.02  # job 1's two segments, then the OTP's one


def test_a_restart_keeps_the_pace(tmp_path):
    first = _agent(tmp_path)
    first.handle(job(1))
    first.journal.close()
    again = _agent(tmp_path)
    started = time.time()
    again.handle(job(2))
    assert sent_at(again)[2] - started >= 0.3


@pytest.mark.parametrize("output, kind", [
    ("Error: RESULT_ERROR_LIMIT_EXCEEDED", "limit exceeded"),
    ("RESULT_ERROR_NO_SERVICE", "no service"),
    ("radio off (RESULT_ERROR_RADIO_OFF)", "no service (radio off)"),
    ("generic failure", "generic failure"),
])
def test_termux_failure_kinds_lead_the_reason(bin_dir, output, kind):  # noqa: F811
    fake_command(bin_dir, "termux-sms-send", output, exit_code=1)
    with pytest.raises(backends.SendError) as error:
        backends.TermuxBackend().send("+8801712345678", "x", 1)
    assert str(error.value).startswith(f"{kind}: termux-sms-send failed (exit 1)")


def test_unknown_failures_keep_their_plain_reason(bin_dir):  # noqa: F811
    fake_command(bin_dir, "termux-sms-send", "no permission", exit_code=1)
    with pytest.raises(backends.SendError) as error:
        backends.TermuxBackend().send("+8801712345678", "x", 1)
    assert str(error.value).startswith("termux-sms-send failed")
