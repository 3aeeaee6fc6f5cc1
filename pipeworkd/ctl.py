"""`pipeworkctl`: the admin command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import List, Optional

from pyroute2.netlink.exceptions import NetlinkError

from . import __version__, firewall, log
from . import netlink as nl
from .attach import Target, attach
from .daemon import prepare
from .docker_adapter import DockerAdapter
from .errors import PipeworkError
from .locks import LockTimeout, bridge_lock
from .signals import StopRequests
from .spec import USAGE, parse, refuse_unsupported, validate_ifname

LOG = logging.getLogger("pipeworkctl")

# These take pipework's own arguments verbatim, dashes included: argparse never sees them.
PIPEWORK_COMMANDS = ("attach", "check")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeworkctl", description="pipeworkd admin commands.",
        epilog="attach and check take pipework arguments as they are, options anywhere: "
               "pipeworkctl attach br1 -i eth1 web 192.168.4.2/24@192.168.4.1")
    parser.add_argument("--version", action="version", version=f"pipeworkctl {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug messages and show tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("attach", help="attach one running container now: attach PIPEWORK-ARGUMENTS")
    commands.add_parser("check", help="parse pipework arguments and print what they ask for (exit 3: not "
                                      "supported yet)")
    delete = commands.add_parser("bridge-delete", help="delete a bridge pipeworkd created, and its firewall rule")
    delete.add_argument("bridge")
    delete.add_argument("--force", action="store_true",
                        help="also when containers are still attached: their interfaces on it are deleted")
    commands.add_parser("cleanup", help="remove firewall rules of bridges that are gone")
    return parser


def cmd_attach(words: List[str]) -> int:
    started = time.monotonic()
    spec = prepare(words)  # bad input is refused before Docker is asked anything
    docker = DockerAdapter()
    try:
        info = docker.running_target(spec.guest)
        with STOP.critical():  # a SIGTERM now waits for the attach (or its rollback) to finish
            result = attach(spec, Target(id=info.id, name=info.name, pid=info.pid),
                            os.environ.get("PIPEWORKD_PROC") or "/proc")
    finally:
        docker.close()
    print(f"{info.name} ({info.short_id}): {result.summary()} in {(time.monotonic() - started) * 1000:.0f} ms")
    return 0


def cmd_check(words: List[str]) -> int:
    spec = parse(words)
    for name, value in vars(spec).items():
        if name != "argv" and value not in (None, (), False):
            print(f"{name}: {value}")
    refuse_unsupported(spec)
    print("supported: yes")
    return 0


def cmd_bridge_delete(args: argparse.Namespace) -> int:
    name = validate_ifname(args.bridge, "bridge")
    with bridge_lock(name), nl.host_iproute() as ipr:  # the rule goes under the lock too
        bridge = nl.find_link(ipr, name)
        if bridge is not None:
            if bridge.kind != "bridge" or bridge.alias != nl.OWNER_ALIAS:
                raise PipeworkError(f"{name} is not a bridge created by pipeworkd; not deleting it")
            ports = nl.bridge_port_names(ipr, bridge)
            if ports and not args.force:
                raise PipeworkError(f"bridge {name} still has ports ({', '.join(ports)}); use --force to delete it")
            for port in filter(None, (nl.find_link(ipr, port) for port in ports)):
                if port.kind == "veth":  # takes the container's end with it
                    nl.delete_link(ipr, port.index)
                    print(f"port {port.name} deleted")
            nl.delete_link(ipr, bridge.index)
            print(f"bridge {name} deleted")
        removed = firewall.remove_bridge_rules(name) if firewall.available() else 0
    if bridge is None and not removed:
        raise PipeworkError(f"bridge {name} does not exist")
    if removed:
        print(f"firewall rule for {name} removed")
    return 0


def cmd_cleanup(_args: argparse.Namespace) -> int:
    gone = firewall.remove_rules_of_missing_bridges(nl.host_link_names)
    print(f"removed firewall rules of {len(gone)} missing bridge(s){': ' + ', '.join(gone) if gone else ''}")
    return 0


def split_argv(argv: List[str]):
    """(options before the command, the command, its words) for attach and check; None otherwise."""
    for position, word in enumerate(argv):
        if word in PIPEWORK_COMMANDS:
            words = argv[position + 1:]
            return argv[:position], word, words[1:] if words[:1] == ["--"] else words
        if not word.startswith("-"):
            return None
    return None


class Terminated(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_code = 128 + signum


STOP = StopRequests(Terminated)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    STOP.install()
    pipework = split_argv(argv)
    args = build_parser().parse_args(pipework[0] + [pipework[1]] if pipework else argv)
    log.setup(debug=args.debug, journal=False, level=logging.WARNING)
    try:
        if pipework and pipework[2][:1] in (["-h"], ["--help"]):
            print(f"pipeworkctl {pipework[1]} PIPEWORK-ARGUMENTS\n{USAGE}")
            return 0
        if pipework:
            return (cmd_attach if pipework[1] == "attach" else cmd_check)(pipework[2])
        return {"bridge-delete": cmd_bridge_delete, "cleanup": cmd_cleanup}[args.command](args)
    except PipeworkError as exc:
        return fail(str(exc), exc.exit_code)
    except firewall.FirewallError as exc:
        return fail(f"firewall: {exc}")
    except PermissionError as exc:
        return fail(f"permission denied ({exc.strerror}); run as root")
    except NetlinkError as exc:
        return fail(f"netlink: {exc}")
    except LockTimeout as exc:
        return fail(str(exc))
    except Terminated as exc:
        return exc.exit_code
    except Exception as exc:  # a bug: still one line, the traceback with --debug
        LOG.debug("traceback", exc_info=True)
        return fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)")


def fail(message: str, code: int = 1) -> int:
    print(f"pipeworkctl: {log.shown(message, limit=1000)}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
