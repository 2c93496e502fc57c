"""Sign-up and "Forgot password?" for registered and unknown emails, timed in one run on moto
with the production argon2id cost: the two must not be told apart by time (domain/signup.py,
domain/password_reset.py do the same work for both). Mails are written as .eml files.

    python bench/account_mails.py [--quick] [--json]
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _env  # noqa: E402

PASSWORD = "a long bench passphrase"


def measure(quick: bool = False) -> dict:
    _env.prepare()
    import moto
    os.environ["SMSGW_SIGNUP"] = "open"
    os.environ["SMSGW_MAIL_DIR"] = tempfile.mkdtemp(prefix="smsgw-bench-mail-")
    rounds = 6 if quick else 20
    with moto.mock_aws():
        from chalicelib.domain import accounts, password_reset, signup, users
        from chalicelib.storage import tables
        tables.create_all()
        account = accounts.create_account("Bench")
        known = [f"known{n}@example.com" for n in range(rounds)]
        for address in known:
            _, token = users.add(account.account_id, address)
            users.set_password(token, PASSWORD, PASSWORD)
        url = "http://localhost/dashboard"
        actions = {
            "sign-up": lambda a, ip: signup.sign_up(a, PASSWORD, PASSWORD, "Bench", ip, url),
            "forgot": lambda a, ip: password_reset.request_reset(a, ip, url)}
        result = {}
        for name, action in actions.items():
            times = {"registered": [], "unknown": []}
            for n in range(rounds):  # interleaved, so drift hits both alike
                for kind, address in (("registered", known[n]),
                                      ("unknown", f"new{n}-{name}@example.com")):
                    start = time.perf_counter()
                    action(address, f"198.51.100.{n}" if kind == "registered"
                           else f"203.0.113.{n}")
                    times[kind].append((time.perf_counter() - start) * 1000)
            medians = {kind: statistics.median(ms) for kind, ms in times.items()}
            result[name] = {**{f"{k}_ms": round(v, 1) for k, v in medians.items()},
                            "ratio": round(medians["unknown"] / medians["registered"], 3),
                            "rounds": rounds}
    return result


def markdown(result: dict) -> str:
    return _env.markdown_table(
        ["action", "registered email, median ms", "unknown email, median ms",
         "unknown / registered"],
        ([name, row["registered_ms"], row["unknown_ms"], row["ratio"]]
         for name, row in result.items()))


if __name__ == "__main__":
    _env.run_command(measure, markdown, __doc__, "6 rounds instead of 20.")
