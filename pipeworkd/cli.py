"""`pipeworkd`: the service entry point."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import List, Optional

from . import __version__, daemon, log
from .config import settings_from_env
from .errors import PipeworkError
from .signals import StopRequests

LOG = logging.getLogger("pipeworkd")


class Shutdown(BaseException):
    """Raised in the main thread by SIGTERM or SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeworkd",
        description="Attach extra network interfaces to Docker containers, as pipework did.",
        epilog="Settings also come from the environment (run_mode, key, debug, retry_delay, "
               "inter_delay, event_filters, up_time, sleep; bare or pipework_ prefixed). "
               "Put -- before pipework arguments that start with a dash.")
    parser.add_argument("--run-mode", metavar="MODES",
                        help="comma list of manual, batch, daemon, both, all (default: run_mode, else manual)")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"pipeworkd {__version__}")
    parser.add_argument("pipework_args", nargs=argparse.REMAINDER,
                        help="manual mode: one pipework command, e.g. br1 -i eth1 web 192.168.4.2/24")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    manual_args = args.pipework_args[1:] if args.pipework_args[:1] == ["--"] else args.pipework_args
    try:
        settings = settings_from_env(os.environ, run_mode=args.run_mode)
    except PipeworkError as exc:
        print(f"pipeworkd: {exc}", file=sys.stderr)
        return exc.exit_code
    log.setup(debug=args.debug or settings.debug)
    for warning in settings.warnings:
        LOG.warning("%s", warning)
    if manual_args and "manual" not in settings.run_modes:
        LOG.warning("pipework arguments on the command line are only used in manual mode: ignored")
    stop = StopRequests(Shutdown)
    stop.install()
    try:
        return daemon.run(settings, manual_args, os.environ, stop=stop)
    except PipeworkError as exc:
        LOG.error("%s", exc)
        return exc.exit_code
    except Shutdown as exc:
        LOG.info("stopping on %s", exc)
        return 0
    except Exception as exc:  # a bug: one line, the traceback with --debug
        LOG.debug("traceback", exc_info=True)
        LOG.error("internal error: %s: %s", type(exc).__name__, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
