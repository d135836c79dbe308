"""How far a worker may run ahead of the night's pace: the bucket, and rotation's workers with it.

A stall (a queue answering late) delivers every message that came due meanwhile at once; the
pace lets a few seconds of the budget through and puts the rest back, spread at the budget.
"""

from __future__ import annotations

import dataclasses
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.pacing import Budget, Pace
from shared.rotation import AHEAD_OF_PACE
from shared.snapshots import snapshot_name
from tests.builders import SUB
from tests.test_rotation import World, victims_of


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


ARM = Budget(("writes", "sub"), 20.0)


def test_a_burst_goes_then_the_rest_waits_its_turn_at_the_budget() -> None:
    ticks = Ticks()
    pace = Pace(ticks)
    assert [pace.take(ARM, burst_seconds=3) for _ in range(60)] == [0.0] * 60, "3 s of 20/s"
    waits = [pace.take(ARM, burst_seconds=3) for _ in range(100)]
    assert all(w >= 1 for w in waits), "put back, never slept through"
    # The backlog is spread at the budget: the 100th is owed 100 / 20 = 5 s.
    assert waits[0] == 1 and waits[-1] == 5
    assert sorted(waits) == waits
    ticks.now += 1.0
    assert [pace.take(ARM, burst_seconds=3) for _ in range(20)] == [0.0] * 20, "a second's refill"
    assert pace.take(ARM, burst_seconds=3) > 0


def test_a_write_counts_against_every_budget_or_takes_nothing() -> None:
    ticks = Ticks()
    pace = Pace(ticks)
    region = Budget(("snapshots", "sub", "westeurope"), 1.0)
    other = Budget(("snapshots", "sub", "northeurope"), 1.0)
    assert pace.take(ARM, region, burst_seconds=1) == 0
    assert pace.take(ARM, region, burst_seconds=1) == 1, "the region's bucket is empty"
    # The refused write took no ARM token: the other region still has 19 of them after its one.
    assert [pace.take(ARM, other, burst_seconds=1) for _ in range(2)] == [0.0, 1.0]
    assert [pace.take(ARM, burst_seconds=1) for _ in range(18)] == [0.0] * 18
    assert pace.take(ARM, burst_seconds=1) > 0


def test_one_message_s_writes_always_go_together_however_low_the_budget() -> None:
    pace = Pace(Ticks())
    slow = Budget(("deletes", "sub"), 0.5)
    assert [pace.take(slow, burst_seconds=1, at_least=25) for _ in range(25)] == [0.0] * 25
    assert pace.take(slow, burst_seconds=1, at_least=25) >= 2


def test_off_never_holds_back() -> None:
    pace = Pace.off()
    assert all(pace.take(ARM, burst_seconds=0.1) == 0 for _ in range(10_000))


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=400),
    rate=st.sampled_from([1.0, 5.0, 20.0]),
    burst=st.sampled_from([1.0, 3.0]),
)
def test_no_window_admits_more_than_its_budget_and_one_burst(
    gaps: list[float], rate: float, burst: float
) -> None:
    """Whatever the arrivals (a stall is a run of zero gaps), any T seconds admit at most
    rate x T + the bucket's depth."""
    ticks = Ticks()
    pace = Pace(ticks)
    budget = Budget(("writes", "sub"), rate)
    admitted: list[float] = []
    for gap in gaps:
        ticks.now += gap
        if pace.take(budget, burst_seconds=burst) == 0:
            admitted.append(ticks.now)
    depth = max(1.0, rate * burst)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            span = admitted[j] - start
            assert j - i + 1 <= rate * span + depth + 1e-9


# ------------------------------------------------------------------------- rotation's workers


def paced_world(**values: str) -> tuple[World, Ticks]:
    world = World(**values)
    ticks = Ticks()
    world.rt = dataclasses.replace(world.rt, pace=Pace(ticks))
    return world, ticks


def test_messages_a_stall_delivers_together_are_put_back_past_the_burst_and_done_once() -> None:
    world, ticks = paced_world(
        ARM_WRITES_PER_SECOND="1", SNAPSHOT_WRITES_PER_SECOND="1", PACE_BURST_SECONDS="1"
    )
    world.start(27)
    world.drain_queue("rotation-plan")
    assert world.drain_queue("rotation-vm") == 2, "both VMs' messages at once"
    assert len(world.compute.snapshots) == 1, "db's one disk took the second's budget"
    [waited] = world.ops("rotation-vm", "waiting")
    assert waited.reason == AHEAD_OF_PACE
    [back] = world.queues.visibility["rotation-vm"][-1:]
    assert back >= 1
    assert world.drain_queue("rotation-vm") == 1
    assert len(world.compute.snapshots) == 1, "no time has passed: still ahead of the pace"
    ticks.now += 2.0  # two seconds at 1/s: web's two disks go together
    world.drain_queue("rotation-vm")
    assert world.names() == {snapshot_name(d.id, d.unique_id, "202611270200") for d in world.disks}
    assert len(world.ops("snapshot-create", "succeeded")) == 3, "each disk once"


def test_prunes_past_the_burst_wait_and_then_delete_each_victim_once() -> None:
    world = World(ARM_WRITES_PER_SECOND="1", PACE_BURST_SECONDS="1")
    for day in range(20, 27):
        world.night(day)  # unpaced: these drains take no time
    ticks = Ticks()
    world.rt = dataclasses.replace(world.rt, pace=Pace(ticks))
    world.start(27)
    world.drain_queue("rotation-plan")
    while world.queues.sent.get("rotation-vm"):
        world.drain_queue("rotation-vm")
        ticks.now += 2
    world.clock.advance(minutes=30)
    world.drain_queue("rotation-plan")  # the confirm: one prune message for the three disks
    victims = victims_of(world.queues.sent["rotation-prune"])
    assert len(victims) == 3
    spent = Budget(("deletes", SUB.lower()), 1.0)
    while world.rt.pace.take(spent, burst_seconds=1, at_least=25) == 0:
        pass  # another message's deletes took the burst
    world.drain_queue("rotation-prune")
    assert [o.reason for o in world.ops("rotation-prune", "waiting")] == [AHEAD_OF_PACE]
    assert not [o for o in world.ops("snapshot-delete", "succeeded") if o.resource_id in victims]
    ticks.now += 30
    world.clock.advance(seconds=30)
    world.drain_queue("rotation-prune")
    deleted = [o.resource_id for o in world.ops("snapshot-delete", "succeeded")]
    assert sorted(d for d in deleted if d in victims) == sorted(victims)
    assert not world.queues.sent["rotation-prune"]
