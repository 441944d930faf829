"""The dashboard's pure parts: the colour of each instance from a status and its pods, the
run timeline built from successive statuses, the documents and the actions' annotations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from scaleset_operator.dashboard.actions import ActionFailedError, prepare
from scaleset_operator.dashboard.documents import detail, parse, summary
from scaleset_operator.dashboard.prometheus import PANELS, expression, legend
from scaleset_operator.dashboard.tiles import NO_ZONE, TileState, tile_of, tiles_by_zone
from scaleset_operator.dashboard.timeline import advance
from scaleset_operator.k8s.pods import to_instance
from scaleset_operator.models.imageversion import CatalogEntry, ImageVersionSpec
from scaleset_operator.models.instance import (
    ANNOTATION_CANCEL,
    ANNOTATION_CLEAR_QUARANTINE,
    ANNOTATION_START,
    ContainerState,
    Instance,
    Request,
    UpgradeMark,
    UpgradePhase,
)
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import (
    Batch,
    ResolvedImage,
    RollingRunningStatus,
    RollingUpgradeStatus,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def _image(version: str, tag: str | None = None) -> ResolvedImage:
    return ResolvedImage(
        publisher="contoso",
        offer="os",
        sku="stable",
        version=version,
        container_image=f"example.test/os:{tag or version}",
    )


OLD, NEW = _image("1.0.0"), _image("1.1.0")


def _instance(iid: int, image: ResolvedImage, *, ready: bool = True, **extra: Any) -> Instance:
    return Instance(
        instance_id=iid,
        name=f"web-{iid}",
        os_image=image.container_image,
        image_urn=image.urn,
        ready=ready,
        zone=f"zone-{iid % 3 + 1}",
        **extra,
    )


def _run(**fields: Any) -> UpgradeRun:
    base: dict[str, Any] = {
        "started_by": StartedBy.PLATFORM,
        "start_time": "2026-03-01T11:59:00Z",
        "target": NEW,
        "previous": OLD,
    }
    return UpgradeRun(**(base | fields))


def _status(run: UpgradeRun | None, model: ResolvedImage = NEW, **fields: Any) -> ScaleSetStatus:
    return ScaleSetStatus(model_image=model, upgrade_run=run, **fields)


# --- tiles ----------------------------------------------------------------------------------


def test_each_instance_gets_the_state_of_its_part_in_the_running_upgrade() -> None:
    run = _run(
        batch=Batch(number=3, instance_ids=[4, 5], started_at="2026-03-01T11:59:40Z"),
        batches_done=2,
        succeeded=[0, 1, 2],
        failed=[3],
        rolling_back=[3],
        failure_reasons={"3": "ImagePullBackOff"},
    )
    status = _status(run)
    instances = [
        _instance(0, NEW),
        _instance(1, NEW),
        _instance(2, NEW),
        _instance(3, NEW, ready=False),
        _instance(4, NEW, ready=False),
        _instance(5, OLD),
        _instance(6, OLD),
        _instance(7, OLD, protected=True),
    ]
    states = {i.instance_id: tile_of(i, status).state for i in instances}
    assert states == {
        0: TileState.TARGET,
        1: TileState.TARGET,
        2: TileState.TARGET,
        3: TileState.FAILED,
        4: TileState.IN_FLIGHT,
        5: TileState.IN_FLIGHT,  # patched in the next moment: the batch says so already
        6: TileState.PENDING,
        7: TileState.PROTECTED,
    }
    assert tile_of(instances[3], status).detail == "failed, rolling back: ImagePullBackOff"
    assert tile_of(instances[4], status).detail == "batch 3"


def test_an_instance_on_the_target_but_not_ready_yet_is_in_flight() -> None:
    status = _status(_run())
    waiting = ContainerState(name="os", image=NEW.container_image, waiting_reason="Pulling")
    tile = tile_of(_instance(1, NEW, ready=False, os_status=waiting), status)
    assert tile.state is TileState.IN_FLIGHT
    assert tile.detail == "starting on 1.1.0 (Pulling)"


def test_a_pod_patched_by_the_run_is_in_flight_until_the_run_says_it_succeeded() -> None:
    # The page may hear of the pod's patch (and its Ready) before the status that puts it in
    # the next batch: it must not show on target, then in flight again when that status comes.
    run = _run(batches_done=1, succeeded=[0], last_batch_end="2026-03-01T11:59:30Z")
    mark = UpgradeMark(
        run=run.start_time,
        phase=UpgradePhase.UPGRADING,
        previous_image=OLD.container_image,
        previous_version="1.0.0",
        target_version="1.1.0",
        started_at="2026-03-01T11:59:31Z",
    )
    patched = _instance(1, NEW, upgrade=mark)
    before = tile_of(patched, _status(run))
    assert (before.state, before.detail) == (TileState.IN_FLIGHT, "upgrading to 1.1.0")
    in_batch = run.model_copy(
        update={"batch": Batch(number=2, instance_ids=[1], started_at="2026-03-01T11:59:31Z")}
    )
    assert tile_of(patched, _status(in_batch)).state is TileState.IN_FLIGHT
    done = run.model_copy(update={"batches_done": 2, "succeeded": [0, 1]})
    assert tile_of(patched, _status(done)).state is TileState.TARGET
    # No pause: the page's status still has the batch before in flight.
    previous = run.model_copy(
        update={
            "batches_done": 0,
            "succeeded": [],
            "last_batch_end": None,
            "batch": Batch(number=1, instance_ids=[0], started_at="2026-03-01T11:59:20Z"),
        }
    )
    assert tile_of(patched, _status(previous)).state is TileState.IN_FLIGHT
    # A mark left by an earlier run, or a run that has ended, says nothing of the present.
    earlier = mark.model_copy(update={"run": "2026-02-01T00:00:00Z"})
    assert tile_of(_instance(1, NEW, upgrade=earlier), _status(run)).state is TileState.TARGET
    ended = run.model_copy(update={"code": RunningStatusCode.COMPLETED})
    assert tile_of(patched, _status(ended)).state is TileState.TARGET


def test_a_surge_instance_is_on_target_once_ready_and_after_it_took_over() -> None:
    # Surge instances get new ids, never listed in the run's batches or its successes.
    started = "2026-03-01T11:59:40Z"
    run = _run(
        batch=Batch(number=1, instance_ids=[0], surge_ids=[10], started_at=started),
    )
    mark = UpgradeMark(
        run=run.start_time,
        phase=UpgradePhase.UPGRADING,
        previous_image=OLD.container_image,
        target_version="1.1.0",
        started_at=started,
    )
    surge = _instance(10, NEW, upgrade=mark, surge_for=0)
    assert tile_of(surge, _status(run)).state is TileState.TARGET
    closed = run.model_copy(
        update={
            "batch": None,
            "batches_done": 1,
            "succeeded": [0],
            "last_batch_end": "2026-03-01T11:59:50Z",
        }
    )
    promoted = surge.model_copy(update={"surge_for": None})
    assert tile_of(promoted, _status(closed)).state is TileState.TARGET


def test_after_a_faulted_run_rolled_back_ones_stay_marked_and_others_are_on_the_model() -> None:
    run = _run(
        code=RunningStatusCode.FAULTED,
        end_time="2026-03-01T12:00:00Z",
        failed=[0],
        rolled_back=[0],
        failure_reasons={"0": "ImagePullBackOff"},
    )
    # The model image went back to the previous version when the run faulted.
    status = _status(run, model=OLD)
    rolled = tile_of(_instance(0, OLD), status)
    untouched = tile_of(_instance(1, OLD), status)
    assert rolled.state is TileState.ROLLED_BACK
    assert rolled.detail == "rolled back to 1.0.0: ImagePullBackOff"
    assert untouched.state is TileState.TARGET


def test_a_rollback_that_did_not_recover_is_a_failure() -> None:
    run = _run(code=RunningStatusCode.FAULTED, failed=[2], rollback_failed=[2])
    assert tile_of(_instance(2, OLD, ready=False), _status(run, OLD)).state is TileState.FAILED


def test_without_any_run_instances_off_the_model_are_pending() -> None:
    status = _status(None, model=NEW)
    assert tile_of(_instance(0, NEW), status).state is TileState.TARGET
    assert tile_of(_instance(1, OLD), status).state is TileState.PENDING


def test_an_instance_rolling_back_by_its_own_mark_is_failed_until_ready() -> None:
    mark = UpgradeMark(
        run="r",
        phase=UpgradePhase.ROLLING_BACK,
        previous_image=NEW.container_image,
        target_version="1.0.0",
        started_at="2026-03-01T11:59:50Z",
    )
    status = _status(None, model=NEW)
    assert tile_of(_instance(3, OLD, ready=False, upgrade=mark), status).state is TileState.FAILED


def test_tiles_are_grouped_by_zone_in_name_order_with_ids_in_order() -> None:
    instances = [_instance(i, NEW) for i in (5, 0, 4, 1)]
    instances.append(_instance(9, NEW).model_copy(update={"zone": None}))
    zones = tiles_by_zone(instances, _status(None))
    assert list(zones) == [NO_ZONE, "zone-1", "zone-2", "zone-3"]
    assert [t.instance_id for t in zones["zone-2"]] == [1, 4]


def test_tiles_read_pods_as_the_api_returns_them() -> None:
    spec = ScaleSetSpec.model_validate(
        {
            "location": "westeurope",
            "imageReference": {"publisher": "contoso", "offer": "os", "sku": "stable"},
            "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}},
        }
    )
    pod = {
        "metadata": {
            "name": "web-0",
            "labels": {"scaleset.dev/scaleset": "web", "scaleset.dev/instance-id": "0"},
            "annotations": {"scaleset.dev/image": NEW.urn},
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "os", "image": NEW.container_image}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    inst = to_instance(pod, spec, {"n1": "zone-2"}, None)
    assert inst is not None
    tile = tile_of(inst, _status(None))
    assert (tile.zone, tile.state, tile.version) == ("zone-2", TileState.TARGET, "1.1.0")


# --- timeline -------------------------------------------------------------------------------


def _batch(number: int, ids: list[int], at: str) -> Batch:
    return Batch(number=number, instance_ids=ids, started_at=at)


def test_the_timeline_records_batches_pauses_rollbacks_and_the_end() -> None:
    steps = [
        _run(batch=_batch(1, [0, 1], "2026-03-01T12:00:00Z")),
        _run(batches_done=1, last_batch_end="2026-03-01T12:00:02Z", succeeded=[0, 1]),
        _run(
            batches_done=1,
            last_batch_end="2026-03-01T12:00:02Z",
            batch=_batch(2, [2, 3], "2026-03-01T12:00:05Z"),
        ),
        _run(batches_done=1, batch=_batch(2, [2, 3], "2026-03-01T12:00:05Z"), failed=[3]),
        _run(
            batches_done=2,
            last_batch_end="2026-03-01T12:00:09Z",
            failed=[3],
            rolled_back=[3],
            code=RunningStatusCode.FAULTED,
            end_time="2026-03-01T12:00:10Z",
        ),
    ]
    tl = None
    for second, run in enumerate(steps):
        tl = advance(tl, _status(run), f"2026-03-01T12:00:1{second}Z")
    assert tl is not None
    doc = tl.wire()
    assert [(b["number"], b["start"], b["end"], b["failed"]) for b in doc["batches"]] == [
        (1, "2026-03-01T12:00:00Z", "2026-03-01T12:00:02Z", []),
        (2, "2026-03-01T12:00:05Z", "2026-03-01T12:00:09Z", [3]),
    ]
    assert doc["rollbacks"] == [{"at": "2026-03-01T12:00:14Z", "ids": [3]}]
    assert (doc["code"], doc["end"], doc["missedBatches"]) == ("Faulted", "2026-03-01T12:00:10Z", 0)


def test_a_new_run_starts_a_new_timeline_and_one_seen_late_counts_missed_batches() -> None:
    first = advance(None, _status(_run(batch=_batch(1, [0], "2026-03-01T12:00:00Z"))), "t1")
    late = _run(
        start_time="2026-03-01T13:00:00Z",
        batches_done=3,
        batch=_batch(4, [7], "2026-03-01T13:00:09Z"),
    )
    second = advance(first, _status(late), "t2")
    assert second is not None
    assert second.run_start == "2026-03-01T13:00:00Z"
    assert second.missed_batches == 3
    assert [b.number for b in second.batches] == [4]
    assert advance(second, _status(None), "t3") is second


# --- documents ------------------------------------------------------------------------------


def _obj(status: ScaleSetStatus) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "shop", "name": "web"},
        "spec": {
            "location": "westeurope",
            "imageReference": {"publisher": "contoso", "offer": "os", "sku": "stable"},
            "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}},
        },
        "status": status.wire(),
    }


def _entry(version: str, **spec: Any) -> CatalogEntry:
    base = {"publisher": "contoso", "offer": "os", "sku": "stable", "version": version}
    return CatalogEntry(
        name=f"os-{version}",
        spec=ImageVersionSpec.model_validate(base | {"image": f"example.test/os:{version}"} | spec),
    )


def test_the_detail_document_shows_quarantine_progress_and_the_latest_five_runs() -> None:
    ru = RollingUpgradeStatus(
        running_status=RollingRunningStatus(code=RunningStatusCode.FAULTED, start_time="s")
    )
    status = _status(
        _run(code=RunningStatusCode.FAULTED, failed=[0], rolled_back=[0]),
        model=OLD,
        current_image_version="1.0.0",
        faulted_versions=["2.0.0"],
        rolling_upgrade=ru,
    )
    catalog = [
        _entry("1.0.0"),
        _entry("2.0.0"),
        _entry("1.1.0", exclude_from_latest=True),
        _entry("9.9.9", sku="other"),
    ]
    doc = detail(parse(_obj(status)), [_instance(0, OLD)], catalog, None)
    assert [(c["version"], c["quarantined"], c["current"]) for c in doc["catalog"]] == [
        ("2.0.0", True, False),
        ("1.1.0", False, False),
        ("1.0.0", False, True),
    ]
    assert doc["counts"]["rolled-back"] == 1
    assert doc["rollingUpgrade"]["code"] == "Faulted"
    json.dumps(doc)  # the page gets it as JSON


def test_the_overview_carries_the_next_eligible_time() -> None:
    held = ScaleSetStatus.model_validate(
        {"outOfDate": {"count": 2, "nextEligibleTime": "2026-11-29T10:00:15Z", "holds": []}}
    )
    assert summary(parse(_obj(held)))["nextEligible"] == "2026-11-29T10:00:15Z"
    assert summary(parse(_obj(ScaleSetStatus())))["nextEligible"] is None


def test_an_unreadable_scale_set_is_listed_with_its_error() -> None:
    row = summary(parse({"metadata": {"namespace": "a", "name": "b"}, "spec": {"capacity": -1}}))
    assert row["key"] == "a/b"
    assert row["error"]


# --- actions ---------------------------------------------------------------------------------


def _running() -> ScaleSetStatus:
    return _status(
        _run(),
        rolling_upgrade=RollingUpgradeStatus(
            running_status=RollingRunningStatus(code=RunningStatusCode.ROLLING_FORWARD)
        ),
    )


def test_actions_write_the_plugins_request_annotation() -> None:
    start = prepare("start", [], _status(None), NOW)
    assert start.annotation == ANNOTATION_START
    value = json.loads(start.value)
    assert Request.model_validate(value).action == "start"
    assert value == {
        "id": start.request.id,
        "action": "start",
        "at": "2026-03-01T12:00:00Z",
        "instanceIds": [],
        "versions": [],
    }
    assert prepare("cancel", [], _running(), NOW).annotation == ANNOTATION_CANCEL
    clear = prepare("clear-quarantine", ["2.0.0"], _status(None), NOW)
    assert clear.annotation == ANNOTATION_CLEAR_QUARANTINE
    assert json.loads(clear.value)["versions"] == ["2.0.0"]


@pytest.mark.parametrize(
    ("action", "versions", "running", "status"),
    [
        ("start", [], True, 409),
        ("cancel", [], False, 409),
        ("clear-quarantine", [], False, 400),
        ("clear-quarantine", ["x; rm"], False, 400),
        ("delete-everything", [], False, 404),
    ],
)
def test_actions_refused_before_writing(
    action: str, versions: list[str], running: bool, status: int
) -> None:
    with pytest.raises(ActionFailedError) as refused:
        prepare(action, versions, _running() if running else _status(None), NOW)
    assert refused.value.status == status


# --- graphs and the page ----------------------------------------------------------------------


def test_graph_queries_are_the_grafana_dashboards_own() -> None:
    path = REPO / "charts/scaleset-operator/dashboards/scaleset-upgrades.json"
    grafana = json.loads(path.read_text())
    exprs = {
        (t["expr"], t.get("legendFormat", ""))
        for p in grafana["panels"]
        for t in p.get("targets", [])
    }
    for panel in PANELS:
        for target in panel.targets:
            assert target in exprs, target


def test_graph_queries_match_exactly_one_scale_set() -> None:
    expr = expression(PANELS[0].targets[0][0], "shop.eu", "web")
    assert 'namespace=~"shop\\\\.eu"' in expr
    assert 'scaleset=~"web"' in expr
    assert legend("{{state}} of {{ version }}", {"state": "failed", "version": "1"}) == (
        "failed of 1"
    )


@pytest.mark.parametrize("name", ["index.html", "dashboard.js", "charts.js", "dashboard.css"])
def test_the_page_ships_inside_the_package(name: str) -> None:
    static = resources.files("scaleset_operator.dashboard").joinpath("static", name)
    text = static.read_text()
    # Offline: nothing loads from another origin.
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text
