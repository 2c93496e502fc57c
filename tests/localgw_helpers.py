"""The one way tests start a local gateway as a user does: `local_gateway.py --json` in its own
process on a free port, its JSON banner read from the first line of its output, stopped with
Ctrl-C (SIGINT) and killed if it does not stop. tests/conftest.py's `local_gateway` fixture and
every e2e/browser module that needs its own gateway (other flags, other environment) use it."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def gateway_env(user: bool = False, **extra) -> dict:
    """The gateway process's environment: without the tests' AWS variables (it runs its own
    emulator). `user=True` also drops every SMSGW_ variable, as in a user's shell; otherwise the
    tests' settings (in-memory data, pacing off, OTP secret) carry over, less SMSGW_STAGE."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not (user and k.startswith("SMSGW_"))}
    env.pop("SMSGW_STAGE", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class GatewayProcess:
    """`local_gateway.py --json ARGS` as a process; `.info` is its JSON banner. `data` keeps its
    data in that folder (else --memory); `log` takes its stderr; `env` adds variables."""

    def __init__(self, *args, data=None, log=None, env=None, user=False, memory=True):
        from local_gateway import free_port
        command = [sys.executable, str(ROOT / "local_gateway.py"), "--json"]
        if "--port" not in args:
            command += ["--port", str(free_port())]
        command += list(args)
        if data:
            command += ["--data", str(data)]
        elif memory:
            command.append("--memory")
        self.log = log
        self.proc = subprocess.Popen(command, cwd=ROOT, env=gateway_env(user, **(env or {})),
                                     stdout=subprocess.PIPE, text=True,
                                     stderr=open(log, "w") if log else subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            tail = Path(log).read_text()[-2000:] if log else ""
            pytest.fail("local gateway did not start" + (": " + tail if tail else ""))
        self.info = json.loads(line)

    def stop(self, sig=signal.SIGINT, timeout=15):
        """Stop it (Ctrl-C by default); its exit code. Killed if it does not stop in time."""
        return stop_process(self.proc, sig, timeout)


def stop_process(proc, sig=signal.SIGINT, timeout=15):
    """Stop a process the tests started (Ctrl-C by default): its exit code, or None if it had to
    be killed for not stopping in time."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def gateway_fixture(*args, **kwargs):
    """Body of a fixture: yields the banner of a gateway started with these arguments and stops
    it afterwards (`yield from gateway_fixture("--no-agent")`)."""
    gateway = GatewayProcess(*args, **kwargs)
    try:
        yield gateway.info
    finally:
        gateway.stop()


def load_soak():
    """bench/soak.py as a module (its Gateway, agents and checks drive the e2e pool tests)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("soak", ROOT / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(predicate, seconds, what, every=0.3):
    """The predicate's first truthy value within `seconds`; AssertionError naming `what`."""
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
