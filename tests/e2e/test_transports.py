"""The operator's own HTTP transport (`k8s.wire`) against the real API server, beside the
``kubernetes`` client's urllib3 transport it replaces on the hot path: the same answers, the
same error classes, the same watch lines, with a bearer token and with a client certificate."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client

from scaleset_operator.k8s.client import KubeClient, make_api_client
from scaleset_operator.k8s.errors import ConflictError, InvalidError, NotFoundError
from scaleset_operator.localcluster.cluster import LocalCluster

Obj = dict[str, Any]


def _pod(name: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "wire"}},
        "spec": {"containers": [{"name": "os", "image": "registry.test/os:1.0"}]},
    }


@pytest.mark.parametrize("transport", ["wire", "client"])
def test_both_transports_read_write_fail_and_watch_alike(
    kubeconfig: Path, namespace: str, transport: str
) -> None:
    kube = KubeClient(make_api_client(str(kubeconfig)), transport=transport)
    assert (kube._transport.wire is not None) == (transport == "wire")
    pods = f"/api/v1/namespaces/{namespace}/pods"
    made = kube.create_pod(namespace, _pod("a"))
    uid = made["metadata"]["uid"]
    patched = kube.json_patch_pod(
        namespace,
        "a",
        [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "add", "path": "/metadata/labels/step", "value": "one"},
        ],
    )
    assert patched["metadata"]["labels"]["step"] == "one"
    listed = kube.list_pods(namespace, "app=wire")
    assert [p["metadata"]["name"] for p in listed] == ["a"]
    with pytest.raises(NotFoundError):
        kube.request("GET", f"{pods}/nosuch")
    with pytest.raises(InvalidError):
        kube.json_patch_pod(namespace, "a", [{"op": "test", "path": "/metadata/uid", "value": "x"}])
    stale = dict(made, metadata={**made["metadata"], "labels": {"app": "wire", "x": "y"}})
    with pytest.raises(ConflictError):
        kube.request("PUT", f"{pods}/a", body=stale)
    version = kube.request("GET", pods)["metadata"]["resourceVersion"]
    kube.create_pod(namespace, _pod("b"))
    kube.delete_pod(namespace, "b", "")
    query = [("watch", "1"), ("resourceVersion", version), ("timeoutSeconds", "3")]
    events = [_event(line) for line in kube.stream_lines(pods, query, read_timeout=30)]
    assert [e for e in events if e[1] == "b"][:2] == [("ADDED", "b"), ("MODIFIED", "b")]
    assert ("DELETED", "b") in events


def _event(line: bytes) -> tuple[str, str]:
    event = orjson.loads(line)
    return event["type"], event["object"]["metadata"]["name"]


def _client_certificate(cluster: LocalCluster, folder: Path) -> Path:
    """A kubeconfig whose user is a client certificate the cluster's CA signed."""
    key, csr, cert = folder / "user.key", folder / "user.csr", folder / "user.crt"
    subject = "/O=system:masters/CN=wire-test"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl = ["openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", subject]
    subprocess.run(openssl, check=True, capture_output=True)
    ca = ["-CA", str(cluster.pki.ca_cert), "-CAkey", str(cluster.pki.ca_key)]
    sign = ["openssl", "x509", "-req", "-in", str(csr), *ca, "-out", str(cert), "-days", "1"]
    subprocess.run(sign, check=True, capture_output=True)
    kubeconfig = folder / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {{server: "{cluster.server}", certificate-authority: "{cluster.pki.ca_cert}"}}
users:
- name: wire-test
  user: {{client-certificate: "{cert}", client-key: "{key}"}}
contexts:
- name: local
  context: {{cluster: local, user: wire-test}}
current-context: local
"""
    )
    return kubeconfig


def test_a_client_certificate_identity_is_presented_over_our_transport(
    cluster: LocalCluster, kube_api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    kube = KubeClient(make_api_client(str(_client_certificate(cluster, tmp_path))))
    assert kube._transport.wire is not None
    client.CoreV1Api(kube_api).create_namespaced_pod(namespace, _pod("seen"))
    names = [p["metadata"]["name"] for p in kube.list_pods(namespace, "app=wire")]
    assert names == ["seen"]
    review = kube.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert review["status"]["userInfo"]["username"] == "wire-test"
