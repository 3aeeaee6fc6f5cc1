"""log: text from containers cannot break or forge log lines."""

from __future__ import annotations

import logging
import sys

from pipeworkd.log import OneLineFormatter, shown


def test_shown_escapes_control_characters():
    assert shown("a\nb\rc\x1b[31m\td") == "a\\nb\\rc\\x1b[31m\\td"


def test_shown_keeps_printable_unicode():
    assert shown("brfrésh · 10.0.0.2/24") == "brfrésh · 10.0.0.2/24"


def test_shown_truncates_long_text():
    text = shown("x" * 100_000, limit=50)
    assert text == "x" * 50 + "... (100000 characters)"


def test_one_line_formatter_keeps_tracebacks_on_one_line():
    try:
        raise ValueError("first\nsecond")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed:\n%s", ("x",), sys.exc_info())
    line = OneLineFormatter("%(message)s").format(record)
    assert "\n" not in line and line.startswith("failed:\\nx\\nTraceback")
