"""Azure Backup verification's handlers: read through the ports, assess, record, decide.

timer -> `start_verification`: `run-start` and one verification-plan message per subscription
verification-plan -> `plan_subscription`: list the vaults and the VMs (two lists), report the
    unprotected VMs of regions without a vault, one verification-vault message per vault with
    the in-scope VMs of its region
verification-vault -> `verify_vault`: one paged protected-items list and one job list for the
    vault; a recovery-point list only for VMs with a (candidate) finding; one `verify-vm` row per
    VM; remediation behind its settings
verification-first-backup -> `check_first_backup`: a new VM's first recovery point exists?
onboarding -> `check_new_vm`: a new in-scope VM's protection, at once

The run is spread over queue messages and nothing stateful joins them, so its `run-end` is
recorded per unit: one per vault (`Details.scope` "vault") and one per subscription for regions
without a vault, each with `Count` and `Details.totals` by finding; a run's totals are their sum
by `RunId`.

Every read that Azure may throttle comes before the first remediation of a message: throttling
propagates and dispatch puts the whole message back, and nothing done before it must be kept
(findings recorded again get the same row ids; protection already on is seen as on). A
remediation's own writes are reported, never retried.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from shared.dispatch import Context, Done, Outgoing, Result, Send, per_subscription
from shared.messages import (
    FirstBackupCheckRequest,
    VerificationPlanRequest,
    VerificationVaultRequest,
)
from shared.model import BackupJob, DiskAttachment, ProtectedItem, Vault, Vm, format_time
from shared.names import Job, Status
from shared.outcomes import Outcomes
from shared.ports import RefusedError, ThrottledError
from shared.rules import vm_out_of_scope
from shared.verification.assessment import (
    ENABLE_PROTECTION,
    ON_DEMAND_BACKUP,
    PACKED_VMS_BUDGET,
    SEVERITY,
    Assessment,
    Finding,
    InScope,
    assess,
    on_demand_decision,
    pack_vm_chunks,
    peers_that_fit,
    region_of,
    remediations,
    rpo_target_seconds,
    unpack_vms,
    vault_of,
    vm_id_of,
    vm_key,
)
from shared.verification.replication import verify_replication

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------- the timer


def run_id_of(slot: str) -> str:
    return f"verification-{slot}"


def start_verification(ctx: Context, occurrence: datetime) -> Result:
    """One verification-plan message per target subscription, keyed by the occurrence."""
    features = remediations(ctx.settings)
    started = per_subscription(
        ctx,
        occurrence,
        lambda s, slot: VerificationPlanRequest(subscriptionId=s, slot=slot),
        remediations=features.state,
    )
    for feature, (setting, absent) in features.missing.items():
        ctx.out.feature_off(
            feature,
            f"{setting} is true but {absent} is not set: {feature} is off",
            details={"feature": feature, "setting": setting, "missingSetting": absent},
        )
    return started


# --------------------------------------------------------------------- plan: one subscription


# `Details.skip` of a VM protected by a vault Lifeboat cannot read (the daily digests use it).
UNSERVED_VAULT = "vault-unserved"


def in_scope_vms(ctx: Context, vms: Iterable[Vm]) -> list[InScope]:
    return [e for e in verifiable_vms(ctx, vms) if e.policy != UNSCOPED]


def verifiable_vms(ctx: Context, vms: Iterable[Vm]) -> list[InScope]:
    """Every VM outside drill groups: in scope with its policy, or `UNSCOPED` (no policy: a tag
    mistake, opted out, untagged) with the default policy's RPO target. Backup verification
    covers a VM Azure Backup protects whatever its tags; only in-scope VMs are reported
    unprotected or remediated."""
    drill_groups = ctx.settings.drill_groups
    default = ctx.policies.policies.get(ctx.policies.default or "")
    fallback_hours = default.rpo_hours if default is not None else UNSCOPED_RPO_HOURS
    chosen = []
    for vm in vms:
        if vm.resource_group.lower() in drill_groups:
            continue
        policy, _why = ctx.policies.for_tags(vm.tags)
        name, hours = (
            (UNSCOPED, fallback_hours) if policy is None else (policy.name, policy.rpo_hours)
        )
        chosen.append(InScope(vm, name, rpo_target_seconds(vm.tags, hours) / 3600))
    return chosen


def plan_subscription(request: VerificationPlanRequest, ctx: Context) -> Result:
    subscription = request.subscription_id
    vaults = sorted(ctx.backup.list_vaults(subscription), key=lambda v: v.id.lower())
    verifiable = verifiable_vms(ctx, ctx.compute.list_vms(subscription))
    scoped = [e for e in verifiable if e.policy != UNSCOPED]
    by_region: dict[str, list[InScope]] = {}
    for entry in verifiable:
        by_region.setdefault(region_of(entry.vm.location), []).append(entry)
    vault_messages: list[Outgoing] = []
    designated: set[str] = set()
    for vault in vaults:
        region = region_of(vault.location)
        is_first = region not in designated
        designated.add(region)
        peers = [v.id for v in vaults if v is not vault and region_of(v.location) == region]
        which_vault = {
            "vaultId": vault.id,
            "vaultName": vault.name,
            "resourceGroup": vault.resource_group,
            "location": vault.location,
        }
        # A region's VMs in parts that each fit a queue message, one vault message per part.
        peers = peers_that_fit(peers) if is_first else []
        budget = PACKED_VMS_BUDGET - len(json.dumps(peers))
        for part, vms in enumerate(pack_vm_chunks(by_region.get(region, []), budget)):
            vault_request = VerificationVaultRequest(
                **which_vault,
                subscriptionId=subscription,
                slot=request.slot,
                designated=is_first,
                peers=peers,
                vms=vms,
            )
            key = f"verification-vault:{vault.id.lower()}:{request.slot}"
            vault_messages.append(Outgoing(vault_request, key=f"{key}:{part}" if part else key))
    # Regions with in-scope VMs and no vault here: each VM is confirmed and reported alone.
    lonely = [
        e
        for region, group in by_region.items()
        if region not in designated
        for e in group
        if e.policy != UNSCOPED
    ]
    # Azure Site Recovery: the same vaults and VMs, read before any remediation writes.
    verify_replication(ctx, subscription, vaults, scoped)
    out = ctx.out.bind(subscription_id=subscription)
    unprotected = _confirm_unprotected(ctx, out, lonely)
    checks = _remediate_unprotected(ctx, unprotected, vaults)
    if lonely:
        out.succeeded(
            "run-end",
            count=len(unprotected),
            details={
                "scope": "regions-without-vault",
                "totals": {Finding.UNPROTECTED: len(unprotected)} if unprotected else {},
            },
        )
    log.info(
        "verification plan %s %s: %d vault(s), %d in-scope VM(s), %d without a vault in region",
        subscription,
        request.slot,
        len(vaults),
        len(scoped),
        len(lonely),
    )
    return Send(*vault_messages, *checks)


# ------------------------------------------------------------------------------- one vault


def verify_vault(request: VerificationVaultRequest, ctx: Context) -> Result:
    backup = ctx.backup
    now = ctx.now()
    vault = vault_of(request.vault_id, request.location)
    since = min(
        now - timedelta(hours=ctx.settings.verification_window_hours),
        now.replace(hour=0, minute=0, second=0, microsecond=0),
    )
    items = backup.list_protected_items(vault)
    jobs = backup.list_jobs(vault, since, now)
    by_vm = {vm_key(i.vm_id): i for i in items}
    wanted = unpack_vms(request.vms)
    elsewhere: set[str] = set()
    if request.designated and request.peers and any(k not in by_vm for k in wanted):
        # Unprotected candidates: leave out what the region's other vaults protect (their
        # workers report those), so the backup-status POST is only for real candidates.
        for peer in request.peers:
            elsewhere |= {
                vm_key(i.vm_id)
                for i in backup.list_protected_items(vault_of(peer, request.location))
            }
    out = ctx.out.bind(subscription_id=request.subscription_id, region=request.location)
    totals: Counter[str] = Counter()
    candidates: list[InScope] = []
    breached: list[tuple[str, ProtectedItem]] = []
    for key, (policy, rpo_hours) in sorted(wanted.items()):
        vm_id = vm_id_of(request.subscription_id, key)
        item = by_vm.get(key)
        if item is None:
            if request.designated and key not in elsewhere and policy != UNSCOPED:
                candidates.append(InScope(_bare_vm(vm_id, request), policy, rpo_hours))
            continue
        target = int(rpo_hours * 3600)
        result = assess(item, jobs, None, target, now)
        if result.finding != Finding.COMPLIANT:
            result = assess(item, jobs, backup.list_recovery_points(item), target, now)
        totals[result.finding.value] += 1
        _record_finding(out, vm_id, policy, result, vault_id=vault.id)
        if result.finding == Finding.RPO_BREACHED and policy != UNSCOPED:
            breached.append((vm_id, item))
    unprotected = _confirm_unprotected(ctx, out, candidates, vault_id=vault.id)
    if unprotected:
        totals[Finding.UNPROTECTED.value] += len(unprotected)
    # The message named these VMs; a remediation writes only for what Azure shows in scope now.
    features = remediations(ctx.settings)
    unprotected = _still_in_scope(
        ctx, unprotected if features.enable_protection else [], ENABLE_PROTECTION
    )
    breached = _breached_in_scope(ctx, breached if features.on_demand_backup else [])
    # Every read Azure may throttle is behind us: what follows is reported once, never repeated.
    # The region's vaults are this one and its peers (only the designated vault has candidates).
    region_vaults = [vault, *(vault_of(peer, request.location) for peer in request.peers)]
    checks = _remediate_unprotected(ctx, unprotected, region_vaults)
    for vm_id, item in breached:
        _on_demand_backup(ctx, vm_id, item, jobs, now)
    out.succeeded(
        "run-end",
        count=sum(totals.values()),
        resource_id=vault.id,
        details={
            "scope": "vault",
            "vaultId": vault.id,
            "totals": dict(sorted(totals.items())),
            "protectedItems": len(items),
            "jobs": len(jobs),
            "designated": request.designated,
        },
    )
    log.info("verification vault %s: %s", vault.id, dict(totals))
    return Send(*checks) if checks else Done()


def _bare_vm(vm_id: str, request: VerificationVaultRequest) -> Vm:
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
    ctx: Context, out: Outcomes, candidates: Sequence[InScope], vault_id: str | None = None
) -> list[InScope]:
    """The backup-status POST confirms each candidate: it also sees vaults in other
    subscriptions. Records an `unprotected` finding per confirmed VM and returns them."""
    confirmed = []
    for entry in candidates:
        vm = entry.vm
        status = ctx.backup.get_backup_status(vm.id, vm.location)
        vm_out = out.bind(vm=vm, policy=entry.policy)
        if status.protected:
            other_sub = (status.vault_id or "").strip("/").split("/")
            if len(other_sub) > 1 and other_sub[1].lower() not in ctx.settings.subscriptions:
                # Lifeboat cannot read that vault's items and jobs: say so, as a warning.
                vm_out.skipped(
                    "verify-vm",
                    f"not verified: vault in unserved subscription {other_sub[1].lower()}",
                    severity="warning",
                    details={"vaultId": status.vault_id, "skip": UNSERVED_VAULT},
                )
            continue
        result = Assessment(
            Finding.UNPROTECTED,
            "no vault protects this VM (confirmed by backup status)",
            None,
            int(entry.rpo_hours * 3600),
        )
        _record_finding(out, vm.id, entry.policy, result, vault_id=vault_id, region=vm.location)
        confirmed.append(entry)
    return confirmed


# ------------------------------------------------------------------------------ remediation


def _out_of_scope_now(ctx: Context, vm_id: str, policy: str | None) -> tuple[Vm | None, str | None]:
    """One GET of the VM and the rules: the fresh VM, or why no remediation may touch it."""
    vm = ctx.compute.get_vm(vm_id)
    why = vm_out_of_scope(
        vm,
        subscriptions=ctx.settings.subscriptions,
        drill_groups=ctx.settings.drill_groups,
        policies=ctx.policies,
        policy=policy,
    )
    return vm, why


def _still_in_scope(ctx: Context, entries: Sequence[InScope], operation: str) -> list[InScope]:
    """The entries whose VM is served and in scope now, each with its fresh read (tags
    included); a `skipped` row for each of the others."""
    kept = []
    for entry in entries:
        vm, why = _out_of_scope_now(ctx, entry.vm.id, entry.policy)
        if why is not None or vm is None:
            out = ctx.out.bind(job=Job.VERIFICATION, vm=entry.vm, policy=entry.policy)
            out.skipped(operation, f"not remediated: {why}")
            continue
        kept.append(dataclasses.replace(entry, vm=vm))
    return kept


def _breached_in_scope(
    ctx: Context, breached: Sequence[tuple[str, ProtectedItem]]
) -> list[tuple[str, ProtectedItem]]:
    kept = []
    for vm_id, item in breached:
        _vm, why = _out_of_scope_now(ctx, vm_id, None)
        if why is not None:
            out = ctx.out.bind(resource_id=vm_id, vm_name=vm_key(vm_id).split("/", 1)[1])
            out.skipped(ON_DEMAND_BACKUP, f"not remediated: {why}")
            continue
        kept.append((vm_id, item))
    return kept


def _remediate_unprotected(
    ctx: Context, unprotected: Sequence[InScope], vaults: Sequence[Vault] | None = None
) -> list[Outgoing]:
    """Enable protection of confirmed unprotected VMs when that is on; the first-backup checks."""
    if not unprotected or not remediations(ctx.settings).enable_protection:
        return []
    checks = []
    for entry in unprotected:
        check = enable_protection(ctx, entry.vm, entry.policy, entry.rpo_hours, vaults)
        if check is not None:
            checks.append(check)
    return checks


def _on_demand_backup(
    ctx: Context,
    vm_id: str,
    item: ProtectedItem,
    jobs: Sequence[BackupJob],
    now: datetime,
) -> None:
    """A POST: never retried. Refusals and errors are reported as failed for today."""
    allowed, why = on_demand_decision(item, jobs, now)
    details: dict[str, object] = {"protectedItemId": item.id, "day": now.date().isoformat()}
    out = ctx.out.bind(resource_id=vm_id, vm_name=vm_key(vm_id).split("/", 1)[1])
    if not allowed:
        out.blocked(ON_DEMAND_BACKUP, why, details=details)
        return
    if ctx.settings.dry_run:
        out.planned(ON_DEMAND_BACKUP, why, details=details)
        return
    try:
        details["jobId"] = ctx.backup.trigger_backup(item, now + timedelta(days=30))
    except RefusedError as e:
        out.failed(ON_DEMAND_BACKUP, f"{e.code}: {e.message} (not retried today)", details=details)
        return
    except Exception as e:  # a POST is never retried, not even by the host
        out.failed(ON_DEMAND_BACKUP, f"{type(e).__name__}: {e} (not retried)", details=details)
        return
    out.succeeded(ON_DEMAND_BACKUP, why, details=details)


def enable_protection(
    ctx: Context,
    vm: Vm,
    policy: str,
    rpo_hours: float,
    vaults: Sequence[Vault] | None = None,
) -> Outgoing | None:
    """Protect an unprotected VM in a vault of its region and back it up once; the check of its
    first recovery point, hours from now, when protection was enabled.

    `vaults`: the subscription's vaults when the caller has read them (else they are listed).
    """
    out = ctx.out.bind(job=Job.VERIFICATION, vm=vm, policy=policy)
    if vaults is None:
        vaults = ctx.backup.list_vaults(vm.subscription_id)
    region = region_of(vm.location)
    mine = sorted(
        (v for v in vaults if region_of(v.location) == region), key=lambda v: v.id.lower()
    )
    if not mine:
        out.blocked(ENABLE_PROTECTION, f"no Recovery Services vault in {vm.location}")
        return None
    vault = mine[0]
    backup_policy = ctx.settings.backup_protection_policy
    if ctx.settings.dry_run:
        out.planned(ENABLE_PROTECTION, f"would protect in {vault.name} with {backup_policy}")
        return None
    try:
        item = ctx.backup.ensure_protection(vault, vm, backup_policy)
        job_id = ctx.backup.trigger_backup(item, ctx.now() + timedelta(days=30)) if item else None
    except (RefusedError, ThrottledError) as e:
        # The backup POST is never retried, so neither is the message: today's attempt failed.
        out.failed(ENABLE_PROTECTION, str(e))
        return None
    out.succeeded(
        ENABLE_PROTECTION,
        f"protected in {vault.name} with {backup_policy}",
        details={"vaultId": vault.id, "firstBackupJobId": job_id},
    )
    check = FirstBackupCheckRequest(
        policy=policy,
        rpoHours=rpo_hours,
        enabledAt=ctx.now(),
        vaultId=vault.id,
        subscriptionId=vm.subscription_id,
        vmId=vm.id,
        location=vm.location,
    )
    return Outgoing(
        check,
        key=f"verification-first-backup:{vm.id.lower()}",
        delay=ctx.settings.first_backup_check_hours * 3600,
    )


def check_first_backup(request: FirstBackupCheckRequest, ctx: Context) -> Result:
    now = ctx.now()
    vault = vault_of(request.vault_id, request.location)
    items = ctx.backup.list_protected_items(vault)
    item = next((i for i in items if vm_key(i.vm_id) == vm_key(request.vm_id)), None)
    points = ctx.backup.list_recovery_points(item) if item is not None else []
    result = assess(item, [], points, int(request.rpo_hours * 3600), now)
    if result.finding == Finding.NEVER_BACKED_UP:
        hours = (now - request.enabled_at).total_seconds() / 3600
        result = dataclasses.replace(
            result, reason=f"no recovery point {hours:.1f} h after protection was enabled"
        )
    out = ctx.out.bind(subscription_id=request.subscription_id, region=request.location)
    _record_finding(out, request.vm_id, request.policy, result, vault_id=request.vault_id)
    return Done(result.finding)


# --------------------------------------------------------------------- new VMs (onboarding)


def check_new_vm(ctx: Context, vm: Vm) -> list[Outgoing]:
    """Onboarding: a new in-scope VM's protection, checked at once (time-to-know: minutes).

    Records into `ctx.out` (as verification rows) and returns the follow-up to send: the check
    of the first recovery point when protection was enabled. Idempotent: once protection is on,
    the backup-status POST says so and nothing is repeated. Throttling propagates (the caller's
    message is put back).
    """
    out = ctx.out.bind(job=Job.VERIFICATION)
    unprotected = _confirm_unprotected(ctx, out, in_scope_vms(ctx, [vm]))
    return _remediate_unprotected(ctx, unprotected)


# --------------------------------------------------------------------------------- rows


# The policy of a VM no Lifeboat policy covers, verified because Azure Backup protects it.
UNSCOPED = ""
# Its RPO target when no default policy gives one (and no lifeboat:rpo-hours tag): a day.
UNSCOPED_RPO_HOURS = 24.0


def _record_finding(
    out: Outcomes,
    vm_id: str,
    policy: str,
    result: Assessment,
    *,
    vault_id: str | None,
    region: str | None = None,
) -> None:
    group, name = vm_key(vm_id).split("/", 1)
    # rpoTargetSeconds is what the posture query and status read (as replication rows write it);
    # targetSeconds stays for the rows and queries that already read it.
    details: dict[str, object] = {
        "targetSeconds": result.target_seconds,
        "rpoTargetSeconds": result.target_seconds,
        "vaultId": vault_id,
    }
    if policy == UNSCOPED:
        details["scope"] = "protected by Azure Backup, outside Lifeboat's policies"
    if result.latest_recovery_point is not None:
        details["latestRecoveryPoint"] = format_time(result.latest_recovery_point)
    if result.finding != Finding.COMPLIANT:
        details["consistency"] = result.consistency
    if result.failed_job is not None:
        details["failedJobId"] = result.failed_job.id
        details["errorCode"] = result.failed_job.error_code
    compliant = result.finding == Finding.COMPLIANT
    out.row(
        "verify-vm",
        Status.SUCCEEDED if compliant else Status.FAILED,
        result.reason,
        finding=result.finding.value,
        severity=SEVERITY[result.finding],
        subscription_id=vm_id.strip("/").split("/")[1].lower(),
        resource_group=group,
        resource_id=vm_id,
        vm_name=name,
        policy=policy or None,
        details=details,
        rpo_seconds=result.rpo_seconds,
        **({"region": region} if region else {}),
    )
