"""Which scale sets a change of a Service's EndpointSlices concerns: those whose health probe
is that Service's endpoints, as their latest object says, and no others."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from scaleset_operator.controller.service_users import ServiceUsers, probed_service


def scaleset(name: str, probe: Any, namespace: str = "shop") -> dict[str, Any]:
    spec: dict[str, Any] = {"capacity": 2}
    if probe is not None:
        spec["healthProbe"] = probe
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def lb(service: str) -> dict[str, str]:
    return {"source": "LoadBalancer", "serviceName": service}


def test_only_a_load_balancer_probe_names_a_service() -> None:
    assert probed_service(scaleset("web", lb("front"))) == ("shop", "front")
    assert probed_service(scaleset("web", None)) is None
    assert probed_service(scaleset("web", {"source": "PodReady", "serviceName": "x"})) is None
    assert probed_service(scaleset("web", {"source": "ApplicationHealth"})) is None


def test_an_object_that_would_not_validate_names_no_service() -> None:
    # The ScaleSet watch hands over whatever the API holds; none of these may raise.
    assert probed_service({"metadata": {"namespace": "shop", "name": "web"}}) is None
    assert probed_service(scaleset("web", "LoadBalancer")) is None
    assert probed_service(scaleset("web", {"source": "LoadBalancer"})) is None
    assert probed_service(scaleset("web", {"source": "LoadBalancer", "serviceName": ""})) is None
    assert probed_service(scaleset("web", {"source": "LoadBalancer", "serviceName": 7})) is None
    assert probed_service({"metadata": {"name": "web"}, "spec": {"healthProbe": lb("a")}}) is None
    assert probed_service({"metadata": None, "spec": []}) is None
    assert probed_service({"metadata": "not metadata", "spec": {"healthProbe": lb("a")}}) is None


def test_users_follow_each_scale_sets_latest_object() -> None:
    users = ServiceUsers()
    users.observe(("shop", "web"), scaleset("web", lb("front")))
    users.observe(("shop", "api"), scaleset("api", lb("front")))
    users.observe(("shop", "db"), scaleset("db", None))
    users.observe(("other", "web"), scaleset("web", lb("front"), namespace="other"))
    assert users.users("shop", "front") == [("shop", "api"), ("shop", "web")]
    assert users.users("other", "front") == [("other", "web")]

    # The probe moves to another Service, then away from Services altogether.
    users.observe(("shop", "web"), scaleset("web", lb("back")))
    assert users.users("shop", "front") == [("shop", "api")]
    assert users.users("shop", "back") == [("shop", "web")]
    users.observe(("shop", "web"), scaleset("web", None))
    assert users.users("shop", "back") == []

    users.forget(("shop", "api"))
    users.forget(("shop", "api"))  # forgetting twice is harmless
    assert users.users("shop", "front") == []
    assert users._users == {("other", "front"): {("other", "web")}}


names = st.sampled_from(["a", "b", "c"])
probes = st.one_of(st.none(), names.map(lb), st.just({"source": "PodReady"}))


@given(st.lists(st.tuples(names, st.one_of(st.none(), probes)), max_size=30))
def test_the_index_always_matches_the_latest_objects(steps: list[tuple[str, Any]]) -> None:
    users = ServiceUsers()
    latest: dict[tuple[str, str], dict[str, Any] | None] = {}
    for name, probe in steps:
        key = ("shop", name)
        if probe is None and name == "c":
            users.forget(key)  # deleted
            latest.pop(key, None)
        else:
            obj = scaleset(name, probe)
            users.observe(key, obj)
            latest[key] = obj
    for service in ("a", "b", "c"):
        expected = sorted(
            key
            for key, obj in latest.items()
            if obj is not None and probed_service(obj) == ("shop", service)
        )
        assert users.users("shop", service) == expected
    # Nothing is kept for a Service nobody probes.
    assert all(users._users.values())
