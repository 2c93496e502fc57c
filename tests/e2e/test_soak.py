"""Soak (issue 5): messages through the real local stack (gateway subprocess, agent subprocesses)
under agent crashes, duplicate SQS deliveries, abandoned leases, send failures and expiry; every
message must end final, and no SMS may be sent twice. The engine and its checks are
bench/soak.py; here it runs at a reduced size (SMSGW_SOAK_FULL=1: 1,000 messages)."""
import os

import pytest

from chalicelib.core import settings
from chalicelib.core.errors import BadRequest
from chalicelib.domain import messages
from tests.localgw_helpers import load_soak


def test_minimum_validity_is_a_setting(settings_override):
    assert settings.current().min_validity_seconds == 60  # the default callers see
    with pytest.raises(BadRequest, match="between 60 and"):
        messages.parse_validity("59", None)
    settings_override(min_validity_seconds=5)
    assert messages.parse_validity("5", None) == 5
    with pytest.raises(BadRequest, match="between 5 and") as error:
        messages.parse_validity("4", None)
    assert error.value.parameter == "valid_for"


def test_soak_nothing_lost_or_sent_twice_under_faults(tmp_path):
    full = os.environ.get("SMSGW_SOAK_FULL") == "1"
    count = 1000 if full else 150
    figures = load_soak().run(messages=count, seed=int(os.environ.get("SMSGW_SOAK_SEED", "1")),
                              workdir=str(tmp_path), settle_seconds=300 if full else 120)
    print("\n".join(f"{name}: {value}" for name, value in figures.items()))
    assert figures["problems"] == []
    states = figures["final states"]
    assert figures["messages accepted"] == count
    assert sum(states.values()) == count
    assert set(states) <= {"delivered", "failed", "expired", "sent (receipt lost in a crash)"}
    assert figures["duplicates found (a message in ledgers more than once)"] == 0
    # each SMS on a ledger is a delivered (or receipt-lost) message, or an interrupted send
    # whose outcome the agent could not know (reported failed rather than risk sending twice)
    sent = sum(figures["sends per ledger"].values())
    settled_sent = states.get("delivered", 0) + states.get("sent (receipt lost in a crash)", 0)
    unknown = figures["failed with an unknown outcome yet sent once (at most once)"]
    assert sent == settled_sent + unknown
    # every fault was actually exercised
    crashes = figures["crashes injected"]
    assert crashes["sigkill"] >= 3 and crashes["take"] >= 1 and crashes["send"] >= 1
    assert crashes["backend"] >= 1 and unknown >= 1  # died between sending and journaling
    assert figures["agent outages longer than the heartbeat window"] >= 1
    assert figures["stop_silent runs / devices stopped"][1] >= 1
    assert figures["  of them for in-flight messages"] >= 3
    assert figures["leases abandoned by a silent poller"] >= 3
    assert figures["leases expired (taken, no outcome reported in time)"] >= 3
    assert states.get("expired", 0) >= 1 and figures["sweep actions"].get("expired", 0) >= 1
    assert figures["sweep actions"].get("requeued", 0) >= 1
    assert figures["failure reasons"].get("failed: Simulated send failure.", 0) >= 1
    assert figures["sweep runs"] >= 1 and figures["sweep errors"] == 0
    # webhooks: every final state reached the receiver (checked in the soak), through refusals
    events, requests, refused, _ = figures[
        "webhooks: events received / requests / refused (500) / repeated ids"]
    assert events >= count and refused >= 1 and requests > events
