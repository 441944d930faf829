"""Azure's response bodies for `-o json`: the OS upgrade history list and the
`rollingUpgrades/latest` resource, built from the status fields that already carry Azure's
`properties` objects. Adds nothing Azure's schema lacks, and never writes a null."""

from __future__ import annotations

from typing import Any

from scaleset_operator.models.status import ScaleSetStatus

ROLLING_UPGRADES_TYPE = "Microsoft.Compute/virtualMachineScaleSets/rollingUpgrades"


def history_envelope(status: ScaleSetStatus, location: str) -> dict[str, Any]:
    """`{"value": [{"properties", "type", "location"}]}`, newest first like Azure."""
    return {
        "value": [
            {"properties": entry.wire(), "type": ROLLING_UPGRADES_TYPE, "location": location}
            for entry in status.os_upgrade_history
        ]
    }


def latest_info(status: ScaleSetStatus, name: str, location: str) -> dict[str, Any] | None:
    """The `rollingUpgrades/latest` body; None when no rolling upgrade ever ran (Azure: 404)."""
    if status.rolling_upgrade is None:
        return None
    return {
        "properties": status.rolling_upgrade.wire(),
        "location": location,
        "name": name,
        "type": ROLLING_UPGRADES_TYPE,
    }
