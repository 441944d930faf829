"""Our own pod writes and the pod watch, against the real apiserver: the answer of each write
names a version that the watch then reports, so the watch's copy knows when it holds them all
(what lets acting passes plan on it without a LIST)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scaleset_operator.controller.listwatch import PodWatch
from scaleset_operator.controller.podcache import PodCache
from scaleset_operator.k8s.client import KubeClient, make_api_client
from scaleset_operator.k8s.errors import AlreadyExistsError
from tests.e2e.support import eventually

LABEL = "scaleset.dev/scaleset"


def _pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {LABEL: "web"}},
        "spec": {"containers": [{"name": "os", "image": "registry.test/os:1.0"}]},
    }


def _caught_up(cache: PodCache, key: tuple[str, str]) -> bool:
    taken = cache.snapshot(key)
    return taken is not None and taken.caught_up


def test_each_kind_of_write_is_confirmed_by_the_watch(kubeconfig: Path, namespace: str) -> None:
    kube = KubeClient(make_api_client(str(kubeconfig)))
    cache, key = PodCache(), (namespace, "web")

    def observe(kind: str, pod: dict[str, Any]) -> None:
        cache.observe(key, kind, pod)

    watch = PodWatch(kube, LABEL, [namespace], observe, timeout_seconds=5)
    cache.mark(key)
    cache.seed(key, [])
    watch.start()
    try:
        assert watch.synced.wait(30)
        eventually(lambda: watch.live, 30, what="the watch streaming")
        created = kube.create_pod(namespace, _pod("web-0"))
        assert created is not None
        cache.expect(key, created)
        eventually(lambda: _caught_up(cache, key), 30, what="the create confirmed")
        copy = cache.pods(key)
        assert copy is not None
        assert [p["metadata"]["name"] for p in copy] == ["web-0"]

        ops = [
            {"op": "test", "path": "/metadata/uid", "value": created["metadata"]["uid"]},
            {"op": "replace", "path": "/spec/containers/0/image", "value": "registry.test/os:2"},
        ]
        patched = kube.json_patch_pod(namespace, "web-0", ops)
        cache.expect(key, patched)
        eventually(lambda: _caught_up(cache, key), 30, what="the patch confirmed")
        copy = cache.pods(key)
        assert copy is not None
        assert copy[0]["spec"]["containers"][0]["image"] == "registry.test/os:2"

        deleted = kube.delete_pod(namespace, "web-0", created["metadata"]["uid"])
        assert deleted is not None
        cache.expect(key, deleted)
        # Terminating (the simulated kubelet then removes it) or gone: the watch reports it.
        eventually(lambda: _caught_up(cache, key), 30, what="the deletion confirmed")
        eventually(lambda: cache.pods(key) == [], 30, what="the pod gone from the copy")
    finally:
        watch.stop()


def test_a_write_the_watch_has_not_reported_keeps_the_copy_behind(
    kubeconfig: Path, namespace: str
) -> None:
    """Without the watch, our write is never confirmed: the pass must list."""
    kube = KubeClient(make_api_client(str(kubeconfig)))
    cache, key = PodCache(), (namespace, "web")
    cache.mark(key)
    cache.seed(key, [])
    created = kube.create_pod(namespace, _pod("web-0"))
    assert created is not None
    cache.expect(key, created)
    assert not _caught_up(cache, key)
    with pytest.raises(AlreadyExistsError):  # the name is taken
        kube.create_pod(namespace, _pod("web-0"))
