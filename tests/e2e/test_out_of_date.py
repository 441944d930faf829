"""`status.outOfDate` on a real API server: `kubectl get vmss` shows when the next out-of-date
instance may be upgraded, and nothing once none is left."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.support import World, eventually

MINIMUM_AGE = 15  # seconds: long enough to look at, short enough to wait out


def _kubectl() -> Path:
    # The virtualenv's kubectl, as a user of the plugin has it.
    found = Path(sys.executable).with_name("kubectl")
    assert found.is_file(), f"no kubectl beside {sys.executable}"
    return found


def _next_eligible(kubeconfig: Path, namespace: str) -> str:
    """The NEXT-ELIGIBLE column of `kubectl get vmss web`, as kubectl prints it ("" when
    absent)."""
    shown = subprocess.run(
        [str(_kubectl()), "--kubeconfig", str(kubeconfig), "-n", namespace, "get", "vmss", "web"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    header, row = shown.stdout.splitlines()[:2]
    # An absent value prints as blank, so cut the row where the header puts the column.
    start, end = header.index("NEXT-ELIGIBLE"), header.rindex("AGE")
    return row[start:end].strip()


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def test_get_vmss_shows_when_a_young_image_becomes_eligible(world: World, kubeconfig: Path) -> None:
    world.publish("1.0.0")
    body = world.scaleset_body(
        capacity=2, rolling={"maxBatchInstancePercent": 50, "maxUnhealthyInstancePercent": 50}
    )
    body["spec"]["upgradePolicy"]["automaticUpgradeSchedule"] = {
        "minimumImageAge": f"PT{MINIMUM_AGE}S"
    }
    world.create(body)
    world.wait_ready(capacity=2)
    assert _next_eligible(kubeconfig, world.namespace) == ""

    published = datetime.now(UTC).replace(microsecond=0)
    world.publish("1.1.0")
    shown = eventually(
        lambda: _next_eligible(kubeconfig, world.namespace), 20, what="a next eligible time"
    )
    out_of_date = world.status()["outOfDate"]

    # The image's creation time, as the API server set it, plus the minimum age.
    eligible = _stamp(shown)
    assert published - timedelta(seconds=2) <= eligible - timedelta(seconds=MINIMUM_AGE)
    assert eligible - timedelta(seconds=MINIMUM_AGE) <= published + timedelta(seconds=2)
    assert out_of_date == {
        "count": 2,
        "nextEligibleTime": shown,
        "holds": [{"reason": "YoungerThanMinimumImageAge", "instanceIds": [0, 1], "until": shown}],
    }

    world.wait_upgrade_code("Completed", timeout=120)
    eventually(
        lambda: _next_eligible(kubeconfig, world.namespace) == "",
        30,
        what="no next eligible time once every instance is upgraded",
    )
    assert "outOfDate" not in world.status()
    assert set(world.images().values()) == {"example.test/os:1.1.0"}
    assert datetime.now(UTC) >= eligible
