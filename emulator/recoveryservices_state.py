"""State of the stand-in's Recovery Services as plain objects: vaults, policies, protected items,
their recovery points, jobs (backups, configure protection, restores), operations and the staging
storage accounts restores write to. No routes here (`recoveryservices.py`), no restore rules
(`recoveryservices_restore.py`)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from emulator.clock import parse_instant
from emulator.ids import key, vault_id

SENTINEL = "2001-01-01T00:00:00Z"
DEFAULT_RESTORE_SECONDS = 600.0  # one recorded vault-tier RestoreDisks job took 10 min 06 s
DEFAULT_SNAPSHOT_TIER_DAYS = 2.0  # a standard policy's instantRpRetentionRangeInDays default
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

# recoveryPointTierDetails as the recorded answer writes them (integers): type 1 is the snapshot
# tier (InstantRP), 2 the vault tier (HardenedRP); status 1 is Valid.
TIER_SNAPSHOT = 1
TIER_VAULT = 2
TIER_VALID = 1


def azure_time(value: datetime) -> str:
    """Recovery Services writes 7 fractional digits, as recorded."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def seconds_of(text: str) -> float | None:
    """`5h`, `30m`, `1.5d` -> seconds; None when `text` is not such an age."""
    match = _AGE.match(text.strip())
    if match is None:
        return None
    return float(match.group(1)) * _AGE_UNITS[match.group(2)]


def age_instant(value: Any, now: datetime) -> datetime | None:
    """An estate age (`5h`) before `now`, or an RFC 3339 instant; None for None."""
    if value is None:
        return None
    text = str(value).strip()
    seconds = seconds_of(text)
    if seconds is not None:
        return now - timedelta(seconds=seconds)
    return parse_instant(text)


def point_name(moment: datetime) -> str:
    """Recovery point names are digits (14 or 15 in the recordings); ours come from the time."""
    return str(int(moment.timestamp() * 1000) % 10**14)


@dataclass
class BackupPolicy:
    name: str
    hour: int = 2
    minute: int = 30
    retention_days: int = 30


@dataclass
class RecoveryPoint:
    time: datetime
    consistency: str  # AppConsistent, CrashConsistent, FileSystemConsistent
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = point_name(self.time)


@dataclass
class RestoreScript:
    """How an item's restore jobs end (estate `restore:`)."""

    outcome: str = "complete"  # complete, warn (CompletedWithWarnings), fail, inprogress
    error_code: str = "UserErrorRestoreFailed"
    seconds: float = DEFAULT_RESTORE_SECONDS


@dataclass
class StagingAccount:
    """A storage account restores stage to (estate `storageAccounts:`)."""

    subscription: str
    group: str
    name: str
    location: str
    sku: str = "Standard_LRS"
    kind: str = "StorageV2"

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.group}/providers/"
            f"Microsoft.Storage/storageAccounts/{self.name}"
        )


@dataclass
class DiskPlan:
    """One managed disk of a protected VM, as a restore makes it again."""

    lun: int | None  # None: the OS disk
    name: str
    size_gb: int
    sku: str
    os_type: str | None = None
    hyper_v_generation: str | None = None
    security_type: str | None = None


@dataclass
class RestoreDetails:
    """What a restore job was asked for and what it made."""

    point: RecoveryPoint
    target_subscription: str
    target_group: str
    account: StagingAccount
    luns: list[int] | None  # restoreDiskLunList; None: every disk
    zones: list[str] | None
    container: str = ""  # the config blob's container, `vhd` + 32 hex digits
    plans: list[DiskPlan] = field(default_factory=list)  # the source VM's disks at the trigger
    disks: list[str] = field(default_factory=list)  # ids of the restored disks, once made


@dataclass
class Job:
    id: str
    item: Item
    operation: str  # Backup, ConfigureBackup, Restore
    start: datetime
    seconds: float
    outcome: str  # complete, fail, inprogress; restores also warn
    error_code: str | None = None
    user_triggered: bool = False
    finished: bool = False
    restore: RestoreDetails | None = None

    def end(self) -> datetime | None:
        if self.outcome == "inprogress":
            return None
        return self.start + timedelta(seconds=self.seconds)

    def status(self, now: datetime) -> str:
        end = self.end()
        if end is None or now < end:
            return "InProgress"
        if self.outcome == "fail":
            return "Failed"
        return "CompletedWithWarnings" if self.outcome == "warn" else "Completed"


@dataclass
class Item:
    vault: Vault
    vm_id: str
    group: str
    vm: str
    policy: str
    state: str = "Protected"  # IRPending, Protected, ProtectionStopped
    soft_deleted: bool = False
    outcome: str = "complete"
    error_code: str = "CloudDosAbsoluteLimitReached"
    job_seconds: float = 600.0
    consistency: str = "CrashConsistent"
    points: list[RecoveryPoint] = field(default_factory=list)
    last_backup: datetime | None = None
    last_status: str = ""
    scheduled_until: datetime | None = None
    snapshot_tier_days: float = DEFAULT_SNAPSHOT_TIER_DAYS
    restore: RestoreScript = field(default_factory=RestoreScript)
    layout: list[DiskPlan] = field(default_factory=list)  # the VM's disks when it was protected

    @property
    def container(self) -> str:
        return f"iaasvmcontainerv2;{self.group};{self.vm}".lower()

    @property
    def name(self) -> str:
        return f"VM;{self.container}"

    @property
    def id(self) -> str:
        return (
            f"{self.vault.arm_id}/backupFabrics/Azure/protectionContainers/"
            f"IaasVMContainer;{self.container}/protectedItems/{self.name}"
        )

    @property
    def retains(self) -> bool:
        """Points expire by the policy's retention only while protection runs (stopped and
        soft-deleted items keep theirs)."""
        return not self.soft_deleted and self.state != "ProtectionStopped"

    def point(self, name: str) -> RecoveryPoint | None:
        return next((p for p in self.points if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        latest = max((p.time for p in self.points), default=None)
        props: dict[str, Any] = {
            "friendlyName": self.vm,
            "virtualMachineId": self.vm_id,
            "protectionStatus": "Healthy",
            "protectionState": "ProtectionStopped" if self.soft_deleted else self.state,
            "healthStatus": "Passed",
            "lastBackupStatus": self.last_status,
            "lastBackupTime": azure_time(self.last_backup) if self.last_backup else SENTINEL,
            "protectedItemDataId": str(abs(hash(key(self.vm_id))) % 10**15),
            "protectedItemType": "Microsoft.Compute/virtualMachines",
            "backupManagementType": "AzureIaasVM",
            "workloadType": "VM",
            "containerName": self.container,
            "sourceResourceId": self.vm_id,
            "policyId": f"{self.vault.arm_id}/backupPolicies/{self.policy}",
            "policyName": self.policy,
            "policyType": "V1",
        }
        if latest is not None:
            props["lastRecoveryPoint"] = azure_time(latest)
        if self.soft_deleted:
            props["isScheduledForDeferredDelete"] = True
            props["deferredDeleteTimeInUTC"] = azure_time(
                (self.last_backup or datetime(2026, 1, 1, tzinfo=UTC)) + timedelta(days=14)
            )
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
            "protectedItems",
            "properties": props,
        }


@dataclass
class Operation:
    id: str
    job_id: str | None
    start: datetime
    polls: int = 0
    body_item: Item | None = None


@dataclass
class Vault:
    subscription: str
    group: str
    name: str
    location: str
    policies: dict[str, BackupPolicy] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)  # key(vm id) -> item
    jobs: list[Job] = field(default_factory=list)
    operations: dict[str, Operation] = field(default_factory=dict)

    @property
    def arm_id(self) -> str:
        return vault_id(self.subscription, self.group, self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.subscription}/resourceGroups/{self.group}/providers/"
            f"Microsoft.RecoveryServices/vaults/{self.name}",
            "name": self.name,
            "type": "Microsoft.RecoveryServices/vaults",
            "location": self.location,
            "tags": {},
            "etag": f"W/\"datetime'{uuid.uuid5(uuid.NAMESPACE_URL, self.name)}'\"",
            "sku": {"name": "RS0", "tier": "Standard"},
            "properties": {
                "provisioningState": "Succeeded",
                "privateEndpointStateForBackup": "None",
                "privateEndpointStateForSiteRecovery": "None",
            },
        }
