"""The plugin's rendering, without a cluster: Azure-shaped JSON against Azure's own schemas,
tables, instance health and latestModelApplied, merge patches, names and id parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker
from rich.console import Console

from scaleset_operator.cli.plugin.instances import choose, parse_instance_ids
from scaleset_operator.cli.plugin.main import cli
from scaleset_operator.cli.plugin.update import merge_patch
from scaleset_operator.cli.views.azure import ROLLING_UPGRADES_TYPE, history_envelope, latest_info
from scaleset_operator.cli.views.images import image_rows, images_table, object_name
from scaleset_operator.cli.views.output import document, key_values, table
from scaleset_operator.cli.views.progress import progress_view
from scaleset_operator.cli.views.tables import (
    history_table,
    instance_row,
    instances_table,
    latest_model_applied,
    latest_table,
    scaleset_document,
    waiting_text,
)
from scaleset_operator.models.imageversion import CatalogEntry, ImageVersionSpec
from scaleset_operator.models.instance import ContainerState, Instance
from scaleset_operator.models.scaleset import ScaleSetSpec
from scaleset_operator.models.status import (
    ApiError,
    ApiErrorBase,
    Condition,
    HistoryEntry,
    HistoryRunningStatus,
    InnerError,
    Progress,
    ResolvedImage,
    RollbackInfo,
    RollingRunningStatus,
    RollingUpgradeStatus,
    ScaleSetStatus,
    StartedBy,
    TargetImageReference,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "azure-schema"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    # jsonschema only checks date-time with an optional package; RFC 3339 needs a zone.
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    return Draft202012Validator(schema, format_checker=FORMATS)


def no_nulls(doc: Any) -> bool:
    if isinstance(doc, dict):
        return all(v is not None and no_nulls(v) for v in doc.values())
    if isinstance(doc, list):
        return all(no_nulls(v) for v in doc)
    return doc is not None


MODEL = ResolvedImage(
    publisher="Canonical", offer="ubuntu", sku="22_04-lts", version="1.2.4", container_image="os:4"
)
FAULT = ApiError(
    code="MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade",
    message="2 of 5 upgraded instances are unhealthy",
    target="web",
    details=[
        ApiErrorBase(code="RollingUpgradeTimeoutError", message="web-3 not healthy"),
        ApiErrorBase(code="ImagePullBackOff", target="instance 4", message="ImagePullBackOff"),
    ],
    innererror=InnerError(exceptiontype="HealthTimeout", errordetail="PT5M passed"),
)
HISTORY = [
    HistoryEntry(
        running_status=HistoryRunningStatus(
            code="Faulted", start_time="2026-03-01T11:00:00Z", end_time="2026-03-01T11:09:00Z"
        ),
        progress=Progress(successful_instance_count=3, failed_instance_count=2),
        error=FAULT,
        started_by=StartedBy.PLATFORM,
        target_image_reference=MODEL.target_reference(),
        rollback_info=RollbackInfo(
            successfully_rolledback_instance_count=2,
            failed_rolledback_instance_count=0,
            rollback_error=ApiError(code="None", message="nothing failed"),
        ),
    ),
    HistoryEntry(
        running_status=HistoryRunningStatus(code="Completed", start_time="2026-02-01T10:00:00Z"),
        started_by=StartedBy.USER,
        target_image_reference=TargetImageReference(
            id="galleries/shared/images/web/versions/2.0.0", version="2.0.0"
        ),
    ),
    HistoryEntry(running_status=HistoryRunningStatus(code="RollingForward")),
]
LATEST = RollingUpgradeStatus.model_validate(
    {
        "policy": {"maxBatchInstancePercent": 40, "pauseTimeBetweenBatches": "PT30S"},
        "runningStatus": {
            "code": "RollingForward",
            "startTime": "2026-03-01T11:58:00Z",
            "lastAction": "Start",
            "lastActionTime": "2026-03-01T11:58:00Z",
        },
        "progress": {
            "successfulInstanceCount": 2,
            "failedInstanceCount": 1,
            "inProgressInstanceCount": 2,
            "pendingInstanceCount": 5,
        },
        "error": FAULT.wire(),
    }
)
STATUS = ScaleSetStatus(
    model_image=MODEL,
    model_hash="abc123",
    rolling_upgrade=LATEST,
    os_upgrade_history=HISTORY,
)
SPEC = ScaleSetSpec.model_validate(
    {
        "location": "westeurope",
        "capacity": 3,
        "imageReference": {"publisher": "Canonical", "offer": "ubuntu", "sku": "22_04-lts"},
        "template": {"spec": {"containers": [{"name": "os", "image": "ignored"}]}},
    }
)


# --- Azure shapes -------------------------------------------------------------------------


def test_history_envelope_is_azures_shape() -> None:
    doc = history_envelope(STATUS, "westeurope")

    validator("history-envelope.schema.json").validate(doc)
    assert no_nulls(doc)
    assert [v["type"] for v in doc["value"]] == [ROLLING_UPGRADES_TYPE] * 3
    assert {v["location"] for v in doc["value"]} == {"westeurope"}
    first = doc["value"][0]["properties"]
    assert first["runningStatus"] == {
        "code": "Faulted",
        "startTime": "2026-03-01T11:00:00Z",
        "endTime": "2026-03-01T11:09:00Z",
    }
    assert first["rollbackInfo"]["successfullyRolledbackInstanceCount"] == 2
    assert first["error"]["innererror"] == {
        "exceptiontype": "HealthTimeout",
        "errordetail": "PT5M passed",
    }


def test_empty_history_is_an_empty_value_list() -> None:
    doc = history_envelope(ScaleSetStatus(), "westeurope")

    validator("history-envelope.schema.json").validate(doc)
    assert doc == {"value": []}


def test_latest_info_is_azures_shape() -> None:
    doc = latest_info(STATUS, "web", "westeurope")

    assert doc is not None
    validator("rolling-upgrade-status-info.schema.json").validate(doc)
    assert no_nulls(doc)
    assert doc["type"] == ROLLING_UPGRADES_TYPE
    assert (doc["name"], doc["location"]) == ("web", "westeurope")
    assert doc["properties"]["runningStatus"]["lastAction"] == "Start"
    assert doc["properties"]["policy"]["maxBatchInstancePercent"] == 40


def test_latest_info_of_a_minimal_status_still_validates() -> None:
    status = ScaleSetStatus(
        rolling_upgrade=RollingUpgradeStatus(running_status=RollingRunningStatus(code="Completed"))
    )
    doc = latest_info(status, "web", "westeurope")

    validator("rolling-upgrade-status-info.schema.json").validate(doc)


def test_no_latest_info_before_the_first_upgrade() -> None:
    assert latest_info(ScaleSetStatus(), "web", "westeurope") is None


def test_the_schemas_catch_a_null_and_a_misspelt_field() -> None:
    # Guards the guard: the shape tests above mean something only if these fail.
    doc = latest_info(STATUS, "web", "westeurope")
    assert doc is not None
    with_null = json.loads(json.dumps(doc))
    with_null["properties"]["error"]["target"] = None
    misspelt = json.loads(json.dumps(doc))
    misspelt["properties"]["runningStatus"]["endTime"] = "2026-03-01T12:00:00Z"

    check = validator("rolling-upgrade-status-info.schema.json")
    assert not check.is_valid(with_null)
    assert not check.is_valid(misspelt)


# --- generic rendering --------------------------------------------------------------------


def test_table_aligns_columns_and_marks_empty_cells() -> None:
    text = table(["Id", "Pod", "Protected"], [[0, "web-0", False], [10, None, True]])

    assert text.splitlines() == [
        "ID   POD      PROTECTED",
        "0    web-0    false",
        "10   <none>   true",
    ]


def test_key_values_skip_missing_values() -> None:
    assert key_values([("Name", "web"), ("Error", None), ("Capacity", 3)]) == (
        "Name:      web\nCapacity:  3\n"
    )


def test_documents_round_trip_in_json_and_yaml() -> None:
    doc = {"value": [{"b": 1, "a": [True, "x"]}]}

    assert json.loads(document(doc, "json")) == doc
    assert yaml.safe_load(document(doc, "yaml")) == doc
    assert document(doc, "json").index('"b"') < document(doc, "json").index('"a"')


# --- upgrade views ------------------------------------------------------------------------


def test_history_table_shows_outcome_target_and_error() -> None:
    lines = history_table(HISTORY).splitlines()

    assert lines[0].split() == [
        "START", "END", "STATUS", "BY", "TARGET", "OK", "FAILED", "ROLLED-BACK", "ERROR",
    ]  # fmt: skip
    assert "Faulted" in lines[1]
    assert "Canonical:ubuntu:22_04-lts:1.2.4" in lines[1]
    assert "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade" in lines[1]
    assert "galleries/shared/images/web/versions/2.0.0" in lines[2]
    assert history_table([]) == "No OS upgrade history.\n"


def test_latest_table_summarises_status_progress_and_policy() -> None:
    text = latest_table("web", "westeurope", LATEST)

    assert "Status:       RollingForward" in text
    assert "2 successful, 1 failed, 2 in progress, 5 pending" in text
    assert "batch 40%" in text
    assert "pause PT30S" in text
    assert "(RollingUpgradeTimeoutError: web-3 not healthy; instance 4: ImagePullBackOff)" in text


def _upgrading(reason: str, message: str) -> ScaleSetStatus:
    condition = Condition(
        type="Upgrading",
        status="True",
        reason=reason,
        message=message,
        last_transition_time="2026-03-01T11:58:00Z",
    )
    return STATUS.model_copy(update={"conditions": [condition]})


def test_latest_table_says_until_when_a_run_waits_for_a_maintenance_window() -> None:
    said = "batch 2 waits for the next maintenance window, until 2026-03-02T02:00:00Z; ..."
    waiting = waiting_text(_upgrading("WaitingForMaintenanceWindow", said))

    assert waiting == said
    assert f"Waiting:      {said}" in latest_table("web", "westeurope", LATEST, waiting)
    assert waiting_text(_upgrading("RollingForward", "OS upgrade to ...: 2 upgraded")) is None
    assert waiting_text(STATUS) is None
    assert "Waiting" not in latest_table("web", "westeurope", LATEST)


def test_progress_view_has_one_bar_per_state() -> None:
    console = Console(record=True, width=100, color_system=None)
    console.print(progress_view("web", LATEST))
    text = console.export_text()

    assert "Rolling upgrade of web: RollingForward" in text
    for label, count in (("successful", 2), ("failed", 1), ("in progress", 2), ("pending", 5)):
        line = next(li for li in text.splitlines() if li.startswith(label))
        assert line.rstrip().endswith(f"{count}/10")


# --- instances ----------------------------------------------------------------------------


def instance(**changes: Any) -> Instance:
    base: dict[str, Any] = {
        "instance_id": 0,
        "name": "web-0",
        "os_image": "os:4",
        "image_urn": MODEL.urn,
        "model_hash": "abc123",
        "phase": "Running",
        "ready": True,
        "created_at": "2026-03-01T11:00:00Z",
        "zone": "zone-a",
        "os_status": ContainerState(name="os", image="os:4", ready=True, running=True),
    }
    return Instance(**(base | changes))


@pytest.mark.parametrize(
    ("changes", "health", "reason"),
    [
        ({}, "Healthy", "Ready"),
        (
            {"os_status": ContainerState(name="os", image="os:3", ready=True)},
            "Unhealthy",
            "ContainerStillOnPreviousImage",
        ),
        (
            {"ready": False, "os_status": ContainerState(name="os", image="os:4")},
            "Unhealthy",
            "NotReady",
        ),
        ({"os_status": None}, "Unknown", "NoContainerStatus"),
        (
            {
                "os_status": ContainerState(
                    name="os", image="os:4", waiting_reason="ImagePullBackOff"
                ),
                "ready": False,
            },
            "Unhealthy",
            "ImagePullBackOff",
        ),
    ],
)
def test_instance_health(changes: dict[str, Any], health: str, reason: str) -> None:
    row = instance_row(instance(**changes), SPEC, STATUS, NOW)

    assert (row.health, row.health_reason) == (health, reason)


def test_instance_in_its_grace_period_is_initializing() -> None:
    spec = SPEC.model_copy(
        update={"health_probe": SPEC.health_probe.model_copy(update={"grace_period": "PT5M"})}
    )
    fresh = instance(
        created_at="2026-03-01T11:59:00Z",
        ready=False,
        os_status=ContainerState(name="os", image="os:4"),
    )

    assert instance_row(fresh, spec, STATUS, NOW).health == "Initializing"


def test_latest_model_applied_needs_both_hash_and_image() -> None:
    assert latest_model_applied(instance(), STATUS)
    assert not latest_model_applied(instance(model_hash="old"), STATUS)
    assert not latest_model_applied(instance(image_urn="Canonical:ubuntu:22_04-lts:1.2.3"), STATUS)
    assert not latest_model_applied(instance(), ScaleSetStatus())


def test_instances_table_and_document() -> None:
    rows = [
        instance_row(instance(), SPEC, STATUS, NOW),
        instance_row(
            instance(instance_id=1, name="web-1", protected=True, zone=None, model_hash="old"),
            SPEC,
            STATUS,
            NOW,
        ),
    ]
    lines = instances_table(rows).splitlines()
    doc = scaleset_document("web", "shop", SPEC, STATUS, rows)

    assert lines[0].split() == [
        "ID", "POD", "ZONE", "IMAGE-VERSION", "HEALTH", "LATEST-MODEL", "PROTECTED",
    ]  # fmt: skip
    assert lines[1].split() == ["0", "web-0", "zone-a", "1.2.4", "Healthy", "true", "false"]
    assert lines[2].split() == ["1", "web-1", "<none>", "1.2.4", "Healthy", "false", "true"]
    assert doc["instances"][1] == {
        "instanceId": "1",
        "pod": "web-1",
        "imageVersion": "1.2.4",
        "health": "Healthy",
        "healthReason": "Ready",
        "latestModelApplied": False,
        "protectFromScaleSetActions": True,
    }
    assert doc["modelImage"] == MODEL.urn
    assert no_nulls(doc)


def test_instance_ids_accept_spaces_commas_and_star() -> None:
    assert parse_instance_ids(("3", "0,3", "10")) == ["0", "3", "10"]
    assert parse_instance_ids(("1", "*")) == ["*"]
    with pytest.raises(click.ClickException) as bad:
        parse_instance_ids(("web",))
    assert bad.value.exit_code == 2


def test_choosing_an_unknown_instance_is_not_found() -> None:
    known = [instance(), instance(instance_id=2, name="web-2")]

    assert [i.name for i in choose(known, ["*"], "web")] == ["web-0", "web-2"]
    assert [i.name for i in choose(known, ["2"], "web")] == ["web-2"]
    with pytest.raises(click.ClickException) as missing:
        choose(known, ["0", "7"], "web")
    assert missing.value.exit_code == 3
    assert "no instance 7" in missing.value.message


# --- update and image ---------------------------------------------------------------------


def test_update_builds_one_merge_patch() -> None:
    patch = merge_patch(
        {
            "enable_automatic_os_upgrade": True,
            "disable_automatic_rollback": None,
            "max_batch_instance_percent": 50,
            "pause_time_between_batches": "PT10S",
            "health_timeout": "PT1M",
            "upgrade_mode": "Rolling",
            "capacity": 4,
            "version": "latest",
        }
    )

    assert patch == {
        "spec": {
            "upgradePolicy": {
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                "rollingUpgradePolicy": {
                    "maxBatchInstancePercent": 50,
                    "pauseTimeBetweenBatches": "PT10S",
                },
                "healthTimeout": "PT1M",
                "mode": "Rolling",
            },
            "capacity": 4,
            "imageReference": {"version": "latest"},
        }
    }
    assert merge_patch({"capacity": None}) == {}


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (
            ["Canonical", "UbuntuServer", "22_04-LTS", "1.2.3"],
            "canonical-ubuntuserver-22-04-lts-1.2.3",
        ),
        (["My Pub", "offer.", "-sku", "2016.127.20180613"], "my-pub-offer.sku-2016.127.20180613"),
        (["shared", "web", "2.0.0"], "shared-web-2.0.0"),
    ],
)
def test_image_version_names_are_dns_names(parts: list[str], name: str) -> None:
    assert object_name(parts) == name


def entry(name: str, version: str, **spec: Any) -> CatalogEntry:
    base = {"publisher": "Canonical", "offer": "ubuntu", "sku": "22_04", "image": f"os:{version}"}
    return CatalogEntry(name=name, spec=ImageVersionSpec(version=version, **(base | spec)))


CATALOG = [
    entry("v1", "1.0.0"),
    entry("v3", "1.10.0", exclude_from_latest=True),
    entry("v2", "1.9.0", target_regions=["westeurope"]),
    entry("v4", "2.0.0", target_regions=["eastus"]),
    entry(
        "g1", "3.0.0", publisher=None, offer=None, sku=None, gallery="shared", gallery_image="web"
    ),
]


def test_image_list_shows_what_latest_can_use_in_the_location() -> None:
    rows = image_rows(CATALOG, "westeurope", show_all=False)

    assert [(r["urn"], r["latest"]) for r in rows] == [
        ("Canonical:ubuntu:22_04:1.0.0", False),
        ("Canonical:ubuntu:22_04:1.9.0", True),
        ("shared/web:3.0.0", True),
    ]


def test_image_list_all_shows_every_version_with_why() -> None:
    rows = image_rows(CATALOG, "westeurope", show_all=True)
    text = images_table(rows, show_all=True)

    assert [r["version"] for r in rows] == ["1.0.0", "1.9.0", "1.10.0", "2.0.0", "3.0.0"]
    excluded = next(li for li in text.splitlines() if "1.10.0" in li)
    elsewhere = next(li for li in text.splitlines() if "2.0.0" in li)
    assert excluded.split()[5:8] == ["false", "true", "(all)"]
    assert elsewhere.split()[5:8] == ["false", "false", "eastus"]
    assert elsewhere.split()[-1] == "false"
    assert "LATEST" in text.splitlines()[0]
    assert "IN-LOCATION" in text.splitlines()[0]


def test_image_list_without_location_has_no_latest_column() -> None:
    rows = image_rows(CATALOG, None, show_all=True)

    assert "latest" not in rows[0]
    assert "LATEST" not in images_table(rows, show_all=True)


# --- the command line itself (no cluster needed) ------------------------------------------


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += all_commands(command, path)
    return found


@pytest.mark.parametrize("path", all_commands(cli), ids=" ".join)
def test_every_command_has_help_with_examples(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])

    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "kubectl scaleset " + " ".join(path) in result.output


def test_top_level_help_documents_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])

    for code in ("0  success", "1  the operation", "2  usage", "3  not found", "4  cannot reach"):
        assert code in result.output


def test_no_kubeconfig_is_exit_code_4_with_one_line(tmp_path: Path) -> None:
    # Unset the in-cluster variable too, or a test run inside a pod would find its account.
    env = {"KUBECONFIG": str(tmp_path / "missing"), "KUBERNETES_SERVICE_HOST": None}
    result = CliRunner().invoke(cli, ["get", "web"], env=env)

    assert result.exit_code == 4
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: no usable kubeconfig")


def test_bad_option_values_are_usage_errors() -> None:
    runner = CliRunner()

    assert runner.invoke(cli, ["update", "web"]).exit_code == 2
    assert runner.invoke(cli, ["update", "web", "--upgrade-mode", "Sometimes"]).exit_code == 2
    assert runner.invoke(cli, ["update", "web", "--max-surge", "maybe"]).exit_code == 2
    assert runner.invoke(cli, ["image", "list", "--publisher", "x"]).exit_code == 2
    assert runner.invoke(cli, ["-o", "xml", "get", "web"]).exit_code == 2
