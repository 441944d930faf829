"""The status summary at the end of a pass: instance counts, the Ready, Upgrading and
UpgradeFaulted conditions, what holds out-of-date instances, and the run's rolling-upgrade
status and history."""

from __future__ import annotations

from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import Condition, RunningStatusCode, UpgradeRun
from scaleset_operator.planner import conditions as cond
from scaleset_operator.planner.between_batches import window_wait_text
from scaleset_operator.planner.health import HealthVerdict
from scaleset_operator.planner.history import record_history, rolling_upgrade_status
from scaleset_operator.planner.holds import out_of_date
from scaleset_operator.planner.passstate import PassState
from scaleset_operator.planner.run_end import run_finished


def summarise(state: PassState, live: dict[int, Instance]) -> None:
    obs = state.obs
    status = state.status
    verdicts = _verdicts(state, live)
    ready = sum(1 for v in verdicts.values() if v.healthy)
    model = status.model_image
    urn = model.urn if model is not None else None
    latest = sum(
        1
        for i in live.values()
        if urn is not None and i.model_hash == state.model_hash and i.image_urn == urn
    )
    protected = sum(1 for i in live.values() if i.protected)
    run = status.upgrade_run
    running = run is not None and not run_finished(run)
    update: dict[str, object] = {
        "observed_generation": obs.generation,
        "capacity": sum(1 for i in live.values() if not i.deleting),
        "selector": f"scaleset.dev/scaleset={obs.name}",
        "ready_instances": ready,
        "latest_model_instances": latest,
        "protected_instances": protected,
        "conditions": _conditions(state, ready, run),
        "upgrade_state": run.code.value if run else None,
        "out_of_date": out_of_date(state, live),
    }
    if run is not None and (running or run != obs.status.upgrade_run):
        pending = _pending_count(run, live)
        update["rolling_upgrade"] = rolling_upgrade_status(run, pending)
        update["os_upgrade_history"] = record_history(
            status.os_upgrade_history, run, pending, obs.settings.history_limit
        )
    state.status = status.model_copy(update=update)


def _conditions(state: PassState, ready: int, run: UpgradeRun | None) -> list[Condition]:
    obs = state.obs
    capacity = obs.spec.capacity
    conditions = cond.set_condition(
        state.status.conditions,
        type_=cond.READY,
        status=ready >= capacity,
        reason="AllInstancesReady" if ready >= capacity else "InstancesNotReady",
        message=f"{ready}/{capacity} instances healthy",
        now=state.now_s,
        generation=obs.generation,
    )
    running = run is not None and not run_finished(run)
    reason, message = _upgrading_reason(state, run)
    conditions = cond.set_condition(
        conditions,
        type_=cond.UPGRADING,
        status=running,
        reason=reason,
        message=message,
        now=state.now_s,
        generation=obs.generation,
    )
    faulted = run is not None and run.code is RunningStatusCode.FAULTED
    error = run.error if run is not None and faulted else None
    return cond.set_condition(
        conditions,
        type_=cond.UPGRADE_FAULTED,
        status=faulted,
        reason=(error.code or "Faulted") if error is not None else "NotFaulted",
        message=(error.message or "") if error is not None else "",
        now=state.now_s,
        generation=obs.generation,
    )


def _upgrading_reason(state: PassState, run: UpgradeRun | None) -> tuple[str, str]:
    if run is None:
        return "NoUpgrade", ""
    message = f"OS upgrade to {run.target.urn}: {len(run.succeeded)} upgraded"
    if not run_finished(run) and state.waiting_for_window:
        # What `rolling-upgrade get-latest` shows: Azure's shape has no field for it.
        return cond.WAITING_FOR_WINDOW, f"{window_wait_text(run, state.window_opens_at)}; {message}"
    waits = run.batch.blocked_by_disruption_budget if run.batch is not None else None
    if not run_finished(run) and waits:
        budgets = sorted({w.disruption_budget for w in waits})
        ids = ", ".join(str(w.instance_id) for w in waits)
        text = f"instance(s) {ids} wait for PodDisruptionBudget {', '.join(budgets)}"
        return cond.WAITING_FOR_DISRUPTION_BUDGET, f"{text}; {message}"
    return run.code.value, message


def _verdicts(state: PassState, live: dict[int, Instance]) -> dict[int, HealthVerdict]:
    return {iid: state.verdict_of(inst) for iid, inst in live.items()}


def _pending_count(run: UpgradeRun, live: dict[int, Instance]) -> int:
    """Instances the run has not begun; after a fault or cancel, those it never reached."""
    begun = set(run.batch.instance_ids) if run.batch else set()
    begun.update(run.failed, run.succeeded)
    return sum(
        1
        for iid, inst in live.items()
        if not inst.deleting
        and not inst.protected
        and inst.os_image != run.target.container_image
        and iid not in begun
    )
