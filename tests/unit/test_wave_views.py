"""`kubectl scaleset wave`, without a cluster: the list and detail views of UpgradeWaves, the
documents of -o json|yaml, the durations --timeout takes, and what `wave watch` prints and
how it ends, step by step as the wave's status moves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import click
import pytest
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException

from scaleset_operator.cli.plugin.context import CommandFailed, Settings
from scaleset_operator.cli.plugin.main import cli
from scaleset_operator.cli.plugin.wave import Duration, parse_wave
from scaleset_operator.cli.views.waves import (
    WaveObject,
    WaveWatch,
    age,
    chosen,
    wave_detail,
    wave_document,
    waves_document,
    waves_table,
)
from scaleset_operator.k8s.client import KubeClient
from scaleset_operator.k8s.errors import classify
from scaleset_operator.k8s.userapi import UserApi
from scaleset_operator.models.scaleset import GROUP, VERSION
from scaleset_operator.models.upgradewave import (
    StageEntry,
    StageMembers,
    UpgradeWaveStatus,
    VersionPhase,
    WaveVersion,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
IMAGE = "contoso:webos:2024"


def wave_obj(status: dict[str, Any] | None = None, name: str = "fleet") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "scaleset.dev/v1alpha1",
        "kind": "UpgradeWave",
        "metadata": {
            "name": name,
            "generation": 1,
            "creationTimestamp": "2026-03-01T09:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {
            "stages": [
                {"name": "test", "selector": {"matchLabels": {"ring": "test"}}, "soakTime": "PT5M"},
                {"name": "prod", "selector": {"matchLabels": {"ring": "prod"}}},
            ]
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def record(version: str, phase: VersionPhase, stage: str = "test", **more: Any) -> WaveVersion:
    index = {"test": 0, "prod": 1}[stage]
    return WaveVersion(
        image=IMAGE, version=version, phase=phase, stage=stage, stage_index=index, **more
    )


def status_of(*records: WaveVersion, **more: Any) -> UpgradeWaveStatus:
    return UpgradeWaveStatus(versions=list(records), **more)


def loaded(status: UpgradeWaveStatus, generation: int = 1) -> WaveObject:
    base = parse_wave(wave_obj())
    return WaveObject(base.name, base.created, generation, base.spec, status)


SOAKING = record(
    "1.1.0",
    VersionPhase.SOAKING,
    soak_ends_at="2026-03-01T12:05:00Z",
    waiting_for="stage test soaking until 2026-03-01T12:05:00Z",
    stages=[StageEntry(stage="test", admitted_at="2026-03-01T11:50:00Z")],
)
DONE = record("1.0.0", VersionPhase.COMPLETED, "prod")


# --- wave get ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"), (3 * 86400, "3d")],
)
def test_age_reads_like_kubectls(seconds: int, shown: str) -> None:
    assert age(NOW - timedelta(seconds=seconds), NOW) == shown


def test_age_of_an_object_from_the_future_is_zero() -> None:
    assert age(NOW + timedelta(seconds=5), NOW) == "0s"
    assert age(None, NOW) is None


def test_the_list_shows_each_waves_stages_and_newest_version() -> None:
    fleet = loaded(status_of(SOAKING, DONE))
    empty = WaveObject("another", None, 1, fleet.spec, UpgradeWaveStatus())

    lines = waves_table([fleet, empty], NOW).splitlines()

    assert lines[0].split() == ["NAME", "STAGES", "NEWEST", "PHASE", "STAGE", "AGE"]
    # Sorted by name; a wave the operator has not written a status for shows <none>.
    assert lines[1].split() == ["another", "test,prod", "<none>", "<none>", "<none>", "<none>"]
    assert lines[2].split() == ["fleet", "test,prod", f"{IMAGE}:1.1.0", "Soaking", "test", "3h"]


def test_no_waves_is_said_in_words() -> None:
    assert waves_table([], NOW) == "No upgrade waves found.\n"


def test_the_detail_shows_stages_members_versions_and_conflicts() -> None:
    status = status_of(
        SOAKING,
        DONE,
        stages=[
            StageMembers(name="test", scale_sets=["shop/web-test"]),
            StageMembers(name="prod", scale_sets=["shop/web", "pay/api"]),
        ],
        conflicts=["shop/legacy: another"],
        summary=f"{IMAGE}:1.1.0 Soaking in stage test",
    )

    text = wave_detail(loaded(status), NOW)

    assert text.startswith(f"Name:     fleet\nSummary:  {IMAGE}:1.1.0 Soaking in stage test\n")
    assert "Note:" not in text
    lines = text.splitlines()
    stage_head = lines.index(next(line for line in lines if line.startswith("STAGE ")))
    assert lines[stage_head].split() == ["STAGE", "SOAK-TIME", "SCALE-SETS"]
    assert lines[stage_head + 1].split() == ["test", "PT5M", "shop/web-test"]
    assert lines[stage_head + 2].split() == ["prod", "PT1H", "shop/web,pay/api"]
    version_head = lines.index(next(line for line in lines if line.startswith("IMAGE ")))
    assert lines[version_head].split() == [
        "IMAGE",
        "VERSION",
        "PHASE",
        "STAGE",
        "SOAK-ENDS",
        "WAITING-FOR",
    ]
    assert lines[version_head + 1].split()[:5] == [
        IMAGE,
        "1.1.0",
        "Soaking",
        "test",
        "2026-03-01T12:05:00Z",
    ]
    assert lines[version_head + 1].endswith("stage test soaking until 2026-03-01T12:05:00Z")
    assert lines[version_head + 2].split() == [
        IMAGE,
        "1.0.0",
        "Completed",
        "prod",
        "<none>",
        "<none>",
    ]
    assert text.endswith("another wave):\n  shop/legacy: another\n")


def test_the_detail_of_a_new_wave_says_nothing_is_tracked_yet() -> None:
    text = wave_detail(loaded(UpgradeWaveStatus()), NOW)

    assert "Summary:  (none yet)" in text
    assert "No versions tracked yet." in text
    assert "Conflicts" not in text


def test_the_detail_says_when_the_status_is_of_an_older_spec() -> None:
    text = wave_detail(loaded(status_of(DONE, observed_generation=1), generation=2), NOW)

    assert "Note:" in text
    assert "generation 1" in text
    assert "generation 2" in text


def test_documents_are_the_objects_without_managed_fields() -> None:
    obj = wave_obj({"summary": "x"})

    doc = wave_document(obj)
    listed = waves_document([obj])

    assert "managedFields" not in doc["metadata"]
    assert doc["metadata"]["name"] == "fleet"
    assert doc["status"] == {"summary": "x"}
    assert "managedFields" in obj["metadata"]  # the object read is left as it was
    assert listed == {"apiVersion": "v1", "kind": "List", "items": [doc]}


def test_an_unreadable_wave_is_one_clear_error() -> None:
    bad = wave_obj()
    bad["spec"]["stages"] = []

    with pytest.raises(CommandFailed, match=r'upgrade wave "fleet" is not readable: stages'):
        parse_wave(bad)


def test_parse_wave_reads_name_creation_and_generation() -> None:
    wave = parse_wave(wave_obj({"versions": [DONE.wire()]}))

    assert (wave.name, wave.created, wave.generation) == ("fleet", NOW - timedelta(hours=3), 1)
    assert [s.name for s in wave.spec.stages] == ["test", "prod"]
    assert wave.status.versions == [DONE]


# --- --timeout ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("900", 900.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("PT1H", 3600.0),
        ("pt90s", 90.0),
        ("P1DT1M", 86460.0),
    ],
)
def test_timeout_takes_seconds_units_and_iso_durations(text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "5q", "1m2h", "P", "PT", "inf", "nan"])
def test_timeout_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(click.BadParameter, match="is not a duration"):
        Duration().convert(text, None, None)


# --- wave watch, step by step ------------------------------------------------------------


def test_the_version_to_follow() -> None:
    status = status_of(SOAKING, DONE)

    assert chosen(status, None) == SOAKING  # the newest
    assert chosen(status, "1.0.0") == DONE
    assert chosen(status, f"{IMAGE}:1.0.0") == DONE
    assert chosen(status, "2.0.0") is None  # not tracked (yet)
    assert chosen(UpgradeWaveStatus(), None) is None


def test_watch_prints_every_version_first_then_only_changes() -> None:
    watch = WaveWatch(wanted=None)
    rolling = record("1.1.0", VersionPhase.ROLLING, waiting_for="stage test: shop/web is on 1.0.0")

    first = watch.update(loaded(status_of(rolling, DONE)), NOW)
    again = watch.update(loaded(status_of(rolling, DONE)), NOW)
    upgrading = rolling.model_copy(update={"waiting_for": "stage test: shop/web is upgrading"})
    moved = watch.update(loaded(status_of(upgrading, DONE)), NOW)
    soaking = watch.update(loaded(status_of(SOAKING, DONE)), NOW + timedelta(seconds=75))

    assert first == [
        f"12:00:00  {IMAGE}:1.1.0 Rolling in stage test (1/2): stage test: shop/web is on 1.0.0",
        f"12:00:00  {IMAGE}:1.0.0 Completed in stage prod (2/2)",
    ]
    assert again == []
    assert moved == [
        f"12:00:00  {IMAGE}:1.1.0 Rolling in stage test (1/2): stage test: shop/web is upgrading"
    ]
    assert soaking == [
        f"12:01:15  {IMAGE}:1.1.0 Soaking in stage test (1/2): stage test soaking until "
        "2026-03-01T12:05:00Z"
    ]
    assert watch.target == (IMAGE, "1.1.0")


def test_watch_ends_when_the_followed_version_completes() -> None:
    watch = WaveWatch(wanted=None)
    watch.update(loaded(status_of(SOAKING, DONE)), NOW)
    prod = record("1.1.0", VersionPhase.ROLLING, "prod", waiting_for="stage prod: shop/web ...")
    completed = record("1.1.0", VersionPhase.COMPLETED, "prod")

    assert watch.ending(status_of(SOAKING, DONE)) is None
    assert watch.ending(status_of(prod, DONE)) is None
    ended = watch.ending(status_of(completed, DONE))

    assert ended is not None
    assert ended.ok
    assert ended.record == completed
    assert ended.text == f"{IMAGE}:1.1.0 Completed: every stage has it"


def test_watch_of_an_older_version_ignores_the_newest() -> None:
    watch = WaveWatch(wanted="1.0.0")
    watch.update(loaded(status_of(SOAKING, DONE)), NOW)

    ended = watch.ending(status_of(SOAKING, DONE))

    assert watch.target == (IMAGE, "1.0.0")
    assert ended is not None
    assert ended.ok


def test_watch_ends_failed_when_the_followed_version_faults() -> None:
    faulted = record(
        "1.1.0",
        VersionPhase.FAULTED,
        faulted_by="shop/web-test",
        waiting_for="quarantined by shop/web-test; no later stage gets it",
    )
    watch = WaveWatch(wanted="1.1.0")
    watch.update(loaded(status_of(faulted, DONE)), NOW)

    ended = watch.ending(status_of(faulted, DONE))

    assert ended is not None
    assert not ended.ok
    assert "Faulted in stage test: quarantined by shop/web-test" in ended.text
    assert "quarantine clear" in ended.text


def test_watch_waits_for_a_version_not_tracked_yet_and_follows_it_once_it_appears() -> None:
    watch = WaveWatch(wanted=None)

    assert watch.update(loaded(UpgradeWaveStatus()), NOW) == []
    assert watch.ending(UpgradeWaveStatus()) is None
    assert watch.still("fleet") == "wave fleet tracks no version yet"
    assert WaveWatch(wanted="1.3.0").still("fleet") == "wave fleet does not track 1.3.0 yet"

    lines = watch.update(loaded(status_of(SOAKING)), NOW)

    assert watch.target == (IMAGE, "1.1.0")
    assert len(lines) == 1
    assert watch.still("fleet") == f"{IMAGE}:1.1.0 is still Soaking in stage test"


def test_a_version_overtaken_by_a_newer_completed_one_counts_as_done() -> None:
    watch = WaveWatch(wanted="1.1.0")
    watch.update(loaded(status_of(SOAKING, DONE)), NOW)
    newer = record("1.2.0", VersionPhase.COMPLETED, "prod")

    overtaken = watch.ending(status_of(newer))
    gone = watch.ending(status_of(record("1.2.0", VersionPhase.ROLLING)))

    assert overtaken is not None
    assert overtaken.ok
    assert overtaken.text == f"{IMAGE}:1.1.0 is no longer tracked: {IMAGE}:1.2.0, newer, Completed"
    assert overtaken.record == SOAKING  # the last record seen of it
    assert gone is not None
    assert not gone.ok


# --- the commands, on a fake API ------------------------------------------------------------


class FakeApi(KubeClient):
    """The API server behind the two calls the wave commands make, answering
    `KubeClient.request`; a status list to step through for watch."""

    def __init__(self, *objs: dict[str, Any]) -> None:
        super().__init__(cast(Any, None))
        self.objs = list(objs)
        self.reads = 0

    def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        waves = f"/apis/{GROUP}/{VERSION}/upgradewaves"
        assert method == "GET"
        if path == waves:
            return {"items": self.objs[:1]}
        name = path.removeprefix(f"{waves}/")
        if not self.objs or self.objs[0]["metadata"]["name"] != name:
            exc = ApiException(status=404, reason="Not Found")
            exc.body = json.dumps({"kind": "Status", "reason": "NotFound"})
            raise classify(exc)
        obj = self.objs[min(self.reads, len(self.objs) - 1)]
        self.reads += 1
        return obj


def invoke(api: FakeApi, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), obj=Settings(_api=UserApi(api, "shop")))


def test_wave_get_json_is_the_object() -> None:
    obj = wave_obj({"versions": [DONE.wire()]})

    one = invoke(FakeApi(obj), "wave", "get", "fleet", "-o", "json")
    every = invoke(FakeApi(obj), "wave", "get", "-o", "yaml")

    assert one.exit_code == 0
    assert json.loads(one.output) == wave_document(obj)
    assert every.exit_code == 0
    assert "kind: List" in every.output
    assert "name: fleet" in every.output


def test_wave_get_of_a_missing_wave_is_exit_code_3_with_one_line() -> None:
    result = invoke(FakeApi(), "wave", "get", "nosuch")

    assert result.exit_code == 3
    assert result.stderr == 'Error: upgrade wave "nosuch" not found\n'


def test_wave_watch_prints_changes_and_exits_0_on_completed() -> None:
    steps = [
        {"versions": [SOAKING.wire(), DONE.wire()]},
        {"versions": [SOAKING.wire(), DONE.wire()]},
        {"versions": [record("1.1.0", VersionPhase.COMPLETED, "prod").wire()]},
    ]
    api = FakeApi(*(wave_obj(s) for s in steps))

    result = invoke(api, "wave", "watch", "fleet", "--interval", "0.1")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("  ", 1)[1] for line in lines[:-1]] == [
        f"{IMAGE}:1.1.0 Soaking in stage test (1/2): stage test soaking until 2026-03-01T12:05:00Z",
        f"{IMAGE}:1.0.0 Completed in stage prod (2/2)",
        f"{IMAGE}:1.1.0 Completed in stage prod (2/2)",
    ]
    assert lines[-1] == f"Outcome: {IMAGE}:1.1.0 Completed: every stage has it"


def test_wave_watch_times_out_with_exit_code_1() -> None:
    api = FakeApi(wave_obj({"versions": [SOAKING.wire()]}))

    result = invoke(api, "wave", "watch", "fleet", "--timeout", "0.3", "--interval", "0.1")

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: timed out after 0.3s; {IMAGE}:1.1.0 is still Soaking in stage test\n"
    )


def test_wave_watch_json_prints_only_the_final_record_and_exits_1_on_faulted() -> None:
    faulted = record("1.1.0", VersionPhase.FAULTED, faulted_by="shop/web-test")
    api = FakeApi(wave_obj({"versions": [faulted.wire()]}))

    result = invoke(api, "wave", "watch", "fleet", "-o", "json")

    assert result.exit_code == 1
    assert json.loads(result.stdout) == faulted.wire()


def test_wave_watch_says_on_stderr_that_it_waits_for_a_version() -> None:
    api = FakeApi(wave_obj({}), wave_obj({"versions": [DONE.wire()]}))

    result = invoke(api, "wave", "watch", "fleet", "--version", "1.0.0", "--interval", "0.1")

    assert result.exit_code == 0
    assert result.stderr == "waiting for wave fleet to track 1.0.0...\n"
