"""`kubectl scaleset get-os-upgrade-history` (Azure: `az vmss get-os-upgrade-history`)."""

from __future__ import annotations

import click

from scaleset_operator.cli.plugin.context import common_options, load_scaleset, settings
from scaleset_operator.cli.views.azure import history_envelope
from scaleset_operator.cli.views.output import emit
from scaleset_operator.cli.views.tables import history_table


@click.command("get-os-upgrade-history")
@click.argument("name")
@common_options
def get_os_upgrade_history(name: str) -> None:
    """List the last OS image upgrades of scale set NAME, newest first.

    The last five attempts are kept, whoever started them (User or Platform),
    with their outcome, target image, progress, rollbacks and error. With -o json
    the answer has Azure's shape: {"value": [{"properties": ..., "type": ...,
    "location": ...}]}.

    \b
    Examples:
      kubectl scaleset get-os-upgrade-history web
      kubectl scaleset get-os-upgrade-history web -o json | jq '.value[0].properties.runningStatus'
    """
    loaded = load_scaleset(name)
    entries = loaded.status.os_upgrade_history
    doc = history_envelope(loaded.status, loaded.spec.location)
    emit(doc, settings().output, lambda: history_table(entries))
