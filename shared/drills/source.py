"""What a drill restores from: a restore point of the source VM, and each of its disks.

The steps ask a `DrillSource` for the restore point of a VM and get back, for the OS disk and
every data disk, what to create the drill's disk from. Lifeboat's own snapshot sets
(`SnapshotSets`) or Azure Backup recovery points (`RecoveryPoints`: the vault restores the disks
into the drill group first, `choose_recovery_point` picks the point); `lifeboat recover` reuses
the steps with the source it is given.

A drill message is a request, never authority: just before a disk is created from a source, and
before a VM attaches those disks, the step asks the source to `verify` each one against Azure
as it is now (`None`: it is what this source would have given). A recovery-point source answers
`verify` for its own ids (a disk the restore made in the drill group, for a disk of the VM).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from shared.messages import DrillSnapshot
from shared.model import ProtectedItem, RecoveryPoint, Snapshot, Vault, Vm
from shared.names import Status
from shared.ports import Backup, Compute
from shared.rules import Verdict, parse_snapshot_id, same_id
from shared.snapshots import is_owned, owned_by_slot, slot_of_name


@dataclass(frozen=True, slots=True)
class RestorePoint:
    """A point to restore a VM to: its slot, each disk's source, and what the OS disk is."""

    slot: str
    disks: tuple[DrillSnapshot, ...]  # the OS disk first, then data disks by LUN
    missing_disks: tuple[str, ...]  # disks of the VM the point has no copy of
    os_type: str | None
    hyper_v_generation: str | None


@dataclass(frozen=True, slots=True)
class NoRestorePoint:
    """Nothing to restore: `skipped` when the VM cannot have one, `failed` when it should."""

    outcome: Literal["failed", "skipped"]
    reason: str


class DrillSource(Protocol):
    """Where a drill's disks come from."""

    # The outcome row's `Details.source`.
    kind: str

    def choose(self, vm: Vm, now: datetime) -> RestorePoint | NoRestorePoint:
        """The restore point a drill of `vm` uses, read now (a few GETs and lists)."""
        ...

    def verify(self, vm: Vm, slot: str | None, disk: DrillSnapshot) -> Verdict | None:
        """Why `disk`'s source is not one this source gives for `vm` at `slot`, read now; None
        when it is. A `forged` verdict is a message no Lifeboat step wrote (refused); any other
        is Azure changing under the drill (the drill fails)."""
        ...


class SnapshotSets:
    """Lifeboat's snapshot sets in the subscription's snapshot resource group."""

    kind = "snapshots"

    def __init__(self, compute: Compute, subscription_id: str, snapshot_group: str) -> None:
        self.compute = compute
        self.subscription_id = subscription_id
        self.group = snapshot_group

    def choose(self, vm: Vm, now: datetime) -> RestorePoint | NoRestorePoint:
        """The newest complete set of the VM's disks (else the newest with its OS disk)."""
        if vm.os_disk.disk_id is None:
            kind = "ephemeral" if vm.os_disk.ephemeral else "unmanaged"
            return NoRestorePoint(
                "skipped", f"the OS disk is {kind}: Lifeboat has no snapshot of it to restore"
            )
        snapshots = self.compute.list_snapshots(self.subscription_id, self.group)
        choice = choose_snapshot_set(vm, snapshots, self.group)
        if choice is None:
            return NoRestorePoint(
                "failed", f"no good snapshot of the OS disk in {self.group}: nothing to restore"
            )
        slot, chosen, missing = choice
        os_disk = self.compute.get_disk(vm.os_disk.disk_id)
        disks = []
        for snapshot, lun, source in chosen:
            disk = os_disk if lun is None else self.compute.get_disk(source)
            disks.append(
                DrillSnapshot(
                    diskId=source,
                    snapshotId=snapshot.id,
                    lun=lun,
                    timeCreated=snapshot.time_created or now,
                    sku=disk.sku if disk else None,
                )
            )
        return RestorePoint(
            slot=slot,
            disks=tuple(disks),
            missing_disks=tuple(missing),
            os_type=os_disk.os_type if os_disk else None,
            hyper_v_generation=os_disk.hyper_v_generation if os_disk else None,
        )

    def verify(self, vm: Vm, slot: str | None, disk: DrillSnapshot) -> Verdict | None:
        """A snapshot in this group, Lifeboat's by name and creationData, taken from the disk the
        message names, which is a disk of `vm`, in the set `slot`; and still good (one GET)."""
        parsed = parse_snapshot_id(disk.snapshot_id)
        if parsed is None:
            return _forged(f"{disk.snapshot_id} is not a Lifeboat snapshot id")
        if parsed.subscription_id != self.subscription_id.lower():
            return _forged(
                f"snapshot {parsed.name} is in subscription {parsed.subscription_id}, not the "
                f"VM's {self.subscription_id.lower()}"
            )
        if parsed.resource_group.lower() != self.group.lower():
            return _forged(
                f"snapshot {parsed.name} is in {parsed.resource_group}, not Lifeboat's {self.group}"
            )
        if not any(same_id(a.disk_id, disk.disk_id) for a in vm.attachments):
            return _forged(f"disk {disk.disk_id} is not a disk of {vm.name}")
        snapshot = self.compute.get_snapshot(disk.snapshot_id)
        if snapshot is None:
            return Verdict(Status.FAILED, f"snapshot {parsed.name} no longer exists")
        if not is_owned(snapshot, self.group):
            return _forged(f"{snapshot.name} is not Lifeboat's: its name does not match its source")
        if not same_id(snapshot.source_resource_id, disk.disk_id):
            return _forged(
                f"{snapshot.name} was taken from {snapshot.source_resource_id}, not {disk.disk_id}"
            )
        if slot is not None and slot_of_name(snapshot.name) != slot:
            return _forged(f"{snapshot.name} is not of the set {slot}")
        if not snapshot.good:
            return Verdict(Status.FAILED, f"snapshot {snapshot.name} is no longer good")
        return None


def _forged(reason: str) -> Verdict:
    return Verdict(Status.REFUSED, reason, forged=True)


def choose_snapshot_set(
    vm: Vm, snapshots: Iterable[Snapshot], group: str
) -> tuple[str, list[tuple[Snapshot, int | None, str]], list[str]] | None:
    """The newest slot with a good snapshot of every disk that has any; else of the OS disk.

    Returns (slot, [(snapshot, lun, source disk id)], disks left out), or None when the OS disk
    has no good snapshot at all. Only Lifeboat's own snapshots count (group, name, source).
    """
    luns = {a.disk_id.lower(): (a.lun, a.disk_id) for a in vm.attachments if a.disk_id}
    by_slot = owned_by_slot(luns, snapshots, group)
    os_key = (vm.os_disk.disk_id or "").lower()
    covered = {disk for taken in by_slot.values() for disk in taken}
    candidates = [s for s in sorted(by_slot, reverse=True) if os_key in by_slot[s]]
    if not candidates:
        return None
    complete = [s for s in candidates if covered <= by_slot[s].keys()]
    slot = complete[0] if complete else candidates[0]
    taken = by_slot[slot]
    chosen = [(taken[key], luns[key][0], luns[key][1]) for key in sorted(taken)]
    chosen.sort(key=lambda item: -1 if item[1] is None else item[1])
    missing = sorted(luns[key][1] for key in covered - taken.keys())
    return slot, chosen, missing


# ------------------------------------------------------------------ Azure Backup recovery points

APP_CONSISTENT = "appconsistent"


@dataclass(frozen=True, slots=True)
class PointChoice:
    """The recovery point a drill restores, and why it was that one."""

    point: RecoveryPoint
    why: str


def choose_recovery_point(
    points: Iterable[RecoveryPoint],
    *,
    drill_id: str,
    choose: str,
    window_days: int,
    app_consistent_only: bool,
    tier: str | None,
    anchor: datetime,
) -> PointChoice | str:
    """The point a recovery-point drill restores, or why there is none.

    The window is the `window_days` before `anchor` (the drill's start, never the time of the
    delivery), so a redelivered step sees the same candidates. `latest` takes the newest;
    `random` takes the candidate that the hash of the drill id and the window names: the same
    drill always picks the same point, different drills spread over the whole window.
    """
    since = anchor - timedelta(days=window_days)
    wanted = []
    for point in points:
        if not since <= point.time <= anchor:
            continue
        if app_consistent_only and (point.consistency or "").lower() != APP_CONSISTENT:
            continue
        if tier is not None and tier not in point.tiers:
            continue
        wanted.append(point)
    filters = [f"within {window_days} d before {anchor.strftime('%Y-%m-%dT%H:%MZ')}"]
    if app_consistent_only:
        filters.append("application-consistent")
    if tier is not None:
        filters.append(f"in the {tier} tier")
    described = ", ".join(filters)
    if not wanted:
        return f"no recovery point {described}"
    wanted.sort(key=lambda p: (p.time, p.id.lower()))
    if choose == "random":
        digest = hashlib.sha256(f"{drill_id}|{window_days}".encode()).digest()
        index = int.from_bytes(digest[:8], "big") % len(wanted)
        return PointChoice(
            wanted[index], f"random: {index + 1} of {len(wanted)} points {described}"
        )
    return PointChoice(wanted[-1], f"latest of {len(wanted)} points {described}")


def protected_item_of(backup: Backup, vm: Vm) -> tuple[Vault, ProtectedItem] | NoRestorePoint:
    """The VM's Azure Backup item and its vault, in its subscription (one list per vault)."""
    for vault in backup.list_vaults(vm.subscription_id):
        for item in backup.list_protected_items(vault):
            if same_id(item.vm_id, vm.id):
                if item.soft_deleted:
                    return NoRestorePoint(
                        "failed", f"{vm.name}'s backup item in {vault.name} is soft-deleted"
                    )
                return vault, item
    return NoRestorePoint(
        "skipped", f"{vm.name} is not protected by Azure Backup in its subscription"
    )


class RecoveryPoints:
    """Azure Backup recovery points, restored by the vault into the drill group.

    The drill's disks are the disks the restore job made (named by Azure, tagged by the drill
    as soon as the job completes). `verify` checks what a message says of them: each restored
    disk lies in the drill's group and replaces a disk of the drill's VM.
    """

    kind = "recovery-point"

    def __init__(self, drill_subscription: str, drill_group: str) -> None:
        self.subscription_id = drill_subscription.lower()
        self.group = drill_group

    def verify(self, vm: Vm, slot: str | None, disk: DrillSnapshot) -> Verdict | None:
        parts = disk.snapshot_id.strip("/").split("/")
        if (
            len(parts) != 8
            or parts[1].lower() != self.subscription_id
            or parts[3].lower() != self.group.lower()
            or parts[5].lower() != "microsoft.compute"
            or parts[6].lower() != "disks"
        ):
            return _forged(f"{disk.snapshot_id} is not a disk in drill group {self.group}")
        if not any(same_id(a.disk_id, disk.disk_id) for a in vm.attachments):
            return _forged(f"disk {disk.disk_id} is not a disk of {vm.name}")
        return None
