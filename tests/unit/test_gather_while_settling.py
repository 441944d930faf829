"""While a batch has members still to settle, a pass names them and the worker lets watch
events pile up a little longer before the next pass, until the watch reports the last of them
Ready; a wake-up the planner asked for is kept to the time."""

from __future__ import annotations

import asyncio
import itertools
import time

from scaleset_operator.controller.reconcile import Outcome, _next, _Planned
from scaleset_operator.controller.workers import Workers
from scaleset_operator.models.instance import Instance
from scaleset_operator.models.status import ScaleSetStatus
from tests.unit.simworld import Sim, spec_of, version_entry

KEY = ("ns", "web")


def test_a_pass_names_the_members_its_batch_still_waits_for() -> None:
    sim = Sim(
        spec_of(capacity=10, rolling={"maxBatchInstancePercent": 20}), [version_entry("1.0.0")]
    )
    sim.settle()
    # Never Ready: the first batch's two members stay open until their health timeout.
    sim.publish(version_entry("1.1.0", tag="unready-1.1.0"))
    named = [sim.step(1.0).open_ids for _ in range(10)]
    assert sim.run is not None
    assert sim.run.batch is not None
    assert sim.run.batch.number == 1
    assert len(named[-1]) == 2
    assert set(named[-1]) <= set(sim.run.batch.instance_ids)
    # Once the batch is settled (rolled back after the health timeout), none is named.
    sim.run_until(lambda s: s.run is not None and s.run.batch is None, limit=200)
    assert sim.plan().open_ids == ()


def _timed_passes(outcome: Outcome, pokes: int) -> list[float]:
    """Pass times of a worker whose every pass returns `outcome`, poked every 20 ms."""
    times: list[float] = []

    def run_pass(namespace: str, name: str) -> Outcome:
        times.append(time.monotonic())
        return outcome

    workers = Workers(run_pass, debounce=0.01)

    async def main() -> None:
        workers.poke(KEY)
        for _ in range(pokes):
            await asyncio.sleep(0.02)
            workers.poke(KEY)
        await asyncio.sleep(0.3)
        await workers.stop_all()

    asyncio.run(main())
    return times


def test_events_are_gathered_longer_while_a_batch_is_settling() -> None:
    quick = _timed_passes(Outcome(None), pokes=40)
    gathered = _timed_passes(Outcome(None, gather=0.25), pokes=40)

    # 0.8 s of events every 20 ms: a pass per few events, against one per quarter second.
    assert len(quick) >= 12
    assert len(gathered) <= 6


def test_a_requested_wake_up_is_not_delayed_by_gathering() -> None:
    times: list[float] = []

    def run_pass(namespace: str, name: str) -> Outcome:
        times.append(time.monotonic())
        return Outcome(0.05, gather=1.0)

    workers = Workers(run_pass, debounce=0.0)

    async def main() -> None:
        workers.poke(KEY)
        await asyncio.sleep(0.6)
        await workers.stop_all()

    asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) >= 4
    assert max(gaps) < 0.5


def test_the_pass_after_the_last_awaited_member_turns_ready_comes_at_once() -> None:
    """While a batch settles the worker gathers events; once the watch has seen every member
    the last pass waited for Ready, the pass that closes the batch is due and runs at once."""
    woken: list[float] = []

    def run_pass(namespace: str, name: str) -> Outcome:
        woken.append(time.monotonic())
        return Outcome(None, gather=2.0, awaiting=frozenset({"web-0", "web-1"}))

    workers = Workers(run_pass, debounce=0.5)
    last_ready: list[float] = []

    async def main() -> None:
        workers.poke(KEY)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if workers.awaiting(KEY):  # the first pass is done and its outcome taken
                break
        workers.pod_changed(KEY, "web-0", True)
        workers.pod_changed(KEY, "web-1", False)  # restarted, not Ready yet
        workers.pod_changed(KEY, "web-9", True)  # not a member the batch waits for
        await asyncio.sleep(0.3)
        assert len(woken) == 1, "a member still open: the worker gathers"
        last_ready.append(time.monotonic())
        workers.pod_changed(KEY, "web-1", True)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(woken) > 1:
                break
        await workers.stop_all()

    asyncio.run(main())
    assert len(woken) == 2
    assert woken[1] - last_ready[0] < 0.25, "neither the debounce nor the gathering waited out"


def test_members_ready_while_the_pass_ran_count_when_events_came_meanwhile() -> None:
    woken: list[float] = []

    def run_pass(namespace: str, name: str) -> Outcome:
        woken.append(time.monotonic())
        if len(woken) == 1:
            workers.poke(KEY)  # an event while the pass runs
        return Outcome(None, gather=2.0, awaiting=frozenset({"web-0"}))

    workers = Workers(run_pass, debounce=0.5, unready=lambda key, names: set())

    async def main() -> None:
        workers.poke(KEY)
        for _ in range(300):
            await asyncio.sleep(0.01)
            if len(woken) > 1:
                break
        await workers.stop_all()

    asyncio.run(main())
    assert len(woken) == 2
    assert woken[1] - woken[0] < 0.25


def _endpoint_change_after_a_settling_pass(member_ready: bool) -> tuple[list[float], float]:
    """Times of the passes of a worker whose every pass waits for member web-0 (shown Ready
    by the pod copy or not), and when the endpoints changed: 0.35 s after the first pass,
    with another event between."""
    woken: list[float] = []

    def run_pass(namespace: str, name: str) -> Outcome:
        woken.append(time.monotonic())
        return Outcome(None, gather=2.0, awaiting=frozenset({"web-0"}))

    workers = Workers(
        run_pass, debounce=0.05, unready=lambda key, names: set() if member_ready else set(names)
    )
    changed: list[float] = []

    async def main() -> None:
        workers.poke(KEY)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if woken:
                break
        await asyncio.sleep(0.05)  # the outcome taken
        workers.poke(KEY)  # another event: gathered as before
        await asyncio.sleep(0.3)
        changed.append(time.monotonic())
        workers.endpoints_changed(KEY)
        await asyncio.sleep(0.5)
        await workers.stop_all()

    asyncio.run(main())
    return woken, changed[0]


def test_with_every_member_ready_an_endpoint_change_ends_the_gathering() -> None:
    """Health from a Service's endpoints: the pods are Ready before their endpoints are, so
    a batch still waits once the pod watch has shown every member Ready."""
    woken, changed = _endpoint_change_after_a_settling_pass(member_ready=True)
    assert len(woken) == 2
    assert woken[0] < changed < woken[1] < changed + 0.25


def test_an_endpoint_change_while_members_are_not_ready_is_gathered() -> None:
    woken, _ = _endpoint_change_after_a_settling_pass(member_ready=False)
    assert len(woken) == 1, "web-0 not Ready yet: the worker gathers"


def test_a_pass_names_the_pods_of_the_members_still_open() -> None:
    def planned(open_ids: tuple[int, ...]) -> _Planned:
        return _Planned(
            pods=[],
            instances=tuple(
                Instance(instance_id=i, name=f"web-{i}", os_image="os:1") for i in range(4)
            ),
            actions=(),
            events=(),
            status=ScaleSetStatus(),
            requeue_after=None,
            open_ids=open_ids,
        )

    # The last open member too: the worker ends the gathering once the watch reports it Ready.
    last = _next(planned((3,)), 0.0, 0.25)
    assert (last.awaiting, last.gather) == ({"web-3"}, 0.25)
    bulk = _next(planned((0, 1, 2)), 0.0, 0.25)
    assert (bulk.awaiting, bulk.gather) == ({"web-0", "web-1", "web-2"}, 0.25)
    idle = _next(planned(()), 0.0, 0.25)
    assert (idle.awaiting, idle.gather) == (frozenset(), 0.0)
