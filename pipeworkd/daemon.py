"""Run modes: manual, batch, daemon (and both, all).

The batch pass and the event stream are joined without a gap: the stream is
read from the instant the batch pass started, and a container is configured
once per start (keyed on its ID and State.StartedAt), whichever saw it first.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import nullcontext
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from docker.errors import DockerException
from requests.exceptions import RequestException

from . import firewall
from . import netlink as nl
from .attach import AttachResult, Target, attach
from .clientconfig import (
    ClientCommand, client_commands, command_variables, key_matches, parse_env,
)
from .config import Settings
from .docker_adapter import ContainerInfo, DockerAdapter
from .errors import (
    ContainerError, ContainerGone, DockerUnavailable, NotSupportedError, PipeworkError, SpecError, one_line,
)
from .log import fields, shown
from .notify import notify
from .signals import StopRequests, keep_from_this_thread
from .spec import AttachSpec, parse, refuse_unsupported

LOG = logging.getLogger(__name__)

RECONNECT_DELAYS = (0.5, 1, 2, 5, 10, 30)
HOST_ROUTE_MARKER = "pipework_host_route"
# A housekeeping round is bounded by its lock (30 s) and iptables (20 s a call) timeouts.
HOUSEKEEPING_JOIN_TIMEOUT = 90.0


def prepare(command: Union[str, Sequence[str]]) -> AttachSpec:
    """Parse a pipework command and refuse what is not supported yet."""
    return refuse_unsupported(parse(command if isinstance(command, str) else list(command)))


def run_attach(spec: AttachSpec, docker: DockerAdapter, proc_root: str,
               own_container: Optional[ContainerInfo] = None) -> Tuple[ContainerInfo, AttachResult]:
    """Attach the container the spec names; return (container info, result).

    With `own_container` (a container's own pipework_cmd), that container is
    the only one the command may attach: a container cannot rewire another.
    """
    if own_container is None:
        info = docker.running_target(spec.guest)
    elif _refers_to(spec.guest, own_container):
        info = own_container
    else:
        raise ContainerError(f"the command names container {spec.guest!r}, but a container's pipework_cmd "
                             f"can only attach the container itself")
    result = attach(spec, Target(id=info.id, name=info.name, pid=info.pid), proc_root)
    return info, result


def _container_fields(info: ContainerInfo) -> dict:
    return {"container_name": info.name, "container_id": info.short_id, "container_id_full": info.id}


def _event_time(event: dict) -> float:
    if event.get("timeNano"):
        return event["timeNano"] / 1e9
    return float(event.get("time") or 0)


def _refers_to(ref: str, info: ContainerInfo) -> bool:
    return ref in (info.name, info.id) or (len(ref) >= 12 and info.id.startswith(ref))


def matches_filters(info: ContainerInfo, filters: Mapping[str, Sequence[str]]) -> bool:
    """event_filters applied to the batch pass the way Docker applies them to events:
    keys are ANDed; values of image and container are ORed, labels are all required."""
    image, container, labels = filters.get("image"), filters.get("container"), filters.get("label", ())
    if image and not any(value in (info.image, _without_tag(info.image)) for value in image):
        return False
    if container and not any(value == info.name or info.id.startswith(value) for value in container):
        return False
    return all(_has_label(info, value) for value in labels)


def _without_tag(image: str) -> str:
    """`registry:5000/name:tag@digest` to `registry:5000/name`."""
    name = image.split("@", 1)[0]
    head, slash, last = name.rpartition("/")
    return head + slash + last.split(":", 1)[0]


def _has_label(info: ContainerInfo, wanted: str) -> bool:
    name, sep, value = wanted.partition("=")
    labels = dict(info.labels)
    return name in labels and (not sep or labels[name] == value)


class Daemon:
    def __init__(self, settings: Settings, docker: DockerAdapter) -> None:
        self.settings = settings
        self.docker = docker
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="attach",
                                       initializer=keep_from_this_thread)
        self.applied: Dict[str, str] = {}
        self.locks: Dict[str, threading.Lock] = {}
        self.guard = threading.Lock()
        self.stopping = threading.Event()
        self.stream = None
        self.housekeeper: Optional[threading.Thread] = None
        self.counts = {"attached": 0, "failed": 0}

    # --- manual ---

    def run_manual(self, argv: Sequence[str], environ: Mapping[str, str],
                   stop: Optional[StopRequests] = None) -> int:
        commands: List[tuple] = []
        if argv:
            commands.append(("command line", list(argv)))
        for name in command_variables(environ):
            commands.append((name, environ[name]))
        if not commands:
            LOG.error("manual mode: no pipework arguments given and no *pipework_cmd* variable set")
            return 2
        status = 0
        for origin, command in commands:
            started = time.monotonic()
            try:
                spec = prepare(command)
                with stop.critical() if stop else nullcontext():
                    info, result = run_attach(spec, self.docker, self.settings.proc_root)
                self._log_result(info, origin, spec.argv, result, time.monotonic() - started)
            except PipeworkError as exc:
                LOG.error("manual %s: %s", origin, shown(str(exc)))
                status = status or exc.exit_code
            if stop:
                stop.raise_if_pending()
        return status

    # --- batch ---

    def run_batch(self) -> None:
        started = time.monotonic()
        ids = self.docker.running_ids()
        futures = [self.pool.submit(self.process_container, cid) for cid in ids]
        wait(futures)
        LOG.info("batch pass: %d running containers looked at in %.0f ms", len(ids),
                 (time.monotonic() - started) * 1000)

    # --- daemon ---

    def follow_events(self, since: float) -> None:
        until = time.time() + self.settings.up_time if self.settings.up_time else None
        last = since
        failures = 0
        while not self.stopping.is_set():
            try:
                self.stream = self.docker.events(last, until, self.settings.event_filters)
                if failures:
                    LOG.info("Docker events: reconnected; reconciling")
                    self.run_batch()
                failures = 0
                for event in self.stream:
                    last = max(last, _event_time(event))
                    self.dispatch(event)
                if until is not None and time.time() >= until:
                    LOG.info("up_time reached: stopping")
                    return
                raise DockerUnavailable("the event stream ended")
            except (DockerException, RequestException, DockerUnavailable, OSError) as exc:
                if self.stopping.is_set():
                    return
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                LOG.warning("Docker events: %s; reconnecting in %s s", one_line(exc), delay)
                self.stopping.wait(delay)

    def dispatch(self, event: dict) -> None:
        action = (event.get("Action") or event.get("status") or "").split(":")[0]
        cid = (event.get("Actor") or {}).get("ID") or event.get("id")
        if not cid:
            return
        if action == "start":
            self.pool.submit(self.process_container, cid)
        elif action == "die":
            self.pool.submit(self.on_die, cid)
        elif action == "destroy":
            with self.guard:
                self.locks.pop(cid, None)
                self.applied.pop(cid, None)

    def on_die(self, cid: str) -> None:
        with self._lock_for(cid):
            self.applied.pop(cid, None)
        self.housekeeping()

    def stop(self) -> None:
        self.stopping.set()
        if self.stream is not None:
            self.docker.close_events(self.stream)

    def close(self) -> None:
        """Wait for work in progress (never cut a rule change or an attach in half), drop queued work."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.housekeeper is not None:
            self.housekeeper.join(HOUSEKEEPING_JOIN_TIMEOUT)

    # --- per container ---

    def _lock_for(self, cid: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(cid, threading.Lock())

    def process_container(self, cid: str) -> None:
        if self.stopping.is_set():
            return
        try:
            with self._lock_for(cid):
                self._process_locked(cid)
        except Exception:  # a bug must not stop the other containers
            LOG.exception("container %s: unexpected error", cid[:12])

    def _process_locked(self, cid: str) -> None:
        try:
            info = self.docker.inspect(cid)
        except ContainerError as exc:
            LOG.debug("container %s: %s", cid[:12], exc)
            return
        if not info.running or self.applied.get(cid) == info.started_at:
            return
        self.applied[cid] = info.started_at
        variables = parse_env(info.env)
        if not command_variables(variables):
            return
        if not matches_filters(info, self.settings.event_filters):
            return
        if not key_matches(variables, self.settings.key):
            LOG.warning("container %s (%s): skipped, its pipework_key does not match the key",
                        info.name, info.short_id,
                        extra=fields(**_container_fields(info), pipework_event="skipped"))
            return
        if any(HOST_ROUTE_MARKER in name for name in variables):
            LOG.warning("container %s (%s): pipework_host_route variables are not supported yet and are ignored",
                        info.name, info.short_id)
        for command in client_commands(info.facts()):
            if self.stopping.is_set() or not self._run_client_command(info, command):
                return

    def _run_client_command(self, info: ContainerInfo, command: ClientCommand) -> bool:
        """Run one command (and its retry); False when the container's other commands should not run."""
        attempts = 2 if self.settings.retry_delay > 0 else 1
        for attempt in range(attempts):
            started = time.monotonic()
            try:
                if command.error:
                    raise SpecError(command.error)
                spec = prepare(command.argv)
                _, result = run_attach(spec, self.docker, self.settings.proc_root, own_container=info)
            except (SpecError, NotSupportedError) as exc:
                self._log_failure(info, command, exc, time.monotonic() - started, False)
                break  # trying again cannot help
            except ContainerGone as exc:
                self._log_failure(info, command, exc, time.monotonic() - started, False)
                return False  # its other commands would fail the same way
            except PipeworkError as exc:
                will_retry = attempt + 1 < attempts
                self._log_failure(info, command, exc, time.monotonic() - started, will_retry)
                if will_retry and self.stopping.wait(self.settings.retry_delay):
                    return False
                continue
            self._log_result(info, command.variable, spec.argv, result, time.monotonic() - started)
            break
        if self.settings.inter_delay:
            self.stopping.wait(self.settings.inter_delay)
        return True

    # --- logging ---

    def _log_result(self, info: ContainerInfo, origin: str, argv: Sequence[str],
                    result: AttachResult, seconds: float) -> None:
        with self.guard:
            self.counts["attached"] += 1
        text = shown(shlex.join(argv))
        LOG.info("container %s (%s): %s: %s: %s in %.1f ms", info.name, info.short_id, shown(origin), text,
                 result.summary(), seconds * 1000,
                 extra=fields(**_container_fields(info), pipework_cmd=text, pipework_variable=origin,
                              pipework_event="already-attached" if result.already_attached else "attached",
                              pipework_ifname=result.container_ifname,
                              pipework_host_ifname=result.host_ifname, pipework_link_kind=result.kind,
                              pipework_address=result.address, pipework_duration_ms=f"{seconds * 1000:.1f}"))

    def _log_failure(self, info: ContainerInfo, command: ClientCommand, exc: PipeworkError,
                     seconds: float, will_retry: bool) -> None:
        with self.guard:
            self.counts["failed"] += 1
        text = shown(shlex.join(command.argv) if command.argv else command.raw)
        retry = f"; retrying in {self.settings.retry_delay:g} s" if will_retry else ""
        LOG.error("container %s (%s): %s: %s: failed in %.1f ms: %s%s", info.name, info.short_id,
                  shown(command.variable), text, seconds * 1000, shown(str(exc)), retry,
                  extra=fields(**_container_fields(info), pipework_cmd=text,
                               pipework_variable=command.variable, pipework_event="failed",
                               pipework_duration_ms=f"{seconds * 1000:.1f}"))

    # --- housekeeping ---

    def housekeeping(self) -> None:
        """Drop firewall rules whose bridge is gone."""
        if not firewall.available():
            return
        try:
            for name in firewall.remove_rules_of_missing_bridges(nl.host_link_names):
                LOG.info("bridge %s is gone: its firewall rule was removed", name)
        except Exception as exc:  # the next round tries again
            LOG.warning("housekeeping: %s", one_line(exc))

    def start_housekeeping_timer(self) -> None:
        def loop() -> None:
            keep_from_this_thread()
            while not self.stopping.wait(self.settings.housekeeping_interval):
                self.housekeeping()

        self.housekeeper = threading.Thread(target=loop, name="housekeeping", daemon=True)
        self.housekeeper.start()


def run(settings: Settings, manual_argv: Sequence[str], environ: Mapping[str, str],
        docker_factory: Callable[[], DockerAdapter] = DockerAdapter, stop: Optional[StopRequests] = None) -> int:
    """Run the configured modes in order; return the process exit status."""
    if settings.sleep:
        time.sleep(settings.sleep)
    docker = docker_factory()
    daemon = Daemon(settings, docker)
    status = 0
    try:
        if "manual" in settings.run_modes:
            status = daemon.run_manual(manual_argv, environ, stop)
        if "batch" in settings.run_modes or "daemon" in settings.run_modes:
            since = time.time()
            daemon.housekeeping()
            if "batch" in settings.run_modes:
                daemon.run_batch()
            notify(f"READY=1\nSTATUS=batch done: {daemon.counts['attached']} attached, "
                   f"{daemon.counts['failed']} failed")
            LOG.info("ready: %s", ", ".join(settings.run_modes), extra=fields(pipework_event="ready"))
            if "daemon" in settings.run_modes:
                daemon.start_housekeeping_timer()
                daemon.follow_events(since)
            elif daemon.counts["failed"]:
                status = status or 1
    finally:
        notify("STOPPING=1")
        daemon.stop()
        daemon.close()
        docker.close()
    return status
