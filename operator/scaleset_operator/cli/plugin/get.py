"""`kubectl scaleset get`: a scale set's summary and its instances (Azure: `az vmss show`
plus `az vmss list-instances`)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from scaleset_operator.cli.plugin.context import common_options, load_scaleset, settings
from scaleset_operator.cli.views.output import emit
from scaleset_operator.cli.views.tables import (
    instance_row,
    instances_table,
    scaleset_document,
    scaleset_summary,
)


@click.command("get")
@click.argument("name")
@common_options
def get(name: str) -> None:
    """Show scale set NAME and its instances.

    Per instance: id, pod, zone, the image version it runs, its health
    (Healthy, Unhealthy, Initializing or Unknown: ready by the scale set's health
    source *and* running the image its spec names), whether it runs the latest
    model (latestModelApplied) and whether it is protected from scale set actions.
    While instances are out of date (behind the model or the newest version,
    held-back ones included), HELD-BY says what holds each one (a maintenance
    window, the minimum image age, a PodDisruptionBudget, protection...) and
    ELIGIBLE when that hold ends, where known (status.outOfDate).

    \b
    Examples:
      kubectl scaleset get web
      kubectl scaleset get web -o yaml
      kubectl scaleset get web -o json | jq '.instances[] | select(.health != "Healthy")'
      kubectl scaleset get web -o json | jq '.instances[] | select(.heldBy)'
    """
    loaded = load_scaleset(name)
    api = settings().api()
    now = datetime.now(UTC)
    instances = api.list_instances(loaded.name, loaded.spec)
    rows = [instance_row(i, loaded.spec, loaded.status, now) for i in instances]
    doc = scaleset_document(loaded.name, api.namespace, loaded.spec, loaded.status, rows)

    def as_table() -> str:
        summary = scaleset_summary(loaded.name, api.namespace, loaded.spec, loaded.status)
        return summary + "\n" + instances_table(rows)

    emit(doc, settings().output, as_table)
