"""What every plugin command shares: exit codes, the options that pick cluster, namespace and
output format, and loading a scale set. Owns no command of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from scaleset_operator.k8s.userapi import Connection, UserApi, cluster_options, connect
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import ScaleSetStatus

F = TypeVar("F", bound=Callable[..., Any])
Obj = dict[str, Any]


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    UNREACHABLE = 4


class CommandFailed(click.ClickException):
    """The operation's outcome was a failure: one line on stderr, exit code 1."""

    exit_code = ExitCode.FAILED


class InvalidValue(CommandFailed):
    """A value the API server (or the plugin) refuses: exit code 2, like a usage error."""

    exit_code = ExitCode.USAGE


class NotFound(CommandFailed):
    """The scale set, instance or upgrade does not exist: exit code 3."""

    exit_code = ExitCode.NOT_FOUND


class Unreachable(CommandFailed):
    """No kubeconfig, no connection, or no permission: exit code 4."""

    exit_code = ExitCode.UNREACHABLE


OUTPUT_FORMATS = ("table", "json", "yaml")


@dataclass
class Settings(Connection):
    """Global options; given on the group or on the command itself (the later one wins)."""

    output: str = "table"
    _api: UserApi | None = None

    def api(self) -> UserApi:
        if self._api is None:
            self._api = connect(self)
        return self._api


def settings(ctx: click.Context | None = None) -> Settings:
    ctx = ctx or click.get_current_context()
    return ctx.ensure_object(Settings)


def _store_output(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        settings(ctx).output = value


def common_options(func: F) -> F:
    """`-o`, `-n`, `--kubeconfig` and `--context`, accepted before or after the command name.
    The last three are the ones every plugin command shares (`k8s.userapi.cluster_options`)."""
    func = cluster_options(
        Settings, namespace_help="Namespace of the scale set (default: the kubeconfig context's)."
    )(func)
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
        expose_value=False,
        callback=_store_output,
        help="Output format: table (default), json or yaml.",
    )(func)


@dataclass(frozen=True)
class LoadedScaleSet:
    obj: Obj
    spec: ScaleSetSpec
    status: ScaleSetStatus

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])


def load_scaleset(name: str) -> LoadedScaleSet:
    """Reads and parses one scale set; a missing one ends the command with exit code 3."""
    obj = settings().api().get_scaleset(name)
    return parse_scaleset(obj)


def parse_scaleset(obj: Obj) -> LoadedScaleSet:
    name = (obj.get("metadata") or {}).get("name") or "?"
    try:
        spec = ScaleSetSpec.model_validate(obj.get("spec") or {})
        status = ScaleSetStatus.model_validate(obj.get("status") or {})
    except ValidationError as exc:
        raise unreadable(f'scale set "{name}"', exc) from None
    return LoadedScaleSet(obj, spec, status)


def unreadable(what: str, exc: ValidationError) -> CommandFailed:
    """An object the models cannot read: where and why, in one line."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return CommandFailed(f"{what} is not readable: {where}: {first['msg']}")
