"""What a pass does with a plan made on the watches' copies: carry it out, wait a moment for
the pod watch to report our own pod writes, list the pods and plan again, or read the ScaleSet
before acting."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from scaleset_operator.controller.podcache import Snapshot
from scaleset_operator.controller.reconcile import (
    CATCH_UP_WAIT,
    catch_up_wait,
    confirm_before_acting,
    stands_on_copy,
)
from scaleset_operator.models.status import RunningStatusCode, ScaleSetStatus

BEFORE = ScaleSetStatus(capacity=4, ready_instances=4)
PROGRESS = BEFORE.model_copy(update={"ready_instances": 3})
STEP = BEFORE.model_copy(update={"upgrade_state": RunningStatusCode.ROLLING_FORWARD.value})


def copy(*, caught_up: bool, since_write: float = 0.0) -> Snapshot:
    return Snapshot([], caught_up, since_write)


def test_a_copy_that_holds_our_writes_carries_any_plan() -> None:
    assert stands_on_copy(copy(caught_up=True), True, BEFORE, STEP)


def test_a_copy_behind_our_writes_carries_only_plans_that_change_nothing_but_progress() -> None:
    behind = copy(caught_up=False, since_write=0.1)
    assert stands_on_copy(behind, False, BEFORE, BEFORE)
    assert stands_on_copy(behind, False, BEFORE, PROGRESS)
    assert not stands_on_copy(behind, True, BEFORE, BEFORE)  # it acts
    assert not stands_on_copy(behind, True, BEFORE, PROGRESS)
    assert not stands_on_copy(behind, False, BEFORE, STEP)  # it moves the upgrade on


def test_the_pass_waits_for_recent_writes_and_lists_once_they_are_late() -> None:
    assert catch_up_wait(copy(caught_up=True)) is None  # nothing to wait for
    assert catch_up_wait(copy(caught_up=False, since_write=0.25)) == CATCH_UP_WAIT - 0.25
    assert catch_up_wait(copy(caught_up=False, since_write=CATCH_UP_WAIT)) is None
    assert catch_up_wait(copy(caught_up=False, since_write=60.0)) is None


def test_while_the_watch_reconnects_the_pass_lists() -> None:
    assert catch_up_wait(copy(caught_up=False, since_write=math.inf)) is None


@given(st.floats(min_value=0.0, max_value=CATCH_UP_WAIT, exclude_max=True))
def test_a_wait_ends_no_later_than_the_bound_and_is_never_a_busy_loop(behind: float) -> None:
    wait = catch_up_wait(copy(caught_up=False, since_write=behind))
    assert wait is not None
    assert wait >= 0.05
    assert behind + wait <= CATCH_UP_WAIT + 1e-9 or wait == 0.05


def test_a_pass_on_the_watched_scaleset_reads_it_before_acting_only_when_it_writes_no_status() -> (
    None
):
    # Its status write names the version planned on, and the API refuses it if that is stale.
    assert not confirm_before_acting(True, True, True)
    assert confirm_before_acting(True, True, False)
    # Nothing to guard: it does not act, or it planned on a ScaleSet it read itself.
    assert not confirm_before_acting(True, False, False)
    assert not confirm_before_acting(True, False, True)
    assert not confirm_before_acting(False, True, False)
    assert not confirm_before_acting(False, True, True)
