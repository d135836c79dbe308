"""Rotation's workers with in-memory ports: what each writes, reports and hands on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared import dispatch, messages, rotation
from shared.names import Queue, Timer
from shared.planning import RotationConfig
from shared.policies import parse_policies
from shared.settings import Settings
from shared.snapshots import snapshot_name
from tests.builders import SUB, disk, night, snapshot_of, vm
from tests.conftest import base_settings
from tests.fakes import (
    FakeCompute,
    FixedClock,
    MemoryQueues,
    MemoryReporter,
    deliver,
    drain,
    runtime,
)

QUEUES = (Queue.ROTATION_PLAN, Queue.ROTATION_VM, Queue.ROTATION_PRUNE)
POLICIES = parse_policies({"version": 1, "policies": {"daily": {"retention": {"daily": 3}}}})


class World:
    def __init__(self, **settings: str) -> None:
        self.clock = FixedClock(night(27))
        self.queues = MemoryQueues()
        self.reporter = MemoryReporter()
        self.compute = FakeCompute(self.clock)
        values = base_settings(TARGET_SUBSCRIPTIONS=SUB, **settings)
        self.rt = runtime(
            Settings.from_env(values),
            self.clock,
            self.reporter,
            self.queues,
            compute=self.compute,
            policies=POLICIES,
        )
        self.disks = [disk("web-os"), disk("web-data"), disk("db-os")]
        for d in self.disks:
            self.compute.disks[d.id.lower()] = d
        self.compute.vms = [vm("web", "web-os", (0, "web-data")), vm("db", "db-os")]

    def drain(self, *, twice: bool = False) -> int:
        """Run every queued message (ignoring visibility delays) until the queues are empty."""
        return drain(self.rt, self.queues, QUEUES, twice=twice)

    def drain_queue(self, queue: str) -> int:
        """Handle what is on one queue now, once (what it sends on waits); how many there were."""
        pending, self.queues.sent[queue] = self.queues.sent.get(queue, []), []
        for text in pending:
            deliver(self.rt, text)
        return len(pending)

    def start(self, day: int) -> None:
        """The rotation timer fires for the night of `day`."""
        self.clock.current = night(day)
        dispatch.fire(self.rt, Timer.ROTATION)

    def night(self, day: int, *, twice: bool = False) -> None:
        self.start(day)
        self.clock.advance(minutes=1)
        self.drain(twice=twice)

    def ops(self, operation: str, status: str | None = None) -> list:  # type: ignore[type-arg]
        return [
            o
            for o in self.reporter.outcomes
            if o.operation == operation and (status is None or o.status.value == status)
        ]

    def names(self) -> set[str]:
        return {s.name for s in self.compute.snapshots.values()}


def test_a_night_snapshots_every_disk_once_and_reports_the_plan() -> None:
    world = World()
    world.night(27)
    assert world.names() == {snapshot_name(d.id, d.unique_id, "202611270200") for d in world.disks}
    assert [o.vm_name for o in world.ops("plan-vm", "planned")] == ["db", "web"]
    assert len(world.ops("snapshot-create", "succeeded")) == 3
    assert world.ops("run-start")[0].count == 1
    web = next(s for s in world.compute.snapshots.values() if "web" in (s.source_resource_id or ""))
    assert web.tags["lifeboat:policy"] == "daily"
    assert web.tags["lifeboat:slot"] == "202611270200"
    sets = {
        s.tags["lifeboat:set"]
        for s in world.compute.snapshots.values()
        if "web" in (s.source_resource_id or "")
    }
    assert len(sets) == 1


def test_vm_messages_are_paced_and_confirm_comes_after_the_window() -> None:
    world = World(SNAPSHOT_WRITES_PER_SECOND="1", CONFIRM_DELAY_SECONDS="600")
    world.start(27)
    [plan_text] = world.queues.sent["rotation-plan"]
    world.queues.sent["rotation-plan"] = []
    # Record visibility delays by wrapping the fake.
    delays: list[tuple[str, int]] = []
    send = world.queues.send

    def recording_send(queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        delays.append((messages.decode(text)[0].type, visibility_timeout))
        send(queue, text, visibility_timeout=visibility_timeout)

    world.queues.send = recording_send  # type: ignore[method-assign]
    deliver(world.rt, plan_text)
    assert delays == [("rotation-vm", 0), ("rotation-vm", 1), ("rotation-confirm", 603)]


def test_pacing_counts_from_when_sending_began_not_from_each_send() -> None:
    world = World(SNAPSHOT_WRITES_PER_SECOND="1", CONFIRM_DELAY_SECONDS="600")
    world.start(27)
    [plan_text] = world.queues.sent["rotation-plan"]
    world.queues.sent["rotation-plan"] = []
    delays: list[tuple[str, int]] = []
    send = world.queues.send

    def slow_send(queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        delays.append((messages.decode(text)[0].type, visibility_timeout))
        send(queue, text, visibility_timeout=visibility_timeout)
        world.clock.advance(seconds=0.6)  # each enqueue takes time

    world.queues.send = slow_send  # type: ignore[method-assign]
    deliver(world.rt, plan_text)
    # Planned at 0 s and 1 s: the second is sent 0.6 s later, so it waits 0.4 s (whole: 0); the
    # confirm still comes after the window (3 s) plus 600 s from when sending began.
    assert delays == [("rotation-vm", 0), ("rotation-vm", 0), ("rotation-confirm", 602)]


def test_retention_prunes_each_night_once_tonight_is_good() -> None:
    world = World()
    for day in range(20, 28):
        world.night(day)
    web_os = world.disks[0]
    kept = sorted(
        s.name for s in world.compute.snapshots.values() if s.source_resource_id == web_os.id
    )
    assert kept == sorted(
        snapshot_name(web_os.id, web_os.unique_id, f"202611{d}0200") for d in (25, 26, 27)
    )
    assert world.ops("snapshot-delete", "succeeded")


def test_duplicate_deliveries_change_nothing_twice() -> None:
    clean, doubled = World(), World()
    for day in range(20, 28):
        clean.night(day)
        doubled.night(day, twice=True)
    assert clean.names() == doubled.names()
    assert len(doubled.compute.snapshots) == len(clean.compute.snapshots)
    assert not doubled.ops("snapshot-delete", "failed")
    assert not doubled.ops("snapshot-create", "failed")


def test_throttling_requeues_only_the_remaining_disks() -> None:
    world = World()
    world.compute.throttle = 1
    world.night(27)
    assert len(world.names()) == 3
    creates = [o for o in world.ops("snapshot-create", "succeeded")]
    assert len(creates) == 3
    [waited] = world.ops("rotation-vm", "waiting")
    assert waited.details["putBacks"] == 1
    assert waited.details["visibilitySeconds"] >= 2


def test_low_write_and_delete_headroom_defer_the_work_instead_of_meeting_429s() -> None:
    world = World()
    for day in range(20, 27):
        world.night(day)
    before = len(world.compute.writes)

    world.start(27)
    world.drain_queue("rotation-plan")
    world.compute.headroom = 5  # under MIN_WRITE_HEADROOM (20): the VMs' snapshots wait
    assert world.drain_queue("rotation-vm") == 2
    assert len(world.queues.sent["rotation-vm"]) == 2, "both went back on the queue"
    assert len(world.compute.writes) == before
    world.compute.headroom = None
    reads = len(world.compute.reads)
    world.drain_queue("rotation-vm")
    assert len(world.compute.writes) == before + 3
    assert len(world.compute.reads) == reads, "snapshots put back were never attempted: no reads"
    world.drain_queue("rotation-plan")  # the confirm: prunes are queued
    world.compute.deletes_left = 5  # the deletes wait too
    prunes = world.drain_queue("rotation-prune")
    assert prunes > 0
    assert len(world.queues.sent["rotation-prune"]) == prunes
    assert len(world.compute.writes) == before + 3
    world.compute.deletes_left = 150
    reads = len(world.compute.reads)
    world.drain()
    assert world.ops("snapshot-delete", "succeeded")
    assert len(world.compute.reads) == reads, "work put back was never attempted: no re-reads"
    assert not [w for w in world.compute.writes[before + 3 :] if w[0] != "delete"]


def test_work_a_redelivery_puts_back_is_still_read_before_it_is_written() -> None:
    world = World()
    world.start(27)
    world.drain_queue("rotation-plan")
    [web] = [t for t in world.queues.sent["rotation-vm"] if "web-os" in t]
    world.queues.sent["rotation-vm"] = []
    world.compute.throttle = 1
    deliver(world.rt, web, dequeue_count=2)  # the host delivers it again after a crash
    [back] = world.queues.sent["rotation-vm"]
    envelope, put_back = messages.decode(back)
    assert isinstance(put_back, messages.RotationVmRequest)
    assert put_back.recheck is True
    assert envelope.put_backs == 1
    reads = len(world.compute.reads)
    world.drain()
    assert len(world.compute.reads) == reads + 2, "both disks read before their PUTs"
    assert len(world.ops("snapshot-create", "succeeded")) == 2


def test_refusals_are_blocked_and_the_rest_goes_on() -> None:
    world = World()
    world.compute.refuse[world.disks[1].id.lower()] = "ScopeLocked"
    world.night(27)
    [blocked] = world.ops("snapshot-create", "blocked")
    assert blocked.reason.startswith("ScopeLocked")  # type: ignore[union-attr]
    assert len(world.names()) == 2
    [failed] = world.ops("snapshot-create", "failed")  # the confirm step sees it missing
    assert failed.reason == "not found after the create window"


def test_no_prune_for_a_disk_whose_snapshot_tonight_is_not_good() -> None:
    world = World()
    for day in range(24, 27):
        world.night(day)
    for d in world.disks:  # one more than retention keeps, so tonight would prune one
        old = snapshot_of(d, night(22))
        world.compute.snapshots[old.id.lower()] = old
    world.compute.state = "Failed"
    world.night(27)
    assert not [
        o for o in world.ops("snapshot-delete", "succeeded") if "202611270200" in str(o.details)
    ]
    blocked = world.ops("snapshot-delete", "blocked")
    assert blocked
    assert all(o.reason == "tonight's snapshot is not confirmed good" for o in blocked)


def test_dry_run_plans_and_reports_without_writing() -> None:
    world = World(DRY_RUN="true")
    for d in world.disks:
        for day in range(23, 27):
            s = snapshot_of(d, night(day))
            world.compute.snapshots[s.id.lower()] = s
    world.night(27)
    assert world.compute.writes == []
    assert len(world.ops("snapshot-create", "planned")) == 3
    planned_deletes = world.ops("snapshot-delete", "planned")
    assert len(planned_deletes) == 3 * 2  # days 23-24 go, 25-26 and tonight stay
    assert all(o.dry_run for o in world.reporter.outcomes)


def test_a_stale_message_never_writes() -> None:
    world = World()
    world.start(27)
    world.clock.advance(days=2)
    world.drain()
    assert world.compute.writes == []
    assert world.ops("rotation-plan", "skipped")[0].reason.endswith("too late to act")  # type: ignore[union-attr]


def test_held_and_unowned_snapshots_survive_every_night() -> None:
    world = World()
    web_os = world.disks[0]
    held = snapshot_of(
        web_os, night(1), tags={"lifeboat:hold": "case-1", "lifeboat:policy": "daily"}
    )
    manual = snapshot_of(web_os, night(2), name="manual-before-upgrade")
    for s in (held, manual):
        world.compute.snapshots[s.id.lower()] = s
    for day in range(20, 28):
        world.night(day)
    assert {held.name, manual.name} <= world.names()


def test_config_comes_from_settings() -> None:
    world = World(
        SNAPSHOT_RESOURCE_GROUPS=f"{SUB}=rg-snaps-custom",
        DRILL_RESOURCE_GROUPS="rg-drill-a, rg-drill-b",
    )
    config = rotation.rotation_config(world.rt, SUB)
    assert "RG-DRILL-A" in config.drill_groups
    assert "rg-drill-b" in config.drill_groups
    assert "rg-lifeboat-drill-westeurope" in config.drill_groups
    assert "rg-app" not in config.drill_groups
    assert config == RotationConfig(
        snapshot_group="rg-snaps-custom",
        drill_groups=config.drill_groups,
        max_disk_delete_fraction=0.5,
        max_estate_delete_fraction=0.5,
        arm_writes_per_second=5.0,
        snapshot_writes_per_second=3.0,
    )


_ = (timedelta, pytest)
