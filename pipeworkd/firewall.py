"""Let traffic pass inside the bridges pipeworkd creates.

Docker sets the FORWARD policy to DROP, and with bridge netfilter on, frames
between two ports of any other Linux bridge go through that chain too. For
each bridge it creates, pipeworkd inserts one ACCEPT rule for traffic that
enters and leaves that bridge, tagged with a comment so that it only ever
touches its own rules, and removes the rule when the bridge is gone.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import subprocess
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, List, Optional, Sequence

from .locks import LockTimeout, bridge_lock, named_lock

LOG = logging.getLogger(__name__)

COMMENT_PREFIX = "pipeworkd bridge "
PREFERRED_CHAINS = ("DOCKER-USER", "FORWARD")
TIMEOUT = 20.0
# iptables reads a trailing '+' as a wildcard: only plain names get a rule.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class FirewallError(Exception):
    pass


def _iptables(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    binary = shutil.which("iptables")
    if binary is None:
        raise FirewallError("iptables is not installed")
    argv = [binary, "-w", "10", *args]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise FirewallError(f"{shlex.join(argv)} timed out") from None
    if check and result.returncode != 0:
        raise FirewallError(f"{shlex.join(argv)}: {result.stderr.strip() or result.returncode}")
    return result


def available() -> bool:
    return shutil.which("iptables") is not None


def _chain_exists(chain: str) -> bool:
    return _iptables(["-S", chain], check=False).returncode == 0


@contextmanager
def _locked() -> Iterator[None]:
    """One check-then-change at a time, across threads and processes."""
    try:
        with named_lock("firewall"):
            yield
    except LockTimeout as exc:
        raise FirewallError(str(exc)) from None


def _rule(bridge: str) -> List[str]:
    if not PLAIN_NAME.match(bridge):
        raise FirewallError(f"bridge name {bridge!r} is not a plain interface name")
    return ["-i", bridge, "-o", bridge, "-m", "comment", "--comment", COMMENT_PREFIX + bridge, "-j", "ACCEPT"]


def _chain_for_new_rule() -> str:
    for chain in PREFERRED_CHAINS:
        if _chain_exists(chain):
            return chain
    raise FirewallError("neither DOCKER-USER nor FORWARD exists in the filter table")


def allow_bridge(bridge: str) -> bool:
    """Ensure the ACCEPT rule for `bridge`; return True when it was added now."""
    if rule_chain(bridge) is not None:
        return False  # the common case needs no lock
    with _locked():
        if rule_chain(bridge) is not None:
            return False
        chain = _chain_for_new_rule()
        _iptables(["-I", chain, *_rule(bridge)])
    LOG.info("firewall: traffic inside bridge %s accepted (chain %s)", bridge, chain)
    return True


def rule_chain(bridge: str) -> Optional[str]:
    for chain in PREFERRED_CHAINS:
        if _iptables(["-C", chain, *_rule(bridge)], check=False).returncode == 0:
            return chain
    return None


def remove_bridge_rules(bridge: str) -> int:
    """Delete every copy of our rule for `bridge`; return how many were removed."""
    with _locked():
        removed = _remove_unlocked(bridge)
    if removed:
        LOG.info("firewall: rule for bridge %s removed", bridge)
    return removed


def _remove_unlocked(bridge: str) -> int:
    removed = 0
    for chain in PREFERRED_CHAINS:
        while _iptables(["-C", chain, *_rule(bridge)], check=False).returncode == 0:
            _iptables(["-D", chain, *_rule(bridge)])
            removed += 1
    return removed


def bridges_with_rules() -> List[str]:
    """Bridges named in our rules, read back from the rule comments."""
    names = []
    for chain in PREFERRED_CHAINS:
        result = _iptables(["-S", chain], check=False)
        if result.returncode != 0:
            continue
        for line in result.stdout.splitlines():
            name = _bridge_from_rule(line)
            if name and name not in names:
                names.append(name)
    return names


def _bridge_from_rule(line: str) -> Optional[str]:
    try:
        words = shlex.split(line)
    except ValueError:
        return None
    for position, word in enumerate(words[:-1]):
        if word == "--comment" and words[position + 1].startswith(COMMENT_PREFIX):
            return words[position + 1][len(COMMENT_PREFIX):]
    return None


def remove_rules_of_missing_bridges(link_names: Callable[[], Iterable[str]]) -> List[str]:
    """Remove the rules of bridges that no longer exist; return their names.

    Each removal happens under that bridge's lock, after checking again that
    the bridge is still missing: an attach holding the lock may be creating
    it right now, and would count on the rule it found.
    """
    named = [name for name in bridges_with_rules() if PLAIN_NAME.match(name)]
    if not named:
        return []
    missing = set(named) - set(link_names())
    gone = []
    for name in named:
        if name not in missing:
            continue
        with bridge_lock(name):
            if name in link_names():
                continue
            if remove_bridge_rules(name):
                gone.append(name)
    return gone
