"""The pod and ScaleSet watches' handling of what the stream says (the real stream: tests/e2e)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from scaleset_operator.controller.listwatch import ListWatch, PodWatch, ScaleSetWatch
from scaleset_operator.k8s.errors import UnavailableError

LABEL = "scaleset.dev/scaleset"


def pod(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": rv, "labels": {}}}


class FakeCluster:
    """Answers LISTs from `pods` and plays one scripted stream per watch, then stops `watch`."""

    def __init__(self, streams: list[list[dict[str, Any]] | Exception]) -> None:
        self.pods: list[dict[str, Any]] = []
        self.streams = streams
        self.watched_from: list[str] = []
        self.queries: list[tuple[str, list[tuple[str, str]]]] = []
        self.watch: ListWatch | None = None

    def request(
        self, method: str, path: str, query: list[tuple[str, str]] | None = None, **_: Any
    ) -> dict[str, Any]:
        self.queries.append((path, list(query or [])))
        return {"metadata": {"resourceVersion": "100"}, "items": list(self.pods)}

    def stream_lines(
        self, path: str, query: list[tuple[str, str]], *, opened: Any = None, **_: Any
    ) -> Iterator[bytes]:
        self.queries.append((path, list(query)))
        self.watched_from.append(dict(query)["resourceVersion"])
        if not self.streams:
            assert self.watch is not None
            self.watch.stop()
            return
        script = self.streams.pop(0)
        if isinstance(script, Exception):
            raise script
        if opened is not None:
            opened()
        for event in script:
            yield json.dumps(event).encode()


def run(cluster: FakeCluster) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    watch = PodWatch(
        cluster,  # type: ignore[arg-type]
        LABEL,
        ["ns"],
        lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
    )
    cluster.watch = watch
    watch._run("/api/v1/namespaces/ns/pods")
    return seen


def test_a_watch_resumes_from_the_last_version_it_saw() -> None:
    cluster = FakeCluster(
        [
            [
                {"type": "MODIFIED", "object": pod("web-0", "101")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "150"}}},
            ],
            [{"type": "DELETED", "object": pod("web-0", "151")}],
        ]
    )
    cluster.pods = [pod("web-0", "90")]
    seen = run(cluster)
    assert seen == [("ADDED", "web-0"), ("MODIFIED", "web-0"), ("DELETED", "web-0")]
    assert cluster.watched_from == ["100", "150", "151"]


def test_an_expired_watch_lists_again_and_reports_what_vanished() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    cluster = FakeCluster([[{"type": "ADDED", "object": pod("web-1", "101")}, gone]])
    cluster.pods = [pod("web-0", "90")]

    seen = run(cluster)
    # web-1 was not in the second LIST (the fake answers the same pods): reported deleted.
    assert seen == [
        ("ADDED", "web-0"),
        ("ADDED", "web-1"),
        ("MODIFIED", "web-0"),
        ("DELETED", "web-1"),
    ]
    assert cluster.watched_from == ["100", "100"]


def test_a_failing_watch_backs_off_and_resumes(monkeypatch: Any) -> None:
    waits: list[float] = []
    monkeypatch.setattr(
        "threading.Event.wait", lambda self, timeout=None: waits.append(timeout) or False
    )
    cluster = FakeCluster(
        [UnavailableError("connection reset"), [{"type": "ADDED", "object": pod("web-1", "120")}]]
    )
    seen = run(cluster)
    assert waits == [0.5]
    assert seen == [("ADDED", "web-1")]
    assert cluster.watched_from == ["100", "100", "120"]


def test_a_failing_handler_does_not_end_the_watch(monkeypatch: Any) -> None:
    monkeypatch.setattr("threading.Event.wait", lambda self, timeout=None: False)
    cluster = FakeCluster([[{"type": "ADDED", "object": pod("web-1", "120")}]])
    cluster.pods = [pod("web-0", "90")]
    seen: list[str] = []

    def handler(kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if name == "web-1" and not any(s == "web-1" for s in seen):
            seen.append(name)
            raise RuntimeError("a bug downstream")
        seen.append(name)

    watch = PodWatch(cluster, LABEL, ["ns"], handler)  # type: ignore[arg-type]
    cluster.watch = watch
    watch._run("/api/v1/namespaces/ns/pods")
    assert seen == ["web-0", "web-1"]
    assert cluster.watched_from == ["100", "100"]


def test_the_watch_is_live_while_it_streams_and_not_after_a_failure() -> None:
    """What lets acting passes trust the copy: changes arrive as they happen."""
    cluster = FakeCluster(
        [
            [{"type": "MODIFIED", "object": pod("web-0", "101")}],
            UnavailableError("connection reset"),
            [{"type": "MODIFIED", "object": pod("web-0", "102")}],
        ]
    )
    live_at: list[tuple[str, bool]] = []
    watch = PodWatch(
        cluster,  # type: ignore[arg-type]
        LABEL,
        ["ns"],
        lambda kind, obj: live_at.append((obj["metadata"]["resourceVersion"], watch.live)),
    )
    cluster.watch = watch
    assert not watch.live
    watch._run("/api/v1/namespaces/ns/pods")
    assert live_at == [("101", True), ("102", True)]
    # Between the failure and the next stream it was not live: the failure was recorded.
    cluster2 = FakeCluster([UnavailableError("refused")])
    watch2 = PodWatch(cluster2, LABEL, ["ns"], lambda kind, obj: None)  # type: ignore[arg-type]
    cluster2.watch = watch2
    watch2._streams("/api/v1/namespaces/ns/pods", True)
    watch2._run("/api/v1/namespaces/ns/pods")
    assert not watch2.live


def test_the_scaleset_watch_takes_every_scaleset_and_reports_a_vanished_one() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    cluster = FakeCluster([[{"type": "ADDED", "object": pod("db", "101")}, gone]])
    cluster.pods = [pod("web", "90")]
    seen: list[tuple[str, dict[str, Any]]] = []
    watch = ScaleSetWatch(cluster, ["ns"], lambda kind, obj: seen.append((kind, obj)))  # type: ignore[arg-type]
    cluster.watch = watch
    assert watch.paths == ["/apis/scaleset.dev/v1alpha1/namespaces/ns/scalesets"]
    watch._run(watch.paths[0])
    assert [(kind, obj["metadata"]["name"]) for kind, obj in seen] == [
        ("ADDED", "web"),
        ("ADDED", "db"),
        ("MODIFIED", "web"),
        ("DELETED", "db"),
    ]
    # No label selector: a ScaleSet is watched whatever its labels.
    assert all("labelSelector" not in dict(query) for _, query in cluster.queries)
    assert seen[-1][1] == {"metadata": {"namespace": "ns", "name": "db", "uid": ""}}
    everywhere = ScaleSetWatch(cluster, [], lambda kind, obj: None)  # type: ignore[arg-type]
    assert everywhere.paths == ["/apis/scaleset.dev/v1alpha1/scalesets"]
