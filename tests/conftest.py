"""Shared fixtures: fake containers in fresh network namespaces, Docker containers, cleanup.

Every name a test creates starts with "pwt" plus a random token, every
address is in 10.x or 192.168.x, and everything is removed afterwards.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_IMAGE = "pipeworkd-test/busybox"
TEST_LABEL = "pipeworkd.test"

sys.path.insert(0, str(REPO))

from pipeworkd import firewall  # noqa: E402
from pipeworkd import netlink as nl  # noqa: E402
from pipeworkd.attach import Target  # noqa: E402
from pipeworkd.names import host_veth_name  # noqa: E402


def token() -> str:
    return secrets.token_hex(3)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root: creates network namespaces and links")
        for item in items:
            if "root" in item.keywords or "docker" in item.keywords:
                item.add_marker(skip)


# --- host links -------------------------------------------------------------

class HostLinks:
    """Names of host links and bridges a test creates; deleted (with their rules) at the end."""

    def __init__(self) -> None:
        self.names: list = []

    def name(self, prefix: str = "pwt") -> str:
        name = f"{prefix}{token()}"
        self.names.append(name)
        return name

    def bridge(self) -> str:
        return self.name("brpwt")

    def track(self, name: str) -> str:
        self.names.append(name)
        return name

    def cleanup(self) -> None:
        with nl.host_iproute() as ipr:
            for name in reversed(self.names):
                link = nl.find_link(ipr, name)
                if link is not None:
                    nl.delete_link(ipr, link.index)
        if firewall.available():
            for name in self.names:
                firewall.remove_bridge_rules(name)


@pytest.fixture
def host_links():
    links = HostLinks()
    yield links
    links.cleanup()


@pytest.fixture
def ipr():
    with nl.host_iproute() as handle:
        yield handle


def leftovers(ipr, names, pid: int, container_id: str, container_ifname: str = "eth1") -> list:
    """Which of the host links an attach of that container could have made exist now.

    Checking these names, rather than comparing every host link before and
    after, keeps tests exact while other work changes the host's links.
    """
    candidates = [*names, host_veth_name(container_ifname, pid, container_id)]
    return [name for name in candidates if nl.find_link(ipr, name) is not None]


def make_veth_pair(ipr, links: HostLinks, mtu: int = 1500) -> nl.LinkInfo:
    """A veth pair in the host netns, standing in for a NIC; returns the end to use.

    Both ends are up: a veth has carrier only when its peer is up.
    """
    parent = links.name("pwtp")
    peer = links.name("pwtq")
    ipr.link("add", ifname=parent, kind="veth", peer=peer)
    ipr.link("set", index=nl.find_link(ipr, peer).index, mtu=mtu, state="up")
    link = nl.find_link(ipr, parent)
    ipr.link("set", index=link.index, mtu=mtu, state="up")
    return nl.get_link(ipr, link.index)


# --- fake containers ----------------------------------------------------------

class FakeContainers:
    """Processes in fresh network namespaces, standing in for containers."""

    def __init__(self) -> None:
        self.processes: list = []

    def start(self, name: str = "") -> Target:
        process = subprocess.Popen(
            ["unshare", "--net", "--", "sleep", "600"], stdin=subprocess.DEVNULL)
        self.processes.append(process)
        wait_for(lambda: _netns_differs(process.pid), timeout=5, what="the new netns")
        return Target(id=secrets.token_hex(32), name=name or f"pwt-fake-{token()}", pid=process.pid)

    def stop(self, target: Target) -> None:
        for process in self.processes:
            if process.pid == target.pid:
                process.kill()
                process.wait(5)

    def cleanup(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(5)


def _netns_differs(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
    except FileNotFoundError:
        return False


@pytest.fixture
def fake_containers():
    containers = FakeContainers()
    yield containers
    containers.cleanup()


def container_links(target: Target) -> dict:
    with nl.Netns("/proc", target.pid) as netns, netns.iproute() as cns:
        return {link.name: link for link in nl.links(cns)}


def container_addresses(target: Target, ifname: str) -> list:
    with nl.Netns("/proc", target.pid) as netns, netns.iproute() as cns:
        link = nl.find_link(cns, ifname)
        return nl.addresses(cns, link.index, socket.AF_INET) if link else []


def container_routes(target: Target) -> list:
    with nl.Netns("/proc", target.pid) as netns, netns.iproute() as cns:
        routes = []
        for msg in cns.get_routes(family=socket.AF_INET, table=254):
            oif = msg.get_attr("RTA_OIF")
            routes.append({
                "dst": f"{msg.get_attr('RTA_DST') or '0.0.0.0'}/{msg['dst_len']}",
                "gateway": msg.get_attr("RTA_GATEWAY"),
                "dev": nl.get_link(cns, oif).name if oif else None,
                "scope": msg["scope"],
            })
        return routes


# --- Docker ---------------------------------------------------------------------

def _docker_client():
    import docker
    try:
        client = docker.from_env(version="auto", timeout=60)
        client.images.get(TEST_IMAGE)
    except Exception as exc:  # the reason goes into the skip message
        if os.environ.get("PIPEWORKD_TEST_REQUIRE_DOCKER"):
            pytest.fail(f"Docker is required here but not usable: {exc}")
        pytest.skip(f"no usable dockerd or no {TEST_IMAGE} image (run scripts/setup-host.sh): {exc}")
    return client


@pytest.fixture(scope="session")
def docker_client():
    client = _docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def session_label():
    """A label value that marks this session's containers; daemons under test filter on it."""
    return f"pwt{token()}"


class Containers:
    def __init__(self, client, label: str) -> None:
        self.client = client
        self.label = label
        self.created: list = []

    def run(self, name: str, env: dict = None, **kwargs):
        container = self.client.containers.run(
            TEST_IMAGE, ["sleep", "600"], name=name, detach=True, environment=env or {},
            labels={TEST_LABEL: self.label}, stop_signal="SIGKILL", **kwargs)
        self.created.append(container)
        return container

    def cleanup(self) -> None:
        for container in self.created:
            try:
                container.remove(force=True)
            except Exception:  # already gone
                pass


@pytest.fixture
def containers(docker_client, session_label):
    made = Containers(docker_client, session_label)
    yield made
    made.cleanup()


def exec_in(container, *argv: str) -> tuple:
    result = container.exec_run(list(argv))
    return result.exit_code, result.output.decode(errors="replace")


def python_env(**extra: str) -> dict:
    env = {key: value for key, value in os.environ.items()
           if "pipework" not in key.lower() and key not in ("NOTIFY_SOCKET",)}
    env["PYTHONPATH"] = str(REPO)
    env["PIPEWORKD_LOG_STDERR"] = "1"
    env.update(extra)
    return env


def run_ctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeworkd.ctl", *args], capture_output=True, text=True,
                          env=python_env(), timeout=timeout, stdin=subprocess.DEVNULL)


class DaemonProcess:
    """pipeworkd run as a child process with its own NOTIFY_SOCKET and log file."""

    def __init__(self, args: list, env: dict) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="pwt-daemon-")
        self.notify_path = os.path.join(self.dir.name, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.log_path = os.path.join(self.dir.name, "stderr.log")
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeworkd", *args], stdin=subprocess.DEVNULL,
            stdout=self.log_file, stderr=subprocess.STDOUT,
            env=python_env(NOTIFY_SOCKET=self.notify_path, **env))

    def next_notification(self, timeout: float = 60) -> str:
        self.notify.settimeout(timeout)
        try:
            return self.notify.recv(4096).decode()
        except socket.timeout:
            raise AssertionError(f"no sd_notify message within {timeout} s; log:\n{self.log()}") from None

    def wait_ready(self, timeout: float = 60) -> str:
        message = self.next_notification(timeout)
        assert "READY=1" in message.splitlines(), message
        return message

    def log(self) -> str:
        with open(self.log_path) as handle:
            return handle.read()

    def wait_log(self, text: str, timeout: float = 20) -> str:
        return wait_for(lambda: text in self.log() and self.log(), timeout, what=f"{text!r} in the daemon log")

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
                raise AssertionError(f"pipeworkd ignored SIGTERM for {timeout} s; log:\n{self.log()}")
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.notify.close()
        self.log_file.close()
        self.dir.cleanup()


@pytest.fixture
def start_daemon(session_label):
    """Start pipeworkd; it only looks at this session's containers (event_filters on the label)."""
    started: list = []

    def start(*args: str, **env: str) -> DaemonProcess:
        env.setdefault("event_filters", f"label={TEST_LABEL}={session_label}")
        daemon = DaemonProcess(list(args), env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()
