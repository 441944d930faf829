"""`rolling-upgrade watch` right after a publish: which run it follows, and when it waits for
the platform's upgrade that is due but has not started yet."""

from __future__ import annotations

from datetime import timedelta

from scaleset_operator.cli.plugin.watch import awaited_version, run_to_follow
from scaleset_operator.models.status import (
    PendingUpgrade,
    ResolvedImage,
    RollingRunningStatus,
    RollingUpgradeStatus,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
)
from scaleset_operator.planner.schedule import upgrade_target
from scaleset_operator.planner.timefmt import stamp
from tests.unit.simworld import OFFER, PUBLISHER, SKU, T0, image_of, spec_of, version_entry

EARLIER = "2024-05-01T11:00:00Z"
LATER = "2024-05-01T12:00:00Z"


def on(version: str, **status: object) -> ScaleSetStatus:
    model = ResolvedImage(
        publisher=PUBLISHER,
        offer=OFFER,
        sku=SKU,
        version=version,
        container_image=image_of(version),
    )
    return ScaleSetStatus.model_validate({"modelImage": model.wire(), **status})


def run(code: RunningStatusCode, start: str) -> dict[str, object]:
    ru = RollingUpgradeStatus(running_status=RollingRunningStatus(code=code, start_time=start))
    return {"rollingUpgrade": ru.wire()}


# --- which run ------------------------------------------------------------------------------


def test_no_run_yet_gives_nothing_to_follow() -> None:
    assert run_to_follow(on("1.0.0"), None) is None


def test_a_run_in_progress_is_followed_at_once() -> None:
    status = on("1.1.0", **run(RunningStatusCode.ROLLING_FORWARD, EARLIER))
    assert run_to_follow(status, EARLIER) == status.rolling_upgrade


def test_the_run_that_had_ended_when_the_watch_began_is_not_a_new_one() -> None:
    status = on("1.0.0", **run(RunningStatusCode.COMPLETED, EARLIER))
    assert run_to_follow(status, EARLIER) is None


def test_a_run_started_while_waiting_is_followed_even_when_it_already_ended() -> None:
    status = on("1.1.0", **run(RunningStatusCode.COMPLETED, LATER))
    assert run_to_follow(status, EARLIER) == status.rolling_upgrade
    assert run_to_follow(status, None) == status.rolling_upgrade


# --- whether one is due ---------------------------------------------------------------------


def test_a_version_published_before_the_operator_saw_it_is_due() -> None:
    catalog = [version_entry("1.0.0"), version_entry("1.1.0")]
    assert awaited_version(spec_of(), on("1.0.0"), catalog, T0) == "1.1.0"


def test_the_pending_upgrade_the_operator_recorded_is_due() -> None:
    pending = PendingUpgrade(version="1.1.0", detected_at=stamp(T0))
    status = on("1.0.0", pendingUpgrade=pending.wire())
    # Even when this user may not list the catalog.
    assert awaited_version(spec_of(), status, [], T0) == "1.1.0"


def test_nothing_is_due_without_a_newer_version() -> None:
    assert awaited_version(spec_of(), on("1.1.0"), [version_entry("1.1.0")], T0) is None


def test_nothing_is_due_without_automatic_upgrades() -> None:
    catalog = [version_entry("1.1.0")]
    assert awaited_version(spec_of(automatic=False), on("1.0.0"), catalog, T0) is None


def test_nothing_is_due_for_a_pinned_version() -> None:
    catalog = [version_entry("1.1.0")]
    assert awaited_version(spec_of(version="1.0.0"), on("1.0.0"), catalog, T0) is None


def test_nothing_is_due_before_the_operator_has_a_model() -> None:
    assert awaited_version(spec_of(), ScaleSetStatus(), [version_entry("1.1.0")], T0) is None


def test_a_version_that_faulted_is_not_due_again() -> None:
    status = on("1.0.0", faultedVersions=["1.1.0"])
    assert awaited_version(spec_of(), status, [version_entry("1.1.0")], T0) is None


def test_a_version_too_young_to_adopt_is_not_due_but_wakes_the_planner() -> None:
    raw = spec_of().wire()
    raw["upgradePolicy"]["automaticUpgradeSchedule"] = {"minimumImageAge": "PT1H"}
    spec = type(spec_of()).model_validate(raw)
    entry = version_entry("1.1.0")
    young = entry.model_copy(
        update={"spec": entry.spec.model_copy(update={"published_date": stamp(T0)})}
    )

    assert awaited_version(spec, on("1.0.0"), [young], T0) is None
    target = upgrade_target(spec, on("1.0.0"), [young], T0, started_by=StartedBy.PLATFORM)
    assert target.ripens_at == (T0 + timedelta(hours=1),)
