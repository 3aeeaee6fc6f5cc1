"""The attach engine: one validated AttachSpec plus one container, done atomically.

Everything that is built is pushed on an undo stack; if any step fails, or
the result read back does not match what was asked, it is all taken down again.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from dataclasses import dataclass
from typing import Optional

from pyroute2.netlink.exceptions import NetlinkError

from . import firewall
from . import netlink as nl
from .errors import AttachError, ContainerError, ContainerGone, HostInterfaceError, NotSupportedError
from .locks import LockTimeout, bridge_lock
from .names import host_veth_name
from .spec import AttachSpec, refuse_unsupported

LOG = logging.getLogger(__name__)

CREATED_BRIDGE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Target:
    """The container to attach, as resolved by the caller."""

    id: str
    name: str
    pid: int


@dataclass(frozen=True)
class AttachResult:
    container_ifname: str
    kind: str
    host_ifname: Optional[str]
    host_link: str
    mtu: int
    mac: str
    address: Optional[str]
    already_attached: bool = False
    bridge_created: bool = False

    def summary(self) -> str:
        where = f"{self.kind} on {self.host_link}"
        if self.host_ifname:
            where += f" (host end {self.host_ifname})"
        what = "already attached" if self.already_attached else "attached"
        return (f"{self.container_ifname} {what}: {where}, address {self.address or 'none'}, "
                f"mac {self.mac}, mtu {self.mtu}")


@dataclass(frozen=True)
class HostSide:
    kind: str  # "bridge" or "macvlan"
    name: str
    link: Optional[nl.LinkInfo]  # None: a bridge to create


def attach(spec: AttachSpec, target: Target, proc_root: str = "/proc") -> AttachResult:
    refuse_unsupported(spec)
    if target.pid <= 0:
        raise ContainerGone(f"container {target.name} is not running")
    try:
        netns = nl.Netns(proc_root, target.pid)
    except nl.NamespaceGone:
        raise ContainerGone(f"container {target.name} stopped (process {target.pid} is gone)") from None
    with netns:
        if netns.is_same_as_ours():
            raise ContainerError(
                f"container {target.name} uses the host's network namespace (--net=host); refusing to attach")
        try:
            with nl.host_iproute() as ipr, netns.iproute() as cns:
                host_side = resolve_host_side(ipr, spec)
                if host_side.kind != "bridge":
                    return _Attacher(spec, target, netns, ipr, cns, host_side).run()
                # One attach at a time per bridge: a rollback can then tell for sure
                # whether the bridge it made is still unused.
                with bridge_lock(host_side.name):
                    return _Attacher(spec, target, netns, ipr, cns, resolve_host_side(ipr, spec)).run()
        except NetlinkError as exc:
            raise AttachError(f"container {target.name}: netlink: {_kernel_reason(exc)}") from None
        except LockTimeout as exc:
            raise AttachError(f"container {target.name}: {exc}") from None


def resolve_host_side(ipr, spec: AttachSpec) -> HostSide:
    name = spec.host_if
    if spec.host_mac:
        link = nl.find_link_by_mac(ipr, spec.host_mac)
        if link is None:
            raise HostInterfaceError(f"no host interface has MAC {spec.host_mac}")
        name = link.name
    link = nl.find_link(ipr, name)
    if link is None:
        if name.startswith("br"):
            if not CREATED_BRIDGE_NAME.match(name):
                raise HostInterfaceError(f"bridge {name!r} does not exist, and pipeworkd only creates bridges "
                                         f"named with letters, digits, '.', '-' and '_'")
            return HostSide("bridge", name, None)
        if name.startswith("ovs"):
            raise NotSupportedError(f"creating the OVS bridge {name} is not supported yet")
        if name.startswith("dummy"):
            raise NotSupportedError(f"dummy interfaces ({name}) are not supported yet")
        raise HostInterfaceError(
            f"host interface {name} does not exist (only names starting with 'br' are created as bridges)")
    if link.kind == "bridge":
        return HostSide("bridge", name, link)
    if link.kind == "openvswitch":
        raise NotSupportedError(f"OVS bridge {name} is not supported yet")
    if link.link_type == nl.ARPHRD_INFINIBAND:
        raise NotSupportedError(f"InfiniBand interface {name} is not supported yet")
    if link.link_type == nl.ARPHRD_LOOPBACK:
        raise HostInterfaceError(f"host interface {name} is the loopback; pick a NIC or a bridge")
    if link.master is not None:
        master = nl.get_link(ipr, link.master).name
        raise HostInterfaceError(f"host interface {name} is a port of {master}, so it cannot carry a macvlan; "
                                 f"attach to {master} instead")
    return HostSide("macvlan", name, link)


def _kernel_reason(exc: NetlinkError) -> str:
    return exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else os.strerror(exc.code)


class _Attacher:
    def __init__(self, spec: AttachSpec, target: Target, netns: nl.Netns, ipr, cns, host_side: HostSide):
        self.spec = spec
        self.target = target
        self.netns = netns
        self.ipr = ipr
        self.cns = cns
        self.host_side = host_side
        self.undo = nl.UndoStack()
        self.step = "start"
        self.bridge_created = False
        self.host_ifname: Optional[str] = None

    def run(self) -> AttachResult:
        existing = nl.find_link(self.cns, self.spec.container_ifname)
        if existing is not None:
            return self._already_attached(existing)
        try:
            if self.host_side.kind == "bridge":
                mtu, peer_index = self._build_veth()
            else:
                mtu, peer_index = self._build_macvlan()
            link = self._configure_container_side()
            self._verify(link, mtu, peer_index)
        except NetlinkError as exc:
            self.undo.rollback()
            raise AttachError(self._failure_text(exc)) from None
        except BaseException:
            self.undo.rollback()
            raise
        self.undo.commit()
        self._announce(link)
        return self._result(link, mtu)

    def _announce(self, link: nl.LinkInfo) -> None:
        """Best effort, as pipework's arping: a failure never changes the result."""
        address = self.spec.address
        if address is None or address.version != 4:
            return
        try:
            self.netns.announce(link.name, link.mac, address.ip)
        except OSError as exc:
            LOG.debug("gratuitous ARP for %s on %s not sent: %s", address.ip, link.name, exc)

    # --- host side ---

    def _build_veth(self):
        host_name = self.spec.host_ifname or host_veth_name(
            self.spec.container_ifname, self.target.pid, self.target.id)
        if nl.find_link(self.ipr, host_name) is not None:
            raise AttachError(f"host interface {host_name} already exists; choose another -l name"
                              if self.spec.host_ifname else f"host interface {host_name} already exists")
        self.step = f"create bridge {self.host_side.name}"
        bridge = self.host_side.link
        if bridge is None:
            bridge, self.bridge_created = nl.create_bridge(self.ipr, self.host_side.name)
            if self.bridge_created:
                self.undo.push(f"bridge {bridge.name}", lambda: self._remove_unused_bridge(bridge))
        if bridge.alias == nl.OWNER_ALIAS:
            self._open_firewall(bridge.name)
        self.step = f"create veth {host_name}"
        host_end = nl.add_veth_into_netns(
            self.ipr, host_name, self.spec.container_ifname, self.netns.fd, bridge.mtu)
        self.host_ifname = host_name
        self.undo.push(f"veth {host_name}", lambda: nl.delete_link(self.ipr, host_end.index))
        self.step = f"add {host_name} to bridge {bridge.name}"
        nl.set_master_up(self.ipr, host_end.index, bridge.index)
        self.bridge_index = bridge.index
        return bridge.mtu, host_end.index

    def _build_macvlan(self):
        parent = self.host_side.link
        if self.spec.host_ifname:
            LOG.warning("-l %s ignored: a macvlan has no host-side interface", self.spec.host_ifname)
        if not parent.up:
            self.step = f"set {parent.name} up"
            nl.set_up(self.ipr, parent.index)
            self.undo.push(f"{parent.name} up", lambda: self.ipr.link("set", index=parent.index, state="down"))
        self.step = f"create macvlan on {parent.name}"
        nl.add_macvlan_into_netns(self.ipr, parent.index, self.spec.container_ifname, self.netns.fd, parent.mtu)
        cif = self.spec.container_ifname
        self.undo.push(f"macvlan {cif}", lambda: self._delete_container_link(cif))
        return parent.mtu, parent.index

    def _open_firewall(self, bridge: str) -> None:
        try:
            firewall.allow_bridge(bridge)
        except firewall.FirewallError as exc:
            LOG.warning("bridge %s: could not add the firewall rule, traffic between its ports may be "
                        "dropped: %s", bridge, exc)

    def _remove_unused_bridge(self, bridge: nl.LinkInfo) -> None:
        """The bridge this attach made, and its rule, unless another attach has joined it since."""
        if nl.bridge_port_names(self.ipr, bridge):
            return
        nl.delete_link(self.ipr, bridge.index)
        if firewall.available():
            firewall.remove_bridge_rules(bridge.name)

    def _delete_container_link(self, name: str) -> None:
        link = nl.find_link(self.cns, name)
        if link is not None:
            nl.delete_link(self.cns, link.index)

    # --- container side ---

    def _configure_container_side(self) -> nl.LinkInfo:
        spec = self.spec
        cif = spec.container_ifname
        link = nl.find_link(self.cns, cif)
        if link is None:
            raise AttachError(f"{cif} did not appear in container {self.target.name}")
        if spec.mac:
            self.step = f"set MAC {spec.mac} on {cif}"
            nl.set_mac(self.cns, link.index, spec.mac)
        if spec.address is not None:
            self.step = f"add address {spec.address} to {cif}"
            nl.add_address(self.cns, link.index, spec.address)
        self.step = f"set {cif} up"
        nl.set_up(self.cns, link.index)
        if spec.gateway is not None:
            self._set_default_route(link.index)
        return nl.get_link(self.cns, link.index)

    def _set_default_route(self, index: int) -> None:
        gateway = self.spec.gateway
        family = nl.family_of(gateway)
        previous = nl.default_routes(self.cns, family)
        if gateway not in self.spec.address.network:
            self.step = f"add on-link route to gateway {gateway}"
            nl.add_onlink_host_route(self.cns, index, gateway)
        self.step = f"set default route via {gateway}"
        nl.replace_default_route(self.cns, index, gateway)
        self.undo.push("default route", lambda: nl.restore_default_routes(self.cns, family, previous))

    def _verify(self, link: nl.LinkInfo, mtu: int, peer_index: int) -> None:
        problems = []
        if not link.up:
            problems.append("interface is down")
        if link.mtu != mtu:
            problems.append(f"mtu {link.mtu} instead of {mtu}")
        if self.spec.mac and link.mac != self.spec.mac:
            problems.append(f"mac {link.mac} instead of {self.spec.mac}")
        if self.spec.address is not None and not self._has_address(link.index):
            problems.append(f"address {self.spec.address} missing")
        if self.host_side.kind == "bridge":
            host_end = nl.get_link(self.ipr, peer_index)
            if host_end.master != self.bridge_index or not host_end.up:
                problems.append(f"host end {host_end.name} is not up in {self.host_side.name}")
        if problems:
            raise AttachError(f"{self.spec.container_ifname} in {self.target.name}: " + "; ".join(problems))

    def _has_default_via(self, index: int) -> bool:
        gateway = self.spec.gateway
        family = nl.family_of(gateway)
        return any(route["gateway"] == str(gateway) and route["oif"] == index
                   for route in nl.default_routes(self.cns, family))

    def _has_address(self, index: int) -> bool:
        address = self.spec.address
        family = nl.family_of(address)
        return (str(address.ip), address.network.prefixlen) in nl.addresses(self.cns, index, family)

    # --- results ---

    def _already_attached(self, existing: nl.LinkInfo) -> AttachResult:
        """An equal attachment is success (a re-run); anything else is a clear refusal."""
        if self._matches(existing):
            return AttachResult(
                container_ifname=existing.name, kind=existing.kind, host_ifname=None,
                host_link=self.host_side.name, mtu=existing.mtu, mac=existing.mac,
                address=str(self.spec.address) if self.spec.address else None, already_attached=True)
        raise AttachError(f"interface {self.spec.container_ifname} already exists in container "
                          f"{self.target.name} with another configuration; pick another name with -i")

    def _matches(self, existing: nl.LinkInfo) -> bool:
        if self.spec.address is not None and not self._has_address(existing.index):
            return False
        if self.spec.gateway is not None and not self._has_default_via(existing.index):
            return False
        if self.spec.mac and existing.mac != self.spec.mac:
            return False
        if existing.link is None or self.host_side.link is None:
            return False
        if self.host_side.kind == "macvlan":
            return existing.kind == "macvlan" and existing.link == self.host_side.link.index
        try:
            host_end = nl.get_link(self.ipr, existing.link)
        except NetlinkError:
            return False
        return existing.kind == "veth" and host_end.master == self.host_side.link.index

    def _result(self, link: nl.LinkInfo, mtu: int) -> AttachResult:
        return AttachResult(
            container_ifname=link.name, kind=self.host_side.kind if self.host_side.kind == "macvlan" else "veth",
            host_ifname=self.host_ifname, host_link=self.host_side.name, mtu=mtu, mac=link.mac,
            address=str(self.spec.address) if self.spec.address else None, bridge_created=self.bridge_created)

    def _failure_text(self, exc: NetlinkError) -> str:
        text = f"{self.step}: {_kernel_reason(exc)}"
        if exc.code == errno.EBUSY and self.spec.mac and self.host_side.kind == "macvlan":
            text += f" (is MAC {self.spec.mac} already used on {self.host_side.name}?)"
        return f"container {self.target.name}: {text}; nothing was left behind"
