"""`rolling-upgrade plan NAME`: the batches an OS upgrade would take right now (a dry run)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from scaleset_operator.catalog.objects import catalog_entries
from scaleset_operator.catalog.resolve import pin, resolve_exact
from scaleset_operator.cli.plugin.context import NotFound, common_options, load_scaleset, settings
from scaleset_operator.cli.views.output import Cell, emit, table
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.planner.preview import Preview, preview, preview_start
from scaleset_operator.planner.schedule import HeldBack, HoldReason
from scaleset_operator.planner.timefmt import stamp


def _catalog() -> list[CatalogEntry]:
    return list(catalog_entries(settings().api().list_imageversions()))


def _held_text(held: HeldBack) -> str:
    if held.reason is HoldReason.QUARANTINED:
        return f"{held.version} (quarantined)"
    until = f" until {stamp(held.until)}" if held.until is not None else ""
    return f"{held.version} (younger than minimumImageAge{until})"


def _held_doc(held: HeldBack) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": held.version, "reason": held.reason.value}
    if held.until is not None:
        doc["until"] = stamp(held.until)
    return doc


def _render(
    name: str, version: str, image: str, result: Preview, held: tuple[HeldBack, ...]
) -> str:
    lines = [f"OS upgrade of {name} to {version} ({image}), if it started now:"]
    if held:
        lines.append(f"  newer, held back: {', '.join(_held_text(h) for h in held)}")
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

    The target is the one `rolling-upgrade start` would pick: the newest version
    that is replicated to the scale set's location, not excluded, not quarantined
    and at least minimumImageAge old. Uses the scale set's rolling upgrade policy,
    zones, protection and the instances' current health (the same check that can
    refuse a start), and assumes every batch succeeds. Changes nothing.

    \b
    Examples:
      kubectl scaleset rolling-upgrade plan web
      kubectl scaleset rolling-upgrade plan web --version 1.2.0 -o json
    """
    loaded = load_scaleset(name)
    spec = loaded.spec
    catalog = _catalog()
    ref = spec.image_reference
    instances = settings().api().list_instances(loaded.name, spec)
    now = datetime.now(UTC)
    held: tuple[HeldBack, ...] = ()
    target = None
    result = None
    if version is None:
        start = preview_start(spec, loaded.status, catalog, instances, now)
        target, result, held = start.target.image, start.preview, start.target.held_back
    else:
        entry = resolve_exact(catalog, ref, spec.location, version)
        if entry is not None:
            target = pin(entry, ref)
            result = preview(spec, instances, target.container_image, now)
    if target is None or result is None:
        wanted = version or "latest"
        raise NotFound(f"no image version {wanted} of {ref.describe()} in {spec.location}")
    doc = {
        "targetVersion": target.version,
        "targetImage": target.container_image,
        "heldBack": [_held_doc(h) for h in held],
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
        doc,
        settings().output,
        lambda: _render(name, target.version, target.container_image, result, held),
    )
