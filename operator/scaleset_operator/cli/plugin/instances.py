"""Commands on chosen instances: `update-instances` (bring them to the latest model; a request
the operator carries out) and `protect` (the instance protection annotation on their pods)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from scaleset_operator.cli.plugin.context import (
    InvalidValue,
    NotFound,
    common_options,
    load_scaleset,
    settings,
)
from scaleset_operator.cli.plugin.requests import new_request, submit
from scaleset_operator.cli.views.output import Cell, emit, table
from scaleset_operator.models.instance import (
    ANNOTATION_PROTECT,
    ANNOTATION_UPDATE_INSTANCES,
    Instance,
)

ALL = "*"


def parse_instance_ids(values: tuple[str, ...]) -> list[str]:
    """`0 3`, `0,3` or `*`, as given to --instance-ids; sorted, without duplicates."""
    ids = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not ids:
        raise InvalidValue("--instance-ids needs at least one instance id, or '*'")
    if ALL in ids:
        return [ALL]
    bad = [i for i in ids if not i.isdigit()]
    if bad:
        raise InvalidValue(
            f"instance ids are numbers or '*', not {', '.join(repr(b) for b in bad)} "
            "(give NAME before --instance-ids)"
        )
    return [str(i) for i in sorted({int(i) for i in ids})]


def choose(instances: list[Instance], ids: list[str], name: str) -> list[Instance]:
    """The instances named by `ids`; an id with no instance ends the command (exit 3)."""
    if ids == [ALL]:
        return instances
    by_id = {str(i.instance_id): i for i in instances}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise NotFound(f'scale set "{name}" has no instance {", ".join(missing)}')
    return [by_id[i] for i in ids]


def _instance_ids_option(func: click.decorators.FC) -> click.decorators.FC:
    func = click.argument("more_ids", nargs=-1, metavar="[ID]...")(func)
    return click.option(
        "--instance-ids",
        "first_id",
        required=True,
        metavar="ID [ID]...",
        help="Instance ids, space- or comma-separated, or '*' for all.",
    )(func)


@click.command("update-instances")
@click.argument("name")
@_instance_ids_option
@common_options
def update_instances(name: str, first_id: str, more_ids: tuple[str, ...]) -> None:
    """Bring instances of scale set NAME to the latest model (image and template).

    For upgrade mode Manual, where model changes wait for the user. Instances
    already on the latest model and protected instances are left alone. The
    operator carries the request out; `kubectl scaleset get NAME` shows progress.

    \b
    Examples:
      kubectl scaleset update-instances web --instance-ids 0 3
      kubectl scaleset update-instances web --instance-ids '*'
    """
    ids = parse_instance_ids((first_id, *more_ids))
    loaded = load_scaleset(name)
    instances = settings().api().list_instances(loaded.name, loaded.spec)
    chosen = choose(instances, ids, name)
    protected = [str(i.instance_id) for i in chosen if i.protected]
    request = new_request("update-instances", ids, datetime.now(UTC))
    submit(name, ANNOTATION_UPDATE_INSTANCES, request)
    shown = "all instances" if ids == [ALL] else "instances " + ", ".join(ids)
    click.echo(f'Requested a model update of {shown} of "{name}" (request {request.id}).')
    if protected:
        which = ("instance " if len(protected) == 1 else "instances ") + ", ".join(protected)
        verb = "is" if len(protected) == 1 else "are"
        click.echo(
            f"note: {which} {verb} protected from scale set actions and left as it is",
            err=True,
        )


@click.command("protect")
@click.argument("name")
@_instance_ids_option
@click.option("--off", is_flag=True, help="Remove the protection instead.")
@common_options
def protect(name: str, first_id: str, more_ids: tuple[str, ...], off: bool) -> None:
    """Protect instances of scale set NAME from scale set actions (or, with --off, stop).

    A protected instance is never upgraded, rolled back or removed by scale-in
    (Azure: protectFromScaleSetActions). Sets the pod annotation
    scaleset.dev/protect-from-scale-set-actions.

    \b
    Examples:
      kubectl scaleset protect web --instance-ids 2
      kubectl scaleset protect web --instance-ids 2 4 --off
    """
    ids = parse_instance_ids((first_id, *more_ids))
    loaded = load_scaleset(name)
    api = settings().api()
    chosen = choose(api.list_instances(loaded.name, loaded.spec), ids, name)
    for inst in chosen:
        api.annotate_pod(inst.name, {ANNOTATION_PROTECT: None if off else "true"})
    rows: list[list[Cell]] = [[i.instance_id, i.name, not off] for i in chosen]
    doc = [{"instanceId": str(i.instance_id), "pod": i.name, "protected": not off} for i in chosen]
    emit(doc, settings().output, lambda: table(["Id", "Pod", "Protected"], rows))
