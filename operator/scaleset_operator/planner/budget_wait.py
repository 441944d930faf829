"""Starting batch members within the PodDisruptionBudgets: a member a budget blocks waits in its
batch and starts in a later pass, until disruptionBudgetTimeout faults the run or skips it.
(Model rollouts wait within the budgets too: `bring_to_model.py`.)
Rollbacks never come here: putting an instance back is never blocked by a budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from scaleset_operator.models.durations import parse_duration
from scaleset_operator.models.instance import (
    LABEL_UPGRADE_SKIPPED,
    SKIPPED_FOR_DISRUPTION_BUDGET,
    Instance,
)
from scaleset_operator.models.scaleset import OnDisruptionBudgetTimeout
from scaleset_operator.models.status import BudgetWait, ErrorCode, LastAction, UpgradeRun
from scaleset_operator.planner.actions import EventReason, LabelInstance
from scaleset_operator.planner.disruption import BudgetLedger
from scaleset_operator.planner.instance_upgrade import patch_to_target
from scaleset_operator.planner.passstate import NORMAL, WARNING, PassState
from scaleset_operator.planner.run_end import fault_run, finish_faulting, run_finished
from scaleset_operator.planner.timefmt import parse_stamp

# The budgets are not watched: a blocked member looks again this often.
BUDGET_POLL = timedelta(seconds=2)


@dataclass
class Started:
    """What one pass did with the members that were still to start."""

    run: UpgradeRun
    # Members patched in this pass.
    started: list[int] = field(default_factory=list)
    # Members whose wait outlasted disruptionBudgetTimeout under policy Fault.
    expired: list[BudgetWait] = field(default_factory=list)


def start_members(
    state: PassState, run: UpgradeRun, waiting: Sequence[Instance], in_flight: Sequence[Instance]
) -> Started:
    """Patch each waiting member its budgets allow; record why the others wait."""
    batch = run.batch
    assert batch is not None
    if starts_nobody(run):
        return Started(_with_waits(run, []))
    before = {w.instance_id: w for w in batch.blocked_by_disruption_budget or []}
    ledger = BudgetLedger(state.obs.budgets, in_flight)
    waits: list[BudgetWait] = []
    outcome = Started(run)
    # In batch order: prioritized (unhealthy) members first.
    for inst in waiting:
        blocked = ledger.check(inst)
        if blocked is None:
            ledger.take(inst)
            patch_to_target(state, run, inst)
            outcome.started.append(inst.instance_id)
            continue
        previous = before.get(inst.instance_id)
        wait = BudgetWait(
            instance_id=inst.instance_id,
            disruption_budget=blocked.budget,
            since=previous.since if previous else state.now_s,
        )
        if _waited_out(state, run, wait):
            if run.policy.on_disruption_budget_timeout is OnDisruptionBudgetTimeout.SKIP:
                outcome.run = _skip(state, outcome.run, inst, wait)
                continue
            outcome.expired.append(wait)
        waits.append(wait)
    announce_waits(
        state, {w.instance_id: w.disruption_budget for w in waits if w.instance_id not in before}
    )
    outcome.run = _with_waits(outcome.run, waits)
    return outcome


def starts_nobody(run: UpgradeRun) -> bool:
    """A faulting or cancelled run lets its batch in flight settle but starts no one new."""
    return run.stop_reason is not None or run.last_action is LastAction.CANCEL


def _waited_out(state: PassState, run: UpgradeRun, wait: BudgetWait) -> bool:
    """Whether `wait` has lasted disruptionBudgetTimeout; if not, the pass looks again soon."""
    deadline = parse_stamp(wait.since) + parse_duration(run.policy.disruption_budget_timeout)
    if state.now >= deadline:
        return True
    state.wake(min(deadline, state.now + BUDGET_POLL))
    return False


def announce_waits(state: PassState, new_waits: Mapping[int, str]) -> None:
    """One event per budget for the instances (id: budget) it has just begun to hold back."""
    by_budget: dict[str, list[str]] = {}
    for iid, budget in new_waits.items():
        by_budget.setdefault(budget, []).append(str(iid))
    for budget, ids in sorted(by_budget.items()):
        state.event(
            NORMAL,
            EventReason.WAITING_FOR_DISRUPTION_BUDGET,
            f"instance(s) {', '.join(ids)} wait: PodDisruptionBudget {budget} allows no more "
            "disruptions",
        )


def _with_waits(run: UpgradeRun, waits: list[BudgetWait]) -> UpgradeRun:
    assert run.batch is not None
    batch = run.batch.model_copy(update={"blocked_by_disruption_budget": waits or None})
    return run.model_copy(update={"batch": batch})


def _skip(state: PassState, run: UpgradeRun, inst: Instance, wait: BudgetWait) -> UpgradeRun:
    """The member keeps its image for this run and is labelled so that people can find it."""
    state.act(
        LabelInstance(inst.name, inst.uid, LABEL_UPGRADE_SKIPPED, SKIPPED_FOR_DISRUPTION_BUDGET),
        inst.instance_id,
    )
    state.event(
        WARNING,
        EventReason.UPGRADE_SKIPPED,
        f"instance {inst.instance_id} skipped: PodDisruptionBudget {wait.disruption_budget} "
        f"blocked it since {wait.since}, longer than "
        f"disruptionBudgetTimeout {run.policy.disruption_budget_timeout}",
    )
    return run.model_copy(update={"skipped": [*run.skipped, inst.instance_id]})


def fault_on_expired(
    state: PassState, run: UpgradeRun, expired: Sequence[BudgetWait]
) -> UpgradeRun:
    """Policy Fault, once the rest of the batch has settled: the run faults naming the budget
    (unless closing the batch faulted it already)."""
    if not expired or run_finished(run) or run.stop_reason is not None:
        return run
    budgets = ", ".join(sorted({w.disruption_budget for w in expired}))
    ids = ", ".join(str(w.instance_id) for w in expired)
    run = fault_run(
        state,
        run,
        ErrorCode.DISRUPTION_BUDGET_TIMEOUT,
        f"PodDisruptionBudget {budgets} kept instance(s) {ids} from being upgraded for "
        f"longer than disruptionBudgetTimeout {run.policy.disruption_budget_timeout}",
    )
    return finish_faulting(state, run)
