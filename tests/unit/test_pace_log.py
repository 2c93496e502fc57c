"""The pacing log's rule (chalicelib/domain/pacing/log.py), pure: random arrivals, message lengths
and OTP mixes placed one after another, the log pruned and compacted to a random room as the
gateway does; replaying the real handed-out times, every window of the phone and of each SIM
holds, every message went at the earliest second the log allowed, and an OTP within the
reserve never waited."""
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.pacing import log as pace_log
from tests.pacing_replay import busiest, check_limits

WINDOW, WINDOW_S, RATE, RATE_S, RESERVE = 8, 300, 6, 600, 2


def limits(sim):
    return [pace_log.Limit(WINDOW, WINDOW_S, RESERVE), pace_log.Limit(RATE, RATE_S, RESERVE, sim)]


arrivals = st.lists(st.tuples(st.integers(0, 150),  # seconds after the previous arrival
                              st.integers(1, 3),    # parts
                              st.integers(1, 2),    # SIM
                              st.booleans()),       # OTP
                    min_size=1, max_size=60)


@settings(max_examples=500, deadline=None)
@given(arrivals, st.integers(2, 64))
def test_every_window_holds_and_nothing_waits_longer_than_it_must(arrivals, room):
    entries, handouts, now, compacted = [], [], 1_000_000, False
    for gap, parts, sim, otp in arrivals:
        now += gap
        pruned = pace_log.prune(entries, now, limits(sim))
        entries = pace_log.compact(pruned, now, room)
        compacted |= entries != pruned  # past parts now count later: conservative, not exact
        at = pace_log.place(entries, limits(sim), sim, parts, otp, now, room)
        if at is None:
            assert len(entries) >= room  # only a full log refuses
            continue
        assert at >= now
        first = pace_log.earliest(entries, limits(sim), parts, otp, now)
        assert at >= first
        if len(entries) < room:
            assert at == first
            # one second earlier would not have fitted (or is before the arrival)
            assert at == now or not all(pace_log.fits(entries, lim, at - 1, parts, otp)
                                        for lim in limits(sim))
        if otp:  # within the reserve an OTP goes at once, even with the window full of bulk
            mine = [h for h in handouts if h[3]]
            used = max(busiest([h for h in mine if abs(h[0] - now * 1000) <= WINDOW_S * 1000],
                               WINDOW_S),
                       busiest([h for h in mine if abs(h[0] - now * 1000) <= RATE_S * 1000],
                               RATE_S, sim))
            if used + parts <= RESERVE and len(entries) < room and not compacted:
                assert at == now
        entries = pace_log.add(entries, at, sim, otp, parts)
        handouts.append((at * 1000, sim, parts, otp))
    check_limits(handouts, WINDOW, WINDOW_S, RATE, RATE_S, RESERVE, RESERVE)


def test_a_three_part_message_counts_three():
    lims = [pace_log.Limit(WINDOW, WINDOW_S, RESERVE)]  # the phone's window alone
    entries = pace_log.add([], 100, 1, False, 3)
    # bulk may use WINDOW - RESERVE = 6 parts; 3 used, so 3 more fit and a 4th waits
    assert pace_log.earliest(entries, lims, 3, False, 100) == 100
    entries = pace_log.add(entries, 100, 1, False, 3)
    assert pace_log.earliest(entries, lims, 1, False, 100) == 100 + WINDOW_S + 1
    assert pace_log.earliest(entries, lims, 2, True, 100) == 100  # the OTP reserve


def test_a_burst_is_one_entry_and_the_log_round_trips():
    entries = []
    for _ in range(5):
        entries = pace_log.add(entries, 7, 2, False, 1)
    assert entries == [pace_log.Entry(7, 2, False, 5)]
    raw = pace_log.encode(entries + [pace_log.Entry(9, 1, True, 3)])
    assert len(raw) == 12 and pace_log.decode(raw) == entries + [pace_log.Entry(9, 1, True, 3)]


def test_longer_than_a_limit_never_fits():
    assert pace_log.earliest([], limits(1), RATE - RESERVE + 1, False, 0) is None
    assert pace_log.earliest([], limits(1), RATE - RESERVE, False, 0) == 0
    assert pace_log.earliest([], [pace_log.Limit(0, 60)], 500, False, 3) == 3  # no limit
