"""User requests (start, cancel, rollback, update-instances, clear-quarantine), each handled
once and remembered in status by its id."""

from __future__ import annotations

from scaleset_operator.models.instance import Request, RequestAction
from scaleset_operator.models.status import LastAction, ResolvedImage
from scaleset_operator.planner.actions import EventReason
from scaleset_operator.planner.bring_to_model import bring_to_model
from scaleset_operator.planner.instances import id_list, live_instances
from scaleset_operator.planner.passstate import NORMAL, WARNING, PassState
from scaleset_operator.planner.run_end import run_finished
from scaleset_operator.planner.run_start import user_start
from scaleset_operator.planner.user_rollback import request_rollback

# Request objects outlive the pass that handles them; status remembers the latest handled ids.
_REQUEST_MEMORY = 20


def _oldest_first_cancel_last(req: Request) -> tuple[str, bool, str]:
    return (req.at, req.action is RequestAction.CANCEL, req.id)


def handle_requests(state: PassState, model: ResolvedImage) -> None:
    """Each request once, oldest first; a cancel made together with a start comes after it."""
    handled = list(state.status.handled_requests)
    for req in sorted(state.obs.requests, key=_oldest_first_cancel_last):
        if req.id in handled:
            continue
        handled.append(req.id)
        if req.action is RequestAction.START:
            user_start(state)
        elif req.action is RequestAction.CANCEL:
            _user_cancel(state)
        elif req.action is RequestAction.ROLLBACK:
            request_rollback(state)
        elif req.action is RequestAction.UPDATE_INSTANCES:
            _update_instances(state, req, model)
        elif req.action is RequestAction.CLEAR_QUARANTINE:
            _clear_quarantine(state, req)
    state.status = state.status.model_copy(update={"handled_requests": handled[-_REQUEST_MEMORY:]})


def _update_instances(state: PassState, req: Request, model: ResolvedImage) -> None:
    model_hash = state.status.model_hash or ""
    wanted_all = "*" in req.instance_ids
    wanted = {int(x) for x in req.instance_ids if x.isdigit()}
    live = live_instances(state.obs.instances)
    chosen = []
    for iid, inst in sorted(live.items()):
        if not (wanted_all or iid in wanted) or inst.deleting or inst.protected:
            continue
        if iid in state.touched:
            continue
        if inst.model_hash == model_hash and inst.image_urn == model.urn:
            continue
        bring_to_model(state, inst, model, model_hash)
        chosen.append(inst)
    unknown = sorted(wanted - set(live))
    if unknown:
        state.event(
            WARNING, EventReason.UNKNOWN_INSTANCES, f"update-instances: no instances {unknown}"
        )
    state.event(
        NORMAL,
        EventReason.UPDATE_INSTANCES,
        f"bringing instances {id_list(chosen) or '(none needed)'} to the latest model {model.urn}",
    )


def _clear_quarantine(state: PassState, req: Request) -> None:
    """A quarantined version, faulted or rolled back by a user, becomes eligible for `latest`
    again."""
    current = state.status.faulted_versions
    cleared = current if not req.versions or "*" in req.versions else req.versions
    kept = [v for v in current if v not in cleared]
    reasons = [q for q in state.status.quarantine_reasons if q.version in kept]
    state.status = state.status.model_copy(
        update={"faulted_versions": kept, "quarantine_reasons": reasons}
    )
    done = [v for v in current if v not in kept]
    state.event(
        NORMAL,
        EventReason.QUARANTINE_CLEARED,
        f"versions {', '.join(done)} may be picked as latest again"
        if done
        else "clear-quarantine: no quarantined version matched",
    )


def _user_cancel(state: PassState) -> None:
    run = state.status.upgrade_run
    if run is None or run_finished(run):
        state.event(WARNING, EventReason.NO_ROLLING_UPGRADE, "cancel: no OS upgrade is running")
        return
    state.status = state.status.model_copy(
        update={
            "upgrade_run": run.model_copy(
                update={"last_action": LastAction.CANCEL, "last_action_time": state.now_s}
            )
        }
    )
    state.event(
        NORMAL,
        EventReason.ROLLING_UPGRADE_CANCELLING,
        "cancel requested; in-flight instances settle first",
    )
