"""Instance management: capacity, recreation, protection, data disks and upgrade modes."""

from __future__ import annotations

import json

from tests.e2e.support import World, eventually


def _ids(world: World) -> list[int]:
    return sorted(world.images())


def test_create_scale_out_and_in_keeps_stable_ids(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=3, automatic=False))
    world.wait_ready(capacity=3)
    assert [p.metadata.name for p in world.pods()] == ["web-0", "web-1", "web-2"]
    owner = world.pods()[0].metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("ScaleSet", "web", True)

    world.patch_spec({"capacity": 5})
    world.wait_ready(capacity=5)
    assert _ids(world) == [0, 1, 2, 3, 4]

    world.patch_spec({"capacity": 2})
    eventually(lambda: _ids(world) == [0, 1], 30, what="scale-in removes the highest ids")
    eventually(lambda: world.status()["capacity"] == 2, 30, what="status.capacity follows")


def test_scale_in_never_removes_a_protected_instance(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=4, automatic=False))
    world.wait_ready(capacity=4)
    world.core.patch_namespaced_pod(
        "web-3",
        world.namespace,
        {"metadata": {"annotations": {"scaleset.dev/protect-from-scale-set-actions": "true"}}},
    )
    world.patch_spec({"capacity": 2})
    eventually(lambda: _ids(world) == [0, 3], 30, what="ids 1 and 2 removed, 3 kept")


def test_deleted_and_failed_instances_are_recreated(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=3, automatic=False))
    world.wait_ready(capacity=3)
    old_uid = world.pods()[1].metadata.uid
    world.core.delete_namespaced_pod("web-1", world.namespace)
    eventually(
        lambda: any(p.metadata.name == "web-1" and p.metadata.uid != old_uid for p in world.pods()),
        30,
        what="web-1 recreated",
    )
    world.wait_ready(capacity=3)

    # A pod that ended in phase Failed (as after an eviction) is replaced under its own id.
    failed_uid = world.pods()[2].metadata.uid
    world.core.patch_namespaced_pod_status(
        "web-2", world.namespace, {"status": {"phase": "Failed", "reason": "Evicted"}}
    )
    eventually(
        lambda: any(
            p.metadata.name == "web-2"
            and p.metadata.uid != failed_uid
            and p.metadata.deletion_timestamp is None
            for p in world.pods()
        ),
        30,
        what="failed web-2 recreated",
    )
    world.wait_ready(capacity=3)
    events = world.core.list_namespaced_event(
        world.namespace, field_selector="involvedObject.kind=ScaleSet,reason=InstanceRecreated"
    ).items
    assert {e.message for e in events} == {"instance 2 failed; recreating"}
    assert _ids(world) == [0, 1, 2]


def test_data_disks_survive_recreation(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=2, automatic=False, disks=True))
    world.wait_ready(capacity=2)
    claims = world.claims()
    assert sorted(claims) == ["data-web-0", "data-web-1"]
    world.core.delete_namespaced_pod("web-0", world.namespace)
    eventually(lambda: world.healthy_count() == 2 and len(world.pods()) == 2, 30)
    assert world.claims() == claims


def test_scale_subresource(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=2, automatic=False))
    world.wait_ready(capacity=2)
    world.custom.patch_namespaced_custom_object_scale(
        "scaleset.dev", "v1alpha1", world.namespace, "scalesets", "web", {"spec": {"replicas": 4}}
    )
    world.wait_ready(capacity=4)
    scale = world.custom.get_namespaced_custom_object_scale(
        "scaleset.dev", "v1alpha1", world.namespace, "scalesets", "web"
    )
    assert scale["spec"]["replicas"] == 4
    assert scale["status"]["selector"] == "scaleset.dev/scaleset=web"


def test_manual_mode_keeps_old_model_until_update_instances(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=3, automatic=False, mode="Manual"))
    world.wait_ready(capacity=3)
    uids = {p.metadata.name: p.metadata.uid for p in world.pods()}
    world.patch_spec(
        {
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "v2"}},
                "spec": {"containers": [{"name": "os", "image": "x"}]},
            }
        }
    )
    eventually(lambda: world.status().get("latestModelInstances") == 0, 30, what="model drift seen")
    assert {p.metadata.name: p.metadata.uid for p in world.pods()} == uids

    world.request("update-instances", instance_ids=["0", "2"])
    eventually(lambda: world.status().get("latestModelInstances") == 2, 30, what="two updated")
    labels = {p.metadata.name: p.metadata.labels.get("tier") for p in world.pods()}
    assert labels == {"web-0": "v2", "web-1": None, "web-2": "v2"}
    world.wait_ready(capacity=3)


def test_rolling_mode_carries_model_changes_to_every_instance(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=5, automatic=False, mode="Rolling"))
    world.wait_ready(capacity=5)
    world.patch_spec(
        {
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "v2"}},
                "spec": {"containers": [{"name": "os", "image": "x"}]},
            }
        }
    )
    eventually(
        lambda: {p.metadata.labels.get("tier") for p in world.pods()} == {"v2"},
        60,
        what="every instance recreated on the new model",
    )
    world.wait_ready(capacity=5)
    obj = world.get()
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["status"]["latestModelInstances"] == 5


def test_pinned_version_change_is_a_model_change(world: World) -> None:
    world.publish("1.0.0")
    world.publish("1.1.0")
    body = world.scaleset_body(capacity=3, automatic=False, mode="Automatic")
    body["spec"]["imageReference"]["version"] = "1.0.0"
    world.create(body)
    world.wait_ready(capacity=3)
    assert set(world.images().values()) == {"example.test/os:1.0.0"}
    world.patch_spec({"imageReference": {"version": "1.1.0"}})
    eventually(lambda: set(world.images().values()) == {"example.test/os:1.1.0"}, 30)
    world.wait_ready(capacity=3)


def test_unresolvable_image_reference_gives_a_condition(world: World) -> None:
    world.create(world.scaleset_body(capacity=2))

    def condition() -> dict | None:
        for c in world.status().get("conditions") or []:
            if c["type"] == "ImageResolved" and c["status"] == "False":
                return c
        return None

    found = eventually(condition, 30, what="ImageResolved=False")
    assert found["reason"] == "ImageNotFound"
    assert "westeurope" in found["message"]
    assert world.pods() == []
    # Publishing the image later is enough: the scale set recovers on its own.
    world.publish("1.0.0")
    world.wait_ready(capacity=2)


def test_events_are_recorded(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=2))
    world.wait_ready(capacity=2)
    events = world.core.list_namespaced_event(
        world.namespace, field_selector="involvedObject.kind=ScaleSet"
    ).items
    assert "ScaledOut" in {e.reason for e in events}


def test_malformed_annotations_do_not_stop_the_scale_set(world: World) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=2))
    world.wait_ready(capacity=2)
    world.core.patch_namespaced_pod(
        "web-0",
        world.namespace,
        {"metadata": {"annotations": {"scaleset.dev/os-upgrade": "{nope"}}},
    )
    world.custom.patch_namespaced_custom_object(
        "scaleset.dev",
        "v1alpha1",
        world.namespace,
        "scalesets",
        "web",
        {"metadata": {"annotations": {"scaleset.dev/rolling-upgrade-start": json.dumps([1])}}},
    )
    world.publish("1.1.0")
    world.wait_upgrade_code("Completed")
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
