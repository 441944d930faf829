"""``cluster up|down|status``: the local control plane with simulated nodes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from scaleset_operator.localcluster import (
    BinaryNotFoundError,
    LocalCluster,
    LocalClusterError,
)
from scaleset_operator.localcluster.pki import MAX_REAL_NODES
from scaleset_operator.localcluster.realnodes import RealNodeError


def _default_dir() -> Path:
    return Path(os.environ.get("SCALESET_CLUSTER_DIR") or ".cluster")


def _progress(message: str) -> None:
    click.echo(f"• {message}", err=True)


_dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=_default_dir,
    show_default="$SCALESET_CLUSTER_DIR or .cluster",
    help="Folder holding the cluster's data, logs and kubeconfig.",
)


@click.group()
def cluster() -> None:
    """A local Kubernetes control plane (etcd, apiserver, controller-manager, scheduler) with
    kwok-simulated nodes (pods become Running/Ready without containers) and, on request, real
    nodes (kubelet + containerd) that run real containers."""


@cluster.command()
@_dir_option
@click.option("--nodes", default=6, show_default=True, help="Number of simulated nodes.")
@click.option("--zones", default=3, show_default=True, help="Spread nodes over this many zones.")
@click.option(
    "--pod-start-delay",
    type=float,
    default=None,
    help="Seconds a simulated container takes to start [default: 0.7].",
)
@click.option(
    "--real-nodes",
    type=click.IntRange(0, MAX_REAL_NODES),
    default=0,
    show_default=True,
    help="Also run this many real nodes (a kubelet and a containerd each; needs root), "
    "labelled type=real and tainted scaleset.dev/real-node=true:NoSchedule, with an image "
    "registry on 127.0.0.1 holding the test images.",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for readiness.")
def up(
    directory: Path,
    nodes: int,
    zones: int,
    pod_start_delay: float | None,
    real_nodes: int,
    timeout: float,
) -> None:
    """Start the cluster (or reuse the one running in DIR)."""
    local = LocalCluster(
        directory,
        nodes=nodes,
        zones=zones,
        pod_start_delay=pod_start_delay,
        real_nodes=real_nodes,
        log=_progress,
    )
    try:
        local.up(timeout=timeout)
    except (LocalClusterError, BinaryNotFoundError, RealNodeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    kubeconfig = local.kubeconfig_path
    click.echo(
        f"\nCluster is up ({local.server}). Use it with:\n"
        f"  export KUBECONFIG={kubeconfig}\n"
        f"  kubectl get nodes -o wide\n"
        f"Logs: {local.logs_dir}/   Stop: cluster down --dir {local.directory}"
    )
    if local.registry:
        click.echo(
            f"Real nodes pull from the registry {local.registry} (test images: "
            f"{local.registry}/app:v1, v2, v3, unready-1, crash-1; tags bad* are never pushed)."
        )


@cluster.command()
@_dir_option
@click.option("--purge", is_flag=True, help="Also delete DIR (data, certificates, logs).")
def down(directory: Path, purge: bool) -> None:
    """Stop every component of the cluster in DIR."""
    local = LocalCluster(directory, log=_progress)
    try:
        local.down(purge=purge)
    except (LocalClusterError, RealNodeError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"stopped the cluster in {local.directory}" + (" and removed it" if purge else ""))


@cluster.command()
@_dir_option
def status(directory: Path) -> None:
    """Show the components of the cluster in DIR; exit code 1 when it is not fully up."""
    st = LocalCluster(directory).status()
    if not st.components:
        click.echo(f"no cluster running in {st.directory}")
        sys.exit(1)
    click.echo(f"directory:  {st.directory}")
    click.echo(f"server:     {st.server} ({'ready' if st.api_ready else 'NOT ready'})")
    click.echo(f"kubeconfig: {st.kubeconfig}")
    local = LocalCluster(directory)
    if local.registry:
        click.echo(f"registry:   {local.registry} (real nodes: {local.real_node_count()})")
    for comp in st.components.values():
        state = "running" if comp.running else "STOPPED"
        click.echo(
            f"  {comp.name:<24} pid {comp.pid:<8} {state:<8} {comp.rss_bytes / 2**20:7.1f} MiB"
        )
    click.echo(f"  {'total':<24} {'':<12} {'':<8} {st.rss_bytes / 2**20:7.1f} MiB")
    if not (st.running and st.api_ready):
        sys.exit(1)
