"""Shared pieces of the benchmarks: a local cluster with the CRDs, the operator as a child
process, kube-apiserver request counters, and /proc readings of a process."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client, config

from scaleset_operator.localcluster import LocalCluster, procfs
from tests.e2e import support
from tests.e2e.support import OperatorProcess, eventually

# Run from the repository's root as modules (`python -m bench.scale`), so that the test
# support they share is importable as the package it is.
REPO = Path(__file__).resolve().parents[1]

RESULTS = REPO / "bench" / "results"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
READS = ("GET", "LIST", "WATCH")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> dict[str, Any]:
    return {
        **procfs.machine(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


@contextmanager
def local_cluster(
    directory: Path, nodes: int, pod_start_delay: float | None
) -> Iterator[LocalCluster]:
    cluster = LocalCluster(directory, nodes=nodes, pod_start_delay=pod_start_delay, log=log)
    t0 = time.monotonic()
    cluster.up()
    log(f"cluster up in {time.monotonic() - t0:.1f}s ({nodes} nodes)")
    try:
        install_crds(cluster)
        yield cluster
    finally:
        cluster.down()


def install_crds(cluster: LocalCluster) -> None:
    support.install_crds(cluster.kubeconfig_path, k8s_client(cluster))


def k8s_client(cluster: LocalCluster, pool: int = 4) -> client.ApiClient:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    api.configuration.connection_pool_maxsize = pool
    api.rest_client.pool_manager.connection_pool_kw["maxsize"] = pool
    return api


class ProfiledOperator(OperatorProcess):
    """The operator run under `py-spy record` (sampling, so it barely slows it down); the
    profile is written as collapsed stacks when the operator stops."""

    def __init__(self, kubeconfig: Path, log_dir: Path, profile: Path, *extra: str) -> None:
        super().__init__(kubeconfig, log_dir, *extra)
        self.profile = profile

    def command(self) -> list[str]:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        # --gil: only the thread running Python code counts, not threads parked on a queue.
        spy_args = ["record", "--gil", "--format", "raw", "-o", str(self.profile), "--rate", "50"]
        return [spy, *spy_args, "--", *super().command()]

    @property
    def pid(self) -> int:
        """The operator's own pid (py-spy's child), for RSS and CPU readings."""
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if children := procfs.children(self.proc.pid):
                return children[0]
            time.sleep(0.1)
        raise RuntimeError("py-spy started no operator")

    def stop(self) -> None:
        # Ctrl-C makes py-spy write the profile and end the operator with it.
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=60)
        super().stop()


def _samples(profile: Path) -> Iterator[tuple[list[str], int]]:
    """py-spy's raw output: one `frame;frame;... count` line per distinct stack."""
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack.split(";"), int(count)


def top_frames(profile: Path, n: int = 12) -> list[tuple[str, float]]:
    """The functions where most samples were taken (own time), as shares of all samples."""
    own: Counter[str] = Counter()
    for frames, count in _samples(profile):
        own[frames[-1]] += count
    every = sum(own.values()) or 1
    return [(frame, round(c / every, 3)) for frame, c in own.most_common(n)]


_LINE = re.compile(r":\d+\)$")


def top_own_functions(profile: Path, n: int = 12) -> list[tuple[str, float]]:
    """Our functions by inclusive time (a sample counts once for each of ours on its stack)."""
    inclusive: Counter[str] = Counter()
    every = 0
    for frames, count in _samples(profile):
        every += count
        ours = {
            _LINE.sub(")", f).replace(str(REPO / "operator") + "/", "")
            for f in frames
            if "scaleset_operator" in f and not f.startswith("<module>")
        }
        for frame in ours:
            inclusive[frame] += count
    return [(frame, round(c / max(every, 1), 3)) for frame, c in inclusive.most_common(n)]


def print_profile(result: dict[str, Any]) -> None:
    """The profile's summary, when the run was profiled."""
    if "profile_top_frames" not in result:
        return
    print(f"\n  where the operator's CPU went (py-spy, own time; {result['profile_path']}):")
    for frame, share in result["profile_top_frames"]:
        print(f"    {100 * share:5.1f}%  {frame}")
    print("  our functions, inclusive:")
    for frame, share in result["profile_top_own_functions"]:
        print(f"    {100 * share:5.1f}%  {frame}")


def start_operator(
    cluster: LocalCluster, log_dir: Path, *extra: str, profile: Path | None = None
) -> OperatorProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    args = ("--upgrade-delay", "0", *extra)
    op: OperatorProcess
    if profile is not None:
        op = ProfiledOperator(cluster.kubeconfig_path, log_dir, profile, *args)
    else:
        op = OperatorProcess(cluster.kubeconfig_path, log_dir, *args)
    op.start()
    return op


def follow_pods(
    api: client.ApiClient,
    namespace: str,
    on_event: Callable[[str, dict[str, Any]], None],
    stop: threading.Event,
) -> None:
    """Feed every pod event of ``namespace`` to ``on_event(type, pod)`` until ``stop`` is set;
    run it in a thread of its own. Lines are decoded with `json` alone: the typed client's models
    would cost the shared cores more per event than the operator does. A lost watch resumes
    where it left off; one whose place kube-apiserver no longer holds starts afresh."""
    core = client.CoreV1Api(api)
    rv = None
    while not stop.is_set():
        try:
            resp = core.list_namespaced_pod(
                namespace,
                watch=True,
                resource_version=rv,
                timeout_seconds=300,
                _preload_content=False,
            )
            for line in resp:
                event = json.loads(line)
                kind, pod = event.get("type", ""), event.get("object") or {}
                if kind == "ERROR":
                    rv = None  # too old a place to resume from: the next watch starts afresh
                    break
                rv = (pod.get("metadata") or {}).get("resourceVersion") or rv
                on_event(kind, pod)
                if stop.is_set():
                    break
            resp.release_conn()
        except Exception as exc:  # the watch is best effort: start another one
            log(f"pod watch on {namespace} restarted: {exc!r}")
            rv = None
            time.sleep(0.5)


def create_namespace(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    eventually(
        lambda: client.CoreV1Api(api).list_namespaced_service_account(name).items,
        60,
        what=f"default service account in {name}",
    )


def deployment_body(name: str, replicas: int, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """The Deployment the benchmarks compare against: `maxUnavailable: 20%`, `maxSurge: 0`."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "20%", "maxSurge": 0},
            },
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def deployment_done(apps: client.AppsV1Api, ns: str, name: str, n: int) -> bool:
    d = apps.read_namespaced_deployment(name, ns)
    s = d.status
    return bool(
        (s.observed_generation or 0) >= d.metadata.generation
        and s.replicas == n
        and s.updated_replicas == n
        and s.available_replicas == n
    )


# --- kube-apiserver request counters ------------------------------------------------------

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape_metrics(cluster: LocalCluster) -> str:
    """kube-apiserver's /metrics text: read once per snapshot, then parsed for what is needed."""
    status, text = cluster.api().raw_get("/metrics", timeout=30.0)
    assert status == 200, f"/metrics answered {status}"
    return text


def requests_in(metrics: str, code: str | None = None) -> Counter[tuple[str, str, str]]:
    """apiserver_request_total summed by (verb, resource, subresource); only the answers with
    HTTP status `code` when given."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in metrics.splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group("labels")))
        if code is not None and labels.get("code") != code:
            continue
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] += int(float(m.group("value")))
    return counts


def scrape_requests(cluster: LocalCluster) -> Counter[tuple[str, str, str]]:
    return requests_in(scrape_metrics(cluster))


def terminated_pod_watchers(metrics: str) -> int:
    """Pod watches kube-apiserver closed because their client did not keep up."""
    n = 0
    for line in metrics.splitlines():
        if line.startswith("apiserver_terminated_watchers_total{") and 'resource="pods"' in line:
            n += int(float(line.rsplit(" ", 1)[1]))
    return n


def delta(
    after: Counter[tuple[str, str, str]], before: Counter[tuple[str, str, str]]
) -> Counter[tuple[str, str, str]]:
    out: Counter[tuple[str, str, str]] = Counter()
    for key, value in after.items():
        d = value - before.get(key, 0)
        if d > 0:
            out[key] = d
    return out


def breakdown(counts: Counter[tuple[str, str, str]]) -> dict[str, int]:
    """'VERB resource[/sub]' -> count, largest first (for the JSON)."""
    flat = {f"{verb} {res}{'/' + sub if sub else ''}": n for (verb, res, sub), n in counts.items()}
    return dict(sorted(flat.items(), key=lambda kv: -kv[1]))


def total(
    counts: Counter[tuple[str, str, str]],
    verbs: tuple[str, ...],
    resources: dict[str, tuple[str, ...]],
) -> int:
    """Requests with a verb in `verbs` on `resources` (resource -> allowed subresources)."""
    return sum(
        n
        for (verb, res, sub), n in counts.items()
        if verb in verbs and res in resources and sub in resources[res]
    )


rss_mib = procfs.rss_mib
cpu_seconds = procfs.cpu_seconds


def cpu_by_process(cluster: LocalCluster, operator_pid: int) -> dict[str, float]:
    """CPU seconds so far of each control-plane process, the operator and this benchmark; the
    whole machine's busy time under "machine" (from /proc/stat: kernel threads included)."""
    pids = {name: rec.pid for name, rec in cluster.records().items()}
    pids["operator"] = operator_pid
    pids["benchmark"] = os.getpid()
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = cpu_seconds(pid)
    out["machine"] = procfs.machine_busy_seconds()
    return out


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: round(v - before.get(k, 0.0), 2) for k, v in after.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)
