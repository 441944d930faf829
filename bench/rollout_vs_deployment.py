"""Rolling OS upgrade of a ScaleSet against a Deployment rollout of the same pods, on one local
cluster: wall time, kube-apiserver requests per instance, the raw PATCH rate of a bare client,
and publish -> first pod patched latency.

    python -m bench.rollout_vs_deployment --instances 1000
    python -m bench.rollout_vs_deployment --quick     # regression guard: 200 instances, compared
                                                     # with bench/baseline/rollout-quick.json
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import common, guard, plot
from bench.common import log
from tests.e2e.support import World

NEW_IMAGE = "example.test/os:1.1.0"
SS_RES = {"pods": ("",), "scalesets": ("", "status")}
DEPLOY_RES = {
    "pods": ("",),
    "replicasets": ("", "status", "scale"),
    "deployments": ("", "status", "scale"),
}


# Pods of one batch are patched side by side within a second; batches are seconds apart.
BURST_SPLIT = 0.3


class PodImages:
    """A pod watch on one namespace, remembering when each image first showed up on a pod and
    when each pod was first Ready on each image (the rollout timeline). The watch is
    `common.follow_pods`, which decodes raw event lines, cheap for the shared cores."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.first_seen: dict[str, float] = {}
        self.ready_on: dict[tuple[str, str], float] = {}
        # When each pod was first seen asking for each image (patched, or created on it).
        self.asked_on: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(
            target=common.follow_pods, args=(api, namespace, self._seen, self._stop), daemon=True
        )
        self.thread.start()

    def _seen(self, _type: str, pod: dict[str, Any]) -> None:
        now = time.monotonic()
        uid = (pod.get("metadata") or {}).get("uid", "")
        for c in (pod.get("spec") or {}).get("containers") or []:
            self.first_seen.setdefault(c.get("image", ""), now)
            self.asked_on.setdefault((uid, c.get("image", "")), now)
        self._note_ready(pod, now)

    def _note_ready(self, pod: dict[str, Any], now: float) -> None:
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if not ready:
            return
        uid = (pod.get("metadata") or {}).get("uid", "")
        for c in status.get("containerStatuses") or []:
            self.ready_on.setdefault((uid, c.get("image", "")), now)

    def timeline(self, image: str, since: float) -> list[float]:
        """Seconds after ``since`` at which each pod was first Ready on ``image``, sorted."""
        return sorted(t - since for (_, img), t in self.ready_on.items() if img == image)

    def batch_gaps(self, image: str) -> list[float]:
        """Between consecutive batches: from the last pod of a batch Ready on ``image`` to the
        first pod of the next one asking for it. Batches are the bursts of pods asking for the
        image (a pod joins the burst when it asks within BURST_SPLIT of the previous one)."""
        asked = sorted((t, uid) for (uid, img), t in self.asked_on.items() if img == image)
        bursts: list[list[tuple[float, str]]] = []
        for t, uid in asked:
            if bursts and t - bursts[-1][-1][0] <= BURST_SPLIT:
                bursts[-1].append((t, uid))
            else:
                bursts.append([(t, uid)])
        gaps = []
        for done, following in itertools.pairwise(bursts):
            readies = [self.ready_on.get((uid, image)) for _, uid in done]
            if None in readies:
                continue
            gaps.append(following[0][0] - max(r for r in readies if r is not None))
        return gaps

    def stop(self) -> None:
        self._stop.set()


def upgrade_code(status: dict[str, Any]) -> tuple[str | None, str | None]:
    running = (status.get("rollingUpgrade") or {}).get("runningStatus") or {}
    return running.get("code"), running.get("startTime")


def wait_ready(world: World, name: str, capacity: int, timeout: float) -> float:
    t0 = time.monotonic()
    common.eventually(
        lambda: world.status(name).get("readyInstances") == capacity,
        timeout,
        interval=1.0,
        what=f"{capacity} ready instances of {name}",
    )
    return time.monotonic() - t0


def run_upgrade(world: World, name: str, version: str, timeout: float) -> tuple[float, str, int]:
    """Publish `version`; return (seconds to the end of the upgrade, end code, status polls)."""
    _, before = upgrade_code(world.status(name))
    polls = 0
    t0 = time.monotonic()
    world.publish(version)
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        polls += 1
        code, start = upgrade_code(world.status(name))
        if start != before and code in ("Completed", "Faulted", "Cancelled"):
            return time.monotonic() - t0, code, polls
    raise TimeoutError(f"upgrade to {version} of {name} did not end in {timeout}s")


def raw_patch_rate(
    api: client.ApiClient, ns: str, selector: str, count: int, threads: int
) -> float:
    core = client.CoreV1Api(api)
    names = [p.metadata.name for p in core.list_namespaced_pod(ns, label_selector=selector).items]
    targets = [names[i % len(names)] for i in range(count)]

    def patch(i_name: tuple[int, str]) -> None:
        i, pname = i_name
        core.patch_namespaced_pod(pname, ns, {"metadata": {"labels": {"bench-touch": str(i)}}})

    with ThreadPoolExecutor(threads) as pool:
        t0 = time.monotonic()
        list(pool.map(patch, enumerate(targets)))
        return count / (time.monotonic() - t0)


# Observed once per reconcile pass of any scale set (the latency sample's sets are idle then).
PASS_HISTOGRAM = "scaleset_reconcile_duration_seconds"


def operator_histogram(port: int, name: str) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        for suffix in ("_sum", "_count"):
            if line.startswith(name + suffix):
                out[suffix[1:]] = out.get(suffix[1:], 0.0) + float(line.rsplit(" ", 1)[1])
    return out


CPU_ROWS = (
    ("kube-apiserver", "kube-apiserver"),
    ("kwok", "kwok (simulated kubelets)"),
    ("operator", "scaleset-operator"),
    ("kube-controller-manager", "kube-controller-manager"),
    ("kube-scheduler", "kube-scheduler"),
    ("etcd", "etcd"),
    ("benchmark", "this benchmark (polls, watch)"),
)


def gaps_row(gaps: list[float]) -> tuple[str, str]:
    label = "gap between batches (last Ready -> next patch): median / max"
    if not gaps:
        return (label, "n/a")
    return (label, f"{statistics.median(gaps):.3f} / {max(gaps):.3f} s ({len(gaps)} gaps)")


def passes_row(ss: dict[str, Any]) -> tuple[str, str]:
    """How many reconcile passes the upgrade took (the operator's own counter), and the
    operator's CPU per pass (steadier from run to run than per instance, which grows with the
    passes)."""
    passes = ss.get("passes", 0)
    per_pass = 1000 * ss["cpu_s"]["operator"] / passes if passes else 0.0
    return ("operator passes / CPU ms per pass", f"{passes} / {per_pass:.1f}")


def cpu_rows(ss: dict[str, float], dep: dict[str, float], n: int) -> list[tuple[str, str]]:
    """CPU milliseconds per instance by process, ScaleSet phase then Deployment phase. On a
    saturated machine the wall time is about the machine's busy time over its cores."""

    def ms(cpu: dict[str, float], key: str) -> str:
        return f"{1000 * cpu.get(key, 0.0) / n:.1f}"

    rows = [
        (f"CPU ms per instance: {label}", f"{ms(ss, key)} vs {ms(dep, key)}")
        for key, label in CPU_ROWS
    ]
    named = {key for key, _ in CPU_ROWS}

    def rest(cpu: dict[str, float]) -> float:
        return cpu.get("machine", 0.0) - sum(v for k, v in cpu.items() if k in named)

    rows.append(
        (
            "CPU ms per instance: everything else (kernel, other jobs)",
            f"{1000 * rest(ss) / n:.1f} vs {1000 * rest(dep) / n:.1f}",
        )
    )
    rows.append(
        (
            f"CPU ms per instance: whole machine ({os.cpu_count()} cores)",
            f"{ms(ss, 'machine')} vs {ms(dep, 'machine')}",
        )
    )
    # What the machine's CPU allows: the Deployment's CPU over ours, and over ours without the
    # operator's share (a bound on the speed-up any operator could reach on this machine).
    ours, theirs = ss.get("machine", 0.0), dep.get("machine", 0.0)
    without = ours - ss.get("operator", 0.0)
    if ours > 0 and without > 0:
        rows.append(("CPU ratio Deployment / ScaleSet", f"{theirs / ours:.2f}x"))
        rows.append(
            ("CPU ratio Deployment / ScaleSet without the operator", f"{theirs / without:.2f}x")
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--publishes", type=int, default=6, help="publishes for the latency sample")
    ap.add_argument("--latency-capacity", type=int, default=5)
    ap.add_argument("--raw-patches", type=int, default=500)
    ap.add_argument("--raw-threads", type=int, default=8)
    ap.add_argument("--nodes", type=int, default=0, help="kwok nodes (default: enough for 2N pods)")
    ap.add_argument("--pod-start-delay", type=float, default=None)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--cluster-dir", type=Path, default=None)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="200 instances, two publishes for latency; compare speed-up, operator CPU and "
        "writes per instance with the recorded baseline and flag a regression over 20 %%",
    )
    ap.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        help="extra argument for `scaleset-operator run` (repeatable), e.g. "
        "--operator-arg=--gather-while-settling=0",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="run the operator under py-spy and print where its CPU went (the whole run: "
        "creation, upgrade, latency publishes)",
    )
    ap.add_argument(
        "--record", action="store_true", help="with --quick: make this run the new baseline"
    )
    ap.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="write a PNG of both rollouts' timelines (instances Ready on the new image over "
        "time) to this path (with several --runs, one per run: NAME-run2.png and so on)",
    )
    ap.add_argument(
        "--runs",
        type=int,
        default=None,
        help="measure this many times, each on a fresh cluster (default 1; 3 with --quick, "
        "whose guard compares the medians: one 200-instance run varies by more than 20 %%)",
    )
    args = ap.parse_args()
    if args.quick:
        args.instances, args.publishes, args.raw_patches = 200, 2, 200
    runs = args.runs if args.runs is not None else (3 if args.quick else 1)
    if runs < 1:
        ap.error("--runs must be at least 1")
    results = []
    for number in range(1, runs + 1):
        if runs > 1:
            log(f"run {number} of {runs}")
        results.append(_measure(args, plot.path_for_run(args.plot, number, runs)))
    if args.quick:
        sys.exit(_guard(results, args.record))


def _measure(args: argparse.Namespace, plot_to: Path | None) -> dict[str, Any]:
    """One measurement on a fresh cluster: prints its table, writes its JSON (and its picture
    to `plot_to`)."""
    n = args.instances
    nodes = args.nodes or max(6, math.ceil(2.4 * n / 900))
    result: dict[str, Any] = {"args": vars(args), "machine": common.machine()}
    workdir = args.cluster_dir or Path(tempfile.mkdtemp(prefix="bench-rollout-"))

    with common.local_cluster(workdir / "cluster", nodes, args.pod_start_delay) as cluster:
        api = common.k8s_client(cluster, pool=args.raw_threads)
        apps = client.AppsV1Api(api)
        profile = workdir / "operator-profile.txt" if args.profile else None
        op = common.start_operator(
            cluster, workdir / "operator-logs", *args.operator_arg, profile=profile
        )
        log(f"operator pid {op.pid}, logs in {workdir / 'operator-logs'}")
        try:
            # --- setup: the Deployment and the ScaleSet, both on image 1.0.0 ------------------
            ns_d, ns_s, ns_l = "bench-deploy", "bench-scaleset", "bench-latency"
            for ns in (ns_d, ns_s, ns_l):
                common.create_namespace(api, ns)
            t0 = time.monotonic()
            apps.create_namespaced_deployment(
                ns_d,
                common.deployment_body(
                    "web", n, {"containers": [{"name": "os", "image": "example.test/os:1.0.0"}]}
                ),
            )
            common.eventually(
                lambda: (
                    (apps.read_namespaced_deployment("web", ns_d).status.available_replicas or 0)
                    == n
                ),
                args.timeout,
                interval=1.0,
                what="deployment available",
            )
            result["deployment_create_s"] = round(time.monotonic() - t0, 2)
            log(f"deployment of {n} available in {result['deployment_create_s']}s")

            world = World(api, ns_s)
            world.publish("1.0.0")
            world.create(
                world.scaleset_body(
                    "web",
                    n,
                    rolling={"maxBatchInstancePercent": 20, "enableCrossZoneUpgrade": True},
                    health_timeout="PT2M",
                )
            )
            result["scaleset_create_s"] = round(wait_ready(world, "web", n, args.timeout), 2)
            log(f"scaleset of {n} ready in {result['scaleset_create_s']}s")
            time.sleep(5)  # let the create settle (status writes, kwok heartbeats)

            # --- (a) ScaleSet rolling OS upgrade ----------------------------------------------
            images = PodImages(api, ns_s)
            time.sleep(1)
            before = common.scrape_requests(cluster)
            passes_before = operator_histogram(op.metrics_port, PASS_HISTOGRAM).get("count", 0)
            cpu_before = common.cpu_by_process(cluster, op.pid)
            t_pub = time.monotonic()
            ss_s, code, polls = run_upgrade(world, "web", "1.1.0", args.timeout)
            ss_cpu = common.cpu_delta(common.cpu_by_process(cluster, op.pid), cpu_before)
            passes_after = operator_histogram(op.metrics_port, PASS_HISTOGRAM).get("count", 0)
            after = common.scrape_requests(cluster)
            images.stop()
            d = common.delta(after, before)
            first = images.first_seen.get("example.test/os:1.1.0")
            on_new = sum(
                1 for img in world.images("web").values() if img == "example.test/os:1.1.0"
            )
            # the ImageVersion POST is on imageversions, so not in SS_RES; our own reads are the
            # status polls and the GET before publishing
            ss_writes = common.total(d, common.WRITES, SS_RES)
            ss_reads = common.total(d, common.READS, SS_RES) - polls - 1
            result["scaleset"] = {
                "seconds": round(ss_s, 2),
                "code": code,
                "instances_on_new_image": on_new,
                "first_pod_patched_s": round(first - t_pub, 3) if first else None,
                "writes": ss_writes,
                "reads": ss_reads,
                "writes_per_instance": round(ss_writes / n, 3),
                "reads_per_instance": round(ss_reads / n, 3),
                "bench_polls_excluded": polls,
                "cpu_s": ss_cpu,
                "passes": int(passes_after - passes_before),
                "requests": common.breakdown(d),
            }
            log(f"scaleset upgrade {code} in {ss_s:.1f}s, {on_new}/{n} on 1.1.0")

            # --- (b) Deployment rollout -----------------------------------------------------
            time.sleep(3)
            pods_d = PodImages(api, ns_d)
            time.sleep(1)
            before = common.scrape_requests(cluster)
            cpu_before = common.cpu_by_process(cluster, op.pid)
            t0 = time.monotonic()
            apps.patch_namespaced_deployment(
                "web",
                ns_d,
                {
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [{"name": "os", "image": "example.test/os:1.1.0"}]
                            }
                        }
                    }
                },
            )
            polls = 0
            while True:
                time.sleep(0.5)
                polls += 1
                if common.deployment_done(apps, ns_d, "web", n):
                    break
                if time.monotonic() - t0 > args.timeout:
                    raise TimeoutError("deployment rollout")
            dep_s = time.monotonic() - t0
            pods_d.stop()
            gaps = images.batch_gaps(NEW_IMAGE)
            result["scaleset"]["batch_gaps_s"] = [round(g, 3) for g in gaps]
            result["timelines"] = {
                "scaleset": [round(t, 3) for t in images.timeline(NEW_IMAGE, t_pub)],
                "deployment": [round(t, 3) for t in pods_d.timeline(NEW_IMAGE, t0)],
            }
            dep_cpu = common.cpu_delta(common.cpu_by_process(cluster, op.pid), cpu_before)
            after = common.scrape_requests(cluster)
            d = common.delta(after, before)
            dep_writes = common.total(d, common.WRITES, DEPLOY_RES) - 1  # our PATCH
            dep_reads = common.total(d, common.READS, DEPLOY_RES) - polls
            result["deployment"] = {
                "seconds": round(dep_s, 2),
                "writes": dep_writes,
                "reads": dep_reads,
                "writes_per_pod": round(dep_writes / n, 3),
                "reads_per_pod": round(dep_reads / n, 3),
                "bench_polls_excluded": polls,
                "cpu_s": dep_cpu,
                "requests": common.breakdown(d),
            }
            log(f"deployment rollout in {dep_s:.1f}s")

            # --- raw limit: PATCH rate of a bare client -------------------------------------
            rate = raw_patch_rate(api, ns_d, "app=web", args.raw_patches, args.raw_threads)
            result["raw_patch_per_s"] = round(rate, 1)
            result["scaleset_instances_per_s"] = round(n / ss_s, 1)
            result["deployment_pods_per_s"] = round(n / dep_s, 1)
            result["scaleset_fraction_of_raw"] = round(n / ss_s / rate, 3)
            log(f"raw PATCH rate {rate:.0f}/s")

            # --- reaction latency: publish -> first pod patched -----------------------------
            small = World(api, ns_l)
            small.publish("1.0.0")
            small.create(small.scaleset_body("lat", args.latency_capacity, health_timeout="PT2M"))
            wait_ready(small, "lat", args.latency_capacity, 300)
            watcher = PodImages(api, ns_l)
            time.sleep(1)
            lat: list[float] = []
            for i in range(args.publishes):
                version = f"1.{i + 1}.0"
                t_pub = time.monotonic()
                run_upgrade(small, "lat", version, 300)
                seen = watcher.first_seen.get(f"example.test/os:{version}")
                if seen is not None:
                    lat.append(seen - t_pub)
            watcher.stop()
            result["reaction"] = {
                "samples_s": [round(x, 3) for x in lat],
                "p50_s": round(common.percentile(lat, 0.5), 3),
                "p95_s": round(common.percentile(lat, 0.95), 3),
                "operator_publish_to_first_patch": operator_histogram(
                    op.metrics_port, "scaleset_publish_to_first_patch_seconds"
                ),
            }
            result["operator_rss_mib_end"] = round(common.rss_mib(op.pid), 1)
            world.cleanup()
            small.cleanup()
        finally:
            op.stop()
        if profile is not None and profile.exists():
            result["profile_top_frames"] = common.top_frames(profile)
            result["profile_top_own_functions"] = common.top_own_functions(profile, 25)
            result["profile_path"] = str(profile)

    ss, dep = result["scaleset"], result["deployment"]
    rows = [
        ("instances", str(n)),
        (
            "ScaleSet upgrade (publish -> Completed)",
            f"{ss['seconds']} s  ({result['scaleset_instances_per_s']} inst/s, {ss['code']})",
        ),
        (
            "Deployment rollout (patch -> all updated+available)",
            f"{dep['seconds']} s  ({result['deployment_pods_per_s']} pods/s)",
        ),
        ("ratio ScaleSet / Deployment", f"{ss['seconds'] / dep['seconds']:.2f}x"),
        ("speed-up (Deployment time / ScaleSet time)", f"{dep['seconds'] / ss['seconds']:.2f}x"),
        *cpu_rows(ss["cpu_s"], dep["cpu_s"], n),
        (
            "ScaleSet writes / reads per instance (pods+scalesets)",
            f"{ss['writes_per_instance']} / {ss['reads_per_instance']}",
        ),
        passes_row(ss),
        gaps_row(ss.get("batch_gaps_s") or []),
        (
            "Deployment writes / reads per pod (pods+rs+deploy)",
            f"{dep['writes_per_pod']} / {dep['reads_per_pod']}",
        ),
        (
            f"raw PATCH rate ({args.raw_patches} patches, {args.raw_threads} threads)",
            f"{result['raw_patch_per_s']} /s",
        ),
        ("ScaleSet upgrade rate as fraction of raw", f"{result['scaleset_fraction_of_raw']}"),
        ("big set: publish -> first pod patched", f"{ss['first_pod_patched_s']} s"),
        (
            f"reaction p50 / p95 ({len(lat)} publishes, {args.latency_capacity} inst)",
            f"{result['reaction']['p50_s']} / {result['reaction']['p95_s']} s",
        ),
    ]
    print()
    print(common.table(rows))
    common.print_profile(result)
    path = common.write_json("rollout_vs_deployment", result)
    print(f"\nwrote {path}")
    if plot_to is not None:
        plot.rollout_timelines(result, plot_to)
        print(f"wrote {plot_to}")
    return result


def _guard(results: list[dict[str, Any]], record: bool) -> int:
    now = guard.median_figures([guard.figures(r) for r in results])
    if len(results) > 1:
        print(f"\nmedians of {len(results)} runs:")
        print(common.table([(key, str(value)) for key, value in now.items()]))
    baseline = guard.load_baseline()
    worse = False
    if baseline is None:
        print(f"\nno baseline at {guard.BASELINE}; run with --record to make one")
    else:
        rows, worse = guard.compare(now, baseline)
        print("\nagainst the last recorded run:")
        print(common.table(rows))
    if record:
        guard.record(now, results[0], time.strftime("%Y-%m-%d %H:%M"), runs=len(results))
        print(f"recorded as the new baseline: {guard.BASELINE}")
    return 2 if worse else 0


if __name__ == "__main__":
    main()
