"""The ImageVersion resource: one published version in the image catalog (the publisher side)."""

from __future__ import annotations

from pydantic import Field

from scaleset_operator.models.base import ApiModel
from scaleset_operator.models.versions import DOTTED_VERSION

PLURAL = "imageversions"
KIND = "ImageVersion"


class ImageVersionSpec(ApiModel):
    publisher: str | None = Field(default=None, min_length=1, max_length=253)
    offer: str | None = Field(default=None, min_length=1, max_length=253)
    sku: str | None = Field(default=None, min_length=1, max_length=253)
    gallery: str | None = Field(default=None, min_length=1, max_length=253)
    gallery_image: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Gallery image definition name (with `gallery`).",
    )
    version: str = Field(pattern=DOTTED_VERSION, description="Dotted numeric, e.g. 1.2.3.")
    image: str = Field(min_length=1, max_length=1024, description="Container image reference.")
    exclude_from_latest: bool = False
    target_regions: list[str] = Field(
        default_factory=list, description="Regions it is replicated to; empty means every region."
    )
    published_date: str | None = None


class CatalogEntry(ApiModel):
    """An ImageVersion as the catalog sees it: its spec plus its object name."""

    name: str
    spec: ImageVersionSpec
    created_at: str | None = None

    def published_at(self) -> str | None:
        """`publishedDate` when it is a timestamp, else when the object was created."""
        return self.spec.published_date or self.created_at
