"""The planner: observe -> plan. One pass decides one step and the whole new status.

Order of a pass: resolve the model image, keep the instance count, handle user requests,
start/advance/finish the OS upgrade, bring out-of-date instances to the model (per upgrade
mode), then summarise status.
"""

from __future__ import annotations

from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import RunningStatusCode
from scaleset_operator.planner.between_batches import between_batches
from scaleset_operator.planner.bring_to_model import apply_model
from scaleset_operator.planner.capacity import keep_capacity
from scaleset_operator.planner.instances import live_instances
from scaleset_operator.planner.model_hash import model_hash
from scaleset_operator.planner.model_image import resolve_model, resolved_conditions
from scaleset_operator.planner.observed import Observed, Plan
from scaleset_operator.planner.passstate import PassState
from scaleset_operator.planner.run_end import run_finished
from scaleset_operator.planner.run_start import maybe_start_platform_upgrade
from scaleset_operator.planner.settle import settle_batch
from scaleset_operator.planner.summary import summarise
from scaleset_operator.planner.surge import settle_surge_batch, tidy_surges
from scaleset_operator.planner.user_requests import handle_requests
from scaleset_operator.planner.user_rollback import (
    resume_requested_rollback,
    wake_for_requested_rollback,
)


def plan(obs: Observed) -> Plan:
    state = PassState(obs=obs, status=obs.status, model_hash=model_hash(obs.spec))
    model = resolve_model(state)
    live = live_instances(obs.instances)
    if model is not None:
        keep_capacity(state, model, live)
        handle_requests(state, model)
        _advance_upgrade(state, live)
        if state.status.upgrade_run is None or run_finished(state.status.upgrade_run):
            apply_model(state, live)
        moved = state.status.model_image
        if moved is not None and moved.urn != model.urn:
            # An upgrade started or rolled back in this pass: say so now, not one pass later.
            state.status = state.status.model_copy(
                update={"conditions": resolved_conditions(state, moved)}
            )
    summarise(state, live)
    requeue = None
    if state.wake_at:
        soonest = min(state.wake_at)
        requeue = max(0.05, (soonest - obs.now).total_seconds())
    return Plan(
        tuple(state.actions),
        state.status,
        tuple(state.events),
        requeue,
        state.open_ids,
    )


def _advance_upgrade(state: PassState, live: dict[int, Instance]) -> None:
    """Start a platform run when one is due, settle the batch in flight, then take the step
    between batches once none is."""
    tidy_surges(state)
    resume_requested_rollback(state)
    run = state.status.upgrade_run
    if run is None or run_finished(run):
        maybe_start_platform_upgrade(state)
        run = state.status.upgrade_run
        if run is None or run_finished(run):
            return
    if run.batch is not None and run.batch.surge_ids is not None:
        run = settle_surge_batch(state, run, live)
    else:
        run = settle_batch(state, run, live)
    if run.batch is None and run.code is RunningStatusCode.ROLLING_FORWARD:
        run = between_batches(state, run, live)
    wake_for_requested_rollback(state, run)
    state.status = state.status.model_copy(update={"upgrade_run": run})
