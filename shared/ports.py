"""The ports the use cases talk through. Adapters in `shared/adapters` implement them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.model import (
    BackupJob,
    BackupStatus,
    Disk,
    DrillNetwork,
    DrillResource,
    Outcome,
    PolicyAssignment,
    ProtectedItem,
    RecoveryPoint,
    Snapshot,
    Vault,
    Vm,
    VmStatus,
)
from shared.pacing import Pace
from shared.policies import PolicySet
from shared.settings import Settings


class Clock(Protocol):
    """The only way product code learns the time. Always timezone-aware UTC."""

    def now(self) -> datetime: ...


class Reporter(Protocol):
    """Sends outcome records to wherever the ops team reads them."""

    def report(self, outcomes: Iterable[Outcome]) -> None: ...


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A queue message as text (already base64-decoded when it could be), with its receipt."""

    id: str
    pop_receipt: str
    text: str | None
    raw: str
    dequeue_count: int


class Queues(Protocol):
    """Storage queues, base64 on the wire."""

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None: ...

    def list_queues(self, *, suffix: str = "") -> list[str]: ...

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[ReceivedMessage]: ...

    def delete(self, queue: str, message: ReceivedMessage) -> None: ...


class BlobStoreError(Exception):
    """A blob could not be written (the store was unreachable, refused, or failed)."""


class BlobStore(Protocol):
    """One private blob container, written once per name (poisoned messages' full text)."""

    @property
    def container(self) -> str: ...

    def put_if_absent(self, name: str, data: bytes) -> None:
        """Write `data` as blob `name` unless it exists (names are content hashes); raises
        BlobStoreError when it cannot be written."""
        ...


class StagingBlobsError(Exception):
    """A staging account's blob service refused (403: no role on it) or could not be reached."""


@dataclass(frozen=True, slots=True)
class StagingContainer:
    """A blob container of a restore staging account, and when it was last modified."""

    name: str
    last_modified: datetime | None


class StagingBlobs(Protocol):
    """The blob side of the restore staging accounts (RESTORE_STAGING_ACCOUNTS): what Azure
    Backup's restores leave there, read and removed with Lifeboat's own identity. Accounts are
    named, not addressed: the adapter knows their endpoints. Every call raises StagingBlobsError
    when the account refuses or cannot be reached."""

    def list_containers(self, account: str, prefix: str) -> list[StagingContainer]: ...

    def list_blobs(self, account: str, container: str) -> list[str]:
        """The names of the container's blobs; [] when the container does not exist."""
        ...

    def delete_blob(self, account: str, container: str, name: str) -> bool:
        """Delete one blob; False when it was not there."""
        ...

    def delete_container(self, account: str, container: str) -> bool:
        """Delete the container; False when it was not there."""
        ...


@dataclass(frozen=True, slots=True)
class Runtime:
    """The ports and settings one worker process runs with; built once by `services()`.

    Every port is always there: a feature whose settings are absent is off (and says so in its
    timer's `run-start` row), never a port that is silently missing.
    """

    settings: Settings
    clock: Clock
    reporter: Reporter
    queues: Queues
    compute: Compute
    policies: PolicySet
    backup: Backup
    drills: DrillCloud
    blobs: BlobStore
    site_recovery: SiteRecovery
    staging: StagingBlobs
    # How far this process may write ahead of the night's pace; `build_runtime` gives a real
    # one, use-case tests on fake ports (whose drains take no real time) none unless they ask.
    pace: Pace = field(default_factory=Pace.off)


class ThrottledError(Exception):
    """Azure answered 429: come back after `retry_after` seconds (re-enqueue, never sleep)."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(message or f"throttled; retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class RefusedError(Exception):
    """Azure refused for a reason that will not heal by retrying (a lock, a policy, a quota)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LimitReachedError(RefusedError):
    """Azure refused because a platform limit is reached that lifts only later than a put-back
    is worth: the 500 incremental snapshots of a disk, until some are deleted (the next night's
    prunes). The work is reported `waiting` with `reason`, never `failed` or `blocked`."""

    def __init__(self, code: str, message: str, reason: str) -> None:
        super().__init__(code, message)
        self.reason = reason


class UnavailableError(Exception):
    """Azure did not answer (5xx, 408, a timeout, a dropped connection), even after the bounded
    retries inside the SDK: transient, but not worth retrying at once."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    source_disk_id: str
    tags: dict[str, str]


class Compute(Protocol):
    """Compute and resource tags, reading with subscription-level lists."""

    def list_vms(self, subscription_id: str) -> list[Vm]: ...

    def list_disks(self, subscription_id: str) -> list[Disk]: ...

    def list_snapshots(self, subscription_id: str, resource_group: str) -> list[Snapshot]: ...

    def list_subscription_snapshots(self, subscription_id: str) -> list[Snapshot]:
        """Every snapshot of the subscription (COUNT_ALL_SNAPSHOTS: counts, never deletes)."""
        ...

    def get_vm(self, vm_id: str) -> Vm | None: ...

    def get_disk(self, disk_id: str) -> Disk | None: ...

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None: ...

    def begin_create_snapshot(self, request: SnapshotRequest) -> None: ...

    def begin_delete_snapshot(self, snapshot_id: str) -> None: ...

    def merge_tags(self, resource_id: str, tags: dict[str, str]) -> None: ...

    def write_headroom(self, subscription_id: str) -> int | None:
        """Writes left in the subscription's ARM bucket, as the last response said (or None)."""
        ...

    def delete_headroom(self, subscription_id: str) -> int | None:
        """Deletes left in the subscription's ARM delete bucket, as the last response said."""
        ...

    def read_headroom(self, subscription_id: str) -> int | None:
        """Reads left in the subscription's ARM read bucket, as the last response said."""
        ...


class Backup(Protocol):
    """Azure Backup (Recovery Services): per-vault lists, never one call per VM."""

    def list_vaults(self, subscription_id: str) -> list[Vault]: ...

    def list_protected_items(self, vault: Vault) -> list[ProtectedItem]:
        """Every Azure IaaS VM item of the vault (one paged list)."""
        ...

    def list_jobs(self, vault: Vault, since: datetime, until: datetime) -> list[BackupJob]:
        """Backup jobs of the vault that started in [since, until] (one paged, filtered list)."""
        ...

    def list_recovery_points(self, item: ProtectedItem) -> list[RecoveryPoint]: ...

    def get_backup_status(self, vm_id: str, location: str) -> BackupStatus:
        """One POST per VM: use it only to confirm that a VM is unprotected."""
        ...

    def trigger_backup(self, item: ProtectedItem, keep_until: datetime) -> str | None:
        """An on-demand backup (a POST, never retried); the job id when Azure names it."""
        ...

    def ensure_protection(self, vault: Vault, vm: Vm, policy_name: str) -> ProtectedItem | None:
        """Enable protection of `vm` in `vault` with the named policy (needs VM write)."""
        ...

    # --- restores (recovery-point drills, issue 20)

    def list_points(
        self, item: ProtectedItem, since: datetime, until: datetime
    ) -> list[RecoveryPoint]:
        """The item's recovery points taken in [since, until] (one paged, filtered list)."""
        ...

    def get_point(self, item: ProtectedItem, point_id: str) -> RecoveryPoint | None:
        """One recovery point of the item by id (None when it is gone, e.g. expired)."""
        ...

    def trigger_restore(self, item: ProtectedItem, request: RestoreRequest) -> str:
        """RestoreDisks (a POST, never retried, as the backup-writer identity): the id of the
        operation Azure names in `Azure-AsyncOperation`. Never waits for it."""
        ...

    def get_restore_operation(self, item: ProtectedItem, operation_id: str) -> str | None:
        """The job id once the operation names it; None while it runs; RefusedError when the
        operation failed."""
        ...

    def get_job(self, vault_id: str, job_id: str) -> RestoreJob | None:
        """One backup job with its extended info (a restore job's property bag)."""
        ...

    def list_restore_jobs(self, vault: Vault, since: datetime, until: datetime) -> list[BackupJob]:
        """Restore jobs of the vault that started in [since, until]."""
        ...


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    """`IaasVMRestoreRequest` with `recoveryType: RestoreDisks` (Lifeboat sends no other)."""

    point_id: str
    source_vm_id: str
    region: str
    target_group_id: str  # the drill group, in the vault's subscription
    staging_account_id: str
    zones: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RestoreJob:
    """A backup job read by id (`backupJobs/{id}`): a restore's status, times and property bag."""

    id: str
    operation: str
    status: str  # InProgress | Completed | CompletedWithWarnings | Failed | Cancelled
    start_time: datetime | None
    end_time: datetime | None
    error_code: str | None = None
    error_message: str | None = None
    properties: dict[str, str] | None = None  # extendedInfo.propertyBag


# --- Azure Site Recovery (verification of replicated VMs, issue 21)


@dataclass(frozen=True, slots=True)
class ReplicatedItem:
    """A replication-protected item of a vault, read from its REST JSON (A2A details)."""

    id: str
    vault_id: str
    name: str  # friendlyName (the VM's name for A2A)
    vm_id: str | None  # A2A `fabricObjectId`: the source VM, casing as Azure wrote it
    provider: str | None  # providerSpecificDetails.instanceType (A2A, HyperVReplicaAzure...)
    protection_state: str | None
    replication_health: str | None  # Normal | Warning | Critical
    health_errors: tuple[str, ...] = ()  # "code: message", as many as Azure lists
    test_failover_state: str | None = None  # None | InProgress | WaitingForCompletion | ...
    last_successful_test_failover: datetime | None = None
    rpo_seconds: int | None = None
    rpo_calculated_at: datetime | None = None
    agent_version: str | None = None
    agent_expiry: datetime | None = None
    scenario: str | None = None  # currentScenario.scenarioName, unless "None"
    scenario_started: datetime | None = None
    allowed_operations: tuple[str, ...] = ()
    # What a test failover makes of it (A2A details): the VM, its group, its NICs' settings.
    recovery_group_id: str | None = None  # recoveryAzureResourceGroupId
    recovery_vm_size: str | None = None  # recoveryAzureVMSize
    test_vm_name: str | None = None  # tfoAzureVMName
    test_network_id: str | None = None  # selectedTfoAzureNetworkId
    test_nics: tuple[TestFailoverNic, ...] = ()
    disks: int = 0  # protectedManagedDisks: the OS disk and every data disk


@dataclass(frozen=True, slots=True)
class TestFailoverNic:
    """One NIC's test-failover settings (A2A `vmNics[]`)."""

    network_id: str | None  # tfoVMNetworkId
    subnet_name: str | None  # ipConfigs[].tfoSubnetName of the primary one
    nsg_id: str | None = None  # tfoNetworkSecurityGroupId
    public_ip_ids: tuple[str, ...] = ()  # ipConfigs[].tfoPublicIPAddressId
    lb_pool_ids: tuple[str, ...] = ()  # ipConfigs[].tfoLBBackendAddressPoolIds
    reuse_existing_nic: bool = False  # tfoReuseExistingNic


@dataclass(frozen=True, slots=True)
class PlanAction:
    """A recovery-plan group's start or end action."""

    name: str
    kind: str  # script, runbook, manual (from customDetails.instanceType)
    failover_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanGroup:
    """A Boot group of a recovery plan: its items, in order, and its actions."""

    item_ids: tuple[str, ...]
    actions: tuple[PlanAction, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteRecoveryJob:
    """A Site Recovery job (`replicationJobs/{id}`): state, scenario, errors."""

    id: str  # the job's name (a GUID)
    state: str  # InProgress, Succeeded, Failed, Cancelled...
    scenario: str | None = None  # TestFailover, TestFailoverCleanup
    start: datetime | None = None
    end: datetime | None = None
    errors: tuple[str, ...] = ()  # "code: message"


@dataclass(frozen=True, slots=True)
class TestFailoverRequest:
    """`testFailover` of a recovery plan: primary to recovery, into `network_id`."""

    network_id: str
    recovery_point_type: str = "LatestProcessed"  # or LatestApplicationConsistent
    multi_vm_sync: bool = False


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """A recovery plan of a vault: its items and its current scenario."""

    id: str
    vault_id: str
    name: str
    item_ids: tuple[str, ...]  # replicationProtectedItems[].id of every group
    scenario: str | None = None  # currentScenario.scenarioName (TestFailover...)
    scenario_status: str | None = None  # currentScenarioStatus (Suspended, InProgress...)
    scenario_status_description: str | None = None  # WaitingForStopTestFailover...
    scenario_started: datetime | None = None
    last_test_failover: datetime | None = None
    allowed_operations: tuple[str, ...] = ()
    groups: tuple[PlanGroup, ...] = ()  # the Boot groups, in order
    job_id: str | None = None  # currentScenario.jobId's name, when a scenario ran


class SiteRecovery(Protocol):
    """Azure Site Recovery, read per vault (never one call per VM)."""

    def list_replicated_items(self, vault: Vault) -> list[ReplicatedItem]:
        """The vault's replication-protected items (vault-level list, paged); empty for a vault
        without Site Recovery. RefusedError naming the role when the identity may not read."""
        ...

    def list_recovery_plans(self, vault: Vault) -> list[RecoveryPlan]:
        """The vault's recovery plans (paged)."""
        ...

    def get_recovery_plan(self, plan_id: str) -> RecoveryPlan | None:
        """One recovery plan read now; None when it does not exist."""
        ...

    def begin_test_failover(self, plan_id: str, request: TestFailoverRequest) -> None:
        """POST `testFailover`; returns once Site Recovery accepted it (the job runs on)."""
        ...

    def begin_test_failover_cleanup(self, plan_id: str, comments: str) -> None:
        """POST `testFailoverCleanup` with `comments`; returns once accepted."""
        ...

    def get_job(self, vault_id: str, job_id: str) -> SiteRecoveryJob | None:
        """A job of the vault; None when it does not exist."""
        ...

    def list_usages(self, subscription_id: str, location: str) -> list[tuple[str, int, int]]:
        """Compute usages of a region: (name, current, limit) for each quota."""
        ...


@dataclass(frozen=True, slots=True)
class DrillDiskRequest:
    id: str
    location: str
    source_snapshot_id: str
    sku: str | None
    os_type: str | None
    hyper_v_generation: str | None
    security_type: str | None
    tags: dict[str, str]
    # A recovery's disk: in the VM's zone, encrypted with the source's disk encryption set.
    zones: tuple[str, ...] = ()
    disk_encryption_set_id: str | None = None


@dataclass(frozen=True, slots=True)
class DrillVmRequest:
    id: str
    location: str
    size: str
    os_disk_id: str
    os_type: str
    data_disks: tuple[tuple[int, str], ...]  # (lun, disk id)
    nic_id: str
    security_profile: dict[str, Any] | None
    plan: dict[str, str] | None
    tags: dict[str, str]
    # A recovered VM: in the original's zone, with its boot diagnostics and disk caching.
    zones: tuple[str, ...] = ()
    boot_diagnostics: dict[str, Any] | None = None
    caching: dict[int, str] | None = None  # by LUN


@dataclass(frozen=True, slots=True)
class DrillNetworkRequest:
    """A network of the drill's own: an NSG that denies everything, a VNet with one subnet."""

    vnet_id: str
    nsg_id: str
    location: str
    address_prefix: str
    subnet_name: str
    tags: dict[str, str]


class DrillCloud(Protocol):
    """What a drill does in Azure: networks, disks from snapshots, VMs, and their teardown.

    Writes never poll: they start Azure's work and return; the drill looks again later.
    Ids passed in are full ARM ids; a missing resource reads as None.
    """

    def list_resource_groups(self, subscription_id: str) -> list[str]: ...

    def get_network(self, subnet_id: str) -> DrillNetwork | None: ...

    def list_policy_assignments(
        self, subscription_id: str, resource_group: str
    ) -> list[PolicyAssignment]: ...

    def get_resource(self, resource_id: str) -> DrillResource | None: ...

    def get_vm_status(self, vm_id: str) -> VmStatus | None: ...

    def get_primary_subnet(self, vm_id: str) -> str | None:
        """The subnet id of the VM's primary NIC's primary IP configuration (None: no VM or
        none found)."""
        ...

    def list_drill_resources(
        self, subscription_id: str, resource_group: str
    ) -> list[DrillResource]:
        """The VMs, NICs, disks, VNets and NSGs of a drill group (tagged or not)."""
        ...

    def begin_create_network(self, request: DrillNetworkRequest) -> None:
        """The NSG, then (once it exists) the VNet; call again until both exist."""
        ...

    def begin_create_disk(self, request: DrillDiskRequest) -> None: ...

    def begin_create_nic(
        self, nic_id: str, location: str, subnet_id: str, tags: dict[str, str]
    ) -> None: ...

    def begin_create_vm(self, request: DrillVmRequest) -> None: ...

    def begin_delete(self, resource_id: str) -> None:
        """Start deleting; a resource already gone is not an error."""
        ...
