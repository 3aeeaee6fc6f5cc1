"""Logging: journald with structured fields when its socket exists, else stderr."""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "pipeworkd"


STDERR_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"


MAX_SHOWN = 400


def shown(text: str, limit: int = MAX_SHOWN) -> str:
    """Text from containers, made safe for one log line: control characters
    escaped (no forged lines) and at most `limit` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class OneLineFormatter(logging.Formatter):
    """Every record is one line on stderr, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "\\r").replace("\n", "\\n")


def journal_handler() -> Optional[logging.Handler]:
    if not os.path.exists(JOURNAL_SOCKET):
        return None
    try:
        from systemd.journal import JournalHandler
    except ImportError:
        return None
    return JournalHandler(SYSLOG_IDENTIFIER=IDENTIFIER)


def setup(debug: bool = False, journal: bool = True, level: int = logging.INFO) -> None:
    """Journald when asked for and its socket exists (PIPEWORKD_LOG_STDERR=1 forces stderr)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    use_journal = journal and not os.environ.get("PIPEWORKD_LOG_STDERR")
    handler = journal_handler() if use_journal else None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(OneLineFormatter(STDERR_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else level)
    for noisy in ("urllib3", "docker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pyroute2 warns on each of its own EBUSY retries; our error says what failed.
    logging.getLogger("pyroute2").setLevel(logging.ERROR)


def fields(**values) -> dict:
    """Structured journal fields for `extra=`: upper-case names, string values."""
    return {name.upper(): str(value) for name, value in values.items() if value is not None}
