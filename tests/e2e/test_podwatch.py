"""The operator's pod watch against the real apiserver: only labelled pods, in order, deletions
included, and a LIST after an expired watch reports the pods that vanished."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from kubernetes import client

from scaleset_operator.controller.listwatch import PodWatch
from scaleset_operator.k8s.client import KubeClient, make_api_client
from tests.e2e.support import eventually

LABEL = "scaleset.dev/scaleset"


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "os", "image": "registry.test/os:1.0"}]},
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        with self.lock:
            self.events.append((kind, meta["name"], str(meta.get("resourceVersion", ""))))

    def names(self, kind: str | None = None) -> set[str]:
        with self.lock:
            return {n for k, n, _ in self.events if kind is None or k == kind}


def test_watch_reports_only_labelled_pods_and_their_deletion(
    kubeconfig: Path, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, pod("before", {LABEL: "web"}))
    seen = Recorder()
    watch = PodWatch(
        KubeClient(make_api_client(str(kubeconfig))), LABEL, [namespace], seen, timeout_seconds=5
    )
    watch.start()
    try:
        assert watch.synced.wait(30)
        assert seen.names() == {"before"}
        core.create_namespaced_pod(namespace, pod("other", {"app": "unrelated"}))
        core.create_namespaced_pod(namespace, pod("after", {LABEL: "web"}))
        core.delete_namespaced_pod("before", namespace, grace_period_seconds=0)
        eventually(lambda: "before" in seen.names("DELETED"), 30, what="deletion seen")
        eventually(lambda: "after" in seen.names(), 30, what="new pod seen")
        # After the watch's server timeout it resumes where it was, without a new LIST.
        eventually(lambda: watch.watches >= 2, 30, what="a second watch")
        assert watch.lists == 1
        core.patch_namespaced_pod("after", namespace, {"metadata": {"labels": {"x": "1"}}})
        eventually(
            lambda: any(k == "MODIFIED" and n == "after" for k, n, _ in seen.events),
            30,
            what="change seen",
        )
        assert "other" not in seen.names()
        versions = [int(rv) for k, n, rv in seen.events if n == "after" and rv]
        assert versions == sorted(versions)
    finally:
        watch.stop()


def test_a_new_list_reports_pods_that_vanished(
    kubeconfig: Path, kube_api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, pod("kept", {LABEL: "web"}))
    seen = Recorder()
    watch = PodWatch(KubeClient(make_api_client(str(kubeconfig))), LABEL, [namespace], seen)
    path = f"/api/v1/namespaces/{namespace}/pods"
    deleted: list[dict[str, Any]] = []

    def record(kind: str, obj: dict[str, Any]) -> None:
        seen(kind, obj)
        if kind == "DELETED":
            deleted.append(obj)

    watch.on_event = record
    known = {(namespace, "gone"): ("uid-1", "web")}
    version = watch._list(path, known)
    assert version
    assert seen.names("ADDED") == {"kept"}
    assert seen.names("DELETED") == {"gone"}
    # The handler learns whose pod vanished from its label, as from a real deletion.
    assert deleted[0]["metadata"] == {
        "namespace": namespace,
        "name": "gone",
        "uid": "uid-1",
        "labels": {LABEL: "web"},
    }
    assert set(known) == {(namespace, "kept")}
