"""What a recovery reads, decides and reports: plain frozen values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.model import ProtectedItem, RecoveryPoint, Vault

Mode = Literal["new-vm", "swap-disks", "disks-only", "rollback"]
MODES: tuple[Mode, ...] = ("new-vm", "swap-disks", "disks-only", "rollback")


@dataclass(frozen=True, slots=True)
class AttachedDisk:
    """A disk slot of a VM: the OS disk (`lun` None) or a data disk, as the VM's body has it."""

    lun: int | None
    disk_id: str | None  # None: ephemeral or unmanaged
    caching: str | None = None
    ephemeral: bool = False
    vhd_uri: str | None = None


@dataclass(frozen=True, slots=True)
class RecoveryVm:
    """The VM to recover, as its REST body shows it (with its ETag for If-Match)."""

    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    size: str | None
    os_type: str | None
    os_disk: AttachedDisk
    data_disks: tuple[AttachedDisk, ...] = ()
    zones: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    nic_ids: tuple[str, ...] = ()
    security_profile: dict[str, Any] | None = None
    plan: dict[str, str] | None = None
    boot_diagnostics: dict[str, Any] | None = None
    etag: str | None = None
    power_state: str | None = None

    @property
    def attachments(self) -> tuple[AttachedDisk, ...]:
        return (self.os_disk, *self.data_disks)

    @property
    def security_type(self) -> str | None:
        return (self.security_profile or {}).get("securityType")


@dataclass(frozen=True, slots=True)
class SourceDisk:
    """A disk the recovery reads: its traits that decide what a copy of it can be."""

    id: str
    name: str
    location: str
    sku: str | None = None
    size_gb: int | None = None
    os_type: str | None = None
    hyper_v_generation: str | None = None
    disk_encryption_set_id: str | None = None
    azure_disk_encryption: bool = False
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Nic:
    id: str
    subnet_id: str | None
    private_ip: str | None
    vm_id: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """One line of `Microsoft.Compute/locations/{l}/usages`."""

    name: str
    current: int
    limit: int


@dataclass(frozen=True, slots=True)
class SetMember:
    """One disk of a snapshot set: the snapshot, the disk it was taken from and its LUN."""

    lun: int | None  # None: the OS disk
    disk_id: str
    snapshot_id: str
    snapshot_name: str
    time_created: datetime


@dataclass(frozen=True, slots=True)
class SnapshotSet:
    """One VM's snapshots of one slot (`lifeboat:set` = shared.snapshots.set_id(vm, slot))."""

    slot: str
    set_id: str
    members: tuple[SetMember, ...]  # the OS disk first, then data disks by LUN
    missing: tuple[str, ...]  # disk ids the VM had at that slot with no good snapshot in it

    @property
    def complete(self) -> bool:
        return not self.missing and any(m.lun is None for m in self.members)

    @property
    def taken_at(self) -> datetime:
        """The source's time: its oldest snapshot (what RPO is measured from)."""
        return min(m.time_created for m in self.members)


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the recovery creates or changes, in words and by id (the plan's line)."""

    verb: str  # create-disk, create-nic, create-vm, deallocate, swap-disks, start, tag, untag
    target: str  # the resource id
    detail: str = ""
    source: str | None = None  # a created disk's snapshot


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the recovery will not run, in words an on-call engineer can act on."""

    reason: str
    hint: str = ""


@dataclass(frozen=True, slots=True)
class NewDisk:
    id: str
    lun: int | None
    snapshot_id: str
    source_disk: SourceDisk
    replaces: str | None = None  # the disk it takes the place of (swap)


@dataclass(frozen=True, slots=True)
class PointRestore:
    """An Azure Backup recovery point of the VM, and where the vault restores its disks."""

    point: RecoveryPoint
    item: ProtectedItem
    vault: Vault
    why: str  # "latest of 10 points", "named"
    staging_account_id: str
    target_group_id: str  # /subscriptions/{s}/resourceGroups/{g}

    @property
    def label(self) -> str:
        name = self.point.id.rstrip("/").rsplit("/", 1)[-1]
        tiers = "+".join(self.point.tiers) or "no valid tier"
        when = self.point.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        kind = self.point.consistency or "unknown consistency"
        return f"recovery point {name} of {when} ({kind}, {tiers}) in vault {self.vault.name}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What one recovery does, decided before anything is written."""

    mode: Mode
    vm: RecoveryVm
    source: str  # "snapshot set <slot> (<set id>)"
    source_time: datetime | None
    actions: tuple[Action, ...]
    disks: tuple[NewDisk, ...] = ()
    new_vm_id: str | None = None
    nic_id: str | None = None
    subnet_id: str | None = None
    private_ip: str | None = None
    size: str | None = None
    target_group: str | None = None
    rollback: tuple[tuple[int | None, str, str], ...] = ()  # (lun, current disk, disk put back)
    notes: tuple[str, ...] = ()
    # From a recovery point: the disks are the restore's, known once its job has completed.
    restore: PointRestore | None = None


@dataclass
class Result:
    """How one recovery ended: its status, its steps' durations (seconds), what it made."""

    plan: Plan | None
    status: str  # succeeded | failed | refused | planned | cancelled
    reason: str | None = None
    steps: dict[str, float] = field(default_factory=dict)
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    created: list[str] = field(default_factory=list)
    caller: str | None = None
    restore_job: str | None = None  # the Azure Backup job that restored the disks
