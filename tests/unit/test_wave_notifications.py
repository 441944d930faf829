"""Wave notifications without a cluster: UpgradeWave statuses in, `wave.stageadvanced` facts,
requests and cursors out. Each status is one the wave pass could have persisted."""

from __future__ import annotations

import json
from typing import Any, cast

from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from scaleset_operator.controller.wave_pass import reconcile_wave
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.models.upgradewave import (
    StageEntry,
    UpgradeWaveStatus,
    VersionPhase,
    WaveVersion,
)
from scaleset_operator.notifications import ledger
from scaleset_operator.notifications.delivery import Sink
from scaleset_operator.notifications.facts import Kind, Phase, Position, after, wave_facts
from scaleset_operator.notifications.notifier import Notifier
from scaleset_operator.notifications.wire import (
    SIGNATURE_HEADER,
    Request,
    WaveRef,
    request_for,
    verify,
)

IMAGE = "pub:os:stable"
STAGES = ("test", "staging", "production")


def _version(
    version: str, *admitted: str, image: str = IMAGE, phase: VersionPhase = VersionPhase.ROLLING
) -> WaveVersion:
    """A record that reached one stage per `admitted` stamp, each completed just before the
    next was reached."""
    entries = [
        StageEntry(
            stage=STAGES[i],
            admitted_at=at,
            completed_at=admitted[i + 1] if i + 1 < len(admitted) else None,
        )
        for i, at in enumerate(admitted)
    ]
    return WaveVersion(
        image=image,
        version=version,
        phase=phase,
        stage=entries[-1].stage,
        stage_index=len(entries) - 1,
        stages=entries,
    )


def _status(*versions: WaveVersion) -> UpgradeWaveStatus:
    return UpgradeWaveStatus(versions=list(versions))


def test_each_stage_after_the_first_is_one_fact_with_where_from_and_when() -> None:
    assert wave_facts(_status(_version("1.1.0", "2026-11-29T10:00:00Z"))) == []
    record = _version(
        "1.1.0", "2026-11-29T10:00:00Z", "2026-11-29T11:00:00Z", "2026-11-29T12:00:00.250Z"
    )
    facts = wave_facts(_status(record))
    assert [f.kind for f in facts] == [Kind.WAVE_STAGE_ADVANCED] * 2
    assert Kind.WAVE_STAGE_ADVANCED.value == "dev.scaleset.upgrade.wave.stageadvanced"
    assert [f.position.phase for f in facts] == [Phase.WAVE_STAGE] * 2
    assert [f.position.index for f in facts] == [1, 2]
    assert [f.time for f in facts] == ["2026-11-29T11:00:00Z", "2026-11-29T12:00:00.250Z"]
    assert dict(facts[0].data) == {
        "image": IMAGE,
        "version": "1.1.0",
        "stage": "staging",
        "fromStage": "test",
        "admittedAt": "2026-11-29T11:00:00Z",
        "fromStageCompletedAt": "2026-11-29T11:00:00Z",
    }
    assert facts[1].data["fromStage"] == "staging"
    assert facts[1].data["stage"] == "production"
    # A status derived again (after a restart) gives the very same positions.
    assert [Position.parse(f.position.key()) for f in facts] == [f.position for f in facts]


def test_facts_are_ordered_by_when_the_stage_was_reached_not_by_version() -> None:
    # 1.0.0 was admitted first but reached staging last (its fault was cleared meanwhile).
    old = _version("1.0.0", "2026-11-29T09:00:00Z", "2026-11-29T13:00:00Z")
    new = _version("1.1.0", "2026-11-29T10:00:00Z", "2026-11-29T11:00:00Z")
    other = _version("7", "2026-11-29T10:30:00Z", "2026-11-29T12:00:00Z", image="gallery/img")
    facts = wave_facts(_status(old, new, other))
    assert [(f.data["image"], f.data["version"]) for f in facts] == [
        (IMAGE, "1.1.0"),
        ("gallery/img", "7"),
        (IMAGE, "1.0.0"),
    ]
    # A whole second sorts before the milliseconds after it, as it should.
    whole = _version("2.0.0", "2026-11-29T10:00:00Z", "2026-11-29T14:00:05Z")
    later = _version("2.1.0", "2026-11-29T10:00:00Z", "2026-11-29T14:00:05.120Z")
    assert [f.data["version"] for f in wave_facts(_status(later, whole))] == ["2.0.0", "2.1.0"]


def test_a_stage_reached_in_the_same_pass_by_two_versions_gives_two_positions() -> None:
    at = "2026-11-29T11:00:00Z"
    a = _version("1.1.0", "2026-11-29T10:00:00Z", at)
    b = _version("3", "2026-11-29T10:00:00Z", at, image="gallery/img")
    facts = wave_facts(_status(a, b))
    assert len({f.position for f in facts}) == 2
    assert after(facts, facts[0].position) == facts[1:]


class _Receiver:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.got: list[Request] = []

    def __call__(self, url: str, request: Request) -> bool:
        if self.up:
            self.got.append(request)
        return self.up

    def versions(self) -> list[tuple[str, str]]:
        bodies = [json.loads(r.body)["data"] for r in self.got]
        return [(b["version"], b["stage"]) for b in bodies]


WAVE = "rollout"


def _notifier(receiver: _Receiver, records: dict[str, str]) -> Notifier:
    def write(namespace: str, name: str, value: str) -> None:
        records[f"{namespace}/{name}"] = value

    return Notifier([Sink("http://hook.test/x", b"k")], write, lambda ref, m: None, send=receiver)


def _obj(records: dict[str, str]) -> dict[str, Any]:
    # Cluster-scoped: no namespace; its ledger key is ("", name).
    recorded = records.get(f"/{WAVE}")
    annotations = {ledger.ANNOTATION: recorded} if recorded else {}
    return {"metadata": {"name": WAVE, "uid": "wave-uid", "annotations": annotations}}


def _deliver(notifier: Notifier) -> None:
    worker = notifier.workers[0]
    while len(worker.queue):
        assert worker.step(0) == 0


T1, T2, T3, T4 = (f"2026-11-29T1{h}:00:00Z" for h in range(4))


def test_a_version_that_moves_after_a_newer_one_was_told_is_still_told() -> None:
    # Two images in one wave, each in its own stage; the newer-admitted one advances first.
    records: dict[str, str] = {}
    receiver = _Receiver()
    notifier = _notifier(receiver, records)
    a0, b0 = _version("1.0.0", T1), _version("5", T2, image="gallery/img")
    notifier.offer_wave(_obj(records), _status(a0, b0))  # first sight: nothing to tell yet
    notifier.offer_wave(_obj(records), _status(a0, _version("5", T2, T3, image="gallery/img")))
    _deliver(notifier)
    notifier.ledger.flush()
    notifier.offer_wave(
        _obj(records),
        _status(_version("1.0.0", T1, T4), _version("5", T2, T3, image="gallery/img")),
    )
    _deliver(notifier)
    assert receiver.versions() == [("5", "staging"), ("1.0.0", "staging")]


def test_first_sight_of_a_wave_takes_its_past_as_told_but_not_what_follows() -> None:
    records: dict[str, str] = {}
    receiver = _Receiver()
    notifier = _notifier(receiver, records)
    # Met with history: 1.1.0 is in production already, 1.0.0 (admitted earlier) in staging.
    old = _version("1.0.0", T1, T2)
    new = _version("1.1.0", T2, T3, T3)
    notifier.offer_wave(_obj(records), _status(old, new))
    assert len(notifier.workers[0].queue) == 0
    assert notifier.ledger.flush()
    (cursor,) = ledger.parse(records[f"/{WAVE}"]).values()
    assert cursor == wave_facts(_status(old, new))[-1].position
    # The older version moves on after the baseline: that is news.
    notifier.offer_wave(_obj(records), _status(_version("1.0.0", T1, T2, T4), new))
    _deliver(notifier)
    assert receiver.versions() == [("1.0.0", "production")]


def test_a_stage_not_acknowledged_before_a_crash_is_sent_after_restart_once() -> None:
    records: dict[str, str] = {}
    receiver = _Receiver(up=False)
    first = _notifier(receiver, records)
    first.offer_wave(_obj(records), _status(_version("1.1.0", T1)))
    first.ledger.flush()
    advanced = _status(_version("1.1.0", T1, T2))
    first.offer_wave(_obj(records), advanced)
    assert first.workers[0].step(0) > 0  # the sink is down
    first.ledger.flush()
    # The process dies; only the wave's status and its annotation survive.
    receiver.up = True
    second = _notifier(receiver, records)
    second.offer_wave(_obj(records), advanced)
    _deliver(second)
    assert receiver.versions() == [("1.1.0", "staging")]
    second.ledger.flush()
    third = _notifier(receiver, records)
    third.offer_wave(_obj(records), advanced)
    assert len(third.workers[0].queue) == 0
    # Unchanged statuses offered again queue nothing either.
    for _ in range(3):
        second.offer_wave(_obj(records), advanced)
    assert len(second.workers[0].queue) == 0


def test_a_wave_and_a_scale_set_of_the_same_name_keep_separate_cursors() -> None:
    records: dict[str, str] = {}
    notifier = _notifier(_Receiver(), records)
    notifier.offer_wave(_obj(records), _status(_version("1.1.0", T1, T2)))
    notifier.offer({"metadata": {"namespace": "team", "name": WAVE, "uid": "u"}}, ScaleSetStatus())
    notifier.ledger.flush()
    assert set(records) == {f"/{WAVE}", f"team/{WAVE}"}


def test_the_request_names_the_wave() -> None:
    (fact,) = wave_facts(_status(_version("1.1.0", T1, T2)))
    ref = WaveRef(WAVE, "wave-uid")
    request = request_for(ref, fact, b"key")
    assert verify(b"key", request.body, request.headers[SIGNATURE_HEADER])
    event = from_http_event(HTTPMessage(request.headers, request.body))
    assert event.get_type() == "dev.scaleset.upgrade.wave.stageadvanced"
    assert event.get_source() == "/apis/scaleset.dev/v1alpha1/upgradewaves/rollout"
    assert event.get_subject() == WAVE
    assert event.get_id() == f"wave-uid/{fact.position.key()}/{fact.kind.value}"
    assert event.get_time() is not None
    data = event.get_data()
    assert isinstance(data, dict)
    assert data["wave"] == {"name": WAVE}
    assert (data["version"], data["stage"], data["fromStage"]) == ("1.1.0", "staging", "test")


class _Cluster:
    """The few calls a wave pass makes, on one wave with no scale sets."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] = {
            "metadata": {
                "name": WAVE,
                "uid": "wave-uid",
                "resourceVersion": "1",
                "annotations": {ledger.ANNOTATION: '{"x":"#1.0"}'},
            },
            "spec": {"stages": [{"name": "test", "selector": {}}]},
        }
        self.writes = 0

    def get_wave(self, name: str) -> dict[str, Any]:
        return self.obj

    def list_waves(self) -> list[dict[str, Any]]:
        return [self.obj]

    def list_scalesets(self, namespaces: object) -> list[dict[str, Any]]:
        return []

    def list_catalog(self) -> list[dict[str, Any]]:
        return []

    def replace_wave_status(self, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        meta = {**obj["metadata"], "resourceVersion": str(1 + self.writes)}
        self.obj = {**obj, "metadata": meta, "status": status}
        return self.obj


class _Offers:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, Any], UpgradeWaveStatus]] = []

    def offer_wave(self, obj: dict[str, Any], status: UpgradeWaveStatus) -> None:
        self.got.append((obj, status))


def test_the_wave_pass_offers_what_it_persisted_and_what_was_unchanged() -> None:
    cluster, offers = _Cluster(), _Offers()
    reconcile_wave(cast(KubeClient, cluster), WAVE, [], offers)
    assert cluster.writes == 1
    (obj, status), *_ = offers.got
    assert obj["metadata"]["resourceVersion"] == "2"  # the object as written
    assert obj["metadata"]["annotations"][ledger.ANNOTATION] == '{"x":"#1.0"}'
    assert status.stages[0].name == "test"
    reconcile_wave(cast(KubeClient, cluster), WAVE, [], offers)
    assert cluster.writes == 1
    assert len(offers.got) == 2
    assert offers.got[1][1] == status
