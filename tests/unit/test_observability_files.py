"""The Grafana dashboard and the Prometheus rules: shape, and only metrics the operator exports.

Whether every query parses and returns series is checked against a real Prometheus in
tests/e2e/test_observability.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from scaleset_operator.metrics import OperatorMetrics
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import (
    Batch,
    ResolvedImage,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "scaleset-operator"
DASHBOARD = CHART / "dashboards" / "scaleset-upgrades.json"
RULES = ROOT / "deploy" / "prometheus" / "scaleset-operator-rules.yaml"
CHART_RULES = CHART / "rules" / "scaleset-operator-rules.yaml"
REQUIRED_ALERTS = {
    "ScaleSetUpgradeFaulted",
    "ScaleSetUpgradeStuck",
    "ScaleSetRollbacksHappening",
    "ScaleSetOperatorDown",
}
METRIC = re.compile(r"\b(scaleset_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def load_rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


def rule_exprs(rules: dict[str, Any]) -> list[str]:
    return [r["expr"] for group in rules["groups"] for r in group["rules"]]


def exported_names() -> set[str]:
    """Every sample name the operator exports once a scale set is in an upgrade."""
    registry = CollectorRegistry()
    metrics = OperatorMetrics(registry)
    old = ResolvedImage(publisher="P", offer="O", sku="S", version="1.0.0", container_image="o:1")
    new = old.model_copy(update={"version": "1.1.0", "container_image": "o:2"})
    run = UpgradeRun(
        started_by=StartedBy.PLATFORM,
        start_time="2024-05-01T12:00:00Z",
        target=new,
        previous=old,
        batch=Batch(number=1, instance_ids=[0], started_at="2024-05-01T12:00:00Z"),
    )
    status = ScaleSetStatus(model_image=new, upgrade_run=run)
    pod = Instance(instance_id=0, name="web-0", os_image="o:1", image_urn=old.urn)
    metrics.observe("ns", "web", status, [pod], capacity=1)
    with metrics.reconcile_timer("ns", "web"):
        pass
    metrics.reconcile_errors.labels("ns", "web", "Example").inc()
    text = generate_latest(registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def unknown_metrics(exprs: list[str], known: set[str]) -> set[str]:
    missing = set()
    for expr in exprs:
        for name in METRIC.findall(expr):
            base = name
            for suffix in HISTOGRAM_SUFFIXES:
                if name.endswith(suffix) and f"{name.removesuffix(suffix)}_count" in known:
                    base = f"{name.removesuffix(suffix)}_count"
            if base not in known:
                missing.add(name)
    return missing


def test_chart_rules_are_a_copy_of_the_plain_rules_file() -> None:
    assert CHART_RULES.read_bytes() == RULES.read_bytes()


def test_rules_have_the_required_alerts_with_annotations() -> None:
    rules = load_rules()
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name


def test_rules_use_only_exported_metrics() -> None:
    rules = load_rules()
    known = exported_names()
    assert unknown_metrics(rule_exprs(rules), known) == set()


def test_dashboard_identity_and_variables() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "scaleset-upgrades"
    assert dashboard.get("id") is None  # Grafana assigns ids; a fixed one breaks imports
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "scaleset"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["includeAll"] is True


def test_every_panel_queries_the_templated_datasource() -> None:
    dashboard = load_dashboard()
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize(
    "metric",
    [
        "scaleset_upgrade_instances",
        "scaleset_upgrade_running_status",
        "scaleset_upgrade_batches_total",
        "scaleset_rollbacks_total",
        "scaleset_instances_by_image_version",
        "scaleset_upgrade_duration_seconds_bucket",
        "scaleset_upgrade_batch_duration_seconds_bucket",
        "scaleset_publish_to_first_patch_seconds_bucket",
        "scaleset_reconcile_total",
        "scaleset_reconcile_errors_total",
    ],
)
def test_dashboard_shows(metric: str) -> None:
    assert any(metric in expr for expr in dashboard_exprs(load_dashboard()))


def test_scale_set_panels_follow_the_variables() -> None:
    for panel in panels(load_dashboard()):
        for target in panel.get("targets", []):
            expr = target["expr"]
            if "scaleset_image_version" in expr or "time_to_revert" in expr:
                continue  # per image version, over all scale sets
            if "scaleset_operator_build_info" in expr or "up{" in expr:
                continue
            assert 'namespace=~"$namespace"' in expr, (panel["title"], expr)
            assert 'scaleset=~"$scaleset"' in expr, (panel["title"], expr)


def test_dashboard_uses_only_exported_metrics() -> None:
    known = exported_names()
    assert unknown_metrics(dashboard_exprs(load_dashboard()), known) == set()


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in panels(load_dashboard()):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells
