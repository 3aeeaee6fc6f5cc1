"""Typed errors. Every error carries one line of text meant for the admin."""

from __future__ import annotations


def one_line(exc: BaseException) -> str:
    """An exception's text with its white space folded, or its type when it has none."""
    return " ".join(Exception.__str__(exc).split()) or type(exc).__name__


class PipeworkError(Exception):
    """Base class: str(error) is a single line that names the culprit."""

    exit_code = 1

    def __str__(self) -> str:
        return one_line(self)


class SpecError(PipeworkError):
    """The pipework argument string is malformed."""

    exit_code = 2


class NotSupportedError(PipeworkError):
    """The form is valid pipework grammar but not implemented yet."""

    exit_code = 3


class ContainerError(PipeworkError):
    """The container is unknown, not running or not a valid target."""

    exit_code = 4


class ContainerGone(ContainerError):
    """The container is not running (any more)."""


class HostInterfaceError(PipeworkError):
    """The host interface is missing or unusable."""

    exit_code = 5


class AttachError(PipeworkError):
    """The kernel refused a change; what was built has been undone."""

    exit_code = 6


class ConfigError(PipeworkError):
    """A daemon setting is invalid."""

    exit_code = 2


class DockerUnavailable(PipeworkError):
    """The Docker engine cannot be reached."""

    exit_code = 7
