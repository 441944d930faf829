"""Alert rules and dashboard queries against a real Prometheus (Debian's package).

`promtool` checks and unit-tests the rules; a Prometheus process then scrapes an
OperatorMetrics endpoint fed with the statuses an upgrade with a bad image goes through, and
every dashboard query and alert expression must parse and return series.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, start_http_server

from scaleset_operator.localcluster import find_binary
from scaleset_operator.metrics import OperatorMetrics
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import (
    Batch,
    PendingUpgrade,
    Progress,
    ResolvedImage,
    RollingRunningStatus,
    RollingUpgradeStatus,
    RunningStatusCode,
    ScaleSetStatus,
    StartedBy,
    UpgradeRun,
)
from scaleset_operator.planner.actions import EmitEvent
from scaleset_operator.planner.timefmt import stamp
from tests.e2e.prometheus_process import (
    REPO,
    PrometheusProcess,
    QueryError,
    binaries,
    free_port,
    poll,
)
from tests.e2e.support import OperatorProcess, World

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RULES = REPO / "deploy" / "prometheus" / "scaleset-operator-rules.yaml"
CHART_RULES = REPO / "charts" / "scaleset-operator" / "rules" / "scaleset-operator-rules.yaml"
RULE_TESTS = REPO / "tests" / "prometheus" / "scaleset-operator-rules.test.yaml"
DASHBOARD = REPO / "charts" / "scaleset-operator" / "dashboards" / "scaleset-upgrades.json"
NS = "shop"
# Grafana fills these in; any valid values serve to check that a query runs.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "15m",
    "$namespace": NS,
    "$scaleset": ".*",
}

OLD = ResolvedImage(
    publisher="Canonical",
    offer="ubuntu-24_04-lts",
    sku="server",
    version="1.0.0",
    container_image="registry.example/os:1.0.0",
)
BAD = OLD.model_copy(update={"version": "1.1.0", "container_image": "registry.example/os:bad"})


@pytest.fixture(scope="module")
def tools() -> tuple[str, str]:
    return binaries()


def test_promtool_checks_both_rules_files(tools: tuple[str, str]) -> None:
    _, promtool = tools
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES), str(CHART_RULES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_promtool_rule_unit_tests(tools: tuple[str, str]) -> None:
    _, promtool = tools
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_renders_the_same_rules_and_dashboard(tools: tuple[str, str], tmp_path: Path) -> None:
    helm = find_binary("helm")
    assert helm is not None, "helm not found (hack/testbin.sh builds it)"
    rendered = subprocess.run(
        [
            str(helm),
            "template",
            "ops",
            str(REPO / "charts" / "scaleset-operator"),
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    rule = next(o for o in objects if o["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    groups = tmp_path / "rendered-rules.yaml"
    groups.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    checked = subprocess.run(
        [tools[1], "check", "rules", str(groups)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    maps = [o for o in objects if o["kind"] == "ConfigMap" and DASHBOARD.name in o.get("data", {})]
    assert len(maps) == 1
    assert json.loads(maps[0]["data"][DASHBOARD.name]) == json.loads(DASHBOARD.read_text())


# --- a scraped endpoint going through a faulted upgrade --------------------------------------


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"{panel['title']} [{target['refId']}]", target["expr"]))
    return found


def annotation_queries() -> list[str]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]


def grafana(expr: str, **variables: str) -> str:
    values = {**GRAFANA_VARIABLES, **{f"${k}": v for k, v in variables.items()}}
    for name, value in values.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def rules() -> list[dict[str, Any]]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


class Timeline:
    """Statuses stamped relative to a start ten minutes ago, as the planner would write them."""

    def __init__(self) -> None:
        self.t0 = datetime.now(UTC) - timedelta(minutes=10)

    def at(self, seconds: float) -> str:
        return stamp(self.t0 + timedelta(seconds=seconds))


def with_progress(run: UpgradeRun, progress: tuple[int, int, int, int]) -> ScaleSetStatus:
    return ScaleSetStatus(
        capacity=4,
        ready_instances=4 - progress[1],
        latest_model_instances=progress[0],
        model_image=run.target,
        upgrade_run=run,
        rolling_upgrade=RollingUpgradeStatus(
            running_status=RollingRunningStatus(code=run.code, start_time=run.start_time),
            progress=Progress(
                successful_instance_count=progress[0],
                failed_instance_count=progress[1],
                in_progress_instance_count=progress[2],
                pending_instance_count=progress[3],
            ),
        ),
    )


def pods(versions: dict[int, ResolvedImage]) -> list[Instance]:
    return [
        Instance(
            instance_id=iid,
            name=f"web-{iid}",
            os_image=image.container_image,
            image_urn=image.urn,
        )
        for iid, image in sorted(versions.items())
    ]


class Endpoint:
    """An OperatorMetrics served over HTTP, started only when the test says so."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = OperatorMetrics(self.registry, version="0.0.0-test")
        self.port = free_port()
        self.server: Any = None

    def start(self) -> None:
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def reconcile_error(self, name: str) -> None:
        with pytest.raises(TimeoutError), self.metrics.reconcile_timer(NS, name):
            raise TimeoutError


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.stop()


@pytest.fixture
def prometheus(
    tools: tuple[str, str], endpoint: Endpoint, tmp_path: Path
) -> Iterator[PrometheusProcess]:
    server = PrometheusProcess(tools[0], tmp_path, [f"127.0.0.1:{endpoint.port}"], [RULES])
    server.start()
    yield server
    server.stop()


def test_queries_and_alerts_against_a_scraped_faulted_upgrade(
    prometheus: PrometheusProcess, endpoint: Endpoint
) -> None:
    started = time.monotonic()
    alerts = {r["alert"]: r["expr"] for r in rules() if "alert" in r}

    # Nothing serves metrics yet: the operator counts as down.
    poll(
        lambda: prometheus.query(alerts["ScaleSetOperatorDown"]),
        20,
        "ScaleSetOperatorDown's expression while nothing is scraped",
    )
    endpoint.start()
    poll(
        lambda: not prometheus.query(alerts["ScaleSetOperatorDown"]),
        20,
        "ScaleSetOperatorDown's expression to clear once scraped",
    )

    time_ = Timeline()
    metrics = endpoint.metrics
    old_pods = pods(dict.fromkeys(range(4), OLD))

    def step(
        name: str, status: ScaleSetStatus, instances: list[Instance], *events: EmitEvent
    ) -> None:
        metrics.record_events(NS, name, events)
        with metrics.reconcile_timer(NS, name):
            metrics.observe(NS, name, status, instances, capacity=4)

    def scraped() -> None:
        prometheus.scraped_since(time.time())

    # A second scale set whose upgrade has shown no step for two hours.
    stuck = UpgradeRun(
        started_by=StartedBy.USER,
        start_time=stamp(datetime.now(UTC) - timedelta(hours=2)),
        target=BAD,
        previous=OLD,
        batch=Batch(
            number=1,
            instance_ids=[0],
            started_at=stamp(datetime.now(UTC) - timedelta(hours=2)),
        ),
    )
    step("jobs", with_progress(stuck, (0, 0, 1, 3)), old_pods)

    # The operator notices 1.1.0 and waits out the upgrade delay.
    pending = PendingUpgrade(version="1.1.0", detected_at=time_.at(0))
    step(
        "web",
        ScaleSetStatus(capacity=4, ready_instances=4, model_image=OLD, pending_upgrade=pending),
        old_pods,
        EmitEvent("Normal", "NewImageVersion", "version 1.1.0 published; upgrade scheduled"),
    )
    endpoint.reconcile_error("web")
    scraped()

    run = UpgradeRun(
        started_by=StartedBy.PLATFORM, start_time=time_.at(10), target=BAD, previous=OLD
    )
    batch1 = run.model_copy(
        update={"batch": Batch(number=1, instance_ids=[0], started_at=time_.at(10))}
    )
    step(
        "web",
        with_progress(batch1, (0, 0, 1, 3)),
        old_pods,
        EmitEvent("Normal", "RollingUpgradeStarted", f"OS upgrade to {BAD.urn} started"),
        EmitEvent("Normal", "BatchStarted", f"batch 1/4: instances 0 -> {BAD.urn}"),
    )
    scraped()

    # Instance 0 cannot pull the new image: it fails fast and goes back to 1.0.0.
    reasons = {"0": "ImagePullBackOff"}
    failing = batch1.model_copy(
        update={"failed": [0], "rolling_back": [0], "failure_reasons": reasons}
    )
    step(
        "web",
        with_progress(failing, (0, 1, 1, 3)),
        pods({0: BAD, 1: OLD, 2: OLD, 3: OLD}),
        EmitEvent(
            "Warning",
            "InstanceUpgradeFailed",
            f"instance 0 unhealthy on {BAD.urn}: ImagePullBackOff",
        ),
        EmitEvent(
            "Warning", "InstanceRollingBack", "instance 0 goes back to registry.example/os:1.0.0"
        ),
    )
    endpoint.reconcile_error("web")
    scraped()

    # Back on 1.0.0; 1 of 1 upgraded instances failed, above 20 %: the upgrade faults.
    # A second instance, recreated mid-batch, never recovered on the old image either.
    faulted = failing.model_copy(
        update={
            "code": RunningStatusCode.FAULTED,
            "end_time": time_.at(40),
            "batch": None,
            "batches_done": 1,
            "last_batch_end": time_.at(40),
            "rolling_back": [],
            "rolled_back": [0],
            "failed": [0, 1],
            "rollback_failed": [1],
            "failure_reasons": {**reasons, "1": "HealthTimeout (NotReady)"},
        }
    )
    step(
        "web",
        with_progress(faulted, (0, 2, 0, 0)),
        old_pods,
        EmitEvent(
            "Normal", "InstanceRolledBack", "instance 0 is healthy on registry.example/os:1.0.0"
        ),
        EmitEvent(
            "Warning",
            "RollingUpgradeFaulted",
            "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade",
        ),
    )
    scraped()
    scraped()  # two samples of the final state, for rate() and increase() over it

    # The alerts without `for` fire on the next evaluation; the stuck one waits its 5 minutes.
    def states() -> dict[tuple[str, str], str]:
        return {
            (a["labels"]["alertname"], a["labels"].get("scaleset", "")): a["state"]
            for a in prometheus.alerts()
        }

    wanted = {
        ("ScaleSetUpgradeFaulted", "web"): "firing",
        ("ScaleSetRollbacksHappening", "web"): "firing",
        ("ScaleSetRollbackFailed", "web"): "firing",
        ("ScaleSetUpgradeStuck", "jobs"): "pending",
        ("ScaleSetReconcileErrors", "web"): "pending",
    }
    poll(
        lambda: all(states().get(key) == state for key, state in wanted.items()),
        30,
        f"alerts {wanted}",
    )
    faulted_alert = next(
        a for a in prometheus.alerts() if a["labels"]["alertname"] == "ScaleSetUpgradeFaulted"
    )
    assert faulted_alert["labels"]["version"] == "1.1.0"
    assert faulted_alert["labels"]["image"] == OLD.family
    assert "shop/web" in faulted_alert["annotations"]["summary"]
    assert ("ScaleSetOperatorDown", "") not in states()

    # Every alert expression (but the operator-down one, checked above) returns series.
    for name, expr in alerts.items():
        if name != "ScaleSetOperatorDown":
            assert prometheus.query(expr), name
    recorded = [str(rule["record"]) for rule in rules() if "record" in rule]
    for rule in rules():
        if "record" in rule:
            assert prometheus.query(rule["expr"]), rule["record"]
    poll(lambda: all(prometheus.query(name) for name in recorded), 10, f"series of {recorded}")
    ratio = prometheus.value('image_version:scaleset_change_failure:ratio_7d{version="1.1.0"}')
    assert ratio == 1.0

    # Every dashboard query parses and returns series; the variables list our scale sets.
    empty = []
    for title, expr in dashboard_queries():
        try:
            if not prometheus.query(grafana(expr)):
                empty.append(title)
        except QueryError as exc:
            pytest.fail(f"{title}: {exc}")
    assert empty == []
    for expr in annotation_queries():
        prometheus.query(grafana(expr))  # parses; it shows only when an upgrade starts
    assert prometheus.label_values("namespace", "scaleset_instances") == [NS]
    assert prometheus.label_values("scaleset", f'scaleset_instances{{namespace=~"{NS}"}}') == [
        "jobs",
        "web",
    ]

    # Values a user reads off the dashboard.
    progress = prometheus.query(
        f'sum by (state) (scaleset_upgrade_instances{{namespace="{NS}", scaleset="web"}})'
    )
    assert {s["metric"]["state"]: float(s["value"][1]) for s in progress} == {
        "successful": 0,
        "failed": 2,
        "in_progress": 0,
        "pending": 0,
    }
    rollbacks = prometheus.query('sum by (reason) (scaleset_rollbacks_total{scaleset="web"}) > 0')
    assert {s["metric"]["reason"] for s in rollbacks} == {"ImagePullBackOff", "HealthTimeout"}
    publish = prometheus.value('scaleset_publish_to_first_patch_seconds_sum{scaleset="web"}')
    assert publish == 10
    assert time.monotonic() - started < 120


# --- the operator itself, on the local control plane -------------------------------------------


def firing(prometheus: PrometheusProcess, alertname: str, namespace: str) -> dict[str, Any] | None:
    for alert in prometheus.alerts():
        labels = alert["labels"]
        if (
            labels["alertname"] == alertname
            and labels.get("namespace") == namespace
            and alert["state"] == "firing"
        ):
            return alert
    return None


def test_operator_metrics_during_a_faulted_upgrade(
    world: World, operator: OperatorProcess, tools: tuple[str, str], tmp_path: Path
) -> None:
    prometheus = PrometheusProcess(
        tools[0], tmp_path, [f"127.0.0.1:{operator.metrics_port}"], [RULES]
    )
    prometheus.start()
    try:
        ns = world.namespace
        web = f'namespace="{ns}", scaleset="web"'
        world.publish("1.0.0")
        world.create(world.scaleset_body(capacity=5))
        world.wait_ready(capacity=5)
        poll(
            lambda: prometheus.value(f"scaleset_instances_ready{{{web}}}") == 5,
            30,
            "five ready instances scraped",
        )

        # Kwok's kubelet never pulls a `bad` image: the first batch fails fast, rolls back,
        # and 1 failed of 1 upgraded is above 20 %: the upgrade faults.
        world.publish("2.0.0", image="example.test/os:bad-2.0.0")
        world.wait_upgrade_code("Faulted")

        alert = poll(
            lambda: firing(prometheus, "ScaleSetUpgradeFaulted", ns),
            30,
            "ScaleSetUpgradeFaulted to fire",
        )
        assert alert is not None
        assert alert["labels"]["scaleset"] == "web"
        assert alert["labels"]["version"] == "2.0.0"
        assert alert["labels"]["image"] == f"{world.publisher}:os:stable"
        poll(
            lambda: firing(prometheus, "ScaleSetRollbacksHappening", ns),
            30,
            "ScaleSetRollbacksHappening to fire",
        )

        assert prometheus.value(f'scaleset_upgrades_total{{{web}, outcome="faulted"}}') == 1
        assert prometheus.value(f'scaleset_upgrade_running_status{{{web}, code="Faulted"}}') == 1
        # Failed fast: the one rollback is counted under the pull failure, not a timeout.
        rollbacks = prometheus.query(f"scaleset_rollbacks_total{{{web}}} > 0")
        assert {r["metric"]["reason"]: float(r["value"][1]) for r in rollbacks} == {
            "ImagePullBackOff": 1
        }
        assert prometheus.value(f"scaleset_publish_to_first_patch_seconds_count{{{web}}}") == 1
        assert prometheus.value(f"scaleset_upgrade_batches_total{{{web}}}") == 1

        def versions() -> dict[str, float]:
            series = prometheus.query(f"scaleset_instances_by_image_version{{{web}}}")
            return {s["metric"]["version"]: float(s["value"][1]) for s in series}

        poll(lambda: versions() == {"1.0.0": 5}, 30, "every instance back on 1.0.0")

        # Every dashboard query runs and returns series, but for reconcile errors: none
        # happened, and that counter's series exist per exception class only once one did.
        empty = []
        for title, expr in dashboard_queries():
            result = prometheus.query(grafana(expr, namespace=ns, scaleset="web"))
            if not result and "scaleset_reconcile_errors_total" not in expr:
                empty.append(title)
        assert empty == []
    finally:
        prometheus.stop()
