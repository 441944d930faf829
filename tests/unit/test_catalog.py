"""The image catalog: which ImageVersion `latest` (or an exact version) means for a scale set."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaleset_operator.catalog.resolve import (
    candidates,
    is_newer,
    matches_reference,
    pin,
    replicated_to,
    resolve,
    resolve_exact,
    resolve_latest,
)
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.scaleset import ImageReference
from scaleset_operator.models.versions import version_key
from tests.unit.simworld import LOCATION, OFFER, PUBLISHER, SKU, image_of, version_entry

PLATFORM = ImageReference(publisher=PUBLISHER, offer=OFFER, sku=SKU)
GALLERY = ImageReference(gallery="shared", image="web-os")


def latest(
    entries: list[CatalogEntry], location: str = LOCATION, skip_versions: tuple[str, ...] = ()
) -> str | None:
    found = resolve_latest(entries, PLATFORM, location, skip_versions)
    return found.spec.version if found else None


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        (["9", "10"], "10"),
        (["1.9", "1.10"], "1.10"),
        (["1.10", "1.9", "1.2"], "1.10"),
        (["2016.127.20180613", "2016.127.20180612", "2015.999.99999999"], "2016.127.20180613"),
        (["1.2", "1.2.0"], "1.2.0"),
        (["0.9.9.9", "1"], "1"),
    ],
)
def test_latest_is_the_numerically_highest(versions: list[str], expected: str) -> None:
    assert latest([version_entry(v) for v in versions]) == expected


def test_numeric_ties_resolve_the_same_way_whatever_the_order() -> None:
    """`1.02` and `1.2` are the same number; every observer must still pick the same entry."""
    entries = [
        version_entry("1.2", name="b"),
        version_entry("1.02", name="a"),
        version_entry("1.2", "other", name="c"),
        version_entry("1.1"),
    ]
    picks = set()
    for seed in range(20):
        shuffled = entries[:]
        random.Random(seed).shuffle(shuffled)
        found = resolve_latest(shuffled, PLATFORM, LOCATION)
        assert found is not None
        picks.add(found.name)
    assert picks == {"c"}


def test_excluded_versions_never_become_latest() -> None:
    entries = [version_entry("1.0"), version_entry("2.0", excluded=True)]
    assert latest(entries) == "1.0"
    assert latest([version_entry("2.0", excluded=True)]) is None


def test_exact_references_may_use_excluded_versions() -> None:
    """Azure: excludeFromLatest only hides a version from `latest`."""
    entries = [version_entry("1.0"), version_entry("2.0", excluded=True)]
    found = resolve_exact(entries, PLATFORM, LOCATION, "2.0")
    assert found is not None
    assert found.spec.image == image_of("2.0")
    pinned = PLATFORM.model_copy(update={"version": "2.0"})
    assert resolve(entries, pinned, LOCATION) == found


def test_exact_reference_to_a_missing_version_resolves_to_nothing() -> None:
    pinned = PLATFORM.model_copy(update={"version": "3.0"})
    assert resolve([version_entry("1.0")], pinned, LOCATION) is None


@pytest.mark.parametrize(
    ("regions", "location", "replicated"),
    [
        ([], "westeurope", True),
        (["westeurope"], "westeurope", True),
        (["WestEurope"], "westeurope", True),
        (["westeurope"], "WESTEUROPE", True),
        (["eastus", "westeurope"], "westeurope", True),
        (["eastus"], "westeurope", False),
        (["west"], "westeurope", False),
    ],
)
def test_regions_compare_case_insensitively_and_empty_means_everywhere(
    regions: list[str], location: str, replicated: bool
) -> None:
    assert replicated_to(version_entry("1.0", regions=regions), location) is replicated


def test_unreplicated_versions_never_reach_the_region() -> None:
    entries = [version_entry("1.0"), version_entry("1.5", regions=["eastus"])]
    assert latest(entries) == "1.0"
    assert latest(entries, location="EastUS") == "1.5"
    pinned = PLATFORM.model_copy(update={"version": "1.5"})
    assert resolve(entries, pinned, LOCATION) is None


def test_skipped_versions_are_passed_over() -> None:
    entries = [version_entry(v) for v in ("1.0", "1.1", "1.2")]
    assert latest(entries, skip_versions=("1.2",)) == "1.1"
    assert latest(entries, skip_versions=("1.2", "1.1", "1.0")) is None


def test_gallery_and_platform_references_never_mix() -> None:
    platform = version_entry("5.0")
    gallery = version_entry("1.0", gallery="shared", gallery_image="web-os")
    other_image = version_entry("9.0", gallery="shared", gallery_image="db-os")
    other_gallery = version_entry("9.0", gallery="private", gallery_image="web-os")
    entries = [platform, gallery, other_image, other_gallery]
    assert candidates(entries, PLATFORM, LOCATION) == [platform]
    assert candidates(entries, GALLERY, LOCATION) == [gallery]
    assert resolve_latest(entries, GALLERY, LOCATION) == gallery
    assert not matches_reference(gallery, PLATFORM)
    assert not matches_reference(platform, GALLERY)


@pytest.mark.parametrize(
    "ref",
    [
        ImageReference(publisher="Other", offer=OFFER, sku=SKU),
        ImageReference(publisher=PUBLISHER, offer="other", sku=SKU),
        ImageReference(publisher=PUBLISHER, offer=OFFER, sku="other"),
    ],
)
def test_publisher_offer_and_sku_must_all_match(ref: ImageReference) -> None:
    assert resolve_latest([version_entry("1.0")], ref, LOCATION) is None


def test_pin_keeps_the_reference_family_and_takes_the_entry_version_and_image() -> None:
    resolved = pin(version_entry("1.2.3", "tag-x"), PLATFORM)
    assert resolved.urn == f"{PUBLISHER}:{OFFER}:{SKU}:1.2.3"
    assert resolved.container_image == image_of("tag-x")
    assert resolved.target_reference().wire() == {
        "publisher": PUBLISHER,
        "offer": OFFER,
        "sku": SKU,
        "version": "1.2.3",
    }
    in_gallery = pin(version_entry("1.0", gallery="shared", gallery_image="web-os"), GALLERY)
    assert in_gallery.urn == "shared/web-os:1.0"
    assert in_gallery.target_reference().wire() == {
        "id": "galleries/shared/images/web-os/versions/1.0",
        "version": "1.0",
    }


@pytest.mark.parametrize(
    ("version", "than", "newer"),
    [
        ("1.10", "1.9", True),
        ("1.9", "1.10", False),
        ("1.0", "1.0", False),
        ("1.0", None, True),
        ("1.0", "not-a-version", True),
    ],
)
def test_is_newer(version: str, than: str | None, newer: bool) -> None:
    assert is_newer(version, than) is newer


# --- properties ------------------------------------------------------------------------------

versions = st.lists(st.integers(0, 12), min_size=1, max_size=3).map(
    lambda parts: ".".join(map(str, parts))
)
region_lists = st.lists(st.sampled_from(["westeurope", "WestEurope", "eastus", "northeurope"]))


@st.composite
def catalogs(draw: st.DrawFn) -> list[CatalogEntry]:
    count = draw(st.integers(0, 12))
    entries = []
    for n in range(count):
        entries.append(
            version_entry(
                draw(versions),
                excluded=draw(st.booleans()),
                regions=draw(region_lists),
                sku=draw(st.sampled_from([SKU, SKU, "minimal"])),
                name=f"entry-{n}",
            )
        )
    return entries


@settings(max_examples=150, deadline=None)
@given(catalogs(), st.sampled_from(["westeurope", "EASTUS", "centralus"]), st.randoms())
def test_latest_is_the_max_of_the_eligible_set(
    entries: list[CatalogEntry], location: str, rnd: random.Random
) -> None:
    skipped = {e.spec.version for e in entries if rnd.random() < 0.2}
    eligible = [
        e
        for e in entries
        if e.spec.sku == SKU
        and not e.spec.exclude_from_latest
        and e.spec.version not in skipped
        and (
            not e.spec.target_regions
            or location.lower() in (r.lower() for r in e.spec.target_regions)
        )
    ]
    found = resolve_latest(entries, PLATFORM, location, skip_versions=skipped)
    if not eligible:
        assert found is None
        return
    assert found in eligible
    assert version_key(found.spec.version) == max(version_key(e.spec.version) for e in eligible)
    shuffled = entries[:]
    rnd.shuffle(shuffled)
    assert resolve_latest(shuffled, PLATFORM, location, skip_versions=skipped) == found
