"""Resolution of `latest` and exact versions, honouring regions and `excludeFromLatest`."""

from __future__ import annotations

from collections.abc import Iterable

from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import LATEST, ImageReference
from scaleset_operator.models.status import ResolvedImage
from scaleset_operator.models.versions import is_dotted_version, version_key


def matches_reference(entry: CatalogEntry, ref: ImageReference) -> bool:
    """Same publisher/offer/sku (or gallery/image definition), any version."""
    spec = entry.spec
    if ref.is_gallery:
        return spec.gallery == ref.gallery and spec.gallery_image == ref.image
    return (
        spec.gallery is None
        and spec.publisher == ref.publisher
        and spec.offer == ref.offer
        and spec.sku == ref.sku
    )


def replicated_to(entry: CatalogEntry, location: str) -> bool:
    """An empty region list means every region (case-insensitive, like Azure's names)."""
    regions = entry.spec.target_regions
    return not regions or location.lower() in {r.lower() for r in regions}


def _rank(entry: CatalogEntry) -> tuple[tuple[int, ...], str, str]:
    # Ties in numeric value (`1.02` vs `1.2`) are broken by text, then by object name,
    # so every observer picks the same entry.
    return (version_key(entry.spec.version), entry.spec.version, entry.name)


def candidates(
    entries: Iterable[CatalogEntry], ref: ImageReference, location: str
) -> list[CatalogEntry]:
    """Versions a scale set could run: same image family, replicated to its region."""
    return [
        e
        for e in entries
        if matches_reference(e, ref)
        and replicated_to(e, location)
        and is_dotted_version(e.spec.version)
    ]


def resolve_latest(
    entries: Iterable[CatalogEntry],
    ref: ImageReference,
    location: str,
    skip_versions: Iterable[str] = (),
) -> CatalogEntry | None:
    """The highest version not excluded from latest and replicated to `location`."""
    skipped = set(skip_versions)
    eligible = [
        e
        for e in candidates(entries, ref, location)
        if not e.spec.exclude_from_latest and e.spec.version not in skipped
    ]
    return max(eligible, key=_rank, default=None)


def resolve_exact(
    entries: Iterable[CatalogEntry], ref: ImageReference, location: str, version: str
) -> CatalogEntry | None:
    """An exact version ignores `excludeFromLatest` (Azure: excluded versions stay usable
    by exact reference) but still needs replication to the region."""
    found = [
        e
        for e in candidates(entries, ref, location)
        if version_key(e.spec.version) == version_key(version)
    ]
    return max(found, key=_rank, default=None)


def resolve(
    entries: Iterable[CatalogEntry],
    ref: ImageReference,
    location: str,
    skip_versions: Iterable[str] = (),
) -> CatalogEntry | None:
    if ref.version == LATEST:
        return resolve_latest(entries, ref, location, skip_versions)
    return resolve_exact(entries, ref, location, ref.version)


def pin(entry: CatalogEntry, ref: ImageReference) -> ResolvedImage:
    """The reference pinned to one catalog entry."""
    return ResolvedImage(
        publisher=ref.publisher,
        offer=ref.offer,
        sku=ref.sku,
        gallery=ref.gallery,
        image=ref.image,
        version=entry.spec.version,
        container_image=entry.spec.image,
    )


def is_newer(version: str, than: str | None) -> bool:
    if than is None or not is_dotted_version(than):
        return True
    return version_key(version) > version_key(than)
