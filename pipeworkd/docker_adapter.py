"""Docker adapter over the Engine API (docker SDK 5.0.3 and 7.x).

The API version is negotiated and DOCKER_HOST (with DOCKER_TLS_VERIFY and
DOCKER_CERT_PATH) is honoured; the docker CLI is never used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

import docker
from docker.errors import APIError, DockerException, NotFound

from .clientconfig import ContainerFacts
from .errors import ContainerError, ContainerGone, DockerUnavailable, one_line

LOG = logging.getLogger(__name__)

WATCHED_ACTIONS = ("start", "die", "destroy")


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    pid: int
    running: bool
    started_at: str
    hostname: str
    image: str
    env: tuple
    labels: tuple

    @classmethod
    def from_inspect(cls, data: dict) -> "ContainerInfo":
        state = data.get("State") or {}
        config = data.get("Config") or {}
        return cls(
            id=data["Id"],
            name=(data.get("Name") or "").lstrip("/"),
            pid=int(state.get("Pid") or 0),
            running=bool(state.get("Running")),
            started_at=state.get("StartedAt") or "",
            hostname=config.get("Hostname") or "",
            image=config.get("Image") or "",
            env=tuple(config.get("Env") or ()),
            labels=tuple(sorted((config.get("Labels") or {}).items())),
        )

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def facts(self) -> ContainerFacts:
        return ContainerFacts(id=self.id, name=self.name, hostname=self.hostname, env=self.env, labels=self.labels)


class DockerAdapter:
    def __init__(self, timeout: float = 30.0) -> None:
        try:
            client = docker.from_env(version="auto", timeout=int(timeout))
        except DockerException as exc:
            raise DockerUnavailable(f"cannot reach the Docker engine: {one_line(exc)}") from None
        self.api = client.api
        self._events_api = None

    def close(self) -> None:
        self.api.close()
        if self._events_api is not None:
            self._events_api.close()

    def inspect(self, ref: str) -> ContainerInfo:
        try:
            return ContainerInfo.from_inspect(self.api.inspect_container(ref))
        except NotFound:
            raise ContainerError(f"no such container: {ref}") from None
        except APIError as exc:
            raise ContainerError(f"container {ref}: {exc.explanation or exc}") from None
        except DockerException as exc:
            raise DockerUnavailable(f"Docker engine error while inspecting {ref}: {one_line(exc)}") from None

    def running_target(self, ref: str) -> ContainerInfo:
        info = self.inspect(ref)
        if not info.running or info.pid <= 0:
            raise ContainerGone(f"container {info.name} is not running")
        return info

    def running_ids(self) -> List[str]:
        try:
            return [entry["Id"] for entry in self.api.containers(filters={"status": "running"})]
        except DockerException as exc:
            raise DockerUnavailable(f"cannot list containers: {one_line(exc)}") from None

    def events(self, since: float, until: Optional[float] = None,
               filters: Optional[Dict[str, List[str]]] = None) -> Iterator[dict]:
        """Container start/die/destroy events from `since` on (inclusive), decoded."""
        wanted = {"type": ["container"], "event": list(WATCHED_ACTIONS)}
        for key, values in (filters or {}).items():
            wanted[key] = list(values)
        # A separate client: the event stream reads with no timeout, and must
        # not share a connection pool with inspect calls made meanwhile.
        if self._events_api is None:
            self._events_api = docker.from_env(version="auto").api
        return self._events_api.events(
            since=f"{since:.9f}", until=f"{until:.9f}" if until else None, filters=wanted, decode=True)

    def close_events(self, stream) -> None:
        try:
            stream.close()
        except Exception as exc:  # closing a dead stream is fine
            LOG.debug("closing the event stream: %s", exc)
