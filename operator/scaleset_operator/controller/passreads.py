"""What one reconcile pass reads from listings beside its own objects: each read at most once
per pass, however often the pass plans."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from scaleset_operator.catalog.objects import catalog_entries
from scaleset_operator.k8s.budgets import to_budget
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.waves import to_waves
from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.instance import REQUEST_ANNOTATIONS, Request
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.planner.disruption import DisruptionBudget
from scaleset_operator.planner.waves.gate import WaveGate, gate_for

Obj = dict[str, Any]
log = logging.getLogger("scaleset_operator.reconcile")


class PassBudgets:
    """The namespace's PodDisruptionBudgets, listed at most once per pass and only when the pass
    would take instances out during an OS upgrade or a model rollout: most passes of most
    scale sets never need them."""

    def __init__(self, kube: KubeClient, namespace: str) -> None:
        self._kube, self._namespace = kube, namespace
        self._listed: tuple[DisruptionBudget, ...] | None = None

    def get(self) -> tuple[DisruptionBudget, ...]:
        if self._listed is None:
            items = self._kube.list_disruption_budgets(self._namespace)
            self._listed = tuple(to_budget(p) for p in items)
        return self._listed


@dataclass(frozen=True)
class PassReads:
    """What every scale set reads from shared listings, parsed once per pass even when the
    pass plans twice (on the pod copy, then on a fresh LIST)."""

    catalog: tuple[CatalogEntry, ...]
    wave: WaveGate | None

    @classmethod
    def of(cls, kube: KubeClient, obj: Obj, spec: ScaleSetSpec) -> PassReads:
        labels = obj["metadata"].get("labels") or {}
        waves = to_waves(kube.list_waves())
        return cls(
            catalog=catalog_entries(kube.list_catalog()),
            wave=gate_for(waves, labels, spec.image_reference.family),
        )


def requests_of(obj: Obj) -> tuple[Request, ...]:
    """The user's requests carried by the ScaleSet's annotations; a malformed one is logged
    and left out, never the reason a pass fails."""
    annotations = obj["metadata"].get("annotations") or {}
    found = []
    for key in REQUEST_ANNOTATIONS:
        text = annotations.get(key)
        if not text:
            continue
        try:
            found.append(Request.model_validate(json.loads(text)))
        except (ValueError, ValidationError):
            log.warning("ignoring malformed request annotation %s", key)
    return tuple(found)
