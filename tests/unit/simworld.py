"""A tiny simulated world for planner tests: pods as `Instance` models, a kubelet, a clock.

Applying a Plan does what the controller's act step does (create, delete, patch the OS image
and the pod annotations); `kubelet()` then reports the new containers. Whether a container
becomes ready depends on its image tag:

- `bad...`     ErrImagePull / ImagePullBackOff, never running
- `crash...`   CrashLoopBackOff
- `unready...` running, never ready
- anything else: running and ready after one tick

Time only moves when a test moves it; nothing sleeps.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from scaleset_operator.models.imageversion import CatalogEntry, ImageVersionSpec
from scaleset_operator.models.instance import (
    LABEL_INSTANCE_ID,
    LABEL_SCALESET,
    ContainerState,
    Instance,
    Request,
)
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import RunningStatusCode, ScaleSetStatus, UpgradeRun
from scaleset_operator.planner.actions import (
    CreateInstance,
    DeleteInstance,
    EmitEvent,
    LabelInstance,
    PromoteInstance,
    SetInstanceImage,
)
from scaleset_operator.planner.disruption import DisruptionBudget, SelectorRequirement
from scaleset_operator.planner.model_hash import model_hash
from scaleset_operator.planner.observed import Observed, Plan, PlannerSettings
from scaleset_operator.planner.plan import plan
from scaleset_operator.planner.timefmt import stamp
from scaleset_operator.planner.waves.gate import WaveGate

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
OS_CONTAINER = "os"
REGISTRY = "registry.example/os"
PUBLISHER, OFFER, SKU = "Canonical", "ubuntu-24_04-lts", "server"
LOCATION = "westeurope"
ZONES = ("zone-1", "zone-2", "zone-3")
FINISHED = frozenset(
    {RunningStatusCode.COMPLETED, RunningStatusCode.FAULTED, RunningStatusCode.CANCELLED}
)


# --- building inputs -------------------------------------------------------------------------


def image_of(tag: str) -> str:
    return f"{REGISTRY}:{tag}"


def tag_of(image: str) -> str:
    return image.rsplit(":", 1)[-1]


def version_entry(
    version: str,
    tag: str | None = None,
    *,
    excluded: bool = False,
    regions: Iterable[str] = (),
    sku: str = SKU,
    gallery: str | None = None,
    gallery_image: str | None = None,
    name: str | None = None,
) -> CatalogEntry:
    """One published ImageVersion; its container image is `REGISTRY:<tag>` (default: version)."""
    if gallery is None:
        family: dict[str, Any] = {"publisher": PUBLISHER, "offer": OFFER, "sku": sku}
    else:
        family = {"gallery": gallery, "gallery_image": gallery_image}
    spec = ImageVersionSpec(
        **family,
        version=version,
        image=image_of(tag if tag is not None else version),
        exclude_from_latest=excluded,
        target_regions=list(regions),
    )
    return CatalogEntry(name=name or f"{gallery or sku}-{version}", spec=spec)


def spec_of(
    *,
    capacity: int = 10,
    mode: str = "Manual",
    version: str = "latest",
    automatic: bool = True,
    disable_rollback: bool = False,
    health_timeout: str = "PT60S",
    rolling: dict[str, Any] | None = None,
    env: str = "one",
    location: str = LOCATION,
    image_reference: dict[str, Any] | None = None,
) -> ScaleSetSpec:
    """A ScaleSet spec as a user would write it (camelCase), validated by the model."""
    ref = image_reference or {"publisher": PUBLISHER, "offer": OFFER, "sku": SKU}
    return ScaleSetSpec.model_validate(
        {
            "capacity": capacity,
            "location": location,
            "imageReference": {**ref, "version": version},
            "upgradePolicy": {
                "mode": mode,
                "automaticOSUpgradePolicy": {
                    "enableAutomaticOSUpgrade": automatic,
                    "disableAutomaticRollback": disable_rollback,
                },
                "rollingUpgradePolicy": rolling or {},
                "healthTimeout": health_timeout,
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": OS_CONTAINER,
                            "image": "set-by-operator",
                            "env": [{"name": "MODEL", "value": env}],
                        }
                    ]
                },
            },
        }
    )


# --- the world ---------------------------------------------------------------------------------


@dataclass
class World:
    """The pods of one scale set and a kubelet that runs them."""

    name: str = "web"
    zoned: bool = False
    instances: dict[int, Instance] = field(default_factory=dict)
    protected: set[int] = field(default_factory=set)
    # Instances made unhealthy by something other than us (node trouble, a bad deploy...).
    disrupted: set[int] = field(default_factory=set)
    _uids: itertools.count[int] = field(default_factory=itertools.count)

    def zone_of(self, iid: int) -> str | None:
        return ZONES[iid % len(ZONES)] if self.zoned else None

    def snapshot(self) -> tuple[Instance, ...]:
        return tuple(
            inst.model_copy(update={"protected": iid in self.protected})
            for iid, inst in sorted(self.instances.items())
        )

    def by_name(self, name: str, uid: str) -> Instance | None:
        for inst in self.instances.values():
            if inst.name == name and inst.uid == uid:
                return inst
        return None

    def apply(self, actions: Iterable[object], *, now: datetime, mhash: str) -> None:
        """The controller's act step. A deleted pod lingers (`deleting`) until the next
        kubelet round, like a pod in its termination grace period."""
        for action in actions:
            if isinstance(action, CreateInstance):
                self._create(action, now, mhash)
            elif isinstance(action, DeleteInstance):
                inst = self.by_name(action.name, action.uid)
                if inst is not None:
                    self._put(inst.model_copy(update={"deleting": True}))
            elif isinstance(action, SetInstanceImage):
                inst = self.by_name(action.name, action.uid)
                if inst is None or inst.deleting:
                    continue
                update: dict[str, Any] = {
                    "os_image": action.container_image,
                    "image_urn": action.image_urn,
                }
                if action.upgrade is not None:
                    update["upgrade"] = action.upgrade
                self._put(inst.model_copy(update=update))
            elif isinstance(action, LabelInstance):
                inst = self.by_name(action.name, action.uid)
                if inst is not None:
                    labels = {**inst.labels, action.key: action.value}
                    self._put(inst.model_copy(update={"labels": labels}))
            elif isinstance(action, PromoteInstance):
                inst = self.by_name(action.name, action.uid)
                if inst is not None and not inst.deleting:
                    self._put(inst.model_copy(update={"surge_for": None, "upgrade": None}))
            else:  # pragma: no cover - a new action type needs a branch here
                raise TypeError(f"unknown action {action!r}")

    def _create(self, action: CreateInstance, now: datetime, mhash: str) -> None:
        iid = action.instance_id
        if iid in self.instances:
            raise AssertionError(f"instance {iid} created twice")
        self._put(
            Instance(
                instance_id=iid,
                name=f"{self.name}-{iid}",
                uid=f"uid-{iid}-{next(self._uids)}",
                os_image=action.container_image,
                image_urn=action.image_urn,
                model_hash=mhash,
                phase="Pending",
                created_at=stamp(now),
                node_name=f"node-{iid % 4}",
                zone=self.zone_of(iid),
                upgrade=action.upgrade,
                surge_for=action.surge_for,
                labels={"app": "web", LABEL_SCALESET: self.name, LABEL_INSTANCE_ID: str(iid)},
            )
        )

    def _put(self, inst: Instance) -> None:
        self.instances[inst.instance_id] = inst

    def kubelet(self, now: datetime) -> None:
        """One kubelet round: finish deletions, (re)start containers on their spec image."""
        for iid in [i for i, inst in self.instances.items() if inst.deleting]:
            del self.instances[iid]
        for iid, inst in list(self.instances.items()):
            self._put(self._run(iid, inst, now))

    def _run(self, iid: int, inst: Instance, now: datetime) -> Instance:
        image = inst.os_image
        tag = tag_of(image)
        old = inst.os_status
        restarted = old is None or old.image != image
        restarts = 0 if restarted or old is None else old.restart_count
        if tag.startswith("bad"):
            state = ContainerState(
                name=OS_CONTAINER, image=image, waiting_reason="ImagePullBackOff"
            )
        elif tag.startswith("crash"):
            state = ContainerState(
                name=OS_CONTAINER,
                image=image,
                waiting_reason="CrashLoopBackOff",
                restart_count=restarts + 1,
            )
        else:
            ready = not tag.startswith("unready") and iid not in self.disrupted
            state = ContainerState(
                name=OS_CONTAINER, image=image, running=True, ready=ready, restart_count=restarts
            )
        was_ready = inst.ready and not restarted
        return inst.model_copy(
            update={
                "os_status": state,
                "phase": "Running" if state.running or inst.phase == "Running" else "Pending",
                "ready": state.ready,
                "gate_ready": state.ready,
                "endpoint_ready": state.ready,
                "ready_since": (inst.ready_since if was_ready else stamp(now))
                if state.ready
                else None,
            }
        )

    # --- queries used by assertions ---------------------------------------------------------

    def live(self) -> list[Instance]:
        return [i for _, i in sorted(self.instances.items()) if not i.deleting]

    def ids(self) -> list[int]:
        return [i.instance_id for i in self.live()]

    def tags(self) -> dict[int, str]:
        return {i.instance_id: tag_of(i.os_image) for i in self.live()}

    def on(self, tag: str) -> list[int]:
        return [i.instance_id for i in self.live() if tag_of(i.os_image) == tag]


# --- driving the planner -----------------------------------------------------------------------


@dataclass
class Sim:
    """A scale set, its catalog, its pods and a clock: plan, act, tick, repeat."""

    spec: ScaleSetSpec
    catalog: list[CatalogEntry]
    world: World = field(default_factory=World)
    status: ScaleSetStatus = field(default_factory=ScaleSetStatus)
    now: datetime = T0
    generation: int = 1
    settings: PlannerSettings = field(
        default_factory=lambda: PlannerSettings(automatic_upgrade_delay=timedelta(seconds=5))
    )
    # One live request per kind, like the CLI's ScaleSet annotations.
    requests: dict[str, Request] = field(default_factory=dict)
    events: list[EmitEvent] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    _request_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # PodDisruptionBudgets as their specs say: a selector (as a budget allowing nothing) and
    # maxUnavailable; `observed()` works out what each allows, as the disruption controller
    # would.
    budgets: dict[str, tuple[DisruptionBudget, int]] = field(default_factory=dict)
    # What an UpgradeWave lets this scale set's platform upgrades target.
    wave: WaveGate | None = None

    def observed(self) -> Observed:
        return Observed(
            name=self.world.name,
            namespace="default",
            generation=self.generation,
            spec=self.spec,
            status=self.status,
            instances=self.world.snapshot(),
            catalog=tuple(self.catalog),
            now=self.now,
            requests=tuple(self.requests.values()),
            settings=self.settings,
            budgets=self.disruption_budgets(),
            wave=self.wave,
        )

    def add_budget(
        self,
        name: str,
        max_unavailable: int,
        match_labels: dict[str, str] | None = None,
        match_expressions: tuple[SelectorRequirement, ...] = (),
    ) -> None:
        selector = DisruptionBudget(name, 0, match_labels or {}, match_expressions)
        self.budgets[name] = (selector, max_unavailable)

    def disruption_budgets(self) -> tuple[DisruptionBudget, ...]:
        """Each budget's disruptionsAllowed from the pods' Ready conditions right now."""
        found = []
        for selector, max_unavailable in self.budgets.values():
            selected = [i for i in self.world.live() if selector.selects(i)]
            unready = sum(1 for i in selected if not i.ready)
            allowed = max(0, max_unavailable - unready)
            found.append(replace(selector, disruptions_allowed=allowed))
        return tuple(found)

    def plan(self) -> Plan:
        return plan(self.observed())

    def step(
        self,
        advance: float = 1.0,
        *,
        act: bool = True,
        persist: bool = True,
        kubelet: bool = True,
    ) -> Plan:
        """One reconcile pass at `now`, then `advance` seconds pass and the kubelet runs.

        `act=False` drops the pass's actions (a crash after the status write);
        `persist=False` drops the status (a crash after acting, before the status write);
        `kubelet=False` lets time pass without any container status being reported.
        """
        result = self.plan()
        self.plans.append(result)
        self.events.extend(result.events)
        if act:
            self.world.apply(result.actions, now=self.now, mhash=model_hash(self.spec))
        if persist:
            self.status = result.status
        self.tick(advance, kubelet=kubelet)
        return result

    def tick(self, seconds: float = 1.0, *, kubelet: bool = True) -> None:
        self.now += timedelta(seconds=seconds)
        if kubelet:
            self.world.kubelet(self.now)

    def set_spec(self, **changes: Any) -> None:
        self.spec = spec_of(**changes)
        self.generation += 1

    def update_spec(self, spec: ScaleSetSpec) -> None:
        self.spec = spec
        self.generation += 1

    def request(self, action: str, instance_ids: Iterable[str] = ()) -> Request:
        req = Request(
            id=f"req-{next(self._request_ids)}",
            action=action,
            at=stamp(self.now),
            instance_ids=list(instance_ids),
        )
        self.requests[action] = req
        return req

    def publish(self, *entries: CatalogEntry) -> None:
        self.catalog.extend(entries)

    # --- conveniences for assertions ---------------------------------------------------------

    @property
    def run(self) -> UpgradeRun | None:
        return self.status.upgrade_run

    @property
    def code(self) -> RunningStatusCode | None:
        run = self.status.upgrade_run
        return run.code if run else None

    def run_until(self, done: Any, *, limit: int = 200, advance: float = 1.0) -> list[Plan]:
        """Step until `done(sim)` holds; fails after `limit` passes."""
        plans: list[Plan] = []
        for _ in range(limit):
            if done(self):
                return plans
            plans.append(self.step(advance))
        raise AssertionError(f"not done after {limit} passes; status {self.status.upgrade_state}")

    def settle(self, *, limit: int = 200, advance: float = 1.0) -> list[Plan]:
        """Step until a pass changes nothing: no actions and the same status."""
        plans = []
        for _ in range(limit):
            before = self.status
            result = self.step(advance)
            plans.append(result)
            if not result.actions and result.status == before:
                return plans
        raise AssertionError(f"not settled after {limit} passes")
