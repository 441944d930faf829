"""`rolling-upgrade plan NAME`: the batches an OS upgrade would take right now (a dry run)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from scaleset_operator.catalog.objects import catalog_entries
from scaleset_operator.catalog.resolve import resolve, resolve_exact
from scaleset_operator.cli.output import Cell, emit, table
from scaleset_operator.cli.plugin_context import NotFound, common_options, load_scaleset, settings
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.planner.preview import Preview, preview


def _catalog() -> list[CatalogEntry]:
    return list(catalog_entries(settings().api().list_imageversions()))


def _render(name: str, version: str, image: str, result: Preview) -> str:
    lines = [f"OS upgrade of {name} to {version} ({image}), if it started now:"]
    if result.refused:
        lines.append(f"  would not start: {result.refused}")
    rows: list[list[Cell]] = [
        [b.number, b.zone or "-", ", ".join(str(i) for i in b.instance_ids)] for b in result.batches
    ]
    if rows:
        lines.append(table(["Batch", "Zone", "Instances"], rows).rstrip("\n"))
    elif not result.refused:
        lines.append("  nothing to do: every instance already runs it")
    if result.already_on_target:
        lines.append(f"already on it: {', '.join(map(str, result.already_on_target))}")
    if result.skipped_protected:
        lines.append(f"protected, skipped: {', '.join(map(str, result.skipped_protected))}")
    if result.unhealthy:
        lines.append(f"unhealthy now: {', '.join(map(str, result.unhealthy))}")
    return "\n".join(lines) + "\n"


@click.command("plan")
@click.argument("name")
@click.option("--version", default=None, help="Plan for this exact version (default: latest).")
@common_options
def plan(name: str, version: str | None) -> None:
    """Preview the batches an OS upgrade of scale set NAME would take now.

    Uses the scale set's rolling upgrade policy, zones, protection and the
    instances' current health, and assumes every batch succeeds. Changes nothing.

    \b
    Examples:
      kubectl scaleset rolling-upgrade plan web
      kubectl scaleset rolling-upgrade plan web --version 1.2.0 -o json
    """
    loaded = load_scaleset(name)
    spec = loaded.spec
    catalog = _catalog()
    ref = spec.image_reference
    if version is None:
        entry = resolve(catalog, ref, spec.location, skip_versions=loaded.status.faulted_versions)
    else:
        entry = resolve_exact(catalog, ref, spec.location, version)
    if entry is None:
        wanted = version or "latest"
        raise NotFound(f"no image version {wanted} of {ref.describe()} in {spec.location}")
    instances = settings().api().list_instances(loaded.name, spec)
    result = preview(spec, instances, entry.spec.image, datetime.now(UTC))
    doc = {
        "targetVersion": entry.spec.version,
        "targetImage": entry.spec.image,
        "wouldStart": result.refused is None,
        "refusedBecause": result.refused,
        "batches": [
            {"number": b.number, "zone": b.zone, "instanceIds": list(b.instance_ids)}
            for b in result.batches
        ],
        "alreadyOnTarget": list(result.already_on_target),
        "protected": list(result.skipped_protected),
        "unhealthy": list(result.unhealthy),
    }
    emit(
        doc, settings().output, lambda: _render(name, entry.spec.version, entry.spec.image, result)
    )
