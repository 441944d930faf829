"""PodDisruptionBudgets during OS upgrades and model rollouts, with the real disruption
controller of kube-controller-manager keeping the budgets' status and kwok playing the
kubelets."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from tests.e2e.support import PodEvents, World, eventually

INSTANCE_ID = "scaleset.dev/instance-id"
SKIPPED = "scaleset.dev/upgrade-skipped"


def _budget(world: World, name: str, selector: dict[str, str], max_unavailable: int) -> None:
    body = client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodDisruptionBudgetSpec(
            max_unavailable=max_unavailable,
            selector=client.V1LabelSelector(match_labels=selector),
        ),
    )
    policy = client.PolicyV1Api(world.api)
    policy.create_namespaced_pod_disruption_budget(world.namespace, body)

    def settled() -> client.V1PodDisruptionBudgetStatus | None:
        pdb = policy.read_namespaced_pod_disruption_budget(name, world.namespace)
        status = pdb.status
        seen.append(status)
        # The disruption controller has looked at it: what it allows is what it says.
        done = (
            status is not None
            and status.observed_generation == pdb.metadata.generation
            and status.disruptions_allowed == max_unavailable
        )
        if not done and len(seen) % 10 == 0:
            # kube-controller-manager learns of new kinds (ScaleSet, the owner whose scale
            # subresource maxUnavailable needs) by re-reading discovery every 30 s, and the
            # disruption controller does not retry a failed sync by itself: any change of
            # the budget makes it try again.
            nudge = {"metadata": {"annotations": {"e2e.scaleset.dev/nudge": str(len(seen))}}}
            policy.patch_namespaced_pod_disruption_budget(name, world.namespace, nudge)
        return status if done else None

    seen: list[Any] = []
    try:
        eventually(settled, 90, what=f"disruption controller to process {name}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status {seen[-1] if seen else None}") from None


def _ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _most_unready_at_once(initial: list[client.V1Pod], seen: list[client.V1Pod]) -> int:
    """Replays the watch: the most pods not ready at the same time."""
    ready = {p.metadata.name: _ready(p) for p in initial}
    worst = 0
    for pod in seen:
        ready[pod.metadata.name] = _ready(pod) and pod.metadata.deletion_timestamp is None
        worst = max(worst, sum(1 for r in ready.values() if not r))
    return worst


def _event_reasons(world: World) -> set[str]:
    events = world.core.list_namespaced_event(world.namespace).items
    return {e.reason for e in events if e.involved_object.kind == "ScaleSet"}


def test_budget_of_one_keeps_one_pod_out_at_a_time(world: World) -> None:
    world.publish("1.0.0")
    # Across zones, so that every batch holds two instances.
    rolling = {"maxBatchInstancePercent": 20, "enableCrossZoneUpgrade": True}
    world.create(world.scaleset_body(rolling=rolling))
    world.wait_ready()
    _budget(world, "web", {"app": "web"}, 1)

    initial = world.pods()
    events = PodEvents(world)
    events.start()
    try:
        world.publish("1.1.0")
        status = world.wait_upgrade_code("Completed", timeout=150)
    finally:
        seen = events.stop()

    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    assert status["upgradeRun"]["batchesDone"] == 5
    # Batches of two, yet the budget lets only one pod at a time out of service.
    assert _most_unready_at_once(initial, seen) == 1
    assert "WaitingForDisruptionBudget" in _event_reasons(world)
    world.wait_ready()


def test_skip_labels_an_instance_a_budget_of_zero_blocks(world: World) -> None:
    world.publish("1.0.0")
    rolling: dict[str, Any] = {
        "disruptionBudgetTimeout": "PT3S",
        "onDisruptionBudgetTimeout": "Skip",
    }
    world.create(world.scaleset_body(capacity=5, rolling=rolling))
    world.wait_ready(capacity=5)
    _budget(world, "pinned", {INSTANCE_ID: "3"}, 0)

    world.publish("1.1.0")
    status = world.wait_upgrade_code("Completed", timeout=90)

    assert status["upgradeRun"]["skipped"] == [3]
    images = world.images()
    assert images[3] == "example.test/os:1.0.0"
    assert {i for i, image in images.items() if image.endswith(":1.1.0")} == {0, 1, 2, 4}
    labelled = world.core.list_namespaced_pod(
        world.namespace, label_selector=f"{SKIPPED}=disruption-budget"
    ).items
    assert [p.metadata.name for p in labelled] == ["web-3"]
    assert {"WaitingForDisruptionBudget", "UpgradeSkipped"} <= _event_reasons(world)


def test_fault_names_the_budget_that_blocked_too_long(world: World) -> None:
    world.publish("1.0.0")
    rolling = {"disruptionBudgetTimeout": "PT2S"}  # onDisruptionBudgetTimeout: Fault (default)
    world.create(world.scaleset_body(capacity=3, rolling=rolling))
    world.wait_ready(capacity=3)
    _budget(world, "pinned", {INSTANCE_ID: "1"}, 0)

    world.publish("1.1.0")
    world.wait_upgrade_code("Faulted", timeout=60)

    entry = world.status()["osUpgradeHistory"][0]
    assert entry["error"]["code"] == "DisruptionBudgetTimeoutInRollingUpgrade"
    assert "PodDisruptionBudget pinned" in entry["error"]["message"]
    assert world.images()[1] == "example.test/os:1.0.0"
    world.wait_ready(capacity=3)


def _holds(world: World) -> dict[str, list[int]]:
    found = world.status().get("outOfDate") or {}
    return {h["reason"]: h["instanceIds"] for h in found.get("holds") or []}


def test_a_model_rollout_waits_for_the_budget_then_keeps_within_it(world: World) -> None:
    world.publish("1.0.0")
    rolling = {"maxBatchInstancePercent": 40, "maxUnhealthyInstancePercent": 40}  # batches of 2
    world.create(world.scaleset_body(capacity=5, automatic=False, mode="Rolling", rolling=rolling))
    world.wait_ready(capacity=5)
    _budget(world, "web", {"app": "web"}, 0)
    uids = {p.metadata.name: p.metadata.uid for p in world.pods()}

    initial = world.pods()
    events = PodEvents(world)
    events.start()
    try:
        # A template change: every instance is recreated on the new model, in batches.
        template = {
            "metadata": {"labels": {"app": "web", "tier": "v2"}},
            "spec": {"containers": [{"name": "os", "image": "placeholder"}]},
        }
        world.patch_spec({"template": template})
        eventually(
            lambda: _holds(world).get("DisruptionBudget") == [0, 1, 2, 3, 4],
            30,
            what="the model rollout held by the budget",
        )
        assert "WaitingForDisruptionBudget" in _event_reasons(world)
        time.sleep(3)  # the operator looks again every 2 s: still nothing may go
        assert {p.metadata.name: p.metadata.uid for p in world.pods()} == uids

        policy = client.PolicyV1Api(world.api)
        policy.patch_namespaced_pod_disruption_budget(
            "web", world.namespace, {"spec": {"maxUnavailable": 1}}
        )
        eventually(
            lambda: {p.metadata.labels.get("tier") for p in world.pods()} == {"v2"},
            90,
            what="every instance recreated on the new model",
        )
        world.wait_ready(capacity=5)
    finally:
        seen = events.stop()

    # Batches of two, yet the budget lets only one pod at a time out of service.
    assert _most_unready_at_once(initial, seen) == 1
    status = world.status()
    assert status["latestModelInstances"] == 5
    assert "outOfDate" not in status
