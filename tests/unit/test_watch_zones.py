"""`rolling-upgrade watch` shows the instances by zone in the dashboard's states: the rich view,
the "Zones:" line of line-by-line output, reading pods and nodes with and without permission,
and JSON output that stays as it was."""

from __future__ import annotations

import json
from typing import Any, cast

import click
import pytest
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException
from rich.console import Console

from scaleset_operator.cli.plugin.context import Settings, parse_scaleset
from scaleset_operator.cli.plugin.watch import ZoneReader, live_view, watch
from scaleset_operator.cli.views.azure import latest_info
from scaleset_operator.cli.views.output import document
from scaleset_operator.cli.views.zones import COLOURS, zone_line, zone_view
from scaleset_operator.dashboard.tiles import NO_ZONE, TileState, tiles_by_zone
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import KubeApiError, classify
from scaleset_operator.k8s.userapi import UserApi
from scaleset_operator.models.instance import (
    ANNOTATION_IMAGE_URN,
    ANNOTATION_PROTECT,
    LABEL_INSTANCE_ID,
    LABEL_SCALESET,
    Instance,
)
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import (
    Batch,
    Progress,
    ResolvedImage,
    RollingRunningStatus,
    RollingUpgradeStatus,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)

START = "2026-03-01T11:59:00Z"
SPEC = ScaleSetSpec.model_validate(
    {
        "location": "westeurope",
        "imageReference": {"publisher": "contoso", "offer": "os", "sku": "stable"},
        "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}},
    }
)


def _image(version: str) -> ResolvedImage:
    return ResolvedImage(
        publisher="contoso",
        offer="os",
        sku="stable",
        version=version,
        container_image=f"example.test/os:{version}",
    )


OLD, NEW = _image("1.0.0"), _image("1.1.0")
ZONE_LABEL = "topology.kubernetes.io/zone"
# Zones by node, as the nodes' topology labels say.
NODES = {"n1": "zone-1", "n2": "zone-2"}


def _instance(iid: int, image: ResolvedImage, node: str, **extra: Any) -> Instance:
    return Instance(
        instance_id=iid,
        name=f"web-{iid}",
        os_image=image.container_image,
        image_urn=image.urn,
        ready=extra.pop("ready", True),
        node_name=node,
        zone=NODES.get(node),
        **extra,
    )


def _status(code: RunningStatusCode = RunningStatusCode.ROLLING_FORWARD) -> ScaleSetStatus:
    run = UpgradeRun(
        started_by=StartedBy.USER,
        start_time=START,
        target=NEW,
        previous=OLD,
        code=code,
        batch=Batch(number=2, instance_ids=[2, 3], started_at=START),
        batches_done=1,
        succeeded=[0, 1],
        failed=[3],
        rolled_back=[3],
    )
    ru = RollingUpgradeStatus(
        running_status=RollingRunningStatus(code=code, start_time=START),
        progress=Progress(
            successful_instance_count=2,
            failed_instance_count=1,
            in_progress_instance_count=1,
            pending_instance_count=2,
        ),
    )
    return ScaleSetStatus(model_image=NEW, upgrade_run=run, rolling_upgrade=ru)


# Zone 1: two on the target and one pending; zone 2: one in flight, one rolled back, one
# pending and one protected.
INSTANCES = [
    _instance(0, NEW, "n1"),
    _instance(1, NEW, "n1"),
    _instance(2, NEW, "n2", ready=False),
    _instance(3, OLD, "n2"),
    _instance(4, OLD, "n1"),
    _instance(5, OLD, "n2"),
    _instance(6, OLD, "n2", protected=True),
]


def _render(renderable: Any, width: int = 100) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


# --- the views ------------------------------------------------------------------------------


def test_zone_view_has_a_row_per_zone_with_its_state_counts() -> None:
    text = _render(zone_view(tiles_by_zone(INSTANCES, _status())))

    lines = text.splitlines()
    assert lines[0] == "Instances by zone"
    one = next(li for li in lines if li.startswith("zone-1"))
    two = next(li for li in lines if li.startswith("zone-2"))
    assert one.count("■") == 3
    assert one.split("■")[-1].split() == ["2", "target", "1", "pending"]
    assert two.count("■") == 4
    assert two.split("■")[-1].split() == [
        "1", "in-flight", "1", "rolled-back", "1", "pending", "1", "protected",
    ]  # fmt: skip


def test_zone_view_colours_each_cell_by_its_state_as_the_dashboard_does() -> None:
    zones = tiles_by_zone(INSTANCES, _status())
    console = Console(record=True, width=100, color_system="standard", force_terminal=True)
    console.print(zone_view(zones))
    assert set(COLOURS) == set(TileState)
    styled = console.export_text(styles=True)
    # Green, yellow, magenta, blue and bright black cells: the five states in these zones.
    for code in ("\x1b[32m■", "\x1b[33m■", "\x1b[35m■", "\x1b[34m■", "\x1b[90m■"):
        assert code in styled


def test_many_instances_wrap_inside_their_zone_row() -> None:
    many = [_instance(i, NEW, "n1") for i in range(60)]
    text = _render(zone_view(tiles_by_zone(many, ScaleSetStatus(model_image=NEW))), width=60)

    assert text.count("■") == 60
    assert "60 target" in text


def test_zone_view_says_why_zones_are_missing() -> None:
    text = _render(zone_view({}, "instances by zone not shown: not allowed to access pods"))

    assert "note: instances by zone not shown: not allowed to access pods" in text


def test_zone_line_is_one_compact_line_with_only_the_states_present() -> None:
    line = zone_line(tiles_by_zone(INSTANCES, _status()))

    assert line == (
        "Zones: zone-1: 2 target, 1 pending; "
        "zone-2: 1 in-flight, 1 rolled-back, 1 pending, 1 protected"
    )
    assert zone_line({}) == "Zones: no instances"


# --- the command, against a fake API server ------------------------------------------------


def _forbidden(resource: str, namespace: str | None) -> KubeApiError:
    """What `errors.call` makes of the API server's 403 for a list."""
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = json.dumps(
        {
            "kind": "Status",
            "status": "Failure",
            "reason": "Forbidden",
            "message": f'{resource} is forbidden: User "reader" cannot list resource '
            f'"{resource}" in API group ""{where}',
        }
    )
    return classify(exc)


def _pod(inst: Instance) -> dict[str, Any]:
    """The pod `k8s.pods.to_instance` reads back as this instance."""
    annotations = {ANNOTATION_IMAGE_URN: inst.image_urn}
    if inst.protected:
        annotations[ANNOTATION_PROTECT] = "true"
    return {
        "metadata": {
            "name": inst.name,
            "labels": {LABEL_SCALESET: "web", LABEL_INSTANCE_ID: str(inst.instance_id)},
            "annotations": annotations,
        },
        "spec": {
            "nodeName": inst.node_name,
            "containers": [{"name": "os", "image": inst.os_image}],
        },
        "status": {"conditions": [{"type": "Ready", "status": str(inst.ready)}]},
    }


class FakeCluster(KubeClient):
    """The API server behind the `UserApi` calls `watch` makes, answering
    `KubeClient.request`; a scale set whose run ends on the second read."""

    def __init__(self, *, pods: bool = True, nodes: bool = True) -> None:
        super().__init__(cast(Any, None))
        self.statuses = [_status(), _status(RunningStatusCode.COMPLETED)]
        self.pods_allowed = pods
        self.instances = list(INSTANCES)
        self.nodes_allowed = nodes
        self.calls: list[str] = []

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert method == "GET"
        if path.endswith("/scalesets/web"):
            self.calls.append("scaleset")
            status = self.statuses[0] if len(self.statuses) == 1 else self.statuses.pop(0)
            return {"metadata": {"name": "web"}, "spec": SPEC.wire(), "status": status.wire()}
        if path.endswith("/imageversions"):
            return {"items": []}
        if path == "/api/v1/nodes":
            self.calls.append("nodes")
            if not self.nodes_allowed:
                raise _forbidden("nodes", None)
            known = {i.node_name for i in self.instances if i.node_name}
            return {
                "items": [
                    {
                        "metadata": {
                            "name": n,
                            "labels": {ZONE_LABEL: NODES[n]} if n in NODES else {},
                        }
                    }
                    for n in sorted(known)
                ]
            }
        if path == "/api/v1/namespaces/shop/pods":
            self.calls.append("pods")
            if not self.pods_allowed:
                raise _forbidden("pods", "shop")
            return {"items": [_pod(i) for i in self.instances]}
        raise AssertionError(f"unexpected request: {method} {path}")


def fake_api(*, pods: bool = True, nodes: bool = True) -> UserApi:
    return UserApi(FakeCluster(pods=pods, nodes=nodes), "shop")


def _calls(api: UserApi) -> list[str]:
    return cast(FakeCluster, api.kube).calls


def _watch(api: UserApi, *args: str) -> Any:
    runner = CliRunner()
    return runner.invoke(
        watch, ["web", "--interval", "0.1", *args], obj=Settings(_api=api), catch_exceptions=False
    )


def test_line_output_prints_a_zones_line_after_each_changed_progress_line() -> None:
    api = fake_api()

    result = _watch(api)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "RollingForward: 2 successful, 1 failed, 1 in progress, 2 pending",
        "Zones: zone-1: 2 target, 1 pending; "
        "zone-2: 1 in-flight, 1 rolled-back, 1 pending, 1 protected",
        # The states by zone did not change with the run's end: no second "Zones:" line.
        "Completed: 2 successful, 1 failed, 1 in progress, 2 pending",
        "Outcome: Completed",
    ]
    # Nodes were listed once: no pod moved to a node not seen before.
    assert _calls(api).count("nodes") == 1
    assert result.stderr == ""


def test_a_user_who_may_not_list_pods_gets_todays_lines_and_one_note() -> None:
    result = _watch(fake_api(pods=False))

    assert result.exit_code == 0, result.output
    assert [li for li in result.stdout.splitlines() if li.startswith("Zones")] == []
    assert result.stdout.splitlines()[-1] == "Outcome: Completed"
    assert result.stderr == (
        'note: instances by zone not shown: not allowed to access pods of scale set "web": '
        'pods is forbidden: User "reader" cannot list resource "pods" in API group "" in the '
        'namespace "shop"\n'
    )


def test_a_user_who_may_not_list_nodes_sees_the_states_without_zones_and_a_note() -> None:
    api = fake_api(nodes=False)

    result = _watch(api)

    assert result.exit_code == 0, result.output
    assert (
        f"Zones: {NO_ZONE}: 2 target, 1 in-flight, 1 rolled-back, 2 pending, 1 protected"
        in result.stdout.splitlines()
    )
    assert result.stderr.count("note: zones unknown: not allowed to access nodes") == 1
    assert _calls(api).count("nodes") == 1  # not asked again


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_json_and_yaml_output_is_the_final_document_alone(fmt: str) -> None:
    api = fake_api()

    result = _watch(api, "-o", fmt)

    final = ScaleSetStatus.model_validate(_status(RunningStatusCode.COMPLETED).wire())
    assert result.exit_code == 0, result.output
    assert result.stdout == document(latest_info(final, "web", "westeurope"), fmt) + "\n"
    assert "pods" not in _calls(api)
    assert "nodes" not in _calls(api)
    if fmt == "json":
        assert json.loads(result.stdout)["properties"]["runningStatus"]["code"] == "Completed"


def test_the_terminal_view_shows_the_bars_and_then_the_zones() -> None:
    api = fake_api()
    with click.Context(watch, obj=Settings(_api=api)):
        loaded = parse_scaleset(api.get_scaleset("web"))
        assert loaded.status.rolling_upgrade is not None
        view = live_view("web", loaded, loaded.status.rolling_upgrade, ZoneReader())

    text = _render(view)
    assert text.startswith("Rolling upgrade of web: RollingForward")
    assert text.index("pending ") < text.index("Instances by zone") < text.index("zone-1")
    assert "1 in-flight  1 rolled-back  1 pending  1 protected" in text


def test_nodes_are_listed_again_only_for_a_pod_on_a_node_not_seen_before() -> None:
    api = fake_api()
    reader = ZoneReader()
    with click.Context(watch, obj=Settings(_api=api)):
        loaded = parse_scaleset(api.get_scaleset("web"))
        for _ in range(3):
            reader.read(loaded)
        cast(FakeCluster, api.kube).instances.append(_instance(7, NEW, "n3"))
        reader.read(loaded)  # sees n3: the next read lists nodes again
        zones, note = reader.read(loaded)
        reader.read(loaded)  # n3 has no zone label, but it is known now

    assert _calls(api).count("nodes") == 2
    assert note is None
    assert [t.instance_id for t in zones[NO_ZONE]] == [7]
