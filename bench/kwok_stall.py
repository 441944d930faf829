"""What the simulated kubelet does when it falls behind: N pods get a new image in place while
kwok is stopped for a while, then kwok catches up. Counts kwok's status writes per pod and the
stale plays the apiserver refused, with the project's pod stages ("guarded": every status write
carries the resourceVersion of the copy it was planned on) and, as the baseline of the same run,
with that precondition removed ("unguarded"). Each variant gets a fresh cluster.

    python -m bench.kwok_stall                      # 3,000 pods, kwok stopped for 30 s
    python -m bench.kwok_stall --pods 1000 --stall 10
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import common
from bench.common import log
from scaleset_operator.localcluster import LocalCluster, kwokconfig

OLD, NEW = "example.test/app:v1", "example.test/app:v2"
# The guard as it stands in stages.yaml: inside `template: |` under `patches:`.
GUARD = textwrap.indent(kwokconfig.RESOURCE_VERSION_GUARD, " " * 8)
NAMESPACE = "stall"
CPU_SHOWN = ("kwok", "kube-apiserver", "etcd", "benchmark", "machine")


def unguarded_config() -> str:
    text = kwokconfig.render()
    if text.count(GUARD) < 6:
        raise SystemExit("the pod stages no longer carry the expected resourceVersion guard")
    return text.replace(GUARD, "")


# This benchmark's own pod listings (its readiness polls), told apart from kwok's.
OWN_LISTS = [0]


def ready_on(v1: client.CoreV1Api, image: str) -> int:
    OWN_LISTS[0] += 1
    # Plain JSON: the typed client's models would cost this benchmark seconds of CPU per poll at
    # 3,000 pods, taken from the processes it measures.
    raw = v1.list_namespaced_pod(NAMESPACE, resource_version="0", _preload_content=False)
    n = 0
    for pod in json.loads(raw.data)["items"]:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if statuses and statuses[0].get("image") == image and statuses[0].get("ready"):
            n += 1
    return n


def wait_ready(v1: client.CoreV1Api, image: str, n: int, timeout: float) -> float:
    t0 = time.monotonic()
    while (done := ready_on(v1, image)) < n:
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{done} of {n} pods ready on {image} after {timeout:.0f}s")
        time.sleep(1)
    return time.monotonic() - t0


def kwok_lines(path: Path, start: int) -> tuple[int, list[dict[str, Any]]]:
    lines = path.read_text().splitlines()
    out = []
    for line in lines[start:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return len(lines), out


def settled_log(
    path: Path, start: int, quiet: float = 3.0, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """kwok's log lines since `start`, once it has written nothing new for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, records = kwok_lines(path, start)
    since = time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.5)
        count, records = kwok_lines(path, start)
        if count != last:
            last, since = count, time.monotonic()
    return records


def run_variant(name: str, config: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    cluster = LocalCluster(workdir / name, nodes=args.nodes, kwok_config=config, log=log)
    cluster.up()
    try:
        api = common.k8s_client(cluster, pool=args.threads)
        v1 = client.CoreV1Api(api)
        common.create_namespace(api, NAMESPACE)
        nodes = sorted(n.metadata.name for n in v1.list_node().items)

        def create(i: int) -> None:
            body = {
                "metadata": {"name": f"p{i:05d}"},
                "spec": {
                    "nodeName": nodes[i % len(nodes)],
                    "containers": [{"name": "c", "image": OLD}],
                },
            }
            v1.create_namespaced_pod(NAMESPACE, body)

        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(create, range(args.pods)))
        created_s = wait_ready(v1, OLD, args.pods, 600)
        log(f"[{name}] {args.pods} pods created, ready in {created_s:.1f}s")
        records = cluster.records()
        kwok = records["kwok"]
        mark, _ = kwok_lines(Path(kwok.log), 0)
        cpu0 = common.cpu_by_process(cluster, os.getpid())
        metrics0 = common.scrape_metrics(cluster)
        req0, closed0 = common.requests_in(metrics0), common.terminated_pod_watchers(metrics0)
        own0 = OWN_LISTS[0]

        def patch(i: int) -> None:
            body = {"spec": {"containers": [{"name": "c", "image": NEW}]}}
            v1.patch_namespaced_pod(f"p{i:05d}", NAMESPACE, body)

        t0 = time.monotonic()
        with ThreadPoolExecutor(args.threads) as pool:
            done = pool.map(patch, range(args.pods))
            time.sleep(0.5)
            os.kill(kwok.pid, signal.SIGSTOP)
            log(f"[{name}] kwok stopped for {args.stall:.0f}s while the pods are patched")
            try:
                time.sleep(args.stall)
            finally:
                os.kill(kwok.pid, signal.SIGCONT)
            list(done)
        wait_ready(v1, NEW, args.pods, 900)
        upgrade_s = time.monotonic() - t0
        lines = settled_log(Path(kwok.log), mark)
        cpu = common.cpu_delta(common.cpu_by_process(cluster, os.getpid()), cpu0)
        metrics = common.scrape_metrics(cluster)
        requests = common.delta(common.requests_in(metrics), req0)
        closed = common.terminated_pod_watchers(metrics) - closed0
        own_lists = OWN_LISTS[0] - own0
    finally:
        cluster.down()
    writes = Counter(
        r["pod"]
        for r in lines
        if r.get("msg") == "Patch pod" and r.get("pod", "").startswith(NAMESPACE)
    )
    refused = Counter(
        r.get("stage", "?")
        for r in lines
        if r.get("level") == "ERROR" and "the object has been modified" in r.get("err", "")
    )
    per_pod = Counter(writes.values())
    return {
        "variant": name,
        "pods": args.pods,
        "stall_s": args.stall,
        "upgrade_s": round(upgrade_s, 1),
        "status_writes": sum(writes.values()),
        "status_writes_per_pod": round(sum(writes.values()) / args.pods, 3),
        "pods_by_writes": {str(k): per_pod[k] for k in sorted(per_pod)},
        "stale_plays_refused": sum(refused.values()),
        "stale_plays_refused_by_stage": dict(refused),
        # How kwok's view of the pods was renewed while it caught up: watches ended (and
        # started again), those kube-apiserver closed for not keeping up, and full listings.
        "pod_watches_ended": requests.get(("WATCH", "pods", ""), 0),
        "pod_watches_closed_by_apiserver": closed,
        "pod_lists": requests.get(("LIST", "pods", ""), 0) - own_lists,
        "cpu_s": {k: cpu[k] for k in CPU_SHOWN if k in cpu},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=3000, help="pods patched in place (3000)")
    parser.add_argument("--stall", type=float, default=30.0, help="seconds kwok is stopped (30)")
    parser.add_argument("--nodes", type=int, default=6, help="kwok nodes (6)")
    parser.add_argument("--threads", type=int, default=8, help="client threads (8)")
    parser.add_argument(
        "--guarded-first",
        action="store_true",
        help="run the project's stages first (the order can favour the second cluster)",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-stall-"))
    log(f"clusters in {workdir}")
    variants = [("unguarded", unguarded_config()), ("guarded", kwokconfig.render())]
    if args.guarded_first:
        variants.reverse()
    results = [run_variant(name, config, args, workdir) for name, config in variants]
    rows: list[tuple[str, str]] = []
    for r in results:
        cpu = r["cpu_s"]
        rows.append(
            (
                r["variant"],
                f"{r['status_writes_per_pod']:.3f} status writes per pod "
                f"(pods by writes {r['pods_by_writes']}), "
                f"{r['stale_plays_refused']} stale plays refused, "
                f"pod watches ended {r['pod_watches_ended']} (closed by kube-apiserver "
                f"{r['pod_watches_closed_by_apiserver']}), pod lists by others {r['pod_lists']}, "
                f"all ready on the new image after {r['upgrade_s']}s, CPU s: kwok "
                f"{cpu.get('kwok')}, kube-apiserver {cpu.get('kube-apiserver')}, "
                f"etcd {cpu.get('etcd')}, this benchmark {cpu.get('benchmark')}",
            )
        )
    print(f"\n{args.pods} pods patched in place, kwok stopped for {args.stall:.0f}s:")
    print(common.table(rows))
    path = common.write_json(
        "kwok_stall", {"machine": common.machine(), "args": vars(args), "results": results}
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
