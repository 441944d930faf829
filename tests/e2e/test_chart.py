"""The Helm chart against a real API server: lint and render, install into a namespace that
enforces the `restricted` Pod Security Standard, run the operator with nothing but the chart's
ServiceAccount token through a whole upgrade, then `helm upgrade` and `helm uninstall`.

kwok plays the kubelet, so the chart's own operator pod is admitted and "runs" without
executing; the operator that does the work here is a local process holding the chart's token.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from scaleset_operator.cli.operator.demo_realnodes import RESTRICTED
from scaleset_operator.localcluster import find_binary
from tests.e2e.helm import CHART, Helm
from tests.e2e.support import OperatorProcess, World, eventually

# Everything off by default, everything on: the two ends of the values.
ALL_ON = {
    "watchNamespaces": ["team-a", "team-b"],
    "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
    "grafanaDashboard": {"enabled": True, "labels": {"team": "platform"}},
    "operator": {"upgradeDelaySeconds": 30, "failFast": False, "logFormat": "text"},
    "podAnnotations": {"example.test/owner": "platform"},
}
# Minimal stand-ins for prometheus-operator's CRDs, so ServiceMonitor and PrometheusRule
# objects can be created (their content is checked by rendering, not by this schema).
MONITORING_KINDS = {"servicemonitors": "ServiceMonitor", "prometheusrules": "PrometheusRule"}


# --- helpers -------------------------------------------------------------------------------


def _kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def _rules(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [rule for d in docs if d["kind"] == kind for rule in d["rules"]]


def _no_wildcards(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule.get(key, []), rule


@dataclass
class Release:
    name: str
    namespace: str  # where the operator runs (PSA restricted)
    watched: str  # the one namespace it manages
    service_account: str


# --- rendering -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(kubeconfig, tmp_path_factory.mktemp("helm"))


def test_lint_default_and_all_on(helm: Helm) -> None:
    helm("lint", "--strict", str(CHART))
    helm("lint", "--strict", str(CHART), "-f", helm.values_file("all-on", ALL_ON))


def test_template_default_is_cluster_wide_with_no_optional_objects(helm: Helm) -> None:
    docs = helm.template()
    assert _kinds(docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    rules = _rules(docs, "ClusterRole")
    _no_wildcards(rules)
    assert any("pods" in r["resources"] for r in rules)
    assert not any("secrets" in r["resources"] for r in rules)
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "scaleset-operator:0.1.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert not any(a.startswith("--namespace") for a in container["args"])


def test_template_all_on_is_namespaced_with_every_optional_object(helm: Helm) -> None:
    docs = helm.template("-f", helm.values_file("all-on", ALL_ON))
    assert _kinds(docs) == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "PrometheusRule",
            *["Role"] * 2,
            *["RoleBinding"] * 2,
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ]
    )
    # Cluster-wide only what is cluster-scoped; pods and the rest per watched namespace.
    cluster_rules = _rules(docs, "ClusterRole")
    assert {r for rule in cluster_rules for r in rule["resources"]} == {
        "imageversions",
        "upgradewaves",
        "upgradewaves/status",
        "nodes",
        "customresourcedefinitions",
        "namespaces",
    }
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    _no_wildcards(cluster_rules + _rules(docs, "Role"))

    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert {"--namespace=team-a", "--namespace=team-b", "--no-fail-fast"} <= set(container["args"])

    dashboards = next(d for d in docs if d["kind"] == "ConfigMap")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards["metadata"]["labels"]["team"] == "platform"
    for name, text in dashboards["data"].items():
        assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text())

    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    expected = [
        group
        for path in sorted((CHART / "rules").glob("*.yaml"))
        for group in yaml.safe_load(path.read_text())["groups"]
    ]
    assert rule["spec"]["groups"] == expected
    monitor = next(d for d in docs if d["kind"] == "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["interval"] == "15s"


def test_template_refuses_a_service_monitor_without_its_service(helm: Helm) -> None:
    result = helm(
        "template",
        "rel",
        str(CHART),
        "--set",
        "serviceMonitor.enabled=true,metrics.service.enabled=false",
        check=False,
    )
    assert result.returncode != 0
    assert "metrics.service.enabled" in result.stderr


# --- installing ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitoring_crds(api_client: client.ApiClient) -> Iterator[None]:
    ext = client.ApiextensionsV1Api(api_client)
    created: list[str] = []
    for plural, kind in MONITORING_KINDS.items():
        name = f"{plural}.monitoring.coreos.com"
        try:
            ext.read_custom_resource_definition(name)
            continue
        except client.ApiException as exc:
            if exc.status != 404:
                raise
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        ext.create_custom_resource_definition(
            {
                "metadata": {"name": name},
                "spec": {
                    "group": "monitoring.coreos.com",
                    "scope": "Namespaced",
                    "names": {"plural": plural, "kind": kind, "singular": kind.lower()},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {"openAPIV3Schema": schema},
                        }
                    ],
                },
            }
        )
        created.append(name)

    def established() -> bool:
        for plural in MONITORING_KINDS:
            crd = ext.read_custom_resource_definition(f"{plural}.monitoring.coreos.com")
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") != "True":
                return False
        return True

    eventually(established, 30, what="monitoring CRDs established")
    yield
    for name in created:
        ext.delete_custom_resource_definition(name)


def _new_namespace(core: client.CoreV1Api, stem: str, labels: dict[str, str]) -> str:
    name = f"t-chart-{stem}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": name, "labels": labels}})
    return name


@pytest.fixture(scope="module")
def release(
    helm: Helm, api_client: client.ApiClient, crds_installed: None, monitoring_crds: None
) -> Iterator[Release]:
    """The chart installed in namespaced mode, every optional object on, in a restricted
    namespace, managing one other namespace."""
    core = client.CoreV1Api(api_client)
    namespace = _new_namespace(core, "ops", RESTRICTED)
    watched = _new_namespace(core, "apps", {})
    name = "ops"
    values = {
        "watchNamespaces": [watched],
        "operator": {"upgradeDelaySeconds": 0.5},
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    }
    helm(
        "install", name, str(CHART), "--namespace", namespace,
        "-f", helm.values_file("release", values),
    )  # fmt: skip
    yield Release(name, namespace, watched, service_account=f"{name}-scaleset-operator")
    helm("uninstall", name, "--namespace", namespace, check=False)
    for ns in (namespace, watched):
        core.delete_namespace(ns, propagation_policy="Background")


def _operator_pods(core: client.CoreV1Api, rel: Release) -> list[client.V1Pod]:
    return list(
        core.list_namespaced_pod(
            rel.namespace, label_selector=f"app.kubernetes.io/instance={rel.name}"
        ).items
    )


def _running(pod: client.V1Pod) -> bool:
    return pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None


def test_operator_pod_is_admitted_under_restricted(
    release: Release, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    pods = eventually(
        lambda: [p for p in _operator_pods(core, release) if _running(p)],
        60,
        what="the chart's operator pod running",
    )
    assert len(pods) == 1
    spec = pods[0].spec
    assert spec.service_account_name == release.service_account
    assert spec.security_context.run_as_non_root is True
    assert spec.containers[0].security_context.capabilities.drop == ["ALL"]

    # The namespace does enforce `restricted`: the same pod made privileged is refused.
    body = api_client.sanitize_for_serialization(pods[0])
    body["metadata"] = {"generateName": "psa-probe-"}
    body.pop("status", None)
    body["spec"].pop("nodeName", None)
    body["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(release.namespace, body, dry_run="All")
    assert refused.value.status == 403
    assert "PodSecurity" in str(refused.value.body)


def _can_i(kubeconfig: Path, rel: Release, *args: str) -> bool:
    kubectl = find_binary("kubectl")
    assert kubectl is not None
    sa = f"system:serviceaccount:{rel.namespace}:{rel.service_account}"
    result = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "auth", "can-i", *args, f"--as={sa}"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_service_account_can_do_what_the_operator_needs_and_no_more(
    release: Release, kubeconfig: Path, api_client: client.ApiClient
) -> None:
    w, ops = release.watched, release.namespace
    needed = [
        ("create", "pods", "-n", w),
        ("delete", "pods", "-n", w),
        ("watch", "pods", "-n", w),
        ("update", "scalesets.scaleset.dev", "--subresource=status", "-n", w),
        ("patch", "scalesets.scaleset.dev", "-n", w),
        ("create", "persistentvolumeclaims", "-n", w),
        ("list", "endpointslices.discovery.k8s.io", "-n", w),
        ("watch", "endpointslices.discovery.k8s.io", "-n", w),
        ("create", "events", "-n", w),
        ("watch", "imageversions.scaleset.dev"),
        ("watch", "upgradewaves.scaleset.dev"),
        ("update", "upgradewaves.scaleset.dev", "--subresource=status"),
        ("patch", "upgradewaves.scaleset.dev"),
        ("list", "nodes"),
        ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
        ("watch", "namespaces"),
    ]
    for args in needed:
        assert _can_i(kubeconfig, release, *args), args
    too_much = [
        ("*", "*"),
        ("*", "*", "-n", w),
        ("get", "secrets", "-n", w),
        ("list", "secrets", "-n", ops),
        ("list", "secrets", "--all-namespaces"),
        ("list", "pods", "--all-namespaces"),
        ("create", "pods", "-n", ops),
        ("list", "pods", "-n", "default"),
        ("patch", "nodes"),
        ("delete", "nodes"),
        ("delete", "persistentvolumeclaims", "-n", w),
        ("update", "scalesets.scaleset.dev", "-n", w),
        ("delete", "scalesets.scaleset.dev", "-n", w),
        ("create", "imageversions.scaleset.dev"),
        ("delete", "imageversions.scaleset.dev"),
        ("create", "upgradewaves.scaleset.dev"),
        ("update", "upgradewaves.scaleset.dev"),
        ("update", "customresourcedefinitions.apiextensions.k8s.io"),
        ("delete", "namespaces"),
        ("get", "namespaces", "default"),
        ("create", "roles.rbac.authorization.k8s.io", "-n", w),
        ("create", "serviceaccounts", "--subresource=token", "-n", ops),
    ]
    for args in too_much:
        assert not _can_i(kubeconfig, release, *args), args

    rbac = client.RbacAuthorizationV1Api(api_client)
    rules = rbac.read_cluster_role(f"{release.name}-scaleset-operator").rules
    rules += rbac.read_namespaced_role(f"{release.name}-scaleset-operator", w).rules
    _no_wildcards([api_client.sanitize_for_serialization(r) for r in rules])


def _service_account_kubeconfig(
    admin_kubeconfig: Path, api_client: client.ApiClient, rel: Release, path: Path
) -> Path:
    token = (
        client.CoreV1Api(api_client)
        .create_namespaced_service_account_token(
            rel.service_account,
            rel.namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
            ),
        )
        .status.token
    )
    config = yaml.safe_load(admin_kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def test_operator_upgrades_with_only_the_chart_permissions(
    release: Release,
    kubeconfig: Path,
    api_client: client.ApiClient,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    sa_kubeconfig = _service_account_kubeconfig(
        kubeconfig, api_client, release, tmp_path / "sa.kubeconfig"
    )
    # The session's admin operator serves every namespace; it must not act on this one.
    operator.stop()
    scoped = OperatorProcess(sa_kubeconfig, tmp_path, "--namespace", release.watched)
    world = World(api_client, release.watched)
    try:
        scoped.start()
        world.publish("1.0.0")
        world.create(world.scaleset_body(capacity=4, disks=True))
        world.wait_ready(capacity=4)
        world.publish("1.1.0")
        status = world.wait_upgrade_code("Completed")
        assert status["currentImageVersion"] == "1.1.0"
        assert set(world.images().values()) == {"example.test/os:1.1.0"}
        assert len(world.claims()) == 4
        assert scoped.alive()
    finally:
        scoped.stop()
        world.cleanup()
        operator.start()
    log = "\n".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("operator-*.log")))
    assert "Forbidden" not in log
    assert " 403" not in log


def test_helm_upgrade_applies_changed_values(
    release: Release, helm: Helm, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    before = eventually(
        lambda: [p for p in _operator_pods(core, release) if _running(p)], 60, what="pod"
    )[0]
    extra = _new_namespace(core, "more", {})
    try:
        helm(
            "upgrade", release.name, str(CHART), "--namespace", release.namespace,
            "--reuse-values",
            "--set", f"watchNamespaces={{{release.watched},{extra}}}",
            "--set", "operator.logFormat=text,operator.failFast=false",
        )  # fmt: skip
        deploy = client.AppsV1Api(api_client).read_namespaced_deployment(
            f"{release.name}-scaleset-operator", release.namespace
        )
        args = deploy.spec.template.spec.containers[0].args
        assert {f"--namespace={extra}", "--log-format=text", "--no-fail-fast"} <= set(args)
        assert "--upgrade-delay=0.5" in args  # kept by --reuse-values
        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.read_namespaced_role(f"{release.name}-scaleset-operator", extra)
        rbac.read_namespaced_role_binding(f"{release.name}-scaleset-operator", extra)

        # Recreate: the old pod goes, one new pod with the new arguments takes its place.
        def replaced() -> list[client.V1Pod] | None:
            pods = _operator_pods(core, release)
            if any(p.metadata.uid == before.metadata.uid for p in pods):
                return None
            return [p for p in pods if _running(p)]

        after = eventually(replaced, 90, what="the operator pod replaced")
        assert len(after) == 1
        assert after[0].spec.containers[0].args == args
    finally:
        helm(
            "upgrade", release.name, str(CHART), "--namespace", release.namespace,
            "--reuse-values", "--set", f"watchNamespaces={{{release.watched}}}",
        )  # fmt: skip
        core.delete_namespace(extra, propagation_policy="Background")


def test_helm_uninstall_leaves_only_the_crds(
    helm: Helm, api_client: client.ApiClient, crds_installed: None, monitoring_crds: None
) -> None:
    """Helm never deletes what it installed from crds/ (deleting a CRD deletes every custom
    object of that kind), so the CRDs stay; everything from templates/ goes."""
    core = client.CoreV1Api(api_client)
    namespace = _new_namespace(core, "gone", RESTRICTED)
    watched = _new_namespace(core, "gone-apps", {})
    name = "gone"
    selector = f"app.kubernetes.io/instance={name}"
    values = {
        "watchNamespaces": [watched],
        "serviceMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboard": {"enabled": True},
    }
    try:
        helm(
            "install", name, str(CHART), "--namespace", namespace,
            "-f", helm.values_file("gone", values),
        )  # fmt: skip
        custom = client.CustomObjectsApi(api_client)

        def leftovers() -> list[str]:
            found: list[str] = []
            for ns in (namespace, watched):
                for kind, items in [
                    ("Deployment", client.AppsV1Api(api_client).list_namespaced_deployment),
                    ("ServiceAccount", core.list_namespaced_service_account),
                    ("Service", core.list_namespaced_service),
                    ("ConfigMap", core.list_namespaced_config_map),
                    ("Pod", core.list_namespaced_pod),
                    ("Role", client.RbacAuthorizationV1Api(api_client).list_namespaced_role),
                    (
                        "RoleBinding",
                        client.RbacAuthorizationV1Api(api_client).list_namespaced_role_binding,
                    ),
                ]:
                    found += [
                        f"{kind}/{o.metadata.name}"
                        for o in items(ns, label_selector=selector).items
                    ]
                for plural in MONITORING_KINDS:
                    objs = custom.list_namespaced_custom_object(
                        "monitoring.coreos.com", "v1", ns, plural, label_selector=selector
                    )["items"]
                    found += [f"{plural}/{o['metadata']['name']}" for o in objs]
            rbac = client.RbacAuthorizationV1Api(api_client)
            found += [
                f"ClusterRole/{o.metadata.name}"
                for o in rbac.list_cluster_role(label_selector=selector).items
            ]
            found += [
                f"ClusterRoleBinding/{o.metadata.name}"
                for o in rbac.list_cluster_role_binding(label_selector=selector).items
            ]
            return found

        installed = set(leftovers())
        for kind in ("Deployment", "ServiceAccount", "Service", "ConfigMap", "Role", "RoleBinding"):
            assert any(item.startswith(f"{kind}/") for item in installed), kind
        assert {
            "ClusterRole/gone-scaleset-operator",
            "ClusterRoleBinding/gone-scaleset-operator",
            "servicemonitors/gone-scaleset-operator",
            "prometheusrules/gone-scaleset-operator",
        } <= installed

        helm("uninstall", name, "--namespace", namespace, "--wait", "--timeout", "90s")
        eventually(lambda: not leftovers() or None, 60, what="no objects of the release left")
        assert helm("status", name, "--namespace", namespace, check=False).returncode != 0

        ext = client.ApiextensionsV1Api(api_client)
        for crd in ("scalesets.scaleset.dev", "imageversions.scaleset.dev"):
            assert ext.read_custom_resource_definition(crd).metadata.name == crd
    finally:
        helm("uninstall", name, "--namespace", namespace, check=False)
        for ns in (namespace, watched):
            core.delete_namespace(ns, propagation_policy="Background")
