"""`kubectl scaleset image list|publish`: the image catalog, i.e. ImageVersion objects
(Azure: `az vm image list`, and publishing a version to a gallery). Which version is "latest"
is decided by the catalog package, the same code the operator uses."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
from pydantic import ValidationError

from scaleset_operator.catalog.resolve import replicated_to, resolve_latest
from scaleset_operator.cli.output import emit, key_values, table
from scaleset_operator.cli.plugin_context import common_options, settings
from scaleset_operator.models.imageversion import CatalogEntry, ImageVersionSpec
from scaleset_operator.models.scaleset import ImageReference
from scaleset_operator.models.versions import is_dotted_version, version_key
from scaleset_operator.planner.timefmt import stamp

_DNS_MAX = 253


@click.group("image")
def image() -> None:
    """List and publish OS image versions (the ImageVersion catalog).

    \b
    Examples:
      kubectl scaleset image list --location westeurope --publisher Canonical --offer ubuntu
      kubectl scaleset image publish --publisher Canonical --offer ubuntu --sku 22_04-lts \\
          --version 1.2.3 --image registry.example/ubuntu:22.04-1.2.3
    """


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


def _parse(items: list[dict[str, Any]]) -> list[CatalogEntry]:
    entries = []
    for item in items:
        try:
            spec = ImageVersionSpec.model_validate(item.get("spec") or {})
        except ValidationError:
            continue  # not ours to judge here; the operator reports broken versions
        entries.append(CatalogEntry(name=item["metadata"]["name"], spec=spec))
    return entries


@image.command("list")
@click.option(
    "--location", "-l", help="Region; versions `latest` can use there (required without --all)."
)
@click.option("--publisher", "-p", help="Publisher (part of the name is enough).")
@click.option("--offer", "-f", help="Offer (part of the name is enough).")
@click.option("--sku", "-s", help="Sku (part of the name is enough).")
@click.option("--gallery", help="Gallery (for gallery images).")
@click.option("--gallery-image", help="Gallery image definition.")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Every version, also excluded from latest or not replicated to --location.",
)
@common_options
def list_images(
    location: str | None,
    publisher: str | None,
    offer: str | None,
    sku: str | None,
    gallery: str | None,
    gallery_image: str | None,
    show_all: bool,
) -> None:
    """List image versions, like `az vm image list`.

    By default only the versions usable as "latest" in --location: not excluded
    from latest and replicated to that region; the LATEST column marks the one
    "latest" resolves to. --all lists every version with its exclusion, regions
    and container image.

    \b
    Examples:
      kubectl scaleset image list -l westeurope --publisher Canonical --offer ubuntu --sku 22_04
      kubectl scaleset image list --all --publisher Canonical
      kubectl scaleset image list --location westeurope --gallery shared --gallery-image web -o json
    """
    if location is None and not show_all:
        raise click.UsageError("--location is required (or give --all)")
    filters = {
        "publisher": publisher,
        "offer": offer,
        "sku": sku,
        "gallery": gallery,
        "gallery_image": gallery_image,
    }
    entries = select(_parse(settings().api().list_imageversions()), filters)
    rows = image_rows(entries, location, show_all)
    emit(rows, settings().output, lambda: images_table(rows, show_all))


def object_name(parts: Sequence[str]) -> str:
    """`<publisher>-<offer>-<sku>-<version>` made a valid DNS subdomain name."""
    text = "-".join(parts).lower()
    text = re.sub(r"[^a-z0-9.-]+", "-", text)
    text = re.sub(r"-*\.[-.]*", ".", text)  # every dot-separated label must start/end alnum
    text = re.sub(r"-{2,}", "-", text)
    return text[:_DNS_MAX].strip("-.")


@image.command("publish")
@click.option("--publisher", help="Publisher of a platform image (with --offer and --sku).")
@click.option("--offer", help="Offer of a platform image.")
@click.option("--sku", help="Sku of a platform image.")
@click.option("--gallery", help="Gallery of a gallery image (with --gallery-image).")
@click.option("--gallery-image", help="Image definition in the gallery.")
@click.option("--version", "version", required=True, help="Dotted numeric version, e.g. 1.2.3.")
@click.option(
    "--image",
    "container_image",
    required=True,
    help="Container image the OS container runs for this version.",
)
@click.option(
    "--regions",
    multiple=True,
    help="Regions it is replicated to, comma-separated or repeated (default: all).",
)
@click.option(
    "--exclude-from-latest",
    is_flag=True,
    help="Never picked as 'latest'; usable by exact version only.",
)
@click.option("--name", "object_name_", help="Object name (default: derived from the image).")
@common_options
def publish(
    publisher: str | None,
    offer: str | None,
    sku: str | None,
    gallery: str | None,
    gallery_image: str | None,
    version: str,
    container_image: str,
    regions: tuple[str, ...],
    exclude_from_latest: bool,
    object_name_: str | None,
) -> None:
    """Publish an image version (creates a cluster-scoped ImageVersion).

    Scale sets on "latest" with automatic OS upgrades enabled pick it up in the
    regions it is replicated to, unless it is excluded from latest.

    \b
    Examples:
      kubectl scaleset image publish --publisher Canonical --offer ubuntu --sku 22_04-lts \\
          --version 1.2.4 --image registry.example/ubuntu:1.2.4 --regions westeurope,northeurope
      kubectl scaleset image publish --gallery shared --gallery-image web --version 2.0.0 \\
          --image registry.example/web-os:2.0.0 --exclude-from-latest
    """
    platform = (publisher, offer, sku)
    if gallery or gallery_image:
        if any(platform) or not (gallery and gallery_image):
            raise click.UsageError(
                "give --gallery and --gallery-image, without --publisher/--offer/--sku"
            )
        spec: dict[str, Any] = {"gallery": gallery, "galleryImage": gallery_image}
        parts = [gallery, gallery_image, version]
    elif all(platform):
        spec = {"publisher": publisher, "offer": offer, "sku": sku}
        parts = [publisher or "", offer or "", sku or "", version]
    else:
        raise click.UsageError(
            "give --publisher, --offer and --sku (or --gallery and --gallery-image)"
        )
    spec |= {
        "version": version,
        "image": container_image,
        "excludeFromLatest": exclude_from_latest,
        "targetRegions": [r.strip() for value in regions for r in value.split(",") if r.strip()],
        "publishedDate": stamp(datetime.now(UTC)),
    }
    name = object_name_ or object_name([p or "" for p in parts])
    created = settings().api().create_imageversion(name, spec)
    urn = urn_of(ImageVersionSpec.model_validate(spec))
    regions_text = ", ".join(spec["targetRegions"]) or "all regions"
    emit(
        created,
        settings().output,
        lambda: (
            f"Published {urn} as imageversion/{name}\n"
            + key_values(
                [
                    ("  Image", container_image),
                    ("  Regions", regions_text),
                    ("  In latest", not exclude_from_latest),
                ]
            )
        ),
    )
