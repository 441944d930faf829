"""Two operator replicas with leader election: exactly one acts, the other takes over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import OperatorProcess, World, eventually


@pytest.fixture
def replicas(
    kubeconfig: Path, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> Iterator[list[OperatorProcess]]:
    # The session operator acts without election; it must not act during this test.
    operator.stop()
    pair = []
    for n in range(2):
        folder = tmp_path / f"replica-{n}"
        folder.mkdir()
        proc = OperatorProcess(
            kubeconfig,
            folder,
            "--leader-elect",
            "--lease-namespace",
            namespace,
            "--lease-duration",
            "3",
        )
        proc.start()
        pair.append(proc)
    try:
        yield pair
    finally:
        for proc in pair:
            proc.stop()
        operator.start()


def _log(proc: OperatorProcess) -> str:
    return "".join(p.read_text(errors="replace") for p in sorted(proc.log_dir.glob("*.log")))


def _holder(world: World, namespace: str) -> str:
    from kubernetes import client

    lease = client.CoordinationV1Api(world.api).read_namespaced_lease(
        "scaleset-operator", namespace
    )
    return str(lease.spec.holder_identity or "")


def test_one_replica_acts_and_the_other_takes_over(
    world: World, replicas: list[OperatorProcess]
) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=6, rolling={"pauseTimeBetweenBatches": "PT2S"}))
    world.wait_ready(capacity=6)
    holder = eventually(lambda: _holder(world, world.namespace), 30, what="a lease holder")
    leader = next(p for p in replicas if p.proc is not None and f"-{p.proc.pid}-" in holder)
    follower = next(p for p in replicas if p is not leader)
    assert "ScaledOut" in _log(leader)
    assert "ScaledOut" not in _log(follower)

    world.publish("1.1.0")
    eventually(lambda: (world.status().get("upgradeRun") or {}).get("batchesDone", 0) >= 1, 60)
    assert "BatchStarted" not in _log(follower)
    leader.kill()

    status = world.wait_upgrade_code("Completed", timeout=120)
    assert "acquired the lease" in _log(follower)
    assert "BatchStarted" in _log(follower)
    history = status["osUpgradeHistory"]
    assert len(history) == 1
    assert history[0]["progress"]["successfulInstanceCount"] == 6
    assert sorted(status["upgradeRun"]["succeeded"]) == list(range(6))
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
