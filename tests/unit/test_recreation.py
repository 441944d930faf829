"""A deleted or failed instance comes back under its own id (so its name and data disks stay).

The pod's name is only free once the old pod is gone, so the planner waits for a terminating
pod and remembers the id in status (a restart of the operator must not forget it); a pod stuck
terminating past its grace period plus slack gives way to a new id so capacity comes back.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from scaleset_operator.planner.actions import CreateInstance
from scaleset_operator.planner.timefmt import stamp
from tests.unit.simworld import Sim, spec_of, version_entry


def settled(capacity: int) -> Sim:
    sim = Sim(spec_of(capacity=capacity, automatic=False), [version_entry("1.0.0")])
    sim.settle()
    assert sim.world.ids() == list(range(capacity))
    return sim


def terminate(sim: Sim, iid: int, *, grace: float = 30.0) -> None:
    """Somebody else deletes the pod: it lingers with a deletionTimestamp grace seconds ahead."""
    inst = sim.world.instances[iid]
    due = stamp(sim.now + timedelta(seconds=grace))
    sim.world.instances[iid] = inst.model_copy(update={"deleting": True, "deletion_due": due})


def creates(sim: Sim) -> list[int]:
    return [a.instance_id for a in sim.plans[-1].actions if isinstance(a, CreateInstance)]


def test_a_terminating_instance_is_awaited_and_comes_back_under_its_id() -> None:
    sim = settled(2)
    terminate(sim, 0)
    sim.step(kubelet=False)
    assert creates(sim) == []
    assert sim.status.returning_instances == [0]
    sim.tick()  # the kubelet finishes the deletion
    sim.step()
    assert creates(sim) == [0]
    assert sim.status.returning_instances == []
    sim.settle()
    assert sim.world.ids() == [0, 1]


def test_the_remembered_id_wins_over_a_lower_free_one() -> None:
    sim = settled(4)
    sim.world.protected.add(3)
    sim.set_spec(capacity=2, automatic=False)
    sim.settle()
    assert sim.world.ids() == [0, 3]  # scale-in spares the protected instance
    terminate(sim, 3)
    sim.world.protected.discard(3)
    sim.step(kubelet=False)
    assert creates(sim) == []
    sim.tick()
    sim.step()
    assert creates(sim) == [3]


def test_memory_survives_a_restart_between_passes() -> None:
    sim = settled(3)
    terminate(sim, 1)
    sim.step(kubelet=False)
    remembered = sim.status
    sim.tick()
    # A fresh operator reads the status back and finds the pod gone.
    sim.status = remembered
    sim.step()
    assert creates(sim) == [1]


def test_a_pod_stuck_terminating_gives_way_to_a_new_id() -> None:
    sim = settled(2)
    terminate(sim, 0, grace=10)
    plan = sim.plan()
    assert plan.requeue_after is not None
    assert plan.requeue_after <= 40.0 + 1e-6
    sim.step(advance=39, kubelet=False)
    sim.step(kubelet=False)
    assert creates(sim) == []
    sim.step(kubelet=False)
    assert creates(sim) == [2]
    assert sim.status.returning_instances == []


def test_failed_instance_is_recreated_under_its_id() -> None:
    sim = settled(3)
    sim.world.instances[2] = sim.world.instances[2].model_copy(update={"phase": "Failed"})
    sim.settle()
    assert sim.world.ids() == [0, 1, 2]


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(min_value=1, max_value=8),
    victims=st.sets(st.integers(min_value=0, max_value=7)),
)
def test_deleted_instances_keep_their_ids(capacity: int, victims: set[int]) -> None:
    sim = settled(capacity)
    for iid in sorted(victims):
        if iid < capacity:
            terminate(sim, iid)
    sim.step(kubelet=False)
    assert creates(sim) == []
    sim.tick()
    sim.settle()
    assert sim.world.ids() == list(range(capacity))
