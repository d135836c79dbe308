"""Snapshot rotation, applied: the night's workers, each one unit of work, each safe to run twice.

timer -> `start_night`: one rotation-plan message per target subscription
rotation-plan -> `plan_subscription`: list inventory, report the plan, enqueue paced rotation-vm
                 messages and one rotation-confirm message after the create window
rotation-vm -> `snapshot_vm`: one VM's snapshot PUTs back to back, no polling
rotation-plan (confirm) -> `confirm_night`: one snapshot list confirms what is good; prunes go
                 to rotation-prune for disks whose snapshot tonight is good
rotation-prune -> `prune_snapshots`: delete what retention removed
"""

from __future__ import annotations

import logging
import math
import random
from datetime import datetime, timedelta
from typing import Any

from shared import messages
from shared.messages import (
    DiskSnapshot,
    Envelope,
    Payload,
    RotationConfirmRequest,
    RotationPlanRequest,
    RotationPruneRequest,
    RotationVmRequest,
    expect,
)
from shared.model import Disk, Job, Outcome, Snapshot, Status, Vm, format_time
from shared.planning import (
    Block,
    NightPlan,
    PlannedDisk,
    PrunePlan,
    RotationConfig,
    Skip,
    VmPlan,
    plan_night,
    plan_prunes,
)
from shared.ports import Compute, RefusedError, Runtime, SnapshotRequest, ThrottledError
from shared.snapshots import (
    MANAGED_TAG,
    POLICY_TAG,
    RUN_TAG,
    SET_TAG,
    SLOT_TAG,
    parse_slot,
    slot_of,
)
from shared.worker import Handler, delivery_count, enqueue

log = logging.getLogger(__name__)

PLAN_QUEUE = "rotation-plan"
VM_QUEUE = "rotation-vm"
PRUNE_QUEUE = "rotation-prune"
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60
PRUNE_CHUNK = 100

__all__ = ["Handler"]


def run_id_of(slot: str) -> str:
    return f"rotation-{slot}"


def rotation_config(rt: Runtime, subscription_id: str) -> RotationConfig:
    s = rt.settings
    return RotationConfig(
        snapshot_group=s.snapshot_group(subscription_id),
        drill_groups=s.drill_groups,
        max_disk_delete_fraction=s.max_disk_delete_fraction,
        max_estate_delete_fraction=s.max_estate_delete_fraction,
        arm_writes_per_second=s.arm_writes_per_second,
        snapshot_writes_per_second=s.snapshot_writes_per_second,
    )


# -------------------------------------------------------------------------------- the timer


def start_night(rt: Runtime, occurrence: datetime) -> int:
    """One rotation-plan message per target subscription, keyed by the scheduled occurrence."""
    slot = slot_of(occurrence.replace(second=0, microsecond=0))
    run_id = run_id_of(slot)
    subscriptions = sorted(rt.settings.subscriptions)
    for subscription in subscriptions:
        request = RotationPlanRequest(subscriptionId=subscription, slot=slot)
        _send(
            rt, PLAN_QUEUE, "rotation-plan", request, run_id, f"rotation-plan:{subscription}:{slot}"
        )
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


# --------------------------------------------------------------------------------- planning


def plan_subscription(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, RotationPlanRequest)
    if _stale(rt, envelope, request.slot, "rotation-plan"):
        return
    compute = rt.need_compute()
    subscription = request.subscription_id
    config = rotation_config(rt, subscription)
    try:
        vms, disks, snapshots = _inventory(compute, subscription, config.snapshot_group)
    except ThrottledError as e:
        _retry_later(rt, PLAN_QUEUE, envelope, request, e.retry_after)
        return
    plan = plan_night(vms, disks, snapshots, rt.need_policies(), config, parse_slot(request.slot))
    dry_run = rt.settings.dry_run
    _report(rt, *_plan_outcomes(rt, envelope.run_id, plan, subscription, dry_run))
    if dry_run:
        prunes = _expected_prunes(rt, plan, disks, snapshots, config, subscription)
        _report(rt, *_prune_outcomes(rt, envelope.run_id, prunes, subscription, dry_run=True))
        return
    paced_from = rt.clock.now()
    for vm_plan in plan.vms:
        if vm_plan.creates:
            _send(
                rt,
                VM_QUEUE,
                "rotation-vm",
                _vm_request(vm_plan, subscription, plan.slot),
                envelope.run_id,
                f"rotation-vm:{vm_plan.vm.id.lower()}:{plan.slot}",
                delay=vm_plan.delay_seconds - _seconds_since(rt, paced_from),
                early=True,
            )
    confirm = RotationConfirmRequest(subscriptionId=subscription, slot=plan.slot)
    _send(
        rt,
        PLAN_QUEUE,
        "rotation-confirm",
        confirm,
        envelope.run_id,
        f"rotation-confirm:{subscription}:{plan.slot}",
        delay=plan.window_seconds
        + rt.settings.confirm_delay_seconds
        - _seconds_since(rt, paced_from),
    )
    log.info(
        "rotation plan %s %s: %d VM(s), %d snapshot(s) over %.0f s",
        subscription,
        plan.slot,
        len(plan.vms),
        plan.creates,
        plan.window_seconds,
    )


def preview_night(
    rt: Runtime, subscription: str, occurrence: datetime
) -> tuple[NightPlan, PrunePlan]:
    """The night's plan and the prunes it would lead to if every snapshot succeeded. No writes."""
    config = rotation_config(rt, subscription)
    vms, disks, snapshots = _inventory(rt.need_compute(), subscription, config.snapshot_group)
    plan = plan_night(vms, disks, snapshots, rt.need_policies(), config, occurrence)
    return plan, _expected_prunes(rt, plan, disks, snapshots, config, subscription)


def _expected_prunes(
    rt: Runtime,
    plan: NightPlan,
    disks: dict[str, Disk],
    snapshots: list[Snapshot],
    config: RotationConfig,
    subscription: str,
) -> PrunePlan:
    due = [
        PlannedDisk(disks[a.disk_id.lower()], _policy(rt, p.policy))
        for p in plan.vms
        for a in p.creates
    ]
    tonight = _imagined_tonight(plan, config, subscription)
    return plan_prunes(due, disks, [*snapshots, *tonight], rt.need_policies(), config, plan.slot)


def _inventory(
    compute: Compute, subscription: str, snapshot_group: str
) -> tuple[list[Vm], dict[str, Disk], list[Snapshot]]:
    vms = compute.list_vms(subscription)
    disks = {d.id.lower(): d for d in compute.list_disks(subscription)}
    snapshots = compute.list_snapshots(subscription, snapshot_group)
    return vms, disks, snapshots


def _vm_request(vm_plan: VmPlan, subscription: str, slot: str) -> RotationVmRequest:
    return RotationVmRequest(
        subscriptionId=subscription,
        vmId=vm_plan.vm.id,
        vmName=vm_plan.vm.name,
        resourceGroup=vm_plan.vm.resource_group,
        policy=vm_plan.policy,
        slot=slot,
        setId=vm_plan.set_id,
        disks=[
            DiskSnapshot(
                diskId=a.disk_id,
                uniqueId=a.unique_id,
                location=a.location,
                snapshotName=a.snapshot_name,
                lun=a.lun,
            )
            for a in vm_plan.creates
        ],
    )


def _plan_outcomes(
    rt: Runtime, run_id: str, plan: NightPlan, subscription: str, dry_run: bool
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for vm_plan in plan.vms:
        vm = vm_plan.vm
        outcomes.append(
            _vm_outcome(
                rt,
                run_id,
                "plan-vm",
                Status.PLANNED,
                vm,
                policy=vm_plan.policy,
                count=len(vm_plan.creates),
                dry_run=dry_run,
                details={
                    "slot": plan.slot,
                    "setId": vm_plan.set_id,
                    "delaySeconds": vm_plan.delay_seconds,
                    "disks": [a.disk_id for a in vm_plan.creates],
                },
            )
        )
        for skip in vm_plan.skips:
            outcomes.append(_skip_outcome(rt, run_id, skip, vm, vm_plan.policy, dry_run))
        if dry_run:
            for action in vm_plan.creates:
                outcomes.append(
                    _vm_outcome(
                        rt,
                        run_id,
                        "snapshot-create",
                        Status.PLANNED,
                        vm,
                        policy=vm_plan.policy,
                        resource_id=action.disk_id,
                        dry_run=True,
                        details={"snapshotName": action.snapshot_name},
                    )
                )
    for skip in plan.skipped_vms:
        outcomes.append(
            _outcome(
                rt,
                run_id,
                "plan-vm",
                Status.SKIPPED,
                subscription=subscription,
                resource_id=skip.resource_id,
                reason=skip.reason,
                dry_run=dry_run,
            )
        )
    for warning in plan.warnings:
        outcomes.append(
            _outcome(
                rt,
                run_id,
                "quota-warning",
                Status.PLANNED,
                subscription=subscription,
                reason=warning,
                severity="warning",
                dry_run=dry_run,
            )
        )
    return outcomes


def _skip_outcome(
    rt: Runtime, run_id: str, skip: Skip, vm: Vm, policy: str, dry_run: bool
) -> Outcome:
    return _vm_outcome(
        rt,
        run_id,
        "snapshot-create",
        Status.BLOCKED if skip.blocked else Status.SKIPPED,
        vm,
        policy=policy,
        resource_id=skip.resource_id,
        reason=skip.reason,
        dry_run=dry_run,
    )


def _imagined_tonight(plan: NightPlan, config: RotationConfig, subscription: str) -> list[Snapshot]:
    """For a dry run: tonight's snapshots as if they had all succeeded."""
    taken = parse_slot(plan.slot)
    return [
        Snapshot(
            id=f"/subscriptions/{subscription}/resourceGroups/{config.snapshot_group}"
            f"/providers/Microsoft.Compute/snapshots/{a.snapshot_name}",
            name=a.snapshot_name,
            subscription_id=subscription,
            resource_group=config.snapshot_group,
            location=a.location,
            time_created=taken,
            source_resource_id=a.disk_id,
            source_unique_id=a.unique_id,
            incremental=True,
            provisioning_state="Succeeded",
            tags={POLICY_TAG: p.policy},
        )
        for p in plan.vms
        for a in p.creates
    ]


# ---------------------------------------------------------------------------------- one VM


def snapshot_vm(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, RotationVmRequest)
    job = Job.ONBOARDING if request.onboarding else Job.ROTATION
    if _stale(rt, envelope, request.slot, "rotation-vm", job=job, resource_id=request.vm_id):
        return
    compute = rt.need_compute()
    group = rt.settings.snapshot_group(request.subscription_id)
    tags = {
        MANAGED_TAG: "true",
        POLICY_TAG: request.policy,
        SLOT_TAG: request.slot,
        SET_TAG: request.set_id,
        RUN_TAG: envelope.run_id[:256],
    }
    recheck = _reads_first(request)
    for index, disk in enumerate(request.disks):
        if recheck and _snapshot_exists(compute, request.subscription_id, group, disk):
            _report(rt, _disk_outcome(rt, envelope, request, disk, Status.SUCCEEDED, job, None))
            continue
        headroom = compute.write_headroom(request.subscription_id)
        if headroom is not None and headroom < rt.settings.min_write_headroom:
            log.info("write headroom %d is low; deferring %s", headroom, request.vm_name)
            rest = request.model_copy(update={"disks": request.disks[index:], "recheck": recheck})
            _retry_later(rt, VM_QUEUE, envelope, rest, 10.0)
            return
        try:
            compute.begin_create_snapshot(
                SnapshotRequest(
                    subscription_id=request.subscription_id,
                    resource_group=group,
                    name=disk.snapshot_name,
                    location=disk.location,
                    source_disk_id=disk.disk_id,
                    tags=tags,
                )
            )
        except ThrottledError as e:
            rest = request.model_copy(update={"disks": request.disks[index:], "recheck": recheck})
            _retry_later(rt, VM_QUEUE, envelope, rest, e.retry_after)
            return
        except RefusedError as e:
            _report(rt, _disk_outcome(rt, envelope, request, disk, Status.BLOCKED, job, str(e)))
            continue
        _report(rt, _disk_outcome(rt, envelope, request, disk, Status.SUCCEEDED, job, None))


def _reads_first(request: RotationVmRequest | RotationPruneRequest) -> bool:
    """Whether earlier work may already be done, so each item is read before it is written.

    A redelivery may follow a crash part way, and so may what it puts back. Work put back for
    throttling or headroom was never attempted: it carries `recheck` and needs no reads. Messages
    from before that field read on any attempt after the first.
    """
    earlier = request.recheck if request.recheck is not None else request.attempt > 1
    return delivery_count() > 1 or earlier


def _snapshot_exists(compute: Compute, subscription: str, group: str, disk: DiskSnapshot) -> bool:
    snapshot_id = (
        f"/subscriptions/{subscription}/resourceGroups/{group}"
        f"/providers/Microsoft.Compute/snapshots/{disk.snapshot_name}"
    )
    try:
        return compute.get_snapshot(snapshot_id) is not None
    except ThrottledError:
        return False  # unknown: the PUT decides (and is a no-op if it exists)


def _gone(compute: Compute, snapshot_id: str) -> bool:
    try:
        existing = compute.get_snapshot(snapshot_id)
    except ThrottledError:
        return False
    return existing is None or (existing.provisioning_state or "").lower() == "deleting"


def _disk_outcome(
    rt: Runtime,
    envelope: Envelope,
    request: RotationVmRequest,
    disk: DiskSnapshot,
    status: Status,
    job: Job,
    reason: str | None,
) -> Outcome:
    return Outcome(
        time=rt.clock.now(),
        run_id=envelope.run_id,
        job=job,
        operation="snapshot-create",
        status=status,
        subscription_id=request.subscription_id,
        region=disk.location,
        resource_group=request.resource_group,
        resource_id=disk.disk_id,
        vm_name=request.vm_name,
        policy=request.policy,
        reason=reason,
        details={
            "snapshotName": disk.snapshot_name,
            "slot": request.slot,
            "setId": request.set_id,
            "vmId": request.vm_id,
            "lun": disk.lun,
            "attempt": request.attempt,
        },
    )


# --------------------------------------------------------------------------------- confirm


def confirm_night(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, RotationConfirmRequest)
    compute = rt.need_compute()
    subscription = request.subscription_id
    config = rotation_config(rt, subscription)
    policies = rt.need_policies()
    try:
        vms, disks, snapshots = _inventory(compute, subscription, config.snapshot_group)
    except ThrottledError as e:
        _retry_later(rt, PLAN_QUEUE, envelope, request, e.retry_after)
        return
    plan = plan_night(vms, disks, snapshots, policies, config, parse_slot(request.slot))
    by_name = {s.name.lower(): s for s in snapshots}
    due: list[PlannedDisk] = []
    failed: list[Outcome] = []
    for vm_plan in plan.vms:
        for action in vm_plan.creates:
            due.append(PlannedDisk(disks[action.disk_id.lower()], _policy(rt, vm_plan.policy)))
            tonight = by_name.get(action.snapshot_name)
            if tonight is None or not tonight.good:
                reason = (
                    "not found after the create window"
                    if tonight is None
                    else f"not good after the create window (provisioningState "
                    f"{tonight.provisioning_state}, completion {tonight.completion_percent})"
                )
                failed.append(
                    _vm_outcome(
                        rt,
                        envelope.run_id,
                        "snapshot-create",
                        Status.FAILED,
                        vm_plan.vm,
                        policy=vm_plan.policy,
                        resource_id=action.disk_id,
                        reason=reason,
                        details={"snapshotName": action.snapshot_name, "slot": request.slot},
                    )
                )
    prunes = plan_prunes(due, disks, snapshots, policies, config, request.slot)
    planned = sum(len(p.creates) for p in plan.vms)
    totals = {
        "vms": len(plan.vms),
        "snapshotsPlanned": planned,
        "snapshotsGood": planned - len(failed),
        "snapshotsFailed": len(failed),
        "prunesDue": sum(len(p.delete) for p in prunes.disks),
        "pruneRefused": bool(prunes.refused),
    }
    run_end = _outcome(
        rt,
        envelope.run_id,
        "run-end",
        Status.FAILED if failed or prunes.refused else Status.SUCCEEDED,
        subscription=subscription,
        count=planned - len(failed),
        details={"slot": request.slot, "totals": totals},
    )
    _report(
        rt, *failed, *_prune_outcomes(rt, envelope.run_id, prunes, subscription, False), run_end
    )
    if prunes.refused:
        return
    # Deletes have their own ARM bucket; pace them like the creates.
    cursor = 0.0
    paced_from = rt.clock.now()
    for prune in prunes.disks:
        ids = [r.snapshot.id for r in prune.delete]
        for start in range(0, len(ids), PRUNE_CHUNK):
            chunk = ids[start : start + PRUNE_CHUNK]
            _send(
                rt,
                PRUNE_QUEUE,
                "rotation-prune",
                RotationPruneRequest(
                    subscriptionId=subscription,
                    sourceId=prune.source_id,
                    policy=prune.policy,
                    slot=request.slot,
                    snapshotIds=chunk,
                    orphan=prune.orphan,
                ),
                envelope.run_id,
                f"rotation-prune:{prune.source_id.lower()}:{request.slot}:{start}",
                delay=cursor - _seconds_since(rt, paced_from),
                early=True,
            )
            cursor += len(chunk) / rt.settings.arm_writes_per_second


def _prune_outcomes(
    rt: Runtime, run_id: str, prunes: PrunePlan, subscription: str, dry_run: bool
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    blocks: list[tuple[Block, str | None]] = [(b, None) for b in prunes.suspicious]
    for prune in prunes.disks:
        blocks += [(b, prune.policy) for b in prune.blocked]
        if dry_run and not prunes.refused:
            for removal in prune.delete:
                outcomes.append(
                    _snapshot_outcome(
                        rt,
                        run_id,
                        Status.PLANNED,
                        removal.snapshot,
                        prune.policy,
                        removal.reason,
                        dry_run=True,
                    )
                )
    for block, policy in blocks:
        outcomes.append(
            _snapshot_outcome(
                rt, run_id, Status.BLOCKED, block.snapshot, policy, block.reason, dry_run=dry_run
            )
        )
    if prunes.refused:
        outcomes.append(
            _outcome(
                rt,
                run_id,
                "snapshot-delete",
                Status.BLOCKED,
                subscription=subscription,
                reason=f"run refused: {prunes.refused}",
                count=sum(len(p.delete) for p in prunes.disks),
                dry_run=dry_run,
            )
        )
    return outcomes


def _snapshot_outcome(
    rt: Runtime,
    run_id: str,
    status: Status,
    snapshot: Snapshot,
    policy: str | None,
    reason: str | None,
    *,
    dry_run: bool = False,
    job: Job = Job.ROTATION,
    details: dict[str, Any] | None = None,
) -> Outcome:
    return Outcome(
        time=rt.clock.now(),
        run_id=run_id,
        job=job,
        operation="snapshot-delete",
        status=status,
        subscription_id=snapshot.subscription_id,
        region=snapshot.location,
        resource_group=snapshot.resource_group,
        resource_id=snapshot.id,
        policy=policy,
        reason=reason,
        dry_run=dry_run,
        details={
            "snapshotName": snapshot.name,
            "sourceId": snapshot.source_resource_id,
            "timeCreated": format_time(snapshot.time_created) if snapshot.time_created else None,
            **(details or {}),
        },
    )


# ----------------------------------------------------------------------------------- prune


def prune_snapshots(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, RotationPruneRequest)
    compute = rt.need_compute()
    recheck = _reads_first(request)
    for index, snapshot_id in enumerate(request.snapshot_ids):
        if recheck and _gone(compute, snapshot_id):
            # An earlier delivery deleted it; report again rather than risk never reporting.
            _report(rt, _delete_outcome(rt, envelope, request, snapshot_id, Status.SUCCEEDED, None))
            continue
        headroom = compute.delete_headroom(request.subscription_id)
        if headroom is not None and headroom < rt.settings.min_write_headroom:
            # A backlog of prunes must not empty the delete bucket and meet 429s: wait a little.
            log.info(
                "delete headroom %d is low; deferring prunes of %s", headroom, request.source_id
            )
            rest = request.model_copy(
                update={"snapshot_ids": request.snapshot_ids[index:], "recheck": recheck}
            )
            _retry_later(rt, PRUNE_QUEUE, envelope, rest, 10.0)
            return
        try:
            compute.begin_delete_snapshot(snapshot_id)
        except ThrottledError as e:
            rest = request.model_copy(
                update={"snapshot_ids": request.snapshot_ids[index:], "recheck": recheck}
            )
            _retry_later(rt, PRUNE_QUEUE, envelope, rest, e.retry_after)
            return
        except RefusedError as e:
            _report(rt, _delete_outcome(rt, envelope, request, snapshot_id, Status.BLOCKED, str(e)))
            continue
        _report(rt, _delete_outcome(rt, envelope, request, snapshot_id, Status.SUCCEEDED, None))


def _delete_outcome(
    rt: Runtime,
    envelope: Envelope,
    request: RotationPruneRequest,
    snapshot_id: str,
    status: Status,
    reason: str | None,
) -> Outcome:
    parts = snapshot_id.split("/")
    return Outcome(
        time=rt.clock.now(),
        run_id=envelope.run_id,
        job=Job.ROTATION,
        operation="snapshot-delete",
        status=status,
        subscription_id=request.subscription_id,
        resource_group=parts[4] if len(parts) > 4 else None,
        resource_id=snapshot_id,
        policy=request.policy,
        reason=reason or ("orphan retention" if request.orphan else "removed by retention"),
        details={"sourceId": request.source_id, "slot": request.slot, "orphan": request.orphan},
    )


# ---------------------------------------------------------------------------------- helpers


def _policy(rt: Runtime, name: str) -> Any:
    return rt.need_policies().policies[name]


def _stale(
    rt: Runtime,
    envelope: Envelope,
    slot: str,
    operation: str,
    *,
    job: Job = Job.ROTATION,
    resource_id: str | None = None,
) -> bool:
    """A message for a slot long past never writes: its snapshot may already be pruned."""
    age = rt.clock.now() - parse_slot(slot)
    if age <= timedelta(hours=rt.settings.stale_slot_hours):
        return False
    _report(
        rt,
        _outcome(
            rt,
            envelope.run_id,
            operation,
            Status.SKIPPED,
            job=job,
            resource_id=resource_id,
            reason=f"slot {slot} is {age.total_seconds() / 3600:.0f} h old: too late to act",
        ),
    )
    return True


def _retry_later(
    rt: Runtime, queue: str, envelope: Envelope, payload: Payload, retry_after: float
) -> None:
    """Throttled: put the (remaining) work back with Retry-After plus jitter, and complete."""
    attempt = getattr(payload, "attempt", 0) + 1
    if hasattr(payload, "attempt"):
        payload = payload.model_copy(update={"attempt": attempt})
    # Retry-After is honoured in full; the jitter spreads a herd over whole seconds.
    delay = math.ceil(retry_after) + math.floor(random.uniform(0, max(0.2 * retry_after, 1.0)))
    again = messages.make_envelope(
        envelope.type,
        payload,
        run_id=envelope.run_id,
        idempotency_key=envelope.idempotency_key,
        created=rt.clock.now(),
        version=envelope.version,
    )
    enqueue(rt, queue, again, job=Job.ROTATION, visibility_timeout=_visibility(delay))
    log.info(
        "%s throttled: back on %s in %.1f s (attempt %d)", envelope.type, queue, delay, attempt
    )


def _send(
    rt: Runtime,
    queue: str,
    message_type: str,
    payload: Payload,
    run_id: str,
    key: str,
    *,
    delay: float = 0.0,
    early: bool = False,
) -> None:
    envelope = messages.make_envelope(
        message_type, payload, run_id=run_id, idempotency_key=key, created=rt.clock.now()
    )
    visibility = _visibility(delay, early=early)
    enqueue(rt, queue, envelope, job=Job.ROTATION, visibility_timeout=visibility)


def _seconds_since(rt: Runtime, start: datetime) -> float:
    """Paced delays count from when sending began: each message's delay is shortened by the time
    spent sending the ones before it, so enqueueing thousands does not stretch the window."""
    return (rt.clock.now() - start).total_seconds()


def _visibility(delay: float, *, early: bool = False) -> int:
    """Queues hide messages in whole seconds. Paced work rounds down (`early`), waits round up,
    so a confirm always comes at least the create window after the last VM's snapshots."""
    seconds = math.floor(delay) if early else math.ceil(delay)
    return min(MAX_VISIBILITY_SECONDS, max(0, seconds))


def _report(rt: Runtime, *outcomes: Outcome) -> None:
    if outcomes:
        rt.reporter.report(outcomes)


def _outcome(
    rt: Runtime,
    run_id: str,
    operation: str,
    status: Status,
    *,
    job: Job = Job.ROTATION,
    subscription: str | None = None,
    resource_id: str | None = None,
    reason: str | None = None,
    severity: str | None = None,
    count: int | None = None,
    dry_run: bool = False,
    details: dict[str, Any] | None = None,
) -> Outcome:
    return Outcome(
        time=rt.clock.now(),
        run_id=run_id,
        job=job,
        operation=operation,
        status=status,
        subscription_id=subscription,
        resource_id=resource_id,
        reason=reason,
        severity=severity,
        count=count,
        dry_run=dry_run or rt.settings.dry_run,
        details=details or {},
    )


def _vm_outcome(
    rt: Runtime,
    run_id: str,
    operation: str,
    status: Status,
    vm: Vm,
    *,
    policy: str | None = None,
    resource_id: str | None = None,
    reason: str | None = None,
    count: int | None = None,
    dry_run: bool = False,
    details: dict[str, Any] | None = None,
) -> Outcome:
    return Outcome(
        time=rt.clock.now(),
        run_id=run_id,
        job=Job.ROTATION,
        operation=operation,
        status=status,
        subscription_id=vm.subscription_id,
        region=vm.location,
        resource_group=vm.resource_group,
        resource_id=resource_id or vm.id,
        vm_name=vm.name,
        policy=policy,
        reason=reason,
        count=count,
        dry_run=dry_run or rt.settings.dry_run,
        details=details or {},
    )
