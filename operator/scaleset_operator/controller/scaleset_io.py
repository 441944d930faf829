"""Reads and writes of the ScaleSet object itself: the GET that starts a pass (or the watch's
copy standing in for it), and the status write, conditional on the version the pass read."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from scaleset_operator.controller.pacing import StatusPacer, changed_fields
from scaleset_operator.controller.scaleset_copy import ScaleSetCopy
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import ConflictError, NotFoundError
from scaleset_operator.models.status import ScaleSetStatus
from scaleset_operator.planner import conditions as cond
from scaleset_operator.planner.timefmt import stamp

Obj = dict[str, Any]
log = logging.getLogger("scaleset_operator.reconcile")
SPEC_VALID = "SpecValid"


def invalid_spec(kube: KubeClient, obj: Obj, exc: ValidationError) -> None:
    """Says in the status why the spec cannot be acted on (the schema let it through)."""
    status = status_of(obj)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    message = f"spec.{where}: {first['msg']}"
    conditions = cond.set_condition(
        status.conditions,
        type_=SPEC_VALID,
        status=False,
        reason="InvalidSpec",
        message=message,
        now=stamp(datetime.now(UTC)),
        generation=obj["metadata"].get("generation"),
    )
    new = status.model_copy(update={"conditions": conditions})
    if new != status:
        kube.replace_status(obj, new.wire())
    log.warning(
        "%s/%s: cannot act on spec: %s",
        obj["metadata"]["namespace"],
        obj["metadata"]["name"],
        message,
    )


def status_of(obj: Obj) -> ScaleSetStatus:
    try:
        return ScaleSetStatus.model_validate(obj.get("status") or {})
    except ValidationError:
        log.warning(
            "status of %s is unreadable; starting from an empty one", obj["metadata"]["name"]
        )
        return ScaleSetStatus()


def remember_write(
    key: tuple[str, str],
    written: Obj | None,
    pacer: StatusPacer | None,
    scalesets: ScaleSetCopy | None,
    *,
    progress_only: bool = False,
) -> None:
    """A status write went through (`written`), or was refused as stale (None).
    `progress_only`: it recorded nothing but progress counters, so its watch event is an echo
    that leaves a pass nothing to do; known as such at once, since the echo may come back
    while the pass is still acting."""
    if scalesets is not None:
        if written is None:
            scalesets.distrust(key)
        else:
            scalesets.known(key, written)
            version = (written.get("metadata") or {}).get("resourceVersion")
            if progress_only and version:
                scalesets.wrote_progress(key, str(version))
    if written is not None and pacer is not None:
        pacer.wrote(key)


def read_scaleset(kube: KubeClient, key: tuple[str, str], scalesets: ScaleSetCopy | None) -> Obj:
    obj = kube.get_scaleset(*key)
    if scalesets is not None:
        scalesets.known(key, obj)
    return obj


def unchanged(
    kube: KubeClient, key: tuple[str, str], obj: Obj, scalesets: ScaleSetCopy | None
) -> bool:
    """Whether the API still has `obj`'s version; if not, the next pass reads it afresh."""
    try:
        fresh = read_scaleset(kube, key, scalesets)
    except NotFoundError:
        return False
    return bool(fresh["metadata"].get("resourceVersion") == obj["metadata"].get("resourceVersion"))


def write_status(
    kube: KubeClient, obj: Obj, status: ScaleSetStatus, new_status: ScaleSetStatus
) -> Obj | None:
    """The object as written, or None when it changed since it was read."""
    try:
        written = {**obj, **kube.replace_status(obj, new_status.wire())}
    except ConflictError:
        return None
    if log.isEnabledFor(logging.DEBUG):
        changed = ", ".join(changed_fields(status, new_status))
        log.debug(
            "%s/%s status: %s", obj["metadata"]["namespace"], obj["metadata"]["name"], changed
        )
    return written
