"""Health verdicts: healthy means running the expected image *and* ready by the health source."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from scaleset_operator.models.instance import ContainerState, Instance
from scaleset_operator.models.scaleset import HealthProbe, HealthSource
from scaleset_operator.planner.health import (
    FAIL_FAST_REASONS,
    HealthState,
    HealthVerdict,
    counts_as_unhealthy,
    normalize_image,
    same_image,
    verdict,
)
from tests.unit.simworld import T0, image_of

OLD, NEW = image_of("1.0.0"), image_of("1.1.0")
POD_READY = HealthProbe()
LOAD_BALANCER = HealthProbe(source=HealthSource.LOAD_BALANCER, service_name="web")
APP_HEALTH = HealthProbe(source=HealthSource.APPLICATION_HEALTH, condition_type="AppHealthy")
GRACE = timedelta(seconds=30)


def instance(
    *,
    spec_image: str = NEW,
    status_image: str | None = NEW,
    ready: bool = True,
    phase: str | None = "Running",
    waiting: str | None = None,
    message: str | None = None,
    last_finished: str | None = None,
    last_started: str | None = None,
    exited_run_started: str | None = None,
    **extra: Any,
) -> Instance:
    status = None
    if status_image is not None:
        status = ContainerState(
            name="os",
            image=status_image,
            ready=ready,
            running=waiting is None and exited_run_started is None,
            waiting_reason=waiting,
            waiting_message=message,
            last_finished_at=last_finished,
            last_started_at=last_started,
            exited_run_started_at=exited_run_started,
        )
    return Instance(
        instance_id=0,
        name="web-0",
        os_image=spec_image,
        phase=phase,
        ready=ready,
        os_status=status,
        **extra,
    )


def test_ready_on_the_expected_image_is_healthy() -> None:
    v = verdict(instance(), POD_READY, T0, expected_image=NEW)
    assert v == HealthVerdict(HealthState.HEALTHY, "Ready")
    assert v.healthy
    assert not counts_as_unhealthy(v)


def test_a_ready_condition_left_over_from_the_old_container_means_nothing() -> None:
    """The image was patched but the kubelet still reports the old container, Ready."""
    stale = instance(spec_image=NEW, status_image=OLD, ready=True)
    v = verdict(stale, POD_READY, T0, expected_image=NEW)
    assert v.state is HealthState.UNHEALTHY
    assert v.reason == "ContainerStillOnPreviousImage"
    within_grace = verdict(stale, POD_READY, T0, expected_image=NEW, since=T0, grace=GRACE)
    assert within_grace.state is HealthState.INITIALIZING


def test_spec_on_another_image_than_expected_is_unhealthy() -> None:
    v = verdict(instance(spec_image=OLD, status_image=OLD), POD_READY, T0, expected_image=NEW)
    assert v == HealthVerdict(HealthState.UNHEALTHY, "NotOnExpectedImage")


def test_expected_image_defaults_to_the_instances_own_spec_image() -> None:
    assert verdict(instance(spec_image=OLD, status_image=OLD), POD_READY, T0).healthy


@pytest.mark.parametrize("reason", sorted(FAIL_FAST_REASONS))
def test_pull_and_crash_loop_failures_fail_fast(reason: str) -> None:
    v = verdict(instance(ready=False, waiting=reason), POD_READY, T0, since=T0, grace=GRACE)
    assert v.state is HealthState.UNHEALTHY
    assert v.reason == reason
    assert v.fail_fast


def _stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff"])
def test_a_pull_failure_reported_on_the_previous_image_fails_fast(reason: str) -> None:
    """A real kubelet keeps the previous image in the status while the new tag fails to pull;
    its message names the tag."""
    failing = instance(
        spec_image=NEW,
        status_image=OLD,
        ready=False,
        waiting=reason,
        message=f'Back-off pulling image "{NEW}": ErrImagePull: not found',
    )
    v = verdict(failing, POD_READY, T0, expected_image=NEW, since=T0, grace=GRACE)
    assert v == HealthVerdict(HealthState.UNHEALTHY, reason, fail_fast=True)


def test_a_pull_failure_of_the_abandoned_tag_does_not_fail_the_rollback() -> None:
    """Rolled back to OLD, the pod may still show the pull failure of NEW for a moment."""
    stale = instance(
        spec_image=OLD,
        status_image=OLD,
        ready=False,
        waiting="ImagePullBackOff",
        message=f'Back-off pulling image "{NEW}"',
    )
    v = verdict(stale, POD_READY, T0, expected_image=OLD, since=T0, grace=GRACE)
    assert not v.fail_fast
    assert v.state is HealthState.INITIALIZING


def test_a_crash_loop_left_from_before_the_rollback_does_not_fail_it() -> None:
    """Seen on a real kubelet: rolled back after a failed pull, the pod reported
    `CrashLoopBackOff` on the previous image (the old container ended when the upgrade
    began), then ran Ready half a second later."""
    stale = instance(
        spec_image=OLD,
        status_image=OLD,
        ready=False,
        waiting="CrashLoopBackOff",
        last_finished=_stamp(-13),
    )
    v = verdict(stale, POD_READY, T0, expected_image=OLD, since=T0, grace=GRACE)
    assert not v.fail_fast
    assert v.state is HealthState.INITIALIZING


def test_a_crash_after_the_change_fails_fast() -> None:
    crashed = instance(ready=False, waiting="CrashLoopBackOff", last_finished=_stamp(2))
    v = verdict(crashed, POD_READY, T0, expected_image=NEW, since=T0, grace=GRACE)
    assert v == HealthVerdict(HealthState.UNHEALTHY, "CrashLoopBackOff", fail_fast=True)
    # Within the same second as the change it cannot be told apart from a left-over.
    same_second = instance(ready=False, waiting="CrashLoopBackOff", last_finished=_stamp(0))
    assert not verdict(same_second, POD_READY, T0, since=T0, grace=GRACE).fail_fast


def test_two_runs_ended_since_the_change_are_a_crash_loop() -> None:
    """What a real kubelet showed for a tag whose process exits at once, 16 s after the change:
    no `CrashLoopBackOff` anywhere, the latest run `terminated` (started +16 s) and the one
    before it too (started +4 s), restartCount 3."""
    looping = instance(
        ready=False,
        exited_run_started=_stamp(16),
        last_started=_stamp(4),
        last_finished=_stamp(5),
    )
    v = verdict(looping, POD_READY, T0 + timedelta(seconds=18), since=T0, grace=GRACE)
    assert v == HealthVerdict(HealthState.UNHEALTHY, "CrashLoopBackOff", fail_fast=True)


def test_one_run_ended_since_the_change_is_not_yet_a_crash_loop() -> None:
    # The run before the latest one is the container the change replaced: it began earlier.
    first_exit = instance(
        ready=False,
        exited_run_started=_stamp(2),
        last_started=_stamp(-600),
        last_finished=_stamp(1),
    )
    v = verdict(first_exit, POD_READY, T0 + timedelta(seconds=4), since=T0, grace=GRACE)
    assert v == HealthVerdict(HealthState.INITIALIZING, "InGracePeriod")
    # Restarted after one exit: running again, so it may still come up.
    again = instance(ready=False, last_started=_stamp(2), last_finished=_stamp(3))
    assert not verdict(again, POD_READY, T0 + timedelta(seconds=5), since=T0, grace=GRACE).fail_fast
    # Both runs began within the second of the change: they cannot be told from the old one's.
    same_second = instance(ready=False, exited_run_started=_stamp(0), last_started=_stamp(0))
    assert not verdict(same_second, POD_READY, T0, since=T0, grace=GRACE).fail_fast
    # Without a change to date them from (no `since`), two exits say nothing either.
    assert not verdict(
        instance(ready=False, exited_run_started=_stamp(16), last_started=_stamp(4)),
        POD_READY,
        T0 + timedelta(seconds=18),
    ).fail_fast


def test_other_waiting_reasons_wait_for_the_health_timeout() -> None:
    v = verdict(instance(ready=False, waiting="ContainerCreating"), POD_READY, T0)
    assert v == HealthVerdict(HealthState.UNHEALTHY, "ContainerCreating")
    assert not v.fail_fast


def test_failed_pod_fails_fast() -> None:
    v = verdict(instance(ready=False, phase="Failed"), POD_READY, T0)
    assert v.state is HealthState.UNHEALTHY
    assert v.fail_fast


def test_running_but_unready_is_initializing_inside_the_grace_period_only() -> None:
    unready = instance(ready=False)
    inside = verdict(unready, POD_READY, T0 + timedelta(seconds=29), since=T0, grace=GRACE)
    assert inside.state is HealthState.INITIALIZING
    assert not counts_as_unhealthy(inside)
    after = verdict(unready, POD_READY, T0 + GRACE, since=T0, grace=GRACE)
    assert after == HealthVerdict(HealthState.UNHEALTHY, "NotReady")
    assert counts_as_unhealthy(after)


@pytest.mark.parametrize(
    ("inst", "reason"),
    [
        (None, "InstanceMissing"),
        (instance(deleting=True), "InstanceDeleting"),
        (instance(status_image=None), "NoContainerStatus"),
        (instance(phase=None), "NoContainerStatus"),
        (instance(phase="Unknown"), "NoContainerStatus"),
    ],
)
def test_no_signal_is_unknown_and_counts_against_the_budget(
    inst: Instance | None, reason: str
) -> None:
    v = verdict(inst, POD_READY, T0)
    assert v == HealthVerdict(HealthState.UNKNOWN, reason)
    assert counts_as_unhealthy(v)


def test_a_new_pod_without_status_is_initializing_during_its_grace() -> None:
    fresh = instance(status_image=None, phase="Pending")
    v = verdict(fresh, POD_READY, T0, since=T0, grace=GRACE)
    assert v == HealthVerdict(HealthState.INITIALIZING, "NoStatusYet")


@pytest.mark.parametrize(
    ("probe", "field"),
    [(LOAD_BALANCER, "endpoint_ready"), (APP_HEALTH, "gate_ready")],
)
def test_other_health_sources_decide_readiness(probe: HealthProbe, field: str) -> None:
    ready, unready = instance(), instance(ready=False)
    assert verdict(ready.model_copy(update={field: True}), probe, T0).healthy
    assert verdict(ready.model_copy(update={field: False}), probe, T0).reason == "NotReady"
    assert verdict(ready, probe, T0) == HealthVerdict(HealthState.UNKNOWN, "NoHealthSignal")
    # The source says ready but the container is not: not healthy either.
    assert not verdict(unready.model_copy(update={field: True}), probe, T0).healthy


@pytest.mark.parametrize(
    ("spec", "reported"),
    [
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("nginx:1.25", "index.docker.io/library/nginx:1.25"),
        ("team/app:2", "docker.io/team/app:2"),
        ("registry.example/os:1.0", "registry.example/os:1.0"),
    ],
)
def test_kubelet_spellings_of_the_same_image_match(spec: str, reported: str) -> None:
    assert same_image(spec, reported)
    assert normalize_image(reported) == normalize_image(spec)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("nginx:1.25", "nginx:1.26"),
        ("registry.example/os:1.0", "other.example/os:1.0"),
        ("team/app:2", "app:2"),
    ],
)
def test_different_images_do_not_match(a: str, b: str) -> None:
    assert not same_image(a, b)
