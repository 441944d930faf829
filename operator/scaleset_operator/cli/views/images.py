"""The image catalog's views for `kubectl scaleset image`: which versions to show, the
`latest` mark, table layout, and object names for new versions. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from scaleset_operator.catalog.resolve import replicated_to, resolve_latest
from scaleset_operator.cli.views.output import table
from scaleset_operator.models.imageversion import CatalogEntry, ImageVersionSpec
from scaleset_operator.models.scaleset import ImageReference
from scaleset_operator.models.versions import is_dotted_version, version_key

_DNS_MAX = 253


def reference_of(spec: ImageVersionSpec) -> ImageReference:
    if spec.gallery is not None:
        return ImageReference(gallery=spec.gallery, image=spec.gallery_image)
    return ImageReference(publisher=spec.publisher, offer=spec.offer, sku=spec.sku)


def urn_of(spec: ImageVersionSpec) -> str:
    return f"{reference_of(spec).describe().rsplit(':', 1)[0]}:{spec.version}"


def _matches(value: str | None, wanted: str | None) -> bool:
    # Like `az vm image list`: filters are case-insensitive and accept part of a name.
    return wanted is None or (value is not None and wanted.lower() in value.lower())


def select(entries: Sequence[CatalogEntry], filters: dict[str, str | None]) -> list[CatalogEntry]:
    return [
        e
        for e in entries
        if all(_matches(getattr(e.spec, field), value) for field, value in filters.items())
    ]


def _sort_key(e: CatalogEntry) -> tuple[str, tuple[int, ...], str]:
    family = reference_of(e.spec).describe().rsplit(":", 1)[0].lower()
    version = version_key(e.spec.version) if is_dotted_version(e.spec.version) else ()
    return family, version, e.name


def image_rows(
    entries: Sequence[CatalogEntry], location: str | None, show_all: bool
) -> list[dict[str, Any]]:
    """One row per version; without `show_all` only the versions `latest` can pick in
    `location` (not excluded, replicated there)."""
    latest_names = set()
    if location is not None:
        for ref in {reference_of(e.spec) for e in entries}:
            chosen = resolve_latest(entries, ref, location)
            if chosen is not None:
                latest_names.add(chosen.name)
    rows = []
    for e in sorted(entries, key=_sort_key):
        s = e.spec
        available = location is None or replicated_to(e, location)
        if not show_all and (s.exclude_from_latest or not available):
            continue
        row: dict[str, Any] = {
            "name": e.name,
            "publisher": s.publisher or s.gallery,
            "offer": s.offer or s.gallery_image,
            "sku": s.sku,
            "version": s.version,
            "urn": urn_of(s),
            "image": s.image,
            "excludeFromLatest": s.exclude_from_latest,
            "targetRegions": list(s.target_regions),
        }
        if location is not None:
            row["availableInLocation"] = available
            row["latest"] = e.name in latest_names
        rows.append(row)
    return rows


def images_table(rows: Sequence[dict[str, Any]], show_all: bool) -> str:
    if not rows:
        return "No image versions found.\n"
    columns = ["publisher", "offer", "sku", "version", "urn"]
    if "latest" in rows[0]:
        columns.append("latest")
    if show_all:
        columns += ["excludeFromLatest", "targetRegions", "image"]
        if "availableInLocation" in rows[0]:
            columns.append("availableInLocation")
    headers = {
        "excludeFromLatest": "Excluded",
        "targetRegions": "Regions",
        "availableInLocation": "In-Location",
    }

    def show(row: dict[str, Any], col: str) -> Any:
        value = row.get(col)
        if col == "targetRegions":
            return ",".join(value) if value else "(all)"
        return value

    return table(
        [headers.get(c, c) for c in columns], [[show(r, c) for c in columns] for r in rows]
    )


def object_name(parts: Sequence[str]) -> str:
    """`<publisher>-<offer>-<sku>-<version>` made a valid DNS subdomain name."""
    text = "-".join(parts).lower()
    text = re.sub(r"[^a-z0-9.-]+", "-", text)
    text = re.sub(r"-*\.[-.]*", ".", text)  # every dot-separated label must start/end alnum
    text = re.sub(r"-{2,}", "-", text)
    return text[:_DNS_MAX].strip("-.")
