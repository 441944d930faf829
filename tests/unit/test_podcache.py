"""The watch's copy of a scale set's pods is trusted only when nothing raced with its LIST."""

from __future__ import annotations

from typing import Any

from scaleset_operator.controller.podcache import PodCache, slim
from scaleset_operator.k8s.pods import build_pod, to_instance
from scaleset_operator.planner.actions import CreateInstance
from tests.unit.simworld import image_of, spec_of

KEY = ("ns", "web")


def pod(name: str, rv: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def names(pods: list[dict[str, Any]] | None) -> list[str] | None:
    return None if pods is None else sorted(p["metadata"]["name"] for p in pods)


def make() -> tuple[PodCache, list[float]]:
    clock = [0.0]
    return PodCache(max_age=10.0, clock=lambda: clock[0]), clock


def test_unseeded_cache_is_not_trusted() -> None:
    cache, _ = make()
    cache.observe(KEY, "ADDED", pod("web-0"))
    assert cache.pods(KEY) is None


def test_seeded_cache_follows_watch_events() -> None:
    cache, _ = make()
    cache.seed(KEY, [pod("web-0"), pod("web-1")], cache.mark(KEY))
    assert names(cache.pods(KEY)) == ["web-0", "web-1"]
    cache.observe(KEY, "DELETED", pod("web-0"))
    cache.observe(KEY, "ADDED", pod("web-2"))
    cache.observe(KEY, "MODIFIED", pod("web-1", rv="7"))
    got = cache.pods(KEY)
    assert names(got) == ["web-1", "web-2"]
    assert got is not None
    assert {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in got}["web-1"] == "7"


def test_an_event_during_the_list_makes_the_copy_untrusted() -> None:
    cache, _ = make()
    mark = cache.mark(KEY)
    cache.observe(KEY, "MODIFIED", pod("web-0", rv="9"))
    cache.seed(KEY, [pod("web-0", rv="8")], mark)
    assert cache.pods(KEY) is None
    cache.seed(KEY, [pod("web-0", rv="9")], cache.mark(KEY))
    assert names(cache.pods(KEY)) == ["web-0"]


def test_the_copy_expires() -> None:
    cache, clock = make()
    cache.seed(KEY, [pod("web-0")], cache.mark(KEY))
    clock[0] = 9.9
    assert cache.pods(KEY) is not None
    clock[0] = 10.1
    assert cache.pods(KEY) is None


def test_forget_drops_everything() -> None:
    cache, _ = make()
    cache.seed(KEY, [pod("web-0")], cache.mark(KEY))
    cache.forget(KEY)
    assert cache.pods(KEY) is None
    assert cache.mark(KEY) == 0


def test_a_slim_pod_plans_like_the_whole_one() -> None:
    spec = spec_of(capacity=3)
    scaleset = {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}}
    action = CreateInstance(1, image_of("1.0.0"), "pub:offer:sku:1.0.0", None)
    whole = build_pod(scaleset, spec, "hash", action)
    whole["metadata"].update(
        uid="p-1",
        creationTimestamp="2026-01-01T00:00:00Z",
        managedFields=[{"manager": "kwok", "fieldsV1": {"f:status": {}}}],
    )
    whole["spec"]["nodeName"] = "node-1"
    whole["status"] = {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}
        ],
        "containerStatuses": [
            {
                "name": "os",
                "image": image_of("1.0.0"),
                "ready": True,
                "restartCount": 2,
                "state": {"running": {}},
            }
        ],
    }
    small = slim(whole)
    assert "managedFields" not in small["metadata"]
    zones = {"node-1": "zone-2"}
    assert to_instance(small, spec, zones, None) == to_instance(whole, spec, zones, None)
    assert to_instance(small, spec, zones, {"web-1"}) == to_instance(whole, spec, zones, {"web-1"})
