"""`status.osUpgradeHistory` and `status.rollingUpgrade` in Azure's shapes.

Every status a simulated upgrade passes through is wrapped the way the CLI's `-o json` wraps
it and validated against Azure's schemas (copied into tests/data/azure-schema/).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from scaleset_operator.models.status import (
    ApiError,
    ApiErrorBase,
    Batch,
    HistoryEntry,
    InnerError,
    ResolvedImage,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.history import (
    history_entry,
    record_history,
    rolling_upgrade_status,
)
from scaleset_operator.planner.observed import PlannerSettings
from tests.unit.simworld import LOCATION, Sim, image_of, spec_of, version_entry

SCHEMAS = Path(__file__).parent.parent / "data" / "azure-schema"
ENVELOPE_TYPE = "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def history_document(status: ScaleSetStatus, location: str = LOCATION) -> dict[str, Any]:
    return {
        "value": [
            {"properties": entry.wire(), "type": ENVELOPE_TYPE, "location": location}
            for entry in status.os_upgrade_history
        ]
    }


def latest_document(status: ScaleSetStatus, location: str = LOCATION) -> dict[str, Any]:
    assert status.rolling_upgrade is not None
    return {"properties": status.rolling_upgrade.wire(), "location": location}


def nulls(node: Any, path: str = "$") -> Iterator[str]:
    if node is None:
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from nulls(value, f"{path}.{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from nulls(value, f"{path}[{n}]")


def assert_azure_shaped(status: ScaleSetStatus) -> None:
    documents = [("history-envelope.schema.json", history_document(status))]
    if status.rolling_upgrade is not None:
        documents.append(("rolling-upgrade-status-info.schema.json", latest_document(status)))
    for schema, document in documents:
        errors = [e.message for e in validator(schema).iter_errors(document)]
        assert not errors, (schema, errors, document)
        assert not list(nulls(document)), document
    for entry in history_document(status)["value"]:
        running = entry["properties"]["runningStatus"]
        for key in ("startTime", "endTime"):
            if key in running:
                assert TIMESTAMP.match(running[key]), running
        if running["code"] == "RollingForward":
            assert "endTime" not in running
        else:
            assert running["endTime"] >= running["startTime"]


# --- statuses from simulated upgrades --------------------------------------------------------


def clean(sim: Sim) -> None:
    sim.publish(version_entry("1.1.0"))


def bad_image(sim: Sim) -> None:
    sim.publish(version_entry("1.1.0", "bad-1.1.0"))


def user_started_crash(sim: Sim) -> None:
    sim.spec = spec_of(capacity=5, automatic=False)
    sim.publish(version_entry("1.1.0", "crash-1.1.0"))
    sim.request("start")


def rollback_on_breach(sim: Sim) -> None:
    sim.spec = spec_of(
        capacity=5,
        disable_rollback=True,
        rolling={"rollbackFailedInstancesOnPolicyBreach": True},
    )
    sim.publish(version_entry("1.1.0", "unready-1.1.0"))


def cancelled(sim: Sim) -> None:
    sim.publish(version_entry("1.1.0"))
    sim.run_until(lambda s: s.run is not None)
    sim.request("cancel")


def unhealthy_before(sim: Sim) -> None:
    sim.world.disrupted |= {0, 1}
    sim.publish(version_entry("1.1.0"))


SCENARIOS: dict[str, Callable[[Sim], None]] = {
    "completed": clean,
    "faulted-rolled-back": bad_image,
    "user-started-no-rollback": user_started_crash,
    "rollback-on-breach": rollback_on_breach,
    "cancelled": cancelled,
    "unhealthy-before": unhealthy_before,
}


def statuses_of(scenario: Callable[[Sim], None], sim: Sim) -> list[ScaleSetStatus]:
    sim.settle()
    scenario(sim)
    seen = []
    for _ in range(100):
        sim.step(2)
        seen.append(sim.status)
        run = sim.status.upgrade_run
        if run is not None and run.code is not RunningStatusCode.ROLLING_FORWARD:
            break
    sim.settle()
    seen.append(sim.status)
    return seen


@pytest.mark.parametrize("scenario", list(SCENARIOS), ids=list(SCENARIOS))
def test_every_status_of_an_upgrade_is_azure_shaped(scenario: str) -> None:
    sim = Sim(spec=spec_of(capacity=5), catalog=[version_entry("1.0.0")])
    statuses = statuses_of(SCENARIOS[scenario], sim)
    assert statuses[-1].os_upgrade_history, "the scenario never started an upgrade"
    for status in statuses:
        assert_azure_shaped(status)


def test_gallery_targets_are_written_as_an_id() -> None:
    gallery = {"gallery": "shared", "image": "web-os"}
    sim = Sim(
        spec=spec_of(capacity=3, image_reference=gallery),
        catalog=[version_entry("1.0.0", gallery="shared", gallery_image="web-os")],
    )
    statuses = statuses_of(
        lambda s: s.publish(version_entry("1.1.0", gallery="shared", gallery_image="web-os")), sim
    )
    for status in statuses:
        assert_azure_shaped(status)
    target = statuses[-1].os_upgrade_history[0].wire()["targetImageReference"]
    assert target == {"id": "galleries/shared/images/web-os/versions/1.1.0", "version": "1.1.0"}


def test_history_keeps_the_last_five_newest_first() -> None:
    sim = Sim(
        spec=spec_of(capacity=2),
        catalog=[version_entry("1.0")],
        settings=PlannerSettings(automatic_upgrade_delay=timedelta(0)),
    )
    sim.settle()
    for minor in range(1, 8):
        sim.publish(version_entry(f"1.{minor}", "bad" if minor == 3 else None))
        sim.settle(advance=2)
        history = sim.status.os_upgrade_history
        assert len(history) == min(minor, 5)
        starts = [h.running_status.start_time or "" for h in history if h.running_status]
        assert starts == sorted(starts, reverse=True)
        assert len(set(starts)) == len(starts)
        assert_azure_shaped(sim.status)
    history = sim.status.os_upgrade_history
    versions = [h.target_image_reference.version for h in history if h.target_image_reference]
    assert versions == ["1.7", "1.6", "1.5", "1.4", "1.3"]
    codes = [h.running_status.code for h in history if h.running_status]
    assert codes == ["Completed", "Completed", "Completed", "Completed", "Faulted"]


# --- the mapping from a run to an entry --------------------------------------------------------

TARGET = ResolvedImage(
    publisher="Canonical",
    offer="ubuntu",
    sku="server",
    version="1.1.0",
    container_image=image_of("1.1.0"),
)


def a_run(**changes: Any) -> UpgradeRun:
    run = UpgradeRun(
        started_by=StartedBy.PLATFORM, start_time="2024-05-01T12:00:00Z", target=TARGET
    )
    return run.model_copy(update=changes)


def test_a_new_entry_replaces_the_one_of_the_same_run() -> None:
    first = a_run(start_time="2024-05-01T10:00:00Z", code=RunningStatusCode.COMPLETED)
    history = record_history([], first, 0, 5)
    running = a_run(batch=Batch(number=1, instance_ids=[0, 1], started_at="x"))
    history = record_history(history, running, 8, 5)
    assert [h.running_status.code for h in history if h.running_status] == [
        "RollingForward",
        "Completed",
    ]
    done = running.model_copy(update={"code": RunningStatusCode.COMPLETED, "batch": None})
    history = record_history(history, done, 0, 5)
    assert len(history) == 2
    assert history[0].running_status is not None
    assert history[0].running_status.code is RunningStatusCode.COMPLETED


def test_rollback_info_appears_only_where_rollback_was_possible() -> None:
    automatic = history_entry(a_run(), 0)
    assert automatic.rollback_info is not None
    assert automatic.rollback_info.wire() == {
        "successfullyRolledbackInstanceCount": 0,
        "failedRolledbackInstanceCount": 0,
    }
    assert history_entry(a_run(automatic_rollback=False), 0).rollback_info is None
    assert history_entry(a_run(started_by=StartedBy.USER), 0).rollback_info is None
    failed = history_entry(a_run(rolled_back=[1, 2], rollback_failed=[3]), 0)
    assert failed.rollback_info is not None
    assert failed.rollback_info.successfully_rolledback_instance_count == 2
    assert failed.rollback_info.failed_rolledback_instance_count == 1
    assert failed.rollback_info.rollback_error is not None


def test_the_run_error_wins_over_the_stop_reason() -> None:
    stop = ApiError(code="MaxUnhealthyInstancePercentExceededInRollingUpgrade")
    final = ApiError(code="RollingUpgradeInProgressWithFailedUpgradedVMs")
    assert history_entry(a_run(stop_reason=stop), 0).error == stop
    assert history_entry(a_run(stop_reason=stop, error=final), 0).error == final


ids = st.lists(st.integers(0, 50), unique=True, max_size=8)
texts = st.text(alphabet="abcXYZ019 -:", min_size=1, max_size=20)
api_errors = st.builds(
    ApiError,
    code=st.none() | texts,
    target=st.none() | texts,
    message=st.none() | texts,
    details=st.none()
    | st.lists(st.builds(ApiErrorBase, code=st.none() | texts, message=texts), max_size=3),
    innererror=st.none() | st.builds(InnerError, exceptiontype=texts, errordetail=texts),
)


@settings(max_examples=150, deadline=None)
@given(
    code=st.sampled_from(RunningStatusCode),
    started_by=st.sampled_from(StartedBy),
    gallery=st.booleans(),
    automatic_rollback=st.booleans(),
    last_action=st.sampled_from(["Start", "Cancel"]),
    succeeded=ids,
    failed=ids,
    rolled_back=ids,
    rollback_failed=ids,
    error=st.none() | api_errors,
    pending=st.integers(0, 100),
)
def test_any_run_renders_azure_shaped(
    code: RunningStatusCode,
    started_by: StartedBy,
    gallery: bool,
    automatic_rollback: bool,
    last_action: str,
    succeeded: list[int],
    failed: list[int],
    rolled_back: list[int],
    rollback_failed: list[int],
    error: ApiError | None,
    pending: int,
) -> None:
    target = TARGET
    if gallery:
        target = ResolvedImage(
            gallery="g", image="i", version="2.0", container_image=image_of("2.0")
        )
    finished = code is not RunningStatusCode.ROLLING_FORWARD
    run = a_run(
        code=code,
        started_by=started_by,
        target=target,
        automatic_rollback=automatic_rollback,
        last_action=last_action,
        last_action_time="2024-05-01T12:00:01Z",
        end_time="2024-05-01T12:30:00Z" if finished else None,
        succeeded=succeeded,
        failed=failed,
        rolled_back=rolled_back,
        rollback_failed=rollback_failed,
        error=error,
    )
    status = ScaleSetStatus(
        rolling_upgrade=rolling_upgrade_status(run, pending),
        os_upgrade_history=[history_entry(run, pending)],
    )
    assert_azure_shaped(status)
    entry: HistoryEntry = status.os_upgrade_history[0]
    assert entry.progress is not None
    assert entry.progress.successful_instance_count == len(succeeded)
    assert entry.progress.failed_instance_count == len(failed)
