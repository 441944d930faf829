"""UpgradeWaves on a real API server: a new version reaches the production stage only after the
test stage completed on it and soaked, the soak survives an operator restart, and a version that
faults in the test stage never reaches production."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.support import OperatorProcess, World, eventually

GROUP, VERSION = "scaleset.dev", "v1alpha1"
SOAK = 8  # seconds
FAST = {"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50}


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@pytest.fixture
def wave(world: World) -> Iterator[str]:
    """A two-stage wave selecting only this test's scale sets (waves see every namespace)."""
    name = f"rollout-{world.namespace}"[:63]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "UpgradeWave",
        "metadata": {"name": name},
        "spec": {
            "stages": [
                {
                    "name": "test",
                    "selector": {"matchLabels": {"ring": "test", "suite": world.namespace}},
                    "soakTime": f"PT{SOAK}S",
                },
                {
                    "name": "production",
                    "selector": {
                        "matchLabels": {"suite": world.namespace},
                        "matchExpressions": [{"key": "ring", "operator": "In", "values": ["prod"]}],
                    },
                    "soakTime": "PT0S",
                },
            ]
        },
    }
    world.custom.create_cluster_custom_object(GROUP, VERSION, "upgradewaves", body)
    yield name
    with contextlib.suppress(client.ApiException):
        world.custom.delete_cluster_custom_object(GROUP, VERSION, "upgradewaves", name)


def _create(world: World, name: str, ring: str) -> None:
    body = world.scaleset_body(name, capacity=2, rolling=FAST)
    body["metadata"]["labels"] = {"ring": ring, "suite": world.namespace}
    world.create(body)


def _wave_status(world: World, name: str) -> dict[str, Any]:
    obj = world.custom.get_cluster_custom_object(GROUP, VERSION, "upgradewaves", name)
    return dict(obj.get("status") or {})


def _record(world: World, wave: str, version: str) -> dict[str, Any] | None:
    for record in _wave_status(world, wave).get("versions") or []:
        if record.get("version") == version:
            return dict(record)
    return None


def _model_version(world: World, name: str) -> str | None:
    return (world.status(name).get("modelImage") or {}).get("version")


def _on(world: World, name: str, version: str) -> bool:
    status = world.status(name)
    code = ((status.get("rollingUpgrade") or {}).get("runningStatus") or {}).get("code")
    return _model_version(world, name) == version and code in (None, "Completed")


def _holds(world: World, name: str) -> list[dict[str, Any]]:
    return list((world.status(name).get("outOfDate") or {}).get("holds") or [])


def _start_time(world: World, name: str) -> datetime:
    running = (world.status(name).get("rollingUpgrade") or {}).get("runningStatus") or {}
    return _stamp(running["startTime"])


def test_production_gets_a_version_only_after_the_test_stage_soaked(
    world: World, wave: str, operator: OperatorProcess
) -> None:
    world.publish("1.0.0")
    _create(world, "canary", "test")
    _create(world, "web", "prod")
    world.wait_ready("canary", capacity=2)
    world.wait_ready("web", capacity=2)
    stages = eventually(lambda: _wave_status(world, wave).get("stages"), 20, what="wave stages")
    assert stages == [
        {"name": "test", "scaleSets": [f"{world.namespace}/canary"]},
        {"name": "production", "scaleSets": [f"{world.namespace}/web"]},
    ]

    world.publish("1.1.0")
    eventually(lambda: _on(world, "canary", "1.1.0") or None, 90, what="canary on 1.1.0")
    soaking = eventually(
        lambda: (r := _record(world, wave, "1.1.0")) and r.get("soakEndsAt") and r,
        30,
        what="1.1.0 soaking in stage test",
    )
    assert soaking["phase"] == "Soaking"
    assert soaking["stage"] == "test"
    soak_ends = _stamp(soaking["soakEndsAt"])
    # Production waits, says so, and says until when.
    held = eventually(
        lambda: [h for h in _holds(world, "web") if h.get("until")],
        20,
        what="web held until the soak ends",
    )
    assert held[0]["reason"] == "WaitingForWave"
    assert held[0]["until"] == soaking["soakEndsAt"]
    assert _model_version(world, "web") == "1.0.0"
    assert "rollingUpgrade" not in world.status("web") or _start_time(world, "web") < soak_ends

    # The soak is on record, not in the operator's memory: a restart does not start it over.
    operator.kill()
    operator.start()

    eventually(lambda: _on(world, "web", "1.1.0") or None, 120, what="web on 1.1.0")
    assert _start_time(world, "web") >= soak_ends
    done = eventually(
        lambda: (r := _record(world, wave, "1.1.0")) and r["phase"] == "Completed" and r,
        30,
        what="1.1.0 Completed in the wave",
    )
    assert [s["stage"] for s in done["stages"]] == ["test", "production"]
    assert _stamp(done["stages"][1]["admittedAt"]) >= soak_ends
    assert _stamp(done["stages"][0]["completedAt"]) <= soak_ends


def test_a_version_that_faults_in_the_test_stage_never_reaches_production(
    world: World, wave: str
) -> None:
    world.publish("1.0.0")
    _create(world, "canary", "test")
    _create(world, "web", "prod")
    world.wait_ready("canary", capacity=2)
    world.wait_ready("web", capacity=2)

    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    faulted = eventually(
        lambda: (r := _record(world, wave, "2.0.0")) and r["phase"] == "Faulted" and r,
        120,
        what="2.0.0 Faulted in the wave",
    )
    assert faulted["faultedBy"] == f"{world.namespace}/canary"
    assert "2.0.0" in world.status("canary")["faultedVersions"]
    # Production's hold names the wave; it never starts an upgrade to the faulted version.
    held = eventually(lambda: _holds(world, "web"), 20, what="web's holds")
    assert held[0]["reason"] == "WaitingForWave"
    # "Never", over longer than the test stage's soak: production stays where it was.
    deadline = time.monotonic() + SOAK + 4
    while time.monotonic() < deadline:
        assert "rollingUpgrade" not in world.status("web")
        assert _model_version(world, "web") == "1.0.0"
        time.sleep(0.5)
