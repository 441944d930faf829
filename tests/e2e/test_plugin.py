"""`kubectl scaleset` against a real API server with the operator running: every command,
the Azure shapes of its JSON, and its exit codes for bad input and missing objects.

The plugin runs as its own process, the way kubectl runs it, so exit codes and stderr are
the real ones.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from kubernetes import client

from scaleset_operator.localcluster.cluster import SERVICE_ACCOUNT_ISSUER
from scaleset_operator.models.instance import ANNOTATION_PROTECT, ANNOTATION_START
from tests.e2e.support import REPO, World, eventually

pytestmark = pytest.mark.e2e

SCHEMAS = REPO / "tests" / "data" / "azure-schema"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Plugin = Callable[..., Result]


def run_plugin(kubeconfig: Path, *args: str, timeout: float = 120) -> Result:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
    }
    done = subprocess.run(
        [sys.executable, "-m", "scaleset_operator.cli.plugin", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def plugin(kubeconfig: Path, world: World) -> Plugin:
    """`kubectl scaleset ARGS... -n <the test's namespace>`."""

    def call(*args: str, timeout: float = 120) -> Result:
        return run_plugin(kubeconfig, *args, "-n", world.namespace, timeout=timeout)

    return call


def schema(name: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / name).read_text()))


def one_error_line(result: Result) -> str:
    assert result.err.endswith("\n")
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    return result.err


def pod_annotations(world: World) -> dict[str, dict[str, str]]:
    found = {}
    for pod in world.pods():
        assert pod.metadata is not None
        found[str(pod.metadata.name)] = dict(pod.metadata.annotations or {})
    return found


def ready_scaleset(world: World, capacity: int, **body: Any) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=capacity, **body))
    world.wait_ready(capacity=capacity)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["get", "nosuch"],
        ["rolling-upgrade", "get-latest", "nosuch"],
        ["rolling-upgrade", "start", "nosuch"],
        ["rolling-upgrade", "cancel", "nosuch"],
        ["rolling-upgrade", "watch", "nosuch"],
        ["get-os-upgrade-history", "nosuch"],
        ["update", "nosuch", "--capacity", "2"],
        ["update-instances", "nosuch", "--instance-ids", "0"],
        ["protect", "nosuch", "--instance-ids", "0"],
    ],
    ids=lambda args: " ".join(a for a in args if a != "nosuch"),
)
def test_unknown_scale_set_is_exit_code_3(plugin: Plugin, world: World, args: list[str]) -> None:
    result = plugin(*args)

    assert result.code == 3
    assert one_error_line(result) == (
        f'Error: scale set "nosuch" in namespace "{world.namespace}" not found\n'
    )


def test_unreachable_cluster_is_exit_code_4(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )

    result = run_plugin(kubeconfig, "get", "web")

    assert result.code == 4
    assert one_error_line(result).startswith("Error: cannot reach the cluster")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-batch-instance-percent", "150"], "maxBatchInstancePercent"),
        (["--max-unhealthy-upgraded-instance-percent", "-1"], "greater than or equal to 0"),
        (
            ["--max-batch-instance-percent", "50"],
            "maxBatchInstancePercent must not be above maxUnhealthyInstancePercent",
        ),
        (["--pause-time-between-batches", "5s"], "must be an ISO 8601 duration"),
        (["--version", "1.0.0"], "must be 'latest' when"),
        (["--capacity", "-2"], "capacity"),
    ],
)
def test_invalid_values_show_the_api_servers_message(
    plugin: Plugin, world: World, args: list[str], message: str
) -> None:
    world.create(world.scaleset_body(capacity=0))

    result = plugin("update", "web", *args)

    assert result.code == 2
    assert message in one_error_line(result)
    assert world.get()["metadata"]["generation"] == 1


# --- update -------------------------------------------------------------------------------


def test_update_changes_only_the_given_fields(plugin: Plugin, world: World) -> None:
    world.create(world.scaleset_body(capacity=0))

    result = plugin(
        "update", "web",
        "--enable-automatic-os-upgrade", "false",
        "--disable-automatic-rollback", "true",
        "--max-batch-instance-percent", "40",
        "--max-unhealthy-instance-percent", "60",
        "--max-unhealthy-upgraded-instance-percent", "0",
        "--pause-time-between-batches", "PT2S",
        "--prioritize-unhealthy-instances", "true",
        "--enable-cross-zone-upgrade", "true",
        "--max-surge", "true",
        "--rollback-failed-instances-on-policy-breach", "true",
        "--health-timeout", "PT1M",
        "--upgrade-mode", "manual",
        "--sku", "beta",
        "--version", "2.0",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert 'Updated scale set "web"' in result.out
    spec = world.get()["spec"]
    policy = spec["upgradePolicy"]
    assert policy["mode"] == "Manual"
    assert policy["healthTimeout"] == "PT1M"
    assert policy["automaticOSUpgradePolicy"] == {
        "enableAutomaticOSUpgrade": False,
        "disableAutomaticRollback": True,
    }
    assert policy["rollingUpgradePolicy"] == {
        "maxBatchInstancePercent": 40,
        "maxUnhealthyInstancePercent": 60,
        "maxUnhealthyUpgradedInstancePercent": 0,
        "pauseTimeBetweenBatches": "PT2S",
        "prioritizeUnhealthyInstances": True,
        "enableCrossZoneUpgrade": True,
        "maxSurge": True,
        "rollbackFailedInstancesOnPolicyBreach": True,
        # Not given, so the API server's defaults.
        "disruptionBudgetTimeout": "PT30M",
        "onDisruptionBudgetTimeout": "Fault",
    }
    assert spec["imageReference"] == {
        "publisher": world.publisher,
        "offer": "os",
        "sku": "beta",
        "version": "2.0",
    }
    assert spec["capacity"] == 0

    as_json = plugin("update", "web", "--capacity", "0", "-o", "json")
    assert as_json.json()["imageReference"]["sku"] == "beta"


# --- the image catalog --------------------------------------------------------------------


def test_image_publish_and_list(plugin: Plugin, world: World) -> None:
    pub = world.publisher
    platform = ["--publisher", pub, "--offer", "os", "--sku", "stable"]
    published = [
        plugin("image", "publish", *platform, "--version", "1.0.0", "--image", "example.test/os:1"),
        plugin(
            "image", "publish", *platform, "--version", "1.1.0", "--image", "example.test/os:11",
            "--regions", "eastus,northeurope",
        ),
        plugin(
            "image", "publish", *platform, "--version", "1.2.0", "--image", "example.test/os:12",
            "--exclude-from-latest",
        ),
        plugin(
            "image", "publish", "--gallery", pub, "--gallery-image", "web", "--version", "3.0",
            "--image", "example.test/web:3", "-o", "json",
        ),
    ]  # fmt: skip
    world.published += [f"{pub}-os-stable-1.0.0", f"{pub}-os-stable-1.1.0"]
    world.published += [f"{pub}-os-stable-1.2.0", f"{pub}-web-3.0"]
    assert [r.code for r in published] == [0, 0, 0, 0], [r.err for r in published]
    assert f"Published {pub}:os:stable:1.0.0 as imageversion/{pub}-os-stable-1.0.0" in (
        published[0].out
    )
    assert published[3].json()["spec"]["galleryImage"] == "web"

    usable = plugin("image", "list", "-l", "westeurope", "--publisher", pub, "-o", "json").json()
    every = plugin("image", "list", "--all", "-l", "westeurope", "--publisher", pub, "-o", "yaml")
    table = plugin("image", "list", "-l", "westeurope", "--publisher", pub, "--offer", "os")
    gallery = plugin("image", "list", "-l", "westeurope", "--gallery", pub, "-o", "json").json()

    assert [(r["urn"], r["latest"]) for r in usable] == [(f"{pub}:os:stable:1.0.0", True)]
    assert [
        (r["version"], r["excludeFromLatest"], r["availableInLocation"])
        for r in yaml.safe_load(every.out)
    ] == [("1.0.0", False, True), ("1.1.0", False, False), ("1.2.0", True, True)]
    assert table.out.splitlines()[0].split() == [
        "PUBLISHER", "OFFER", "SKU", "VERSION", "URN", "LATEST",
    ]  # fmt: skip
    assert [r["urn"] for r in gallery] == [f"{pub}/web:3.0"]


def test_image_publish_refusals(plugin: Plugin, world: World) -> None:
    platform = ["--publisher", world.publisher, "--offer", "os", "--sku", "stable"]
    first = plugin("image", "publish", *platform, "--version", "1.0.0", "--image", "x:1")
    world.published.append(f"{world.publisher}-os-stable-1.0.0")

    again = plugin("image", "publish", *platform, "--version", "1.0.0", "--image", "x:1")
    bad_version = plugin("image", "publish", *platform, "--version", "1.x", "--image", "x:1")
    half = plugin("image", "publish", "--publisher", "p", "--version", "1.0", "--image", "x:1")

    assert first.code == 0, first.err
    assert again.code == 1
    assert "already exists" in one_error_line(again)
    assert bad_version.code == 2
    assert "must be a dotted numeric version" in one_error_line(bad_version)
    assert half.code == 2
    assert "--offer and --sku" in half.err


# --- instances ----------------------------------------------------------------------------


def test_get_shows_every_instance(plugin: Plugin, world: World) -> None:
    ready_scaleset(world, 3, automatic=False)

    doc = plugin("get", "web", "-o", "json").json()
    table = plugin("get", "web")

    assert doc["name"] == "web"
    assert doc["location"] == "westeurope"
    assert doc["modelImage"] == f"{world.publisher}:os:stable:1.0.0"
    assert [
        (i["instanceId"], i["pod"], i["imageVersion"], i["health"], i["latestModelApplied"])
        for i in doc["instances"]
    ] == [(str(n), f"web-{n}", "1.0.0", "Healthy", True) for n in range(3)]
    assert all(i["zone"] for i in doc["instances"])
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["Name:", "web"]
    header = next(i for i, line in enumerate(lines) if line.startswith("ID "))
    assert lines[header].split() == [
        "ID", "POD", "ZONE", "IMAGE-VERSION", "HEALTH", "LATEST-MODEL", "PROTECTED",
    ]  # fmt: skip
    assert len(lines) == header + 4


def test_protect_and_unprotect(plugin: Plugin, world: World) -> None:
    ready_scaleset(world, 3, automatic=False)

    on = plugin("protect", "web", "--instance-ids", "0", "2")
    annotations = pod_annotations(world)
    shown = plugin("get", "web", "-o", "json").json()["instances"]
    off = plugin("protect", "web", "--instance-ids", "2", "--off", "-o", "json")
    missing = plugin("protect", "web", "--instance-ids", "1", "7")

    assert on.code == 0, on.err
    assert [annotations[f"web-{n}"].get(ANNOTATION_PROTECT) for n in range(3)] == [
        "true",
        None,
        "true",
    ]
    assert [i["protectFromScaleSetActions"] for i in shown] == [True, False, True]
    assert off.json() == [{"instanceId": "2", "pod": "web-2", "protected": False}]
    assert ANNOTATION_PROTECT not in pod_annotations(world)["web-2"]
    assert missing.code == 3
    assert 'scale set "web" has no instance 7' in one_error_line(missing)
    eventually(lambda: world.status().get("protectedInstances") == 1, 20, what="1 protected")


def test_update_instances_brings_chosen_instances_to_the_model(
    plugin: Plugin, world: World
) -> None:
    ready_scaleset(world, 3, automatic=False, mode="Manual")
    template = world.get()["spec"]["template"]
    template["metadata"]["labels"]["tier"] = "front"
    world.patch_spec({"template": template})

    def latest_model() -> list[bool] | None:
        doc = plugin("get", "web", "-o", "json").json()
        return [i["latestModelApplied"] for i in doc["instances"]]

    eventually(lambda: latest_model() == [False, False, False], 30, what="model changed")
    result = plugin("update-instances", "web", "--instance-ids", "0", "2")
    missing = plugin("update-instances", "web", "--instance-ids", "9")
    bad = plugin("update-instances", "web", "--instance-ids", "zero")

    assert result.code == 0, result.err
    assert "instances 0, 2" in result.out
    eventually(lambda: latest_model() == [True, False, True], 60, what="instances 0, 2 updated")
    assert missing.code == 3
    assert bad.code == 2


# --- rolling upgrades ---------------------------------------------------------------------


def test_start_watch_get_latest_and_history(plugin: Plugin, world: World) -> None:
    ready_scaleset(world, 4, automatic=False)
    never = plugin("rolling-upgrade", "get-latest", "web")
    empty = plugin("get-os-upgrade-history", "web", "-o", "json")
    world.publish("1.1.0")

    started = plugin("rolling-upgrade", "start", "web", "--watch", timeout=180)

    assert never.code == 3
    assert 'no rolling upgrade has run on scale set "web" yet' in one_error_line(never)
    assert empty.json() == {"value": []}
    assert started.code == 0, started.out + started.err
    assert f'Rolling OS upgrade of "web" to {world.publisher}:os:stable:1.1.0 started' in (
        started.out
    )
    assert "Outcome: Completed" in started.out

    latest = plugin("rolling-upgrade", "get-latest", "web", "-o", "json").json()
    schema("rolling-upgrade-status-info.schema.json").validate(latest)
    assert latest["name"] == "web"
    assert latest["location"] == "westeurope"
    assert latest["type"] == "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades"
    assert latest["properties"]["runningStatus"]["code"] == "Completed"
    assert latest["properties"]["runningStatus"]["lastAction"] == "Start"
    assert latest["properties"]["progress"]["successfulInstanceCount"] == 4

    history = plugin("get-os-upgrade-history", "web", "-o", "json").json()
    schema("history-envelope.schema.json").validate(history)
    entry = history["value"][0]
    assert entry["location"] == "westeurope"
    assert entry["properties"]["startedBy"] == "User"
    assert entry["properties"]["runningStatus"]["code"] == "Completed"
    assert entry["properties"]["targetImageReference"]["version"] == "1.1.0"
    assert "endTime" in entry["properties"]["runningStatus"]

    table = plugin("get-os-upgrade-history", "web").out.splitlines()
    assert table[0].split()[:4] == ["START", "END", "STATUS", "BY"]
    assert table[1].split()[2:4] == ["Completed", "User"]
    summary = plugin("rolling-upgrade", "get-latest", "web").out
    assert "Status:       Completed" in summary
    assert "4 successful, 0 failed, 0 in progress, 0 pending" in summary


def test_start_without_a_newer_version_completes_at_once(plugin: Plugin, world: World) -> None:
    ready_scaleset(world, 2, automatic=False)

    result = plugin("rolling-upgrade", "start", "web", "-o", "json")

    assert result.code == 0, result.err
    doc = result.json()
    schema("rolling-upgrade-status-info.schema.json").validate(doc)
    # Nothing to upgrade: the pass that takes the request also ends the run, so the first
    # status the command sees already says Completed, with no instance touched.
    assert doc["properties"]["runningStatus"]["code"] == "Completed"
    assert doc["properties"]["progress"] == {
        "successfulInstanceCount": 0,
        "failedInstanceCount": 0,
        "inProgressInstanceCount": 0,
        "pendingInstanceCount": 0,
    }
    assert set(world.images().values()) == {"example.test/os:1.0.0"}
    annotation = json.loads(world.get()["metadata"]["annotations"][ANNOTATION_START])
    assert annotation["action"] == "start"
    assert annotation["id"] in world.status()["handledRequests"]


def test_watch_ends_with_exit_code_1_when_the_upgrade_faults(plugin: Plugin, world: World) -> None:
    ready_scaleset(world, 4, health_timeout="PT3S")
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    world.wait_upgrade_code("RollingForward", "Faulted")

    watched = plugin("rolling-upgrade", "watch", "web", "--interval", "0.3", "--timeout", "150")
    as_json = plugin("rolling-upgrade", "watch", "web", "-o", "json")
    history = plugin("get-os-upgrade-history", "web", "-o", "json").json()

    assert watched.code == 1
    lines = watched.out.splitlines()
    assert lines[-2] == "Outcome: Faulted"
    assert lines[-1].startswith(
        "Error: MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    )
    assert as_json.code == 1
    schema("rolling-upgrade-status-info.schema.json").validate(as_json.json())
    schema("history-envelope.schema.json").validate(history)
    properties = history["value"][0]["properties"]
    assert properties["startedBy"] == "Platform"
    assert properties["rollbackInfo"]["successfullyRolledbackInstanceCount"] >= 1


def test_cancel_a_running_upgrade(plugin: Plugin, world: World) -> None:
    ready_scaleset(
        world,
        5,
        automatic=False,
        rolling={"maxBatchInstancePercent": 20, "pauseTimeBetweenBatches": "PT20S"},
    )
    world.publish("1.1.0")

    started = plugin("rolling-upgrade", "start", "web")
    twice = plugin("rolling-upgrade", "start", "web")
    cancelled = plugin("rolling-upgrade", "cancel", "web")
    world.wait_upgrade_code("Cancelled", timeout=60)
    watched = plugin("rolling-upgrade", "watch", "web")
    again = plugin("rolling-upgrade", "cancel", "web")
    timed_out = plugin("rolling-upgrade", "watch", "web", "--timeout", "1")

    assert started.code == 0, started.err
    assert twice.code == 1
    assert "already in progress" in one_error_line(twice)
    assert cancelled.code == 0, cancelled.err
    assert 'Cancelled the rolling upgrade of "web"' in cancelled.out
    assert watched.code == 1
    assert "Outcome: Cancelled" in watched.out
    assert again.code == 1
    assert 'no rolling upgrade of "web" is in progress' in one_error_line(again)
    assert timed_out.code == 1  # finished already: reported at once, not a timeout
    latest = plugin("rolling-upgrade", "get-latest", "web", "-o", "json").json()
    assert latest["properties"]["runningStatus"]["lastAction"] == "Cancel"


def test_watch_times_out_on_a_long_upgrade(plugin: Plugin, world: World) -> None:
    ready_scaleset(
        world,
        5,
        automatic=False,
        rolling={"maxBatchInstancePercent": 20, "pauseTimeBetweenBatches": "PT30S"},
    )
    world.publish("1.1.0")
    assert plugin("rolling-upgrade", "start", "web").code == 0

    watched = plugin("rolling-upgrade", "watch", "web", "--timeout", "2", "--interval", "0.5")

    assert watched.code == 1
    assert "timed out after 2s; the upgrade is still RollingForward" in one_error_line(watched)
    assert watched.out.startswith("RollingForward: ")
    plugin("rolling-upgrade", "cancel", "web", "--no-wait")


def test_watch_right_after_a_publish_follows_the_upgrade_it_waits_for(
    plugin: Plugin, world: World
) -> None:
    ready_scaleset(world, 2)
    # A maintenance window opening at a coming minute holds the platform's upgrade back while
    # the watches below start, however quickly the operator notices the publish.
    now = datetime.now(UTC)
    opens = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if opens - now < timedelta(seconds=20):
        opens += timedelta(minutes=1)
    window = {"start": opens.strftime("%H:%M"), "duration": "PT1H"}
    world.patch_spec(
        {"upgradePolicy": {"automaticUpgradeSchedule": {"maintenanceWindows": [window]}}}
    )
    world.publish("1.1.0")

    impatient = plugin("rolling-upgrade", "watch", "web", "--start-timeout", "1")
    watched = plugin("rolling-upgrade", "watch", "web", "--interval", "0.5", timeout=180)

    assert datetime.now(UTC) > opens
    assert impatient.code == 1
    assert impatient.err.startswith(
        "waiting for a rolling upgrade of web to 1.1.0 to start (up to 1s)"
    )
    assert "no rolling upgrade of web started within 1s, though 1.1.0 is due" in impatient.err
    assert watched.code == 0, watched.out + watched.err
    assert watched.err.count("waiting for a rolling upgrade of web to 1.1.0") == 1
    assert "no rolling upgrade has run" not in watched.err
    assert watched.out.splitlines()[-1] == "Outcome: Completed"
    entry = world.status()["osUpgradeHistory"][0]
    assert entry["startedBy"] == "Platform"
    assert entry["targetImageReference"]["version"] == "1.1.0"


def _zone_counts(line: str) -> dict[str, dict[str, int]]:
    """`Zones: zone-1: 1 target, 1 pending; zone-2: ...` as {zone: {state: count}}."""
    zones = {}
    for part in line.removeprefix("Zones: ").split("; "):
        zone, _, counts = part.partition(": ")
        zones[zone] = {state: int(n) for n, state in (c.split(" ") for c in counts.split(", "))}
    return zones


def test_watch_prints_the_instances_by_zone_as_their_states_move(
    plugin: Plugin, world: World
) -> None:
    ready_scaleset(
        world,
        3,
        automatic=False,
        rolling={"maxBatchInstancePercent": 20, "pauseTimeBetweenBatches": "PT3S"},
    )
    shown = plugin("get", "web", "-o", "json").json()["instances"]
    zones = sorted({i["zone"] for i in shown})
    world.publish("1.1.0")
    assert plugin("rolling-upgrade", "start", "web").code == 0

    watched = plugin("rolling-upgrade", "watch", "web", "--interval", "0.3", timeout=180)

    assert watched.code == 0, watched.out + watched.err
    assert watched.err == ""
    lines = watched.out.splitlines()
    assert lines[0].startswith("RollingForward: ")
    assert lines[1].startswith("Zones: ")
    assert lines[-1] == "Outcome: Completed"
    seen = [_zone_counts(line) for line in lines if line.startswith("Zones: ")]
    # One batch of one instance at a time, 3 s apart: the watch sees the states move.
    assert len(seen) >= 2, watched.out
    assert all(sorted(counts) == zones for counts in seen)
    assert all(sum(n for c in counts.values() for n in c.values()) == 3 for counts in seen)
    assert any("in-flight" in c or "pending" in c for c in seen[0].values())
    assert all(set(c) == {"target"} for c in seen[-1].values()), seen[-1]


def _service_account_kubeconfig(
    world: World, kubeconfig: Path, folder: Path, rules: list[client.V1PolicyRule]
) -> Path:
    """A kubeconfig for a service account of the test's namespace bound to a Role named
    "reader" with these rules (replace the Role to change them)."""
    rbac = client.RbacAuthorizationV1Api(world.api)
    ns = world.namespace
    meta = client.V1ObjectMeta(name="reader")
    world.core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=meta))
    rbac.create_namespaced_role(ns, client.V1Role(metadata=meta, rules=rules))
    subject = client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=ns)
    role = client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="reader")
    rbac.create_namespaced_role_binding(
        ns, client.V1RoleBinding(metadata=meta, role_ref=role, subjects=[subject])
    )
    request = client.V1TokenRequestSpec(audiences=[SERVICE_ACCOUNT_ISSUER], expiration_seconds=600)
    answer = world.core.create_namespaced_service_account_token(
        "reader", ns, client.AuthenticationV1TokenRequest(spec=request)
    )
    assert answer.status is not None
    config = yaml.safe_load(kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": answer.status.token}
    path = folder / "reader.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_watch_by_a_user_who_may_not_list_pods_or_nodes_notes_what_it_cannot_show(
    plugin: Plugin, world: World, kubeconfig: Path, tmp_path: Path
) -> None:
    ready_scaleset(world, 2, automatic=False)
    # Nothing newer to move to: the run starts and completes at once, and watch reports it.
    assert plugin("rolling-upgrade", "start", "web").code == 0
    scalesets = client.V1PolicyRule(
        api_groups=["scaleset.dev"], resources=["scalesets"], verbs=["get", "list", "watch"]
    )
    pods = client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])
    reader = _service_account_kubeconfig(world, kubeconfig, tmp_path, [scalesets])
    args = ("rolling-upgrade", "watch", "web", "-n", world.namespace)

    without_pods = run_plugin(reader, *args)
    client.RbacAuthorizationV1Api(world.api).replace_namespaced_role(
        "reader",
        world.namespace,
        client.V1Role(metadata=client.V1ObjectMeta(name="reader"), rules=[scalesets, pods]),
    )

    # A namespaced Role cannot grant nodes (cluster-scoped): zones stay unknown to this user.
    def with_zones() -> Result | None:
        shown = run_plugin(reader, *args)
        return shown if "Zones:" in shown.out else None

    without_nodes = eventually(with_zones, 30, what="pods readable by the reader")

    assert without_pods.code == 0, without_pods.err
    assert without_pods.out.splitlines() == [
        "Completed: 0 successful, 0 failed, 0 in progress, 0 pending",
        "Outcome: Completed",
    ]
    assert without_pods.err.startswith(
        'note: instances by zone not shown: not allowed to access pods of scale set "web"'
    )
    assert "Traceback" not in without_pods.err
    assert without_nodes.code == 0, without_nodes.err
    assert without_nodes.out.splitlines() == [
        "Completed: 0 successful, 0 failed, 0 in progress, 0 pending",
        "Zones: (no zone): 2 target",
        "Outcome: Completed",
    ]
    assert without_nodes.err.startswith("note: zones unknown: not allowed to access nodes")
    assert without_nodes.err.count("\n") == 1


def test_a_window_closing_mid_run_holds_the_next_batch_and_get_latest_says_until_when(
    plugin: Plugin, world: World
) -> None:
    rolling = {
        "maxBatchInstancePercent": 50,
        "maxUnhealthyInstancePercent": 50,
        "pauseTimeBetweenBatches": "PT10S",
    }
    ready_scaleset(world, 2, rolling=rolling)
    # Windows start on the minute but may last seconds: the first is open now and closes 8 s
    # from now, while batch 1 or the pause after it runs; the second opens at a coming minute,
    # well after that pause.
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    closes = now + timedelta(seconds=8)
    opens = minute + timedelta(minutes=1)
    if opens - now < timedelta(seconds=25):
        opens += timedelta(minutes=1)
    windows = [
        {"start": minute.strftime("%H:%M"), "duration": f"PT{(closes - minute).seconds}S"},
        {"start": opens.strftime("%H:%M"), "duration": "PT1H"},
    ]
    world.patch_spec(
        {"upgradePolicy": {"automaticUpgradeSchedule": {"maintenanceWindows": windows}}}
    )
    world.publish("1.1.0")

    until = opens.strftime("%Y-%m-%dT%H:%M:%SZ")

    def says_until() -> Result | None:
        shown = plugin("rolling-upgrade", "get-latest", "web")
        return shown if f"until {until}" in shown.out else None

    waiting = eventually(says_until, 60, interval=1, what="get-latest saying until when")
    on_new = [i for i, image in world.images().items() if image.endswith(":1.1.0")]
    as_json = plugin("rolling-upgrade", "get-latest", "web", "-o", "json")
    done = world.wait_upgrade_code("Completed", timeout=150)

    assert "Status:       RollingForward" in waiting.out
    assert "Waiting:      batch 2 waits for the next maintenance window" in waiting.out
    assert len(on_new) == 1  # batch 1 finished; batch 2 had not begun
    schema("rolling-upgrade-status-info.schema.json").validate(as_json.json())
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    (entry,) = done["osUpgradeHistory"]
    assert entry["startedBy"] == "Platform"
    assert entry["progress"]["successfulInstanceCount"] == 2
    ended = datetime.fromisoformat(entry["runningStatus"]["endTime"].replace("Z", "+00:00"))
    assert ended >= opens


def test_plan_and_start_pick_the_same_version_when_the_newest_is_quarantined(
    plugin: Plugin, world: World
) -> None:
    ready_scaleset(world, 2, health_timeout="PT3S")
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    world.wait_upgrade_code("Faulted")
    world.patch_spec(
        {"upgradePolicy": {"automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": False}}}
    )
    world.publish("1.5.0")
    world.wait_ready(capacity=2)

    planned = plugin("rolling-upgrade", "plan", "web", "-o", "json")
    text = plugin("rolling-upgrade", "plan", "web")
    started = plugin("rolling-upgrade", "start", "web")
    world.wait_upgrade_code("Completed")

    assert planned.code == 0, planned.err
    doc = planned.json()
    assert doc["targetVersion"] == "1.5.0"
    assert doc["heldBack"] == [{"version": "2.0.0", "reason": "Quarantined"}]
    assert "newer, held back: 2.0.0 (quarantined)" in text.out
    assert started.code == 0, started.out + started.err
    assert f"to {world.publisher}:os:stable:1.5.0 started" in started.out
    assert world.status()["osUpgradeHistory"][0]["targetImageReference"]["version"] == "1.5.0"
    assert set(world.images().values()) == {"example.test/os:1.5.0"}


# --- kubeconfig handling ------------------------------------------------------------------


def test_namespace_comes_from_the_kubeconfig_context(
    kubeconfig: Path, world: World, tmp_path: Path
) -> None:
    world.create(world.scaleset_body(capacity=0))
    config = yaml.safe_load(kubeconfig.read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    config["contexts"].append(
        {"name": "team", "context": {**current["context"], "namespace": world.namespace}}
    )
    copy = tmp_path / "kubeconfig"
    copy.write_text(yaml.safe_dump(config))

    by_context = run_plugin(copy, "--context", "team", "get", "web", "-o", "json")
    by_flag = run_plugin(
        tmp_path / "missing", "get", "web", "--kubeconfig", str(copy), "-n", world.namespace
    )
    default = run_plugin(copy, "get", "web")

    assert by_context.code == 0, by_context.err
    assert by_context.json()["namespace"] == world.namespace
    assert by_flag.code == 0, by_flag.err
    assert by_flag.out.startswith("Name:")
    assert default.code == 3
    assert 'in namespace "default" not found' in default.err


def test_quarantine_list_and_clear(world: World, plugin: Plugin) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=2))
    world.wait_ready(capacity=2)
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    world.wait_upgrade_code("Faulted")

    listed = plugin("quarantine", "list", "web", "-o", "json")
    assert listed.code == 0, listed.err
    assert json.loads(listed.out) == {"quarantinedVersions": ["2.0.0"]}

    cleared = plugin("quarantine", "clear", "web", "--version", "2.0.0")
    assert cleared.code == 0, cleared.err
    assert "empty" in cleared.out
    # Released, the version is "latest" again: the platform tries it once more.
    eventually(lambda: len(world.status().get("osUpgradeHistory") or []) == 2, 60)
    world.wait_upgrade_code("Faulted")

    missing = plugin("quarantine", "list", "nope")
    assert missing.code == 3


def test_rolling_upgrade_plan_is_a_dry_run(world: World, plugin: Plugin) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=6, automatic=False))
    world.wait_ready(capacity=6)
    world.publish("1.1.0")
    shown = plugin("rolling-upgrade", "plan", "web", "-o", "json")
    assert shown.code == 0, shown.err
    doc = shown.json()
    assert doc["targetVersion"] == "1.1.0"
    assert doc["wouldStart"] is True
    planned = [i for b in doc["batches"] for i in b["instanceIds"]]
    assert sorted(planned) == list(range(6))
    assert all(len(b["instanceIds"]) == 1 for b in doc["batches"])  # 20 % of 6, at least 1
    text = plugin("rolling-upgrade", "plan", "web")
    assert "Batch".upper() in text.out
    # Nothing changed.
    assert set(world.images().values()) == {"example.test/os:1.0.0"}
    assert "rollingUpgrade" not in world.status()
    assert plugin("rolling-upgrade", "plan", "web", "--version", "9.9.9").code == 3
