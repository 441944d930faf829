"""The files in examples/ work as they are, applied with kubectl."""

from __future__ import annotations

import subprocess
from pathlib import Path

from scaleset_operator.localcluster import find_binary
from tests.e2e.support import REPO, World, eventually


def _apply(kubeconfig: Path, namespace: str, *files: str) -> None:
    kubectl = find_binary("kubectl")
    assert kubectl is not None
    args = [str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply"]
    for name in files:
        args += ["-f", str(REPO / "examples" / name)]
    subprocess.run(args, check=True, capture_output=True)


def test_web_example(world: World, kubeconfig: Path) -> None:
    _apply(kubeconfig, world.namespace, "imageversions.yaml", "scaleset-web.yaml")
    world.wait_ready("web", capacity=10)
    assert set(world.images("web").values()) == {"registry.example/webos:1.0.0"}


def test_maintenance_window_example_creates_its_instances_at_once(
    world: World, kubeconfig: Path
) -> None:
    """The schedule holds back upgrades, never the creation of instances."""
    _apply(kubeconfig, world.namespace, "imageversions.yaml", "scaleset-maintenance-window.yaml")
    world.wait_ready("nightly", capacity=6)
    assert set(world.images("nightly").values()) == {"registry.example/webos:1.0.0"}
    schedule = world.get("nightly")["spec"]["upgradePolicy"]["automaticUpgradeSchedule"]
    assert schedule["minimumImageAge"] == "P3D"
    assert [w["start"] for w in schedule["maintenanceWindows"]] == ["02:00", "00:00"]


def test_gallery_manual_example_has_disks_and_ordered_extensions(
    world: World, kubeconfig: Path
) -> None:
    _apply(kubeconfig, world.namespace, "scaleset-gallery-manual.yaml")
    world.wait_ready("batch", capacity=3)
    pod = world.pods("batch")[0]
    assert [c.name for c in pod.spec.init_containers] == ["configure", "monitoring-agent"]
    # Copied is not enough: the kubelet ran them, in this order, before the OS container.
    inits = pod.status.init_container_statuses or []
    assert [(s.name, s.state.terminated.reason) for s in inits if s.state.terminated] == [
        ("configure", "Completed"),
        ("monitoring-agent", "Completed"),
    ]
    os_started = pod.status.container_statuses[0].state.running.started_at
    assert all(s.state.terminated.finished_at <= os_started for s in inits)
    assert pod.spec.containers[0].image == "registry.example/workers:1.0.0"
    assert sorted(world.claims("batch")) == ["data-batch-0", "data-batch-1", "data-batch-2"]


def test_application_health_example_waits_for_the_instance_signal(
    world: World, kubeconfig: Path
) -> None:
    _apply(kubeconfig, world.namespace, "imageversions.yaml", "scaleset-app-health.yaml")
    eventually(lambda: len(world.pods("api")) == 6, 30, what="6 instances")
    eventually(lambda: world.status("api").get("capacity") == 6, 30)
    assert world.status("api").get("readyInstances", 0) == 0
    for pod in world.pods("api"):
        assert pod.spec.readiness_gates[0].condition_type == "scaleset.dev/app-healthy"
        world.core.patch_namespaced_pod_status(
            pod.metadata.name,
            world.namespace,
            {"status": {"conditions": [{"type": "scaleset.dev/app-healthy", "status": "True"}]}},
        )
    eventually(
        lambda: world.status("api").get("readyInstances") == 6,
        30,
        what="healthy once the application says so",
    )


def test_wave_example_places_labelled_scale_sets_in_its_stages(
    world: World, kubeconfig: Path
) -> None:
    _apply(kubeconfig, world.namespace, "imageversions.yaml", "scaleset-web.yaml")
    world.custom.patch_namespaced_custom_object(
        "scaleset.dev",
        "v1alpha1",
        world.namespace,
        "scalesets",
        "web",
        {"metadata": {"labels": {"ring": "canary"}}},
    )
    _apply(kubeconfig, world.namespace, "upgradewave.yaml")
    try:
        stages = eventually(
            lambda: (
                world.custom.get_cluster_custom_object(
                    "scaleset.dev", "v1alpha1", "upgradewaves", "webos-rollout"
                )
                .get("status", {})
                .get("stages")
            ),
            30,
            what="the wave's stages",
        )
        assert stages[0]["name"] == "canary"
        assert f"{world.namespace}/web" in stages[0]["scaleSets"]
        assert stages[1]["name"] == "production"
    finally:
        world.custom.delete_cluster_custom_object(
            "scaleset.dev", "v1alpha1", "upgradewaves", "webos-rollout"
        )
