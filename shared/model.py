"""Domain types shared by every job, starting with the outcome record.

The outcome record is the contract between the code, the `LifeboatOutcomes_CL` table in Azure
Monitor and the alert rules. It is defined here once; the table and DCR columns in `infra/` are
generated from `OUTCOME_COLUMNS`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.names import Job as Job
from shared.names import Status as Status

# Column name -> Log Analytics column type, in table order. The encoding of each column is the
# field of `Outcome` named in `_FIELD_OF_COLUMN`.
OUTCOME_COLUMNS: tuple[tuple[str, str], ...] = (
    ("TimeGenerated", "datetime"),
    ("RunId", "string"),
    ("Job", "string"),
    ("Operation", "string"),
    ("Status", "string"),
    ("Finding", "string"),
    ("Severity", "string"),
    ("SubscriptionId", "string"),
    ("Region", "string"),
    ("ResourceGroup", "string"),
    ("ResourceId", "string"),
    ("VmName", "string"),
    ("Policy", "string"),
    ("Reason", "string"),
    ("Details", "dynamic"),
    ("RpoSeconds", "long"),
    ("RtoSeconds", "long"),
    ("Count", "long"),
    ("DryRun", "boolean"),
    ("OutcomeId", "string"),
    # Lowercase keys of the VM and the disk a row is about (ids keep their display form in
    # ResourceId): queries group and join on these, whatever casing an event or a list used.
    ("VmKey", "string"),
    ("DiskKey", "string"),
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of `LifeboatOutcomes_CL`: something Lifeboat did, planned, refused or found."""

    time: datetime
    run_id: str
    job: Job
    operation: str
    status: Status
    finding: str | None = None
    severity: str | None = None
    subscription_id: str | None = None
    region: str | None = None
    resource_group: str | None = None
    resource_id: str | None = None
    vm_name: str | None = None
    policy: str | None = None
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    rpo_seconds: int | None = None
    rto_seconds: int | None = None
    count: int | None = None
    dry_run: bool = False
    # Deterministic per piece of work and row (shared/outcomes.py): a repeat is the same row.
    id: str | None = None
    # Lowercase keys (VmKey, DiskKey): given, or read from `resource_id` when it names a VM/disk.
    vm_key: str | None = None
    disk_key: str | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("Outcome.time must be timezone-aware (UTC)")
        if not self.operation:
            raise ValueError("Outcome.operation must not be empty")
        vm_key, disk_key = self.vm_key, self.disk_key
        if vm_key is None and self.resource_id and parse_vm_id(self.resource_id) is not None:
            vm_key = self.resource_id
        if disk_key is None and self.resource_id and is_disk_id(self.resource_id):
            disk_key = self.resource_id
        object.__setattr__(self, "vm_key", resource_key(vm_key))
        object.__setattr__(self, "disk_key", resource_key(disk_key))

    def to_record(self) -> dict[str, Any]:
        """The row as the Logs Ingestion stream expects it: column names, JSON-ready values."""
        record: dict[str, Any] = {}
        for column, _type in OUTCOME_COLUMNS:
            value = getattr(self, _FIELD_OF_COLUMN[column])
            if isinstance(value, datetime):
                value = format_time(value)
            elif isinstance(value, enum.Enum):
                value = value.value
            record[column] = value
        return record


_FIELD_OF_COLUMN: dict[str, str] = {
    "TimeGenerated": "time",
    "RunId": "run_id",
    "Job": "job",
    "Operation": "operation",
    "Status": "status",
    "Finding": "finding",
    "Severity": "severity",
    "SubscriptionId": "subscription_id",
    "Region": "region",
    "ResourceGroup": "resource_group",
    "ResourceId": "resource_id",
    "VmName": "vm_name",
    "Policy": "policy",
    "Reason": "reason",
    "Details": "details",
    "RpoSeconds": "rpo_seconds",
    "RtoSeconds": "rto_seconds",
    "Count": "count",
    "DryRun": "dry_run",
    "OutcomeId": "id",
    "VmKey": "vm_key",
    "DiskKey": "disk_key",
}


def resource_key(resource_id: str | None) -> str | None:
    """The one form of an ARM id that queries group by: lowercase, one leading slash."""
    if not resource_id or not resource_id.strip("/"):
        return None
    return "/" + resource_id.strip().strip("/").lower()


def is_disk_id(resource_id: str) -> bool:
    """Whether an ARM id names a managed disk (any casing)."""
    parts = resource_id.strip("/").lower().split("/")
    return (
        len(parts) == 8
        and parts[0] == "subscriptions"
        and parts[5] == "microsoft.compute"
        and parts[6] == "disks"
    )


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, to the microsecond when there is one."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class VmRef:
    """A virtual machine named by its ARM id."""

    subscription_id: str
    resource_group: str
    name: str

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/virtualMachines/{self.name}"
        )


def parse_vm_id(resource_id: str) -> VmRef | None:
    """The VM an ARM id names, or None when it names anything else (a VM extension, a disk...)."""
    parts = resource_id.strip("/").split("/")
    if len(parts) != 8:
        return None
    subs, sub, rgs, rg, providers, namespace, kind, name = parts
    if (
        subs.lower() != "subscriptions"
        or rgs.lower() != "resourcegroups"
        or providers.lower() != "providers"
        or namespace.lower() != "microsoft.compute"
        or kind.lower() != "virtualmachines"
        or not (sub and rg and name)
    ):
        return None
    return VmRef(subscription_id=sub.lower(), resource_group=rg, name=name)


@dataclass(frozen=True, slots=True)
class DiskAttachment:
    """One disk slot of a VM: the OS disk (lun None) or a data disk at a LUN."""

    lun: int | None
    disk_id: str | None  # None for an ephemeral OS disk or an unmanaged (VHD) disk
    ephemeral: bool = False
    vhd_uri: str | None = None


@dataclass(frozen=True, slots=True)
class Vm:
    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    tags: dict[str, str]
    os_disk: DiskAttachment
    data_disks: tuple[DiskAttachment, ...] = ()
    security_type: str | None = None  # TrustedLaunch, ConfidentialVM, or None (Standard)
    hyper_v_generation: str | None = None
    plan: dict[str, str] | None = None
    power_state: str | None = None
    time_created: datetime | None = None
    size: str | None = None
    os_type: str | None = None  # Linux | Windows
    security_profile: dict[str, Any] | None = None  # as the REST body has it (copied by drills)

    @property
    def attachments(self) -> tuple[DiskAttachment, ...]:
        return (self.os_disk, *self.data_disks)


@dataclass(frozen=True, slots=True)
class Disk:
    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    unique_id: str
    sku: str | None = None
    encryption_type: str | None = None
    disk_encryption_set_id: str | None = None
    azure_disk_encryption: bool = False
    size_gb: int | None = None
    max_shares: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    hyper_v_generation: str | None = None
    os_type: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    time_created: datetime | None
    source_resource_id: str | None
    source_unique_id: str | None
    incremental: bool
    provisioning_state: str | None
    completion_percent: float | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def good(self) -> bool:
        """Usable as a recovery point: provisioned and, for v2/Ultra, fully copied."""
        if (self.provisioning_state or "").lower() != "succeeded":
            return False
        return self.completion_percent is None or self.completion_percent >= 100


def arm_id_parts(resource_id: str) -> tuple[str, str]:
    """(subscription id, resource group) of an ARM id; lower-cased subscription."""
    parts = resource_id.strip("/").split("/")
    if (
        len(parts) < 4
        or parts[0].lower() != "subscriptions"
        or parts[2].lower() != "resourcegroups"
    ):
        raise ValueError(f"not a resource-group-scoped ARM id: {resource_id!r}")
    return parts[1].lower(), parts[3]


# ------------------------------------------------------------------ Azure Backup (verification)


@dataclass(frozen=True, slots=True)
class Vault:
    """A Recovery Services vault. A vault protects only VMs in its own region."""

    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str


@dataclass(frozen=True, slots=True)
class ProtectedItem:
    """An Azure IaaS VM protected item, read from its REST JSON (never the SDK's model)."""

    id: str
    vault_id: str
    vm_id: str  # sourceResourceId / virtualMachineId, casing as Azure returns it
    container_name: str
    name: str
    protection_state: str | None  # Protected, IRPending, ProtectionStopped, ProtectionPaused...
    health_status: str | None = None
    last_backup_status: str | None = None
    last_backup_time: datetime | None = None  # None before the first backup (the 2001 sentinel)
    last_recovery_point: datetime | None = None
    soft_deleted: bool = False
    policy_name: str | None = None


@dataclass(frozen=True, slots=True)
class BackupJob:
    id: str
    vault_id: str
    entity_name: str  # entityFriendlyName: the VM's name
    container_name: str | None
    operation: str  # Backup, ConfigureBackup, Restore...
    status: str  # InProgress, Completed, CompletedWithWarnings, Failed, Cancelled
    start_time: datetime | None
    end_time: datetime | None = None
    error_code: str | None = None
    error_message: str | None = None
    user_triggered: bool = False


@dataclass(frozen=True, slots=True)
class RecoveryPoint:
    id: str
    time: datetime
    consistency: str | None  # recoveryPointType: AppConsistent, CrashConsistent, ...
    tiers: tuple[str, ...] = ()  # valid tiers: "snapshot" (instant restore), "vault"


@dataclass(frozen=True, slots=True)
class BackupStatus:
    """The backup-status POST's answer for one VM (it sees vaults in any subscription)."""

    protected: bool
    vault_id: str | None = None
    policy_name: str | None = None
    error_code: str | None = None


# ------------------------------------------------------------------------------ DR drills


@dataclass(frozen=True, slots=True)
class SecurityRule:
    """One NSG rule, custom or default, with its address and port lists flattened."""

    name: str
    priority: int
    direction: str  # Inbound | Outbound
    access: str  # Allow | Deny
    protocol: str = "*"
    sources: tuple[str, ...] = ("*",)
    destinations: tuple[str, ...] = ("*",)
    destination_ports: tuple[str, ...] = ("*",)
    source_ports: tuple[str, ...] = ("*",)


@dataclass(frozen=True, slots=True)
class NetworkRoute:
    name: str
    address_prefix: str
    next_hop_type: str  # VnetLocal, Internet, VirtualAppliance, VirtualNetworkGateway, None


@dataclass(frozen=True, slots=True)
class ConnectivityConfiguration:
    """An Azure Virtual Network Manager connectivity configuration in effect on a VNet."""

    id: str
    topology: str  # Mesh | HubAndSpoke
    hubs: tuple[str, ...] = ()  # hub VNet ids (hub and spoke)


@dataclass(frozen=True, slots=True)
class DrillNetwork:
    """What the isolation pre-flight looks at: a subnet, its VNet, NSG and route table, and the
    Virtual Network Manager configurations in effect on the VNet."""

    vnet_id: str
    subnet_id: str
    location: str
    peerings: tuple[str, ...] = ()  # remote VNet (or hub) ids
    subnet_names: tuple[str, ...] = ()  # every subnet of the VNet
    gateway_configurations: tuple[str, ...] = ()  # gateway ip configurations in the VNet
    default_outbound_access: bool | None = None  # None: the platform default (on)
    nat_gateway_id: str | None = None
    route_table_id: str | None = None
    routes: tuple[NetworkRoute, ...] = ()
    private_endpoints: tuple[str, ...] = ()
    nsg_id: str | None = None
    security_rules: tuple[SecurityRule, ...] = ()  # custom and default
    public_ips: tuple[str, ...] = ()  # public IPs on NICs in the subnet
    provisioning_state: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # Azure Virtual Network Manager, as the VNet's effective lists show it.
    connectivity_configurations: tuple[ConnectivityConfiguration, ...] = ()
    admin_rules: tuple[SecurityRule, ...] = ()  # security admin rules: Allow|Deny|AlwaysAllow
    network_manager_unknown: str | None = None  # why those lists could not be read


@dataclass(frozen=True, slots=True)
class DrillResource:
    """A resource in a drill resource group (VM, NIC, disk, VNet or NSG)."""

    id: str
    kind: str  # the ARM type's last segment: virtualMachines, networkInterfaces, disks...
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    provisioning_state: str | None = None
    in_use_by: str | None = None  # a disk's managedBy, a NIC's virtualMachine
    location: str = ""
    source_id: str | None = None  # a disk's creationData.sourceResourceId
    time_created: datetime | None = None  # a disk's timeCreated

    @property
    def succeeded(self) -> bool:
        return (self.provisioning_state or "").lower() == "succeeded"

    @property
    def failed(self) -> bool:
        return (self.provisioning_state or "").lower() in ("failed", "canceled")


@dataclass(frozen=True, slots=True)
class VmStatus:
    """A VM's instance view, as far as a drill cares."""

    provisioning_state: str | None
    power_state: str | None  # starting, running, stopped, deallocated...
    agent_status: str | None  # the VM agent's displayStatus: Ready, Not Ready
    agent_message: str | None = None
    data_disks: int = 0

    @property
    def ready(self) -> bool:
        return self.power_state == "running" and (self.agent_status or "").lower() == "ready"

    @property
    def provisioning_failed(self) -> bool:
        return (self.provisioning_state or "").lower() == "failed"

    @property
    def deleting(self) -> bool:
        return (self.provisioning_state or "").lower() == "deleting"


@dataclass(frozen=True, slots=True)
class PolicyAssignment:
    name: str
    display_name: str | None
    scope: str
    enforcement_mode: str | None = None
