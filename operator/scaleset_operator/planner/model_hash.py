"""The hash of the scale set model apart from its image: what decides `latestModelApplied`."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from scaleset_operator.models.scaleset import ScaleSetSpec


def os_container_name(spec: ScaleSetSpec) -> str | None:
    if spec.os_container_name:
        return spec.os_container_name
    containers = (spec.template.get("spec") or {}).get("containers") or []
    if containers and isinstance(containers[0], dict):
        name = containers[0].get("name")
        return str(name) if name else None
    return None


def model_hash(spec: ScaleSetSpec) -> str:
    """Stable hash of the template (OS image blanked), data disks and OS container choice."""
    template: dict[str, Any] = copy.deepcopy(spec.template)
    os_name = os_container_name(spec)
    for container in (template.get("spec") or {}).get("containers") or []:
        if isinstance(container, dict) and container.get("name") == os_name:
            container.pop("image", None)
    payload = {
        "template": template,
        "volumeClaimTemplates": spec.volume_claim_templates,
        "osContainerName": os_name,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def has_extensions(spec: ScaleSetSpec) -> bool:
    """Init containers run only when a pod starts, so an instance with extensions cannot take
    a new OS image in place: the kubelet restarts the OS container alone."""
    return bool((spec.template.get("spec") or {}).get("initContainers"))
