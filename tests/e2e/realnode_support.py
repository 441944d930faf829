"""Helpers for tests on real nodes: ScaleSets whose pods run real containers with HTTP probes.

The test images (see scaleset_operator.localcluster.images) follow the simulated kubelet's tag
conventions: `app:v1`.. serve /ready with 200, `unready-*` answers 503, `crash-*` exits, and
`bad-*` tags are never pushed, so pulling them fails for real.
"""

from __future__ import annotations

import urllib.request
from typing import Any

from kubernetes import client

from scaleset_operator.localcluster.realnodes import pod_spec
from tests.e2e.support import World

PROBE_PORT = 8080


def on_real_nodes(template_spec: dict[str, Any], image: str = "placeholder") -> dict[str, Any]:
    """A pod spec for the real nodes: selector, toleration, an HTTP readiness probe."""
    return {**template_spec, **pod_spec(image, probe_port=PROBE_PORT)}


def real_scaleset(world: World, **kwargs: Any) -> dict[str, Any]:
    body = world.scaleset_body(**kwargs)
    template = body["spec"]["template"]
    template["spec"] = on_real_nodes(template["spec"])
    return body


def os_status(pod: client.V1Pod) -> client.V1ContainerStatus:
    statuses = (pod.status.container_statuses or []) if pod.status else []
    found = [s for s in statuses if s.name == "os"]
    assert found, f"{pod.metadata.name} has no status for its os container"
    return found[0]


def served_version(pod_ip: str) -> str:
    """What the container behind a pod IP answers on /version (the host reaches pod IPs over
    the node's bridge)."""
    with urllib.request.urlopen(f"http://{pod_ip}:{PROBE_PORT}/version", timeout=3) as resp:
        return bytes(resp.read()).decode().strip()
