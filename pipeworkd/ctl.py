"""`pipeworkctl`: the admin command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import List, Optional

from . import __version__, firewall, log
from . import netlink as nl
from .daemon import run_attach
from .docker_adapter import DockerAdapter
from .errors import PipeworkError
from .spec import parse

LOG = logging.getLogger("pipeworkctl")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeworkctl", description="pipeworkd admin commands.")
    parser.add_argument("--version", action="version", version=f"pipeworkctl {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    attach = commands.add_parser(
        "attach", help="attach one running container now, with pipework arguments",
        description="Attach one running container now. Example: "
                    "pipeworkctl attach br1 -i eth1 web 192.168.4.2/24@192.168.4.1")
    attach.add_argument("pipework_args", nargs=argparse.REMAINDER, help="pipework arguments")
    check = commands.add_parser("check", help="parse pipework arguments and print what they ask for")
    check.add_argument("pipework_args", nargs=argparse.REMAINDER, help="pipework arguments")
    delete = commands.add_parser("bridge-delete", help="delete a bridge pipeworkd created, and its firewall rule")
    delete.add_argument("bridge")
    delete.add_argument("--force", action="store_true", help="delete it even if ports are still attached")
    commands.add_parser("cleanup", help="remove firewall rules of bridges that are gone")
    return parser


def _words(args: argparse.Namespace) -> List[str]:
    words = args.pipework_args
    return words[1:] if words[:1] == ["--"] else words


def cmd_attach(args: argparse.Namespace) -> int:
    started = time.monotonic()
    docker = DockerAdapter()
    try:
        info, result = run_attach(_words(args), docker, os.environ.get("PIPEWORKD_PROC") or "/proc")
    finally:
        docker.close()
    print(f"{info.name} ({info.short_id}): {result.summary()} in {(time.monotonic() - started) * 1000:.0f} ms")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    spec = parse(_words(args))
    for name, value in vars(spec).items():
        if name != "argv" and value not in (None, (), False):
            print(f"{name}: {value}")
    return 0


def cmd_bridge_delete(args: argparse.Namespace) -> int:
    with nl.host_iproute() as ipr:
        bridge = nl.find_link(ipr, args.bridge)
        if bridge is not None:
            if bridge.kind != "bridge" or bridge.alias != nl.OWNER_ALIAS:
                raise PipeworkError(f"{args.bridge} is not a bridge created by pipeworkd; not deleting it")
            ports = nl.bridge_ports(ipr, bridge.index)
            if ports and not args.force:
                names = ", ".join(port.name for port in ports)
                raise PipeworkError(f"bridge {args.bridge} still has ports ({names}); use --force to delete it")
            nl.delete_link(ipr, bridge.index)
            print(f"bridge {args.bridge} deleted")
    removed = firewall.remove_bridge_rules(args.bridge) if firewall.available() else 0
    if bridge is None and not removed:
        raise PipeworkError(f"bridge {args.bridge} does not exist")
    if removed:
        print(f"firewall rule for {args.bridge} removed")
    return 0


def cmd_cleanup(_args: argparse.Namespace) -> int:
    with nl.host_iproute() as ipr:
        names = [link.name for link in nl.links(ipr)]
    gone = firewall.remove_rules_of_missing_bridges(names)
    print(f"removed firewall rules of {len(gone)} missing bridge(s){': ' + ', '.join(gone) if gone else ''}")
    return 0


COMMANDS = {"attach": cmd_attach, "check": cmd_check, "bridge-delete": cmd_bridge_delete, "cleanup": cmd_cleanup}


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    log.setup(debug=args.debug, journal=False, level=logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except PipeworkError as exc:
        print(f"pipeworkctl: {exc}", file=sys.stderr)
        return exc.exit_code
    except firewall.FirewallError as exc:
        print(f"pipeworkctl: firewall: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"pipeworkctl: permission denied ({exc.strerror}); run as root", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
