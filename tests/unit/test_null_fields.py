"""API objects as the API server hands them out right after a create: fields absent or null.

A CRD has `status.conditions: null` until it is established, a pod has no status before it is
scheduled; every reader must take that as "not yet", never as a crash.
"""

from __future__ import annotations

from typing import Any

import pytest

from scaleset_operator.catalog.objects import catalog_entries
from scaleset_operator.cli.operator import demo as demo_cmd
from scaleset_operator.cli.plugin.context import CommandFailed, parse_scaleset
from scaleset_operator.controller.reconcile import _owned_by
from scaleset_operator.k8s.client import condition
from scaleset_operator.k8s.crds import (
    NotEstablishedError,
    is_established,
    missing_resources,
    wait_established,
)
from scaleset_operator.k8s.errors import NotFoundError
from scaleset_operator.k8s.pods import build_claims, to_instance
from tests.unit.simworld import spec_of

Obj = dict[str, Any]
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
ESTABLISHED = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}


class ScriptedCluster:
    """Answers GETs from a script per path (an exception in it is raised), the last answer
    repeating; records every request."""

    def __init__(self, answers: dict[str, list[Any]]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **_: Any) -> Obj:
        self.requests.append((method, path))
        if method != "GET":
            return {}
        script = self.answers.get(path)
        if not script:
            raise NotFoundError(f"404 Not Found: {path}")
        answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


FRESH_CRDS = [
    {},
    {"status": None},
    {"status": {"conditions": None}},
    {"status": {"conditions": [None, {"type": "Established", "status": None}]}},
    {"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}},
]


@pytest.mark.parametrize("crd", FRESH_CRDS)
def test_a_fresh_crd_is_not_established_yet(crd: Obj) -> None:
    assert not is_established(crd)
    assert condition(crd, "Established") is None


def test_an_established_crd() -> None:
    assert is_established(ESTABLISHED)


def test_waiting_for_crds_reads_through_their_null_fields() -> None:
    scripted: list[Any] = [NotFoundError("404"), *FRESH_CRDS, ESTABLISHED]
    cluster = ScriptedCluster({f"{CRDS}/a.example": scripted})

    wait_established(cluster, ["a.example"], timeout=5, interval=0)  # type: ignore[arg-type]

    assert len(cluster.requests) == len(FRESH_CRDS) + 2


def test_waiting_for_a_crd_that_never_comes_fails_with_its_name() -> None:
    cluster = ScriptedCluster({f"{CRDS}/a.example": [{"status": {"conditions": None}}]})

    with pytest.raises(NotEstablishedError, match=r"CRD a\.example not established after 0s"):
        wait_established(cluster, ["a.example"], timeout=0)  # type: ignore[arg-type]


def test_the_demo_installs_crds_whose_conditions_start_null() -> None:
    names = ["scalesets.scaleset.dev", "imageversions.scaleset.dev", "upgradewaves.scaleset.dev"]
    cluster = ScriptedCluster(
        {f"{CRDS}/{n}": [{"status": {"conditions": None}}, ESTABLISHED] for n in names}
    )

    demo_cmd._install_crds(cluster)  # type: ignore[arg-type]

    assert [p for m, p in cluster.requests if m == "GET"].count(f"{CRDS}/{names[0]}") == 2


@pytest.mark.parametrize(
    "listing", [{}, {"resources": None}, {"resources": [None, {"name": "scalesets"}]}]
)
def test_discovery_with_null_resources(listing: Obj) -> None:
    cluster = ScriptedCluster({"/apis/g/v1": [listing]})

    missing = missing_resources(cluster, "g/v1", ["scalesets", "imageversions"])  # type: ignore[arg-type]

    assert "imageversions" in missing


def test_a_group_not_served_at_all_misses_everything() -> None:
    missing = missing_resources(ScriptedCluster({}), "g/v1", ["a", "b"])  # type: ignore[arg-type]
    assert missing == ["a", "b"]


UNSCHEDULED_POD: Obj = {
    "metadata": {
        "name": None,
        "uid": None,
        "labels": {"scaleset.dev/instance-id": "3"},
        "annotations": None,
    },
    "spec": {"containers": [{"name": "os", "image": None}], "nodeName": None},
    "status": None,
}


def test_a_pod_without_status_is_an_instance_that_is_not_ready() -> None:
    inst = to_instance(UNSCHEDULED_POD, spec_of(), {}, None)

    assert inst is not None
    assert inst.instance_id == 3
    assert inst.name == ""
    assert inst.os_image == ""
    assert not inst.ready
    assert inst.os_status is None


def test_the_demo_table_shows_pods_with_null_fields() -> None:
    pods = [UNSCHEDULED_POD, {"metadata": {"labels": None}, "spec": None, "status": {}}]

    class Pods:
        def list_pods(self, namespace: str, selector: str) -> list[Obj]:
            return pods

    table = demo_cmd._instances_table(Pods())  # type: ignore[arg-type]

    assert table.row_count == 2


@pytest.mark.parametrize(
    "rolling_upgrade", [None, {}, {"runningStatus": None}, {"runningStatus": {"startTime": None}}]
)
def test_the_demo_reads_a_start_time_that_is_not_there_yet(rolling_upgrade: Obj | None) -> None:
    assert demo_cmd._start_time(rolling_upgrade) is None


def test_claims_from_a_template_with_null_metadata() -> None:
    spec = spec_of().model_copy(
        update={"volume_claim_templates": [{"metadata": None, "spec": {"accessModes": None}}]}
    )
    scaleset = {"metadata": {"name": "web", "namespace": "ns", "uid": "u"}}

    [claim] = build_claims(scaleset, spec, 0)

    assert claim["metadata"]["name"] == "data-web-0"
    assert claim["metadata"]["labels"]["scaleset.dev/instance-id"] == "0"


def test_a_pod_with_null_metadata_is_not_owned() -> None:
    assert not _owned_by({"metadata": None}, "u")
    assert not _owned_by({"metadata": {"ownerReferences": [None]}}, "u")


def test_image_versions_with_null_metadata_are_still_read() -> None:
    item = {
        "metadata": {"name": None},
        "spec": {"publisher": "p", "offer": "o", "sku": "s", "version": "1.0.0", "image": "i"},
    }

    [entry] = catalog_entries([item])

    assert entry.name == ""


def test_a_scale_set_with_null_metadata_names_itself_unknown_in_errors() -> None:
    with pytest.raises(CommandFailed, match=r'scale set "\?" is not readable'):
        parse_scaleset({"metadata": None, "spec": {"capacity": "many"}})
