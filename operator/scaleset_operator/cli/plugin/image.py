"""`kubectl scaleset image list|publish`: the image catalog, i.e. ImageVersion objects
(Azure: `az vm image list`, and publishing a version to a gallery). Which version is "latest"
is decided by the catalog package, the same code the operator uses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from scaleset_operator.catalog.objects import catalog_entries
from scaleset_operator.cli.plugin.context import common_options, settings
from scaleset_operator.cli.views.images import (
    image_rows,
    images_table,
    object_name,
    select,
    urn_of,
)
from scaleset_operator.cli.views.output import emit, key_values
from scaleset_operator.models.imageversion import CatalogEntry, ImageVersionSpec
from scaleset_operator.planner.timefmt import stamp


@click.group("image")
def image() -> None:
    """List and publish OS image versions (the ImageVersion catalog).

    \b
    Examples:
      kubectl scaleset image list --location westeurope --publisher Canonical --offer ubuntu
      kubectl scaleset image publish --publisher Canonical --offer ubuntu --sku 22_04-lts \\
          --version 1.2.3 --image registry.example/ubuntu:22.04-1.2.3
    """


def _parse(items: list[dict[str, Any]]) -> list[CatalogEntry]:
    return list(catalog_entries(items))


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
