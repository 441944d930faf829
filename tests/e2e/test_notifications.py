"""Webhook notifications end to end: an operator with `--notify-url` and a receiver on
127.0.0.1 that checks every signature; the receiver goes down and comes back, and the operator
is killed between a fault (or a wave's stage) and its delivery."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from scaleset_operator.notifications.wire import SIGNATURE_HEADER, verify
from tests.e2e.helm import CHART, Helm
from tests.e2e.support import OperatorProcess, World, eventually, free_port

KEY = b"e2e-signing-key"
UPGRADE = "dev.scaleset.upgrade"


class Receiver:
    """A webhook on 127.0.0.1 that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                signed = verify(KEY, body, self.headers.get(SIGNATURE_HEADER) or "")
                with receiver._lock:
                    if signed:
                        receiver.events.append(json.loads(body))
                    else:
                        receiver.bad_signatures += 1
                self.send_response(204 if signed else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def types(self, namespace: str) -> list[str]:
        """Event types of one namespace's scale sets, in arrival order, duplicates dropped by
        id (delivery is at least once)."""
        seen: dict[str, str] = {}
        with self._lock:
            for event in self.events:
                if (event["data"].get("scaleSet") or {}).get("namespace") == namespace:
                    seen.setdefault(event["id"], event["type"])
        return list(seen.values())

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["type"] == f"{UPGRADE}.{kind}"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.stop()


@pytest.fixture
def notifying(
    kubeconfig: Path, operator: OperatorProcess, namespace: str, receiver: Receiver, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator for this namespace only, sending to the receiver; the session's operator
    serves every namespace and must not act meanwhile."""
    secret = tmp_path / "signing-key"
    secret.write_bytes(KEY + b"\n")
    operator.stop()
    proc = OperatorProcess(
        kubeconfig,
        tmp_path,
        *("--namespace", namespace),
        *("--notify-url", receiver.url),
        *("--notify-secret-file", str(secret)),
        *("--notify-backoff-cap", "1"),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        operator.start()


def _metric(proc: OperatorProcess, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.metrics_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


def _sink_failing(world: World) -> bool:
    found = world.core.list_namespaced_event(
        world.namespace, field_selector="reason=NotificationSinkFailing"
    ).items
    return any(e.type == "Warning" for e in found)


def _body(world: World) -> dict[str, Any]:
    # Two batches of two; a short health timeout set through the API keeps the fault quick.
    return world.scaleset_body(
        capacity=4,
        rolling={"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50},
        health_timeout="PT5S",
    )


def _fail_upgrade(world: World) -> dict[str, Any]:
    world.publish("2.0.0", image="example.test/os:bad-2.0.0")
    return world.wait_upgrade_code("Faulted", timeout=90)


def test_upgrade_and_failed_upgrade_reach_the_webhook(
    world: World, receiver: Receiver, notifying: OperatorProcess
) -> None:
    receiver.start()
    world.publish("1.0.0")
    world.create(
        world.scaleset_body(
            capacity=4,
            rolling={"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50},
            health_timeout="PT5S",
        )
    )
    world.wait_ready(capacity=4)
    world.publish("1.1.0")
    world.wait_upgrade_code("Completed")
    done = [f"{UPGRADE}.started", f"{UPGRADE}.completed"]
    eventually(lambda: receiver.types(world.namespace) == done, 30, what="completed run")

    # The receiver is down while the next upgrade fails; its events wait and arrive later.
    receiver.stop()
    status = _fail_upgrade(world)
    failed = sorted(status["upgradeRun"]["rolledBack"])
    assert failed
    eventually(lambda: _sink_failing(world), 30, what="a NotificationSinkFailing event")
    assert _metric(notifying, "scaleset_notification_failures_total") >= 5
    receiver.start()
    expected = [
        *done,
        f"{UPGRADE}.started",
        *[f"{UPGRADE}.instance.rolledback"] * len(failed),
        f"{UPGRADE}.faulted",
        f"{UPGRADE}.version.quarantined",
    ]
    eventually(lambda: receiver.types(world.namespace) == expected, 30, what="faulted run")
    assert receiver.bad_signatures == 0

    (faulted,) = receiver.of_type("faulted")
    assert faulted["data"]["cause"] == status["upgradeRun"]["stopReason"]["code"]
    assert [i["id"] for i in faulted["data"]["instances"]] == failed
    assert {i["outcome"] for i in faulted["data"]["instances"]} == {"RolledBack"}
    assert faulted["data"]["targetVersion"] == "2.0.0"
    rolled = sorted(e["data"]["instanceId"] for e in receiver.of_type("instance.rolledback"))
    assert rolled == failed
    (quarantined,) = receiver.of_type("version.quarantined")
    assert quarantined["data"]["version"] == "2.0.0"
    assert _metric(notifying, "scaleset_notifications_sent_total") >= len(expected)


def test_operator_killed_before_delivering_a_fault_sends_it_after_restart(
    world: World, receiver: Receiver, notifying: OperatorProcess
) -> None:
    world.publish("1.0.0")
    world.create(
        world.scaleset_body(
            capacity=4,
            rolling={"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50},
            health_timeout="PT5S",
        )
    )
    world.wait_ready(capacity=4)
    # The baseline is on record before anything happens that must be told.
    eventually(
        lambda: "scaleset.dev/notified" in (world.get()["metadata"].get("annotations") or {}),
        30,
        what="the notification record",
    )
    _fail_upgrade(world)
    eventually(
        lambda: _metric(notifying, "scaleset_notification_failures_total") > 0, 30, what="a retry"
    )
    notifying.kill()
    receiver.start()
    notifying.start()
    eventually(lambda: receiver.of_type("faulted"), 60, what="the faulted event after restart")
    assert f"{UPGRADE}.faulted" in receiver.types(world.namespace)
    assert receiver.bad_signatures == 0
    (faulted,) = {e["id"]: e for e in receiver.of_type("faulted")}.values()
    assert faulted["data"]["instances"]
    assert faulted["data"]["cause"]

    def recorded() -> str:
        return str((world.get()["metadata"].get("annotations") or {})["scaleset.dev/notified"])

    # The acknowledgement is on record: a further restart would not send the fault again.
    eventually(lambda: "#4.0" in recorded(), 30, what="the quarantine acknowledged")


GROUP, VERSION, WAVES = "scaleset.dev", "v1alpha1", "upgradewaves"


@pytest.fixture
def wave(world: World) -> Iterator[str]:
    """Stage test (soaks 3 s), then stage production; selectors only this test's scale sets
    carry (waves are cluster-scoped and see every namespace)."""
    name = f"notify-{world.namespace}"[:63]
    suite = {"suite": world.namespace}
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "UpgradeWave",
        "metadata": {"name": name},
        "spec": {
            "stages": [
                {
                    "name": "test",
                    "selector": {"matchLabels": {"ring": "test", **suite}},
                    "soakTime": "PT3S",
                },
                {
                    "name": "production",
                    "selector": {"matchLabels": {"ring": "prod", **suite}},
                    "soakTime": "PT0S",
                },
            ]
        },
    }
    world.custom.create_cluster_custom_object(GROUP, VERSION, WAVES, body)
    yield name
    with contextlib.suppress(client.ApiException):
        world.custom.delete_cluster_custom_object(GROUP, VERSION, WAVES, name)


def _wave(world: World, name: str) -> dict[str, Any]:
    return dict(world.custom.get_cluster_custom_object(GROUP, VERSION, WAVES, name))


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _wave_record(world: World, name: str, version: str) -> dict[str, Any] | None:
    for record in (_wave(world, name).get("status") or {}).get("versions") or []:
        if record.get("version") == version:
            return dict(record)
    return None


def test_a_version_reaching_the_next_stage_of_a_wave_is_told_once_across_a_restart(
    world: World, receiver: Receiver, wave: str, notifying: OperatorProcess
) -> None:
    # The receiver is down until the operator that saw the stage advance is killed.
    world.publish("1.0.0")
    for name, ring in (("canary", "test"), ("web", "prod")):
        body = world.scaleset_body(
            name,
            capacity=2,
            rolling={"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50},
        )
        body["metadata"]["labels"] = {"ring": ring, "suite": world.namespace}
        world.create(body)
    world.wait_ready("canary", capacity=2)
    world.wait_ready("web", capacity=2)
    # The wave's baseline is on record before the version that must be told is published.
    eventually(
        lambda: (
            "scaleset.dev/notified" in (_wave(world, wave)["metadata"].get("annotations") or {})
        ),
        30,
        what="the wave's notification record",
    )
    world.publish("1.1.0")
    done = eventually(
        lambda: (r := _wave_record(world, wave, "1.1.0")) and r["phase"] == "Completed" and r,
        150,
        what="1.1.0 Completed in the wave",
    )
    # Killed with the stage on record but not delivered: the next operator derives it again.
    notifying.kill()
    receiver.start()
    notifying.start()

    def told() -> list[dict[str, Any]]:
        return [
            e for e in receiver.of_type("wave.stageadvanced") if e["data"]["version"] == "1.1.0"
        ]

    eventually(told, 60, what="the stage-advanced event after restart")
    time.sleep(3)  # anything sent twice would have arrived by now
    (event,) = told()
    assert receiver.bad_signatures == 0
    assert event["subject"] == wave
    assert event["source"] == f"/apis/{GROUP}/{VERSION}/{WAVES}/{wave}"
    reached = done["stages"][1]
    assert event["data"] == {
        "wave": {"name": wave},
        "image": f"{world.publisher}:os:stable",
        "version": "1.1.0",
        "stage": "production",
        "fromStage": "test",
        "admittedAt": reached["admittedAt"],
        "fromStageCompletedAt": done["stages"][0]["completedAt"],
    }
    assert _instant(event["time"]) == _instant(reached["admittedAt"])

    def recorded() -> str:
        annotations = _wave(world, wave)["metadata"].get("annotations") or {}
        return str(annotations["scaleset.dev/notified"])

    # The acknowledgement is on the wave: a further restart would not send it again.
    eventually(lambda: "1.1.0#1.1" in recorded(), 30, what="the stage acknowledged")


def test_chart_turns_sinks_into_flags_and_secret_mounts(kubeconfig: Path, tmp_path: Path) -> None:
    helm = Helm(kubeconfig, tmp_path)
    values = {
        "notifications": {
            "sinks": [
                {"url": "https://hooks.example/a?x=1&y=2", "secretName": "hook-a"},
                {"url": "http://plain.example:8080/b"},
            ],
            "backoffCapSeconds": 5,
        }
    }
    docs = helm.template("-f", helm.values_file("notify", values))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[args.index("--notify-url=https://hooks.example/a?x=1&y=2") :][:5] == [
        "--notify-url=https://hooks.example/a?x=1&y=2",
        "--notify-secret-file=/etc/scaleset-operator/notify/0/key",
        "--notify-url=http://plain.example:8080/b",
        "--notify-secret-file=",
        "--notify-backoff-cap=5",
    ]
    (volume,) = [v for v in pod["volumes"] if v["name"].startswith("notify-key")]
    assert volume["secret"]["secretName"] == "hook-a"
    assert volume["secret"]["items"] == [{"key": "key", "path": "key"}]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {
        "name": volume["name"],
        "mountPath": "/etc/scaleset-operator/notify/0",
        "readOnly": True,
    }
    # The schema refuses what the operator would refuse at start.
    bad = {"notifications": {"sinks": [{"url": "ftp://hooks.example/"}]}}
    result = helm("template", "rel", str(CHART), "-f", helm.values_file("bad", bad), check=False)
    assert result.returncode != 0
    assert "notifications" in result.stderr
    assert not any(a.startswith("--notify") for a in _default_args(helm))


def _default_args(helm: Helm) -> list[str]:
    docs = helm.template()
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    return list(deploy["spec"]["template"]["spec"]["containers"][0]["args"])
