"""The demo's real-node parts: the operator as a pod installed by its chart (image built from
this checkout, pushed to the cluster's registry), and what a real container answers."""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import click

from scaleset_operator.k8s.client import KubeClient, condition
from scaleset_operator.k8s.errors import AlreadyExistsError
from scaleset_operator.localcluster import LocalCluster, find_binary
from scaleset_operator.localcluster.binaries import repo_root
from scaleset_operator.localcluster.images import Registry, find_crane
from scaleset_operator.localcluster.operatorimage import build_operator_image
from scaleset_operator.localcluster.realnodes import NODE_TYPE_LABEL, TAINT_KEY

OPERATOR_NAMESPACE = "scaleset-system"
RELEASE = "scaleset-operator"
# The chart is meant to run under the `restricted` Pod Security Standard: the demo and the
# chart's tests install it into a namespace that enforces it, so a violation fails at once.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def chart_dir() -> Path:
    root = repo_root()
    if root is None or not (root / "charts" / "scaleset-operator").is_dir():
        raise click.ClickException("--real-nodes needs a checkout of the repository (the chart)")
    return root / "charts" / "scaleset-operator"


def install_operator(local: LocalCluster, kube: KubeClient, log: Callable[[str], None]) -> str:
    """Builds the operator image, installs the chart into a `restricted` namespace with the
    operator on a real node, and waits for its pod to be Ready; returns the pod's name."""
    registry = local.registry
    if registry is None:
        raise click.ClickException("the cluster has no registry: were the real nodes started?")
    image = build_operator_image(
        find_crane(), Registry(registry), local.directory / "operator-image", log=log
    )
    helm = find_binary("helm")
    if helm is None:
        raise click.ClickException("helm not found: run hack/testbin.sh or put helm on PATH")
    repository, tag = image.rsplit(":", 1)
    args = [
        str(helm),
        "--kubeconfig",
        str(local.kubeconfig_path),
        "upgrade",
        "--install",
        RELEASE,
        str(chart_dir()),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "operator.upgradeDelaySeconds=2",
        "--set",
        f"nodeSelector.type={NODE_TYPE_LABEL}",
        "--set",
        f"tolerations[0].key={TAINT_KEY}",
        "--set",
        "tolerations[0].operator=Exists",
    ]
    namespace = {"metadata": {"name": OPERATOR_NAMESPACE, "labels": RESTRICTED}}
    with contextlib.suppress(AlreadyExistsError):
        kube.request("POST", "/api/v1/namespaces", body=namespace)
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise click.ClickException(f"helm install failed: {result.stderr.strip()}")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for pod in kube.list_pods(OPERATOR_NAMESPACE, f"app.kubernetes.io/instance={RELEASE}"):
            meta = pod.get("metadata") or {}
            if not meta.get("deletionTimestamp") and condition(pod, "Ready") == "True":
                return str(meta.get("name"))
        time.sleep(0.5)
    raise click.ClickException(
        f"the operator pod did not become Ready; kubectl -n {OPERATOR_NAMESPACE} describe pods"
    )


def served_version(pod_ip: str | None) -> str:
    """What the test server in a real container answers on /version ("-" when it does not)."""
    if not pod_ip:
        return "-"
    try:
        with urllib.request.urlopen(f"http://{pod_ip}:8080/version", timeout=1) as resp:
            return bytes(resp.read()).decode().strip() or "-"
    except OSError:
        return "-"
