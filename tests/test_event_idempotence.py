"""Event Grid's at-least-once delivery and Lifeboat's own writes, through the whole chain on fakes.

An event goes in as the worker builds it (either schema), through the trigger's reading of it,
the decision, the onboarding queue, onboarding, the first snapshot set and its confirm. What
Lifeboat then wrote comes back as the events Azure would send, with and without their caller:
nothing is written again, so the loop cannot start either way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

from cli.events import vm_write_event
from shared.names import Status
from shared.ports import Runtime
from shared.vm_events import receive_vm_event
from tests.builders import SUB
from tests.fakes import FakeCompute, MemoryQueues, MemoryReporter, drain
from tests.test_onboarding import created, world
from triggers.vm_events import as_vm_event

LIFEBOAT = "5b0a7c1e-0000-4000-8000-00000000f00d"
USER = "0a4bdfaa-0000-4000-8000-0000000c0ffe"
QUEUES = ("onboarding", "rotation-vm", "rotation-plan", "verification-vault")


def cloud(raw: dict[str, Any]) -> dict[str, Any]:
    """The same event in CloudEvents 1.0, as Event Grid maps a system topic's event."""
    return {
        "specversion": "1.0",
        "id": raw["id"],
        "source": raw["topic"],
        "type": raw["eventType"],
        "subject": raw["subject"],
        "time": raw["eventTime"],
        "data": raw["data"],
    }


def send(rt: Runtime, raw: dict[str, Any]) -> None:
    """One delivery, as the worker builds its input and the trigger reads it."""
    event = EventGridEventInConverter.decode(Datum(json.dumps(raw), "json"), trigger_metadata=None)
    receive_vm_event(rt, as_vm_event(event))


def creation_events(vm_id: str) -> list[dict[str, Any]]:
    """Azure's two writes for one VM creation (one correlation id), by a user."""
    group, name = vm_id.split("/")[4], vm_id.split("/")[-1]
    return [
        vm_write_event(SUB, group, name, event_id=f"create-{n}", correlation_id="corr-1")
        for n in (1, 2)
    ]


def lifeboats_writes_as_events(compute: FakeCompute, vm_id: str) -> list[dict[str, Any]]:
    """What Azure sends back for what Lifeboat wrote: a snapshot write per snapshot, a tags
    write per tag merge, and (the worst case) the VM reported as written again."""
    group, name = vm_id.split("/")[4], vm_id.split("/")[-1]
    events = [
        vm_write_event(SUB, group, name, event_id="own-vm", caller_object_id=LIFEBOAT),
        vm_write_event(
            SUB,
            group,
            name,
            operation="Microsoft.Resources/tags/write",
            event_id="own-tags",
            caller_object_id=LIFEBOAT,
        ),
    ]
    for n, snapshot in enumerate(compute.snapshots.values()):
        raw = vm_write_event(
            SUB,
            snapshot.resource_group,
            snapshot.name,
            operation="Microsoft.Compute/snapshots/write",
            event_id=f"own-snapshot-{n}",
            caller_object_id=LIFEBOAT,
        )
        raw["subject"] = raw["data"]["resourceUri"] = snapshot.id
        events.append(raw)
    return events


def onboarded(**settings: str) -> tuple[Runtime, FakeCompute, MemoryQueues, MemoryReporter, str]:
    """A VM just created by a user: its two write events, each delivered twice, one in each
    schema, all work drained."""
    rt, compute, queues, reporter = world(
        TAG_DEFAULT_POLICY="true", CONFIRM_DELAY_SECONDS="1", **settings
    )
    new = created(3, tags={})
    compute.vms = [new]  # type: ignore[list-item]
    for raw in creation_events(new.id):  # type: ignore[attr-defined]
        send(rt, raw)
        send(rt, cloud(raw))
    drain(rt, queues, QUEUES)
    return rt, compute, queues, reporter, new.id  # type: ignore[attr-defined]


def test_duplicate_creation_events_converge_on_one_snapshot_per_disk() -> None:
    _rt, compute, _queues, reporter, _ = onboarded()
    assert len(compute.snapshots) == 2
    assert sorted(kind for kind, _ in compute.writes) == ["create", "create", "tags"], (
        "a snapshot is read before it is written: repeated deliveries PUT nothing again"
    )
    creates = [o for o in reporter.outcomes if o.operation == "snapshot-create"]
    succeeded = {o.id for o in creates if o.status is Status.SUCCEEDED}
    assert len(succeeded) == len(compute.snapshots), "succeeded rows (by id) = snapshots created"
    assert {o.status for o in creates} == {Status.UNCONFIRMED, Status.SUCCEEDED}
    assert len({o.id for o in creates if o.status is Status.UNCONFIRMED}) == 2
    # Four deliveries of two events: one vm-seen row per event, a repeat is the same row.
    seen = [o for o in reporter.outcomes if o.operation == "vm-seen"]
    assert len(seen) == 4
    assert len({o.id for o in seen}) == 2


@pytest.mark.parametrize("with_caller", [True, False], ids=["claims present", "claims absent"])
def test_lifeboats_own_writes_coming_back_write_nothing(with_caller: bool) -> None:
    rt, compute, queues, reporter, vm_id = onboarded(LIFEBOAT_PRINCIPAL_ID=LIFEBOAT)
    writes, snapshots = list(compute.writes), dict(compute.snapshots)
    rows = len(reporter.outcomes)
    for raw in lifeboats_writes_as_events(compute, vm_id):
        if not with_caller:
            # Published examples carry empty claims: nothing says who wrote.
            raw["data"]["claims"] = {}
            raw["data"]["authorization"]["evidence"] = {}
        send(rt, raw)
        send(rt, cloud(raw))
    handled = drain(rt, queues, QUEUES)
    assert compute.writes == writes, "no write caused by Lifeboat's own write"
    assert compute.snapshots == snapshots
    new_rows = reporter.outcomes[rows:]
    events = [o for o in new_rows if o.operation == "vm-event"]
    if with_caller:
        assert handled == 0, "nothing reaches onboarding"
        assert {(o.status, o.reason) for o in events} == {(Status.SKIPPED, "own write")}
        assert len({o.id for o in events}) == 4
        assert sum(o.details["ownWrites"] for o in events) == 8
    else:
        # The VM write goes on to onboarding, which finds the work done; the rest is unhandled.
        assert handled > 0
        assert {o.reason for o in events} == {
            "operation 'Microsoft.Resources/tags/write' is not "
            "Microsoft.Compute/virtualMachines/write",
            "operation 'Microsoft.Compute/snapshots/write' is not "
            "Microsoft.Compute/virtualMachines/write",
        }
        assert [o for o in new_rows if o.operation == "tag-default-policy"] == []


def test_a_users_later_write_to_the_vm_still_reaches_onboarding() -> None:
    """Knowing itself does not make Lifeboat deaf: the disk-attach write after a creation, by
    the user, is onboarded (and finds nothing new to do)."""
    rt, compute, queues, reporter, vm_id = onboarded(LIFEBOAT_PRINCIPAL_ID=LIFEBOAT)
    group, name = vm_id.split("/")[4], vm_id.split("/")[-1]
    rows, writes = len(reporter.outcomes), list(compute.writes)
    send(rt, vm_write_event(SUB, group, name, event_id="attach-1", caller_object_id=USER))
    assert drain(rt, queues, QUEUES) >= 1
    assert [o.operation for o in reporter.outcomes[rows:]][:1] == ["vm-seen"]
    assert compute.writes == writes
