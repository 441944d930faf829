"""Bad input is refused by the API server itself, with a message a person can act on."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.e2e.support import World


def _rejected(world: World, body: dict[str, Any]) -> str:
    with pytest.raises(client.ApiException) as caught:
        world.create(body)
    assert caught.value.status == 422, caught.value.body
    return str(caught.value.body)


def _policy(world: World, **rolling: Any) -> dict[str, Any]:
    return world.scaleset_body(rolling=rolling)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"maxBatchInstancePercent": 3}, "should be greater than or equal to 5"),
        ({"maxBatchInstancePercent": 101}, "should be less than or equal to 100"),
        ({"maxUnhealthyInstancePercent": 4}, "should be greater than or equal to 5"),
        ({"maxUnhealthyUpgradedInstancePercent": -1}, "should be greater than or equal to 0"),
        ({"maxUnhealthyUpgradedInstancePercent": 101}, "should be less than or equal to 100"),
        ({"pauseTimeBetweenBatches": "5 minutes"}, "must be an ISO 8601 duration"),
        ({"pauseTimeBetweenBatches": "PT"}, "must be an ISO 8601 duration"),
        (
            {"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 20},
            "maxBatchInstancePercent must not be above maxUnhealthyInstancePercent",
        ),
    ],
)
def test_rolling_policy_is_validated(world: World, change: dict[str, Any], message: str) -> None:
    assert message in _rejected(world, _policy(world, **change))


def test_health_timeout_must_be_a_duration(world: World) -> None:
    body = world.scaleset_body(health_timeout="5m")
    assert "must be an ISO 8601 duration" in _rejected(world, body)


def test_automatic_upgrades_need_version_latest(world: World) -> None:
    body = world.scaleset_body()
    body["spec"]["imageReference"]["version"] = "1.0.0"
    assert "must be 'latest' when" in _rejected(world, body)


def test_version_syntax(world: World) -> None:
    body = world.scaleset_body(automatic=False)
    body["spec"]["imageReference"]["version"] = "v1"
    assert "must be 'latest' or a dotted numeric version" in _rejected(world, body)


def test_platform_or_gallery_not_both(world: World) -> None:
    body = world.scaleset_body()
    body["spec"]["imageReference"]["gallery"] = "g"
    assert "publisher, offer and sku" in _rejected(world, body)


def test_template_needs_a_container(world: World) -> None:
    body = world.scaleset_body()
    body["spec"]["template"]["spec"]["containers"] = []
    assert "containers" in _rejected(world, body)


def test_os_container_name_must_exist(world: World) -> None:
    body = world.scaleset_body(osContainerName="nope")
    assert "osContainerName must name one of" in _rejected(world, body)


def test_publisher_and_offer_are_immutable_but_sku_may_change(world: World) -> None:
    world.create(world.scaleset_body(capacity=0))
    with pytest.raises(client.ApiException) as caught:
        world.patch_spec({"imageReference": {"offer": "other"}})
    assert caught.value.status == 422
    assert "cannot change after creation" in str(caught.value.body)
    world.patch_spec({"imageReference": {"sku": "next"}})
    assert world.get()["spec"]["imageReference"]["sku"] == "next"


def test_defaults_are_azures(world: World) -> None:
    body = world.scaleset_body(capacity=0)
    del body["spec"]["upgradePolicy"]
    world.create(body)
    spec = world.get()["spec"]
    policy = spec["upgradePolicy"]
    assert policy["mode"] == "Manual"
    assert policy["healthTimeout"] == "PT5M"
    assert policy["rollingUpgradePolicy"] == {
        "maxBatchInstancePercent": 20,
        "maxUnhealthyInstancePercent": 20,
        "maxUnhealthyUpgradedInstancePercent": 20,
        "pauseTimeBetweenBatches": "PT0S",
        "prioritizeUnhealthyInstances": False,
        "enableCrossZoneUpgrade": False,
        "maxSurge": False,
        "rollbackFailedInstancesOnPolicyBreach": False,
        "disruptionBudgetTimeout": "PT30M",
        "onDisruptionBudgetTimeout": "Fault",
    }
    assert policy["automaticOSUpgradePolicy"] == {
        "enableAutomaticOSUpgrade": False,
        "disableAutomaticRollback": False,
    }


def _image_version(world: World, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "scaleset.dev/v1alpha1",
        "kind": "ImageVersion",
        "metadata": {"name": f"{world.publisher}-bad"},
        "spec": {"publisher": world.publisher, "offer": "os", "sku": "s", "image": "i", **spec},
    }


def test_image_versions_are_dotted_numbers(world: World) -> None:
    with pytest.raises(client.ApiException) as caught:
        world.custom.create_cluster_custom_object(
            "scaleset.dev", "v1alpha1", "imageversions", _image_version(world, version="1.2.x")
        )
    assert "must be a dotted numeric version" in str(caught.value.body)


def test_published_versions_are_immutable(world: World) -> None:
    name = world.publish("1.0.0")
    with pytest.raises(client.ApiException) as caught:
        world.custom.patch_cluster_custom_object(
            "scaleset.dev", "v1alpha1", "imageversions", name, {"spec": {"image": "other"}}
        )
    assert "a published version is immutable" in str(caught.value.body)
    world.custom.patch_cluster_custom_object(
        "scaleset.dev", "v1alpha1", "imageversions", name, {"spec": {"excludeFromLatest": True}}
    )


def test_maintenance_window_times_are_checked(world: World) -> None:
    body = world.scaleset_body()
    body["spec"]["upgradePolicy"]["automaticUpgradeSchedule"] = {
        "maintenanceWindows": [{"days": ["Monday"], "start": "25:00", "duration": "PT2H"}]
    }
    assert "must be a time of day HH:MM" in _rejected(world, body)
    body["spec"]["upgradePolicy"]["automaticUpgradeSchedule"] = {
        "maintenanceWindows": [{"days": ["Moonday"], "start": "02:00", "duration": "PT2H"}]
    }
    assert "Unsupported value" in _rejected(world, body)


def _wave_rejected(world: World, stages: list[dict[str, Any]]) -> str:
    body = {
        "apiVersion": "scaleset.dev/v1alpha1",
        "kind": "UpgradeWave",
        "metadata": {"name": f"bad-{world.namespace}"},
        "spec": {"stages": stages},
    }
    with pytest.raises(client.ApiException) as caught:
        world.custom.create_cluster_custom_object("scaleset.dev", "v1alpha1", "upgradewaves", body)
    assert caught.value.status == 422, caught.value.body
    return str(caught.value.body)


def _stage(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "selector": {"matchLabels": {"ring": name}}, **extra}


def test_wave_stages_are_validated(world: World) -> None:
    assert "stage names must be unique" in _wave_rejected(world, [_stage("a"), _stage("a")])
    assert "must be an ISO 8601 duration" in _wave_rejected(
        world, [_stage("a", soakTime="30 minutes")]
    )
    assert "lower case letters, digits and '-'" in _wave_rejected(world, [_stage("Prod")])
    assert "should have at least 1 items" in _wave_rejected(world, [])
    exists_with_values = {
        "name": "a",
        "selector": {"matchExpressions": [{"key": "k", "operator": "Exists", "values": ["x"]}]},
    }
    assert "values must be given for In and NotIn" in _wave_rejected(world, [exists_with_values])
