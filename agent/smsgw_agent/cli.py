"""`smsgw-agent`: run the device agent until Ctrl-C (SIGINT) or SIGTERM.
`smsgw-agent pair <gateway-url> <code>`: register this phone with a dashboard pairing code."""
import argparse
import logging
import signal
import sys

from smsgw_agent.agent import Agent
from smsgw_agent.client import Rejected
from smsgw_agent.config import ConfigError, load


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["pair"]:
        from smsgw_agent import pair
        return pair.main(argv[1:])
    parser = argparse.ArgumentParser(prog="smsgw-agent", description=__doc__)
    parser.add_argument("--config", help="TOML settings file (default: $SMSGW_CONFIG)")
    parser.add_argument("--url", help="gateway base URL (default: $SMSGW_URL)")
    parser.add_argument("--token", help="device token (default: $SMSGW_DEVICE_TOKEN)")
    parser.add_argument("--backend", choices=["termux", "simulator"])
    parser.add_argument("--journal", help="SQLite journal path")
    parser.add_argument("--mode", choices=["auto", "gateway", "direct"],
                        help="wait for jobs on SQS directly when the gateway offers it (auto, "
                             "the default), always in the gateway, or always directly")
    parser.add_argument("--poll-wait", type=int, dest="poll_wait")
    parser.add_argument("--sim-count", type=int, choices=[1, 2], dest="sim_count")
    parser.add_argument("--failure-rate", type=float, dest="failure_rate")
    parser.add_argument("--delivery-delay", type=float, dest="delivery_delay")
    parser.add_argument("--ledger", help="simulator: JSON-lines file of sends")
    parser.add_argument("--inbox", help="simulator: JSON-lines file of received SMS")
    parser.add_argument("--push-existing", action="store_const", const=True,
                        dest="push_existing",
                        help="on the first run, also push SMS already in the inbox")
    parser.add_argument("--crash-after", choices=["take", "backend", "send"],
                        dest="crash_after",
                        help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO if args.pop("verbose") else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = load(args.pop("config"), **args)
    except ConfigError as exc:
        print(f"smsgw-agent: {exc}", file=sys.stderr)
        return 2
    agent = Agent(config)

    def stop(signum, frame):
        agent.stopping.set()
        if agent.polling:  # only a long poll is interrupted; a send in progress finishes
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        agent.run()
    except Rejected as exc:
        print(f"smsgw-agent: the gateway refused this device: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
