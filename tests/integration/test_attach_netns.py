"""The attach engine against real netlink: fake containers are processes in fresh netns."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from pipeworkd import firewall
from pipeworkd import netlink as nl
from pipeworkd.attach import Target, attach
from pipeworkd.errors import AttachError, ContainerError, HostInterfaceError, NotSupportedError
from pipeworkd.spec import parse
from tests.conftest import container_addresses, container_links, container_routes, leftovers, make_veth_pair

pytestmark = pytest.mark.root


def run(command: str, target: Target):
    return attach(parse(command), target)


def test_veth_into_new_bridge(ipr, host_links, fake_containers):
    bridge = host_links.bridge()
    ctr = fake_containers.start()

    result = run(f"{bridge} -i eth1 {ctr.name} 10.77.1.2/24", ctr)

    br = nl.find_link(ipr, bridge)
    assert br.kind == "bridge" and br.up and br.alias == "pipeworkd"
    assert result.bridge_created
    host_end = nl.find_link(ipr, f"veth1pl{ctr.pid}")
    assert host_end is not None and host_end.master == br.index and host_end.up
    eth1 = container_links(ctr)["eth1"]
    assert eth1.kind == "veth" and eth1.up and eth1.mtu == br.mtu
    assert container_addresses(ctr, "eth1") == [("10.77.1.2", 24)]
    if firewall.available():
        assert firewall.rule_chain(bridge) is not None


def test_existing_bridge_mtu_and_mac_are_applied(ipr, host_links, fake_containers):
    bridge = host_links.bridge()
    ipr.link("add", ifname=bridge, kind="bridge")
    index = nl.find_link(ipr, bridge).index
    ipr.link("set", index=index, mtu=1400, state="up")
    ctr = fake_containers.start()

    run(f"{bridge} -i eth3 {ctr.name} 10.77.2.2/24 02:aa:bb:cc:dd:01", ctr)

    eth3 = container_links(ctr)["eth3"]
    assert eth3.mtu == 1400 and eth3.mac == "02:aa:bb:cc:dd:01"
    host_end = nl.find_link(ipr, f"veth3pl{ctr.pid}")
    assert host_end.mtu == 1400 and host_end.master == index
    assert firewall.rule_chain(bridge) is None, "a bridge pipeworkd did not create gets no rule"


def test_macvlan_on_veth_parent(ipr, host_links, fake_containers):
    parent = make_veth_pair(ipr, host_links, mtu=1450)
    ctr = fake_containers.start()

    result = run(f"{parent.name} -i eth2 {ctr.name} 192.168.77.5/24 U:{ctr.name}", ctr)

    eth2 = container_links(ctr)["eth2"]
    assert result.kind == "macvlan" and result.host_ifname is None
    assert eth2.kind == "macvlan" and eth2.up and eth2.mtu == 1450 and eth2.link == parent.index
    assert eth2.mac.startswith("02:")
    assert container_addresses(ctr, "eth2") == [("192.168.77.5", 24)]


def test_macvlan_by_host_mac(ipr, host_links, fake_containers):
    parent = make_veth_pair(ipr, host_links)
    ctr = fake_containers.start()

    run(f"mac:{parent.mac.upper()} {ctr.name} 0/0", ctr)

    eth1 = container_links(ctr)["eth1"]
    assert eth1.kind == "macvlan" and eth1.link == parent.index and eth1.up
    assert container_addresses(ctr, "eth1") == []


def test_gateway_in_subnet_replaces_default(host_links, fake_containers):
    bridge = host_links.bridge()
    ctr = fake_containers.start()

    run(f"{bridge} {ctr.name} 10.77.3.2/24@10.77.3.1", ctr)

    defaults = [r for r in container_routes(ctr) if r["dst"] == "0.0.0.0/0"]
    assert defaults == [{"dst": "0.0.0.0/0", "gateway": "10.77.3.1", "dev": "eth1", "scope": 0}]


def test_gateway_off_subnet_gets_onlink_host_route(host_links, fake_containers):
    bridge = host_links.bridge()
    ctr = fake_containers.start()

    run(f"{bridge} {ctr.name} 10.77.4.2/24@10.99.0.1", ctr)

    routes = container_routes(ctr)
    assert {"dst": "10.99.0.1/32", "gateway": None, "dev": "eth1", "scope": 253} in routes
    assert {"dst": "0.0.0.0/0", "gateway": "10.99.0.1", "dev": "eth1", "scope": 0} in routes


def test_two_bridges_one_container_long_names(ipr, host_links, fake_containers):
    ctr = fake_containers.start()
    first, second = host_links.bridge(), host_links.bridge()

    one = run(f"{first} -i lanside0long {ctr.name} 10.77.5.2/24", ctr)
    two = run(f"{second} -i lanside1long {ctr.name} 10.77.6.2/24", ctr)

    assert one.host_ifname != two.host_ifname
    assert all(len(r.host_ifname) <= 15 for r in (one, two))
    assert nl.find_link(ipr, one.host_ifname).master == nl.find_link(ipr, first).index
    assert nl.find_link(ipr, two.host_ifname).master == nl.find_link(ipr, second).index


def test_same_command_twice_is_already_attached(host_links, fake_containers):
    bridge = host_links.bridge()
    ctr = fake_containers.start()
    run(f"{bridge} {ctr.name} 10.77.7.2/24", ctr)

    again = run(f"{bridge} {ctr.name} 10.77.7.2/24", ctr)

    assert again.already_attached


def test_existing_interface_is_refused_and_untouched(host_links, fake_containers):
    bridge = host_links.bridge()
    ctr = fake_containers.start()
    run(f"{bridge} {ctr.name} 10.77.8.2/24", ctr)
    before = container_links(ctr)

    with pytest.raises(AttachError, match="interface eth1 already exists in container"):
        run(f"{bridge} {ctr.name} 10.77.8.3/24", ctr)

    assert container_links(ctr) == before
    assert container_addresses(ctr, "eth1") == [("10.77.8.2", 24)]


def test_local_name_taken_is_refused_and_not_deleted(ipr, host_links, fake_containers):
    bridge = host_links.bridge()
    bystander = make_veth_pair(ipr, host_links)
    ipr.link("set", index=bystander.index, state="down")
    ctr = fake_containers.start()

    with pytest.raises(AttachError, match=f"host interface {bystander.name} already exists"):
        run(f"{bridge} -l {bystander.name} {ctr.name} 10.77.9.2/24", ctr)

    assert nl.find_link(ipr, bystander.name) == nl.get_link(ipr, bystander.index)
    assert "eth1" not in container_links(ctr)
    assert nl.find_link(ipr, bridge) is None, "the bridge made for the failed attach is gone"


def test_unknown_host_interface_creates_nothing(ipr, fake_containers):
    ctr = fake_containers.start()

    with pytest.raises(HostInterfaceError, match="host interface pwtnosuch0 does not exist"):
        run(f"pwtnosuch0 {ctr.name} 10.77.10.2/24", ctr)

    assert leftovers(ipr, ["pwtnosuch0"], ctr.pid, ctr.id) == []
    assert set(container_links(ctr)) == {"lo"}


def test_host_namespace_is_refused(ipr):
    me = Target(id="f" * 64, name="host-itself", pid=os.getpid())

    with pytest.raises(ContainerError, match="host's network namespace"):
        run("brpwtnever0 host-itself 10.77.11.2/24", me)

    assert leftovers(ipr, ["brpwtnever0", "eth1"], me.pid, me.id) == []


def test_dead_process_is_a_clear_error(fake_containers):
    ctr = fake_containers.start()
    fake_containers.stop(ctr)

    with pytest.raises(ContainerError, match="stopped"):
        run(f"brpwtnever1 {ctr.name} 10.77.12.2/24", ctr)


def test_not_supported_forms_build_nothing(ipr, fake_containers):
    ctr = fake_containers.start()
    for command in (f"brpwtx {ctr.name} dhcp", f"ovspwtx {ctr.name} 10.77.13.2/24",
                    f"brpwtx {ctr.name} 10.77.13.2/24 @10"):
        with pytest.raises(NotSupportedError, match="not supported yet"):
            run(command, ctr)
    assert leftovers(ipr, ["brpwtx", "ovspwtx"], ctr.pid, ctr.id) == []
    assert set(container_links(ctr)) == {"lo"}


def test_failure_midway_rolls_everything_back(ipr, host_links, fake_containers, monkeypatch):
    """A kernel refusal cannot be provoked at will at this step, so it is injected."""
    bridge = host_links.bridge()
    ctr = fake_containers.start()

    def refuse(*_args, **_kwargs):
        raise NetlinkError(95, "Operation not supported")

    monkeypatch.setattr(nl, "set_up", refuse)
    with pytest.raises(AttachError, match=r"set eth1 up: Operation not supported; nothing was left behind"):
        run(f"{bridge} {ctr.name} 10.77.14.2/24@10.77.14.1", ctr)

    assert nl.find_link(ipr, bridge) is None
    assert nl.find_link(ipr, f"veth1pl{ctr.pid}") is None
    assert set(container_links(ctr)) == {"lo"}
    if firewall.available():
        assert firewall.rule_chain(bridge) is None


def test_duplicate_macvlan_mac_fails_cleanly(ipr, host_links, fake_containers):
    parent = make_veth_pair(ipr, host_links)
    first, second = fake_containers.start(), fake_containers.start()
    run(f"{parent.name} {first.name} 192.168.78.2/24 02:00:00:00:78:02", first)

    with pytest.raises(AttachError, match="nothing was left behind"):
        run(f"{parent.name} {second.name} 192.168.78.3/24 02:00:00:00:78:02", second)

    assert set(container_links(second)) == {"lo"}
    assert container_links(first)["eth1"].up


def test_ipv4_broadcast_is_set(fake_containers, host_links):
    bridge = host_links.bridge()
    ctr = fake_containers.start()
    run(f"{bridge} {ctr.name} 10.77.15.9/20", ctr)
    with nl.Netns("/proc", ctr.pid) as netns, netns.iproute() as cns:
        index = nl.find_link(cns, "eth1").index
        [msg] = [m for m in cns.get_addr(family=2) if m["index"] == index]
        assert msg.get_attr("IFA_BROADCAST") == str(ipaddress.ip_interface("10.77.15.9/20").network.broadcast_address)


def test_netns_handle_leaves_the_thread_in_the_host_namespace(fake_containers):
    ctr = fake_containers.start()
    host = os.stat("/proc/thread-self/ns/net").st_ino
    with nl.Netns("/proc", ctr.pid) as netns, netns.iproute() as cns:
        assert os.stat("/proc/thread-self/ns/net").st_ino == host
        assert [link.name for link in nl.links(cns)] == ["lo"]


def test_gratuitous_arp_announces_the_address(ipr, host_links, fake_containers):
    bridge = host_links.bridge()
    ipr.link("add", ifname=bridge, kind="bridge")
    index = nl.find_link(ipr, bridge).index
    ipr.link("set", index=index, state="up")
    ctr = fake_containers.start()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(nl.ETH_P_ARP)) as sniffer:
        sniffer.bind((bridge, nl.ETH_P_ARP))
        sniffer.settimeout(5)

        result = run(f"{bridge} {ctr.name} 10.77.16.2/24 02:00:00:77:16:02", ctr)

        frame = sniffer.recv(2048)
    assert frame[:42] == nl.gratuitous_arp(result.mac, ipaddress.ip_address("10.77.16.2"))


@pytest.mark.parametrize("name", ["brpwt+", "brpwté", "brpwt*x"])
def test_only_plain_bridge_names_are_created(ipr, fake_containers, name):
    ctr = fake_containers.start()
    with pytest.raises(HostInterfaceError, match="only creates bridges named with letters"):
        run(f"{name} {ctr.name} 10.77.17.2/24", ctr)
    assert nl.find_link(ipr, name) is None
    assert firewall.bridges_with_rules().count(name) == 0


def test_macvlan_on_a_bridge_port_is_refused(ipr, host_links, fake_containers):
    bridge = host_links.bridge()
    ipr.link("add", ifname=bridge, kind="bridge")
    port = make_veth_pair(ipr, host_links)
    ipr.link("set", index=port.index, master=nl.find_link(ipr, bridge).index)
    ctr = fake_containers.start()

    with pytest.raises(HostInterfaceError, match=f"{port.name} is a port of {bridge}.*attach to {bridge} instead"):
        run(f"{port.name} {ctr.name} 10.77.18.2/24", ctr)
    assert set(container_links(ctr)) == {"lo"}


def test_same_interface_with_another_gateway_is_refused(host_links, fake_containers):
    bridge = host_links.bridge()
    ctr = fake_containers.start()
    run(f"{bridge} {ctr.name} 10.77.19.2/24@10.77.19.1", ctr)

    with pytest.raises(AttachError, match="already exists"):
        run(f"{bridge} {ctr.name} 10.77.19.2/24@10.77.19.254", ctr)
    assert run(f"{bridge} {ctr.name} 10.77.19.2/24@10.77.19.1", ctr).already_attached


@pytest.mark.skipif(not firewall.available(), reason="iptables is not installed")
def test_concurrent_first_attaches_add_one_rule(ipr, host_links):
    from concurrent.futures import ThreadPoolExecutor

    bridge = host_links.bridge()
    ipr.link("add", ifname=bridge, kind="bridge")  # a daemon's housekeeping drops rules of missing bridges
    with ThreadPoolExecutor(6) as pool:
        added = list(pool.map(lambda _: firewall.allow_bridge(bridge), range(6)))
    assert added.count(True) == 1
    assert firewall.bridges_with_rules().count(bridge) == 1
    assert firewall.remove_bridge_rules(bridge) == 1


def test_a_failing_first_attach_does_not_break_a_parallel_one(ipr, host_links, fake_containers):
    """Both race to create the bridge; the failure's rollback must leave the other's bridge and rule."""
    from concurrent.futures import ThreadPoolExecutor

    taken = make_veth_pair(ipr, host_links)
    for _ in range(5):
        bridge = host_links.bridge()
        good, bad = fake_containers.start(), fake_containers.start()
        commands = [(f"{bridge} -i eth1 {good.name} 10.77.20.2/24", good),
                    (f"{bridge} -i eth1 -l {taken.name} {bad.name} 10.77.20.3/24", bad)]

        def one(job):
            try:
                return run(*job)
            except AttachError as exc:
                return exc

        with ThreadPoolExecutor(2) as pool:
            ok, failed = pool.map(one, commands)

        assert isinstance(failed, AttachError) and not isinstance(ok, Exception), (ok, failed)
        br = nl.find_link(ipr, bridge)
        assert br is not None and nl.find_link(ipr, ok.host_ifname).master == br.index
        if firewall.available():
            assert firewall.rule_chain(bridge) is not None
