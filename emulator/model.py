"""The stand-in's world: subscriptions, groups, VMs, disks, snapshots and the rules around them.

Everything is keyed by the lower-cased resource id (ARM ids are case-insensitive) and keeps the
casing it was created with for answers. JSON renderers follow the REST-spec example shapes.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emulator.clock import format_instant
from emulator.ids import compute_id, group_id, key
from emulator.network_state import NetworkState

PREMIUM_V2_SKUS = {"premiumv2_lrs", "ultrassd_lrs"}
SKU_TIERS = {
    "standard_lrs": "Standard",
    "standardssd_lrs": "Standard",
    "standardssd_zrs": "Standard",
    "premium_lrs": "Premium",
    "premium_zrs": "Premium",
    "premiumv2_lrs": "Premium",
    "ultrassd_lrs": "Ultra",
    "standard_zrs": "Standard",
}


@dataclass
class Identity:
    name: str
    client_id: str
    object_id: str


@dataclass
class ResourceGroup:
    subscription: str
    name: str
    location: str
    tags: dict[str, str] = field(default_factory=dict)
    managed_by: str | None = None

    @property
    def id(self) -> str:
        return group_id(self.subscription, self.name)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.location,
            "properties": {"provisioningState": "Succeeded"},
        }
        if self.tags:
            body["tags"] = dict(self.tags)
        if self.managed_by:
            body["managedBy"] = self.managed_by
        return body


@dataclass
class Subscription:
    id: str
    name: str
    groups: dict[str, ResourceGroup] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.id}",
            "subscriptionId": self.id,
            "displayName": self.name,
            "state": "Enabled",
        }


@dataclass
class StoredResource:
    """What a disk and a snapshot both begin with: where they are, their SKU and size."""

    subscription: str
    group: str
    name: str
    location: str
    sku: str
    size_gb: int


def copy_place(subscription: str, group: str, name: str, source: StoredResource) -> dict[str, Any]:
    """Where a copy of `source` (a snapshot of a disk, a disk from a snapshot) goes: the
    caller's subscription, group and name, in the source's location."""
    return {
        "subscription": subscription.lower(),
        "group": group,
        "name": name,
        "location": source.location,
    }


@dataclass
class Disk(StoredResource):
    unique_id: str
    time_created: datetime
    os_type: str | None = None
    hyper_v_generation: str | None = None
    encryption_type: str = "EncryptionAtRestWithPlatformKey"
    disk_encryption_set_id: str | None = None
    ade_enabled: bool = False
    security_type: str | None = None
    plan: dict[str, str] | None = None
    max_shares: int | None = None
    managed_by: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    ephemeral: bool = False
    create_option: str = "Empty"
    zones: list[str] | None = None
    source_resource_id: str | None = None  # a disk made from a snapshot (createOption Copy)
    source_unique_id: str | None = None
    ready_at: datetime | None = None  # None: ready (estate disks); else Updating until then
    deleting_at: datetime | None = None

    @property
    def id(self) -> str:
        return compute_id(self.subscription, self.group, "disks", self.name)

    def provisioning_state(self, now: datetime | None) -> str:
        if self.ready_at is not None and (now is None or now < self.ready_at):
            return "Updating"
        return "Succeeded"

    @property
    def instant_access(self) -> bool:
        return self.sku.lower() not in PREMIUM_V2_SKUS

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if self.os_type:
            props["osType"] = self.os_type
            props["hyperVGeneration"] = self.hyper_v_generation or "V2"
        creation: dict[str, Any] = {"createOption": self.create_option}
        if self.source_resource_id:
            creation["sourceResourceId"] = self.source_resource_id
            creation["sourceUniqueId"] = self.source_unique_id
        props["creationData"] = creation
        props["diskSizeGB"] = self.size_gb
        encryption: dict[str, Any] = {"type": self.encryption_type}
        if self.disk_encryption_set_id:
            encryption["diskEncryptionSetId"] = self.disk_encryption_set_id
        props["encryption"] = encryption
        if self.ade_enabled:
            props["encryptionSettingsCollection"] = {
                "enabled": True,
                "encryptionSettings": [],
                "encryptionSettingsVersion": "1.1",
            }
        if self.security_type:
            props["securityProfile"] = {"securityType": self.security_type}
        if self.plan:
            props["purchasePlan"] = dict(self.plan)
        if self.max_shares:
            props["maxShares"] = self.max_shares
        props.update(
            {
                "timeCreated": format_instant(self.time_created),
                "provisioningState": self.provisioning_state(now),
                "diskState": "Attached" if self.managed_by else "Unattached",
                "diskSizeBytes": self.size_gb * 1024**3,
                "uniqueId": self.unique_id,
                "networkAccessPolicy": "AllowAll",
                "publicNetworkAccess": "Enabled",
            }
        )
        body: dict[str, Any] = {
            "name": self.name,
            "id": self.id,
            "type": "Microsoft.Compute/disks",
            "location": self.location,
            "tags": dict(self.tags),
            "sku": {"name": self.sku, "tier": SKU_TIERS.get(self.sku.lower(), "Standard")},
            "properties": props,
        }
        if self.managed_by:
            body["managedBy"] = self.managed_by[0]
            if self.max_shares and self.max_shares > 1:
                body["managedByExtended"] = list(self.managed_by)
        if self.zones:
            body["zones"] = list(self.zones)
        return body


@dataclass
class DataDisk:
    lun: int
    disk_key: str
    caching: str = "ReadOnly"


@dataclass
class VhdDisk:
    """An unmanaged disk: a page blob in a storage account, named by its URI. There is no
    Microsoft.Compute/disks resource behind it, so nothing can snapshot it through Compute."""

    name: str
    uri: str
    size_gb: int
    lun: int | None = None  # None: the OS disk
    caching: str = "ReadWrite"

    def to_json(self) -> dict[str, Any]:
        """As the REST spec's unmanaged-disk VM example writes it: `vhd.uri`, no `managedDisk`."""
        body: dict[str, Any] = {}
        if self.lun is not None:
            body["lun"] = self.lun
        body.update(
            {
                "name": self.name,
                "vhd": {"uri": self.uri},
                "createOption": "FromImage" if self.lun is None else "Empty",
                "caching": self.caching,
                "diskSizeGB": self.size_gb,
            }
        )
        if self.lun is not None:
            body["toBeDetached"] = False
        return body


# The parts of a VM's model an update writes; assigning any of them is an update (the ETag moves).
_VM_MODEL = frozenset(
    {
        "tags",
        "size",
        "os_disk_key",
        "data_disks",
        "zones",
        "security_type",
        "plan",
        "nic_ids",
        "os_vhd",
        "vhd_data_disks",
    }
)


@dataclass
class VirtualMachine:
    """A VM. Its ETag (`etag_version`, answered as `"N"`) counts the updates of its model: every
    assignment of a model field after creation (a PUT that swaps disks, a PATCH, the Tags API)
    moves it, so an If-Match read before an update is stale after it (412)."""

    subscription: str
    group: str
    name: str
    location: str
    size: str
    vm_id: str
    time_created: datetime
    os_type: str
    os_disk_key: str | None  # None: the OS disk is a VHD (`os_vhd`)
    power_state: str = "running"
    agent_ready: bool = True
    ephemeral_os: bool = False
    security_type: str | None = None
    plan: dict[str, str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    data_disks: list[DataDisk] = field(default_factory=list)
    image: dict[str, str] = field(default_factory=dict)
    zones: list[str] | None = None
    create_option: str = "FromImage"  # "Attach": built from existing disks (no osProfile)
    nic_ids: list[str] = field(default_factory=list)  # empty: the conventional {name}-nic
    # Lifecycle of a VM created through ARM, on the stand-in clock (None: estate VM, settled).
    provisioned_at: datetime | None = None
    running_at: datetime | None = None
    agent_at: datetime | None = None  # None with boot_fails: the agent never becomes Ready
    boot_fails: bool = False
    deleting_at: datetime | None = None
    os_vhd: VhdDisk | None = None  # an unmanaged OS disk
    vhd_data_disks: list[VhdDisk] = field(default_factory=list)  # unmanaged data disks
    etag_version: int = 1

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _VM_MODEL and "etag_version" in self.__dict__:
            object.__setattr__(self, "etag_version", self.etag_version + 1)
        object.__setattr__(self, name, value)

    @property
    def id(self) -> str:
        return compute_id(self.subscription, self.group, "virtualMachines", self.name)

    def managed_disk_keys(self) -> list[str]:
        """Keys of the managed disks attached: the OS disk (unless a VHD), then data disks."""
        head = [self.os_disk_key] if self.os_disk_key else []
        return head + [d.disk_key for d in self.data_disks]

    @property
    def from_arm(self) -> bool:
        return self.provisioned_at is not None

    def network_interfaces(self) -> list[str]:
        if self.nic_ids:
            return list(self.nic_ids)
        return [
            f"{group_id(self.subscription, self.group)}/providers/"
            f"Microsoft.Network/networkInterfaces/{self.name}-nic"
        ]

    def provisioning_state(self, now: datetime | None) -> str:
        if self.deleting_at is not None:
            return "Deleting"
        if self.provisioned_at is not None and (now is None or now < self.provisioned_at):
            return "Creating"
        return "Succeeded"


POWER_DISPLAY = {
    "running": "VM running",
    "stopped": "VM stopped",
    "deallocated": "VM deallocated",
    "starting": "VM starting",
    "stopping": "VM stopping",
    "deallocating": "VM deallocating",
}


@dataclass
class Snapshot(StoredResource):
    incremental: bool
    source_id: str
    source_unique_id: str
    unique_id: str
    time_created: datetime
    ready_at: datetime | None  # None: stuck, never finishes
    create_option: str = "Copy"
    source_uri: str | None = None
    family_id: str | None = None
    os_type: str | None = None
    hyper_v_generation: str | None = None
    encryption_type: str = "EncryptionAtRestWithPlatformKey"
    network_access_policy: str = "AllowAll"
    public_network_access: str = "Enabled"
    tags: dict[str, str] = field(default_factory=dict)
    instant_access: bool = True
    hydrated_at: datetime | None = None
    deleting_at: datetime | None = None
    security_type: str | None = None
    plan: dict[str, str] | None = None

    @property
    def id(self) -> str:
        return compute_id(self.subscription, self.group, "snapshots", self.name)

    def provisioning_state(self, now: datetime) -> str:
        if self.ready_at is None or now < self.ready_at:
            return "Updating"
        return "Succeeded"

    def completion_percent(self, now: datetime) -> float:
        if self.instant_access or self.ready_at is None or self.hydrated_at is None:
            return 100.0
        if now >= self.hydrated_at:
            return 100.0
        if now <= self.ready_at:
            return 0.0
        total = (self.hydrated_at - self.ready_at).total_seconds()
        done = (now - self.ready_at).total_seconds()
        return round(min(99.9, 100.0 * done / total), 1) if total > 0 else 100.0

    def to_json(self, now: datetime, *, in_flight: bool = False) -> dict[str, Any]:
        """The resource body. `in_flight` is the 202 answer to a PUT: what the caller sent."""
        state = self.provisioning_state(now)
        if in_flight:
            creation: dict[str, Any] = {"createOption": self.create_option}
            if self.source_uri:
                creation["sourceUri"] = self.source_uri
            else:
                creation["sourceResourceId"] = self.source_id
            props: dict[str, Any] = {"creationData": creation, "provisioningState": "Updating"}
            if self.incremental:
                props["incremental"] = True
            body: dict[str, Any] = {
                "id": self.id,
                "type": "Microsoft.Compute/snapshots",
                "location": self.location,
                "properties": props,
            }
            if self.tags:
                body["tags"] = dict(self.tags)
            return body
        props = {}
        if self.os_type:
            props["osType"] = self.os_type
            props["hyperVGeneration"] = self.hyper_v_generation or "V2"
        if self.plan:
            props["purchasePlan"] = dict(self.plan)
        if self.security_type:
            props["securityProfile"] = {"securityType": self.security_type}
        props["creationData"] = {
            "createOption": self.create_option,
            "sourceResourceId": self.source_id,
            "sourceUniqueId": self.source_unique_id,
        }
        props["diskSizeGB"] = self.size_gb
        props["encryption"] = {"type": self.encryption_type}
        props["incremental"] = self.incremental
        props["networkAccessPolicy"] = self.network_access_policy
        props["publicNetworkAccess"] = self.public_network_access
        props["timeCreated"] = format_instant(self.time_created)
        props["provisioningState"] = state
        props["diskState"] = "Unattached"
        props["diskSizeBytes"] = self.size_gb * 1024**3
        props["uniqueId"] = self.unique_id
        if self.incremental and self.family_id:
            props["incrementalSnapshotFamilyId"] = self.family_id
        if not self.instant_access:
            percent = self.completion_percent(now)
            props["completionPercent"] = percent
            props["snapshotAccessState"] = "Available" if percent >= 100 else "Pending"
        else:
            props["snapshotAccessState"] = "Available"
        return {
            "name": self.name,
            "id": self.id,
            "type": "Microsoft.Compute/snapshots",
            "location": self.location,
            "tags": dict(self.tags),
            "sku": {"name": self.sku, "tier": "Standard"},
            "properties": props,
        }


@dataclass
class Operation:
    id: str
    subscription: str
    location: str
    kind: str  # "DiskOperations" (disks, snapshots) or "operations" (VMs)
    start: datetime
    end: datetime | None  # None: stuck
    resource_key: str | None = None
    method: str = "PUT"
    api_version: str = ""

    def finished(self, now: datetime) -> bool:
        return self.end is not None and now >= self.end


@dataclass
class Lock:
    name: str
    scope: str
    level: str  # CanNotDelete | ReadOnly


@dataclass
class PolicyRule:
    """A deny (or modify) assignment evaluated on writes inside its scope."""

    name: str
    scope: str
    effect: str  # deny | modify
    resource_type: str | None = None
    require_tags: list[str] = field(default_factory=list)
    allowed_locations: list[str] = field(default_factory=list)
    property_equals: dict[str, Any] = field(default_factory=dict)
    add_tags: dict[str, str] = field(default_factory=dict)

    @property
    def assignment_id(self) -> str:
        return f"{self.scope}/providers/Microsoft.Authorization/policyAssignments/{self.name}"


@dataclass
class PolicyAssignment:
    """An Azure Policy assignment as `policyAssignments` lists it (estate `policyAssignments:`)."""

    name: str
    scope: str
    display_name: str
    policy_definition_id: str
    enforcement_mode: str = "Default"
    not_scopes: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scope}/providers/Microsoft.Authorization/policyAssignments/{self.name}"

    def to_json(self) -> dict[str, Any]:
        props: dict[str, Any] = {"displayName": self.display_name}
        if self.description:
            props["description"] = self.description
        props.update(
            {
                "policyDefinitionId": self.policy_definition_id,
                "scope": self.scope,
                "notScopes": list(self.not_scopes),
                "parameters": dict(self.parameters),
                "enforcementMode": self.enforcement_mode,
            }
        )
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Authorization/policyAssignments",
            "properties": props,
        }


@dataclass
class DenyAssignment:
    name: str
    scope: str
    actions: list[str]
    exclude_principals: list[str] = field(default_factory=list)

    def denies(self, action: str, principal: str) -> bool:
        if principal in self.exclude_principals:
            return False
        action_l = action.lower()
        for pattern in self.actions:
            p = pattern.lower()
            if p == "*" or p == action_l:
                return True
            if p.endswith("*") and action_l.startswith(p[:-1]):
                return True
        return False


@dataclass
class EstateChange:
    """One entry of the estate's `changes:` (ESTATE.md): applied once the stand-in clock has
    passed `at`, on the next request (no thread). `spec` is the entry's action value, checked
    at load time; `result` says what applying did, or why it could not."""

    index: int
    at: datetime
    action: str  # addVm, addDisk, deleteVm, deleteDisk, retag, hold, release, lock, unlock
    subscription: str
    spec: Any
    options: dict[str, Any] = field(default_factory=dict)  # withDisks, note
    applied_at: datetime | None = None
    status: int = 0  # 200 applied; 404 target gone by then; 409 refused
    result: str = ""
    target: str = ""  # the id it acted on

    @property
    def where(self) -> str:
        return f"changes[{self.index}]"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "index": self.index,
            "at": format_instant(self.at),
            "action": self.action,
            "subscription": self.subscription,
            "applied": self.applied_at is not None,
        }
        if self.applied_at is not None:
            body.update(
                {
                    "appliedAt": format_instant(self.applied_at),
                    "status": self.status,
                    "target": self.target,
                    "result": self.result,
                }
            )
        if self.options.get("note"):
            body["note"] = self.options["note"]
        return body


@dataclass
class Cloud:
    tenant_id: str
    identities: list[Identity]
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    vms: dict[str, VirtualMachine] = field(default_factory=dict)
    disks: dict[str, Disk] = field(default_factory=dict)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    # source disk key -> keys of its snapshots, so per-disk rules do not scan every snapshot
    snapshots_by_source: dict[str, set[str]] = field(default_factory=dict)
    # (subscription, region, ZRS|LRS) -> snapshots there, for the 75,000 limit
    snapshot_counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    operations: dict[str, Operation] = field(default_factory=dict)
    locks: list[Lock] = field(default_factory=list)
    policies: list[PolicyRule] = field(default_factory=list)
    deny_assignments: list[DenyAssignment] = field(default_factory=list)
    policy_assignments: list[PolicyAssignment] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    # VMs and disks whose delete is running: key -> when it ends (purged after that).
    pending_deletes: dict[str, datetime] = field(default_factory=dict)
    # Scripted boot failures (POST /admin/boot-failures): {"vmNamePattern"} or {"sourceVmId"}.
    boot_failure_rules: list[dict[str, str]] = field(default_factory=list)
    network: NetworkState = field(default_factory=NetworkState)
    # The estate's `changes:`, in the order they apply (by `at`, then as written).
    changes: list[EstateChange] = field(default_factory=list)
    next_change: int = 0  # changes before this one have been applied

    def due_changes(self, now: datetime) -> list[EstateChange]:
        """Changes whose instant has passed and that have not been applied yet, in order (one
        comparison when none is due)."""
        due, i = [], self.next_change
        while i < len(self.changes) and self.changes[i].at <= now:
            due.append(self.changes[i])
            i += 1
        return due

    def identity_by_client(self, client_id: str | None) -> Identity | None:
        if not self.identities:
            return None
        if client_id is None:
            return self.identities[0]
        for ident in self.identities:
            if ident.client_id.lower() == client_id.lower():
                return ident
        return None

    def group(self, subscription: str, name: str) -> ResourceGroup | None:
        sub = self.subscriptions.get(subscription.lower())
        return sub.groups.get(name.lower()) if sub else None

    def add_snapshot(self, snapshot_key: str, snapshot: Snapshot) -> None:
        replaced = self.snapshots.get(snapshot_key)
        if replaced is not None:
            self.snapshot_counts[snapshot_quota_key_of(replaced)] -= 1
        self.snapshots[snapshot_key] = snapshot
        self.snapshots_by_source.setdefault(key(snapshot.source_id), set()).add(snapshot_key)
        self.snapshot_counts[snapshot_quota_key_of(snapshot)] += 1

    def add_new_snapshots(self, source_id: str, snapshots: dict[str, Snapshot]) -> None:
        """Many new snapshots of one disk, all in one place and SKU (seeded estates): what
        `add_snapshot` does for each, done once."""
        if not snapshots:
            return
        self.snapshots.update(snapshots)
        self.snapshots_by_source.setdefault(key(source_id), set()).update(snapshots)
        first = next(iter(snapshots.values()))
        self.snapshot_counts[snapshot_quota_key_of(first)] += len(snapshots)

    def snapshots_of(self, source_id: str) -> list[Snapshot]:
        keys = self.snapshots_by_source.get(key(source_id), ())
        return [self.snapshots[k] for k in keys if k in self.snapshots]

    def purge(self, now: datetime) -> None:
        """Drop snapshots whose delete has finished (deletes complete on the stand-in clock)."""
        gone = [k for k, s in self.snapshots.items() if s.deleting_at and now >= s.deleting_at]
        for k in gone:
            snapshot = self.snapshots.pop(k)
            self.snapshots_by_source.get(key(snapshot.source_id), set()).discard(k)
            self.snapshot_counts[snapshot_quota_key_of(snapshot)] -= 1

    def purge_deleted(self, now: datetime) -> None:
        """Finish VM and disk deletes that have ended on the clock; a gone VM frees its disks."""
        done = [k for k, end in self.pending_deletes.items() if now >= end]
        for k in done:
            del self.pending_deletes[k]
            vm = self.vms.pop(k, None)
            if vm is not None:
                self.detach_all(vm)
                continue
            self.disks.pop(k, None)

    def detach_all(self, vm: VirtualMachine) -> None:
        """A VM is gone: its managed disks are free (Detach is their delete option)."""
        for disk_key in vm.managed_disk_keys():
            disk = self.disks.get(disk_key)
            if disk is not None and vm.id in disk.managed_by:
                disk.managed_by.remove(vm.id)

    def live_snapshot(self, resource_key: str, now: datetime) -> Snapshot | None:
        snap = self.snapshots.get(resource_key)
        if snap is None or (snap.deleting_at is not None and now >= snap.deleting_at):
            return None
        return snap

    def vm_json(self, vm: VirtualMachine, now: datetime | None = None) -> dict[str, Any]:
        attach = vm.create_option.lower() == "attach"
        os_block: dict[str, Any] = {"osType": vm.os_type}
        if vm.os_vhd is not None:
            os_block.update(vm.os_vhd.to_json())
        else:
            assert vm.os_disk_key is not None
            os_disk = self.disks[vm.os_disk_key]
            os_block.update(
                {
                    "name": os_disk.name,
                    "createOption": "Attach" if attach else "FromImage",
                    "caching": "ReadOnly" if vm.ephemeral_os else "ReadWrite",
                    "managedDisk": {"storageAccountType": os_disk.sku, "id": os_disk.id},
                    "diskSizeGB": os_disk.size_gb,
                    "deleteOption": "Delete" if vm.ephemeral_os else "Detach",
                }
            )
        if vm.ephemeral_os:
            os_block["diffDiskSettings"] = {"option": "Local", "placement": "CacheDisk"}
        data: list[dict[str, Any]] = [v.to_json() for v in vm.vhd_data_disks]
        for dd in vm.data_disks:
            disk = self.disks[dd.disk_key]
            data.append(
                {
                    "lun": dd.lun,
                    "name": disk.name,
                    "createOption": "Attach",
                    "caching": dd.caching,
                    "managedDisk": {"storageAccountType": disk.sku, "id": disk.id},
                    "diskSizeGB": disk.size_gb,
                    "deleteOption": "Detach",
                    "toBeDetached": False,
                }
            )
        data.sort(key=lambda d: int(d["lun"]))
        storage: dict[str, Any] = {}
        if not attach:
            storage["imageReference"] = dict(
                vm.image
                or {
                    "publisher": "Canonical" if vm.os_type == "Linux" else "MicrosoftWindowsServer",
                    "offer": "ubuntu-24_04-lts" if vm.os_type == "Linux" else "WindowsServer",
                    "sku": "server" if vm.os_type == "Linux" else "2022-datacenter-azure-edition",
                    "version": "latest",
                }
            )
        storage.update({"osDisk": os_block, "dataDisks": data, "diskControllerType": "SCSI"})
        nics = vm.network_interfaces()
        props: dict[str, Any] = {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.size},
            "storageProfile": storage,
        }
        if not attach:  # a VM built from attached disks has no osProfile (it is specialized)
            props["osProfile"] = {
                "computerName": vm.name[:15],
                "adminUsername": "azureuser",
                "secrets": [],
                "allowExtensionOperations": True,
            }
        props.update(
            {
                "networkProfile": {
                    "networkInterfaces": [
                        {"id": nic, "properties": {"primary": i == 0}}
                        if vm.nic_ids
                        else {"id": nic}
                        for i, nic in enumerate(nics)
                    ]
                },
                "diagnosticsProfile": {"bootDiagnostics": {"enabled": True}},
                "extensionsTimeBudget": "PT1H30M",
                "provisioningState": vm.provisioning_state(now),
                "timeCreated": format_instant(vm.time_created),
            }
        )
        if vm.security_type:
            security: dict[str, Any] = {"securityType": vm.security_type}
            if vm.security_type in ("TrustedLaunch", "ConfidentialVM"):
                security["uefiSettings"] = {"secureBootEnabled": True, "vTpmEnabled": True}
            props["securityProfile"] = security
        body: dict[str, Any] = {
            "name": vm.name,
            "id": vm.id,
            "type": "Microsoft.Compute/virtualMachines",
            "location": vm.location,
            "tags": dict(vm.tags),
            "etag": f'"{vm.etag_version}"',
            "properties": props,
        }
        if vm.plan:
            body["plan"] = dict(vm.plan)
        if vm.zones:
            body["zones"] = list(vm.zones)
        return body

    def instance_view_json(self, vm: VirtualMachine, now: datetime) -> dict[str, Any]:
        """The instance view; a VM created through ARM moves through its lifecycle on the clock:
        ProvisioningState/creating -> succeeded, PowerState/starting -> running, then the VM
        agent "Not Ready" -> "Ready" (never, for a scripted boot failure)."""
        stamp = format_instant(vm.time_created)
        power = vm.power_state
        provisioning = ("succeeded", "Provisioning succeeded")
        agent_ready = vm.agent_ready
        agent_message = "VM status blob is found but not yet populated."
        if vm.from_arm:
            assert vm.provisioned_at is not None
            assert vm.running_at is not None
            if vm.deleting_at is not None:
                provisioning = ("deleting", "Deleting")
                power = "stopping" if now < vm.deleting_at else "stopped"
            else:
                if now < vm.provisioned_at:
                    provisioning = ("creating", "Creating")
                power = "running" if now >= vm.running_at else "starting"
                agent_ready = vm.agent_at is not None and now >= vm.agent_at
                if vm.boot_fails:
                    agent_message = "VM Agent is unresponsive."
            stamp = format_instant(min(now, vm.provisioned_at))
        disks = []
        names = [self.disks[k].name for k in vm.managed_disk_keys()]
        if vm.os_vhd is not None:
            names.insert(0, vm.os_vhd.name)
        names += [v.name for v in vm.vhd_data_disks]
        for name in names:
            disks.append(
                {
                    "name": name,
                    "statuses": [
                        {
                            "code": "ProvisioningState/succeeded",
                            "level": "Info",
                            "displayStatus": "Provisioning succeeded",
                            "time": stamp,
                        }
                    ],
                }
            )
        provisioning_status: dict[str, Any] = {
            "code": f"ProvisioningState/{provisioning[0]}",
            "level": "Info",
            "displayStatus": provisioning[1],
        }
        if provisioning[0] == "succeeded":
            provisioning_status["time"] = stamp
        body: dict[str, Any] = {
            "platformUpdateDomain": 0,
            "platformFaultDomain": 0,
            "computerName": vm.name[:15],
            "osName": "ubuntu" if vm.os_type == "Linux" else "Windows Server 2022 Datacenter",
            "osVersion": "24.04" if vm.os_type == "Linux" else "10.0.20348",
            "hyperVGeneration": "V2",
            "isVMInStandbyPool": False,
            "disks": disks,
            "statuses": [
                provisioning_status,
                {
                    "code": f"PowerState/{power}",
                    "level": "Info",
                    "displayStatus": POWER_DISPLAY.get(power, power),
                },
            ],
        }
        if power == "running":
            ready = agent_ready
            body["vmAgent"] = {
                "vmAgentVersion": "2.13.1.1" if ready else "Unknown",
                "statuses": [
                    {
                        "code": "ProvisioningState/succeeded"
                        if ready
                        else "ProvisioningState/Unavailable",
                        "level": "Info" if ready else "Warning",
                        "displayStatus": "Ready" if ready else "Not Ready",
                        "message": "Guest Agent is running" if ready else agent_message,
                        "time": format_instant(now - timedelta(seconds=30)),
                    }
                ],
                "extensionHandlers": [],
            }
        return body


def snapshot_quota_key(subscription: str, region: str, sku: str) -> tuple[str, str, str]:
    """Where a snapshot counts for the per-subscription-and-region limit: ZRS and LRS apart."""
    redundancy = "Standard_ZRS" if sku.upper().endswith("_ZRS") else "Standard_LRS"
    return subscription.lower(), region.lower().replace(" ", ""), redundancy


def snapshot_quota_key_of(snapshot: Snapshot) -> tuple[str, str, str]:
    return snapshot_quota_key(snapshot.subscription, snapshot.location, snapshot.sku)
