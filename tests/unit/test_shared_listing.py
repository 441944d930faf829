"""The catalog's shared listing: re-read after the watch says it changed, and never left
holding a read that began before that change."""

from __future__ import annotations

import threading
from typing import Any

from scaleset_operator.k8s.client import SharedListing

Obj = dict[str, Any]


class Source:
    """What the API server holds, and how often it was listed."""

    def __init__(self, *names: str) -> None:
        self.names = list(names)
        self.lists = 0

    def fetch(self) -> list[Obj]:
        self.lists += 1
        return [{"metadata": {"name": n}} for n in self.names]


def names(items: list[Obj]) -> list[str]:
    return [i["metadata"]["name"] for i in items]


def test_within_the_ttl_one_listing_serves_every_pass() -> None:
    source = Source("v1")
    listing = SharedListing(ttl=60)
    assert names(listing.get(source.fetch)) == ["v1"]
    assert names(listing.get(source.fetch)) == ["v1"]
    assert source.lists == 1


def test_invalidate_makes_the_next_pass_list_again() -> None:
    source = Source("v1")
    listing = SharedListing(ttl=60)
    listing.get(source.fetch)
    source.names.append("v2")
    listing.invalidate()
    assert names(listing.get(source.fetch)) == ["v1", "v2"]
    assert source.lists == 2


def test_a_listing_under_way_when_the_change_came_is_not_kept() -> None:
    source = Source("v1")
    listing = SharedListing(ttl=60)

    def fetch_then_change() -> list[Obj]:
        # The API answers with what it held; the new object and its watch event come before
        # the answer is stored.
        items = source.fetch()
        source.names.append("v2")
        listing.invalidate()
        return items

    # The pass that listed plans on what it read...
    assert names(listing.get(fetch_then_change)) == ["v1"]
    # ...but the next one (a scale set created after the publish) sees the new version.
    assert names(listing.get(source.fetch)) == ["v1", "v2"]
    assert source.lists == 2


def test_a_slow_old_listing_does_not_overwrite_a_newer_one() -> None:
    source = Source("v1")
    listing = SharedListing(ttl=60)
    started, release = threading.Event(), threading.Event()
    seen: list[list[str]] = []

    def slow_fetch() -> list[Obj]:
        items = source.fetch()
        started.set()
        release.wait(timeout=10)
        return items

    old = threading.Thread(target=lambda: seen.append(names(listing.get(slow_fetch))))
    old.start()
    assert started.wait(timeout=10)
    source.names.append("v2")
    listing.invalidate()
    assert names(listing.get(source.fetch)) == ["v1", "v2"]
    release.set()
    old.join(timeout=10)
    assert seen == [["v1"]]
    assert names(listing.get(source.fetch)) == ["v1", "v2"]
    assert source.lists == 2
