"""Azure Backup verification: every in-scope VM protected, its latest recovery point fresh.

timer -> `start_verification`: one verification-plan message per target subscription
verification-plan -> `plan_subscription`: list the vaults and the VMs (two lists), report
    unprotected VMs of regions without a vault, and send one verification-vault message per vault
    with the in-scope VMs of its region
verification-vault -> `verify_vault`: one paged protected-items list and one job list for the
    vault; a recovery-point list only for VMs with a (candidate) finding; one `verify-vm`
    outcome per VM; remediation behind its settings
verification-first-backup -> `check_first_backup`: a new VM's first recovery point exists?

The run is spread over queue messages and nothing stateful joins them, so its `run-end` is
reported per unit: one per vault (`Details.scope` "vault") and one per subscription for regions
without a vault, each with `Count` and `Details.totals` by finding; a run's totals are their sum
by `RunId`. `lifeboat verify` runs the same units in-process.

`assess` is the pure core: one VM's finding by precedence, tested with literals.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared import messages
from shared.messages import (
    Envelope,
    FirstBackupCheckRequest,
    Payload,
    VerificationPlanRequest,
    VerificationVaultRequest,
    expect,
)
from shared.model import (
    BackupJob,
    Job,
    Outcome,
    ProtectedItem,
    RecoveryPoint,
    Status,
    Vault,
    Vm,
    format_time,
)
from shared.policies import tag_value
from shared.ports import Backup, RefusedError, Runtime, ThrottledError
from shared.snapshots import slot_of
from shared.worker import enqueue

log = logging.getLogger(__name__)

QUEUE = "verification-vault"
RPO_TAG = "lifeboat:rpo-hours"
MAX_ON_DEMAND_PER_DAY = 3
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60

# Findings, most severe first: a VM gets the first that holds.
UNPROTECTED = "unprotected"
SOFT_DELETED = "soft-deleted"
PROTECTION_STOPPED = "protection-stopped"
NEVER_BACKED_UP = "never-backed-up"
BACKUP_FAILING = "backup-failing"
RPO_BREACHED = "rpo-breached"
COMPLIANT = "compliant"
FINDINGS = (
    UNPROTECTED,
    SOFT_DELETED,
    PROTECTION_STOPPED,
    NEVER_BACKED_UP,
    BACKUP_FAILING,
    RPO_BREACHED,
    COMPLIANT,
)
SEVERITY = {
    UNPROTECTED: "high",
    SOFT_DELETED: "high",
    PROTECTION_STOPPED: "high",
    NEVER_BACKED_UP: "high",
    BACKUP_FAILING: "medium",
    RPO_BREACHED: "medium",
    COMPLIANT: "info",
}
STOPPED_STATES = frozenset({"protectionstopped", "protectionpaused", "backupssuspended"})
SOFT_DELETED_STATES = frozenset({"softdeleted"})
FAILED_JOB_STATES = frozenset({"failed"})
# Errors after which another on-demand backup today is pointless (REFERENCE.md, Azure Backup).
NON_RETRYABLE_PREFIXES = ("clouddos", "usererror")


# ------------------------------------------------------------------------------- pure core


@dataclass(frozen=True, slots=True)
class Assessment:
    finding: str
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
    `lastRecoveryPoint` (a candidate only; any finding is re-assessed with the real list)."""
    if item is None:
        return Assessment(UNPROTECTED, "no vault protects this VM", None, target_seconds)
    latest: RecoveryPoint | None = None
    if recovery_points is not None:
        latest = max(recovery_points, key=lambda p: p.time, default=None)
        latest_time = latest.time if latest else None
    else:
        latest_time = item.last_recovery_point
    rpo = None if latest_time is None else max(0, int((now - latest_time).total_seconds()))
    consistency = latest.consistency if latest else None

    def result(finding: str, reason: str, failed: BackupJob | None = None) -> Assessment:
        return Assessment(finding, reason, rpo, target_seconds, consistency, latest_time, failed)

    state = (item.protection_state or "").lower()
    if item.soft_deleted or state in SOFT_DELETED_STATES:
        return result(SOFT_DELETED, "the protected item is soft-deleted (scheduled for deletion)")
    if state in STOPPED_STATES:
        return result(PROTECTION_STOPPED, f"protection state is {item.protection_state}")
    if latest_time is None:
        return result(NEVER_BACKED_UP, f"no recovery point yet (state {item.protection_state})")
    failed = latest_failed_job(item, jobs)
    if failed is not None:
        code = failed.error_code or "no error code"
        return result(
            BACKUP_FAILING,
            f"the latest backup job {failed.id.rsplit('/', 1)[-1]} failed: {code}",
            failed,
        )
    if rpo is not None and rpo > target_seconds:
        return result(
            RPO_BREACHED,
            f"latest recovery point is {_hours(rpo)} old; target {_hours(target_seconds)}",
        )
    return result(COMPLIANT, f"latest recovery point is {_hours(rpo or 0)} old, within the target")


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


def rpo_target_seconds(tags: dict[str, str], policy_rpo_hours: float) -> int:
    """`lifeboat:rpo-hours` overrides the policy's target when it is a positive number."""
    raw = tag_value(tags, RPO_TAG)
    if raw is not None:
        try:
            hours = float(raw)
            if hours > 0:
                return int(hours * 3600)
        except ValueError:
            pass
    return int(policy_rpo_hours * 3600)


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


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:.1f} h"


def region_of(location: str) -> str:
    return location.lower().replace(" ", "")


def vm_key(resource_id: str) -> str:
    """`resourcegroup/name` of a VM id (lower case); the subscription is the message's."""
    parts = resource_id.strip("/").split("/")
    return f"{parts[3]}/{parts[-1]}".lower() if len(parts) >= 8 else resource_id.lower()


def pack_vms(entries: Iterable[InScope]) -> dict[str, dict[str, list[str]]]:
    """In-scope VMs as `{"policy|rpoHours": {"group": ["name", ...]}}`: ~10 bytes a VM."""
    packed: dict[str, dict[str, list[str]]] = {}
    for e in entries:
        group, name = vm_key(e.vm.id).split("/", 1)
        packed.setdefault(f"{e.policy}|{e.rpo_hours:g}", {}).setdefault(group, []).append(name)
    return packed


def unpack_vms(packed: dict[str, dict[str, list[str]]]) -> dict[str, tuple[str, float]]:
    """`group/name` -> (policy, RPO hours)."""
    vms: dict[str, tuple[str, float]] = {}
    for label, groups in packed.items():
        policy, _, hours = label.rpartition("|")
        for group, names in groups.items():
            for name in names:
                vms[f"{group}/{name}".lower()] = (policy, float(hours))
    return vms


def vault_of(vault_id: str, location: str) -> Vault:
    parts = vault_id.strip("/").split("/")
    return Vault(vault_id, parts[-1], parts[1].lower(), parts[3], location)


def vm_id_of(subscription_id: str, key: str) -> str:
    group, name = key.split("/", 1)
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{group}"
        f"/providers/Microsoft.Compute/virtualMachines/{name}"
    )


# -------------------------------------------------------------------------------- the timer


def run_id_of(slot: str) -> str:
    return f"verification-{slot}"


def start_verification(rt: Runtime, occurrence: datetime) -> int:
    """One verification-plan message per target subscription, keyed by the occurrence."""
    slot = slot_of(occurrence.replace(second=0, microsecond=0))
    run_id = run_id_of(slot)
    subscriptions = sorted(rt.settings.subscriptions)
    for subscription in subscriptions:
        request = VerificationPlanRequest(subscriptionId=subscription, slot=slot)
        _send(rt, "verification-plan", request, run_id, f"verification-plan:{subscription}:{slot}")
    _report(
        rt,
        _outcome(
            rt,
            run_id,
            "run-start",
            Status.SUCCEEDED,
            count=len(subscriptions),
            details={"slot": slot, "subscriptions": subscriptions},
        ),
    )
    return len(subscriptions)


# --------------------------------------------------------------------- plan: one subscription


@dataclass(frozen=True, slots=True)
class InScope:
    vm: Vm
    policy: str
    rpo_hours: float


def in_scope_vms(rt: Runtime, vms: Iterable[Vm]) -> list[InScope]:
    policies = rt.need_policies()
    drill_groups = rt.settings.drill_groups
    chosen = []
    for vm in vms:
        if vm.resource_group.lower() in drill_groups:
            continue
        policy, _why = policies.for_tags(vm.tags)
        if policy is None:
            continue
        target = rpo_target_seconds(vm.tags, policy.rpo_hours)
        chosen.append(InScope(vm, policy.name, target / 3600))
    return chosen


def plan_subscription(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, VerificationPlanRequest)
    backup = rt.need_backup()
    subscription = request.subscription_id
    try:
        vaults = backup.list_vaults(subscription)
        vms = rt.need_compute().list_vms(subscription)
    except ThrottledError as e:
        _retry_later(rt, envelope, request, e.retry_after)
        return
    scoped = in_scope_vms(rt, vms)
    by_region: dict[str, list[InScope]] = {}
    for entry in scoped:
        by_region.setdefault(region_of(entry.vm.location), []).append(entry)
    vaults = sorted(vaults, key=lambda v: v.id.lower())
    designated: set[str] = set()
    for vault in vaults:
        region = region_of(vault.location)
        is_first = region not in designated
        designated.add(region)
        peers = [v.id for v in vaults if v is not vault and region_of(v.location) == region]
        vault_request = VerificationVaultRequest(
            subscriptionId=subscription,
            vaultId=vault.id,
            vaultName=vault.name,
            resourceGroup=vault.resource_group,
            location=vault.location,
            slot=request.slot,
            designated=is_first,
            peers=peers if is_first else [],
            vms=pack_vms(by_region.get(region, [])),
        )
        _send(
            rt,
            "verification-vault",
            vault_request,
            envelope.run_id,
            f"verification-vault:{vault.id.lower()}:{request.slot}",
        )
    # Regions with in-scope VMs and no vault here: each VM is confirmed and reported alone.
    lonely = [e for region, group in by_region.items() if region not in designated for e in group]
    unvaulted: Counter[str] = Counter()
    for entry in lonely:
        found = _confirm_unprotected(rt, envelope.run_id, backup, entry, vault_id=None)
        if found is not None:
            unvaulted[found.finding] += 1
    if lonely:
        _report(
            rt,
            _outcome(
                rt,
                envelope.run_id,
                "run-end",
                Status.SUCCEEDED,
                count=sum(unvaulted.values()),
                subscription_id=subscription,
                details={"scope": "regions-without-vault", "totals": dict(unvaulted)},
            ),
        )
    log.info(
        "verification plan %s %s: %d vault(s), %d in-scope VM(s), %d without a vault in region",
        subscription,
        request.slot,
        len(vaults),
        len(scoped),
        len(lonely),
    )


# ------------------------------------------------------------------------- one vault


@dataclass(frozen=True, slots=True)
class VmFinding:
    vm_id: str
    finding: str
    reason: str
    rpo_seconds: int | None


def verify_vault(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, VerificationVaultRequest)
    backup = rt.need_backup()
    now = rt.clock.now()
    vault = Vault(
        id=request.vault_id,
        name=request.vault_name,
        subscription_id=request.subscription_id,
        resource_group=request.resource_group,
        location=request.location,
    )
    since = min(
        now - timedelta(hours=rt.settings.verification_window_hours),
        now.replace(hour=0, minute=0, second=0, microsecond=0),
    )
    try:
        items = backup.list_protected_items(vault)
        jobs = backup.list_jobs(vault, since, now)
    except ThrottledError as e:
        _retry_later(rt, envelope, request, e.retry_after)
        return
    by_vm = {vm_key(i.vm_id): i for i in items}
    wanted = unpack_vms(request.vms)
    elsewhere: set[str] = set()
    if request.designated and request.peers and any(k not in by_vm for k in wanted):
        # Unprotected candidates: leave out what the region's other vaults protect (their
        # workers report those), so the backup-status POST is only for real candidates.
        try:
            for peer in request.peers:
                elsewhere |= {
                    vm_key(i.vm_id)
                    for i in backup.list_protected_items(vault_of(peer, request.location))
                }
        except ThrottledError as e:
            _retry_later(rt, envelope, request, e.retry_after)
            return
    totals: Counter[str] = Counter()
    pending: list[tuple[str, str, float, ProtectedItem]] = []
    for key, (policy, rpo_hours) in sorted(wanted.items()):
        item = by_vm.get(key)
        if item is None:
            if request.designated and key not in elsewhere:
                vm_id = vm_id_of(request.subscription_id, key)
                entry = InScope(_bare_vm(vm_id, request), policy, rpo_hours)
                found = _confirm_unprotected(rt, envelope.run_id, backup, entry, vault.id)
                if found is not None:
                    totals[found.finding] += 1
            continue
        pending.append((key, policy, rpo_hours, item))
    for key, policy, rpo_hours, item in pending:
        target = int(rpo_hours * 3600)
        result = assess(item, jobs, None, target, now)
        if result.finding != COMPLIANT:
            try:
                points = backup.list_recovery_points(item)
            except ThrottledError as e:
                # Findings already reported stay reported; the vault is verified again later.
                _retry_later(rt, envelope, request, e.retry_after)
                return
            result = assess(item, jobs, points, target, now)
        vm_id = vm_id_of(request.subscription_id, key)
        totals[result.finding] += 1
        _report_finding(
            rt, envelope.run_id, vm_id, policy, result, vault_id=vault.id, region=request.location
        )
        if result.finding == RPO_BREACHED and rt.settings.on_demand_backup:
            _on_demand_backup(rt, envelope.run_id, backup, vm_id, item, jobs, now)
    _report(
        rt,
        _outcome(
            rt,
            envelope.run_id,
            "run-end",
            Status.SUCCEEDED,
            count=sum(totals.values()),
            resource_id=vault.id,
            subscription_id=request.subscription_id,
            region=request.location,
            details={
                "scope": "vault",
                "vaultId": vault.id,
                "totals": dict(sorted(totals.items())),
                "protectedItems": len(items),
                "jobs": len(jobs),
                "designated": request.designated,
            },
        ),
    )
    log.info("verification vault %s: %s", vault.id, dict(totals))


def _bare_vm(vm_id: str, request: VerificationVaultRequest) -> Vm:
    from shared.model import DiskAttachment

    group, name = vm_key(vm_id).split("/", 1)
    return Vm(
        id=vm_id,
        name=name,
        subscription_id=request.subscription_id,
        resource_group=group,
        location=request.location,
        tags={},
        os_disk=DiskAttachment(lun=None, disk_id=None),
    )


def _confirm_unprotected(
    rt: Runtime, run_id: str, backup: Backup, entry: InScope, vault_id: str | None
) -> VmFinding | None:
    """The backup-status POST confirms a candidate: it also sees vaults in other subscriptions."""
    vm = entry.vm
    status = backup.get_backup_status(vm.id, vm.location)
    target = int(entry.rpo_hours * 3600)
    if status.protected:
        other_sub = (status.vault_id or "").strip("/").split("/")
        outside = len(other_sub) > 1 and other_sub[1].lower() not in rt.settings.subscriptions
        if outside:
            _report(
                rt,
                _outcome(
                    rt,
                    run_id,
                    "verify-vm",
                    Status.SKIPPED,
                    resource_id=vm.id,
                    vm_name=vm.name,
                    subscription_id=vm.subscription_id,
                    resource_group=vm.resource_group,
                    region=vm.location,
                    policy=entry.policy,
                    reason=f"protected by vault {status.vault_id} outside the target "
                    "subscriptions: not verified",
                ),
            )
        return None
    result = Assessment(
        UNPROTECTED, "no vault protects this VM (confirmed by backup status)", None, target
    )
    _report_finding(rt, run_id, vm.id, entry.policy, result, vault_id=vault_id, region=vm.location)
    if rt.settings.enable_backup_protection:
        enable_protection(rt, run_id, backup, vm, entry.policy, entry.rpo_hours)
    return VmFinding(vm.id, UNPROTECTED, result.reason, None)


# ------------------------------------------------------------------------------ remediation


def _on_demand_backup(
    rt: Runtime,
    run_id: str,
    backup: Backup,
    vm_id: str,
    item: ProtectedItem,
    jobs: Sequence[BackupJob],
    now: datetime,
) -> None:
    """A POST: never retried. Refusals and errors are reported as failed for today."""
    allowed, why = on_demand_decision(item, jobs, now)
    name = vm_key(vm_id).split("/", 1)[1]
    details: dict[str, object] = {"protectedItemId": item.id, "day": now.date().isoformat()}

    def report(status: Status, reason: str) -> None:
        _report(
            rt,
            _outcome(
                rt,
                run_id,
                "on-demand-backup",
                status,
                reason=reason,
                resource_id=vm_id,
                vm_name=name,
                details=details,
            ),
        )

    if not allowed:
        report(Status.BLOCKED, why)
        return
    if rt.settings.dry_run:
        report(Status.PLANNED, why)
        return
    try:
        details["jobId"] = backup.trigger_backup(item, now + timedelta(days=30))
    except RefusedError as e:
        report(Status.FAILED, f"{e.code}: {e.message} (not retried today)")
        return
    except Exception as e:  # a POST is never retried, not even by the host
        report(Status.FAILED, f"{type(e).__name__}: {e} (not retried)")
        return
    report(Status.SUCCEEDED, why)


def enable_protection(
    rt: Runtime, run_id: str, backup: Backup, vm: Vm, policy: str, rpo_hours: float
) -> bool:
    """Protect an unprotected VM in a vault of its region, back it up once, check it later."""
    region = region_of(vm.location)
    vaults = [v for v in backup.list_vaults(vm.subscription_id) if region_of(v.location) == region]
    common = {
        "resource_id": vm.id,
        "vm_name": vm.name,
        "subscription_id": vm.subscription_id,
        "resource_group": vm.resource_group,
        "region": vm.location,
        "policy": policy,
    }
    if not vaults:
        _report(
            rt,
            _outcome(
                rt,
                run_id,
                "enable-protection",
                Status.BLOCKED,
                reason=f"no Recovery Services vault in {vm.location}",
                **common,
            ),
        )
        return False
    vault = sorted(vaults, key=lambda v: v.id.lower())[0]
    backup_policy = rt.settings.backup_protection_policy
    if rt.settings.dry_run:
        _report(
            rt,
            _outcome(
                rt,
                run_id,
                "enable-protection",
                Status.PLANNED,
                reason=f"would protect in {vault.name} with {backup_policy}",
                **common,
            ),
        )
        return False
    try:
        item = backup.ensure_protection(vault, vm, backup_policy)
        job_id = backup.trigger_backup(item, rt.clock.now() + timedelta(days=30)) if item else None
    except (RefusedError, ThrottledError) as e:
        _report(
            rt, _outcome(rt, run_id, "enable-protection", Status.FAILED, reason=str(e), **common)
        )
        return False
    _report(
        rt,
        _outcome(
            rt,
            run_id,
            "enable-protection",
            Status.SUCCEEDED,
            reason=f"protected in {vault.name} with {backup_policy}",
            details={"vaultId": vault.id, "firstBackupJobId": job_id},
            **common,
        ),
    )
    check = FirstBackupCheckRequest(
        subscriptionId=vm.subscription_id,
        vmId=vm.id,
        vaultId=vault.id,
        location=vm.location,
        policy=policy,
        rpoHours=rpo_hours,
        enabledAt=rt.clock.now(),
    )
    delay = min(rt.settings.first_backup_check_hours * 3600, MAX_VISIBILITY_SECONDS)
    _send(
        rt,
        "verification-first-backup",
        check,
        run_id,
        f"verification-first-backup:{vm.id.lower()}",
        delay=delay,
    )
    return True


def check_first_backup(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, FirstBackupCheckRequest)
    backup = rt.need_backup()
    now = rt.clock.now()
    parts = request.vault_id.strip("/").split("/")
    vault = Vault(
        id=request.vault_id,
        name=parts[-1],
        subscription_id=request.subscription_id,
        resource_group=parts[3],
        location=request.location,
    )
    try:
        items = backup.list_protected_items(vault)
        item = next((i for i in items if vm_key(i.vm_id) == vm_key(request.vm_id)), None)
        points = backup.list_recovery_points(item) if item is not None else []
    except ThrottledError as e:
        _retry_later(rt, envelope, request, e.retry_after)
        return
    target = int(request.rpo_hours * 3600)
    result = assess(item, [], points, target, now)
    if result.finding == NEVER_BACKED_UP:
        hours = (now - request.enabled_at).total_seconds() / 3600
        result = dataclasses.replace(
            result, reason=f"no recovery point {hours:.1f} h after protection was enabled"
        )
    _report_finding(
        rt,
        envelope.run_id,
        request.vm_id,
        request.policy,
        result,
        vault_id=request.vault_id,
        region=request.location,
    )


# --------------------------------------------------------------------- new VMs (onboarding)


def check_new_vm(rt: Runtime, envelope: Envelope, vm: Vm) -> None:
    """Onboarding: a new in-scope VM's protection, checked at once (time-to-know: minutes).

    Idempotent: once protection is on, the backup-status POST says so and nothing is repeated.
    """
    backup = rt.backup
    if backup is None:
        return
    entries = in_scope_vms(rt, [vm])
    if not entries:
        return
    try:
        _confirm_unprotected(rt, envelope.run_id, backup, entries[0], vault_id=None)
    except ThrottledError as e:
        raise RuntimeError(f"throttled checking the backup of {vm.id}: {e}") from e


# ---------------------------------------------------------------------- a run, inline (CLI)


@dataclass
class RunSummary:
    run_id: str
    findings: dict[str, VmFinding]
    failed: bool = False

    @property
    def totals(self) -> dict[str, int]:
        return dict(sorted(Counter(f.finding for f in self.findings.values()).items()))


def findings_of(outcomes: Iterable[Outcome]) -> dict[str, VmFinding]:
    """The latest finding per VM among outcome records."""
    found: dict[str, VmFinding] = {}
    for o in outcomes:
        if o.operation == "verify-vm" and o.finding and o.resource_id:
            found[o.resource_id] = VmFinding(
                o.resource_id, o.finding, o.reason or "", o.rpo_seconds
            )
    return found


def run_failed(rt: Runtime, run_id: str, findings: dict[str, VmFinding], reason: str) -> None:
    """An in-process run (`lifeboat verify`) that broke: a failed run-end with what was found."""
    totals = Counter(f.finding for f in findings.values())
    _report(
        rt,
        _outcome(
            rt,
            run_id,
            "run-end",
            Status.FAILED,
            count=len(findings),
            reason=reason[:1000],
            details={"scope": "run", "totals": dict(sorted(totals.items()))},
        ),
    )


HANDLERS = {
    "verification-plan": plan_subscription,
    "verification-vault": verify_vault,
    "verification-first-backup": check_first_backup,
}


# --------------------------------------------------------------------------------- helpers


def _report_finding(
    rt: Runtime,
    run_id: str,
    vm_id: str,
    policy: str,
    result: Assessment,
    *,
    vault_id: str | None,
    region: str | None,
) -> None:
    group, name = vm_key(vm_id).split("/", 1)
    details: dict[str, object] = {"targetSeconds": result.target_seconds, "vaultId": vault_id}
    if result.latest_recovery_point is not None:
        details["latestRecoveryPoint"] = format_time(result.latest_recovery_point)
    if result.finding != COMPLIANT:
        details["consistency"] = result.consistency
    if result.failed_job is not None:
        details["failedJobId"] = result.failed_job.id
        details["errorCode"] = result.failed_job.error_code
    _report(
        rt,
        Outcome(
            time=rt.clock.now(),
            run_id=run_id,
            job=Job.VERIFICATION,
            operation="verify-vm",
            status=Status.SUCCEEDED if result.finding == COMPLIANT else Status.FAILED,
            finding=result.finding,
            severity=SEVERITY[result.finding],
            subscription_id=vm_id.strip("/").split("/")[1].lower(),
            region=region,
            resource_group=group,
            resource_id=vm_id,
            vm_name=name,
            policy=policy,
            reason=result.reason,
            details=details,
            rpo_seconds=result.rpo_seconds,
            dry_run=rt.settings.dry_run,
        ),
    )


def _outcome(rt: Runtime, run_id: str, operation: str, status: Status, **fields: object) -> Outcome:
    return Outcome(
        time=rt.clock.now(),
        run_id=run_id,
        job=Job.VERIFICATION,
        operation=operation,
        status=status,
        dry_run=rt.settings.dry_run,
        **fields,  # type: ignore[arg-type]
    )


def _report(rt: Runtime, *outcomes: Outcome) -> None:
    rt.reporter.report(list(outcomes))


def _send(
    rt: Runtime, message_type: str, payload: Payload, run_id: str, key: str, *, delay: float = 0
) -> None:
    envelope = messages.make_envelope(
        message_type, payload, run_id=run_id, idempotency_key=key, created=rt.clock.now()
    )
    enqueue(rt, QUEUE, envelope, job=Job.VERIFICATION, visibility_timeout=int(delay))


def _retry_later(rt: Runtime, envelope: Envelope, payload: Payload, retry_after: float) -> None:
    """Throttled (ResourceRequestsThrottled): back on the queue after Retry-After plus jitter."""
    attempt = getattr(payload, "attempt", 0) + 1
    if hasattr(payload, "attempt"):
        payload = payload.model_copy(update={"attempt": attempt})
    delay = retry_after + random.uniform(0, 0.2 * retry_after + 1)
    again = messages.make_envelope(
        envelope.type,
        payload,
        run_id=envelope.run_id,
        idempotency_key=envelope.idempotency_key,
        created=rt.clock.now(),
    )
    enqueue(
        rt,
        QUEUE,
        again,
        job=Job.VERIFICATION,
        visibility_timeout=int(min(delay, MAX_VISIBILITY_SECONDS)),
    )
    log.info(
        "%s throttled: back on %s in %.1f s (attempt %d)", envelope.type, QUEUE, delay, attempt
    )
