"""The pure core of Azure Backup verification: one VM's finding, by precedence, with its RPO.

No ports and no I/O: protected items, jobs and recovery points in, a finding out. The handlers
(`shared/verification/handlers.py`) read what these functions need and record what they decide.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.model import BackupJob, ProtectedItem, RecoveryPoint, Vault, Vm
from shared.names import Tag
from shared.policies import tag_value
from shared.settings import Settings

MAX_ON_DEMAND_PER_DAY = 3


class Finding(enum.StrEnum):
    """What verification finds about one VM. Declared most severe first: a VM gets the first
    that holds (its precedence), and `severity` orders findings the same way."""

    UNPROTECTED = "unprotected"
    SOFT_DELETED = "soft-deleted"
    PROTECTION_STOPPED = "protection-stopped"
    NEVER_BACKED_UP = "never-backed-up"
    BACKUP_FAILING = "backup-failing"
    RPO_BREACHED = "rpo-breached"
    COMPLIANT = "compliant"


FINDINGS: tuple[Finding, ...] = tuple(Finding)
SEVERITY: dict[Finding, str] = {
    Finding.UNPROTECTED: "high",
    Finding.SOFT_DELETED: "high",
    Finding.PROTECTION_STOPPED: "high",
    Finding.NEVER_BACKED_UP: "high",
    Finding.BACKUP_FAILING: "medium",
    Finding.RPO_BREACHED: "medium",
    Finding.COMPLIANT: "info",
}


def precedence(finding: Finding) -> int:
    """0 for the most severe finding; a larger number is less severe."""
    return FINDINGS.index(finding)


STOPPED_STATES = frozenset({"protectionstopped", "protectionpaused", "backupssuspended"})
SOFT_DELETED_STATES = frozenset({"softdeleted"})
FAILED_JOB_STATES = frozenset({"failed"})
# Errors after which another on-demand backup today is pointless (REFERENCE.md, Azure Backup).
NON_RETRYABLE_PREFIXES = ("clouddos", "usererror")


@dataclass(frozen=True, slots=True)
class Assessment:
    finding: Finding
    reason: str
    rpo_seconds: int | None  # age of the latest recovery point
    target_seconds: int
    consistency: str | None = None
    latest_recovery_point: datetime | None = None
    failed_job: BackupJob | None = None


def assess(
    item: ProtectedItem | None,
    jobs: Sequence[BackupJob],
    recovery_points: Sequence[RecoveryPoint] | None,
    target_seconds: int,
    now: datetime,
) -> Assessment:
    """One VM's finding by precedence. `recovery_points` None: trust the item's
    `lastRecoveryPoint` (a candidate only; any finding is assessed again with the real list)."""
    if item is None:
        return Assessment(Finding.UNPROTECTED, "no vault protects this VM", None, target_seconds)
    latest: RecoveryPoint | None = None
    if recovery_points is not None:
        latest = max(recovery_points, key=lambda p: p.time, default=None)
        latest_time = latest.time if latest else None
    else:
        latest_time = item.last_recovery_point
    rpo = None if latest_time is None else age_seconds(latest_time, now)
    consistency = latest.consistency if latest else None

    def result(finding: Finding, reason: str, failed: BackupJob | None = None) -> Assessment:
        return Assessment(finding, reason, rpo, target_seconds, consistency, latest_time, failed)

    state = (item.protection_state or "").lower()
    if item.soft_deleted or state in SOFT_DELETED_STATES:
        return result(
            Finding.SOFT_DELETED, "the protected item is soft-deleted (scheduled for deletion)"
        )
    if state in STOPPED_STATES:
        return result(Finding.PROTECTION_STOPPED, f"protection state is {item.protection_state}")
    if rpo is None:
        return result(
            Finding.NEVER_BACKED_UP, f"no recovery point yet (state {item.protection_state})"
        )
    failed = latest_failed_job(item, jobs)
    if failed is not None:
        code = failed.error_code or "no error code"
        return result(
            Finding.BACKUP_FAILING,
            f"the latest backup job {failed.id.rsplit('/', 1)[-1]} failed: {code}",
            failed,
        )
    if rpo_breached(rpo, target_seconds):
        return result(
            Finding.RPO_BREACHED,
            f"latest recovery point is {_hours(rpo)} old; target {_hours(target_seconds)}",
        )
    return result(
        Finding.COMPLIANT, f"latest recovery point is {_hours(rpo)} old, within the target"
    )


# ----------------------------------------------------------------------------- RPO arithmetic


def age_seconds(then: datetime, now: datetime) -> int:
    """Whole seconds from `then` to `now`; a recovery point stamped in the future is 0 old."""
    return max(0, int((now - then).total_seconds()))


def rpo_breached(rpo_seconds: int, target_seconds: int) -> bool:
    """Breached only past the target: a point exactly as old as the target is within it."""
    return rpo_seconds > target_seconds


def rpo_target_seconds(tags: dict[str, str], policy_rpo_hours: float) -> int:
    """`lifeboat:rpo-hours` overrides the policy's target when it is a finite positive number."""
    raw = tag_value(tags, Tag.RPO_HOURS)
    if raw is not None:
        try:
            hours = float(raw)
        except ValueError:
            hours = math.nan
        if math.isfinite(hours) and hours > 0:
            return int(hours * 3600)
    return int(policy_rpo_hours * 3600)


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:.1f} h"


# ------------------------------------------------------------------------------------- jobs


def jobs_of(item: ProtectedItem, jobs: Iterable[BackupJob]) -> list[BackupJob]:
    """The item's backup jobs: matched by container name when the job names it, else VM name."""
    # The item's id names `IaasVMContainer;iaasvmcontainerv2;rg;vm`, jobs `iaasvmcontainerv2;rg;vm`.
    container = _short_container(item.container_name)
    vm_name = item.vm_id.rstrip("/").rsplit("/", 1)[-1].lower()
    mine = []
    for job in jobs:
        if job.operation.lower() != "backup":
            continue
        if job.container_name:
            if _short_container(job.container_name) == container:
                mine.append(job)
        elif job.entity_name.lower() == vm_name:
            mine.append(job)
    return mine


def _short_container(name: str) -> str:
    return name.lower().removeprefix("iaasvmcontainer;")


def latest_failed_job(item: ProtectedItem, jobs: Iterable[BackupJob]) -> BackupJob | None:
    """The latest finished backup job of the item, when it failed."""
    finished = [j for j in jobs_of(item, jobs) if j.status.lower() != "inprogress" and j.start_time]
    if not finished:
        return None
    latest = max(finished, key=lambda j: j.start_time or datetime.min)
    return latest if latest.status.lower() in FAILED_JOB_STATES else None


def on_demand_decision(
    item: ProtectedItem, jobs: Sequence[BackupJob], now: datetime
) -> tuple[bool, str]:
    """May Lifeboat trigger an on-demand backup of this item now? (3 per VM per day.)"""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    mine = [j for j in jobs_of(item, jobs) if j.start_time and j.start_time >= today]
    if any(j.status.lower() == "inprogress" for j in mine):
        return False, "a backup job is already in progress"
    for job in mine:
        code = (job.error_code or "").lower()
        if job.status.lower() in FAILED_JOB_STATES and code.startswith(NON_RETRYABLE_PREFIXES):
            return False, f"failed today with {job.error_code}: not retried before tomorrow"
    on_demand = [j for j in mine if j.user_triggered]
    if len(on_demand) >= MAX_ON_DEMAND_PER_DAY:
        return False, f"{len(on_demand)} on-demand backups today (at most {MAX_ON_DEMAND_PER_DAY})"
    return True, f"{len(on_demand)} on-demand backup(s) today"


# --------------------------------------------------------------- VMs, vaults and their packing


@dataclass(frozen=True, slots=True)
class InScope:
    """An in-scope VM, its policy and its RPO target in hours."""

    vm: Vm
    policy: str
    rpo_hours: float


def region_of(location: str) -> str:
    return location.lower().replace(" ", "")


def vm_key(resource_id: str) -> str:
    """`resourcegroup/name` of a VM id (lower case); the subscription is the message's."""
    parts = resource_id.strip("/").split("/")
    return f"{parts[3]}/{parts[-1]}".lower() if len(parts) >= 8 else resource_id.lower()


def vm_id_of(subscription_id: str, key: str) -> str:
    group, name = key.split("/", 1)
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{group}"
        f"/providers/Microsoft.Compute/virtualMachines/{name}"
    )


def vault_of(vault_id: str, location: str) -> Vault:
    parts = vault_id.strip("/").split("/")
    return Vault(vault_id, parts[-1], parts[1].lower(), parts[3], location)


def pack_vms(entries: Iterable[InScope]) -> dict[str, dict[str, list[str]]]:
    """In-scope VMs as `{"policy|rpoHours": {"group": ["name", ...]}}`: ~10 bytes a VM."""
    packed: dict[str, dict[str, list[str]]] = {}
    for e in entries:
        group, name = vm_key(e.vm.id).split("/", 1)
        packed.setdefault(f"{e.policy}|{e.rpo_hours:g}", {}).setdefault(group, []).append(name)
    return packed


# A vault message's packed VMs and peers stay under this many bytes of JSON, so the whole
# message (ids, envelope, signature) fits a queue message's 64 KiB once base64-encoded (48 KiB
# of text). Peers past their own share are left out: the backup-status POST that confirms each
# unprotected candidate sees every vault anyway, so they only save POSTs.
PACKED_VMS_BUDGET = 40_000
PEERS_BUDGET = 16_000


def peers_that_fit(peers: list[str]) -> list[str]:
    return peers if len(json.dumps(peers)) <= PEERS_BUDGET else []


def pack_vm_chunks(
    entries: Iterable[InScope], budget: int = PACKED_VMS_BUDGET
) -> list[dict[str, dict[str, list[str]]]]:
    """`pack_vms` split so that each part's JSON stays within `budget` bytes (one part at least,
    empty when there are no VMs): a region of tens of thousands of VMs becomes several vault
    messages instead of one a queue would refuse."""
    chunks: list[dict[str, dict[str, list[str]]]] = [{}]
    size = 2
    ordered = sorted(entries, key=lambda e: (e.policy, e.rpo_hours, vm_key(e.vm.id)))
    for e in ordered:
        label = f"{e.policy}|{e.rpo_hours:g}"
        group, name = vm_key(e.vm.id).split("/", 1)
        packed = chunks[-1]
        cost = len(json.dumps(name)) + 1
        if label not in packed:
            cost += len(json.dumps(label)) + len(json.dumps(group)) + 6
        elif group not in packed[label]:
            cost += len(json.dumps(group)) + 4
        if packed and size + cost > budget:
            chunks.append({})
            packed = chunks[-1]
            size = 2
            cost = len(json.dumps(label)) + len(json.dumps(group)) + len(json.dumps(name)) + 7
        packed.setdefault(label, {}).setdefault(group, []).append(name)
        size += cost
    return chunks


def unpack_vms(packed: dict[str, dict[str, list[str]]]) -> dict[str, tuple[str, float]]:
    """`group/name` -> (policy, RPO hours)."""
    vms: dict[str, tuple[str, float]] = {}
    for label, groups in packed.items():
        policy, _, hours = label.rpartition("|")
        for group, names in groups.items():
            for name in names:
                vms[f"{group}/{name}".lower()] = (policy, float(hours))
    return vms


# ------------------------------------------------------------------------------ remediations

ON_DEMAND_BACKUP = "on-demand-backup"
ENABLE_PROTECTION = "enable-protection"


@dataclass(frozen=True, slots=True)
class Remediations:
    """Which remediations run, and why the others do not (for the run-start row)."""

    on_demand_backup: bool
    enable_protection: bool
    # feature -> (the setting that turns it on, the setting it needs that is absent)
    missing: dict[str, tuple[str, str]]
    state: dict[str, str]


def remediations(settings: Settings) -> Remediations:
    """On when asked for and every setting it needs is there; off otherwise, with the reason.

    Enabling protection needs VM write, which Lifeboat's own identity never has: it runs only
    with its own identity (`BACKUP_WRITER_CLIENT_ID`), and is off without one.
    """
    missing: dict[str, tuple[str, str]] = {}
    state = {
        ON_DEMAND_BACKUP: "on" if settings.on_demand_backup else "off (ON_DEMAND_BACKUP)",
        ENABLE_PROTECTION: "on"
        if settings.enable_backup_protection
        else "off (ENABLE_BACKUP_PROTECTION)",
    }
    enable = settings.enable_backup_protection
    if enable and not settings.backup_writer_client_id:
        enable = False
        missing[ENABLE_PROTECTION] = ("ENABLE_BACKUP_PROTECTION", "BACKUP_WRITER_CLIENT_ID")
        state[ENABLE_PROTECTION] = "off (BACKUP_WRITER_CLIENT_ID missing)"
    return Remediations(settings.on_demand_backup, enable, missing, state)
