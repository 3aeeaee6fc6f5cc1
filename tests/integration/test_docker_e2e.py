"""End to end on a real dockerd: pipeworkd and pipeworkctl attach real containers."""

from __future__ import annotations

import os
import re

import pytest

from pipeworkd import firewall
from pipeworkd import netlink as nl
from tests.conftest import exec_in, leftovers, make_veth_pair, run_ctl, token, wait_for

pytestmark = [pytest.mark.root, pytest.mark.docker]


def eth_address(container, ifname: str = "eth1") -> str:
    code, output = exec_in(container, "ip", "-4", "-o", "addr", "show", ifname)
    match = re.search(r"inet (\S+)", output) if code == 0 else None
    return match.group(1) if match else ""


def wait_address(container, expected: str, ifname: str = "eth1", timeout: float = 20) -> None:
    wait_for(lambda: eth_address(container, ifname) == expected, timeout,
             what=f"{expected} on {ifname} of {container.name}")


def subnet() -> int:
    return 100 + int(token(), 16) % 150


def test_batch_attaches_before_ready_and_events_after(containers, host_links, start_daemon):
    bridge = host_links.bridge()
    net = subnet()
    cmd = f"{bridge} -i eth1 @CONTAINER_NAME@ 192.168.{net}.@INSTANCE@/24"
    early = containers.run(f"pwt-{token()}-web-11", env={"pipework_cmd": cmd})

    daemon = start_daemon("--run-mode", "both")
    daemon.wait_ready()
    # READY=1 arrives only after the batch pass: the early container is already done.
    assert eth_address(early) == f"192.168.{net}.11/24"

    late = containers.run(f"pwt-{token()}-web-12", env={"pipework_cmd": cmd})
    wait_address(late, f"192.168.{net}.12/24")

    code, output = exec_in(early, "ping", "-c", "2", "-W", "2", f"192.168.{net}.12")
    assert code == 0, output
    assert daemon.stop() == 0
    log = daemon.log()
    for container in (early, late):
        lines = [line for line in log.splitlines() if container.id[:12] in line and " attached: " in line]
        assert len(lines) == 1, f"{container.name} configured {len(lines)} times:\n{log}"
        assert container.name in lines[0] and cmd.split()[0] in lines[0] and " ms" in lines[0]


def test_every_restart_is_reattached(containers, host_links, start_daemon):
    bridge = host_links.bridge()
    net = subnet()
    ctr = containers.run(f"pwt-{token()}-r", env={"pipework_cmd": f"{bridge} @CONTAINER_ID@ 10.{net}.0.5/24"})
    daemon = start_daemon("--run-mode", "both")
    daemon.wait_ready()
    assert eth_address(ctr) == f"10.{net}.0.5/24"

    for restart in range(6):
        ctr.restart(timeout=0)
        try:
            wait_address(ctr, f"10.{net}.0.5/24")
        except AssertionError as exc:
            raise AssertionError(f"restart {restart + 1}: {exc}; log:\n{daemon.log()}") from None
    assert daemon.stop() == 0


def test_key_mismatch_is_skipped(containers, host_links, start_daemon):
    bridge = host_links.bridge()
    net = subnet()
    good = containers.run(f"pwt-{token()}-k1", env={
        "pipework_cmd": f"{bridge} @CONTAINER_NAME@ 10.{net}.1.2/24", "pipework_key": "s3cret"})
    bad = containers.run(f"pwt-{token()}-k2", env={
        "pipework_cmd": f"{bridge} @CONTAINER_NAME@ 10.{net}.1.3/24", "pipework_key": "wrong"})
    none = containers.run(f"pwt-{token()}-k3", env={"pipework_cmd": f"{bridge} @CONTAINER_NAME@ 10.{net}.1.4/24"})

    daemon = start_daemon("--run-mode", "batch", key="s3cret")
    daemon.wait_ready()
    assert daemon.process.wait(30) == 0

    assert eth_address(good) == f"10.{net}.1.2/24"
    assert eth_address(bad) == "" and eth_address(none) == ""
    log = daemon.log()
    assert f"{bad.name} ({bad.id[:12]}): skipped, its pipework_key does not match" in log
    assert f"{none.name} ({none.id[:12]}): skipped" in log


def test_several_commands_sorted_and_bad_ones_isolated(containers, host_links, start_daemon, ipr):
    bridge = host_links.bridge()
    net = subnet()
    ctr = containers.run(f"pwt-{token()}-multi", env={
        "pipework_cmd_b": f"{bridge} -i eth2 @CONTAINER_NAME@ 10.{net}.2.3/24",
        "a_pipework_cmd": f"{bridge} -i eth1 @CONTAINER_NAME@ 10.{net}.2.2/24@10.{net}.2.1",
        "pipework_cmd_c": "pwtnosuchif0 @CONTAINER_NAME@ 10.1.1.1/24",
        "pipework_cmd_d": f"{bridge} @CONTAINER_NAME@ 10.{net}.2.4",
    })
    other = containers.run(f"pwt-{token()}-other", env={"pipework_cmd": f"{bridge} @CONTAINER_NAME@ 10.{net}.2.9/24"})

    daemon = start_daemon("--run-mode", "daemon")
    daemon.wait_ready()
    assert daemon.process.poll() is None
    ctr.restart(timeout=0)
    other.restart(timeout=0)
    wait_address(other, f"10.{net}.2.9/24")
    wait_address(ctr, f"10.{net}.2.3/24", "eth2")
    assert eth_address(ctr, "eth1") == f"10.{net}.2.2/24"
    code, routes = exec_in(ctr, "ip", "route", "show", "default")
    assert routes.strip().startswith(f"default via 10.{net}.2.1 dev eth1"), routes

    log = daemon.wait_log("pipework_cmd_d")
    assert "host interface pwtnosuchif0 does not exist" in log
    assert f"10.{net}.2.4: the IP address needs a netmask" in log
    order = [log.index(f"{ctr.id[:12]}): {name}:") for name in
             ("a_pipework_cmd", "pipework_cmd_b", "pipework_cmd_c", "pipework_cmd_d")]
    assert order == sorted(order), log
    assert "Traceback" not in log
    assert daemon.process.poll() is None


def test_macvlan_containers_talk(containers, host_links, ipr, start_daemon):
    parent = make_veth_pair(ipr, host_links).name
    net = subnet()
    one = containers.run(f"pwt-{token()}-m1")
    two = containers.run(f"pwt-{token()}-m2")

    for container, host in ((one, 2), (two, 3)):
        result = run_ctl("attach", parent, "-i", "eth1", container.name, f"192.168.{net}.{host}/24")
        assert result.returncode == 0, result.stderr
        assert "macvlan on " + parent in result.stdout

    code, output = exec_in(one, "ping", "-c", "2", "-W", "2", f"192.168.{net}.3")
    assert code == 0, output


def test_firewall_rule_goes_with_the_bridge(containers, host_links, ipr, start_daemon):
    if not firewall.available():
        pytest.skip("iptables is not installed")
    bridge = host_links.bridge()
    ctr = containers.run(f"pwt-{token()}-fw")
    daemon = start_daemon("--run-mode", "daemon", PIPEWORKD_HOUSEKEEPING_INTERVAL="0.5")
    daemon.wait_ready()
    assert run_ctl("attach", bridge, ctr.name, "10.200.0.2/24").returncode == 0
    assert firewall.rule_chain(bridge) == "DOCKER-USER"

    ctr.remove(force=True)
    ipr.link("del", index=nl.find_link(ipr, bridge).index)

    wait_for(lambda: firewall.rule_chain(bridge) is None, 10, what="the rule to go")
    daemon.stop()
    assert f"bridge {bridge} is gone: its firewall rule was removed" in daemon.log()


def test_ctl_bridge_delete(containers, host_links, ipr):
    bridge = host_links.bridge()
    ctr = containers.run(f"pwt-{token()}-bd")
    assert run_ctl("attach", bridge, ctr.name, "10.201.0.2/24").returncode == 0

    busy = run_ctl("bridge-delete", bridge)
    assert busy.returncode != 0 and "still has ports" in busy.stderr
    ctr.remove(force=True)
    wait_for(lambda: not nl.bridge_port_names(ipr, nl.find_link(ipr, bridge)), 10, what="ports to go")

    done = run_ctl("bridge-delete", bridge)
    assert done.returncode == 0, done.stderr
    assert nl.find_link(ipr, bridge) is None
    assert firewall.rule_chain(bridge) is None
    assert run_ctl("bridge-delete", "docker0").returncode != 0


@pytest.mark.parametrize("words, message", [
    (["brpwtbad0", "pwt-no-such-container", "10.202.0.2/24"], "no such container: pwt-no-such-container"),
    (["pwtnoif0", "{name}", "10.202.0.2/24"], "host interface pwtnoif0 does not exist"),
    (["brpwtbad0", "{name}", "10.202.0.2"], "10.202.0.2: the IP address needs a netmask"),
    (["brpwtbad0", "{name}", "10.202.0.2/24", "02:zz:00:00:00:01"], "MAC address '02:zz:00:00:00:01'"),
    (["brpwtbad0", "-i", "eth1234567890123", "{name}", "10.202.0.2/24"], "longer than 15 bytes"),
    (["brpwtbad0", "-l", "averyveryverylonghostname", "{name}", "10.202.0.2/24"], "longer than 15"),
    (["brpwtbad0", "{name}", "dhcp"], "DHCP (dhcp) is not supported yet"),
])
def test_ctl_bad_input_one_line(containers, ipr, words, message):
    ctr = containers.run(f"pwt-{token()}-bad")
    ctr.reload()

    result = run_ctl("attach", *[word.format(name=ctr.name) for word in words])

    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert leftovers(ipr, [words[0]], ctr.attrs["State"]["Pid"], ctr.id) == []
    code, output = exec_in(ctr, "ip", "-o", "link")
    assert "eth1" not in output


def test_ctl_stopped_container(containers):
    ctr = containers.run(f"pwt-{token()}-stopped")
    ctr.stop(timeout=0)
    result = run_ctl("attach", "brpwtbad1", ctr.name, "10.203.0.2/24")
    assert result.returncode != 0
    assert result.stderr.strip() == f"pipeworkctl: container {ctr.name} is not running"


def test_ctl_refuses_host_network_container(containers):
    ctr = containers.run(f"pwt-{token()}-hostnet", network_mode="host")
    result = run_ctl("attach", "brpwtbad2", ctr.name, "10.204.0.2/24")
    assert result.returncode != 0
    assert "uses the host's network namespace" in result.stderr


def test_containers_started_while_the_daemon_starts_are_each_configured_once(containers, host_links,
                                                                           start_daemon):
    """Starts overlap the batch pass: none may be missed, none configured twice."""
    bridge = host_links.bridge()
    net = subnet()
    cmd = f"{bridge} @CONTAINER_NAME@ 10.{net}.3.@INSTANCE@/24"
    names = [f"pwt-{token()}-gap-{n}" for n in range(2, 10)]
    containers.run(names[0], env={"pipework_cmd": cmd})

    daemon = start_daemon("--run-mode", "both")
    started = [containers.run(name, env={"pipework_cmd": cmd}) for name in names[1:]]
    daemon.wait_ready()
    started.insert(0, containers.created[0])

    for n, container in enumerate(started, start=2):
        wait_address(container, f"10.{net}.3.{n}/24")
    assert daemon.stop() == 0
    log = daemon.log()
    for container in started:
        assert log.count(f"({container.id[:12]}): pipework_cmd: ") == 1, log


def test_manual_mode_runs_arguments_and_own_variables(containers, host_links, start_daemon):
    bridge = host_links.bridge()
    net = subnet()
    ctr = containers.run(f"pwt-{token()}-manual")

    daemon = start_daemon("--run-mode", "manual", "--", "-i", "eth1", bridge, ctr.name, f"10.{net}.4.2/24",
                          pipework_cmd_2=f"{bridge} -i eth2 {ctr.name} 10.{net}.5.2/24",
                          b_pipework_cmd=f"pwtnosuchif1 {ctr.name} 10.{net}.6.2/24")

    assert daemon.process.wait(30) == 5, daemon.log()
    assert eth_address(ctr, "eth1") == f"10.{net}.4.2/24"
    assert eth_address(ctr, "eth2") == f"10.{net}.5.2/24"
    assert "manual b_pipework_cmd: host interface pwtnosuchif1 does not exist" in daemon.log()


def test_up_time_ends_daemon_mode(start_daemon):
    daemon = start_daemon("--run-mode", "daemon", up_time="1")
    daemon.wait_ready()
    assert daemon.process.wait(30) == 0
    assert "up_time reached" in daemon.log()


def test_unreachable_docker_is_one_line(start_daemon):
    daemon = start_daemon("--run-mode", "both", DOCKER_HOST="unix:///nonexistent/docker.sock")
    assert daemon.process.wait(60) == 7
    lines = daemon.log().strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Docker engine" in lines[0], lines


@pytest.mark.parametrize("setting, message", [
    ({"run_mode": "batch,bogus"}, "unknown mode 'bogus'"),
    ({"retry_delay": "abc"}, "retry_delay='abc': expected a number of seconds"),
    ({"event_filters": "colour=red"}, "key must be image, container or label"),
])
def test_bad_setting_is_one_line(start_daemon, setting, message):
    daemon = start_daemon(**setting)
    assert daemon.process.wait(30) == 2
    assert daemon.log().strip().count("\n") == 0 and message in daemon.log(), daemon.log()


def test_a_container_cannot_attach_another(containers, host_links, start_daemon):
    bridge = host_links.bridge()
    victim = containers.run(f"pwt-{token()}-victim")
    containers.run(f"pwt-{token()}-rogue", env={"pipework_cmd": f"{bridge} {victim.name} 10.206.0.3/24@10.206.0.254"})

    daemon = start_daemon("--run-mode", "batch")
    assert daemon.process.wait(30) == 1
    assert eth_address(victim) == ""
    assert f"names container '{victim.name}', but a container's pipework_cmd can only attach the container " \
           f"itself" in daemon.log()


def test_control_characters_cannot_forge_log_lines(containers, host_links, start_daemon):
    forged = "2026-01-01 00:00:00,000 pipeworkd.daemon INFO: container victim (000000000000): forged"
    ctr = containers.run(f"pwt-{token()}-forge", env={
        "pipework_cmd": f"{host_links.bridge()} @CONTAINER_NAME@ 10.207.0.2/24 'U:x\n{forged}'",
        "pipework_cmd_2": f"pwtnoif2 @CONTAINER_NAME@ '10.207.0.3\n{forged}'"})

    daemon = start_daemon("--run-mode", "batch")
    assert daemon.process.wait(30) == 1
    assert eth_address(ctr) == "10.207.0.2/24"
    log = daemon.log()
    assert not any(line.startswith("2026-01-01") for line in log.splitlines()), log
    assert "\\n2026-01-01" in log


def test_sigterm_stops_promptly_and_drops_queued_work(containers, host_links, start_daemon):
    bridge = host_links.bridge()
    daemon = start_daemon("--run-mode", "daemon", PIPEWORKD_WORKERS="1", inter_delay="30")
    daemon.wait_ready()
    made = [containers.run(f"pwt-{token()}-q{n}", env={"pipework_cmd": f"{bridge} @CONTAINER_NAME@ 10.208.0.{n}/24"})
            for n in range(2, 5)]
    daemon.wait_log(" attached: ")

    assert daemon.stop(timeout=5) == 0
    assert daemon.log().count(" attached: ") == 1
    assert sum(1 for container in made if eth_address(container)) == 1


def test_sigterm_during_ctl_attach_lets_it_finish(containers, host_links, ipr):
    """A SIGTERM the moment the bridge appears: the attach completes (or would roll back), never half."""
    import signal
    import subprocess
    import sys

    from tests.conftest import python_env

    for round_ in range(3):
        bridge = host_links.bridge()
        ctr = containers.run(f"pwt-{token()}-term{round_}")
        process = subprocess.Popen([sys.executable, "-m", "pipeworkd.ctl", "attach", bridge, ctr.name,
                                    f"10.209.{round_}.2/24@10.209.{round_}.1"], env=python_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: os.path.exists(f"/sys/class/net/{bridge}") or process.poll() is not None, 30,
                 interval=0.0005, what="the bridge")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)

        assert process.returncode == 0, err
        assert "attached" in out and err == ""
        assert eth_address(ctr) == f"10.209.{round_}.2/24"
        assert nl.bridge_port_names(ipr, nl.find_link(ipr, bridge))
        if firewall.available():
            assert firewall.rule_chain(bridge) is not None


def test_sigterm_always_reaches_the_event_loop(start_daemon, host_links, ipr):
    """Threads block the stop signals, so SIGTERM wakes the main thread's blocking event read.
    Taken by the housekeeping thread just after it removed a rule, it went unseen (a hang about
    one stop in ten)."""
    if not firewall.available():
        pytest.skip("iptables is not installed")
    for _ in range(12):
        daemon = start_daemon("--run-mode", "daemon", PIPEWORKD_HOUSEKEEPING_INTERVAL="0.5")
        daemon.wait_ready()
        bridge = host_links.bridge()
        ipr.link("add", ifname=bridge, kind="bridge")
        firewall.allow_bridge(bridge)
        ipr.link("del", index=nl.find_link(ipr, bridge).index)
        wait_for(lambda: firewall.rule_chain(bridge) is None, 10, interval=0.01, what="housekeeping")
        assert daemon.stop(timeout=5) == 0
