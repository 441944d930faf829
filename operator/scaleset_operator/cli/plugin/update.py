"""`kubectl scaleset update`: change the scale set model and its upgrade policy with one JSON
merge patch (Azure: `az vmss update`). Values are checked by the API server (schema and CEL
rules), whose message the user sees as it is."""

from __future__ import annotations

from typing import Any

import click

from scaleset_operator.cli.plugin.context import common_options, settings
from scaleset_operator.cli.views.output import emit, key_values

_BOOL = click.BOOL
_POLICY = ("spec", "upgradePolicy")
_ROLLING = (*_POLICY, "rollingUpgradePolicy")
_AUTO = (*_POLICY, "automaticOSUpgradePolicy")
_IMAGE = ("spec", "imageReference")

# option name -> (where in the ScaleSet it goes, click type, help)
_FIELDS: dict[str, tuple[tuple[str, ...], Any, str]] = {
    "enable_automatic_os_upgrade": (
        (*_AUTO, "enableAutomaticOSUpgrade"),
        _BOOL,
        "Upgrade instances automatically when a newer image version is published "
        "(needs image version 'latest').",
    ),
    "disable_automatic_rollback": (
        (*_AUTO, "disableAutomaticRollback"),
        _BOOL,
        "Keep instances that fail to become healthy on the new image instead of rolling back.",
    ),
    "max_batch_instance_percent": (
        (*_ROLLING, "maxBatchInstancePercent"),
        int,
        "Largest batch, as a percent of all instances (5-100).",
    ),
    "max_unhealthy_instance_percent": (
        (*_ROLLING, "maxUnhealthyInstancePercent"),
        int,
        "Unhealthy instances tolerated before and during an upgrade, percent (5-100).",
    ),
    "max_unhealthy_upgraded_instance_percent": (
        (*_ROLLING, "maxUnhealthyUpgradedInstancePercent"),
        int,
        "Upgraded instances allowed to end unhealthy before the upgrade aborts, percent (0-100).",
    ),
    "pause_time_between_batches": (
        (*_ROLLING, "pauseTimeBetweenBatches"),
        str,
        "Wait between batches, ISO 8601 (e.g. PT30S).",
    ),
    "prioritize_unhealthy_instances": (
        (*_ROLLING, "prioritizeUnhealthyInstances"),
        _BOOL,
        "Upgrade unhealthy instances first.",
    ),
    "enable_cross_zone_upgrade": (
        (*_ROLLING, "enableCrossZoneUpgrade"),
        _BOOL,
        "Let a batch span zones.",
    ),
    "max_surge": (
        (*_ROLLING, "maxSurge"),
        _BOOL,
        "Create new instances for a batch before removing the old ones.",
    ),
    "rollback_failed_instances_on_policy_breach": (
        (*_ROLLING, "rollbackFailedInstancesOnPolicyBreach"),
        _BOOL,
        "Roll failed instances back when the upgrade aborts on a policy breach.",
    ),
    "health_timeout": (
        (*_POLICY, "healthTimeout"),
        str,
        "How long an upgraded instance may take to become healthy, ISO 8601 (e.g. PT5M).",
    ),
    "upgrade_mode": (
        (*_POLICY, "mode"),
        click.Choice(["Manual", "Rolling", "Automatic"], case_sensitive=False),
        "How model changes reach instances.",
    ),
    "capacity": (("spec", "capacity"), int, "Number of instances."),
    "sku": ((*_IMAGE, "sku"), str, "Image sku (publisher and offer cannot change)."),
    "version": ((*_IMAGE, "version"), str, "Image version: 'latest' or an exact version."),
}


def merge_patch(values: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch for the options given (None means not given)."""
    patch: dict[str, Any] = {}
    for option, value in values.items():
        if value is None:
            continue
        path = _FIELDS[option][0]
        node = patch
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return patch


def _changes(values: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(".".join(_FIELDS[k][0][1:]), v) for k, v in values.items() if v is not None]


def _add_field_options(func: Any) -> Any:
    for option, (_, kind, help_text) in reversed(_FIELDS.items()):
        flag = "--" + option.replace("_", "-")
        metavar = "true|false" if kind is _BOOL else None
        func = click.option(flag, option, type=kind, metavar=metavar, help=help_text)(func)
    return func


@click.command("update")
@click.argument("name")
@_add_field_options
@common_options
def update(name: str, **values: Any) -> None:
    """Change scale set NAME: automatic OS upgrades, rolling upgrade policy, capacity, image.

    Only the options given change. The API server checks the values and its
    message is shown as it is (exit code 2), e.g. a percent out of range,
    maxBatchInstancePercent above maxUnhealthyInstancePercent, or automatic
    upgrades with a pinned image version.

    \b
    Examples:
      kubectl scaleset update web --enable-automatic-os-upgrade true
      kubectl scaleset update web --max-batch-instance-percent 50 \\
          --max-unhealthy-instance-percent 50
      kubectl scaleset update web --pause-time-between-batches PT30S \\
          --prioritize-unhealthy-instances true
      kubectl scaleset update web --upgrade-mode Rolling --capacity 6
      kubectl scaleset update web --sku 22_04-lts-gen2 --version latest
    """
    if isinstance(values.get("upgrade_mode"), str):
        values["upgrade_mode"] = values["upgrade_mode"].capitalize()
    patch = merge_patch(values)
    if not patch:
        raise click.UsageError("nothing to update: give at least one option (see --help)")
    updated = settings().api().patch_scaleset(name, patch)
    changes = _changes(values)
    emit(
        updated.get("spec") or {},
        settings().output,
        lambda: f'Updated scale set "{name}":\n' + key_values([(f"  {k}", v) for k, v in changes]),
    )
