"""`kubectl scaleset wave get|watch` on a real API server with the operator running: an
UpgradeWave of two stages (test, then prod) over two scale sets, listed and shown as tables and
as JSON, and a newly published version followed through both stages until it is Completed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.support import GROUP, VERSION, World, eventually
from tests.e2e.test_plugin import Result, one_error_line, run_plugin

TEST_SOAK, PROD_SOAK = "PT3S", "PT1S"
LABEL = "scaleset.dev/e2e-wave"  # selects this test's scale sets only (waves see every namespace)


@pytest.fixture
def fleet(world: World) -> Iterator[str]:
    """Scale sets web-test and web-prod on 1.0.0, and a wave named after the test's namespace
    (waves are cluster-scoped) whose stages test and prod select one of them each."""
    world.publish("1.0.0")
    for ring in ("test", "prod"):
        body = world.scaleset_body(f"web-{ring}", capacity=2)
        body["metadata"]["labels"] = {LABEL: world.namespace, "ring": ring}
        world.create(body)
    for ring in ("test", "prod"):
        world.wait_ready(f"web-{ring}", capacity=2)
    name = world.namespace
    stages = [
        {
            "name": ring,
            "selector": {"matchLabels": {LABEL: world.namespace, "ring": ring}},
            "soakTime": soak,
        }
        for ring, soak in (("test", TEST_SOAK), ("prod", PROD_SOAK))
    ]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "UpgradeWave",
        "metadata": {"name": name},
        "spec": {"stages": stages},
    }
    world.custom.create_cluster_custom_object(GROUP, VERSION, "upgradewaves", body)
    yield name
    with contextlib.suppress(client.ApiException):
        world.custom.delete_cluster_custom_object(GROUP, VERSION, "upgradewaves", name)


def wave_status(world: World, name: str) -> dict[str, Any]:
    obj = world.custom.get_cluster_custom_object(GROUP, VERSION, "upgradewaves", name)
    return dict(obj.get("status") or {})


def version_record(world: World, name: str, version: str) -> dict[str, Any] | None:
    versions = wave_status(world, name).get("versions") or []
    return next((v for v in versions if v["version"] == version), None)


def completed(world: World, name: str, version: str) -> dict[str, Any] | None:
    record = version_record(world, name, version)
    return record if record is not None and record["phase"] == "Completed" else None


def test_wave_get_lists_the_wave_and_shows_its_stages_and_versions(
    world: World, fleet: str, kubeconfig: Path
) -> None:
    def plugin(*args: str) -> Result:
        return run_plugin(kubeconfig, *args)

    eventually(lambda: completed(world, fleet, "1.0.0"), 60, what="1.0.0 Completed in the wave")
    image = f"{world.publisher}:os:stable"

    listed = plugin("wave", "get")
    shown = plugin("wave", "get", fleet)
    as_json = plugin("wave", "get", fleet, "-o", "json")
    missing = plugin("wave", "get", f"nosuch-{fleet}")

    assert listed.code == 0, listed.err
    assert listed.out.splitlines()[0].split() == [
        "NAME",
        "STAGES",
        "NEWEST",
        "PHASE",
        "STAGE",
        "AGE",
    ]
    row = next(line.split() for line in listed.out.splitlines() if line.startswith(fleet + " "))
    assert row[:5] == [fleet, "test,prod", f"{image}:1.0.0", "Completed", "prod"]

    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert lines[0] == f"Name:     {fleet}"
    stage_rows = [" ".join(line.split()) for line in lines if line.startswith(("test ", "prod "))]
    assert stage_rows == [
        f"test {TEST_SOAK} {world.namespace}/web-test",
        f"prod {PROD_SOAK} {world.namespace}/web-prod",
    ]
    assert [image, "1.0.0", "Completed", "prod"] in [line.split()[:4] for line in lines]

    assert as_json.code == 0, as_json.err
    doc = as_json.json()
    assert (doc["kind"], doc["metadata"]["name"]) == ("UpgradeWave", fleet)
    assert "managedFields" not in doc["metadata"]
    assert [s["name"] for s in doc["spec"]["stages"]] == ["test", "prod"]
    assert {"image": image, "version": "1.0.0", "phase": "Completed"}.items() <= (
        doc["status"]["versions"][0].items()
    )
    assert doc["status"]["stages"] == [
        {"name": "test", "scaleSets": [f"{world.namespace}/web-test"]},
        {"name": "prod", "scaleSets": [f"{world.namespace}/web-prod"]},
    ]

    assert missing.code == 3
    assert one_error_line(missing) == f'Error: upgrade wave "nosuch-{fleet}" not found\n'


def test_wave_watch_follows_a_new_version_through_the_stages_until_completed(
    world: World, fleet: str, kubeconfig: Path
) -> None:
    eventually(lambda: completed(world, fleet, "1.0.0"), 60, what="1.0.0 Completed in the wave")
    world.publish("1.1.0")

    watched = run_plugin(
        kubeconfig,
        *("wave", "watch", fleet, "--version", "1.1.0", "--timeout", "3m", "--interval", "0.5"),
        timeout=240,
    )

    assert watched.code == 0, f"stdout:\n{watched.out}\nstderr:\n{watched.err}"
    image = f"{world.publisher}:os:stable:1.1.0"
    moves = [line.split("  ", 1)[1] for line in watched.out.splitlines()[:-1]]
    # "Rolling in stage test (1/2): stage test: ..." -> "Rolling in stage test (1/2)"
    seen = [m[len(image) + 1 :].split(":")[0] for m in moves if m.startswith(image + " ")]
    order = [
        "Rolling in stage test (1/2)",
        "Soaking in stage test (1/2)",
        "Rolling in stage prod (2/2)",
        "Completed in stage prod (2/2)",
    ]
    # In the wave's order (a change of waitingFor alone repeats one); a phase shorter than the
    # poll interval may pass unseen, but never the test stage's soak.
    distinct = list(dict.fromkeys(seen))
    assert distinct == [p for p in order if p in distinct], moves
    assert "Soaking in stage test (1/2)" in distinct, moves
    assert distinct[-1] == "Completed in stage prod (2/2)", moves
    assert watched.out.splitlines()[-1] == f"Outcome: {image} Completed: every stage has it"

    # prod got 1.1.0 only after every scale set of test had it and the test soak passed.
    record = completed(world, fleet, "1.1.0")
    assert record is not None
    test_stage, prod_stage = record["stages"]
    soaked = datetime.fromisoformat(prod_stage["admittedAt"].replace("Z", "+00:00"))
    done = datetime.fromisoformat(test_stage["completedAt"].replace("Z", "+00:00"))
    assert (soaked - done).total_seconds() >= 3
    for ring in ("test", "prod"):
        assert set(world.images(f"web-{ring}").values()) == {"example.test/os:1.1.0"}
