"""Many ScaleSets under one operator: its RSS and CPU at idle and during a fleet-wide OS upgrade,
and the wall time of that upgrade, at growing fleet sizes.

    python -m bench.scale                                # 50 x 20 = 1,000 instances
    python -m bench.scale --per-set 20 --sizes 1000,2000,5000,10000

Every ScaleSet follows the same image (one publisher), so one publish upgrades the whole fleet.
With --sizes the fleet grows stage by stage (more ScaleSets of --per-set instances each) and the
measurements are repeated at each size.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from bench import common, kwok_plays, watch_delay
from bench.common import log
from scaleset_operator.controller.listwatch import ScaleSetWatch
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.localcluster import kwokconfig
from tests.e2e.support import World


class Fleet:
    """The fleet's ScaleSets as a watch last delivered them. Listing them all every second
    instead cost kube-apiserver and this benchmark polls x sets: per instance, more at 10,000
    than at 5,000, which blurred how the operator itself scales."""

    def __init__(self, api: client.ApiClient, ns: str) -> None:
        self._lock = threading.Lock()
        self._sets: dict[str, dict[str, Any]] = {}
        self._watch = ScaleSetWatch(KubeClient(api), [ns], self._changed)
        self._watch.start()
        if not self._watch.synced.wait(60):
            raise TimeoutError("the ScaleSet watch did not list")

    def _changed(self, kind: str, obj: dict[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name", ""))
        with self._lock:
            if kind == "DELETED":
                self._sets.pop(name, None)
            else:
                self._sets[name] = obj

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._sets.values())

    def stop(self) -> None:
        self._watch.stop()


def ready_total(items: list[dict[str, Any]]) -> int:
    return sum(int((s.get("status") or {}).get("readyInstances") or 0) for s in items)


def upgrade_state(s: dict[str, Any]) -> tuple[str | None, str | None]:
    running = ((s.get("status") or {}).get("rollingUpgrade") or {}).get("runningStatus") or {}
    return running.get("code"), running.get("startTime")


class Sampler:
    """Samples the RSS of a process every `interval` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0.0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, common.rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self.thread.join()
        return self.peak


# kwok refusing stale plays for more than one pod in a hundred, or kube-apiserver closing a pod
# watch for reading too slowly, marks a run where the simulator, not the operator, set the pace:
# such runs took 244-302 s at 10,000 instances where the others took 193-237 s.
STALE_PLAYS_PER_POD = 0.01


def simulator_fell_behind(stage: dict[str, Any]) -> str | None:
    """Why the stage's upgrade was bounded by kwok falling behind; None when it kept up."""
    stale = stage.get("kwok_stale_plays_refused_per_pod") or 0.0
    closed = stage.get("pod_watches_closed_by_apiserver") or 0
    signs = []
    if stale >= STALE_PLAYS_PER_POD:
        signs.append(f"{stale} stale plays refused per pod")
    if closed > 0:
        watches = "watch" if closed == 1 else "watches"
        signs.append(f"{closed} pod {watches} closed by kube-apiserver")
    return ", ".join(signs) or None


def spread(values: list[float], count_name: str) -> dict[str, float | int]:
    """Median, 90th percentile and count of a stage's measurements, for the JSON."""
    return {
        "median": round(common.percentile(values, 0.5), 2),
        "p90": round(common.percentile(values, 0.9), 2),
        count_name: len(values),
    }


def print_spread(stages: list[dict[str, Any]], key: str) -> None:
    """The median and 90th percentile rows of ``spread`` figures, a column per stage."""
    for part, label in (("median", "median"), ("p90", "90th percentile")):
        cells = "".join(f"{(s.get(key) or {}).get(part, '-'):>10}" for s in stages)
        print(f"  {label:>24}{cells}")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--scalesets", type=int, default=50, help="ScaleSets in the fleet without --sizes (50)"
    )
    ap.add_argument("--per-set", type=int, default=20, help="instances per ScaleSet (20)")
    ap.add_argument(
        "--sizes",
        default="",
        help="comma-separated fleet sizes in instances (default: scalesets x per-set)",
    )
    ap.add_argument("--health-timeout", default="PT2M", help="ISO 8601, per ScaleSet")
    ap.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="how long to measure the operator at rest before each upgrade (10)",
    )
    ap.add_argument(
        "--nodes", type=int, default=0, help="kwok nodes (default: enough for the largest size)"
    )
    ap.add_argument(
        "--pod-start-delay",
        type=float,
        default=None,
        help="seconds kwok waits before it starts a (re)started container (default: 0.7)",
    )
    ap.add_argument(
        "--timeout",
        type=float,
        default=3600,
        help="seconds a fleet may take to become ready, and again to upgrade, at each size",
    )
    ap.add_argument(
        "--cluster-dir",
        type=Path,
        default=None,
        help="folder for the cluster's data and logs and the operator's logs (default: a new "
        "temporary folder, named in the output)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="run the operator under py-spy and report where its CPU time went",
    )
    ap.add_argument(
        "--watch-delay",
        action="store_true",
        help="also watch the fleet's pods and report how soon kube-apiserver delivered each "
        "write during the upgrade; costs this benchmark CPU per event, and kube-apiserver may "
        "close that watch too when a burst outruns it (counted with the closed pod watches)",
    )
    ap.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        help="extra argument for `scaleset-operator run` (repeatable), e.g. "
        "--operator-arg=--status-interval=0",
    )
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x] or [args.scalesets * args.per_set]
    nodes = args.nodes or max(6, math.ceil(max(sizes) * 1.3 / 900))
    result: dict[str, Any] = {"args": vars(args), "machine": common.machine(), "stages": []}
    workdir = args.cluster_dir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    start_delay = (
        args.pod_start_delay
        if args.pod_start_delay is not None
        else kwokconfig.default_start_delay()
    )

    with common.local_cluster(workdir / "cluster", nodes, args.pod_start_delay) as cluster:
        api = common.k8s_client(cluster)
        profile = workdir / "operator-profile.txt" if args.profile else None
        op = common.start_operator(
            cluster, workdir / "operator-logs", *args.operator_arg, profile=profile
        )
        pid = op.pid
        log(f"operator pid {pid}, logs in {workdir / 'operator-logs'}")
        ns = "bench-fleet"
        sets: Fleet | None = None
        delays: watch_delay.WatchDelay | None = None
        try:
            common.create_namespace(api, ns)
            sets = Fleet(api, ns)
            if args.watch_delay:
                delays = watch_delay.WatchDelay(api, ns)
                delays.start()
            world = World(api, ns)
            world.publish("1.0.0")
            time.sleep(3)
            result["rss_mib_empty"] = round(common.rss_mib(pid), 1)
            created = 0
            for version, size in enumerate(sizes, start=1):
                want = math.ceil(size / args.per_set)
                stage: dict[str, Any] = {"instances": want * args.per_set, "scalesets": want}
                # --- grow the fleet ------------------------------------------------------
                t0 = time.monotonic()
                cpu0 = common.cpu_seconds(pid)
                sampler = Sampler(pid)
                while created < want:
                    world.create(
                        world.scaleset_body(
                            f"s{created:04d}", args.per_set, health_timeout=args.health_timeout
                        )
                    )
                    created += 1
                total = created * args.per_set
                deadline = time.monotonic() + args.timeout
                while ready_total(sets.items()) < total:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"fleet of {total} not ready")
                    time.sleep(2)
                stage["create_s"] = round(time.monotonic() - t0, 1)
                stage["create_cpu_s"] = round(common.cpu_seconds(pid) - cpu0, 1)
                stage["rss_mib_peak_create"] = round(sampler.stop(), 1)
                log(f"{total} instances in {created} sets ready in {stage['create_s']}s")
                time.sleep(5)

                # --- idle --------------------------------------------------------------------
                cpu0, t0 = common.cpu_seconds(pid), time.monotonic()
                time.sleep(args.idle_seconds)
                stage["idle_cpu_pct"] = round(
                    100 * (common.cpu_seconds(pid) - cpu0) / (time.monotonic() - t0), 1
                )
                stage["rss_mib_idle"] = round(common.rss_mib(pid), 1)
                log(f"idle: {stage['idle_cpu_pct']}% CPU, {stage['rss_mib_idle']} MiB")

                # --- fleet-wide upgrade ----------------------------------------------------
                items = sets.items()
                before = {s["metadata"]["name"]: upgrade_state(s)[1] for s in items}
                sampler = Sampler(pid)
                metrics0 = common.scrape_metrics(cluster)
                req0 = common.requests_in(metrics0)
                conflicts0 = common.requests_in(metrics0, code="409")
                closed0 = common.terminated_pod_watchers(metrics0)
                by_process0 = common.cpu_by_process(cluster, pid)
                cpu0, t0 = common.cpu_seconds(pid), time.monotonic()
                wall0 = time.time()
                world.publish(f"1.{version}.0")
                first_done = None
                codes: dict[str, int] = {}
                while True:
                    time.sleep(1)
                    items = sets.items()
                    ended = [
                        upgrade_state(s)[0]
                        for s in items
                        if upgrade_state(s)[1] != before.get(s["metadata"]["name"])
                        and upgrade_state(s)[0] in ("Completed", "Faulted", "Cancelled")
                    ]
                    if ended and first_done is None:
                        first_done = time.monotonic() - t0
                    if len(ended) == len(items):
                        codes = {c: ended.count(c) for c in set(ended)}  # type: ignore[misc]
                        break
                    if time.monotonic() - t0 > args.timeout:
                        raise TimeoutError("fleet upgrade")
                wall = time.monotonic() - t0
                cpu = common.cpu_seconds(pid) - cpu0
                by_process = common.cpu_delta(common.cpu_by_process(cluster, pid), by_process0)
                metrics = common.scrape_metrics(cluster)
                d = common.delta(common.requests_in(metrics), req0)
                refused = common.delta(common.requests_in(metrics, code="409"), conflicts0)
                stage["upgrade_s"] = round(wall, 1)
                stage["first_set_done_s"] = round(first_done or 0, 1)
                stage["upgrade_codes"] = codes
                stage["upgrade_instances_per_s"] = round(total / wall, 1)
                stage["upgrade_cpu_pct"] = round(100 * cpu / wall, 1)
                stage["upgrade_cpu_s"] = round(cpu, 1)
                stage["rss_mib_peak_upgrade"] = round(sampler.stop(), 1)
                stage["pod_patches"] = d.get(("PATCH", "pods", ""), 0)
                # The operator's own writes: pods (not pods/status, which is kwok) and ScaleSets.
                ours = {"pods": ("",), "scalesets": ("", "status")}
                writes = common.total(d, ("POST", "PUT", "PATCH", "DELETE"), ours)
                stage["status_writes"] = common.total(
                    d, ("PUT", "PATCH"), {"scalesets": ("status",)}
                )
                stage["writes_per_instance"] = round(writes / total, 2)
                stage["requests"] = common.breakdown(d)
                # Where the machine's time went, to tell the operator's growth from kwok's or
                # the API server's: CPU seconds during the upgrade, and per instance.
                stage["upgrade_cpu_s_by_process"] = by_process
                # kwok's pod status patches, and those refused because kwok had planned them on
                # a copy older than the pod (its stages carry the copy's resourceVersion): many
                # refusals mean kwok fell behind; so do pod watches ended early (re-established).
                kwok_status = common.total(d, ("PATCH", "PUT"), {"pods": ("status",)})
                stale = common.total(refused, ("PATCH", "PUT"), {"pods": ("status",)})
                stage["kwok_status_writes_per_pod"] = round((kwok_status - stale) / total, 2)
                stage["kwok_stale_plays_refused_per_pod"] = round(stale / total, 2)
                stage["pod_watches_ended"] = d.get(("WATCH", "pods", ""), 0)
                stage["pod_watches_closed_by_apiserver"] = (
                    common.terminated_pod_watchers(metrics) - closed0
                )
                # How long pods waited on kwok: its restart -> start writes, against the delay.
                gaps = kwok_plays.gaps_in(
                    kwok_plays.logs_of(cluster.logs_dir), wall0 - 1.0, time.time() + 1.0
                )
                stage["pod_start_delay_s"] = start_delay
                if delays is not None and (seen := delays.delays(wall0, time.time())):
                    stage["watch_delay_s"] = spread(seen, "events")
                if gaps:
                    stage["kwok_restart_to_start_s"] = spread(gaps, "pods")
                stage["simulator_fell_behind"] = simulator_fell_behind(stage) is not None
                result["stages"].append(stage)
                log(
                    f"{total}: upgrade {codes} in {wall:.1f}s, {stage['upgrade_cpu_pct']}% CPU, "
                    f"peak {stage['rss_mib_peak_upgrade']} MiB"
                )
                common.write_json("scale-partial", result)
            world.cleanup()
        finally:
            if sets is not None:
                sets.stop()
            if delays is not None:
                delays.stop()
            op.stop()
    if profile is not None and profile.exists():
        result["profile_top_frames"] = common.top_frames(profile)
        result["profile_top_own_functions"] = common.top_own_functions(profile)
        result["profile_path"] = str(profile)

    print()
    head = (
        f"  {'instances':>9} {'sets':>5} {'create s':>9} {'idle CPU%':>9} {'idle RSS MiB':>12} "
        f"{'upgrade s':>9} {'inst/s':>7} {'upg CPU%':>8} {'peak RSS MiB':>12} {'writes/inst':>11}"
    )
    print(head)
    for s in result["stages"]:
        print(
            f"  {s['instances']:>9} {s['scalesets']:>5} {s['create_s']:>9} {s['idle_cpu_pct']:>9} "
            f"{s['rss_mib_idle']:>12} {s['upgrade_s']:>9} {s['upgrade_instances_per_s']:>7} "
            f"{s['upgrade_cpu_pct']:>8} {s['rss_mib_peak_upgrade']:>12} "
            f"{s['writes_per_instance']:>11}"
        )
    print(f"  operator RSS with no ScaleSets: {result['rss_mib_empty']} MiB")
    print("\n  CPU ms per instance during the upgrade, by process:")
    names = sorted({n for s in result["stages"] for n in s["upgrade_cpu_s_by_process"]})
    print("  " + f"{'':>24}" + "".join(f"{s['instances']:>10}" for s in result["stages"]))
    for name in names:
        cells = "".join(
            f"{1000 * s['upgrade_cpu_s_by_process'].get(name, 0.0) / s['instances']:>10.2f}"
            for s in result["stages"]
        )
        print(f"  {name:>24}{cells}")
    for key, label in (
        ("kwok_status_writes_per_pod", "kwok status writes/pod"),
        ("kwok_stale_plays_refused_per_pod", "kwok stale plays/pod"),
        ("pod_watches_ended", "pod watches ended"),
        ("pod_watches_closed_by_apiserver", "… closed by apiserver"),
    ):
        cells = "".join(f"{s.get(key, '-'):>10}" for s in result["stages"])
        print(f"  {label:>24}{cells}")
    print("\n  seconds from kwok's restart write to its start write (due after the delay):")
    print_spread(result["stages"], "kwok_restart_to_start_s")
    cells = "".join(f"{s.get('pod_start_delay_s', '-'):>10}" for s in result["stages"])
    print(f"  {'start delay':>24}{cells}")
    if any("watch_delay_s" in s for s in result["stages"]):
        print("\n  seconds from a pod write to its watch event (to the second; --watch-delay):")
        print_spread(result["stages"], "watch_delay_s")
    for s in result["stages"]:
        if (why := simulator_fell_behind(s)) is not None:
            print(
                f"  at {s['instances']}: kwok fell behind ({why}); this upgrade's time is bounded "
                "by the simulator, not a measure of the operator"
            )
    common.print_profile(result)
    path = common.write_json("scale", result)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
