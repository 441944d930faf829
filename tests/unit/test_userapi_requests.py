"""`k8s.userapi.UserApi`, the plugin's and the dashboard's calls, on the operator's own client:
the request each call makes, the messages its errors carry for a person, and the zone and
EndpointSlice reads it shares with the operator (`KubeClient.node_zones`, `ready_endpoints`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import (
    AlreadyExistsError,
    ForbiddenError,
    InvalidError,
    KubeApiError,
    NotFoundError,
    UnavailableError,
    call,
)
from scaleset_operator.k8s.userapi import UserApi
from scaleset_operator.models.instance import LABEL_INSTANCE_ID, LABEL_SCALESET
from scaleset_operator.models.scaleset import GROUP, VERSION, ScaleSetSpec

Obj = dict[str, Any]
BASE = f"/apis/{GROUP}/{VERSION}"
ZONE = "topology.kubernetes.io/zone"


def _spec(**probe: Any) -> ScaleSetSpec:
    return ScaleSetSpec.model_validate(
        {
            "location": "westeurope",
            "imageReference": {"publisher": "contoso", "offer": "os", "sku": "stable"},
            "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}},
            **({"healthProbe": probe} if probe else {}),
        }
    )


def _raise(exc: BaseException) -> Any:
    raise exc


def _failure(exc: BaseException) -> KubeApiError:
    """What `errors.call` (the one classification, inside `KubeClient.request`) makes of it."""
    try:
        call(lambda: _raise(exc))
    except KubeApiError as classified:
        return classified
    raise AssertionError("not raised")


def _status(code: int, reason: str, body: Obj) -> KubeApiError:
    exc = ApiException(status=code, reason=reason)
    exc.body = json.dumps(body)
    return _failure(exc)


class Server(KubeClient):
    """Answers `KubeClient.request` from a table of (method, path) to an answer or an error,
    and records every request."""

    def __init__(self, answers: dict[tuple[str, str], Obj | KubeApiError]) -> None:
        super().__init__(cast(Any, None))
        self.answers = answers
        self.sent: list[tuple[str, str, Obj]] = []

    def request(self, method: str, path: str, **options: Any) -> Obj:
        self.sent.append((method, path, options))
        answer = self.answers.get((method, path), {})
        if isinstance(answer, KubeApiError):
            raise answer
        return answer


def _api(answers: dict[tuple[str, str], Obj | KubeApiError]) -> tuple[UserApi, Server]:
    server = Server(answers)
    return UserApi(server, "shop"), server


def _pod(iid: int, node: str | None) -> Obj:
    return {
        "metadata": {
            "name": f"web-{iid}",
            "labels": {LABEL_SCALESET: "web", LABEL_INSTANCE_ID: str(iid)},
        },
        "spec": {"nodeName": node, "containers": [{"name": "os", "image": "x"}]},
    }


PODS = ("GET", "/api/v1/namespaces/shop/pods")
NODES = ("GET", "/api/v1/nodes")
SLICES = ("GET", "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices")
NODE_LIST = {
    "items": [
        {"metadata": {"name": "n1", "labels": {ZONE: "zone-1"}}},
        {"metadata": {"name": "n2", "labels": {}}},
    ]
}


# --- the requests ---------------------------------------------------------------------------


def test_each_call_is_one_raw_path_request() -> None:
    api, server = _api({})

    api.get_scaleset("web")
    api.patch_scaleset("web", {"spec": {"capacity": 2}})
    api.list_imageversions()
    api.get_upgradewave("fleet")
    api.list_upgradewaves()
    api.annotate_pod("web-0", {"a": None})
    api.events_about("web", "ScaleSet")

    assert [(m, p) for m, p, _ in server.sent] == [
        ("GET", f"{BASE}/namespaces/shop/scalesets/web"),
        ("PATCH", f"{BASE}/namespaces/shop/scalesets/web"),
        ("GET", f"{BASE}/imageversions"),
        ("GET", f"{BASE}/upgradewaves/fleet"),
        ("GET", f"{BASE}/upgradewaves"),
        ("PATCH", "/api/v1/namespaces/shop/pods/web-0"),
        ("GET", "/api/v1/namespaces/shop/events"),
    ]
    merge = {"content_type": "application/merge-patch+json"}
    assert server.sent[1][2] == {"body": {"spec": {"capacity": 2}}, **merge}
    assert server.sent[5][2] == {"body": {"metadata": {"annotations": {"a": None}}}, **merge}
    assert server.sent[6][2] == {
        "query": [("fieldSelector", "involvedObject.name=web,involvedObject.kind=ScaleSet")]
    }


def test_create_imageversion_posts_the_object_and_returns_what_the_server_made() -> None:
    made = {"metadata": {"name": "v1", "uid": "u"}}
    api, server = _api({("POST", f"{BASE}/imageversions"): made})

    assert api.create_imageversion("v1", {"version": "1.0.0"}) == made
    assert server.sent[0][2]["body"] == {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageVersion",
        "metadata": {"name": "v1"},
        "spec": {"version": "1.0.0"},
    }


def test_events_are_oldest_first_with_their_times_as_datetimes() -> None:
    def event(type_: str, reason: str, **times: str) -> Obj:
        return {"type": type_, "reason": reason, "message": reason.lower(), **times}

    events = {
        "items": [
            event("Warning", "B", lastTimestamp="2026-03-01T12:00:05Z"),
            event("Normal", "A", eventTime="2026-03-01T12:00:01.500000Z"),
            event("Normal", "C"),
        ]
    }
    api, _ = _api({("GET", "/api/v1/namespaces/shop/events"): events})

    found = api.events_about("web", "ScaleSet")

    assert [e["reason"] for e in found] == ["C", "A", "B"]
    assert found[0]["time"] is None
    assert found[1]["time"] == datetime(2026, 3, 1, 12, 0, 1, 500000, tzinfo=UTC)
    assert found[2] == {
        "type": "Warning",
        "reason": "B",
        "message": "b",
        "time": datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC),
    }


# --- the messages a person reads --------------------------------------------------------------


GET_WEB = ("GET", f"{BASE}/namespaces/shop/scalesets/web")


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (
            _status(
                404, "Not Found", {"reason": "NotFound", "message": 'scalesets "web" not found'}
            ),
            NotFoundError,
            'scale set "web" in namespace "shop" not found',
        ),
        (
            _status(403, "Forbidden", {"message": 'scalesets "web" is forbidden: User "u"'}),
            ForbiddenError,
            'not allowed to access scale set "web" in namespace "shop": '
            'scalesets "web" is forbidden: User "u"',
        ),
        (
            _status(
                422,
                "Unprocessable Entity",
                {
                    "message": "ScaleSet.scaleset.dev is invalid",
                    "details": {
                        "causes": [
                            {"field": "spec.capacity", "message": "must be >= 0"},
                            {"message": "and another"},
                        ]
                    },
                },
            ),
            InvalidError,
            "spec.capacity: must be >= 0; and another",
        ),
        (
            _status(409, "Conflict", {"reason": "AlreadyExists", "message": "it exists"}),
            AlreadyExistsError,
            'scale set "web" in namespace "shop": it exists',
        ),
        (
            _status(500, "Internal Server Error", {"message": "etcd   timed\n out"}),
            UnavailableError,
            'scale set "web" in namespace "shop": etcd timed out',
        ),
        (
            _failure(ApiException(status=0, reason="SSLError\ncertificate verify failed")),
            UnavailableError,
            "cannot reach the cluster: SSLError certificate verify failed",
        ),
        (
            _failure(
                MaxRetryError(
                    cast(Any, None),
                    "/apis",
                    NewConnectionError(cast(Any, None), "Connection refused"),
                )
            ),
            UnavailableError,
            "cannot reach the cluster: ",
        ),
    ],
    ids=["404", "403", "422", "409", "500", "ssl", "refused"],
)
def test_errors_keep_their_class_and_read_as_before(
    error: KubeApiError, kind: type[KubeApiError], message: str
) -> None:
    api, _ = _api({GET_WEB: error})

    with pytest.raises(KubeApiError) as raised:
        api.get_scaleset("web")

    assert type(raised.value) is kind
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_cluster_without_the_wave_crd_says_so() -> None:
    api, _ = _api({("GET", f"{BASE}/upgradewaves"): _status(404, "Not Found", {})})

    with pytest.raises(NotFoundError, match="the UpgradeWave resource is not installed"):
        api.list_upgradewaves()


def test_the_operators_messages_stay_as_they_were() -> None:
    error = _status(404, "Not Found", {"message": 'scalesets "web" not found'})

    assert str(error) == '404 Not Found: scalesets "web" not found'


# --- zones and endpoints, read the operator's way ---------------------------------------------


def test_node_zones_leave_out_unlabelled_nodes_and_are_listed_again_only_for_new_ones() -> None:
    api, server = _api({NODES: NODE_LIST})

    assert api.node_zones() == {"n1": "zone-1"}
    assert api.node_zones({"n1", "n2"}) == {"n1": "zone-1"}
    assert [p for _, p, _ in server.sent] == ["/api/v1/nodes"]
    api.node_zones({"n3"})
    assert [p for _, p, _ in server.sent] == ["/api/v1/nodes"] * 2


def test_node_zones_say_when_nodes_may_not_be_listed() -> None:
    forbidden = _status(403, "Forbidden", {"message": 'nodes is forbidden: User "u"'})
    api, _ = _api({NODES: forbidden})

    with pytest.raises(ForbiddenError) as raised:
        api.node_zones()

    assert str(raised.value) == 'not allowed to access nodes: nodes is forbidden: User "u"'


def test_instances_are_placed_in_zones_and_without_nodes_in_none() -> None:
    pods = {"items": [_pod(1, "n2"), _pod(0, "n1"), _pod(2, None)]}
    allowed, _ = _api({PODS: pods, NODES: NODE_LIST})
    forbidden = _status(403, "Forbidden", {"message": "nodes is forbidden"})
    denied, _ = _api({PODS: pods, NODES: forbidden})

    placed = allowed.list_instances("web", _spec())
    unplaced = denied.list_instances("web", _spec())

    assert [(i.instance_id, i.zone) for i in placed] == [(0, "zone-1"), (1, None), (2, None)]
    assert [(i.instance_id, i.zone) for i in unplaced] == [(0, None), (1, None), (2, None)]
    assert all(i.endpoint_ready is None for i in placed)


def test_instances_in_zones_reads_pods_only() -> None:
    api, server = _api({PODS: {"items": [_pod(0, "n1")]}})

    found = api.instances_in_zones("web", _spec(), {"n1": "zone-1"})

    assert [(i.name, i.zone) for i in found] == [("web-0", "zone-1")]
    assert server.sent == [
        ("GET", PODS[1], {"query": [("labelSelector", f"{LABEL_SCALESET}=web")]})
    ]


def test_load_balancer_health_reads_the_services_endpoint_slices() -> None:
    ready = {
        "items": [
            {
                "endpoints": [
                    {"targetRef": {"kind": "Pod", "name": "web-0"}, "conditions": {"ready": True}},
                    {"targetRef": {"kind": "Pod", "name": "web-1"}, "conditions": {"ready": False}},
                ]
            }
        ]
    }
    spec = _spec(source="LoadBalancer", serviceName="web-lb")
    pods = {"items": [_pod(0, "n1"), _pod(1, "n1")]}
    api, server = _api({PODS: pods, NODES: NODE_LIST, SLICES: ready})
    none, _ = _api({PODS: pods, NODES: NODE_LIST, SLICES: {"items": []}})

    found = api.list_instances("web", spec)

    assert [(i.name, i.endpoint_ready) for i in found] == [("web-0", True), ("web-1", False)]
    assert (
        "GET",
        SLICES[1],
        {"query": [("labelSelector", "kubernetes.io/service-name=web-lb")]},
    ) in server.sent
    # No EndpointSlices at all: unknown, as the operator judges it.
    assert [i.endpoint_ready for i in none.list_instances("web", spec)] == [None, None]


def test_an_endpoint_read_that_fails_names_the_service() -> None:
    spec = _spec(source="LoadBalancer", serviceName="web-lb")
    forbidden = _status(403, "Forbidden", {"message": "endpointslices is forbidden"})
    api, _ = _api({PODS: {"items": [_pod(0, "n1")]}, NODES: NODE_LIST, SLICES: forbidden})

    with pytest.raises(ForbiddenError) as raised:
        api.list_instances("web", spec)

    assert str(raised.value) == (
        'not allowed to access endpoints of service "web-lb": endpointslices is forbidden'
    )
