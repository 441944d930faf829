#!/usr/bin/env python3
"""Regenerates the dashboard's pictures under docs/: one mid-upgrade, one after a rollback.

Starts its own local control plane, operator, Prometheus (when installed) and dashboard,
publishes versions as a user would, and photographs the page with Debian's Chromium
(hack/install-browser.sh). Run: .venv/bin/python hack/dashboard-screenshots.py
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from kubernetes import config  # noqa: E402

from scaleset_operator.localcluster import LocalCluster  # noqa: E402
from tests.e2e.dashboard_support import DashboardProcess, chromium  # noqa: E402
from tests.e2e.prometheus_process import PrometheusProcess  # noqa: E402
from tests.e2e.support import OperatorProcess, World, install_crds  # noqa: E402

# The page's own view of its tiles, for waiting on a moment worth a picture.
MID_UPGRADE = """() => {
  const tiles = [...document.querySelectorAll('.tile')];
  const on = (state, version) => tiles.filter(t => t.dataset.state === state
      && (!version || t.querySelector('.tile-version').textContent === version)).length;
  return on('in-flight') >= 1 && on('target', '1.1.0') >= 3 && on('pending') >= 3;
}"""


def pictures(page: Any, world: World, dashboard: DashboardProcess, out: Path, graphs: bool) -> None:
    """Mid-upgrade, then after a bad version was rolled back."""
    page.goto(dashboard.page_url("shop"))
    page.wait_for_selector(".tile", timeout=15_000)

    world.publish("1.1.0", image="registry.example/webos:1.1.0")
    page.wait_for_function(MID_UPGRADE, timeout=120_000, polling=50)
    page.screenshot(path=str(out / "dashboard-upgrade.png"), full_page=True)
    print(f"wrote {out / 'dashboard-upgrade.png'}")

    page.wait_for_function(
        "() => document.getElementById('upgrade-state').textContent === 'Completed'",
        timeout=120_000,
    )
    world.publish("2.0.0", image="registry.example/webos:bad-2.0.0")
    page.wait_for_function(
        """() => document.getElementById('upgrade-state').textContent === 'Faulted'
          && document.querySelectorAll('.tile[data-state="rolled-back"]').length > 0
          && document.querySelectorAll('.tile[data-state="failed"]').length === 0""",
        timeout=120_000,
    )
    if graphs:
        # The graphs redraw every few seconds: wait for one that shows the rollback.
        page.wait_for_selector(
            'svg.graph[data-panel="rollback"] path[data-series="rolled_back"]',
            state="attached",
            timeout=30_000,
        )
    page.screenshot(path=str(out / "dashboard-rollback.png"), full_page=True)
    print(f"wrote {out / 'dashboard-rollback.png'}")


def photograph(work: Path, out: Path) -> None:
    cluster = LocalCluster(work / "cluster", die_with_parent=True)
    cluster.up()
    operator: OperatorProcess | None = None
    dashboard: DashboardProcess | None = None
    prometheus: PrometheusProcess | None = None
    try:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
        install_crds(cluster.kubeconfig_path, api)
        operator = OperatorProcess(cluster.kubeconfig_path, work)
        operator.start()
        extra: tuple[str, ...] = ()
        binary = shutil.which("prometheus")
        if binary:
            (work / "prometheus").mkdir()
            target = f"127.0.0.1:{operator.metrics_port}"
            prometheus = PrometheusProcess(binary, work / "prometheus", [target])
            prometheus.start()
            extra = ("--prometheus", prometheus.url)
        world = World(api, "shop")
        world.core.create_namespace({"metadata": {"name": "shop"}})
        world.publish("1.0.0", image="registry.example/webos:1.0.0")
        policy = {"maxBatchInstancePercent": 10, "pauseTimeBetweenBatches": "PT2S"}
        world.create(world.scaleset_body(capacity=12, rolling=policy, health_timeout="PT20S"))
        world.create(world.scaleset_body("api", capacity=4, automatic=False))
        world.wait_ready(capacity=12)
        world.wait_ready("api", capacity=4)
        dashboard = DashboardProcess(cluster.kubeconfig_path, work / "dashboard.log", extra)
        dashboard.start()
        with chromium() as browser:
            pictures(
                browser.new_page(viewport={"width": 1280, "height": 900}),
                world,
                dashboard,
                out,
                prometheus is not None,
            )
    finally:
        if dashboard is not None:
            dashboard.stop()
        if prometheus is not None:
            prometheus.stop()
        if operator is not None:
            operator.stop()
        cluster.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for the PNGs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dashboard-shots-") as work:
        photograph(Path(work), args.out)


if __name__ == "__main__":
    main()
