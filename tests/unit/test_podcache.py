"""The watch's copy of a scale set's pods: seeded by a LIST, kept by watch events, trusted for a
while after each LIST."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scaleset_operator.controller.podcache import PodCache, slim
from scaleset_operator.k8s.pods import build_pod, ready_on_spec, to_instance
from scaleset_operator.models.scaleset import HealthProbe, HealthSource
from scaleset_operator.planner.actions import CreateInstance
from scaleset_operator.planner.health import HealthState, verdict
from tests.unit.simworld import image_of, spec_of

KEY = ("ns", "web")


def pod(name: str, rv: str = "1") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def names(pods: list[dict[str, Any]] | None) -> list[str] | None:
    return None if pods is None else sorted(p["metadata"]["name"] for p in pods)


def make() -> tuple[PodCache, list[float]]:
    clock = [0.0]
    return PodCache(max_age=10.0, clock=lambda: clock[0], spread=0.0), clock


def test_unseeded_cache_is_not_trusted() -> None:
    cache, _ = make()
    cache.observe(KEY, "ADDED", pod("web-0"))
    assert cache.pods(KEY) is None


def test_seeded_cache_follows_watch_events() -> None:
    cache, _ = make()
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0"), pod("web-1")])
    assert names(cache.pods(KEY)) == ["web-0", "web-1"]
    cache.observe(KEY, "DELETED", pod("web-0"))
    cache.observe(KEY, "ADDED", pod("web-2"))
    cache.observe(KEY, "MODIFIED", pod("web-1", rv="7"))
    got = cache.pods(KEY)
    assert names(got) == ["web-1", "web-2"]
    assert got is not None
    assert {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in got}["web-1"] == "7"


def test_events_during_the_list_are_played_again_on_its_answer() -> None:
    cache, _ = make()
    cache.mark(KEY)
    cache.observe(KEY, "MODIFIED", pod("web-0", rv="9"))
    cache.observe(KEY, "DELETED", pod("web-1", rv="10"))
    cache.observe(KEY, "ADDED", pod("web-2", rv="11"))
    cache.seed(KEY, [pod("web-0", rv="8"), pod("web-1", rv="5")])
    got = cache.pods(KEY)
    assert names(got) == ["web-0", "web-2"]
    assert got is not None
    assert {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in got}["web-0"] == "9"


def test_an_event_older_than_the_list_is_overtaken_by_the_next_one() -> None:
    # The LIST saw rv 8; the watch was still at rv 7: its rv 8 event follows and wins.
    cache, _ = make()
    cache.mark(KEY)
    cache.observe(KEY, "MODIFIED", pod("web-0", rv="7"))
    cache.seed(KEY, [pod("web-0", rv="8")])
    cache.observe(KEY, "MODIFIED", pod("web-0", rv="8"))
    got = cache.pods(KEY)
    assert got is not None
    assert got[0]["metadata"]["resourceVersion"] == "8"


def test_events_before_the_mark_are_not_played_again() -> None:
    cache, _ = make()
    cache.observe(KEY, "MODIFIED", pod("web-0", rv="3"))
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0", rv="4")])
    got = cache.pods(KEY)
    assert got is not None
    assert got[0]["metadata"]["resourceVersion"] == "4"


def test_too_many_events_during_the_list_leave_the_copy_untrusted(monkeypatch: Any) -> None:
    monkeypatch.setattr("scaleset_operator.controller.podcache.REPLAY_LIMIT", 2)
    cache, _ = make()
    cache.mark(KEY)
    for rv in range(3):
        cache.observe(KEY, "MODIFIED", pod("web-0", rv=str(rv)))
    cache.seed(KEY, [pod("web-0", rv="2")])
    assert cache.pods(KEY) is None
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0", rv="2")])
    assert names(cache.pods(KEY)) == ["web-0"]


def test_a_list_without_a_mark_is_not_trusted() -> None:
    cache, _ = make()
    cache.seed(KEY, [pod("web-0")])
    assert cache.pods(KEY) is None


def test_the_copy_expires() -> None:
    cache, clock = make()
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0")])
    clock[0] = 9.9
    assert cache.pods(KEY) is not None
    clock[0] = 10.1
    assert cache.pods(KEY) is None


def test_copies_listed_together_expire_one_at_a_time() -> None:
    clock = [0.0]
    cache = PodCache(max_age=100.0, clock=lambda: clock[0], spread=0.5)
    keys = [("shop", f"web-{i}") for i in range(200)]
    bounds = sorted(cache.trusted_for(k) for k in keys)
    assert bounds[0] >= 100.0
    assert bounds[-1] < 150.0
    # Spread over the whole range, not bunched: every tenth of it holds some.
    assert {int((b - 100.0) / 5) for b in bounds} == set(range(10))
    for key in keys:
        cache.mark(key)
        cache.seed(key, [pod("web-0")])
    clock[0] = 125.0
    expired = [k for k in keys if cache.pods(k) is None]
    assert expired == [k for k in keys if cache.trusted_for(k) < 125.0]
    assert 0 < len(expired) < len(keys)
    # A set's bound does not depend on the process (not on Python's salted hash).
    assert PodCache(max_age=100.0, spread=0.5).trusted_for(keys[0]) == cache.trusted_for(keys[0])


def test_forget_drops_everything() -> None:
    cache, _ = make()
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0")])
    cache.mark(KEY)  # a LIST in flight when the scale set goes away
    cache.forget(KEY)
    assert cache.pods(KEY) is None
    cache.seed(KEY, [pod("web-0")])  # its answer, after the forget: no mark, not trusted
    assert cache.pods(KEY) is None


def full_pod(instance_id: int = 1, rv: str = "5") -> dict[str, Any]:
    spec = spec_of(capacity=3)
    scaleset = {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}}
    action = CreateInstance(instance_id, image_of("1.0.0"), "pub:offer:sku:1.0.0", None)
    whole = build_pod(scaleset, spec, "hash", action)
    whole["metadata"].update(
        uid=f"p-{instance_id}",
        resourceVersion=rv,
        creationTimestamp="2026-01-01T00:00:00Z",
        managedFields=[{"manager": "kwok", "fieldsV1": {"f:status": {}}}],
    )
    whole["spec"]["nodeName"] = "node-1"
    whole["status"] = {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:05Z"}
        ],
        "containerStatuses": [
            {
                "name": "os",
                "image": image_of("1.0.0"),
                "ready": True,
                "restartCount": 2,
                "state": {"running": {}},
            }
        ],
    }
    return whole


def test_a_slim_pod_plans_like_the_whole_one() -> None:
    spec = spec_of(capacity=3)
    whole = full_pod()
    small = slim(whole)
    assert "managedFields" not in small["metadata"]
    zones = {"node-1": "zone-2"}
    assert to_instance(small, spec, zones, None) == to_instance(whole, spec, zones, None)
    assert to_instance(small, spec, zones, {"web-1"}) == to_instance(whole, spec, zones, {"web-1"})


def test_instances_are_parsed_again_only_when_their_inputs_change() -> None:
    cache, _ = make()
    spec = spec_of(capacity=3)
    zones = {"node-1": "zone-2"}
    pods = [full_pod(0), full_pod(1)]
    first = cache.instances(KEY, pods, spec, zones, None)
    assert first == tuple(to_instance(p, spec, zones, None) for p in pods)
    again = cache.instances(KEY, pods, spec, zones, None)
    assert all(a is b for a, b in zip(first, again, strict=True))
    changed = full_pod(1, rv="6")
    changed["status"]["conditions"][0]["status"] = "False"
    later = cache.instances(KEY, [pods[0], changed], spec, zones, None)
    assert later[0] is first[0]
    assert later[1] == to_instance(changed, spec, zones, None)
    assert not later[1].ready
    moved = cache.instances(KEY, [pods[0], changed], spec, {"node-1": "zone-3"}, None)
    assert [i.zone for i in moved] == ["zone-3", "zone-3"]
    behind_lb = cache.instances(KEY, [pods[0], changed], spec, {"node-1": "zone-3"}, {"web-0"})
    assert [i.endpoint_ready for i in behind_lb] == [True, False]
    assert len(cache.instances(KEY, [changed], spec, zones, None)) == 1
    probe = HealthProbe(source=HealthSource.APPLICATION_HEALTH, condition_type="AppHealthy")
    other = spec.model_copy(update={"health_probe": probe})
    changed["status"]["conditions"].append({"type": "AppHealthy", "status": "True"})
    (gated,) = cache.instances(KEY, [changed], other, zones, None)
    assert gated.gate_ready is True
    assert cache.instances(KEY, [changed], other, zones, None) == (
        to_instance(changed, other, zones, None),
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[tuple[str, str, int]], int, int, int]:
    """Pod changes in watch order (type, name, rv), and where the mark, the LIST's snapshot and
    the seed fall in it (mark <= snapshot, mark <= seed)."""
    changes = []
    live: set[str] = set()
    for rv in range(1, draw(st.integers(1, 30)) + 1):
        name = draw(st.sampled_from(["web-0", "web-1", "web-2"]))
        if name in live and draw(st.booleans()):
            changes.append(("DELETED", name, rv))
            live.discard(name)
        else:
            changes.append(("MODIFIED" if name in live else "ADDED", name, rv))
            live.add(name)
    mark = draw(st.integers(0, len(changes)))
    snapshot = draw(st.integers(mark, len(changes)))
    seed = draw(st.integers(mark, len(changes)))
    return changes, mark, snapshot, seed


def truth(changes: list[tuple[str, str, int]], upto: int) -> dict[str, str]:
    state: dict[str, str] = {}
    for kind, name, rv in changes[:upto]:
        if kind == "DELETED":
            state.pop(name, None)
        else:
            state[name] = str(rv)
    return state


@given(histories())
def test_once_the_watch_passes_the_list_the_copy_is_the_truth(
    case: tuple[list[tuple[str, str, int]], int, int, int],
) -> None:
    changes, mark_at, snapshot, seed_at = case
    cache, _ = make()
    for position in range(len(changes) + 1):
        if position == mark_at:
            cache.mark(KEY)
        if position == seed_at:
            listed = [pod(n, rv) for n, rv in truth(changes, snapshot).items()]
            cache.seed(KEY, listed)
        if position >= seed_at and position >= snapshot:
            got = cache.pods(KEY)
            assert got is not None
            assert {p["metadata"]["name"]: p["metadata"]["resourceVersion"] for p in got} == (
                truth(changes, position)
            )
        if position < len(changes):
            kind, name, rv = changes[position]
            cache.observe(KEY, kind, pod(name, str(rv)))


def test_verdicts_are_kept_for_the_instances_of_the_last_parse_only() -> None:
    cache, _ = make()
    spec = spec_of(capacity=3)
    zones = {"node-1": "zone-2"}
    now, grace = datetime(2026, 1, 1, 0, 1, tzinfo=UTC), timedelta(0)
    pods = [full_pod(0), full_pod(1)]
    first = cache.instances(KEY, pods, spec, zones, None)
    memo = cache.verdicts(KEY)
    judged = [memo.judge(i, spec.health_probe, now, grace) for i in first]
    assert [v.state for v in judged] == [HealthState.HEALTHY, HealthState.HEALTHY]
    changed = full_pod(1, rv="6")
    changed["status"]["conditions"][0]["status"] = "False"
    later = cache.instances(KEY, [pods[0], changed], spec, zones, None)
    assert len(cache.verdicts(KEY)) == 1  # the changed pod's old instance is forgotten
    assert cache.verdicts(KEY).judge(later[0], spec.health_probe, now, grace) is judged[0]
    fresh = cache.verdicts(KEY).judge(later[1], spec.health_probe, now, grace)
    assert fresh.state is HealthState.UNHEALTHY
    cache.forget(KEY)
    assert len(cache.verdicts(KEY)) == 0


def seeded() -> PodCache:
    cache, _ = make()
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0", "1"), pod("web-1", "2")])
    return cache


def caught_up(cache: PodCache) -> bool:
    taken = cache.snapshot(KEY)
    assert taken is not None
    return taken.caught_up


def test_the_copy_has_caught_up_once_the_watch_reports_each_write_of_ours() -> None:
    cache = seeded()
    assert caught_up(cache)
    cache.expect(KEY, pod("web-0", "5"))  # our PATCH answered with version 5
    cache.expect(KEY, pod("web-1", "6"))
    assert not caught_up(cache)
    cache.observe(KEY, "MODIFIED", pod("web-0", "5"))
    assert not caught_up(cache)
    cache.observe(KEY, "MODIFIED", pod("web-1", "6"))
    assert caught_up(cache)


def test_a_watch_event_that_comes_before_the_writes_answer_counts() -> None:
    cache = seeded()
    cache.observe(KEY, "MODIFIED", pod("web-0", "5"))
    cache.observe(KEY, "MODIFIED", pod("web-0", "8"))  # the kubelet's update right after it
    cache.expect(KEY, pod("web-0", "5"))
    assert caught_up(cache)


def test_an_event_of_another_version_confirms_nothing_but_a_deletion_does() -> None:
    cache = seeded()
    cache.expect(KEY, pod("web-0", "5"))
    cache.observe(KEY, "MODIFIED", pod("web-0", "4"))  # older than our write
    assert not caught_up(cache)
    cache.observe(KEY, "DELETED", pod("web-0", "9"))
    assert caught_up(cache)


def test_a_list_answers_for_every_write_before_it() -> None:
    cache = seeded()
    cache.expect(KEY, pod("web-0", "5"))
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0", "5"), pod("web-1", "2")])
    assert caught_up(cache)


def test_a_lost_race_or_an_answer_without_a_version_sends_the_next_pass_to_a_list() -> None:
    cache = seeded()
    cache.distrust(KEY)
    assert cache.pods(KEY) is None
    cache = seeded()
    cache.expect(KEY, {"metadata": {"name": "web-0"}})
    assert cache.pods(KEY) is None


def test_too_many_versions_between_lists_leave_the_copy_untrusted(monkeypatch: Any) -> None:
    import scaleset_operator.controller.podcache as podcache

    monkeypatch.setattr(podcache, "SEEN_LIMIT", 3)
    cache = seeded()
    for rv in ("5", "6", "7", "8"):
        cache.observe(KEY, "MODIFIED", pod("web-0", rv))
    assert cache.pods(KEY) is None


def test_while_the_watch_reconnects_the_copy_is_not_caught_up() -> None:
    live = [True]
    cache = PodCache(live=lambda: live[0])
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0", "1")])
    assert caught_up(cache)
    live[0] = False
    assert not caught_up(cache)
    assert cache.pods(KEY) is not None  # still good enough for passes that change nothing


def test_a_copy_taken_before_the_watch_reports_our_write_stays_behind() -> None:
    """The verdict belongs to the copy it came with: a pass that plans on a copy taken before
    the watch reported our write must not learn afterwards that "the copy" has caught up."""
    cache = seeded()
    cache.expect(KEY, pod("web-0", "5"))
    before = cache.snapshot(KEY)
    cache.observe(KEY, "MODIFIED", pod("web-0", "5"))
    after = cache.snapshot(KEY)
    assert before is not None
    assert after is not None
    assert not before.caught_up
    assert [p["metadata"]["resourceVersion"] for p in before.pods] == ["1", "2"]
    assert after.caught_up
    assert [p["metadata"]["resourceVersion"] for p in after.pods] == ["5", "2"]


def since_write(cache: PodCache) -> float:
    taken = cache.snapshot(KEY)
    assert taken is not None
    return taken.since_write


def test_while_the_copy_lacks_writes_of_ours_it_counts_from_the_last_of_them() -> None:
    cache, clock = make()
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0", "1"), pod("web-1", "2")])
    assert since_write(cache) == 0.0
    cache.expect(KEY, pod("web-0", "5"))
    clock[0] = 0.25
    cache.expect(KEY, pod("web-1", "6"))
    clock[0] = 0.5
    assert since_write(cache) == 0.25
    cache.observe(KEY, "MODIFIED", pod("web-1", "6"))
    assert since_write(cache) == 0.25  # the first write is still missing
    cache.observe(KEY, "MODIFIED", pod("web-0", "5"))
    assert since_write(cache) == 0.0
    clock[0] = 2.0
    cache.expect(KEY, pod("web-0", "9"))
    clock[0] = 2.1
    assert since_write(cache) == pytest.approx(0.1)
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0", "9"), pod("web-1", "6")])
    assert since_write(cache) == 0.0


def test_while_the_watch_reconnects_the_copy_may_be_behind_by_anything() -> None:
    live = [True]
    cache = PodCache(live=lambda: live[0])
    cache.mark(KEY)
    cache.seed(KEY, [pod("web-0", "1")])
    live[0] = False
    assert since_write(cache) == math.inf


def test_a_pod_counts_as_ready_only_on_the_images_its_spec_names() -> None:
    ready = full_pod(0)
    assert ready_on_spec(ready)
    assert ready_on_spec(slim(ready))
    patched = full_pod(0)
    patched["spec"]["containers"][0]["image"] = image_of("1.1.0")  # old container still Ready
    assert not ready_on_spec(patched)
    patched["status"]["containerStatuses"][0]["image"] = image_of("1.1.0")
    assert ready_on_spec(patched)
    patched["status"]["conditions"][0]["status"] = "False"
    assert not ready_on_spec(patched)
    assert not ready_on_spec({"metadata": {"name": "web-0"}, "status": None})


def test_a_kubelet_reporting_the_image_normalised_counts_as_on_the_spec_image() -> None:
    pod = full_pod(0)
    pod["spec"]["containers"][0]["image"] = "busybox:1.36"
    pod["status"]["containerStatuses"][0]["image"] = "docker.io/library/busybox:1.36"
    assert ready_on_spec(pod)
    pod["status"]["containerStatuses"][0]["image"] = "docker.io/library/busybox:1.35"
    assert not ready_on_spec(pod)


def test_unready_names_the_members_the_copy_does_not_show_ready() -> None:
    cache = seeded()
    ready, restarting = full_pod(0, rv="7"), full_pod(1, rv="8")
    restarting["spec"]["containers"][0]["image"] = image_of("1.1.0")
    cache.observe(KEY, "MODIFIED", ready)
    cache.observe(KEY, "MODIFIED", restarting)
    names = frozenset({"web-0", "web-1", "web-gone"})
    assert cache.unready(KEY, names) == {"web-1"}


def test_the_runs_of_a_crash_loop_are_read_from_a_kubelets_status() -> None:
    """The status a real kubelet gave a crash-looping container (trimmed): terminated, with
    the previous run terminated too. Both runs' start times survive the slim copy."""
    spec = spec_of(capacity=3)
    looping = full_pod(0)
    looping["spec"]["containers"][0]["image"] = image_of("1.1.0")
    looping["status"]["conditions"][0]["status"] = "False"
    looping["status"]["containerStatuses"][0] = {
        "name": "os",
        "image": image_of("1.1.0"),
        "ready": False,
        "restartCount": 3,
        "started": False,
        "state": {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": "2026-11-30T07:46:11Z",
                "finishedAt": "2026-11-30T07:46:12Z",
            }
        },
        "lastState": {
            "terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": "2026-11-30T07:45:59Z",
                "finishedAt": "2026-11-30T07:46:00Z",
            }
        },
    }
    inst = to_instance(slim(looping), spec, {}, None)
    assert inst is not None
    assert inst.os_status is not None
    assert not inst.os_status.running
    assert inst.os_status.exited_run_started_at == "2026-11-30T07:46:11Z"
    assert inst.os_status.last_started_at == "2026-11-30T07:45:59Z"
    assert inst.os_status.last_finished_at == "2026-11-30T07:46:00Z"
    changed = datetime(2026, 11, 30, 7, 45, 55, 534000, tzinfo=UTC)
    now = changed + timedelta(seconds=20)
    v = verdict(inst, HealthProbe(), now, since=changed, grace=timedelta(seconds=5))
    assert v.fail_fast
    assert v.reason == "CrashLoopBackOff"
