"""Rotation's workers with in-memory ports: what each writes, reports and hands on."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from shared import dispatch, messages, rotation
from shared.names import Queue, Timer
from shared.planning import RotationConfig
from shared.policies import parse_policies
from shared.ports import LimitReachedError, RefusedError, ThrottledError
from shared.rotation import locked_scopes
from shared.snapshots import snapshot_name
from tests.builders import SUB, disk, night, snapshot_of, vm
from tests.conftest import base_settings
from tests.fakes import (
    FakeWorld,
    FixedClock,
    MemoryQueues,
    deliver,
    drain,
)

QUEUES = (Queue.ROTATION_PLAN, Queue.ROTATION_VM, Queue.ROTATION_PRUNE)
POLICIES = parse_policies({"version": 1, "policies": {"daily": {"retention": {"daily": 3}}}})


class World(FakeWorld):
    def __init__(self, **settings: str) -> None:
        values = base_settings(TARGET_SUBSCRIPTIONS=SUB, **settings)
        super().__init__(FixedClock(night(27)), MemoryQueues(), values, POLICIES)
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


@pytest.mark.parametrize(
    ("seconds_per_send", "expected"),
    [
        pytest.param(
            0.0,
            [("rotation-vm", 0), ("rotation-vm", 1), ("rotation-confirm", 603)],
            id="vm-messages-paced-confirm-after-the-window",
        ),
        # Planned at 0 s and 1 s: the second is sent 0.6 s later, so it waits 0.4 s (whole: 0);
        # the confirm still comes after the window (3 s) plus 600 s from when sending began.
        pytest.param(
            0.6,
            [("rotation-vm", 0), ("rotation-vm", 0), ("rotation-confirm", 602)],
            id="pacing-counts-from-when-sending-began-not-from-each-send",
        ),
    ],
)
def test_vm_messages_are_paced_and_confirm_comes_after_the_window(
    seconds_per_send: float, expected: list[tuple[str, int]]
) -> None:
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
        if seconds_per_send:
            world.clock.advance(seconds=seconds_per_send)  # each enqueue takes time

    world.queues.send = recording_send  # type: ignore[method-assign]
    deliver(world.rt, plan_text)
    assert delays == expected


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
    victims = len(victims_of(world.queues.sent["rotation-prune"]))
    assert victims == 3, "one a disk"
    messages_sent = world.drain_queue("rotation-prune")
    assert messages_sent == 1, "the three disks' deletes in one message"
    assert len(world.queues.sent["rotation-prune"]) == messages_sent
    assert len(world.compute.writes) == before + 3
    world.compute.deletes_left = 150
    reads = len(world.compute.reads)
    world.drain()
    tonight = [
        o for o in world.ops("snapshot-delete", "succeeded") if o.details["slot"] == "202611270200"
    ]
    assert len(tonight) == victims
    # Each delete reads its victim and its disk's snapshot of the night, once: the deferred
    # attempts read nothing (they stopped at the headroom reading).
    assert len(world.compute.reads) == reads + 2 * victims
    assert not [w for w in world.compute.writes[before + 3 :] if w[0] != "delete"]


def victims_of(texts: list[str]) -> list[str]:
    """Every snapshot id the prune messages name, in order."""
    return [i for t in texts for i in messages.decode(t)[1].snapshot_ids]  # type: ignore[attr-defined]


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
    # Blocked is final for the night: the confirm sees it missing and never calls it failed.
    assert not world.ops("snapshot-create", "failed")
    [missing] = world.ops("snapshot-create", "unconfirmed")
    assert missing.resource_id == world.disks[1].id
    assert (missing.reason or "").startswith("not found after the create window: never taken")
    [end] = world.ops("run-end")
    assert end.status == "succeeded"
    assert end.details["totals"]["snapshotsNotTaken"] == 1


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


# ------------------------------------------------------- authority at the point of action


def confirmed_night(world: World, day: int = 27) -> list[str]:
    """Nights up to `day`, stopped with tonight's prunes queued (planned, not yet acted on)."""
    for earlier in range(20, day):
        world.night(earlier)
    world.start(day)
    world.drain_queue("rotation-plan")
    world.drain_queue("rotation-vm")
    world.drain_queue("rotation-plan")  # the confirm
    return list(world.queues.sent["rotation-prune"])


def prune_message(
    world: World, source: object, *snapshot_ids: str, slot: str = "202611270200"
) -> str:
    request = messages.RotationPruneRequest(
        subscriptionId=SUB,
        sourceId=source.id,
        slot=slot,
        snapshotIds=list(snapshot_ids),  # type: ignore[attr-defined]
    )
    envelope = messages.make_envelope(request, run_id="r", idempotency_key="k", created=night(27))
    return messages.encode(envelope)


def test_a_hold_put_on_after_the_confirm_is_honoured_by_the_prune() -> None:
    world = World()
    prunes = confirmed_night(world)
    victims = [messages.decode(t)[1].snapshot_ids[0] for t in prunes]  # type: ignore[attr-defined]
    held = world.compute.snapshots[victims[0].lower()]
    world.compute.snapshots[victims[0].lower()] = dataclasses.replace(
        held, tags={**held.tags, "LifeBoat:Hold": "case-7"}
    )
    world.drain()
    assert victims[0].lower() in world.compute.snapshots, "the held snapshot survives"
    [kept] = world.ops("snapshot-delete", "held")
    assert kept.resource_id == victims[0]
    assert {w[1] for w in world.compute.writes if w[0] == "delete"} >= set(victims[1:])


def test_a_lock_is_reported_held() -> None:
    world = World()
    prunes = confirmed_night(world)
    victim = messages.decode(prunes[0])[1].snapshot_ids[0]  # type: ignore[attr-defined]
    world.compute.refuse[victim.lower()] = "ScopeLocked"
    world.drain()
    [held] = world.ops("snapshot-delete", "held")
    assert (held.reason or "").startswith("held by lock: ")
    assert held.details["heldBy"] == "lock"


def test_a_lock_is_named_from_azures_scope_locked_message() -> None:
    message = (
        "The scope '/subscriptions/s/resourceGroups/rg-lifeboat-snapshots/providers/"
        "Microsoft.Compute/snapshots/lb-x' cannot perform delete operation because following "
        "scope(s) are locked: '/subscriptions/s/resourceGroups/rg-lifeboat-snapshots'. "
        "Please remove the lock and try again."
    )
    assert locked_scopes(message) == "'/subscriptions/s/resourceGroups/rg-lifeboat-snapshots'"
    assert locked_scopes("refused") == "refused"


@pytest.mark.parametrize(
    "forge",
    ["tonight", "another disk's", "outside the group", "unserved subscription", "not a snapshot"],
)
def test_a_prune_asking_for_what_the_planner_never_would_is_refused_and_deletes_nothing(
    forge: str,
) -> None:
    world = World()
    confirmed_night(world)
    world.queues.sent["rotation-prune"] = []
    web_os, web_data = world.disks[0], world.disks[1]
    tonight = snapshot_of(web_os, night(27)).id
    other = "/subscriptions/9d9d9d9d-0000-4000-8000-000000000009"
    victim = {
        "tonight": tonight,
        "another disk's": snapshot_of(web_data, night(26)).id,
        "outside the group": snapshot_of(web_os, night(26), group="rg-app").id,
        "unserved subscription": other + tonight[tonight.index("/resourceGroups") :],
        "not a snapshot": web_os.id,
    }[forge]
    reads, writes = len(world.compute.reads), len(world.compute.writes)
    result = deliver(world.rt, prune_message(world, web_os, victim))
    assert isinstance(result, dispatch.Refuse), result
    assert len(world.compute.writes) == writes, "nothing deleted"
    if forge in ("outside the group", "unserved subscription", "not a snapshot"):
        assert len(world.compute.reads) == reads, "refused before any read"
    assert world.queues.sent["rotation-prune-poison"]
    [refused] = [o for o in world.reporter.outcomes if o.status == "refused"]
    assert refused.details["type"] == "rotation-prune"


def test_a_stale_prune_acts_on_nothing() -> None:
    world = World()
    prunes = confirmed_night(world)
    world.clock.advance(days=2)
    writes = len(world.compute.writes)
    for text in prunes:
        deliver(world.rt, text)
    assert len(world.compute.writes) == writes
    assert world.ops("rotation-prune", "skipped")


def test_a_rotation_vm_for_a_subscription_lifeboat_does_not_serve_is_refused() -> None:
    world = World()
    world.start(27)
    world.drain_queue("rotation-plan")
    text = world.queues.sent["rotation-vm"][0].replace(SUB, "9d9d9d9d-0000-4000-8000-000000000009")
    world.queues.sent["rotation-vm"] = []
    result = deliver(world.rt, text)
    assert isinstance(result, dispatch.Refuse)
    assert world.compute.writes == []
    assert world.compute.reads == []


def test_an_old_rotation_vm_reads_its_vm_again_and_skips_it_when_out_of_scope() -> None:
    world = World()
    world.start(27)
    world.drain_queue("rotation-plan")
    world.clock.advance(minutes=45)  # older than MESSAGE_FRESHNESS_MINUTES
    web = next(v for v in world.compute.vms if v.name == "web")
    world.compute.vms = [
        dataclasses.replace(web, tags={}) if v is web else v for v in world.compute.vms
    ]
    world.drain_queue("rotation-vm")
    created = {w[1] for w in world.compute.writes if w[0] == "create"}
    assert created == {world.disks[2].id}, "only db's disk: web was untagged after the plan"
    [skipped] = [o for o in world.ops("snapshot-create", "skipped") if o.vm_name == "web"]
    assert "no longer in scope" in (skipped.reason or "")


def test_a_hold_on_a_snapshot_survives_a_duplicate_rotation_vm() -> None:
    world = World()
    world.start(27)
    world.drain_queue("rotation-plan")
    [web] = [t for t in world.queues.sent["rotation-vm"] if "web-os" in t]
    world.queues.sent["rotation-vm"] = []
    deliver(world.rt, web)
    taken = snapshot_of(world.disks[0], night(27)).id.lower()
    held = world.compute.snapshots[taken]
    world.compute.snapshots[taken] = dataclasses.replace(held, tags={"lifeboat:hold": "x"})
    writes = len(world.compute.writes)
    deliver(world.rt, web, dequeue_count=2)  # the host delivers it again
    assert len(world.compute.writes) == writes, "no PUT over what exists"
    assert world.compute.snapshots[taken].tags == {"lifeboat:hold": "x"}


@pytest.mark.parametrize("duplicate", ["redelivered", "re-sent by a redelivered plan"])
def test_a_duplicate_rotation_vm_is_already_taken_never_a_second_succeeded(
    duplicate: str,
) -> None:
    world = World()
    world.start(27)
    world.drain_queue("rotation-plan")
    sets = list(world.queues.sent["rotation-vm"])
    world.queues.sent["rotation-vm"] = []
    for text in sets:
        deliver(world.rt, text)
    if duplicate == "redelivered":
        for text in sets:  # the host delivers each again (a crash before the delete)
            deliver(world.rt, text, dequeue_count=2)
    else:
        world.queues.sent["rotation-plan"] = []
        world.start(27)  # the plan again: its sets read before they PUT
        deliver(world.rt, world.queues.sent["rotation-plan"].pop(), dequeue_count=2)
        world.drain_queue("rotation-vm")
    creates = [w for w in world.compute.writes if w[0] == "create"]
    assert sorted(w[1] for w in creates) == sorted(d.id for d in world.disks), "one PUT a disk"
    for d in world.disks:
        assert [s for s, _ in rows_of(world, d.id)] == ["succeeded", "already-taken"]
    world.drain()  # the night's confirm counts every disk as done
    [end] = world.ops("run-end")
    assert end.status == "succeeded"
    assert end.details["totals"]["snapshotsGood"] == 3
    assert not world.ops("snapshot-create", "unconfirmed")


# ------------------------------------------------------------ Azure's faults and limits


def rows_of(world: World, disk_id: str) -> list[tuple[str, str]]:
    """(status, reason) of every snapshot-create row about one disk, in order."""
    return [
        (o.status.value, o.reason or "")
        for o in world.ops("snapshot-create")
        if (o.resource_id or "").lower() == disk_id.lower()
    ]


@pytest.mark.parametrize(
    "held",
    [
        pytest.param(
            ThrottledError(1200, "throttled: OperationNotAllowed"), id="compute-429-1200s"
        ),
        pytest.param(
            ThrottledError(300, "snapshot limit: 7 per disk every 5 minutes: Up to 7 ..."),
            id="seven-per-five-minutes",
        ),
    ],
)
def test_a_create_azure_holds_back_waits_is_confirmed_late_and_never_fails(
    held: ThrottledError,
) -> None:
    world = World()
    web_data = world.disks[1]
    world.compute.errors[web_data.id.lower()] = [held]
    world.start(27)
    world.drain_queue("rotation-plan")
    world.drain_queue("rotation-vm")  # web-os is taken, web-data goes back on the queue
    [back] = world.queues.sent["rotation-vm"]
    assert world.queues.visibility["rotation-vm"][-1] >= held.retry_after  # never earlier
    assert [d.disk_id for d in messages.decode(back)[1].disks] == [web_data.id]  # type: ignore[attr-defined]
    [waiting] = world.ops("snapshot-create", "waiting")
    assert waiting.details["heldSeconds"] == held.retry_after
    assert waiting.reason == f"held by Azure: {held}"
    # The night's confirm (the create window plus 15 minutes) comes before the work that Azure
    # held, as it may in Azure: the put-back waits Retry-After plus jitter...
    world.clock.advance(seconds=held.retry_after + 900)
    world.drain_queue("rotation-plan")
    # ... the held create goes when the window reopens, and confirms itself.
    world.drain_queue("rotation-vm")
    world.drain_queue("rotation-plan")
    assert rows_of(world, web_data.id) == [
        ("waiting", f"held by Azure: {held}"),
        ("unconfirmed", rotation.NOT_TAKEN),
        ("succeeded", ""),
        ("succeeded", ""),
    ]
    assert world.ops("snapshot-create")[-1].details["confirmed"] is True
    assert not world.ops("snapshot-create", "failed")
    assert len(world.names()) == 3


def test_a_create_held_briefly_is_confirmed_by_the_night_alone() -> None:
    world = World()
    world.compute.errors[world.disks[1].id.lower()] = [ThrottledError(2.0)]
    world.night(27)
    statuses = [s for s, _ in rows_of(world, world.disks[1].id)]
    # drain ignores delays: the confirm still came before the put-back work.
    assert statuses == ["waiting", "unconfirmed", "succeeded"]
    assert not world.queues.sent.get("rotation-plan"), "no confirm of its own: it was not late"


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        pytest.param(
            LimitReachedError("SnapshotsLimitReached", "...", "snapshot limit: 500 per disk"),
            "waiting",
            "snapshot limit: 500 per disk",
            id="500-per-disk-waits-for-the-prunes",
        ),
        pytest.param(
            RefusedError(
                "OperationNotAllowed",
                "snapshot limit: 75,000 per subscription and region: Operation could not ...",
            ),
            "blocked",
            "OperationNotAllowed: snapshot limit: 75,000 per subscription and region: "
            "Operation could not ...",
            id="75000-per-region-is-blocked",
        ),
    ],
)
def test_a_limit_that_lasts_the_night_is_reported_once_and_never_failed(
    error: Exception, status: str, reason: str
) -> None:
    world = World()
    web_data = world.disks[1]
    world.compute.errors[web_data.id.lower()] = [error]
    world.night(27)
    assert rows_of(world, web_data.id) == [(status, reason), ("unconfirmed", rotation.NOT_TAKEN)]
    assert not world.ops("rotation-vm", "waiting"), "no put-back: it would not heal tonight"
    assert not [o for o in world.reporter.outcomes if o.status.value == "failed"]
    [end] = world.ops("run-end")
    assert end.status.value == "succeeded"
    assert end.details["totals"]["snapshotsNotTaken"] == 1
    assert len(world.names()) == 2
    # No prune for that disk (tonight's snapshot is not good); the others' go on.
    assert not world.queues.sent.get("rotation-prune-poison")


def test_plan_lists_azure_does_not_answer_are_put_back_then_fail_the_plan_not_poison() -> None:
    world = World()
    world.compute.silent["list_vms"] = 99
    world.night(27)
    waits = world.ops("rotation-plan", "waiting")
    assert [w.details["afterSeconds"] for w in waits] == [60, 120, 240]
    assert all("Azure did not answer the inventory" in (w.reason or "") for w in waits)
    [failed] = world.ops("rotation-plan", "failed")
    assert failed.reason is not None
    assert failed.reason.startswith("Azure did not answer the inventory lists after 4 tries")
    assert "HTTP 503" in failed.reason
    assert failed.subscription_id == SUB
    assert world.ops("run-end", "failed")
    assert not world.queues.sent.get("rotation-plan-poison")
    assert world.compute.writes == []


def test_plan_lists_that_answer_again_within_the_tries_plan_the_night() -> None:
    world = World()
    world.compute.silent["list_snapshots"] = 2
    world.night(27)
    assert len(world.ops("rotation-plan", "waiting")) == 2
    assert len(world.ops("snapshot-create", "succeeded")) == 3
    assert world.ops("run-end", "succeeded")


@pytest.mark.parametrize(
    ("silent", "rows"),
    [
        pytest.param("list_snapshots", 3, id="snapshot-list-each-planned-disk"),
        pytest.param("list_vms", 1, id="vm-list-the-subscription"),
    ],
)
def test_confirm_lists_azure_does_not_answer_leave_disks_unconfirmed_and_prunes_waiting(
    silent: str, rows: int
) -> None:
    world = World()
    for day in range(20, 27):
        world.night(day)
    world.start(27)
    world.drain_queue("rotation-plan")
    world.drain_queue("rotation-vm")
    world.compute.silent[silent] = 99
    world.drain()
    assert len(world.ops("rotation-confirm", "waiting")) == 3
    unconfirmed = world.ops("snapshot-create", "unconfirmed")
    assert len(unconfirmed) == rows
    assert all(
        "Azure did not answer the confirm's lists after 4 tries" in (o.reason or "")
        for o in unconfirmed
    )
    assert all("prunes wait for the next night" in (o.reason or "") for o in unconfirmed)
    if rows == 3:
        assert {o.resource_id for o in unconfirmed} == {d.id for d in world.disks}
    tonight = [o for o in world.reporter.outcomes if o.details.get("slot") == "202611270200"]
    assert not [o for o in tonight if o.operation == "snapshot-delete"], "prunes wait"
    assert [o.status.value for o in tonight if o.operation == "run-end"] == ["failed"]
    assert not world.queues.sent.get("rotation-plan-poison")
    # The next night confirms and prunes as usual: nothing was skipped for good.
    world.compute.silent.clear()
    world.night(28)
    assert world.ops("run-end", "succeeded")


def test_low_read_headroom_defers_prunes_and_a_vms_confirm_before_they_read() -> None:
    world = World()
    prunes = confirmed_night(world)
    assert prunes
    world.compute.reads_left = 10  # under MIN_READ_HEADROOM: the GETs wait
    reads, writes = len(world.compute.reads), len(world.compute.writes)
    assert world.drain_queue("rotation-prune") == len(prunes)
    assert len(world.queues.sent["rotation-prune"]) == len(prunes), "all went back"
    assert (len(world.compute.reads), len(world.compute.writes)) == (reads, writes)
    assert all(
        (o.reason or "") == "read headroom 10 is low"
        for o in world.ops("rotation-prune", "waiting")
    )
    world.compute.reads_left = rotation.MIN_READ_HEADROOM
    world.drain()
    assert len(world.compute.writes) > writes, "the prunes went on once the reads refilled"
    # A VM's own confirm (onboarding's, a late night set) waits the same way.
    confirm = messages.RotationConfirmVmRequest(
        subscriptionId=SUB,
        vmId=world.compute.vms[1].id,
        vmName="db",
        resourceGroup="rg-app",
        policy="daily",
        slot="202611270200",
        setId="s",
        disks=[
            messages.DiskSnapshot(
                diskId=world.disks[2].id,
                uniqueId=world.disks[2].unique_id,
                location="westeurope",
                snapshotName=snapshot_name(
                    world.disks[2].id, world.disks[2].unique_id, "202611270200"
                ),
            )
        ],
    )
    text = messages.encode(
        messages.make_envelope(confirm, run_id="r", idempotency_key="k", created=night(27))
    )
    world.compute.reads_left = 0
    reads = len(world.compute.reads)
    result = deliver(world.rt, text)
    assert isinstance(result, dispatch.PutBack)
    assert len(world.compute.reads) == reads


# ------------------------------------------------------------ every VM and disk gets its row


def test_every_shape_gets_its_row_with_a_stable_skip_word() -> None:
    """Tag mistakes, a tagged disk on no VM and a VHD VM: a row each, `Details.skip` naming the
    shape; none of them fails or blocks the night."""
    world = World()
    loose = disk("loose-data", tags={" LifeBoat:Policy ": "daily"})
    world.compute.disks[loose.id.lower()] = loose
    world.compute.disks[disk("typo-os").id.lower()] = disk("typo-os")
    world.compute.disks[disk("gold-os").id.lower()] = disk("gold-os")
    world.compute.vms += [
        vm("typo", "typo-os", tags={"lifebaot:policy": "daily"}),
        vm("gold", "gold-os", tags={"lifeboat:policy": "gold-plus"}),
        vm("vhd", None, tags={"Lifeboat:Policy": " Daily "}),
    ]
    world.night(27)
    rows = {
        (o.operation, o.status.value, o.details.get("skip")): o
        for o in world.reporter.outcomes
        if o.details.get("skip")
    }
    typo = rows["plan-vm", "skipped", "tag-typo"]
    assert typo.reason == 'tag "lifebaot:policy" looks like "lifeboat:policy"'
    assert (typo.vm_name, typo.severity) == ("typo", "warning")
    gold = rows["plan-vm", "skipped", "unknown-policy"]
    assert gold.reason == "unknown policy gold-plus; known: daily"
    unattached = rows["snapshot-create", "skipped", "not-attached"]
    assert (unattached.resource_id, unattached.reason) == (
        loose.id,
        "not attached to a VM (tag the VM)",
    )
    vhd = rows["snapshot-create", "skipped", "unmanaged-disk"]
    assert (vhd.vm_name, vhd.reason) == (
        "vhd",
        "unmanaged disk: the OS disk is a VHD in a storage account",
    )
    assert len(rows) == 4
    [end] = world.ops("run-end")
    assert end.status.value == "succeeded"
    assert (end.details["totals"]["vmsSkipped"], end.details["totals"]["disksSkipped"]) == (2, 2)


def test_held_snapshots_are_reported_each_night_with_who_holds_them() -> None:
    world = World()
    world.night(20)
    [first] = [
        s for s in world.compute.snapshots.values() if "db-os" in (s.source_resource_id or "")
    ]
    world.compute.snapshots[first.id.lower()] = dataclasses.replace(
        first, tags={**first.tags, "Lifeboat:Hold ": "incident-4711"}
    )
    for day in range(21, 27):
        world.night(day)
    assert first.id.lower() in world.compute.snapshots
    held = [o for o in world.ops("snapshot-delete", "held") if o.resource_id == first.id]
    assert len({o.run_id for o in held}) == 6  # every night since, once a night
    assert (
        held[-1].reason == "held by tag lifeboat:hold=incident-4711: kept whatever retention says"
    )
    assert held[-1].details["heldBy"] == "tag"


def test_lookalike_snapshots_are_counted_in_one_row_a_night_never_deleted_nor_blocked() -> None:
    world = World()
    db, web = world.disks[2], world.disks[0]
    # Named for the db disk, taken from the web disk: the name's hash fails its creationData.
    lookalikes = [
        snapshot_of(web, night(day), name=snapshot_of(db, night(day)).name) for day in (1, 2)
    ]
    for s in lookalikes:
        world.compute.snapshots[s.id.lower()] = s
    world.night(27)
    world.night(28)
    rows = world.ops("lookalike-snapshots")
    assert [(o.status.value, o.count) for o in rows] == [("skipped", 2), ("skipped", 2)]
    assert rows[0].details["snapshots"][0]["rule"].startswith("its name's hash is not that of")
    assert all(s.id.lower() in world.compute.snapshots for s in lookalikes)
    assert not world.ops("snapshot-delete", "blocked")


def test_a_disk_at_500_snapshots_prunes_its_oldest_surplus_and_never_deadlocks() -> None:
    """Tonight's create is refused at Azure's 500 (waiting, not failed); the confirm still
    prunes the oldest surplus up to the cap, never the newest good; the next night has room."""
    world = World()
    db = world.disks[2]
    start = night(27) - timedelta(days=500)
    for i in range(500):
        s = snapshot_of(db, start + timedelta(days=i))
        world.compute.snapshots[s.id.lower()] = s
    world.compute.errors[db.id.lower()] = [
        LimitReachedError(
            "SnapshotsLimitReached", "500 incremental snapshots", "snapshot limit: 500 per disk"
        )
    ]
    world.night(27)
    [waiting] = [o for o in world.ops("snapshot-create", "waiting") if o.resource_id == db.id]
    assert waiting.reason == "snapshot limit: 500 per disk"
    assert not world.ops("snapshot-create", "failed")
    deleted = [w[1].lower() for w in world.compute.writes if w[0] == "delete"]
    of_db = sorted(
        (s for s in world.compute.snapshots.values() if s.source_resource_id == db.id),
        key=lambda s: s.time_created,
    )
    # The oldest surplus, one prune message's worth (the disk then has room), within the cap.
    assert len(deleted) == 100
    assert of_db[0].time_created == start + timedelta(days=100, seconds=3)
    assert of_db[-1].time_created == start + timedelta(days=499, seconds=3)  # the newest stays
    [left] = [o for o in world.ops("snapshot-delete", "waiting") if o.resource_id == db.id]
    assert left.details == {**left.details, "remaining": 397, "atLimit": True}
    world.night(28)  # room now: tonight's snapshot is taken and the surplus keeps going
    assert snapshot_name(db.id, db.unique_id, "202611280200") in world.names()
    of_db_now = [s for s in world.compute.snapshots.values() if s.source_resource_id == db.id]
    assert len(of_db_now) == 401 - 200  # 400 + tonight's; the cap deletes half, oldest first


def test_a_prune_at_the_limit_still_never_deletes_the_newest_good_snapshot() -> None:
    world = World()
    db = world.disks[2]
    start = night(27) - timedelta(days=500)
    snaps = [snapshot_of(db, start + timedelta(days=i)) for i in range(500)]
    for s in snaps:
        world.compute.snapshots[s.id.lower()] = s
    deliver(world.rt, prune_message(world, db, snaps[0].id, snaps[-1].id))
    assert snaps[0].id.lower() not in world.compute.snapshots
    assert snaps[-1].id.lower() in world.compute.snapshots
    [blocked] = world.ops("snapshot-delete", "blocked")
    assert blocked.reason == "the disk's newest good snapshot (the disk is at 500)"
    # Under the limit, the same message waits for tonight's snapshot as before.
    world2 = World()
    for s in snaps[:499]:
        world2.compute.snapshots[s.id.lower()] = s
    deliver(world2.rt, prune_message(world2, db, snaps[0].id))
    assert snaps[0].id.lower() in world2.compute.snapshots
    [waits] = world2.ops("snapshot-delete", "blocked")
    assert waits.reason == "tonight's snapshot is not confirmed good"


def test_count_all_snapshots_lists_the_subscription_and_says_what_the_warning_counted() -> None:
    """COUNT_ALL_SNAPSHOTS lists every snapshot of the subscription for the warnings (Azure Disk
    Backup's 450 of a disk, outside Lifeboat's group); without it nothing outside is listed."""
    db = disk("db-os")
    foreign = [
        dataclasses.replace(
            s, id=s.id.replace("rg-lifeboat-snapshots", "AzureBackupRG_westeurope_1") + f"-{i}"
        )
        for i, s in enumerate(snapshot_of(db, night(1) + timedelta(hours=h)) for h in range(450))
    ]
    off = World()
    off.compute.foreign_snapshots = foreign  # type: ignore[attr-defined]
    off.compute.silent["list_subscription_snapshots"] = 1  # would fail the plan if listed
    off.night(27)
    assert not [o for o in off.ops("quota-warning") if o.resource_id == db.id]
    assert off.compute.silent["list_subscription_snapshots"] == 1, "never listed"

    on = World(COUNT_ALL_SNAPSHOTS="true")
    on.compute.foreign_snapshots = foreign  # type: ignore[attr-defined]
    on.night(27)
    [warning] = [o for o in on.ops("quota-warning") if o.resource_id == db.id]
    assert (warning.count, warning.details["counted"]) == (450, "subscription")
    assert "450 snapshots in the subscription" in (warning.reason or "")
    # Counting never makes Lifeboat delete outside its group: Azure Backup's are all there.
    assert not [o for o in on.ops("snapshot-delete") if "AzureBackupRG" in (o.resource_id or "")]


def test_a_policy_that_may_keep_unlimited_snapshots_warns_without_a_number() -> None:
    world = World()
    world.rt = dataclasses.replace(
        world.rt,
        policies=parse_policies(
            {"version": 1, "policies": {"daily": {"retention": {"daily": -1}}}}
        ),
    )
    world.night(27)
    warnings = world.ops("quota-warning")
    assert warnings
    assert {(o.count, o.details["seenByLifeboat"], o.details["limit"]) for o in warnings} == {
        (None, None, "policy-over-disk-limit"),
        (None, None, "policies-over-region-limit"),
    }


# ------------------------------------------------------------ several disks a prune message


def test_prune_messages_carry_several_disks_of_one_region_paced_on_the_delete_budget() -> None:
    from shared.planning import DiskPrune, PrunePlan, Removal

    def pruned(name: str, location: str, victims: int) -> DiskPrune:
        d = dataclasses.replace(disk(name), location=location)
        removals = tuple(
            Removal(dataclasses.replace(snapshot_of(d, at), location=location), "r")
            for at in (night(27) - timedelta(days=1 + i) for i in range(victims))
        )
        return DiskPrune(d.id, "daily", (), removals, ())

    disks = [pruned(f"we-{i:03d}", "westeurope", 1) for i in range(60)]
    disks += [pruned(f"ne-{i:03d}", "northeurope", 1) for i in range(30)]
    disks += [pruned("big", "westeurope", 160), pruned("mid", "northeurope", 30)]
    region = {r.snapshot.id: r.snapshot.location for d in disks for r in d.delete}
    sent = rotation.prune_messages(PrunePlan(tuple(disks)), SUB, "202611270200", 20.0)
    requests: list[messages.RotationPruneRequest] = [o.payload for o in sent]  # type: ignore[misc]
    sizes = [len(r.snapshot_ids) for r in requests]
    assert sorted(i for r in requests for i in r.snapshot_ids) == sorted(region), "each once"
    # 60 one-victim disks in 3 messages of at most 25, 30 in 2; big alone in chunks of 100 and
    # 60; mid (30) alone: 8 messages where one a disk made 92.
    assert len(sent) == 8
    for r in requests:
        assert len({region[i] for i in r.snapshot_ids}) == 1, "one region a message"
        if len(r.disks) > 1:
            assert len(r.snapshot_ids) <= rotation.DELETES_PER_MESSAGE
    # A disk's victims are split only at the chunk (the at-500 rule counts a disk's snapshots
    # once per message).
    big = [r for r in requests if r.disks[0].source_id.endswith("/big")]
    assert [len(r.snapshot_ids) for r in big] == [100, 60]
    # Paced per subscription on the delete budget: each message after the deletes before it.
    assert [o.delay for o in sent] == [sum(sizes[:i]) / 20.0 for i in range(len(sent))]
    assert all(o.early for o in sent)
    # Regions take turns: northeurope does not wait for all of westeurope.
    order = [region[r.snapshot_ids[0]] for r in requests]
    assert order[:2] in (["northeurope", "westeurope"], ["westeurope", "northeurope"])


def several_disks_night(world: World) -> str:
    """Night 27 confirmed with its three disks' prunes in one message (one victim each)."""
    [text] = confirmed_night(world)
    request = messages.decode(text)[1]
    assert len(request.disks) == 3  # type: ignore[attr-defined]
    world.queues.sent["rotation-prune"] = []
    world.compute.writes.clear()
    return text


def test_a_redelivered_prune_of_several_disks_deletes_nothing_twice() -> None:
    world = World()
    text = several_disks_night(world)
    victims = victims_of([text])
    deliver(world.rt, text)
    deletes = [w for w in world.compute.writes if w[0] == "delete"]
    assert sorted(w[1] for w in deletes) == sorted(victims)
    rows = len(world.reporter.outcomes)
    deliver(world.rt, text, dequeue_count=2)  # the host delivers it again after a crash
    assert [w for w in world.compute.writes if w[0] == "delete"] == deletes, "no second delete"
    again = world.reporter.outcomes[rows:]
    assert [(o.status.value, o.resource_id) for o in again] == [("succeeded", v) for v in victims]
    first = {o.id for o in world.reporter.outcomes[:rows] if o.operation == "snapshot-delete"}
    assert {o.id for o in again} <= first, "the same rows again, not new ones"


def test_a_prune_throttled_mid_message_puts_back_the_rest() -> None:
    world = World()
    text = several_disks_night(world)
    victims = victims_of([text])
    world.compute.errors[victims[1].lower()] = [ThrottledError(30.0)]
    deliver(world.rt, text)
    assert [w[1] for w in world.compute.writes if w[0] == "delete"] == victims[:1]
    [back] = world.queues.sent["rotation-prune"]
    assert world.queues.visibility["rotation-prune"][-1] >= 30
    envelope, rest = messages.decode(back)
    assert isinstance(rest, messages.RotationPruneRequest)
    assert rest.snapshot_ids == victims[1:], "the rest: this disk's victim on, and the next disk"
    assert rest.recheck is False, "Azure refused the delete: nothing of the rest was done"
    assert envelope.put_backs == 1
    reads = len(world.compute.reads)
    world.drain()
    assert [w[1] for w in world.compute.writes if w[0] == "delete"] == victims
    assert len(world.compute.reads) == reads + 2 * 2, "each victim left and its night read"
    assert len(world.ops("snapshot-delete", "succeeded")) >= 3


def test_a_single_disk_prune_of_version_2_still_in_flight_is_done() -> None:
    world = World()
    text = several_disks_night(world)
    request = messages.decode(text)[1]
    one = request.disks[1]  # type: ignore[attr-defined]
    raw = json.loads(text)
    raw["version"] = 2
    raw["payload"] = {
        "subscriptionId": SUB,
        "sourceId": one.source_id,
        "policy": one.policy,
        "slot": "202611270200",
        "snapshotIds": one.snapshot_ids,
    }
    deliver(world.rt, json.dumps(raw))
    assert [w[1] for w in world.compute.writes if w[0] == "delete"] == one.snapshot_ids
