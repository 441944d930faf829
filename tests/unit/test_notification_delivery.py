"""Webhook notifications without a cluster or a network: statuses in, facts, requests,
queues and cursors out. Each step of a run is a status, as the reconcile pass persists it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from scaleset_operator.cli.operator.main import main
from scaleset_operator.models.status import (
    ApiError,
    ErrorCode,
    HistoryEntry,
    HistoryRunningStatus,
    ResolvedImage,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    TargetImageReference,
    UpgradeRun,
)
from scaleset_operator.notifications import ledger
from scaleset_operator.notifications.delivery import (
    Alarm,
    Backoff,
    BoundedQueue,
    Outgoing,
    Sink,
    SinkWorker,
)
from scaleset_operator.notifications.facts import Fact, Kind, Phase, Position, after, facts_of
from scaleset_operator.notifications.notifier import Notifier
from scaleset_operator.notifications.sinks import KEY_ENV, SinkConfigError, sinks_from
from scaleset_operator.notifications.wire import (
    SIGNATURE_HEADER,
    Request,
    ScaleSetRef,
    request_for,
    signature,
    verify,
)

START = "2026-11-29T10:00:00Z"
REF = ScaleSetRef("team", "web", "uid-1")


def _image(version: str) -> ResolvedImage:
    return ResolvedImage(
        publisher="pub", offer="os", sku="stable", version=version, container_image=f"os:{version}"
    )


def _run(**update: object) -> UpgradeRun:
    run = UpgradeRun(
        started_by=StartedBy.PLATFORM,
        start_time=START,
        target=_image("2.0.0"),
        previous=_image("1.0.0"),
    )
    return run.model_copy(update=update)


def _status(run: UpgradeRun | None, **update: object) -> ScaleSetStatus:
    return ScaleSetStatus(upgrade_run=run).model_copy(update=update)


FAULT = ApiError(code=ErrorCode.UPGRADED_UNHEALTHY.value, message="too many failed")

# A failed upgrade with rollback, pass by pass, and the facts each pass adds.
STEPS: list[tuple[str, ScaleSetStatus, list[Kind]]] = [
    ("before any run", _status(None), []),
    ("run starts", _status(_run()), [Kind.RUN_STARTED]),
    ("first batch ok", _status(_run(succeeded=[0, 1])), []),
    (
        "instance 2 fails and goes back",
        _status(_run(succeeded=[0, 1], failed=[2], rolling_back=[2])),
        [],
    ),
    (
        "instance 2 rolled back",
        _status(
            _run(
                succeeded=[0, 1],
                failed=[2],
                rolled_back=[2],
                failure_reasons={"2": "ImagePullBackOff"},
            )
        ),
        [Kind.INSTANCE_ROLLED_BACK],
    ),
    (
        "run faults, version quarantined",
        _status(
            _run(
                succeeded=[0, 1],
                failed=[2],
                rolled_back=[2],
                failure_reasons={"2": "ImagePullBackOff"},
                code=RunningStatusCode.FAULTED,
                end_time="2026-11-29T10:05:00Z",
                error=FAULT,
            ),
            faulted_versions=["2.0.0"],
        ),
        [Kind.RUN_FAULTED, Kind.VERSION_QUARANTINED],
    ),
]


def test_each_pass_adds_exactly_its_transitions() -> None:
    cursor: Position | None = None
    for what, status, expected in STEPS:
        new = after(facts_of(status), cursor)
        assert [f.kind for f in new] == expected, what
        if new:
            cursor = new[-1].position


def test_a_user_rollback_reports_the_version_it_holds_as_it_starts() -> None:
    rollback = _run(
        started_by=StartedBy.USER,
        target=_image("1.0.0"),
        previous=_image("2.0.0"),
        rollback_of=_image("2.0.0"),
    )
    started = after(facts_of(_status(rollback, faulted_versions=["2.0.0"])), None)
    assert [f.kind for f in started] == [Kind.RUN_STARTED, Kind.VERSION_QUARANTINED]
    assert started[1].data["version"] == "2.0.0"
    assert started[1].data["reason"] == "RolledBackByUser"
    done = rollback.model_copy(
        update={"code": RunningStatusCode.COMPLETED, "end_time": "2026-11-29T10:09:00Z"}
    )
    ended = after(facts_of(_status(done, faulted_versions=["2.0.0"])), started[-1].position)
    assert [f.kind for f in ended] == [Kind.RUN_COMPLETED], "the rollback's end still follows"


def test_faulted_carries_cause_and_instances() -> None:
    faulted = next(f for f in facts_of(STEPS[-1][1]) if f.kind is Kind.RUN_FAULTED)
    assert faulted.critical
    assert faulted.data["cause"] == ErrorCode.UPGRADED_UNHEALTHY.value
    assert faulted.data["instances"] == [
        {"id": 2, "cause": "ImagePullBackOff", "outcome": "RolledBack"}
    ]
    assert faulted.time == "2026-11-29T10:05:00Z"
    rolled = next(f for f in facts_of(STEPS[-1][1]) if f.kind is Kind.INSTANCE_ROLLED_BACK)
    assert rolled.data["instanceId"] == 2
    assert rolled.data["toVersion"] == "1.0.0"
    assert not rolled.critical


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (RunningStatusCode.COMPLETED, Kind.RUN_COMPLETED),
        (RunningStatusCode.CANCELLED, Kind.RUN_CANCELLED),
    ],
)
def test_other_endings(code: RunningStatusCode, kind: Kind) -> None:
    status = _status(_run(code=code, end_time="2026-11-29T10:05:00Z"))
    assert [f.kind for f in facts_of(status)] == [Kind.RUN_STARTED, kind]


def test_a_refused_start_quarantines_nothing() -> None:
    refused = ApiError(code=ErrorCode.UNHEALTHY_BEFORE.value, message="unhealthy")
    run = _run(code=RunningStatusCode.FAULTED, end_time=START, error=refused)
    kinds = [f.kind for f in facts_of(_status(run, faulted_versions=["2.0.0"]))]
    assert kinds == [Kind.RUN_STARTED, Kind.RUN_FAULTED]


def test_an_older_run_lives_on_in_history() -> None:
    old = HistoryEntry(
        running_status=HistoryRunningStatus(
            code=RunningStatusCode.FAULTED,
            start_time="2026-11-29T09:00:00Z",
            end_time="2026-11-29T09:03:00Z",
        ),
        error=FAULT,
        started_by=StartedBy.PLATFORM,
        target_image_reference=TargetImageReference(version="1.5.0"),
    )
    status = _status(_run(), os_upgrade_history=[old], faulted_versions=["1.5.0"])
    facts = facts_of(status)
    assert [(f.position.run, f.kind) for f in facts] == [
        ("2026-11-29T09:00:00Z", Kind.RUN_STARTED),
        ("2026-11-29T09:00:00Z", Kind.RUN_FAULTED),
        ("2026-11-29T09:00:00Z", Kind.VERSION_QUARANTINED),
        (START, Kind.RUN_STARTED),
    ]
    assert facts[1].data["error"]["code"] == ErrorCode.UPGRADED_UNHEALTHY.value


def test_positions_round_trip_and_order() -> None:
    position = Position(START, Phase.ROLLED_BACK, 3)
    assert Position.parse(position.key()) == position
    assert Position.parse("garbage") is None
    assert Position(START) < position < Position(START, Phase.ENDED)
    assert Position("") < Position(START)
    recorded = {"a": position, "b": Position("")}
    assert ledger.parse(ledger.render(recorded)) == recorded
    assert ledger.parse("{not json") == {}
    assert ledger.parse('["list"]') == {}


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # RFC 4231 test case 2.
    body = b"what do ya want for nothing?"
    expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert signature(b"Jefe", body) == f"sha256={expected}"
    assert verify(b"Jefe", body, f"sha256={expected}")
    assert not verify(b"other", body, f"sha256={expected}")


def test_request_is_a_signed_structured_cloudevent() -> None:
    fact = next(f for f in facts_of(STEPS[-1][1]) if f.kind is Kind.RUN_FAULTED)
    request = request_for(REF, fact, b"key")
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["content-type"].startswith("application/cloudevents+json")
    assert verify(b"key", request.body, request.headers[SIGNATURE_HEADER])
    event = from_http_event(HTTPMessage(request.headers, request.body))
    assert event.get_type() == "dev.scaleset.upgrade.faulted"
    assert event.get_id() == f"uid-1/{fact.position.key()}/{fact.kind.value}"
    assert event.get_source() == "/apis/scaleset.dev/v1alpha1/namespaces/team/scalesets/web"
    data = event.get_data()
    assert isinstance(data, dict)
    assert data["scaleSet"] == {"namespace": "team", "name": "web"}
    assert SIGNATURE_HEADER not in request_for(REF, fact, None).headers


def _fact(kind: Kind, n: int) -> Outgoing:
    return Outgoing(REF, Fact(kind, Position(START, Phase.ROLLED_BACK, n), None))


def test_full_queue_drops_the_oldest_non_critical_never_a_fault() -> None:
    queue = BoundedQueue(3)
    fault = _fact(Kind.RUN_FAULTED, 0)
    assert queue.put(fault) == 0
    assert queue.put(_fact(Kind.INSTANCE_ROLLED_BACK, 1)) == 0
    assert queue.put(_fact(Kind.INSTANCE_ROLLED_BACK, 2)) == 0
    assert queue.put(_fact(Kind.INSTANCE_ROLLED_BACK, 3)) == 1
    assert [i.fact.position.index for i in _drain(queue)] == [0, 2, 3]

    only_faults = BoundedQueue(1)
    only_faults.put(fault)
    assert only_faults.put(_fact(Kind.INSTANCE_ROLLED_BACK, 1)) == 1
    # A second fault is kept over the bound rather than lost.
    assert only_faults.put(_fact(Kind.RUN_FAULTED, 2)) == 0
    assert len(only_faults) == 2


def _drain(queue: BoundedQueue) -> list[Outgoing]:
    found = []
    while (item := queue.head(0)) is not None:
        found.append(item)
        queue.remove(item)
    return found


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(first=1, cap=10)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


class _Metrics:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {"sent": 0, "failed": 0, "dropped": 0}
        self.length = 0

    def sent(self, sink: str) -> None:
        self.counts["sent"] += 1

    def failed(self, sink: str) -> None:
        self.counts["failed"] += 1

    def dropped(self, sink: str, count: int) -> None:
        self.counts["dropped"] += count

    def queued(self, sink: str, length: int) -> None:
        self.length = length


class _Receiver:
    """A sink that is down until `up` is set; remembers what it accepted."""

    def __init__(self) -> None:
        self.up = False
        self.got: list[Request] = []

    def __call__(self, url: str, request: Request) -> bool:
        if self.up:
            self.got.append(request)
        return self.up


def test_a_failing_sink_backs_off_and_warns_once_per_interval() -> None:
    now = [0.0]
    warnings: list[str] = []
    receiver, metrics = _Receiver(), _Metrics()
    delivered: list[Position] = []
    queue = BoundedQueue(10)
    worker = SinkWorker(
        Sink("http://127.0.0.1:9/hook"),
        queue,
        lambda sink, ref, position: delivered.append(position),
        lambda ref, message: warnings.append(message),
        metrics,
        backoff=Backoff(first=1, cap=4),
        alarm=Alarm(after=3, every=60),
        send=receiver,
        clock=lambda: now[0],
    )
    item = _fact(Kind.RUN_FAULTED, 0)
    queue.put(item)
    delays = [worker.step(0) for _ in range(5)]
    assert delays == [1, 2, 4, 4, 4]
    assert len(warnings) == 1
    now[0] = 61
    worker.step(0)
    assert len(warnings) == 2
    assert metrics.counts["failed"] == 6
    receiver.up = True
    assert worker.step(0) == 0
    assert delivered == [item.fact.position]
    assert metrics.counts["sent"] == 1
    assert len(queue) == 0


def _notifier(receiver: _Receiver, records: dict[str, str]) -> Notifier:
    def write(namespace: str, name: str, value: str) -> None:
        records[f"{namespace}/{name}"] = value

    return Notifier([Sink("http://hook.test/x", b"k")], write, lambda ref, m: None, send=receiver)


def _obj(records: dict[str, str]) -> dict[str, object]:
    annotations = {ledger.ANNOTATION: records["team/web"]} if "team/web" in records else {}
    return {
        "metadata": {
            "namespace": "team",
            "name": "web",
            "uid": "uid-1",
            **{"annotations": annotations},
        }
    }


def test_first_sight_records_a_baseline_instead_of_replaying_history() -> None:
    records: dict[str, str] = {}
    notifier = _notifier(_Receiver(), records)
    notifier.offer(_obj(records), STEPS[-1][1])
    assert len(notifier.workers[0].queue) == 0
    assert notifier.ledger.flush()
    (cursor,) = ledger.parse(records["team/web"]).values()
    assert cursor == facts_of(STEPS[-1][1])[-1].position


def test_a_fault_not_delivered_before_a_crash_is_sent_after_restart() -> None:
    records: dict[str, str] = {}
    receiver = _Receiver()
    first = _notifier(receiver, records)
    first.offer(_obj(records), STEPS[0][1])
    first.ledger.flush()
    for _, status, _ in STEPS[1:]:
        first.offer(_obj(records), status)
    worker = first.workers[0]
    assert worker.step(0) > 0  # the sink is down: nothing acknowledged
    first.ledger.flush()
    # The process dies here; only the annotation and the status survive.
    receiver.up = True
    second = _notifier(receiver, records)
    second.offer(_obj(records), STEPS[-1][1])
    while len(second.workers[0].queue):
        assert second.workers[0].step(0) == 0
    kinds = [json.loads(r.body)["type"] for r in receiver.got]
    assert kinds == [
        Kind.RUN_STARTED,
        Kind.INSTANCE_ROLLED_BACK,
        Kind.RUN_FAULTED,
        Kind.VERSION_QUARANTINED,
    ]
    second.ledger.flush()
    (cursor,) = ledger.parse(records["team/web"]).values()
    assert cursor == Position(START, Phase.QUARANTINED)
    # A third process has nothing left to send.
    third = _notifier(receiver, records)
    third.offer(_obj(records), STEPS[-1][1])
    assert len(third.workers[0].queue) == 0


def test_a_pass_does_not_queue_what_is_already_queued() -> None:
    records: dict[str, str] = {}
    notifier = _notifier(_Receiver(), records)
    notifier.offer(_obj(records), STEPS[0][1])
    for _ in range(3):
        notifier.offer(_obj(records), STEPS[1][1])
    assert len(notifier.workers[0].queue) == 1


def test_sinks_from_flags(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.write_bytes(b"first-key\n")
    two.write_bytes(b"second-key")
    sinks = sinks_from(["http://a/", "https://b/"], [str(one), str(two)], env={})
    assert [s.key for s in sinks] == [b"first-key", b"second-key"]
    assert "first-key" not in repr(sinks[0])
    shared = sinks_from(["http://a/", "http://b/"], [str(one)], env={})
    assert {s.key for s in shared} == {b"first-key"}
    from_env = sinks_from(["http://a/"], [], env={KEY_ENV: "env-key"})
    assert from_env[0].key == b"env-key"
    assert sinks_from(["http://a/"], [], env={})[0].key is None
    with pytest.raises(SinkConfigError, match="one per URL"):
        sinks_from(["http://a/", "http://b/", "http://c/"], [str(one), str(two)], env={})
    with pytest.raises(SinkConfigError, match="cannot read"):
        sinks_from(["http://a/"], [str(tmp_path / "missing")], env={})
    with pytest.raises(SinkConfigError, match="http"):
        sinks_from(["ftp://a/"], [], env={})
    assert Sink("https://user:pw@hooks.example:8443/p?token=t").label.startswith(
        "hooks.example:8443/"
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--notify-url", "ftp://hooks.test/"], "http(s) URL"),
        (
            [
                *("--notify-url", "http://a/", "--notify-url", "http://b/"),
                *("--notify-url", "http://c/"),
                *("--notify-secret-file", "x", "--notify-secret-file", "y"),
            ],
            "one per URL",
        ),
    ],
)
def test_operator_refuses_bad_notification_flags(flags: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["run", *flags])
    assert result.exit_code == 1
    assert message in result.output
