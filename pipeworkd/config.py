"""Daemon settings from the environment (bare or `pipework_` prefixed, bare wins).

Pure: takes a mapping, returns a validated Settings object.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from .errors import ConfigError

LOG = logging.getLogger(__name__)

RUN_MODES = ("manual", "batch", "daemon")
MODE_ALIASES = {"both": ("batch", "daemon"), "all": RUN_MODES}
FALSE_WORDS = ("0", "false", "no", "off")
SETTING_NAMES = (
    "run_mode", "key", "debug", "sleep", "event_filters", "retry_delay", "inter_delay",
    "cleanup_wait", "up_time", "host_routes", "host_route_arping", "host_route_protocols",
    "route_add_delay",
)
NOT_SUPPORTED_YET = ("host_routes", "host_route_arping", "host_route_protocols", "route_add_delay")


@dataclass(frozen=True)
class Settings:
    run_modes: Tuple[str, ...] = ("manual",)
    key: Optional[str] = None
    debug: bool = False
    sleep: float = 0.0
    event_filters: Dict[str, List[str]] = field(default_factory=dict)
    retry_delay: float = 0.0
    inter_delay: float = 0.0
    up_time: Optional[float] = None
    proc_root: str = "/proc"
    workers: int = 4
    housekeeping_interval: float = 30.0
    warnings: Tuple[str, ...] = ()


def parse_run_modes(text: str) -> Tuple[str, ...]:
    """A comma list of modes, returned in run order manual, batch, daemon, each once."""
    wanted = set()
    for word in text.split(","):
        word = word.strip().lower()
        if not word:
            continue
        if word in MODE_ALIASES:
            wanted.update(MODE_ALIASES[word])
        elif word in RUN_MODES:
            wanted.add(word)
        else:
            raise ConfigError(f"run_mode {text!r}: unknown mode {word!r} (use manual, batch, daemon, both or all)")
    if not wanted:
        return ("manual",)
    return tuple(mode for mode in RUN_MODES if mode in wanted)


def parse_flag(value: str) -> bool:
    """Empty or a false word is off; anything else is on (the old image: any value)."""
    return bool(value.strip()) and value.strip().lower() not in FALSE_WORDS


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 366 * 86400
MAX_WORKERS = 64


def parse_seconds(name: str, value: str) -> float:
    """A number of seconds, optionally with an s, m, h or d suffix as sleep(1) takes."""
    text = value.strip().lower()
    if not text.isascii():
        raise ConfigError(f"{name}={value!r}: expected a number of seconds")
    scale = _UNITS.get(text[-1:], 0)
    try:
        seconds = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a number of seconds") from None
    if not 0 <= seconds <= MAX_SECONDS:
        raise ConfigError(f"{name}={value!r}: expected a number of seconds from 0 to {MAX_SECONDS}")
    return seconds


def parse_interval(value: str) -> float:
    seconds = parse_seconds("PIPEWORKD_HOUSEKEEPING_INTERVAL", value)
    if seconds < 0.1:
        raise ConfigError(f"PIPEWORKD_HOUSEKEEPING_INTERVAL={value!r}: at least 0.1 seconds")
    return seconds


def parse_workers(value: str) -> int:
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_WORKERS:
        raise ConfigError(f"PIPEWORKD_WORKERS={value!r}: expected a whole number from 1 to {MAX_WORKERS}")
    return int(value)


def parse_event_filters(value: str) -> Dict[str, List[str]]:
    """`image=redis,container=web` to Docker filters; repeats of one key are ORed."""
    filters: Dict[str, List[str]] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, wanted = item.partition("=")
        if not sep or not name or not wanted:
            raise ConfigError(f"event_filters item {item!r}: expected key=value")
        if name not in ("image", "container", "label"):
            raise ConfigError(f"event_filters item {item!r}: key must be image, container or label")
        filters.setdefault(name, []).append(wanted)
    return filters


def read_globals(environ: Mapping[str, str]) -> Dict[str, str]:
    """Each setting from NAME, else from pipework_NAME; empty counts as unset."""
    values = {}
    for name in SETTING_NAMES:
        value = environ.get(name) or environ.get(f"pipework_{name}") or ""
        if value:
            values[name] = value
    return values


def settings_from_env(environ: Optional[Mapping[str, str]] = None, run_mode: Optional[str] = None) -> Settings:
    environ = os.environ if environ is None else environ
    values = read_globals(environ)
    warnings = [f"{name} is not supported yet and is ignored" for name in NOT_SUPPORTED_YET if name in values]
    if "cleanup_wait" in values:
        warnings.append("cleanup_wait is not needed by pipeworkd and is ignored")
    up_time = parse_seconds("up_time", values.get("up_time", "0"))
    return Settings(
        run_modes=parse_run_modes(run_mode if run_mode is not None else values.get("run_mode", "")),
        key=values.get("key"),
        debug=parse_flag(values.get("debug", "")),
        sleep=parse_seconds("sleep", values.get("sleep", "0")),
        event_filters=parse_event_filters(values.get("event_filters", "")),
        retry_delay=parse_seconds("retry_delay", values.get("retry_delay", "0")),
        inter_delay=parse_seconds("inter_delay", values.get("inter_delay", "0")),
        up_time=up_time or None,
        proc_root=environ.get("PIPEWORKD_PROC") or "/proc",
        workers=parse_workers(environ.get("PIPEWORKD_WORKERS") or "4"),
        housekeeping_interval=parse_interval(environ.get("PIPEWORKD_HOUSEKEEPING_INTERVAL") or "30"),
        warnings=tuple(warnings),
    )
