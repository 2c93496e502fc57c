"""Replays handed-out times and checks every window (shared by the pacing tests): the check is
written from the rule's definition, not from pace_log's code, so it can catch that code."""


def busiest(handouts, seconds: int, sim: int | None = None, otp_only: bool = False,
            bulk_only: bool = False) -> int:
    """Most parts handed out in any closed window of `seconds` (times in ms): the fullest
    window starts at a hand-out, so only those starts are tried."""
    chosen = [(at, parts) for at, s, parts, otp in handouts
              if (sim is None or s == sim) and not (otp_only and not otp)
              and not (bulk_only and otp)]
    return max((sum(p for t, p in chosen if start <= t <= start + seconds * 1000)
                for start, _ in chosen), default=0)


def check_limits(handouts, window: int, window_seconds: int, rate: int, rate_seconds: int,
                 reserve_window: int, reserve_rate: int) -> None:
    """handouts: [(ms, sim, parts, otp)]. Every window of the phone and of each SIM holds."""
    if window:
        assert busiest(handouts, window_seconds) <= window
        assert busiest(handouts, window_seconds, bulk_only=True) <= window - reserve_window
    if rate:
        for sim in (1, 2):
            assert busiest(handouts, rate_seconds, sim) <= rate
            assert busiest(handouts, rate_seconds, sim, bulk_only=True) <= rate - reserve_rate
