"""sd_notify over NOTIFY_SOCKET (sdnotify when installed, else a few lines of our own)."""

from __future__ import annotations

import logging
import os
import socket

LOG = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send `message` to the service manager; False when there is none."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    try:
        import sdnotify
    except ImportError:
        return _send(address, message)
    try:
        sdnotify.SystemdNotifier(debug=True).notify(message)
    except OSError as exc:
        LOG.warning("sd_notify to %s failed: %s", address, exc)
        return False
    return True


def _send(address: str, message: str) -> bool:
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        LOG.warning("sd_notify failed: %s", exc)
        return False
    return True
