"""UpgradeWaves: a new version reaches a stage only after the stage before completed on it and
soaked; a fault stops it for every later stage; ScaleSets no wave selects are left alone.

The scale sets are simulated by the real planner (simworld), the wave by its real pass; between
them only persisted status travels, as in the operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scaleset_operator.models.imageversion import CatalogEntry
from scaleset_operator.models.status import (
    HoldReason,
    ResolvedImage,
    RunningStatusCode,
    StartedBy,
)
from scaleset_operator.models.upgradewave import (
    UpgradeWaveSpec,
    UpgradeWaveStatus,
    VersionPhase,
    WaveVersion,
)
from scaleset_operator.planner.schedule import HoldReason as VersionHold
from scaleset_operator.planner.schedule import upgrade_target
from scaleset_operator.planner.timefmt import parse_stamp
from scaleset_operator.planner.waves.gate import gate_for
from scaleset_operator.planner.waves.membership import Wave, seat_of
from scaleset_operator.planner.waves.progress import Member, plan_wave
from tests.unit.simworld import OFFER, PUBLISHER, SKU, T0, Sim, spec_of, version_entry

FAMILY = f"{PUBLISHER}:{OFFER}:{SKU}"


def wave_spec(*stages: tuple[str, str, str]) -> UpgradeWaveSpec:
    """(name, env label value, soak time) per stage."""
    return UpgradeWaveSpec.model_validate(
        {
            "stages": [
                {"name": n, "selector": {"matchLabels": {"env": env}}, "soakTime": soak}
                for n, env, soak in stages
            ]
        }
    )


@dataclass
class Fleet:
    """Scale sets with labels, one catalog, one or more waves, one clock."""

    catalog: list[CatalogEntry]
    waves: dict[str, Wave] = field(default_factory=dict)
    sims: dict[str, Sim] = field(default_factory=dict)
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    now: datetime = T0

    def add(self, name: str, env: str | None, capacity: int = 4) -> Sim:
        sim = Sim(spec_of(capacity=capacity), self.catalog, now=self.now)
        sim.world.name = name
        self.sims[name] = sim
        self.labels[name] = {"env": env} if env else {}
        return sim

    def add_wave(self, name: str, spec: UpgradeWaveSpec) -> None:
        self.waves[name] = Wave(name, spec, UpgradeWaveStatus())

    def members(self) -> list[Member]:
        return [
            Member("default", n, self.labels[n], s.spec, s.status) for n, s in self.sims.items()
        ]

    def wave_pass(self) -> None:
        for name, wave in list(self.waves.items()):
            result = plan_wave(
                wave, 1, self.members(), list(self.waves.values()), self.catalog, self.now
            )
            self.waves[name] = Wave(name, wave.spec, result.status)

    def step(self, seconds: float = 1.0) -> None:
        """One round: the wave reads the scale sets, then each scale set reads the wave."""
        self.wave_pass()
        for name, sim in self.sims.items():
            sim.wave = gate_for(list(self.waves.values()), self.labels[name], FAMILY)
            sim.now = self.now
            sim.step(0)
        self.now += timedelta(seconds=seconds)
        for sim in self.sims.values():
            sim.now = self.now
            sim.world.kubelet(self.now)

    def until(self, done: object, limit: int = 400) -> None:
        for _ in range(limit):
            if done():  # type: ignore[operator]
                return
            self.step()
        raise AssertionError(f"not done after {limit} rounds: {self.record('1.1.0')}")

    def version(self, name: str) -> str | None:
        model = self.sims[name].status.model_image
        return model.version if model else None

    def record(self, version: str, wave: str = "rollout") -> WaveVersion | None:
        for r in self.waves[wave].status.versions:
            if r.version == version:
                return r
        return None

    def settled_on(self, name: str, version: str) -> bool:
        sim = self.sims[name]
        run = sim.run
        finished = run is None or run.code is not RunningStatusCode.ROLLING_FORWARD
        return self.version(name) == version and finished and sim.status.ready_instances == 4


def fleet_on_100(*, soak: str = "PT60S") -> Fleet:
    fleet = Fleet([version_entry("1.0.0")])
    for name, env in [("test-a", "test"), ("prod-a", "prod"), ("prod-b", "prod"), ("lone", None)]:
        fleet.add(name, env)
    fleet.add_wave("rollout", wave_spec(("test", "test", soak), ("prod", "prod", "PT0S")))
    fleet.until(lambda: all(fleet.settled_on(n, "1.0.0") for n in fleet.sims))
    return fleet


def test_a_version_reaches_the_next_stage_only_after_the_stage_before_soaked() -> None:
    fleet = fleet_on_100(soak="PT60S")
    fleet.catalog.append(version_entry("1.1.0"))

    fleet.until(lambda: fleet.settled_on("test-a", "1.1.0"))
    assert fleet.version("prod-a") == fleet.version("prod-b") == "1.0.0"
    fleet.until(
        lambda: (r := fleet.record("1.1.0")) is not None and r.phase is VersionPhase.SOAKING
    )
    soaking = fleet.record("1.1.0")
    assert soaking is not None
    assert soaking.soak_ends_at is not None
    soak_ends = parse_stamp(soaking.soak_ends_at)
    completed = parse_stamp(soaking.stages[0].completed_at or "")
    assert soak_ends - completed == timedelta(seconds=60)
    # While stage test soaks, prod's instances say why they wait and until when.
    fleet.step()
    holds = fleet.sims["prod-a"].status.out_of_date
    assert holds is not None
    assert holds.holds[0].reason is HoldReason.WAITING_FOR_WAVE
    assert holds.holds[0].until == soaking.soak_ends_at

    fleet.until(lambda: fleet.sims["prod-a"].run is not None)
    run = fleet.sims["prod-a"].run
    assert run is not None
    assert run.started_by is StartedBy.PLATFORM
    assert parse_stamp(run.start_time) >= soak_ends
    fleet.until(lambda: fleet.settled_on("prod-a", "1.1.0") and fleet.settled_on("prod-b", "1.1.0"))
    fleet.until(lambda: fleet.record("1.1.0").phase is VersionPhase.COMPLETED)  # type: ignore[union-attr]
    record = fleet.record("1.1.0")
    assert record is not None
    assert [s.stage for s in record.stages] == ["test", "prod"]
    assert parse_stamp(record.stages[1].admitted_at) >= soak_ends


def test_a_scale_set_no_wave_selects_upgrades_as_before() -> None:
    fleet = fleet_on_100(soak="PT1H")
    fleet.catalog.append(version_entry("1.1.0"))

    fleet.until(lambda: fleet.settled_on("lone", "1.1.0") and fleet.settled_on("test-a", "1.1.0"))

    assert fleet.version("prod-a") == "1.0.0"  # an hour of soak is still running
    assert fleet.sims["lone"].wave is None


def test_a_fault_in_a_stage_stops_the_version_for_every_later_stage() -> None:
    fleet = fleet_on_100(soak="PT5S")
    del fleet.sims["lone"]
    fleet.catalog.append(version_entry("1.1.0", tag="bad-1.1.0"))

    fleet.until(lambda: "1.1.0" in fleet.sims["test-a"].status.faulted_versions, limit=600)
    fleet.step()
    record = fleet.record("1.1.0")
    assert record is not None
    assert record.phase is VersionPhase.FAULTED
    assert record.faulted_by == "default/test-a"
    for _ in range(120):
        fleet.step()
    for prod in ("prod-a", "prod-b"):
        assert fleet.sims[prod].run is None, prod
        assert fleet.version(prod) == "1.0.0"
    gate = fleet.sims["prod-a"].wave
    assert gate is not None
    assert not gate.allows("1.1.0")


def test_clearing_the_quarantine_lets_the_wave_go_on() -> None:
    fleet = fleet_on_100(soak="PT5S")
    fleet.catalog.append(version_entry("1.1.0"))
    test_a = fleet.sims["test-a"]
    fleet.until(lambda: fleet.settled_on("test-a", "1.1.0"))
    # A quarantine set by hand (as a user rollback does) faults the version in the wave ...
    test_a.status = test_a.status.model_copy(update={"faulted_versions": ["1.1.0"]})
    fleet.wave_pass()
    assert fleet.record("1.1.0").phase is VersionPhase.FAULTED  # type: ignore[union-attr]
    # ... and clearing it lets the wave go on where it was.
    test_a.status = test_a.status.model_copy(update={"faulted_versions": []})
    fleet.until(lambda: fleet.settled_on("prod-a", "1.1.0") and fleet.settled_on("prod-b", "1.1.0"))


def test_a_stage_without_scale_sets_of_the_image_is_passed_at_once() -> None:
    fleet = Fleet([version_entry("1.0.0")])
    fleet.add("prod-a", "prod")
    fleet.add_wave("rollout", wave_spec(("canary", "canary", "PT1H"), ("prod", "prod", "PT0S")))
    fleet.until(lambda: fleet.settled_on("prod-a", "1.0.0"))
    fleet.catalog.append(version_entry("1.1.0"))

    fleet.until(lambda: fleet.settled_on("prod-a", "1.1.0"), limit=60)


def test_the_first_wave_by_name_governs_a_scale_set_both_select() -> None:
    fleet = fleet_on_100()
    fleet.add_wave("zz-other", wave_spec(("all", "prod", "PT0S")))
    fleet.wave_pass()

    other = fleet.waves["zz-other"].status
    assert other.conflicts == ["default/prod-a: rollout", "default/prod-b: rollout"]
    assert other.stages[0].scale_sets == []
    seat = seat_of(list(fleet.waves.values()), {"env": "prod"})
    assert seat is not None
    assert (seat.wave.name, seat.stage) == ("rollout", "prod")


def test_a_users_start_is_not_held_by_the_wave() -> None:
    fleet = fleet_on_100(soak="PT1H")
    fleet.catalog.append(version_entry("1.1.0"))
    fleet.step()
    prod = fleet.sims["prod-a"]
    assert prod.wave is not None

    platform = upgrade_target(
        prod.spec,
        prod.status,
        fleet.catalog,
        fleet.now,
        started_by=StartedBy.PLATFORM,
        wave=prod.wave,
    )
    user = upgrade_target(
        prod.spec, prod.status, fleet.catalog, fleet.now, started_by=StartedBy.USER, wave=prod.wave
    )

    assert platform.image is None
    assert [(h.version, h.reason) for h in platform.held_back] == [("1.1.0", VersionHold.WAVE)]
    assert user.image is not None
    assert user.image.version == "1.1.0"


# --- the record only moves forward -------------------------------------------------------------

SETS = ["t1", "p1", "p2"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(SETS), st.sampled_from(["1.0.0", "1.1.0"]), st.booleans()),
        min_size=1,
        max_size=30,
    )
)
def test_a_stage_once_reached_is_never_taken_back(changes: list[tuple[str, str, bool]]) -> None:
    """Whatever the scale sets do after a version reached a stage (fall back, turn unhealthy),
    and however often the pass runs on its own output (a restart), the stage stays reached."""
    catalog = [version_entry("1.0.0"), version_entry("1.1.0")]
    spec = wave_spec(("test", "test", "PT10S"), ("prod", "prod", "PT0S"))
    wave = Wave("rollout", spec, UpgradeWaveStatus())
    sims = {n: Sim(spec_of(capacity=2), catalog) for n in SETS}
    for sim in sims.values():  # the wave is made while every scale set runs 1.0.0
        sim.status = sim.status.model_copy(
            update={"model_image": _resolved("1.0.0"), "ready_instances": 2}
        )
    labels = {"t1": {"env": "test"}, "p1": {"env": "prod"}, "p2": {"env": "prod"}}
    now = T0
    highest = 0
    for name, version, healthy in changes:
        sim = sims[name]
        sim.status = sim.status.model_copy(
            update={
                "model_image": _resolved(version),
                "ready_instances": 2 if healthy else 0,
            }
        )
        members = [Member("ns", n, labels[n], s.spec, s.status) for n, s in sims.items()]
        for _ in range(2):  # the same pass again changes nothing
            result = plan_wave(wave, 1, members, [wave], catalog, now)
            wave = Wave("rollout", spec, result.status)
        record = next((r for r in wave.status.versions if r.version == "1.1.0"), None)
        if record is not None:
            assert record.stage_index >= highest
            highest = record.stage_index
            assert [s.stage for s in record.stages] == ["test", "prod"][: record.stage_index + 1]
        now += timedelta(seconds=7)


def _resolved(version: str) -> ResolvedImage:
    return ResolvedImage(
        publisher=PUBLISHER,
        offer=OFFER,
        sku=SKU,
        version=version,
        container_image=f"registry.example/os:{version}",
    )


def test_what_every_scale_set_runs_when_the_wave_is_made_is_completed_at_once() -> None:
    fleet = Fleet([version_entry("1.0.0")])
    fleet.add("test-a", "test")
    fleet.add("prod-a", "prod")
    fleet.until(lambda: fleet.settled_on("test-a", "1.0.0") and fleet.settled_on("prod-a", "1.0.0"))

    fleet.add_wave("rollout", wave_spec(("test", "test", "PT1H"), ("prod", "prod", "PT0S")))
    fleet.wave_pass()

    record = fleet.record("1.0.0")
    assert record is not None
    assert (record.phase, record.stage, record.stages) == (VersionPhase.COMPLETED, "prod", [])
