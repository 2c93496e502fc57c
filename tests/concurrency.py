"""Real concurrency for tests of races: calls released together on threads."""
import threading


def race(count, call, numbered=False):
    """Run `call` on `count` threads released together; their results or exceptions."""
    start = threading.Barrier(count)
    outcomes = [None] * count

    def run(n):
        start.wait()
        try:
            outcomes[n] = call(n) if numbered else call()
        except Exception as error:  # noqa: BLE001 - the outcome is the assertion
            outcomes[n] = error
    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def run_together(threads):
    """Start every thread, then wait for them all."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
