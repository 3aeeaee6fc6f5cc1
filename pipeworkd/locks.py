"""Named locks shared by threads and processes (the daemon and pipeworkctl), with a timeout."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator

LOCK_DIR = "/run/pipeworkd"
TIMEOUT = 30.0

_thread_locks: Dict[str, threading.Lock] = {}
_guard = threading.Lock()


class LockTimeout(Exception):
    pass


@contextmanager
def named_lock(name: str, timeout: float = TIMEOUT) -> Iterator[None]:
    """Hold the lock `name` (a plain word) or raise LockTimeout after `timeout` seconds."""
    with _guard:
        thread_lock = _thread_locks.setdefault(name, threading.Lock())
    if not thread_lock.acquire(timeout=timeout):
        raise LockTimeout(f"lock {name} is held elsewhere for more than {timeout:g} s")
    try:
        os.makedirs(LOCK_DIR, mode=0o755, exist_ok=True)
        fd = os.open(os.path.join(LOCK_DIR, f"{name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _flock(fd, name, timeout)
            yield
        finally:
            os.close(fd)
    finally:
        thread_lock.release()


def bridge_lock(bridge: str, timeout: float = TIMEOUT):
    """The lock every change to one bridge (attach, delete, rule cleanup) is made under."""
    return named_lock(f"bridge-{bridge}", timeout)


def _flock(fd: int, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise LockTimeout(f"lock {LOCK_DIR}/{name}.lock is held by another process for more than "
                                  f"{timeout:g} s") from None
            time.sleep(0.02)
