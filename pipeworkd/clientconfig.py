"""Read pipework commands from a client container's environment.

Pure: it works on the already-inspected container, never on Docker itself.
Names and sort order follow the dreamcat4 image; values are never evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

from .errors import SpecError
from .spec import split_command

CMD_MARKER = "pipework_cmd"
KEY_NAME = "pipework_key"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
_LAST_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class ContainerFacts:
    """What macros and the key check need to know about a container."""

    id: str
    name: str
    hostname: str = ""
    env: Tuple[str, ...] = ()
    labels: Tuple[Tuple[str, str], ...] = ()

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, "")


@dataclass(frozen=True)
class ClientCommand:
    variable: str
    raw: str
    argv: Tuple[str, ...] = ()
    error: Optional[str] = None


def parse_env(env: Sequence[str]) -> dict:
    """`NAME=VALUE` lines to a dict; a line without '=' is ignored, the first '=' splits."""
    result = {}
    for line in env:
        name, sep, value = line.partition("=")
        if sep and name:
            result[name] = value
    return result


def command_variables(variables: Mapping[str, str]) -> List[str]:
    """Names containing `pipework_cmd`, in byte order (as `sort` under the C locale)."""
    names = [name for name in variables if CMD_MARKER in name]
    return sorted(names, key=lambda name: name.encode("utf-8", "surrogateescape"))


def key_matches(variables: Mapping[str, str], global_key: Optional[str]) -> bool:
    if not global_key:
        return True
    return variables.get(KEY_NAME) == global_key


def macro_values(facts: ContainerFacts) -> dict:
    digit_runs = _LAST_DIGITS.findall(facts.name)
    return {
        "@CONTAINER_NAME@": facts.name[1:] if facts.name.startswith("/") else facts.name,
        "@CONTAINER_ID@": facts.id[:12],
        "@HOSTNAME@": facts.hostname,
        "@INSTANCE@": digit_runs[-1] if digit_runs else "",
        "@COMPOSE_PROJECT_NAME@": facts.label(COMPOSE_PROJECT_LABEL),
    }


def expand_macros(words: Sequence[str], values: Mapping[str, str]) -> Tuple[str, ...]:
    """Replace macros inside each word, after splitting: a value can never add words."""
    expanded = []
    for word in words:
        for macro, value in values.items():
            word = word.replace(macro, value)
        expanded.append(word)
    return tuple(expanded)


def client_commands(facts: ContainerFacts) -> List[ClientCommand]:
    """The container's commands, macros expanded, in run order.

    A value that cannot be split (unbalanced quotes) yields a command that
    carries its error, so the container's other commands still run.
    """
    variables = parse_env(facts.env)
    values = macro_values(facts)
    commands = []
    for name in command_variables(variables):
        raw = variables[name]
        try:
            words = split_command(raw)
        except SpecError as exc:
            commands.append(ClientCommand(variable=name, raw=raw, error=f"{name}: {exc}"))
            continue
        if words and words[0] == "pipework":
            words = words[1:]
        if not words:
            continue  # an empty variable asks for nothing
        commands.append(ClientCommand(variable=name, raw=raw, argv=expand_macros(words, values)))
    return commands
