"""What every plugin command shares: exit codes, the options that pick cluster, namespace and
output format, and loading a scale set. Owns no command of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from scaleset_operator.k8s.userapi import Connection, UserApi, connect
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
class Settings:
    """Global options; given on the group or on the command itself (the later one wins)."""

    output: str = "table"
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    _api: UserApi | None = None

    def api(self) -> UserApi:
        if self._api is None:
            self._api = connect(Connection(self.kubeconfig, self.context, self.namespace))
        return self._api


def settings(ctx: click.Context | None = None) -> Settings:
    ctx = ctx or click.get_current_context()
    return ctx.ensure_object(Settings)


def _store(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value is not None:
            setattr(settings(ctx), field, value)

    return callback


def common_options(func: F) -> F:
    """`-o`, `-n`, `--kubeconfig` and `--context`, accepted before or after the command name."""
    options = [
        click.option(
            "-o",
            "--output",
            type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
            expose_value=False,
            callback=_store("output"),
            help="Output format: table (default), json or yaml.",
        ),
        click.option(
            "-n",
            "--namespace",
            expose_value=False,
            callback=_store("namespace"),
            help="Namespace of the scale set (default: the kubeconfig context's).",
        ),
        click.option(
            "--kubeconfig",
            expose_value=False,
            callback=_store("kubeconfig"),
            help="Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).",
        ),
        click.option(
            "--context",
            expose_value=False,
            callback=_store("context"),
            help="Kubeconfig context to use (default: the current context).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CommandFailed(
            f'scale set "{name}" is not readable: {where}: {first["msg"]}'
        ) from None
    return LoadedScaleSet(obj, spec, status)
