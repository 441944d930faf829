"""Reliability under faults: a killed operator, a restarted control plane, other writers
touching instances mid-upgrade, and malformed documents sent to the API server.

Set SCALESET_SOAK=1 for the long variant of the kill test (100 instances, at least 50 kills).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
import uuid
from functools import partial
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client

from scaleset_operator.localcluster import LocalCluster
from tests.e2e.support import GROUP, VERSION, OperatorProcess, World, eventually

SOAK = os.environ.get("SCALESET_SOAK") == "1"
MARK = "scaleset.dev/os-upgrade"


def _history(world: World) -> list[dict[str, Any]]:
    return list(world.status().get("osUpgradeHistory") or [])


def _code(world: World) -> str | None:
    status = world.status()
    return ((status.get("rollingUpgrade") or {}).get("runningStatus") or {}).get("code")


def _marks(world: World) -> dict[str, dict[str, Any]]:
    marks: dict[str, dict[str, Any]] = {}
    pod: Any
    for pod in world.pods():
        raw = (pod.metadata.annotations or {}).get(MARK)
        if raw:
            marks[pod.metadata.name] = json.loads(raw)
    return marks


def _seed() -> int:
    fixed = int(os.environ.get("SCALESET_FAULT_SEED", "0"))
    return fixed or random.SystemRandom().randrange(1 << 30)


def _kill_while(
    operator: OperatorProcess,
    rng: random.Random,
    done: Any,
    min_kills: int,
    deadline: float,
    low: float,
    high: float,
) -> int:
    """SIGKILL and restart the operator at random moments, `min_kills` times, unless `done()`
    holds or the deadline passes first. Returns the number of kills."""
    kills = 0
    while time.monotonic() < deadline and kills < min_kills and not done():
        time.sleep(rng.uniform(low, high))
        operator.kill()
        kills += 1
        operator.start()
    return kills


def test_operator_killed_repeatedly_mid_upgrade(world: World, operator: OperatorProcess) -> None:
    seed = _seed()
    rng = random.Random(seed)
    n = 100 if SOAK else 40
    min_kills = 50 if SOAK else 10
    where = f"(seed={seed}; rerun with SCALESET_FAULT_SEED={seed})"

    world.publish("1.0.0")
    world.create(
        world.scaleset_body(
            capacity=n,
            health_timeout="PT20S",
            rolling={"maxBatchInstancePercent": 10},
        )
    )
    world.wait_ready(capacity=n, timeout=120)
    world.publish("1.1.0")

    budget = 600 if SOAK else 100
    kills = _kill_while(
        operator,
        rng,
        lambda: False,  # kills after completion must not invent a new run either
        min_kills,
        time.monotonic() + budget,
        0.5,
        3.0,
    )
    print(f"operator killed {kills} times {where}")
    assert kills >= min_kills, f"only {kills} kills before the deadline {where}"

    status = world.wait_upgrade_code("Completed", timeout=120)
    world.wait_ready(capacity=n, timeout=120)
    assert set(world.images().values()) == {"example.test/os:1.1.0"}, where
    history = _history(world)
    assert len(history) == 1, f"{history} {where}"
    progress = history[0]["progress"]
    assert progress["successfulInstanceCount"] == n, f"{progress} {where}"
    assert progress["failedInstanceCount"] == 0, f"{progress} {where}"

    run = status["upgradeRun"]
    ids = [*run.get("succeeded", []), *run.get("failed", [])]
    assert len(ids) == len(set(ids)), f"instance counted twice: {run} {where}"
    assert sorted(run.get("succeeded", [])) == list(range(n)), where

    start = history[0]["runningStatus"]["startTime"]
    assert run["startTime"] == start, where
    for pod, mark in _marks(world).items():
        assert mark["run"] == start, f"{pod} carries a mark of another run: {mark} {where}"


def test_operator_killed_during_bad_image_rollback(world: World, operator: OperatorProcess) -> None:
    seed = _seed()
    rng = random.Random(seed)
    where = f"(seed={seed}; rerun with SCALESET_FAULT_SEED={seed})"

    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=10, health_timeout="PT3S", disks=True))
    world.wait_ready()
    claims = world.claims()
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")

    kills = _kill_while(
        operator,
        rng,
        lambda: _code(world) == "Faulted",
        3,
        time.monotonic() + 60,
        0.5,
        2.0,
    )
    print(f"operator killed {kills} times {where}")
    status = world.wait_upgrade_code("Faulted", timeout=90)
    world.wait_ready(timeout=90)
    status = world.status()

    history = _history(world)
    assert len(history) == 1, f"{history} {where}"
    entry = history[0]
    assert entry["runningStatus"]["code"] == "Faulted", where
    run = status["upgradeRun"]
    rolled_back = run.get("rolledBack", [])
    assert len(rolled_back) == len(set(rolled_back)), f"rolled back twice: {run} {where}"
    assert not run.get("rollbackFailed"), where
    assert entry["rollbackInfo"]["successfullyRolledbackInstanceCount"] == len(rolled_back), (
        f"{entry} {run} {where}"
    )
    assert entry["progress"]["failedInstanceCount"] == len(set(run.get("failed", []))), where
    assert set(world.images().values()) == {"example.test/os:1.0.0"}, where
    assert world.claims() == claims, where


def test_other_writers_mid_upgrade(world: World) -> None:
    world.publish("1.0.0")
    body = world.scaleset_body(rolling={"pauseTimeBetweenBatches": "PT2S"}, disks=True)
    body["spec"]["template"]["spec"]["containers"].append(
        {"name": "agent", "image": "example.test/agent:1"}
    )
    world.create(body)
    world.wait_ready()
    claims = world.claims()
    world.publish("1.1.0")
    eventually(
        lambda: (world.status().get("upgradeRun") or {}).get("batchesDone", 0) >= 1,
        30,
        interval=0.1,
        what="first batch done",
    )

    images = world.images()
    pending = [i for i, img in images.items() if img.endswith(":1.0.0")]
    done = [i for i, img in images.items() if img.endswith(":1.1.0")]
    assert len(pending) >= 3, images
    assert done, images
    victim, annotated, relabelled = pending[0], [pending[1], done[0]], pending[2]

    pod: Any
    before: Any = world.core.read_namespaced_pod(f"web-{victim}", world.namespace)
    deleted_uid = before.metadata.uid
    world.core.delete_namespaced_pod(f"web-{victim}", world.namespace)
    for i in annotated:
        world.core.patch_namespaced_pod(
            f"web-{i}",
            world.namespace,
            {"metadata": {"annotations": {"example.com/owner": f"team-{i}"}}},
        )
    world.core.patch_namespaced_pod(
        f"web-{relabelled}",
        world.namespace,
        {
            "metadata": {"labels": {"example.com/tier": "gold"}},
            "spec": {"containers": [{"name": "agent", "image": "example.test/agent:2"}]},
        },
    )

    world.wait_upgrade_code("Completed", timeout=120)
    world.wait_ready(timeout=60)
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    recreated: Any = world.core.read_namespaced_pod(f"web-{victim}", world.namespace)
    assert recreated.metadata.uid != deleted_uid
    assert recreated.spec.containers[0].image == "example.test/os:1.1.0"
    for i in annotated:
        pod = world.core.read_namespaced_pod(f"web-{i}", world.namespace)
        assert pod.metadata.annotations.get("example.com/owner") == f"team-{i}", i
    pod = world.core.read_namespaced_pod(f"web-{relabelled}", world.namespace)
    assert pod.metadata.labels.get("example.com/tier") == "gold"
    history = _history(world)
    assert len(history) == 1, history
    assert history[0]["progress"]["failedInstanceCount"] == 0
    # The deleted instance's claim is kept and reattached to its replacement.
    assert world.claims() == claims


# --- malformed input -------------------------------------------------------------------------

_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.lists(st.integers(0, 5), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=5), st.integers(), max_size=2),
)
_durations = st.sampled_from(["PT0S", "PT1S", "P1D", "PT", "5m", "PT1.5S", "", "P-1D"])


def _fields(draw: Any, known: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """Known fields, each usually well typed; how often one is junk, missing or joined by an
    unknown field depends on the example's chaos level (0 = a plausible document)."""
    chaos = draw(st.sampled_from([0, 0, 0, 0, 1, 3]))
    out: dict[str, Any] = {}
    for key, strategy in known.items():
        if chaos and draw(st.integers(0, 12)) < chaos:
            continue
        if chaos and draw(st.integers(0, 12)) < chaos:
            out[key] = draw(_junk)
        else:
            out[key] = draw(strategy)
    if chaos and draw(st.integers(0, 3)) == 0:
        out[draw(st.sampled_from(["unknownField", "x", "spec2"]))] = draw(_junk)
    return out


@st.composite
def _scaleset_specs(draw: Any, publisher: str) -> dict[str, Any]:
    rolling = _fields(
        draw,
        {
            "maxBatchInstancePercent": st.sampled_from([0, 5, 10, 20, 30]),
            "maxUnhealthyInstancePercent": st.integers(20, 120),
            "maxUnhealthyUpgradedInstancePercent": st.integers(-5, 120),
            "pauseTimeBetweenBatches": _durations,
            "prioritizeUnhealthyInstances": st.booleans(),
            "maxSurge": st.booleans(),
        },
    )
    policy = _fields(
        draw,
        {
            "mode": st.sampled_from(["Manual", "Rolling", "Automatic", "Sometimes"]),
            "automaticOSUpgradePolicy": st.fixed_dictionaries(
                {},
                optional={
                    "enableAutomaticOSUpgrade": st.one_of(st.booleans(), _junk),
                    "disableAutomaticRollback": st.booleans(),
                },
            ),
            "rollingUpgradePolicy": st.just(rolling),
            "healthTimeout": _durations,
        },
    )
    image = _fields(
        draw,
        {
            "publisher": st.sampled_from([publisher, "nobody"]),
            "offer": st.just("os"),
            "sku": st.sampled_from(["stable", "other"]),
            "version": st.sampled_from(["latest", "latest", "1.0.0", "1.x", ""]),
        },
    )
    containers = st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(["os", "agent"]), "image": st.just("example.test/a:1")}
        ),
        min_size=1,
        max_size=2,
        unique_by=lambda c: c["name"],
    )
    return _fields(
        draw,
        {
            # Capacity is bounded so that an accepted document never asks for many pods.
            "capacity": st.integers(-2, 3),
            "location": st.sampled_from(["westeurope", "eastus", ""]),
            "imageReference": st.just(image),
            "upgradePolicy": st.just(policy),
            "osContainerName": st.sampled_from(["os", "os", "agent", "missing"]),
            "template": st.builds(
                lambda c: {"metadata": {"labels": {"app": "f"}}, "spec": {"containers": c}},
                containers,
            ),
        },
    )


@st.composite
def _imageversion_specs(draw: Any, publisher: str) -> dict[str, Any]:
    return _fields(
        draw,
        {
            "publisher": st.just(publisher),
            "offer": st.just("fz"),
            "sku": st.just("fz"),
            "image": st.sampled_from(["example.test/fz:1", "example.test/fz:1", ""]),
            "version": st.sampled_from(["1.0.0", "2016.127.20180613", "1..0", "v1", "99"]),
            "excludeFromLatest": st.booleans(),
            "targetRegions": st.lists(st.sampled_from(["westeurope", "eastus"]), max_size=2),
            "publishedDate": st.sampled_from(["2024-01-01T00:00:00Z", "yesterday"]),
        },
    )


def _rejected_properly(exc: client.ApiException) -> None:
    assert 400 <= (exc.status or 0) < 500, f"{exc.status}: {exc.body}"
    message = json.loads(exc.body or "{}").get("message", "")
    assert message.strip(), exc.body


def test_malformed_documents_do_not_hurt_the_operator(
    world: World, operator: OperatorProcess
) -> None:
    assert operator.proc is not None
    pid, starts = operator.proc.pid, operator.starts
    world.publish("1.0.0")
    fuzz_publisher = f"fz-{world.namespace}"[:60]
    accepted: list[str] = []
    versions: list[str] = []
    outcome = {"accepted": 0, "rejected": 0}
    reasons: list[str] = []

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        kind=st.sampled_from(["ScaleSet", "ScaleSet", "ImageVersion"]),
        data=st.data(),
    )
    def send(kind: str, data: st.DataObject) -> None:
        name = f"fz-{uuid.uuid4().hex[:10]}"
        if kind == "ScaleSet":
            spec = data.draw(_scaleset_specs(world.publisher))
        else:
            spec = data.draw(_imageversion_specs(fuzz_publisher))
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
        try:
            if kind == "ScaleSet":
                world.create(body | {"metadata": {"name": name, "namespace": world.namespace}})
                accepted.append(name)
            else:
                world.custom.create_cluster_custom_object(GROUP, VERSION, "imageversions", body)
                versions.append(name)
            outcome["accepted"] += 1
        except client.ApiException as exc:
            _rejected_properly(exc)
            outcome["rejected"] += 1
            reasons.append(json.loads(exc.body or "{}").get("message", "")[:160])
        assert operator.alive(), "the operator died on a malformed document"

    try:
        send()
        print(f"fuzz outcome: {outcome}; some rejections: {reasons[:5]}")
        assert outcome["accepted"] >= 3, (outcome, reasons[:10])
        assert outcome["rejected"] >= 5, outcome

        def reported(name: str) -> bool:
            status = world.status(name)
            types = {c.get("type") for c in status.get("conditions") or []}
            return "observedGeneration" in status or bool(types & {"SpecValid", "ImageResolved"})

        for name in accepted:
            eventually(partial(reported, name), 60, what=f"{name} to report a status")
        assert operator.alive()
        assert operator.proc.pid == pid, "the operator restarted"
        assert operator.starts == starts, "the operator restarted"

        world.create(world.scaleset_body(capacity=3))
        world.wait_ready(capacity=3)
    finally:
        for name in versions:
            with contextlib.suppress(client.ApiException):
                world.custom.delete_cluster_custom_object(GROUP, VERSION, "imageversions", name)


# Restarting the API server disturbs every client, so it runs last in this module.
def test_upgrade_survives_a_control_plane_restart(
    world: World, operator: OperatorProcess, cluster: LocalCluster
) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(rolling={"pauseTimeBetweenBatches": "PT3S"}, disks=True))
    world.wait_ready()
    claims = world.claims()
    pid = operator.proc.pid if operator.proc else None
    world.publish("1.1.0")
    eventually(
        lambda: (world.status().get("upgradeRun") or {}).get("batchesDone", 0) >= 1,
        30,
        interval=0.1,
        what="first batch done",
    )

    cluster.restart_apiserver_and_etcd()

    status = world.wait_upgrade_code("Completed", timeout=150)
    world.wait_ready(timeout=60)
    assert operator.alive()
    assert operator.proc is not None
    assert operator.proc.pid == pid, "the operator was restarted"
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    history = _history(world)
    assert len(history) == 1, history
    assert history[0]["progress"]["successfulInstanceCount"] == 10
    assert history[0]["progress"]["failedInstanceCount"] == 0
    run = status["upgradeRun"]
    assert sorted(run["succeeded"]) == list(range(10))
    assert world.claims() == claims
