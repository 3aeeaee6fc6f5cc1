"""The daemon's attach lines reach journald with structured fields."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from pipeworkd.log import JOURNAL_SOCKET
from tests.conftest import token, wait_for

pytestmark = [pytest.mark.root, pytest.mark.docker]

JOURNALD = "/lib/systemd/systemd-journald"


@pytest.fixture
def journald():
    """The host's journald, or a standalone one started for this test and stopped after it."""
    if os.path.exists(JOURNAL_SOCKET):
        yield
        return
    if not os.path.exists(JOURNALD) or not shutil.which("journalctl"):
        pytest.skip("systemd-journald is not installed")
    if not os.path.exists("/etc/machine-id") or not os.path.getsize("/etc/machine-id"):
        pytest.skip("no /etc/machine-id: journald needs one")
    os.makedirs(os.path.dirname(JOURNAL_SOCKET), exist_ok=True)
    process = subprocess.Popen([JOURNALD], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(JOURNAL_SOCKET), 10, what="the journald socket")
        yield
    finally:
        process.terminate()
        process.wait(10)
        for path in ("/run/systemd/journal", "/run/log/journal"):
            shutil.rmtree(path, ignore_errors=True)


def journal_entries(**match: str) -> list:
    argv = ["journalctl", "--no-pager", "-o", "json", *(f"{key}={value}" for key, value in match.items())]
    output = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_attach_is_logged_with_fields(journald, containers, host_links, start_daemon):
    bridge = host_links.bridge()
    ctr = containers.run(f"pwt-{token()}-journal", env={"pipework_cmd": f"{bridge} @CONTAINER_NAME@ 10.205.0.2/24"})

    daemon = start_daemon("--run-mode", "batch", PIPEWORKD_LOG_STDERR="")
    daemon.wait_ready()
    assert daemon.process.wait(30) == 0

    entries = wait_for(lambda: journal_entries(CONTAINER_ID=ctr.id[:12], PIPEWORK_EVENT="attached"), 10,
                       what="the attach entry in the journal")
    [entry] = entries
    assert entry["SYSLOG_IDENTIFIER"] == "pipeworkd"
    assert entry["CONTAINER_NAME"] == ctr.name and entry["CONTAINER_ID_FULL"] == ctr.id
    assert entry["PIPEWORK_CMD"] == f"{bridge} {ctr.name} 10.205.0.2/24"
    assert entry["PIPEWORK_IFNAME"] == "eth1" and entry["PIPEWORK_LINK_KIND"] == "veth"
    assert float(entry["PIPEWORK_DURATION_MS"]) > 0
    assert ctr.name in entry["MESSAGE"] and "attached" in entry["MESSAGE"]
    assert entry["PRIORITY"] == "6"
