"""In-place ScaleSet upgrade against a Deployment rolling update of the same pods, on real nodes
(kubelet + containerd, real containers with an HTTP readiness probe), in one run.

Both sides run the same pod template (the test server image, readiness probe every second,
terminationGracePeriodSeconds 2) on the same real nodes and move from app:v1 to app:v2, which
is removed from every node's containerd before each upgrade so that both pull it. The ScaleSet
goes in batches of 20 % (maxUnhealthy 20 %), the Deployment with maxUnavailable 20 % and
maxSurge 0. The ScaleSet changes the image of each pod in place (same pod, sandbox and IP; the
kubelet restarts one container); the Deployment makes new pods (scheduling, a new sandbox and
IP, volume set-up).

    python -m bench.real_nodes_rollout --instances 20 --repeat 2
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import common
from bench.common import log
from scaleset_operator.localcluster import LocalCluster
from scaleset_operator.localcluster.realnodes import RealNodes
from tests.e2e.realnode_support import on_real_nodes, real_scaleset
from tests.e2e.support import World


def upgrade_done(world: World, start_before: str | None) -> str | None:
    running = (world.status().get("rollingUpgrade") or {}).get("runningStatus") or {}
    if running.get("startTime") != start_before and running.get("code") in (
        "Completed",
        "Faulted",
        "Cancelled",
    ):
        return str(running["code"])
    return None


def scaleset_round(api: client.ApiClient, registry: str, ns: str, n: int, new: str) -> float:
    world = World(api, ns)
    world.publish("1.0.0", image=f"{registry}/app:v1")
    world.create(real_scaleset(world, capacity=n, health_timeout="PT2M"))
    world.wait_ready(capacity=n, timeout=600)
    uids = {p.metadata.name: (p.metadata.uid, p.status.pod_ip) for p in world.pods()}
    before = ((world.status().get("rollingUpgrade") or {}).get("runningStatus") or {}).get(
        "startTime"
    )
    t0 = time.monotonic()
    world.publish("1.1.0", image=f"{registry}/app:{new}")
    code = common.eventually(lambda: upgrade_done(world, before), 900, 0.2, "ScaleSet upgrade")
    seconds = time.monotonic() - t0
    kept = {p.metadata.name: (p.metadata.uid, p.status.pod_ip) for p in world.pods()}
    if code != "Completed" or kept != uids:
        raise RuntimeError(f"ScaleSet upgrade ended {code}; pods kept: {kept == uids}")
    world.cleanup()
    return seconds


def deployment_round(api: client.ApiClient, registry: str, ns: str, n: int, new: str) -> float:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        ns, common.deployment_body("web", n, on_real_nodes({}, f"{registry}/app:v1"))
    )
    common.eventually(lambda: common.deployment_done(apps, ns, "web", n), 600, 0.5, "Deployment")
    t0 = time.monotonic()
    image = f"{registry}/app:{new}"
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "os", "image": image}]}}}}
    apps.patch_namespaced_deployment("web", ns, patch)
    common.eventually(
        lambda: common.deployment_done(apps, ns, "web", n), 900, 0.2, "Deployment rollout"
    )
    return time.monotonic() - t0


def forget_image(cluster: LocalCluster, ref: str, nodes: int) -> None:
    """Removes ``ref`` from every real node's image store, so that the next upgrade pulls it."""
    real = RealNodes(cluster, log)
    for i in range(nodes):
        socket = real.node(i, nodes).socket
        subprocess.run(
            ["ctr", "--address", str(socket), "--namespace", "k8s.io", "images", "rm", ref],
            capture_output=True,
            check=False,
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--instances", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1, help="rounds of each side, alternating")
    ap.add_argument("--real-nodes", type=int, default=2)
    ap.add_argument("--cluster-dir", type=Path, default=None)
    args = ap.parse_args()
    n = args.instances
    result: dict[str, Any] = {"args": vars(args), "machine": common.machine()}
    workdir = args.cluster_dir or Path(tempfile.mkdtemp(prefix="bench-real-"))
    cluster = LocalCluster(
        workdir / "cluster", nodes=1, zones=args.real_nodes, real_nodes=args.real_nodes, log=log
    )
    cluster.up()
    try:
        common.install_crds(cluster)
        api = common.k8s_client(cluster)
        registry = cluster.registry
        assert registry is not None
        op = common.start_operator(cluster, workdir / "operator-logs")
        scaleset_s: list[float] = []
        deployment_s: list[float] = []
        try:
            for i in range(args.repeat):
                for side in (
                    ("scaleset", "deployment") if i % 2 == 0 else ("deployment", "scaleset")
                ):
                    ns = f"bench-{side}-{i}"
                    common.create_namespace(api, ns)
                    forget_image(cluster, f"{registry}/app:v2", args.real_nodes)
                    if side == "scaleset":
                        scaleset_s.append(scaleset_round(api, registry, ns, n, "v2"))
                        log(f"round {i}: ScaleSet in place, {n} instances: {scaleset_s[-1]:.1f}s")
                    else:
                        deployment_s.append(deployment_round(api, registry, ns, n, "v2"))
                        log(f"round {i}: Deployment rollout, {n} pods: {deployment_s[-1]:.1f}s")
                    client.CoreV1Api(api).delete_namespace(ns)
        finally:
            op.stop()
    finally:
        cluster.down()
    ss, dep = min(scaleset_s), min(deployment_s)
    result.update(
        {
            "scaleset_s": [round(s, 2) for s in scaleset_s],
            "deployment_s": [round(s, 2) for s in deployment_s],
            "speedup_best": round(dep / ss, 2),
        }
    )
    print("\nIn-place ScaleSet upgrade vs Deployment rollout on real nodes")
    print(
        common.table(
            [
                ("instances", str(n)),
                ("real nodes", str(args.real_nodes)),
                ("ScaleSet (best of runs)", f"{ss:.1f} s ({ss / n * 1000:.0f} ms per instance)"),
                ("Deployment (best)", f"{dep:.1f} s ({dep / n * 1000:.0f} ms per pod)"),
                ("speed-up", f"{dep / ss:.2f}x"),
                (
                    "all runs (s)",
                    f"ScaleSet {result['scaleset_s']}, Deployment {result['deployment_s']}",
                ),
            ]
        )
    )
    print(f"results: {common.write_json('real-nodes-rollout', result)}")


if __name__ == "__main__":
    main()
