"""Netlink backend on pyroute2: the only module that changes kernel state.

Runs on pyroute2 0.7.2 (Debian bookworm) and 0.9.x. Shared code reads
attributes with get_attr(), which behaves the same on both.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Tuple, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted, NetlinkError

LOG = logging.getLogger(__name__)

IFF_UP = 0x1
ARPHRD_INFINIBAND = 32
ARPHRD_LOOPBACK = 772
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254
OWNER_ALIAS = "pipeworkd"
CLONE_NEWNET = 0x40000000
ETH_P_ARP = 0x0806
BROADCAST_MAC = b"\xff" * 6
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceGone(Exception):
    """The container's network namespace no longer exists."""


@dataclass(frozen=True)
class LinkInfo:
    index: int
    name: str
    kind: str
    mtu: int
    up: bool
    mac: str
    master: Optional[int]
    alias: str
    link_type: int
    link: Optional[int]


def link_info(msg) -> LinkInfo:
    linkinfo = msg.get_attr("IFLA_LINKINFO")
    kind = linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo is not None else None
    return LinkInfo(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        kind=kind or "",
        mtu=msg.get_attr("IFLA_MTU") or 0,
        up=bool(msg["flags"] & IFF_UP),
        mac=(msg.get_attr("IFLA_ADDRESS") or "").lower(),
        master=msg.get_attr("IFLA_MASTER"),
        alias=msg.get_attr("IFLA_IFALIAS") or "",
        link_type=msg["ifi_type"],
        link=msg.get_attr("IFLA_LINK"),
    )


def gratuitous_arp(mac: str, address) -> bytes:
    """An Ethernet broadcast ARP request whose sender and target are both `address`."""
    hw = bytes.fromhex(mac.replace(":", ""))
    ip = address.packed
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + hw + ip + b"\x00" * 6 + ip
    return BROADCAST_MAC + hw + struct.pack("!H", ETH_P_ARP) + arp


class Netns:
    """A held file descriptor on a container's network namespace.

    The fd is opened once, so a PID that exits or is reused later cannot
    redirect any step to another namespace.
    """

    def __init__(self, proc_root: str, pid: int) -> None:
        path = os.path.join(proc_root, str(pid), "ns", "net")
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NamespaceGone(f"process {pid} is gone") from None

    def is_same_as_ours(self) -> bool:
        ours = os.stat("/proc/self/ns/net")
        theirs = os.fstat(self.fd)
        return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)

    def create(self, factory: Callable[[], T]) -> T:
        """Call `factory` (which makes a socket) inside the namespace.

        This thread joins the namespace only while the socket is created (a
        socket stays bound to the namespace it was born in), then returns. No
        process is forked: forking a threaded daemon can deadlock the child.
        """
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(self.fd)
            try:
                return factory()
            finally:
                _return_to(own)
        finally:
            os.close(own)

    @contextmanager
    def iproute(self) -> Iterator[IPRoute]:
        handle = self.create(IPRoute)
        try:
            yield handle
        finally:
            handle.close()

    def announce(self, ifname: str, mac: str, address) -> None:
        """Send one gratuitous ARP for `address` from `ifname`, so neighbours learn it now."""
        with self.create(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)) as sock:
            sock.bind((ifname, ETH_P_ARP))
            sock.send(gratuitous_arp(mac, address))

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "Netns":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def _return_to(own_fd: int) -> None:
    try:
        _setns(own_fd)
    except OSError as exc:
        # This thread would go on working in a container's namespace.
        LOG.critical("cannot return to the host network namespace (%s); exiting", exc)
        os._exit(70)


@contextmanager
def host_iproute() -> Iterator[IPRoute]:
    handle = IPRoute()
    try:
        yield handle
    finally:
        handle.close()


class UndoStack:
    """Undo actions for what an attach changed, replayed newest first on failure."""

    def __init__(self) -> None:
        self._actions: List[Tuple[str, Callable[[], None]]] = []

    def push(self, description: str, action: Callable[[], None]) -> None:
        self._actions.append((description, action))

    def commit(self) -> None:
        self._actions.clear()

    def rollback(self) -> None:
        while self._actions:
            description, action = self._actions.pop()
            try:
                action()
                LOG.debug("undone: %s", description)
            except Exception as exc:  # keep undoing the rest
                LOG.warning("could not undo %s: %s", description, exc)


def find_link(ipr, name: str) -> Optional[LinkInfo]:
    try:
        return link_info(ipr.link("get", ifname=name)[0])
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def get_link(ipr, index: int) -> LinkInfo:
    return link_info(ipr.link("get", index=index)[0])


DUMP_ATTEMPTS = 40


def _dump(method, **kwargs) -> list:
    """A netlink dump, started again when the kernel says a change interrupted it.

    While many links come and go (a burst of container starts), dumps are
    interrupted often; growing pauses (about 5 s in all) let the burst pass.
    """
    for attempt in range(DUMP_ATTEMPTS):
        try:
            return list(method(**kwargs))
        except NetlinkDumpInterrupted:
            if attempt == DUMP_ATTEMPTS - 1:
                raise
            time.sleep(min(0.005 * (attempt + 1), 0.2))
    return []


def links(ipr) -> List[LinkInfo]:
    return [link_info(msg) for msg in _dump(ipr.get_links)]


def host_link_names() -> List[str]:
    with host_iproute() as ipr:
        return [link.name for link in links(ipr)]


def find_link_by_mac(ipr, mac: str) -> Optional[LinkInfo]:
    """The first link with that MAC; a physical one wins over bridges and their ports."""
    matches = [link for link in links(ipr) if link.mac == mac.lower()]
    matches.sort(key=lambda link: (link.kind != "", link.master is not None, link.name))
    return matches[0] if matches else None


def create_bridge(ipr, name: str) -> Tuple[LinkInfo, bool]:
    """Create an up bridge marked as ours; return it and whether this call created it."""
    try:
        ipr.link("add", ifname=name, kind="bridge")
        created = True
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise
        created = False  # another attach won the race: use theirs
    bridge = find_link(ipr, name)
    if bridge is None or bridge.kind != "bridge":
        raise NetlinkError(errno.EEXIST, f"{name} exists and is not a bridge")
    if created:
        ipr.link("set", index=bridge.index, ifalias=OWNER_ALIAS)
    ipr.link("set", index=bridge.index, state="up")
    return get_link(ipr, bridge.index), created


def delete_link(ipr, index: int) -> None:
    try:
        ipr.link("del", index=index)
    except NetlinkError as exc:
        if exc.code != errno.ENODEV:
            raise


def bridge_port_names(ipr, bridge: LinkInfo) -> List[str]:
    """The bridge's ports, from sysfs when it shows this netns (no dump to be interrupted)."""
    try:
        return sorted(os.listdir(f"/sys/class/net/{bridge.name}/brif"))
    except OSError:
        return [link.name for link in links(ipr) if link.master == bridge.index]


def add_veth_into_netns(ipr, host_name: str, peer_name: str, netns_fd: int, mtu: int) -> LinkInfo:
    """Create a veth pair whose peer is born inside the target netns under its final name."""
    ipr.link(
        "add",
        ifname=host_name,
        kind="veth",
        mtu=mtu,
        peer={"ifname": peer_name, "net_ns_fd": netns_fd, "mtu": mtu},
    )
    host_end = find_link(ipr, host_name)
    if host_end is None:
        raise NetlinkError(errno.ENODEV, f"{host_name} vanished after creation")
    return host_end


def add_macvlan_into_netns(ipr, parent_index: int, name: str, netns_fd: int, mtu: int) -> None:
    """Create a bridge-mode macvlan of a host link directly inside the target netns."""
    ipr.link(
        "add",
        ifname=name,
        kind="macvlan",
        link=parent_index,
        macvlan_mode="bridge",
        mtu=mtu,
        net_ns_fd=netns_fd,
    )


def set_master_up(ipr, index: int, master_index: int) -> None:
    ipr.link("set", index=index, master=master_index, state="up")


def set_up(ipr, index: int) -> None:
    ipr.link("set", index=index, state="up")


def set_mac(ipr, index: int, mac: str) -> None:
    ipr.link("set", index=index, address=mac)


def add_address(ipr, index: int, address) -> None:
    kwargs = {"index": index, "address": str(address.ip), "prefixlen": address.network.prefixlen}
    if address.version == 4 and address.network.prefixlen <= 30:
        kwargs["broadcast"] = str(address.network.broadcast_address)
    ipr.addr("add", **kwargs)


def addresses(ipr, index: int, family: int) -> List[Tuple[str, int]]:
    return [
        (msg.get_attr("IFA_ADDRESS"), msg["prefixlen"])
        for msg in _dump(ipr.get_addr, family=family)
        if msg["index"] == index
    ]


def default_routes(ipr, family: int) -> List[dict]:
    routes = []
    for msg in _dump(ipr.get_routes, family=family, table=RT_TABLE_MAIN):
        if msg["dst_len"] == 0 and msg.get_attr("RTA_TABLE") in (None, RT_TABLE_MAIN):
            routes.append({
                "gateway": msg.get_attr("RTA_GATEWAY"),
                "oif": msg.get_attr("RTA_OIF"),
                "priority": msg.get_attr("RTA_PRIORITY"),
            })
    return routes


def family_of(ip) -> int:
    """The address family number of an ipaddress address or interface."""
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


def add_onlink_host_route(ipr, index: int, gateway) -> None:
    """A /32 (or /128) link-scope route, so an off-subnet gateway is reachable."""
    family = family_of(gateway)
    ipr.route("replace", family=family, dst=str(gateway), dst_len=gateway.max_prefixlen,
              oif=index, scope=RT_SCOPE_LINK)


def replace_default_route(ipr, index: int, gateway) -> None:
    family = family_of(gateway)
    ipr.route("replace", family=family, dst_len=0, gateway=str(gateway), oif=index)


def restore_default_routes(ipr, family: int, routes: List[dict]) -> None:
    for route in routes:
        kwargs = {"family": family, "dst_len": 0, "oif": route["oif"]}
        if route["gateway"]:
            kwargs["gateway"] = route["gateway"]
        if route["priority"] is not None:
            kwargs["priority"] = route["priority"]
        ipr.route("replace", **kwargs)
