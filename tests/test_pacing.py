"""How far a worker may run ahead of the night's pace: the minute, and rotation's workers with it.

A stall (a queue answering nothing for seconds) delivers every message that came due meanwhile at
once; the pace lets them go while the last 60 seconds stay within the budget and its catch-up,
and puts the rest back for when the minute has room.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from shared import messages
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


ARM = Budget(("writes", "sub"), 1.0)  # 60 a minute; 63 with 5% to catch up


def test_a_stall_s_backlog_goes_at_once_while_the_minute_has_room_then_waits_its_place() -> None:
    ticks = Ticks()
    pace = Pace(ticks)
    for _ in range(40):  # paced: one a second
        assert pace.take(ARM, catch_up=0.05) == 0
        ticks.now += 1.0
    ticks.now += 15.0  # a stall: fifteen came due meanwhile, and arrive with the next eight
    assert [pace.take(ARM, catch_up=0.05) for _ in range(23)] == [0.0] * 23, "40 + 23 = 63"
    waits = [pace.take(ARM, catch_up=0.05) for _ in range(5)]
    # No room until the minute's first writes leave it (at 60, 61, ... s): one place each.
    assert waits == [5.0, 6.0, 7.0, 8.0, 9.0]
    ticks.now = 60.0
    assert pace.take(ARM, catch_up=0.05) == 0, "the write of 0 s has left the minute"
    assert pace.take(ARM, catch_up=0.05) > 0


def test_a_write_counts_against_every_budget_or_is_recorded_in_none() -> None:
    ticks = Ticks()
    pace = Pace(ticks)
    arm = Budget(("writes", "sub"), 2.0)  # 120 a minute
    region = Budget(("snapshots", "sub", "westeurope"), 1.0)  # 60 a minute
    other = Budget(("snapshots", "sub", "northeurope"), 1.0)
    assert [pace.take(arm, region, catch_up=0) for _ in range(60)] == [0.0] * 60
    assert pace.take(arm, region, catch_up=0) > 0, "the region's minute is full"
    # The refused write was not counted against ARM: the other region has all 60 it leaves.
    assert [pace.take(arm, other, catch_up=0) for _ in range(60)] == [0.0] * 60
    assert pace.take(arm, catch_up=0) > 0


def test_one_message_s_writes_always_go_together_however_low_the_budget() -> None:
    pace = Pace(Ticks())
    slow = Budget(("deletes", "sub"), 0.1)  # 6 a minute
    assert [pace.take(slow, catch_up=0.05, at_least=25) for _ in range(25)] == [0.0] * 25
    assert pace.take(slow, catch_up=0.05, at_least=25) >= 1


def test_off_never_holds_back() -> None:
    pace = Pace.off()
    assert all(pace.take(ARM, catch_up=0) == 0 for _ in range(10_000))


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0, max_value=2.0), min_size=1, max_size=500),
    rate=st.sampled_from([0.5, 1.0, 5.0]),
    catch_up=st.sampled_from([0.0, 0.05, 0.1]),
)
def test_no_minute_admits_more_than_its_budget_and_the_catch_up(
    gaps: list[float], rate: float, catch_up: float
) -> None:
    """Whatever the arrivals (a stall is a long gap, then a run of zero gaps), no 60 seconds
    admit more than the budget's minute and its catch-up."""
    ticks = Ticks()
    pace = Pace(ticks)
    budget = Budget(("writes", "sub"), rate)
    admitted: list[float] = []
    for gap in gaps:
        ticks.now += gap
        if pace.take(budget, catch_up=catch_up) == 0:
            admitted.append(ticks.now)
    cap = max(1.0, rate * 60 * (1 + catch_up))
    for i, start in enumerate(admitted):
        inside = [t for t in admitted[i:] if t < start + 60]
        assert len(inside) <= cap + 1e-9


# ------------------------------------------------------------------------- rotation's workers


def paced_world(**values: str) -> tuple[World, Ticks]:
    world = World(**values)
    ticks = Ticks()
    world.rt = dataclasses.replace(world.rt, pace=Pace(ticks))
    return world, ticks


def test_messages_a_stall_delivers_together_wait_for_room_in_the_minute_and_are_done_once() -> None:
    # Two writes a minute: db's disk and web's first go, web's second waits for the minute.
    world, ticks = paced_world(
        ARM_WRITES_PER_SECOND="0.0333", SNAPSHOT_WRITES_PER_SECOND="0.0333", PACE_CATCH_UP="0"
    )
    world.start(27)
    world.drain_queue("rotation-plan")
    assert world.drain_queue("rotation-vm") == 2, "both VMs' messages at once"
    assert len(world.compute.snapshots) == 2
    [waited] = world.ops("rotation-vm", "waiting")
    assert waited.reason == AHEAD_OF_PACE
    [back] = world.queues.visibility["rotation-vm"][-1:]
    assert back >= 60, "for when the minute has room"
    [rest] = world.queues.sent["rotation-vm"]
    [left] = messages.decode(rest)[1].disks  # type: ignore[attr-defined]
    assert left.disk_id.endswith("/web-data")
    assert world.drain_queue("rotation-vm") == 1
    assert len(world.compute.snapshots) == 2, "no time has passed: the minute is still full"
    ticks.now += 60.0
    world.drain_queue("rotation-vm")
    assert world.names() == {snapshot_name(d.id, d.unique_id, "202611270200") for d in world.disks}
    assert len(world.ops("snapshot-create", "succeeded")) == 3, "each disk once"


def test_prunes_past_the_minute_wait_and_then_delete_each_victim_once() -> None:
    world = World(ARM_WRITES_PER_SECOND="0.0166", PACE_CATCH_UP="0")
    for day in range(20, 27):
        world.night(day)  # unpaced: these drains take no time
    ticks = Ticks()
    world.rt = dataclasses.replace(world.rt, pace=Pace(ticks))
    world.start(27)
    world.drain_queue("rotation-plan")
    while world.queues.sent.get("rotation-vm"):
        world.drain_queue("rotation-vm")
        ticks.now += 60
    world.clock.advance(minutes=30)
    world.drain_queue("rotation-plan")  # the confirm: one prune message for the three disks
    victims = victims_of(world.queues.sent["rotation-prune"])
    assert len(victims) == 3
    spent = Budget(("deletes", SUB.lower()), 0.0166)
    while world.rt.pace.take(spent, catch_up=0, at_least=25) == 0:
        pass  # another message's deletes took the minute
    world.drain_queue("rotation-prune")
    assert [o.reason for o in world.ops("rotation-prune", "waiting")] == [AHEAD_OF_PACE]
    assert not [o for o in world.ops("snapshot-delete", "succeeded") if o.resource_id in victims]
    ticks.now += 60
    world.clock.advance(seconds=60)
    world.drain_queue("rotation-prune")
    deleted = [o.resource_id for o in world.ops("snapshot-delete", "succeeded")]
    assert sorted(d for d in deleted if d in victims) == sorted(victims)
    assert not world.queues.sent["rotation-prune"]
