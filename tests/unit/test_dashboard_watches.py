"""The dashboard's reflectors against a scripted API: a watch that ends resumes from the last
resourceVersion, 410 Gone lists again, and whatever breaks a watch shows on the page while the
thread lives on (the rules of the operator's pod watch)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from scaleset_operator.dashboard import watches
from scaleset_operator.dashboard.watches import Reflector, Sink, Source
from scaleset_operator.k8s.errors import UnavailableError

Obj = dict[str, Any]
Script = list[bytes] | Exception


def pod(name: str, version: str) -> Obj:
    return {"metadata": {"namespace": "shop", "name": name, "resourceVersion": version}}


def line(type_: str, obj: Obj) -> bytes:
    return json.dumps({"type": type_, "object": obj}).encode()


class ScriptedCluster:
    """Answers lists and watches from scripts; once a script runs out, the reflector stops."""

    def __init__(self, lists: list[Obj | Exception], streams: list[Script]) -> None:
        self.lists = lists
        self.streams = streams
        self.stop = threading.Event()
        self.calls: list[tuple[str, dict[str, str]]] = []

    def request(self, method: str, path: str, *, query: list[tuple[str, str]]) -> Obj:
        self.calls.append(("list", dict(query)))
        if not self.lists:
            self.stop.set()
            return {"metadata": {"resourceVersion": "0"}, "items": []}
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def stream_lines(
        self, path: str, query: list[tuple[str, str]], *, read_timeout: float
    ) -> Iterator[bytes]:
        self.calls.append(("watch", dict(query)))
        if not self.streams:
            self.stop.set()
            return
        script = self.streams.pop(0)
        if isinstance(script, Exception):
            raise script
        yield from script


class Recorder(Sink):
    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def reset(self, kind: str, items: list[Obj]) -> None:
        self.seen.append(("reset", [i["metadata"]["name"] for i in items]))

    def event(self, kind: str, type_: str, obj: Obj) -> None:
        self.seen.append((type_, obj["metadata"]["name"]))

    def failed(self, kind: str, message: str | None) -> None:
        self.seen.append(("failed", message))


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watches, "RETRY_SECONDS", 0.0)


def run(cluster: ScriptedCluster) -> Recorder:
    sink = Recorder()
    source = Source("pods", "/api/v1/pods", selector="scaleset.dev/scaleset")
    Reflector(cluster, source, sink, cluster.stop)._run()  # type: ignore[arg-type]
    return sink


def listing(version: str, *names: str) -> Obj:
    return {"metadata": {"resourceVersion": version}, "items": [pod(n, version) for n in names]}


def watched_versions(cluster: ScriptedCluster) -> list[tuple[str, str]]:
    return [(kind, q.get("resourceVersion", "")) for kind, q in cluster.calls]


def test_a_watch_that_ends_resumes_from_the_last_version_bookmarks_included() -> None:
    cluster = ScriptedCluster(
        [listing("5", "a")],
        [
            [line("ADDED", pod("b", "6")), line("BOOKMARK", pod("", "7"))],
            [line("MODIFIED", pod("b", "8"))],
        ],
    )

    sink = run(cluster)

    assert watched_versions(cluster) == [
        ("list", ""),
        ("watch", "5"),
        ("watch", "7"),
        ("watch", "8"),
    ]
    assert sink.seen == [("reset", ["a"]), ("failed", None), ("ADDED", "b"), ("MODIFIED", "b")]
    assert cluster.calls[1][1]["labelSelector"] == "scaleset.dev/scaleset"


def test_410_gone_lists_again() -> None:
    gone = {"kind": "Status", "code": 410, "message": "too old resource version: 5 (9)"}
    cluster = ScriptedCluster(
        [listing("5", "a"), listing("9", "a", "b")],
        [[line("ERROR", gone)], [line("DELETED", pod("a", "10"))]],
    )

    sink = run(cluster)

    assert watched_versions(cluster) == [
        ("list", ""),
        ("watch", "5"),
        ("list", ""),
        ("watch", "9"),
        ("watch", "10"),
    ]
    assert sink.seen == [
        ("reset", ["a"]),
        ("failed", None),
        ("reset", ["a", "b"]),
        ("failed", None),
        ("DELETED", "a"),
    ]


@pytest.mark.parametrize(
    "broken",
    [
        [b"<html>502 Bad Gateway</html>"],  # not JSON
        [b"[]"],  # JSON, but not an event
        UnavailableError("connection reset by peer"),
    ],
)
def test_a_broken_watch_shows_on_the_page_and_the_thread_lives_on(broken: Script) -> None:
    cluster = ScriptedCluster(
        [listing("5", "a"), listing("6", "a")], [broken, [line("ADDED", pod("b", "7"))]]
    )

    sink = run(cluster)

    failure = sink.seen[2]
    assert failure[0] == "failed"
    assert failure[1]
    assert sink.seen[3:] == [("reset", ["a"]), ("failed", None), ("ADDED", "b")]


def test_a_list_that_fails_is_tried_again() -> None:
    cluster = ScriptedCluster([UnavailableError("no route to host"), listing("3", "a")], [])

    sink = run(cluster)

    assert sink.seen[:3] == [
        ("failed", "no route to host"),
        ("reset", ["a"]),
        ("failed", None),
    ]
