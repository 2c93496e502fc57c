"""Benchmarks: scripts that print figures (AWS calls per action, latency, cold start, cost).

Run them all with `python bench/run_all.py`; they are not timed tests.
"""
