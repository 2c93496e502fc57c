"""Debug-only: where the local gateway's memory goes. With SMSGW_LOCAL_TRACEMALLOC=FILE the
gateway traces allocations (one frame) and, at each SIGUSR1, appends to FILE the lines that
grew most since the previous SIGUSR1. bench/local_scale.py sends one after every bulk when the
variable is set. Off by default: tracing makes the process slower and larger."""
import os
import signal
import tracemalloc

TOP = 25


def install() -> None:
    path = os.environ.get("SMSGW_LOCAL_TRACEMALLOC")
    if not path:
        return
    tracemalloc.start(1)
    state = {"previous": tracemalloc.take_snapshot(), "n": 0}

    def dump(*_):
        now = tracemalloc.take_snapshot()
        state["n"] += 1
        stats = now.compare_to(state["previous"], "lineno")
        state["previous"] = now
        total = sum(s.size for s in now.statistics("filename"))
        with open(path, "a") as out:
            out.write(f"=== dump {state['n']}: traced {total / 2**20:.1f} MiB\n")
            for stat in stats[:TOP]:
                out.write(f"{stat}\n")
    signal.signal(signal.SIGUSR1, dump)
