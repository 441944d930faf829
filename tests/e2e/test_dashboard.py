"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright) against
the local control plane and the operator: a live upgrade batch by batch, a bad version rolled
back, actions from the page reaching the API, and requests from other pages refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from playwright.sync_api import expect

from scaleset_operator.localcluster.cluster import SERVICE_ACCOUNT_ISSUER
from scaleset_operator.models.instance import (
    ANNOTATION_CANCEL,
    ANNOTATION_CLEAR_QUARANTINE,
    ANNOTATION_START,
)
from tests.e2e.dashboard_support import CHROMIUM, DashboardProcess, chromium
from tests.e2e.prometheus_process import PrometheusProcess, binaries
from tests.e2e.support import OperatorProcess, World, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # `make setup` installs it; a missing browser is a failure, never a skip.
    assert CHROMIUM.exists(), f"no {CHROMIUM}: run hack/install-browser.sh (make setup does)"
    with chromium() as launched:
        yield launched


@pytest.fixture
def dashboard(kubeconfig: Path, world: World, tmp_path: Path) -> Iterator[DashboardProcess]:
    proc = DashboardProcess(kubeconfig, tmp_path / "dashboard.log", ("-n", world.namespace))
    proc.start()
    yield proc
    assert proc.stop() == 0, proc.log.read_text()[-2000:]


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda exc: problems.append(str(exc)))
    yield opened
    # The last look at the page, kept whatever the outcome.
    ARTIFACTS.mkdir(exist_ok=True)
    for folder in (tmp_path, ARTIFACTS):
        opened.screenshot(path=str(folder / f"{request.node.name}-end.png"), full_page=True)
    context.close()
    assert not problems, problems


def _annotation(world: World, key: str) -> dict[str, Any] | None:
    value = (world.get()["metadata"].get("annotations") or {}).get(key)
    return json.loads(value) if value else None


def _tiles(page: Any) -> dict[str, Any]:
    """What the page shows now: tile states and versions, the batch line, the badge."""
    found: dict[str, Any] = page.evaluate(
        """() => ({
            tiles: [...document.querySelectorAll('.tile')].map(t => [
                t.dataset.state, t.querySelector('.tile-version').textContent]),
            batch: document.getElementById('batch').textContent,
            badge: document.getElementById('upgrade-state').textContent,
        })"""
    )
    return found


def _confirm(page: Any, button: Any) -> None:
    button.click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible(timeout=5_000)
    page.locator("#confirm-yes").click()
    expect(dialog).to_be_hidden(timeout=5_000)


def test_live_upgrade_batch_by_batch_then_a_bad_version_rolls_back(
    world: World, dashboard: DashboardProcess, page: Any, tmp_path: Path
) -> None:
    world.publish("1.0.0")
    policy = {"pauseTimeBetweenBatches": "PT1S"}
    world.create(world.scaleset_body(rolling=policy, health_timeout="PT20S"))
    world.wait_ready()
    page.goto(dashboard.page_url(world.namespace))
    expect(page.locator("#scalesets tbody tr")).to_have_count(1, timeout=10_000)
    expect(page.locator('.tile[data-state="target"]')).to_have_count(10, timeout=10_000)
    expect(page.locator("#connection")).to_have_text("live")

    # The page follows the upgrade without reloading: record what it shows as it moves.
    world.publish("1.1.0")
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        now = _tiles(page)
        seen.append(now)
        if now["badge"] == "Completed":
            break
        page.wait_for_timeout(50)  # a polling interval, not a wait for an outcome
    assert seen[-1]["badge"] == "Completed", seen[-1]

    upgraded = [sum(t == ["target", "1.1.0"] for t in s["tiles"]) for s in seen]
    assert upgraded[-1] == 10
    assert upgraded == sorted(upgraded), "an instance left the target during the upgrade"
    steps = sorted({n for n in upgraded if 0 < n < 10})
    assert len(steps) >= 3, f"no batch-by-batch progress seen: {steps}"
    assert any(t[0] == "in-flight" for s in seen for t in s["tiles"])
    batches = {s["batch"].split(":")[0] for s in seen if s["batch"].startswith("Batch ")}
    assert len(batches) >= 3, batches
    expect(page.locator("#history tbody tr").first).to_have_attribute("data-code", "Completed")
    assert page.locator("#timeline rect.batch").count() >= 3
    assert page.locator("#timeline rect.pause").count() >= 1
    page.screenshot(path=str(tmp_path / "completed.png"), full_page=True)

    # A version whose image never starts: its instances are rolled back, the run faults.
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    expect(page.locator("#upgrade-state")).to_have_text("Faulted", timeout=60_000)
    expect(page.locator('.tile[data-state="rolled-back"]').first).to_be_visible(timeout=30_000)
    history = page.locator("#history tbody tr").first
    expect(history).to_have_attribute("data-code", "Faulted", timeout=10_000)
    expect(history.locator("td").nth(4)).to_have_text("2.0.0")
    expect(page.locator("#timeline .rollback-mark").first).to_be_visible(timeout=10_000)
    quarantined = page.locator('#catalog tr[data-version="2.0.0"]')
    expect(quarantined).to_have_class("quarantined", timeout=10_000)
    page.screenshot(path=str(tmp_path / "faulted.png"), full_page=True)

    # Clearing the quarantine from the page writes the plugin's request annotation.
    _confirm(page, quarantined.locator("button.clear"))
    request = eventually(
        lambda: _annotation(world, ANNOTATION_CLEAR_QUARANTINE), 10, what="the clear request"
    )
    assert request["action"] == "clear-quarantine"
    assert request["versions"] == ["2.0.0"]
    expect(page.locator("#message")).to_have_text(
        "The operator carried out clear-quarantine.", timeout=20_000
    )


def test_start_and_cancel_from_the_page_reach_the_api(
    world: World, dashboard: DashboardProcess, page: Any
) -> None:
    world.publish("1.0.0")
    # Long pauses between batches: the run is still going when the page cancels it.
    policy = {
        "maxBatchInstancePercent": 25,
        "maxUnhealthyInstancePercent": 25,
        "pauseTimeBetweenBatches": "PT60S",
    }
    world.create(world.scaleset_body(capacity=4, automatic=False, rolling=policy))
    world.wait_ready(capacity=4)
    page.goto(dashboard.page_url(world.namespace))
    start = page.locator("#start")
    expect(start).to_be_enabled(timeout=10_000)

    # Backing out of the dialog writes nothing.
    start.click()
    page.locator("#confirm-no").click()
    expect(page.locator("#confirm")).to_be_hidden()
    assert _annotation(world, ANNOTATION_START) is None

    world.publish("1.1.0")
    _confirm(page, start)
    request = eventually(lambda: _annotation(world, ANNOTATION_START), 10, what="a start")
    assert (request["action"], request["instanceIds"]) == ("start", [])
    expect(page.locator("#upgrade-state")).to_have_text("RollingForward", timeout=20_000)

    _confirm(page, page.locator("#cancel"))
    request = eventually(lambda: _annotation(world, ANNOTATION_CANCEL), 10, what="a cancel")
    assert request["action"] == "cancel"
    expect(page.locator("#upgrade-state")).to_have_text("Cancelled", timeout=30_000)
    status = world.status()
    assert status["rollingUpgrade"]["runningStatus"]["lastAction"] == "Cancel"
    assert status["osUpgradeHistory"][0]["startedBy"] == "User"


def test_requests_from_other_pages_or_without_the_token_are_refused(
    world: World, dashboard: DashboardProcess
) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=2))
    own = {
        "Host": dashboard.authority,
        "Origin": f"http://{dashboard.authority}",
        "X-Dashboard-Token": dashboard.token,
        "Content-Type": "application/json",
    }
    path = f"/api/scalesets/{world.namespace}/web/actions/start"
    eventually(
        lambda: dashboard.http("GET", f"/api/scalesets/{world.namespace}/web", own)[0] == 200,
        10,
        what="the dashboard to see the scale set",
    )
    attempts = {
        "foreign origin": own | {"Origin": "http://evil.example"},
        "no origin": {k: v for k, v in own.items() if k != "Origin"},
        "no token": {k: v for k, v in own.items() if k != "X-Dashboard-Token"},
        "wrong token": own | {"X-Dashboard-Token": "guessed"},
        "rebound host": own | {"Host": f"evil.example:{dashboard.authority.split(':')[1]}"},
    }
    for what, headers in attempts.items():
        status, body = dashboard.http("POST", path, headers, b"{}")
        assert status == 403, (what, status, body)
        assert "refused" in body, (what, body)
    status, _ = dashboard.http("GET", "/api/scalesets", {"Host": dashboard.authority})
    assert status == 403
    status, _ = dashboard.http("GET", "/", {"Host": "evil.example"})
    assert status == 403
    assert _annotation(world, ANNOTATION_START) is None

    # The dashboard's own page may: the same request with every check passed is written.
    status, body = dashboard.http("POST", path, own, b"{}")
    assert status == 200, body
    assert _annotation(world, ANNOTATION_START) is not None


def _viewer_kubeconfig(world: World, kubeconfig: Path, folder: Path) -> Path:
    """A kubeconfig for a service account that may read the namespace's scale sets and pods
    but not change them."""
    rbac = client.RbacAuthorizationV1Api(world.api)
    ns = world.namespace
    world.core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="viewer"))
    )
    rules = [
        client.V1PolicyRule(
            api_groups=["scaleset.dev"], resources=["scalesets"], verbs=["get", "list", "watch"]
        ),
        client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"]),
    ]
    rbac.create_namespaced_role(
        ns, client.V1Role(metadata=client.V1ObjectMeta(name="viewer"), rules=rules)
    )
    rbac.create_namespaced_role_binding(
        ns,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="viewer"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="viewer"
            ),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="viewer", namespace=ns)],
        ),
    )
    answer = world.core.create_namespaced_service_account_token(
        "viewer",
        ns,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                audiences=[SERVICE_ACCOUNT_ISSUER], expiration_seconds=600
            )
        ),
    )
    assert answer.status is not None
    token = answer.status.token
    config = yaml.safe_load(kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path = folder / "viewer.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_user_without_permission_sees_the_apis_403_on_the_page(
    world: World, kubeconfig: Path, page: Any, tmp_path: Path
) -> None:
    world.publish("1.0.0")
    world.create(world.scaleset_body(capacity=2))
    world.wait_ready(capacity=2)
    viewer = _viewer_kubeconfig(world, kubeconfig, tmp_path)
    proc = DashboardProcess(viewer, tmp_path / "viewer-dashboard.log", ("-n", world.namespace))
    proc.start()
    try:
        page.goto(proc.page_url(world.namespace))
        expect(page.locator(".tile")).to_have_count(2, timeout=10_000)
        # The catalog is cluster-scoped and not granted: the page says so and carries on.
        expect(page.locator("#watch-errors")).to_contain_text("imageversions", timeout=10_000)
        _confirm(page, page.locator("#start"))
        message = page.locator("#message")
        expect(message).to_contain_text("refused (403)", timeout=10_000)
        expect(message).to_contain_text('cannot patch resource "scalesets"')
        assert _annotation(world, ANNOTATION_START) is None
    finally:
        proc.stop()


def test_graphs_from_prometheus_follow_the_upgrade(
    world: World, operator: OperatorProcess, kubeconfig: Path, page: Any, tmp_path: Path
) -> None:
    tool, _ = binaries()
    prometheus = PrometheusProcess(tool, tmp_path, [f"127.0.0.1:{operator.metrics_port}"])
    prometheus.start()
    proc = DashboardProcess(
        kubeconfig,
        tmp_path / "dashboard.log",
        ("-n", world.namespace, "--prometheus", prometheus.url),
    )
    proc.start()
    try:
        world.publish("1.0.0")
        world.create(world.scaleset_body(capacity=4))
        world.wait_ready(capacity=4)
        prometheus.scraped_since(time.time())
        page.goto(proc.page_url(world.namespace))
        expect(page.locator("#graphs-panel")).to_be_visible(timeout=10_000)
        world.publish("1.1.0")
        expect(page.locator("#upgrade-state")).to_have_text("Completed", timeout=60_000)
        # Drawn from the Grafana dashboard's queries, proxied by the dashboard server.
        versions = page.locator('svg.graph[data-panel="versions"]')
        expect(versions.locator('path[data-series="1.1.0"]')).to_have_count(1, timeout=30_000)
        expect(versions.locator('path[data-series="1.0.0"]')).to_have_count(1)
        progress = page.locator('svg.graph[data-panel="progress"]')
        expect(progress.locator('path[data-series="successful"]')).to_have_count(1)
        ready = page.locator('svg.graph[data-panel="instances"] path[data-series="ready"]')
        expect(ready).to_have_count(1)
    finally:
        proc.stop()
        prometheus.stop()
