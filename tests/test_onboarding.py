"""Onboarding after VM write events: first snapshot set, default tag, idempotent, never looping."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from shared import messages
from shared.messages import OnboardingRequest, RotationConfirmVmRequest, RotationVmRequest
from shared.model import BackupStatus
from shared.policies import parse_policies
from shared.ports import Runtime
from shared.settings import Settings
from tests.builders import SUB, disk, night, vm
from tests.conftest import base_settings
from tests.fakes import FakeCompute, FixedClock, MemoryQueues, MemoryReporter, deliver, runtime

POLICIES = parse_policies(
    {
        "version": 1,
        "defaultPolicy": "daily",
        "policies": {"daily": {"retention": {"daily": 7}, "snapshotOnCreate": True}},
    }
)


class ProtectedEverywhere:
    """Azure Backup as onboarding sees it here: every VM is already protected."""

    def get_backup_status(self, vm_id: str, location: str) -> BackupStatus:
        return BackupStatus(protected=True, vault_id=f"/subscriptions/{SUB}/resourceGroups/b")


def world(**settings: str) -> tuple[Runtime, FakeCompute, MemoryQueues, MemoryReporter]:
    clock = FixedClock(night(27, hour=14))
    queues, reporter, compute = MemoryQueues(), MemoryReporter(), FakeCompute(clock)
    rt = runtime(
        Settings.from_env(base_settings(TARGET_SUBSCRIPTIONS=SUB, **settings)),
        clock,
        reporter,
        queues,
        compute=compute,
        policies=POLICIES,
        backup=ProtectedEverywhere(),
    )
    for d in (disk("new-os"), disk("new-data")):
        compute.disks[d.id.lower()] = d
    return rt, compute, queues, reporter


def onboard(rt: Runtime, target: object, event_id: str = "e1") -> None:
    """An onboarding message for a VM write event, through the real dispatch."""
    request = OnboardingRequest(
        resourceId=target.id,  # type: ignore[attr-defined]
        subscriptionId=SUB,
        resourceGroup=target.resource_group,  # type: ignore[attr-defined]
        vmName=target.name,  # type: ignore[attr-defined]
        eventId=event_id,
    )
    envelope = messages.make_envelope(
        request, run_id=f"event-{event_id}", idempotency_key="k", created=night(27, hour=14)
    )
    deliver(rt, messages.encode(envelope))


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
        onboard(rt, new, event_id)
    sent = queues.sent.pop("rotation-vm")
    slots = {messages.decode(t)[1].slot for t in sent}  # type: ignore[attr-defined]
    assert slots == {"202611271357"}, "every event names the same creation slot"
    for text in sent:
        payload = messages.decode(text)[1]
        assert isinstance(payload, RotationVmRequest)
        assert payload.onboarding
        deliver(rt, text)
    assert len(compute.snapshots) == 2, "two disks, one snapshot each, whatever the events"
    creates = [o for o in reporter.outcomes if o.operation == "snapshot-create"]
    assert {(o.job.value, o.status.value) for o in creates} == {("onboarding", "unconfirmed")}
    # After the create window, the set is confirmed: one GET per snapshot, a row per disk.
    confirms = queues.sent.pop("rotation-plan")
    assert {type(messages.decode(t)[1]) for t in confirms} == {RotationConfirmVmRequest}
    assert queues.visibility["rotation-plan"][0] == rt.settings.confirm_delay_seconds
    reporter.outcomes.clear()
    reads = len(compute.reads)
    deliver(rt, confirms[0])
    assert len(compute.reads) == reads + 2
    confirmed = [(o.job.value, o.operation, o.status.value) for o in reporter.outcomes]
    assert confirmed == [("onboarding", "snapshot-create", "succeeded")] * 2
    assert not queues.sent.get("rotation-prune"), "the night's confirm prunes, not this one"


def test_an_onboarding_set_that_never_appears_is_reported_failed_by_its_confirm() -> None:
    rt, compute, queues, reporter = world()
    new = created(3)
    compute.vms = [new]  # type: ignore[list-item]
    onboard(rt, new)
    for text in queues.sent.pop("rotation-vm"):
        deliver(rt, text)
    compute.snapshots.clear()  # accepted, then gone (a failed copy, someone's delete)
    reporter.outcomes.clear()
    deliver(rt, queues.sent.pop("rotation-plan")[0])
    assert [(o.operation, o.status.value, o.reason) for o in reporter.outcomes] == [
        ("snapshot-create", "failed", "not found after the create window")
    ] * 2
    assert [o.operation for o in reporter.outcomes if o.operation == "run-end"] == []


def test_an_old_vm_update_changes_nothing() -> None:
    rt, compute, queues, reporter = world()
    old = created(60 * 24 * 30)
    compute.vms = [old]  # type: ignore[list-item]
    onboard(rt, old)
    assert "rotation-vm" not in queues.sent
    assert compute.writes == []
    assert [o.operation for o in reporter.outcomes] == ["vm-seen"]


def test_default_policy_tag_is_written_once_through_the_tags_api() -> None:
    rt, compute, _queues, reporter = world(TAG_DEFAULT_POLICY="true")
    new = created(2, tags={})
    compute.vms = [new]  # type: ignore[list-item]
    onboard(rt, new, "create-1")
    onboard(rt, new, "tags-1")  # the tag write's own event, if it came back
    assert [w for w in compute.writes if w[0] == "tags"] == [("tags", new.id)]  # type: ignore[attr-defined]
    assert compute.vms[0].tags["lifeboat:policy"] == "daily"
    assert len([o for o in reporter.outcomes if o.operation == "tag-default-policy"]) == 1


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"lifebaot:policy": "daily"}, 'tag "lifebaot:policy" looks like "lifeboat:policy"'),
        ({"lifeboat:policy": "gold-plus"}, "unknown policy gold-plus; known: "),
    ],
)
def test_a_tag_mistake_is_never_hidden_by_the_default_policy(
    tags: dict[str, str], reason: str
) -> None:
    rt, compute, queues, reporter = world(TAG_DEFAULT_POLICY="true")
    new = created(2, tags=tags)
    compute.vms = [new]  # type: ignore[list-item]
    onboard(rt, new)
    assert [w for w in compute.writes if w[0] == "tags"] == []  # type: ignore[attr-defined]
    assert "rotation-vm" not in queues.sent
    [row] = [o for o in reporter.outcomes if o.operation == "tag-default-policy"]
    assert (row.status.value, row.reason[: len(reason)]) == ("skipped", reason)


def test_untagged_vm_is_left_alone_without_the_setting() -> None:
    rt, compute, queues, _reporter = world()
    new = created(2, tags={"lifeboat:policy": "none"})
    compute.vms = [new]  # type: ignore[list-item]
    onboard(rt, new)
    assert compute.writes == []
    assert "rotation-vm" not in queues.sent


def test_drill_vms_and_vanished_vms_are_skipped() -> None:
    rt, compute, _queues, reporter = world(DRILL_RESOURCE_GROUPS="rg-drill")
    drill = created(1, group="rg-drill")
    compute.vms = [drill]  # type: ignore[list-item]
    onboard(rt, drill)
    gone = created(1)
    onboard(rt, dataclasses.replace(gone, id=gone.id + "x", name="newx"))  # type: ignore[attr-defined]
    assert [(o.status.value, o.reason) for o in reporter.outcomes] == [
        ("skipped", "in a drill resource group"),
        ("skipped", "the VM no longer exists"),
    ]
    assert compute.writes == []


class PrimarySubnets:
    """The drills port as onboarding reads it: each VM's primary NIC's subnet."""

    def __init__(self, subnets: dict[str, str]) -> None:
        self.subnets = {k.lower(): v for k, v in subnets.items()}
        self.reads: list[str] = []

    def get_primary_subnet(self, vm_id: str) -> str | None:
        self.reads.append(vm_id)
        return self.subnets.get(vm_id.lower())


def _subnet(group: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Network/"
        "virtualNetworks/vnet/subnets/snet"
    )


def test_a_drills_test_vm_is_skipped_by_its_tag_or_its_drill_network() -> None:
    # A test failover's VM is made in the recovery group (no drill group: a real failover lands
    # there too). Tagged as a drill's, it is skipped; before its tag, its NIC on a drill network
    # gives it away. A real failover's VM in the same group is onboarded.
    rt, compute, _queues, reporter = world(
        DRILL_RESOURCE_GROUPS="rg-drill", SITE_RECOVERY_DRILLS="true"
    )
    tagged = created(1, group="rg-app-asr", tags={"lifeboat:drill": "lbd-abcdefghij"})
    untagged = dataclasses.replace(
        created(1, group="rg-app-asr"),  # type: ignore[type-var]
        id=tagged.id + "-2",  # type: ignore[attr-defined]
        name="new-2",
    )
    real = dataclasses.replace(
        created(1, group="rg-app-asr"),  # type: ignore[type-var]
        id=tagged.id + "-3",  # type: ignore[attr-defined]
        name="new-3",
    )
    subnets = PrimarySubnets({untagged.id: _subnet("rg-drill"), real.id: _subnet("rg-net")})
    rt = dataclasses.replace(rt, drills=subnets)  # type: ignore[arg-type]
    compute.vms = [tagged, untagged, real]  # type: ignore[list-item]
    for n, machine in enumerate(compute.vms):
        onboard(rt, machine, event_id=f"e{n}")
    rows = {(o.resource_id, o.operation): o for o in reporter.outcomes}
    assert (
        rows[(tagged.id, "vm-seen")].reason == "a drill's test VM (lifeboat:drill=lbd-abcdefghij)"
    )  # type: ignore[attr-defined]
    assert rows[(untagged.id, "vm-seen")].reason == "attached to a drill network"
    assert rows[(untagged.id, "vm-seen")].status == "skipped"
    assert rows[(real.id, "vm-seen")].status == "succeeded"
    assert subnets.reads == [untagged.id, real.id]  # the tagged one needs no read
    # A VM's own lifeboat:drill names a drill plan: it is no drill's resource.
    planned = created(1, tags={"lifeboat:drill": "nightly", "lifeboat:policy": "daily"})
    rt2, compute2, _q, reporter2 = world()
    compute2.vms = [planned]  # type: ignore[list-item]
    onboard(rt2, planned)
    assert reporter2.outcomes[0].status == "succeeded"


def test_without_site_recovery_drills_no_nic_is_read() -> None:
    rt, compute, _queues, reporter = world(DRILL_RESOURCE_GROUPS="rg-drill")
    machine = created(1, group="rg-app-asr")
    compute.vms = [machine]  # type: ignore[list-item]
    onboard(rt, machine)  # the drills port is Unused: any read fails the test
    assert reporter.outcomes[0].status == "succeeded"


class UnprotectedEverywhere:
    """Azure Backup with one vault in the VMs' region and nothing protected yet."""

    def __init__(self) -> None:
        from shared.model import Vault

        self.vault = Vault(
            f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/"
            "Microsoft.RecoveryServices/vaults/v1",
            "v1",
            SUB,
            "rg-backup",
            "westeurope",
        )
        self.protected: list[str] = []

    def get_backup_status(self, vm_id: str, location: str) -> BackupStatus:
        return BackupStatus(protected=vm_id in self.protected)

    def list_vaults(self, subscription_id: str) -> list[object]:
        return [self.vault]

    def ensure_protection(self, vault: object, vm: object, policy_name: str) -> object:
        self.protected.append(vm.id)  # type: ignore[attr-defined]
        return object()

    def trigger_backup(self, item: object, keep_until: object) -> str:
        return "job-1"


def test_a_new_unprotected_vm_is_protected_and_its_first_backup_checked_later() -> None:
    rt, compute, queues, reporter = world(
        ENABLE_BACKUP_PROTECTION="true", BACKUP_WRITER_CLIENT_ID="writer"
    )
    rt = dataclasses.replace(rt, backup=UnprotectedEverywhere())
    new = created(3)
    compute.vms = [new]  # type: ignore[list-item]
    onboard(rt, new)
    onboard(rt, new, "create-2")  # the second write of the same creation: protected already
    checks = queues.sent.get("verification-vault", [])
    assert len(checks) == 1, "one first-backup check, however many events"
    assert messages.decode(checks[0])[0].type == "verification-first-backup"
    assert queues.visibility["verification-vault"] == [24 * 3600]
    assert len(queues.sent["rotation-vm"]) == 2, "the first snapshot set too, once per event"
    assert [o.status.value for o in reporter.outcomes if o.operation == "enable-protection"] == [
        "succeeded"
    ]
