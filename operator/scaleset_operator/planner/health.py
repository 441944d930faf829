"""Health verdicts: is an instance running the image it should, and ready by its health source?

Verified, not assumed: a Ready condition left over from the previous container does not count
while the container status still reports the previous image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from scaleset_operator.models.instance import ContainerState, Instance
from scaleset_operator.models.scaleset import HealthProbe, HealthSource
from scaleset_operator.planner.timefmt import parse_stamp

# Waiting reasons after which the container will not become healthy on its own in time;
# waiting out the whole health window would only delay the rollback.
PULL_FAILURES = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
)
FAIL_FAST_REASONS = PULL_FAILURES | {"CrashLoopBackOff"}


class HealthState(StrEnum):
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    INITIALIZING = "Initializing"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class HealthVerdict:
    state: HealthState
    reason: str
    fail_fast: bool = False

    @property
    def healthy(self) -> bool:
        return self.state is HealthState.HEALTHY


@lru_cache(maxsize=1 << 12)
def normalize_image(image: str) -> str:
    """Kubelets report `docker.io/library/nginx:1.25` for a spec image of `nginx:1.25`."""
    name = image
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name.startswith("library/") and name.count("/") == 1:
        name = name[len("library/") :]
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def same_image(a: str, b: str) -> bool:
    return normalize_image(a) == normalize_image(b)


def verdict(
    inst: Instance | None,
    probe: HealthProbe,
    now: datetime,
    *,
    expected_image: str | None = None,
    since: datetime | None = None,
    grace: timedelta = timedelta(0),
) -> HealthVerdict:
    """`expected_image` defaults to the instance's own spec image; `since` starts the grace."""
    if inst is None:
        return HealthVerdict(HealthState.UNKNOWN, "InstanceMissing")
    if inst.deleting:
        return HealthVerdict(HealthState.UNKNOWN, "InstanceDeleting")
    in_grace = since is not None and now < since + grace
    expected = expected_image or inst.os_image
    status = inst.os_status
    if status is None or inst.phase in (None, "Unknown"):
        if in_grace:
            return HealthVerdict(HealthState.INITIALIZING, "NoStatusYet")
        return HealthVerdict(HealthState.UNKNOWN, "NoContainerStatus")
    if not same_image(inst.os_image, expected):
        return HealthVerdict(HealthState.UNHEALTHY, "NotOnExpectedImage")
    if not same_image(status.image, expected):
        return _still_on_previous_image(inst, status, in_grace=in_grace)
    failing = _failing_now(status, inst.os_image, since)
    if failing:
        return HealthVerdict(HealthState.UNHEALTHY, failing, fail_fast=True)
    if inst.phase == "Failed":
        return HealthVerdict(HealthState.UNHEALTHY, "PodFailed", fail_fast=True)
    return _readiness(inst, probe, status, in_grace=in_grace)


def _still_on_previous_image(
    inst: Instance, status: ContainerState, *, in_grace: bool
) -> HealthVerdict:
    """The spec asks for the expected image but the container status reports another one."""
    # A kubelet goes on reporting the previous image while it fails to pull the new one;
    # the waiting message says which image the failure is about.
    if status.waiting_reason in PULL_FAILURES and _names(status, inst.os_image, absent=False):
        return HealthVerdict(HealthState.UNHEALTHY, status.waiting_reason or "", fail_fast=True)
    # The restart onto the new image has not been reported yet.
    if in_grace:
        return HealthVerdict(HealthState.INITIALIZING, "ContainerRestarting")
    return HealthVerdict(HealthState.UNHEALTHY, "ContainerStillOnPreviousImage")


def _readiness(
    inst: Instance, probe: HealthProbe, status: ContainerState, *, in_grace: bool
) -> HealthVerdict:
    """Running the expected image: ready by the probe's health source and the container."""
    signal = _source_ready(inst, probe)
    if signal is None:
        return HealthVerdict(HealthState.UNKNOWN, "NoHealthSignal")
    if signal and status.ready:
        return HealthVerdict(HealthState.HEALTHY, "Ready")
    if in_grace:
        return HealthVerdict(HealthState.INITIALIZING, "InGracePeriod")
    return HealthVerdict(HealthState.UNHEALTHY, status.waiting_reason or "NotReady")


def _names(status: ContainerState, image: str, *, absent: bool) -> bool:
    """Whether the waiting message is about ``image``; ``absent`` when there is no message."""
    message = status.waiting_message
    return absent if not message else image in message


def _failing_now(status: ContainerState, image: str, since: datetime | None) -> str | None:
    """A fail-fast reason that belongs to the container the spec asks for now, if any.

    Right after an image change a kubelet may still report the reason of the container it
    replaces: rolled back from a tag that failed to pull, the pod shows `CrashLoopBackOff` (or
    the pull failure naming the abandoned tag) for a moment, although the previous image starts
    a second later. So a pull failure must name this image, and a crash loop counts only when
    the container last ended after ``since`` (whole seconds: the kubelet's precision).
    """
    reason = status.waiting_reason
    if reason in PULL_FAILURES:
        return reason if _names(status, image, absent=True) else None
    if reason != "CrashLoopBackOff":
        return "CrashLoopBackOff" if _exited_twice_since(status, since) else None
    if since is None or not status.last_finished_at:
        return reason
    return reason if _after(status.last_finished_at, since, unreadable=True) else None


def _exited_twice_since(status: ContainerState, since: datetime | None) -> bool:
    """A crash loop as a real kubelet mostly shows it: the first restart comes at once, and
    while the second waits out its back-off the status says `terminated`, not `waiting:
    CrashLoopBackOff` (that reason shows only if the pod happens to sync during the back-off).
    Two runs that both began after the change, the latest ended and the one before it too,
    are the crash loop. Runs that began before it belong to the container it replaced, which
    the kubelet ends after the change too, so when a run began is what tells them apart."""
    if since is None or not status.exited_run_started_at or not status.last_started_at:
        return False
    return _after(status.exited_run_started_at, since, unreadable=False) and _after(
        status.last_started_at, since, unreadable=False
    )


def _after(stamp: str, since: datetime, *, unreadable: bool) -> bool:
    """Whether the kubelet's `stamp` is later than `since` in whole seconds (its precision)."""
    try:
        moment = parse_stamp(stamp)
    except ValueError:
        return unreadable
    return moment.replace(microsecond=0) > since.replace(microsecond=0)


def _source_ready(inst: Instance, probe: HealthProbe) -> bool | None:
    if probe.source is HealthSource.LOAD_BALANCER:
        return inst.endpoint_ready
    if probe.source is HealthSource.APPLICATION_HEALTH:
        return inst.gate_ready
    return inst.ready


def counts_as_unhealthy(v: HealthVerdict) -> bool:
    """For the unhealthy budgets: Unknown counts against them, Initializing does not (yet)."""
    return v.state in (HealthState.UNHEALTHY, HealthState.UNKNOWN)
