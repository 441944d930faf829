"""A failed instance's cause is kept as a code beside the words: history's error.details code and
the metrics' cause label read the code, not the first word of a sentence."""

from __future__ import annotations

from scaleset_operator.models.status import ResolvedImage, RunningStatusCode, UpgradeRun
from scaleset_operator.planner.history import failure_details
from tests.unit.simworld import Sim, spec_of, version_entry


def _failed_run(tag: str) -> UpgradeRun:
    sim = Sim(spec_of(capacity=5, health_timeout="PT5S"), [version_entry("1.0.0")])
    sim.settle()
    sim.publish(version_entry("1.1.0", tag))
    sim.run_until(lambda s: s.code is not None and s.code is not RunningStatusCode.ROLLING_FORWARD)
    assert sim.run is not None
    return sim.run


def test_a_health_timeout_is_kept_as_its_code_with_the_verdict_in_words() -> None:
    run = _failed_run("unready-1.1.0")

    assert run.failed
    iid = str(run.failed[0])
    assert run.failure_causes[iid] == "HealthTimeout"
    assert run.failure_reasons[iid].startswith("HealthTimeout (")
    detail = failure_details(run, {})[0]
    assert detail.code == "HealthTimeout"


def test_a_fail_fast_cause_is_its_own_code() -> None:
    run = _failed_run("bad-1.1.0")

    iid = str(run.failed[0])
    assert run.failure_causes[iid] == "ImagePullBackOff"
    assert failure_details(run, {})[0].code == "ImagePullBackOff"


def test_a_run_recorded_before_causes_were_kept_still_gets_its_code() -> None:
    image = ResolvedImage(publisher="p", offer="o", sku="s", version="1.1.0", container_image="i")
    run = UpgradeRun.model_validate(
        {
            "code": "Faulted",
            "startTime": "2024-05-01T12:00:00Z",
            "startedBy": "Platform",
            "target": image.wire(),
            "policy": {},
            "failed": [3],
            "failureReasons": {"3": "HealthTimeout (NotReady)"},
        }
    )

    assert failure_details(run, {})[0].code == "HealthTimeout"
