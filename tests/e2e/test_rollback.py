"""`kubectl scaleset rolling-upgrade rollback` on a real API server with the operator running:
the last OS upgrade is undone batch by batch, recorded in history, and the version undone stays
quarantined until a newer one arrives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.support import World, eventually
from tests.e2e.test_plugin import Result, run_plugin

ROLLING = {"maxBatchInstancePercent": 20, "pauseTimeBetweenBatches": "PT1S"}


def _image(version: str) -> str:
    return f"example.test/os:{version}"


def _history(world: World) -> list[dict[str, Any]]:
    return list(world.status().get("osUpgradeHistory") or [])


def _ended(world: World, version: str, started_by: str) -> dict[str, Any] | None:
    """The newest history entry once it is a Completed run to `version` by `started_by`."""
    history = _history(world)
    if not history:
        return None
    entry = history[0]
    done = (
        entry["targetImageReference"]["version"] == version
        and entry["startedBy"] == started_by
        and entry["runningStatus"]["code"] == "Completed"
    )
    return entry if done else None


def test_rollback_restores_the_previous_version_and_holds_the_undone_one(
    world: World, kubeconfig: Path
) -> None:
    def plugin(*args: str) -> Result:
        return run_plugin(kubeconfig, *args, "-n", world.namespace)

    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=5, rolling=ROLLING, health_timeout="PT8S"))
    world.wait_ready(capacity=5)
    world.publish("1.1.0")
    eventually(lambda: _ended(world, "1.1.0", "Platform"), 90, what="the upgrade to 1.1.0")
    assert set(world.images().values()) == {_image("1.1.0")}

    rolled = plugin("rolling-upgrade", "rollback", "web", "--wait-timeout", "30")

    assert rolled.code == 0, rolled.err
    assert rolled.out.startswith('Rolling back "web" from 1.1.0 to 1.0.0, started at ')
    entry = eventually(lambda: _ended(world, "1.0.0", "User"), 90, what="the rollback")
    assert entry["progress"]["successfulInstanceCount"] == 5
    assert entry["progress"]["failedInstanceCount"] == 0
    assert _history(world)[1]["targetImageReference"]["version"] == "1.1.0"
    world.wait_ready(capacity=5)
    assert set(world.images().values()) == {_image("1.0.0")}
    status = world.status()
    # One instance a batch (20 % of 5), each healthy before the next started.
    assert status["upgradeRun"]["batchesDone"] == 5
    assert status["upgradeRun"]["rollbackOf"]["version"] == "1.1.0"
    assert status["currentImageVersion"] == "1.0.0"
    assert status["faultedVersions"] == ["1.1.0"]
    [why] = status["quarantineReasons"]
    assert (why["version"], why["reason"], why["message"]) == (
        "1.1.0",
        "RolledBackByUser",
        "rolled back by user",
    )
    listed = plugin("quarantine", "list", "web")
    assert listed.code == 0, listed.err
    assert "rolled back by user" in listed.out

    # Nothing is left to roll back: refused, with the operator's reason (a Warning event).
    again = plugin("rolling-upgrade", "rollback", "web", "--wait-timeout", "30")
    assert again.code == 1
    assert "RollbackRefused: rollback refused: every instance already runs 1.0.0" in again.err
    assert _history(world)[0] == entry

    # 1.1.0 stays held; the next version is picked up as usual.
    world.publish("1.2.0")
    eventually(lambda: _ended(world, "1.2.0", "Platform"), 90, what="the upgrade to 1.2.0")
    history = _history(world)
    assert [h["targetImageReference"]["version"] for h in history[:3]] == [
        "1.2.0",
        "1.0.0",
        "1.1.0",
    ]
    world.wait_ready(capacity=5)
    assert set(world.images().values()) == {_image("1.2.0")}
    assert world.status()["faultedVersions"] == ["1.1.0"]
