"""Parse a pipework argument string into a typed, validated spec.

Pure: nothing here touches the kernel or Docker. The grammar is that of the
pipework script (docs/usage.md), with options accepted in any order and
every value validated before anything is built.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import shlex
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple, Union

from .errors import NotSupportedError, SpecError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

DEFAULT_CONTAINER_IFNAME = "eth1"
IFNAMSIZ_MAX = 15
DHCP_METHODS = ("dhcp", "udhcpc", "udhcpc-f", "dhclient", "dhclient-f", "dhcpcd")
PASSTHROUGH_KINDS = ("route", "rule", "tc")

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_PREFIX_RE = re.compile(r"^(?:[1-9][0-9]{0,2})$")
_GENERATED_HOST_NAME = re.compile(r"^(?:v.+pl[0-9]+|pw[a-z2-7]{13})$")
_CONTAINER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class DhcpSpec:
    method: str
    options: Tuple[str, ...] = ()


@dataclass(frozen=True)
class AttachSpec:
    """One `pipework HOSTIF [-i CIF] [-l LOCALIF] [-a FAM] GUEST IPSPEC [MACSPEC]` call."""

    host_if: str
    guest: str
    container_ifname: str = DEFAULT_CONTAINER_IFNAME
    host_ifname: Optional[str] = None
    host_mac: Optional[str] = None
    family: Optional[int] = None
    address: Optional[IPInterface] = None
    gateway: Optional[IPAddress] = None
    dhcp: Optional[DhcpSpec] = None
    mac: Optional[str] = None
    vlan: Optional[int] = None
    direct_phys: bool = False
    argv: Tuple[str, ...] = field(default=(), compare=False)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class WaitSpec:
    container_ifname: str = DEFAULT_CONTAINER_IFNAME
    argv: Tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class PassthroughSpec:
    kind: str
    guest: str
    args: Tuple[str, ...]
    argv: Tuple[str, ...] = field(default=(), compare=False)


Spec = Union[AttachSpec, WaitSpec, PassthroughSpec]

USAGE = (
    "usage: [--direct-phys] HOSTIF [-i CIF] [-l LOCALIF] [-a 4|6] CONTAINER "
    "IP/LEN[@GW]|0/0|dhcp[:OPTS] [MAC|U:STRING][@VLAN]"
)


def split_command(text: str) -> list:
    """Split with shell word rules; nothing is expanded or evaluated."""
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise SpecError(f"cannot split {text!r}: {exc}") from None


def parse(command: Union[str, Sequence[str]]) -> Spec:
    argv = split_command(command) if isinstance(command, str) else list(command)
    if argv and argv[0] == "pipework":
        argv = argv[1:]
    if not argv:
        raise SpecError(f"empty pipework command; {USAGE}")
    original = tuple(argv)
    if argv[0] in PASSTHROUGH_KINDS:
        return _parse_passthrough(argv, original)
    options, positionals = _split_options(argv)
    if options.get("wait"):
        extra = positionals[:1] + [name for name in ("-l", "-a", "direct_phys") if name in options]
        if extra:
            raise SpecError(f"--wait takes only -i, got {extra[0].replace('_', '-')!r}")
        cif = validate_ifname(options.get("-i", DEFAULT_CONTAINER_IFNAME), "container interface (-i)")
        return WaitSpec(container_ifname=cif, argv=original)
    return _parse_attach(options, positionals, original)


def _parse_passthrough(argv: list, original: tuple) -> PassthroughSpec:
    if len(argv) < 3:
        raise SpecError(f"'{argv[0]}' needs a container and {argv[0]} arguments; usage: {argv[0]} CONTAINER ARGS...")
    return PassthroughSpec(kind=argv[0], guest=validate_container_ref(argv[1]), args=tuple(argv[2:]), argv=original)


def _split_options(argv: list) -> Tuple[dict, list]:
    options: dict = {}
    positionals: list = []
    tokens = iter(argv)
    for token in tokens:
        if token in ("--wait", "--direct-phys"):
            flag = token.lstrip("-").replace("-", "_")
            if flag in options:
                raise SpecError(f"option {token} given twice")
            options[flag] = True
        elif token in ("-i", "-l", "-a"):
            if token in options:
                raise SpecError(f"option {token} given twice")
            value = next(tokens, None)
            if value is None or value == "":
                raise SpecError(f"option {token} needs a value")
            options[token] = value
        elif token.startswith("-") and len(token) > 1:
            raise SpecError(f"unknown option {token!r}; {USAGE}")
        else:
            positionals.append(token)
    return options, positionals


def _parse_attach(options: dict, positionals: list, original: tuple) -> AttachSpec:
    if len(positionals) < 3:
        missing = ("host interface", "container", "IP address or dhcp")[len(positionals)]
        raise SpecError(f"missing {missing}; {USAGE}")
    if len(positionals) > 4:
        raise SpecError(f"unexpected argument {positionals[4]!r}; {USAGE}")
    host_word, guest, ipspec = positionals[:3]
    macspec = positionals[3] if len(positionals) == 4 else ""

    family = _parse_family(options.get("-a"))
    host_if, host_mac = _parse_host_if(host_word)
    address, gateway, dhcp = _parse_ipspec(ipspec, family)
    mac, vlan = _parse_macspec(macspec)
    cif = validate_ifname(options.get("-i", DEFAULT_CONTAINER_IFNAME), "container interface (-i)")
    local = options.get("-l")
    return AttachSpec(
        host_if=host_if,
        host_mac=host_mac,
        guest=validate_container_ref(guest),
        container_ifname=cif,
        host_ifname=validate_local_name(local) if local is not None else None,
        family=family,
        address=address,
        gateway=gateway,
        dhcp=dhcp,
        mac=mac,
        vlan=vlan,
        direct_phys=bool(options.get("direct_phys")),
        argv=original,
    )


def _parse_family(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    if value not in ("4", "6"):
        raise SpecError(f"-a {value}: the address family must be 4 or 6")
    return int(value)


def _parse_host_if(word: str) -> Tuple[str, Optional[str]]:
    if word.lower().startswith("mac:"):
        return "", validate_mac(word[4:], "host interface MAC")
    return validate_ifname(word, "host interface"), None


def _parse_ipspec(spec: str, family: Optional[int]):
    method, sep, opts = spec.partition(":")
    if method in DHCP_METHODS:
        return None, None, DhcpSpec(method=method, options=tuple(split_command(opts)) if sep else ())
    if spec == "0/0":
        return None, None, None
    text, at, gateway_text = spec.partition("@")
    gateway_text = gateway_text.split("@", 1)[0]  # pipework ignores a second '@' and what follows
    if at and not gateway_text:
        raise SpecError(f"{spec}: empty gateway after '@'")
    if "/" not in text:
        hint = f"; maybe you meant {text}/24" if _is_ipv4(text) else ""
        raise SpecError(f"{spec}: the IP address needs a netmask{hint}")
    if not _valid_prefix(text.rpartition("/")[2]):
        raise SpecError(f"{text}: the prefix length must be a number from 1 to 32 (128 for IPv6) or a netmask")
    try:
        address = ipaddress.ip_interface(text)
    except ValueError:
        raise SpecError(f"{text}: not a valid IP address with prefix length") from None
    _check_family(address.version, family, text)
    _check_usable(address.ip, text, "address")
    if address.network.prefixlen < address.max_prefixlen - 1:
        if address.ip == address.network.network_address:
            raise SpecError(f"{text}: this is the network address, not a host address")
        if address.version == 4 and address.ip == address.network.broadcast_address:
            raise SpecError(f"{text}: this is the broadcast address, not a host address")
    gateway = None
    if gateway_text:
        try:
            gateway = ipaddress.ip_address(gateway_text)
        except ValueError:
            raise SpecError(f"{gateway_text!r}: not a valid gateway address") from None
        if gateway.version != address.version:
            raise SpecError(f"gateway {gateway} is not of the same family as {text}")
        _check_usable(gateway, str(gateway), "gateway")
        if gateway.version == 4 and gateway == ipaddress.IPv4Address("255.255.255.255"):
            raise SpecError(f"gateway {gateway}: a broadcast address cannot be a gateway")
        if gateway == address.ip:
            raise SpecError(f"gateway {gateway} is the interface's own address")
        network = address.network
        if network.prefixlen < address.max_prefixlen - 1 and gateway in (
                network.network_address, network.broadcast_address if gateway.version == 4 else None):
            raise SpecError(f"gateway {gateway} is the network or broadcast address of {network}")
    return address, gateway, None


def _valid_prefix(text: str) -> bool:
    """A prefix length, or a dotted netmask (not a host mask, which ipaddress would also take)."""
    if _PREFIX_RE.match(text):
        return True
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{text}").netmask) == text and text != "0.0.0.0"
    except ValueError:
        return False


def _check_usable(ip: IPAddress, text: str, what: str) -> None:
    for unusable, kind in ((ip.is_unspecified, "unspecified"), (ip.is_loopback, "loopback"),
                           (ip.is_multicast, "multicast")):
        if unusable:
            raise SpecError(f"{what} {text}: a {kind} address cannot be used here")


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _check_family(version: int, family: Optional[int], text: str) -> None:
    if family is not None and family != version:
        raise SpecError(f"{text} is an IPv{version} address but -a {family} was given")


def _parse_macspec(spec: str) -> Tuple[Optional[str], Optional[int]]:
    if not spec:
        return None, None
    mac_text, at, rest = spec.partition("@")
    vlan = None
    if at:
        vlan_text = rest.split("@", 1)[0]
        if not re.fullmatch(r"[0-9]{1,4}", vlan_text) or not 1 <= int(vlan_text) <= 4094:
            raise SpecError(f"VLAN {vlan_text!r}: must be a number from 1 to 4094")
        vlan = int(vlan_text)
    if not mac_text:
        return None, vlan
    if mac_text.startswith("U:"):
        return mac_from_string(mac_text[2:]), vlan
    return validate_mac(mac_text, "MAC address"), vlan


def mac_from_string(text: str) -> str:
    """pipework's `U:` MAC: 02 then the first five bytes of md5(text + newline)."""
    digest = hashlib.md5((text + "\n").encode()).digest()
    return ":".join(["02"] + [f"{b:02x}" for b in digest[:5]])


def validate_mac(text: str, what: str) -> str:
    if not _MAC_RE.match(text):
        raise SpecError(f"{what} {text!r}: expected six hex pairs like 02:42:ac:11:00:02")
    mac = text.lower()
    if int(mac[:2], 16) & 1:
        raise SpecError(f"{what} {text}: a multicast address cannot be an interface address")
    if mac == "00:00:00:00:00:00":
        raise SpecError(f"{what} {text}: the all-zero address is not valid")
    return mac


def validate_ifname(name: str, what: str) -> str:
    if not name:
        raise SpecError(f"{what}: empty name")
    if len(name.encode()) > IFNAMSIZ_MAX:
        raise SpecError(f"{what} {name!r}: longer than {IFNAMSIZ_MAX} bytes")
    if name in (".", "..") or any(c in name for c in "/:%") or not name.isprintable() or \
            any(c.isspace() for c in name):
        raise SpecError(f"{what} {name!r}: not a valid interface name")  # the kernel expands '%d'
    return name


def validate_local_name(name: str) -> str:
    """-l: a valid name that is not of the forms pipeworkd generates, so nobody can take those."""
    validate_ifname(name, "host interface name (-l)")
    if _GENERATED_HOST_NAME.match(name):
        raise SpecError(f"host interface name (-l) {name!r}: names like v<CIF>pl<PID> and pw<hash> are "
                        f"reserved for the names pipeworkd generates")
    return name


def validate_container_ref(ref: str) -> str:
    if not _CONTAINER_RE.match(ref.lstrip("/")):
        raise SpecError(f"container {ref!r}: not a valid container name or ID")
    return ref.lstrip("/")


def refuse_unsupported(spec: Spec) -> AttachSpec:
    """Refuse, with one line, the forms that are parsed but not implemented yet."""
    if isinstance(spec, WaitSpec):
        raise NotSupportedError("--wait is not supported yet")
    if isinstance(spec, PassthroughSpec):
        raise NotSupportedError(f"'{spec.kind}' commands are not supported yet")
    if spec.dhcp is not None:
        raise NotSupportedError(f"DHCP ({spec.dhcp.method}) is not supported yet")
    if spec.direct_phys:
        raise NotSupportedError("--direct-phys is not supported yet")
    if spec.vlan is not None:
        raise NotSupportedError(f"VLAN @{spec.vlan} is not supported yet")
    if spec.family == 6 or (spec.address is not None and spec.address.version == 6):
        raise NotSupportedError("IPv6 addresses are not supported yet")
    return spec
