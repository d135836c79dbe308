"""Onboarding after VM write events: first snapshot set, default tag, idempotent, never looping."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from shared import messages
from shared.messages import OnboardingRequest, RotationVmRequest, make_envelope
from shared.onboarding import onboard_vm
from shared.policies import parse_policies
from shared.ports import Runtime
from shared.rotation import snapshot_vm
from shared.settings import Settings
from tests.builders import SUB, disk, night, vm
from tests.conftest import base_settings
from tests.fakes import FakeCompute, FixedClock, MemoryQueues, MemoryReporter

POLICIES = parse_policies(
    {
        "version": 1,
        "defaultPolicy": "daily",
        "policies": {"daily": {"retention": {"daily": 7}, "snapshotOnCreate": True}},
    }
)


def world(**settings: str) -> tuple[Runtime, FakeCompute, MemoryQueues, MemoryReporter]:
    clock = FixedClock(night(27, hour=14))
    queues, reporter, compute = MemoryQueues(), MemoryReporter(), FakeCompute(clock)
    rt = Runtime(
        Settings.from_env(base_settings(TARGET_SUBSCRIPTIONS=SUB, **settings)),
        clock,
        reporter,
        queues,
        compute=compute,
        policies=POLICIES,
    )
    for d in (disk("new-os"), disk("new-data")):
        compute.disks[d.id.lower()] = d
    return rt, compute, queues, reporter


def event_for(target: object, event_id: str = "e1") -> tuple[messages.Envelope, OnboardingRequest]:
    request = OnboardingRequest(
        resourceId=target.id,
        subscriptionId=SUB,
        resourceGroup=target.resource_group,  # type: ignore[attr-defined]
        vmName=target.name,
        eventId=event_id,  # type: ignore[attr-defined]
    )
    envelope = make_envelope(
        "onboarding",
        request,
        run_id=f"event-{event_id}",
        idempotency_key="k",
        created=night(27, hour=14),
    )
    return envelope, request


def created(minutes_ago: int, **kwargs: object) -> object:
    base = vm("new", "new-os", (0, "new-data"), **kwargs)  # type: ignore[arg-type]
    return dataclasses.replace(
        base, time_created=night(27, hour=14) - timedelta(minutes=minutes_ago)
    )


def test_a_new_vm_gets_one_first_snapshot_set_however_many_events() -> None:
    rt, compute, queues, reporter = world()
    new = created(3)
    compute.vms = [new]  # type: ignore[list-item]
    for event_id in ("create-1", "create-2", "update-1"):
        onboard_vm(rt, *event_for(new, event_id))
    sent = [messages.decode(t) for t in queues.sent["rotation-vm"]]
    slots = {p.slot for _, p in sent}  # type: ignore[attr-defined]
    assert slots == {"202611271357"}, "every event names the same creation slot"
    for envelope, payload in sent:
        assert isinstance(payload, RotationVmRequest)
        assert payload.onboarding
        snapshot_vm(rt, envelope, payload)
    assert len(compute.snapshots) == 2, "two disks, one snapshot each, whatever the events"
    jobs = {o.job.value for o in reporter.outcomes if o.operation == "snapshot-create"}
    assert jobs == {"onboarding"}


def test_an_old_vm_update_changes_nothing() -> None:
    rt, compute, queues, reporter = world()
    old = created(60 * 24 * 30)
    compute.vms = [old]  # type: ignore[list-item]
    onboard_vm(rt, *event_for(old))
    assert "rotation-vm" not in queues.sent
    assert compute.writes == []
    assert [o.operation for o in reporter.outcomes] == ["vm-seen"]


def test_default_policy_tag_is_written_once_through_the_tags_api() -> None:
    rt, compute, _queues, reporter = world(TAG_DEFAULT_POLICY="true")
    new = created(2, tags={})
    compute.vms = [new]  # type: ignore[list-item]
    onboard_vm(rt, *event_for(new, "create-1"))
    onboard_vm(rt, *event_for(new, "tags-1"))  # the tag write's own event, if it came back
    assert [w for w in compute.writes if w[0] == "tags"] == [("tags", new.id)]  # type: ignore[attr-defined]
    assert compute.vms[0].tags["lifeboat:policy"] == "daily"
    assert len([o for o in reporter.outcomes if o.operation == "tag-default-policy"]) == 1


def test_untagged_vm_is_left_alone_without_the_setting() -> None:
    rt, compute, queues, _reporter = world()
    new = created(2, tags={"lifeboat:policy": "none"})
    compute.vms = [new]  # type: ignore[list-item]
    onboard_vm(rt, *event_for(new))
    assert compute.writes == []
    assert "rotation-vm" not in queues.sent


def test_drill_vms_and_vanished_vms_are_skipped() -> None:
    rt, compute, _queues, reporter = world(DRILL_RESOURCE_GROUPS="rg-drill")
    drill = created(1, group="rg-drill")
    compute.vms = [drill]  # type: ignore[list-item]
    onboard_vm(rt, *event_for(drill))
    gone = created(1)
    onboard_vm(rt, *event_for(dataclasses.replace(gone, id=gone.id + "x", name="newx")))  # type: ignore[attr-defined]
    assert [(o.status.value, o.reason) for o in reporter.outcomes] == [
        ("skipped", "in a drill resource group"),
        ("skipped", "the VM no longer exists"),
    ]
    assert compute.writes == []
