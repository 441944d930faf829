"""Instances as pods: building a pod from the model, and reading a pod back as an Instance.

Reading is forgiving: a malformed status or a hand-edited annotation gives a neutral field,
never an exception, so one odd pod cannot stop a whole scale set.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from scaleset_operator.models.instance import (
    ANNOTATION_IMAGE_URN,
    ANNOTATION_MODEL_HASH,
    ANNOTATION_PROTECT,
    ANNOTATION_SURGE_FOR,
    ANNOTATION_UPGRADE,
    LABEL_INSTANCE_ID,
    LABEL_SCALESET,
    LABEL_UPGRADE_SKIPPED,
    ContainerState,
    Instance,
    UpgradeMark,
)
from scaleset_operator.models.scaleset import GROUP, KIND, VERSION, HealthSource, ScaleSetSpec
from scaleset_operator.planner.actions import CreateInstance
from scaleset_operator.planner.health import same_image
from scaleset_operator.planner.model_hash import os_container_name

Obj = dict[str, Any]
ZONE_LABEL = "topology.kubernetes.io/zone"


def pod_name(scaleset: str, instance_id: int) -> str:
    return f"{scaleset}-{instance_id}"


def owner_reference(scaleset: Obj) -> Obj:
    meta = scaleset["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def claim_name(template: Obj, pod: str) -> str:
    return f"{(template.get('metadata') or {}).get('name') or 'data'}-{pod}"


def build_claims(scaleset: Obj, spec: ScaleSetSpec, instance_id: int) -> list[Obj]:
    """One PVC per data disk, owned by the ScaleSet rather than the pod so it outlives
    every recreation of the instance."""
    name = scaleset["metadata"]["name"]
    pod = pod_name(name, instance_id)
    claims = []
    for template in spec.volume_claim_templates:
        claim = copy.deepcopy(template)
        # The templates keep unknown fields, nulls included: `metadata: null` is possible.
        meta = claim["metadata"] = dict(claim.get("metadata") or {})
        meta["name"] = claim_name(template, pod)
        meta["labels"] = {
            **(meta.get("labels") or {}),
            LABEL_SCALESET: name,
            LABEL_INSTANCE_ID: str(instance_id),
        }
        meta["ownerReferences"] = [owner_reference(scaleset) | {"controller": False}]
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        claims.append(claim)
    return claims


def build_pod(scaleset: Obj, spec: ScaleSetSpec, model_hash: str, action: CreateInstance) -> Obj:
    name = scaleset["metadata"]["name"]
    template = copy.deepcopy(spec.template)
    meta: Obj = template.get("metadata") or {}
    pod_spec: Obj = template.get("spec") or {}
    pname = pod_name(name, action.instance_id)
    labels = dict(meta.get("labels") or {})
    labels.update({LABEL_SCALESET: name, LABEL_INSTANCE_ID: str(action.instance_id)})
    annotations = dict(meta.get("annotations") or {})
    annotations.update({ANNOTATION_IMAGE_URN: action.image_urn, ANNOTATION_MODEL_HASH: model_hash})
    if action.upgrade is not None:
        annotations[ANNOTATION_UPGRADE] = json.dumps(action.upgrade.wire(), sort_keys=True)
    if action.surge_for is not None:
        annotations[ANNOTATION_SURGE_FOR] = str(action.surge_for)
    os_name = os_container_name(spec)
    for container in pod_spec.get("containers") or []:
        if container.get("name") == os_name:
            container["image"] = action.container_image
    pod_spec.setdefault("hostname", pname)
    volumes = list(pod_spec.get("volumes") or [])
    for claim in spec.volume_claim_templates:
        vol = (claim.get("metadata") or {}).get("name") or "data"
        if not any(v.get("name") == vol for v in volumes):
            volumes.append(
                {"name": vol, "persistentVolumeClaim": {"claimName": claim_name(claim, pname)}}
            )
    if volumes:
        pod_spec["volumes"] = volumes
    probe = spec.health_probe
    if probe.source is HealthSource.APPLICATION_HEALTH and probe.condition_type:
        gates = list(pod_spec.get("readinessGates") or [])
        if not any(g.get("conditionType") == probe.condition_type for g in gates):
            gates.append({"conditionType": probe.condition_type})
        pod_spec["readinessGates"] = gates
    if "topologySpreadConstraints" not in pod_spec:
        # Spread instances over zones so zone-by-zone batches mean something.
        pod_spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": ZONE_LABEL,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {LABEL_SCALESET: name}},
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pname,
            "namespace": scaleset["metadata"]["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(scaleset)],
        },
        "spec": pod_spec,
    }


def ready_on_spec(pod: Obj) -> bool:
    """Ready, with every container reporting the image its spec names: a pod whose image was
    just patched still reports Ready from its old container until the kubelet restarts it."""
    if not _condition(pod, "Ready"):
        return False
    wanted = {
        c.get("name"): c.get("image")
        for c in (pod.get("spec") or {}).get("containers") or []
        if isinstance(c, dict)
    }
    running = {
        c.get("name"): c.get("image")
        for c in (pod.get("status") or {}).get("containerStatuses") or []
        if isinstance(c, dict)
    }
    # Kubelets report the image normalised (`docker.io/library/nginx:1.25` for `nginx:1.25`).
    return all(
        isinstance(got := running.get(name), str)
        and isinstance(image, str)
        and same_image(got, image)
        for name, image in wanted.items()
    )


def _condition(pod: Obj, type_: str) -> bool | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond.get("status") == "True"
    return None


def _container_state(pod: Obj, name: str | None) -> ContainerState | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if not isinstance(cs, dict) or cs.get("name") != name:
            continue
        state = cs.get("state") or {}
        waiting = state.get("waiting") if isinstance(state, dict) else None
        waiting = waiting if isinstance(waiting, dict) else {}
        last = cs.get("lastState") or {}
        ended = (last.get("terminated") or {}) if isinstance(last, dict) else {}
        ended = ended if isinstance(ended, dict) else {}
        exited = state.get("terminated") if isinstance(state, dict) else None
        exited = exited if isinstance(exited, dict) else {}
        try:
            return _state(
                str(cs.get("name")),
                str(cs.get("image") or ""),
                bool(cs.get("ready")),
                int(cs.get("restartCount") or 0),
                waiting.get("reason"),
                waiting.get("message"),
                isinstance(state, dict) and "running" in state,
                ended.get("finishedAt"),
                ended.get("startedAt"),
                exited.get("startedAt"),
            )
        except (TypeError, ValueError, ValidationError):
            return None
    return None


@lru_cache(maxsize=1 << 12)
def _state(
    name: str,
    image: str,
    ready: bool,
    restarts: int,
    waiting: Any,
    message: Any,
    running: bool,
    last_finished: Any,
    last_started: Any,
    exited_started: Any,
) -> ContainerState:
    """Shared (frozen) copies: most containers of a scale set report the same state."""
    return ContainerState(
        name=name,
        image=image,
        ready=ready,
        restart_count=restarts,
        waiting_reason=waiting,
        waiting_message=message if isinstance(message, str) else None,
        running=running,
        last_finished_at=last_finished if isinstance(last_finished, str) else None,
        last_started_at=last_started if isinstance(last_started, str) else None,
        exited_run_started_at=exited_started if isinstance(exited_started, str) else None,
    )


def _mark(annotations: dict[str, str]) -> UpgradeMark | None:
    text = annotations.get(ANNOTATION_UPGRADE)
    return _parse_mark(text) if text else None


# The instances of one batch carry the same mark: one parsed (frozen) copy serves them all,
# which keeps the memory of ten thousand remembered instances down.
@lru_cache(maxsize=1 << 12)
def _parse_mark(text: str) -> UpgradeMark | None:
    try:
        return UpgradeMark.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None


def to_instance(
    pod: Obj,
    spec: ScaleSetSpec,
    zones: dict[str, str],
    ready_endpoints: set[str] | None,
) -> Instance | None:
    """None for pods that are not instances (no or malformed instance id)."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    try:
        instance_id = int(labels.get(LABEL_INSTANCE_ID, ""))
    except ValueError:
        return None
    os_name = os_container_name(spec)
    containers = (pod.get("spec") or {}).get("containers") or []
    os_image = next((c.get("image") or "" for c in containers if c.get("name") == os_name), "")
    node = (pod.get("spec") or {}).get("nodeName")
    probe = spec.health_probe
    gate = _condition(pod, probe.condition_type) if probe.condition_type else None
    surge = annotations.get(ANNOTATION_SURGE_FOR)
    ready_since = None
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            ready_since = cond.get("lastTransitionTime")
    return Instance(
        instance_id=instance_id,
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        os_image=str(os_image),
        image_urn=annotations.get(ANNOTATION_IMAGE_URN),
        model_hash=annotations.get(ANNOTATION_MODEL_HASH),
        protected=str(annotations.get(ANNOTATION_PROTECT, "")).lower() == "true",
        deleting=bool(meta.get("deletionTimestamp")),
        deletion_due=meta.get("deletionTimestamp"),
        phase=(pod.get("status") or {}).get("phase"),
        ready=bool(_condition(pod, "Ready")),
        ready_since=ready_since if isinstance(ready_since, str) else None,
        created_at=meta.get("creationTimestamp"),
        node_name=node,
        zone=zones.get(node) if node else None,
        os_status=_container_state(pod, os_name),
        gate_ready=gate,
        endpoint_ready=(meta.get("name") in ready_endpoints)
        if ready_endpoints is not None
        else None,
        upgrade=_mark(annotations),
        surge_for=int(surge) if surge and surge.isdigit() else None,
        labels={str(k): str(v) for k, v in labels.items()},
    )


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def image_patch(
    pod: Obj, spec: ScaleSetSpec, image: str, urn: str, mark: UpgradeMark | None
) -> list[Obj]:
    """A JSON patch that changes the OS image only if the pod is still the one we observed
    with the image we observed (`test` ops): a competing writer makes it fail, not vanish."""
    os_name = os_container_name(spec)
    containers = (pod.get("spec") or {}).get("containers") or []
    index = next(i for i, c in enumerate(containers) if c.get("name") == os_name)
    meta = pod.get("metadata") or {}
    ops: list[Obj] = [
        {"op": "test", "path": "/metadata/uid", "value": meta.get("uid")},
        {
            "op": "test",
            "path": f"/spec/containers/{index}/image",
            "value": containers[index].get("image"),
        },
        {"op": "replace", "path": f"/spec/containers/{index}/image", "value": image},
    ]
    if LABEL_UPGRADE_SKIPPED in (meta.get("labels") or {}):
        # The instance is upgraded after all: the label no longer says anything true.
        ops.append({"op": "remove", "path": f"/metadata/labels/{_escape(LABEL_UPGRADE_SKIPPED)}"})
    annotations = {ANNOTATION_IMAGE_URN: urn}
    if mark is not None:
        annotations[ANNOTATION_UPGRADE] = json.dumps(mark.wire(), sort_keys=True)
    if not meta.get("annotations"):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": annotations})
    else:
        for key, value in annotations.items():
            ops.append(
                {"op": "add", "path": f"/metadata/annotations/{_escape(key)}", "value": value}
            )
    return ops


def label_patch(uid: str, key: str, value: str) -> list[Obj]:
    """Sets one label on the pod we observed (our pods always carry labels)."""
    return [
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "add", "path": f"/metadata/labels/{_escape(key)}", "value": value},
    ]


def promote_patch(uid: str) -> list[Obj]:
    """Drops the surge marker and its upgrade mark: the pod is now an ordinary instance of its
    set, and the run it came from counted it under the id of the instance it replaced."""
    return [
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "remove", "path": f"/metadata/annotations/{_escape(ANNOTATION_SURGE_FOR)}"},
        {"op": "remove", "path": f"/metadata/annotations/{_escape(ANNOTATION_UPGRADE)}"},
    ]
