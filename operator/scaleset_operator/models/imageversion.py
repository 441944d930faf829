"""The ImageVersion resource: one published version in the image catalog (the publisher side)."""

from __future__ import annotations

from pydantic import Field

from scaleset_operator.models.base import ApiModel
from scaleset_operator.models.versions import DOTTED_VERSION

PLURAL = "imageversions"
KIND = "ImageVersion"
DESCRIPTION = (
    "One published version of an image in the catalog, the publisher's side (a platform image "
    "version or a gallery image version). Scale sets asking for `latest` get the highest "
    "version that is not excluded and is replicated to their region."
)


class ImageVersionSpec(ApiModel):
    """Which image the version belongs to, its number, and the container image it stands for.
    Once published, only excludeFromLatest, targetRegions and publishedDate may change."""

    publisher: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Platform image: who publishes it. Goes with offer and sku, never with "
        "gallery.",
    )
    offer: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Platform image: the publisher's product, a family of related images.",
    )
    sku: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Platform image: the edition of the offer, such as a major release.",
    )
    gallery: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Gallery image: the gallery. Goes with galleryImage, never with "
        "publisher, offer or sku.",
    )
    gallery_image: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Gallery image: the image definition inside the gallery (a ScaleSet's "
        "imageReference.image).",
    )
    version: str = Field(
        pattern=DOTTED_VERSION,
        description="Dotted numeric version of one to four parts, such as 2016.127.20180613; "
        "versions compare part by part as numbers.",
    )
    image: str = Field(
        min_length=1,
        max_length=1024,
        description="Container image reference that the OS container runs on this version.",
    )
    exclude_from_latest: bool = Field(
        default=False,
        description="When true, `latest` never resolves to this version; a scale set can "
        "still ask for it by its exact number. Default false.",
    )
    target_regions: list[str] = Field(
        default_factory=list,
        description="Regions the version is replicated to; empty means every region. Scale "
        "sets in other regions never get it.",
    )
    published_date: str | None = Field(
        default=None,
        description="When the version was published (RFC 3339); minimumImageAge counts from "
        "it, or from the object's creation when absent.",
    )


class CatalogEntry(ApiModel):
    """An ImageVersion as the catalog sees it: its spec plus its object name."""

    name: str
    spec: ImageVersionSpec
    created_at: str | None = None

    def published_at(self) -> str | None:
        """`publishedDate` when it is a timestamp, else when the object was created."""
        return self.spec.published_date or self.created_at
