"""Snapshot rotation, applied: the night's handlers, each one unit of work, each safe to run twice.

timer -> `start_night`: one rotation-plan message per target subscription
rotation-plan -> `plan_subscription`: list inventory, report the plan, paced rotation-vm
                 messages and one rotation-confirm message after the create window
rotation-vm -> `snapshot_vm`: one VM's snapshot PUTs back to back, no polling
rotation-plan (confirm) -> `confirm_night`: one snapshot list confirms what is good; prunes go
                 to rotation-prune for disks whose snapshot tonight is good
rotation-plan (confirm-vm) -> `confirm_vm`: one VM's set (taken at onboarding), one GET each
rotation-prune -> `prune_snapshots`: delete what retention removed

Handlers decide and return; `shared/dispatch.py` sends, puts back and reports.

How Azure's faults and limits end (each disk gets one honest status, never a silent skip):
- throttled (429, any Retry-After, 1,200 s included) or 7 snapshots of a disk within 5 minutes:
  the rest of the work goes back on its queue, a `waiting` row per held create says for how
  long (`Details.heldSeconds`); no thread sleeps;
- 500 incremental snapshots of a disk: `waiting: snapshot limit: 500 per disk` (the next night's
  prunes make room); 75,000 per subscription and region and other refusals: `blocked`, final for
  the night and never followed by `failed`;
- lists that Azure does not answer (5xx, timeouts) in plan or confirm: put back with backoff
  a few times, then a `failed` plan or `unconfirmed` disks, with the cause; prunes wait;
- reads are paced on `x-ms-ratelimit-remaining-subscription-reads` like writes and deletes.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from shared.dispatch import (
    Context,
    Done,
    HandlerTable,
    Outgoing,
    PutBack,
    Refuse,
    Result,
    Send,
    per_subscription,
)
from shared.messages import (
    DiskSnapshot,
    PruneDisk,
    RotationConfirmRequest,
    RotationConfirmVmRequest,
    RotationPlanRequest,
    RotationPruneRequest,
    RotationVmRequest,
)
from shared.model import Disk, Snapshot, Vm, format_time
from shared.names import Job, Status, Tag, Timer
from shared.outcomes import Outcomes
from shared.pacing import Budget
from shared.planning import (
    PRUNES_PER_MESSAGE,
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
from shared.policies import TAG_TYPO, UNKNOWN_POLICY
from shared.ports import (
    Compute,
    LimitReachedError,
    RefusedError,
    Runtime,
    SnapshotRequest,
    ThrottledError,
    UnavailableError,
)
from shared.rules import may_delete, same_id, vm_out_of_scope, where_lifeboat_deletes
from shared.snapshots import hold_of, parse_slot, snapshot_name

log = logging.getLogger(__name__)

PRUNE_CHUNK = PRUNES_PER_MESSAGE
# Deletes one prune message carries, over several disks of one region (a disk with more goes
# alone). ~30x fewer messages than one per disk at a night's one delete a disk, and a message
# is at most this many deletes ahead of the budget in any window (25 of 1,200 a minute at 20/s).
DELETES_PER_MESSAGE = 25
# A headroom reading under the minimum puts the work back for this long (ARM refills 10/s).
HEADROOM_WAIT_SECONDS = 10.0
# A write the process's pace holds back (a stall's backlog arriving at once) waits its turn.
AHEAD_OF_PACE = "ahead of the night's pace: this minute's write budget is spent"
# Reads left in the subscription's ARM bucket (250, refilled 25/s) under which a message that
# reads one resource after another (prunes, a VM's confirm) puts the rest back: two seconds of
# refill, so other workers' plans and confirms still get their lists.
MIN_READ_HEADROOM = 50
# A plan or confirm whose lists Azure does not answer goes back this many times, after
# READ_BACKOFF_SECONDS doubled each time (1, 2, 4 minutes), before it reports what it could
# not do. The SDK has already retried each call within its bounds (shared/adapters/retry.py).
READ_TRIES = 3
READ_BACKOFF_SECONDS = 60.0


def rotation_config(rt: Runtime, subscription_id: str) -> RotationConfig:
    s = rt.settings
    return RotationConfig(
        snapshot_group=s.snapshot_group(subscription_id),
        drill_groups=s.drill_groups,
        max_disk_delete_fraction=s.max_disk_delete_fraction,
        max_estate_delete_fraction=s.max_estate_delete_fraction,
        arm_writes_per_second=s.arm_writes_per_second,
        snapshot_writes_per_second=s.snapshot_writes_per_second,
        region_snapshot_limit=s.region_snapshot_limit,
    )


def snapshot_id_of(subscription: str, group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription}/resourceGroups/{group}"
        f"/providers/Microsoft.Compute/snapshots/{name}"
    )


# -------------------------------------------------------------------------------- the timer


def start_night(ctx: Context, occurrence: datetime) -> Result:
    """One rotation-plan message per target subscription, keyed by the scheduled occurrence."""
    return per_subscription(
        ctx, occurrence, lambda s, slot: RotationPlanRequest(subscriptionId=s, slot=slot)
    )


# --------------------------------------------------------------------------------- planning


def plan_subscription(request: RotationPlanRequest, ctx: Context) -> Result:
    if _stale(ctx, request.slot, "rotation-plan"):
        return Done("stale")
    subscription = request.subscription_id
    config = rotation_config(ctx.rt, subscription)
    out = ctx.out.bind(subscription_id=subscription)
    try:
        vms, disks, snapshots = _inventory(ctx.compute, subscription, config.snapshot_group)
        counted = _counted(ctx.rt, subscription)
    except UnavailableError as e:
        if ctx.put_backs < READ_TRIES:
            return _read_again(ctx, "the inventory", e)
        # No plan without the inventory: say so for the subscription, never poison silently.
        reason = f"Azure did not answer the inventory lists after {ctx.put_backs + 1} tries: {e}"
        details = {"slot": request.slot, "putBacks": ctx.put_backs}
        out.failed("rotation-plan", reason, details=details)
        out.failed("run-end", reason, count=0, details=details)
        return Done("inventory unavailable")
    plan = plan_night(
        vms, disks, snapshots, ctx.policies, config, parse_slot(request.slot), counted
    )
    _record_plan(out, plan, subscription)
    if ctx.settings.dry_run:
        prunes = _expected_prunes(ctx.rt, plan, disks, snapshots, config, subscription)
        _record_prunes(out, prunes, dry_run=True)
        return Done("dry run")
    log.info(
        "rotation plan %s %s: %d VM(s), %d snapshot(s) over %.0f s",
        subscription,
        plan.slot,
        len(plan.vms),
        plan.creates,
        plan.window_seconds,
    )
    confirm = RotationConfirmRequest(subscriptionId=subscription, slot=plan.slot)
    return Send(
        *(
            Outgoing(
                vm_request(vm_plan, subscription, plan.slot, recheck=ctx.redelivered),
                key=f"rotation-vm:{vm_plan.vm.id.lower()}:{plan.slot}",
                delay=vm_plan.delay_seconds,
                early=True,
            )
            for vm_plan in plan.vms
            if vm_plan.creates
        ),
        Outgoing(
            confirm,
            key=f"rotation-confirm:{subscription}:{plan.slot}",
            delay=plan.window_seconds + ctx.settings.confirm_delay_seconds,
        ),
    )


def preview_night(
    rt: Runtime, subscription: str, occurrence: datetime
) -> tuple[NightPlan, PrunePlan]:
    """The night's plan and the prunes it would lead to if every snapshot succeeded. No writes."""
    config = rotation_config(rt, subscription)
    vms, disks, snapshots = _inventory(rt.compute, subscription, config.snapshot_group)
    counted = _counted(rt, subscription)
    plan = plan_night(vms, disks, snapshots, rt.policies, config, occurrence, counted)
    return plan, _expected_prunes(rt, plan, disks, snapshots, config, subscription)


def _expected_prunes(
    rt: Runtime,
    plan: NightPlan,
    disks: dict[str, Disk],
    snapshots: list[Snapshot],
    config: RotationConfig,
    subscription: str,
) -> PrunePlan:
    policies = rt.policies
    due = [
        PlannedDisk(disks[a.disk_id.lower()], policies.policies[p.policy])
        for p in plan.vms
        for a in p.creates
    ]
    tonight = _imagined_tonight(plan, config, subscription)
    return plan_prunes(due, disks, [*snapshots, *tonight], policies, config, plan.slot)


def _inventory(
    compute: Compute, subscription: str, snapshot_group: str
) -> tuple[list[Vm], dict[str, Disk], list[Snapshot]]:
    vms = compute.list_vms(subscription)
    disks = {d.id.lower(): d for d in compute.list_disks(subscription)}
    snapshots = compute.list_snapshots(subscription, snapshot_group)
    return vms, disks, snapshots


def _counted(rt: Runtime, subscription: str) -> list[Snapshot] | None:
    """Every snapshot of the subscription with COUNT_ALL_SNAPSHOTS (for the limit warnings);
    None (Lifeboat's group is counted) without it."""
    if not rt.settings.count_all_snapshots:
        return None
    return rt.compute.list_subscription_snapshots(subscription)


def _read_again(ctx: Context, what: str, error: UnavailableError) -> PutBack:
    """The same work later, backing off: Azure did not answer `what` (after the SDK's retries)."""
    after = READ_BACKOFF_SECONDS * 2**ctx.put_backs
    return PutBack(after, f"Azure did not answer {what} (try {ctx.put_backs + 1}): {error}")


def vm_request(
    vm_plan: VmPlan,
    subscription: str,
    slot: str,
    *,
    onboarding: bool = False,
    recheck: bool = False,
) -> RotationVmRequest:
    """One VM's snapshot set as a message (the night's and onboarding's alike).

    `recheck`: the set may have been asked for before (a redelivered plan, another event about
    the same creation), so each snapshot is read by name before any PUT.
    """
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
        onboarding=onboarding,
        recheck=recheck,
    )


def _record_plan(out: Outcomes, plan: NightPlan, subscription: str) -> None:
    for vm_plan in plan.vms:
        vm_out = out.bind(vm=vm_plan.vm, policy=vm_plan.policy)
        vm_out.planned(
            "plan-vm",
            count=len(vm_plan.creates),
            details={
                "slot": plan.slot,
                "setId": vm_plan.set_id,
                "delaySeconds": vm_plan.delay_seconds,
                "disks": [a.disk_id for a in vm_plan.creates],
            },
        )
        for skip in vm_plan.skips:
            row = vm_out.blocked if skip.blocked else vm_out.skipped
            row("snapshot-create", skip.reason, resource_id=skip.resource_id, **_kind(skip))
        if out.dry_run:
            for action in vm_plan.creates:
                vm_out.planned(
                    "snapshot-create",
                    resource_id=action.disk_id,
                    details={"snapshotName": action.snapshot_name},
                )
    for skipped in plan.skipped_vms:
        out.skipped(
            "plan-vm",
            skipped.reason,
            resource_id=skipped.resource_id,
            vm_name=skipped.resource_id.rsplit("/", 1)[-1],
            **_kind(skipped),
        )
    for loose in plan.skipped_disks:
        out.skipped("snapshot-create", loose.reason, resource_id=loose.resource_id, **_kind(loose))
    for warning in plan.warnings:
        # A policy with an unlimited count may keep "inf" snapshots: no number for that.
        seen = warning.seen if warning.seen is not None and math.isfinite(warning.seen) else None
        out.planned(
            "quota-warning",
            warning.message,
            severity="warning",
            distinct=f"{warning.kind}:{warning.resource_id or warning.region}",
            resource_id=warning.resource_id,
            region=warning.region,
            count=None if seen is None else int(seen),
            details={
                "limit": warning.kind,
                "seenByLifeboat": seen,
                "of": warning.limit,
                "counted": warning.counted,
            },
        )


def _kind(skip: Skip) -> dict[str, Any]:
    """A skip row's stable shape word, as `Details.skip` (the daily digests group by it)."""
    if skip.kind is None:
        return {}
    severity = {"severity": "warning"} if skip.kind in (TAG_TYPO, UNKNOWN_POLICY) else {}
    return {"details": {"skip": skip.kind}, **severity}


def _imagined_tonight(plan: NightPlan, config: RotationConfig, subscription: str) -> list[Snapshot]:
    """For a dry run: tonight's snapshots as if they had all succeeded."""
    taken = parse_slot(plan.slot)
    return [
        Snapshot(
            id=snapshot_id_of(subscription, config.snapshot_group, a.snapshot_name),
            name=a.snapshot_name,
            subscription_id=subscription,
            resource_group=config.snapshot_group,
            location=a.location,
            time_created=taken,
            source_resource_id=a.disk_id,
            source_unique_id=a.unique_id,
            incremental=True,
            provisioning_state="Succeeded",
            tags={Tag.POLICY: p.policy},
        )
        for p in plan.vms
        for a in p.creates
    ]


# ---------------------------------------------------------------------------------- one VM


def snapshot_vm(request: RotationVmRequest, ctx: Context) -> Result:
    out = _vm_out(ctx, request)
    if _stale(ctx, request.slot, "rotation-vm", out=out.bind(resource_id=request.vm_id)):
        return Done("stale")
    wrong = _outside_service(ctx, request)
    if wrong is not None:
        return Refuse(f"rotation-vm asks for what Lifeboat never does: {wrong}")
    compute = ctx.compute
    group = ctx.settings.snapshot_group(request.subscription_id)
    recheck = ctx.redelivered or request.recheck
    if _older_than_fresh(ctx):
        # The plan may be out of date: is the VM still there, and still in scope?
        try:
            gone = _out_of_scope(ctx, request)
        except ThrottledError as e:
            return PutBack(e.retry_after, f"throttled by Azure: {e}", request)
        if gone is not None:
            out.bind(resource_id=request.vm_id).skipped("snapshot-create", gone)
            return Done(gone)
        recheck = True
    tags: dict[str, str] = {
        Tag.MANAGED: "true",
        Tag.POLICY: request.policy,
        Tag.SLOT: request.slot,
        Tag.SET: request.set_id,
        Tag.RUN: ctx.run_id[:256],
    }
    accepted: list[DiskSnapshot] = []  # what Azure took: only these are confirmed
    for index, disk in enumerate(request.disks):
        disk_out = out.bind(
            region=disk.location,
            resource_id=disk.disk_id,
            details={"snapshotName": disk.snapshot_name, "lun": disk.lun},
        )
        snapshot_id = snapshot_id_of(request.subscription_id, group, disk.snapshot_name)
        rest = request.model_copy(update={"disks": request.disks[index:], "recheck": recheck})
        wait = _ahead_of_pace(ctx, request.subscription_id, len(request.disks), disk.location)
        if wait:
            return PutBack(wait, AHEAD_OF_PACE, rest)
        # Never PUT what may exist: a PUT replaces every tag, a user's hold included.
        if recheck:
            reads = compute.read_headroom(request.subscription_id)
            if reads is not None and reads < MIN_READ_HEADROOM:
                return PutBack(HEADROOM_WAIT_SECONDS, f"read headroom {reads} is low", rest)
        try:
            if recheck and compute.get_snapshot(snapshot_id) is not None:
                _already_there(disk_out, request)
                accepted.append(disk)
                continue
        except ThrottledError as e:
            return PutBack(e.retry_after, f"throttled by Azure: {e}", rest)
        headroom = compute.write_headroom(request.subscription_id)
        if headroom is not None and headroom < ctx.settings.min_write_headroom:
            return PutBack(HEADROOM_WAIT_SECONDS, f"write headroom {headroom} is low", rest)
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
            # Azure holds the work back (a 429, or the 5-minute window of 7 snapshots per
            # disk): this disk's row says for how long; the rest goes back on the queue.
            disk_out.waiting(
                "snapshot-create",
                f"held by Azure: {e}",
                distinct=ctx.put_backs,
                details={"heldSeconds": e.retry_after, "putBacks": ctx.put_backs},
            )
            return PutBack(e.retry_after, f"throttled by Azure: {e}", rest)
        except LimitReachedError as e:
            # Lifts when snapshots are deleted: the next night's prunes make room.
            disk_out.waiting("snapshot-create", e.reason, details={"error": str(e)[:1000]})
            continue
        except RefusedError as e:
            disk_out.blocked("snapshot-create", str(e))
            continue
        _accepted(disk_out, request)
        accepted.append(disk)
    if accepted and (request.onboarding or _maybe_after_confirm(ctx)):
        # Confirmed by its own step after the create window: onboarding's sets always, and a
        # night's set Azure held back so long that the night's confirm may have come first.
        confirm = RotationConfirmVmRequest.model_validate(
            request.model_copy(update={"disks": accepted}).model_dump(
                exclude={"recheck"}, by_alias=True
            )
        )
        return Send(
            Outgoing(
                confirm,
                key=f"rotation-confirm-vm:{request.vm_id.lower()}:{request.slot}",
                delay=ctx.settings.confirm_delay_seconds,
            )
        )
    return Done()


def _ahead_of_pace(
    ctx: Context, subscription: str, message_writes: int, region: str | None = None
) -> float:
    """0 when a write may go now; else the seconds to put it back for (`shared/pacing.py`).

    A create counts against the subscription's ARM writes and its region's snapshot budget, a
    delete (no region) against the ARM deletes, which prunes are paced with. The writes one
    message carries are paced as one step: they may always go together."""
    s = ctx.settings
    sub = subscription.lower()
    if region is None:
        budgets = [Budget(("deletes", sub), s.arm_writes_per_second)]
    else:
        budgets = [
            Budget(("writes", sub), s.arm_writes_per_second),
            Budget(("snapshots", sub, region.lower()), s.snapshot_writes_per_second),
        ]
    return ctx.rt.pace.take(*budgets, catch_up=s.pace_catch_up, at_least=message_writes)


def _maybe_after_confirm(ctx: Context) -> bool:
    """Work that was put back and is older than the confirm delay: the night's confirm, due
    the create window plus that delay after the plan, may have listed before it was done."""
    if ctx.put_backs == 0 or ctx.created is None:
        return False
    age = (ctx.now() - ctx.created).total_seconds()
    return age > ctx.settings.confirm_delay_seconds


def _vm_out(ctx: Context, request: RotationVmRequest | RotationConfirmVmRequest) -> Outcomes:
    return ctx.out.bind(
        job=Job.ONBOARDING if request.onboarding else Job.ROTATION,
        subscription_id=request.subscription_id,
        resource_group=request.resource_group,
        vm_name=request.vm_name,
        policy=request.policy,
        details={"slot": request.slot, "setId": request.set_id, "vmId": request.vm_id},
    )


def _accepted(disk_out: Outcomes, request: RotationVmRequest) -> None:
    """Azure took the PUT (or the snapshot exists): the night's row; onboarding's waits."""
    if request.onboarding:
        disk_out.row("snapshot-create", Status.UNCONFIRMED, "accepted; confirmed after the window")
    else:
        disk_out.succeeded("snapshot-create")


def _already_there(disk_out: Outcomes, request: RotationVmRequest) -> None:
    """The GET before the PUT found tonight's snapshot (a redelivery, a duplicate event, work
    put back after Azure took it): the night's row is `already-taken`, never a second
    `succeeded`; the night's confirm counts the disk as done from its list all the same.
    Onboarding's set says `unconfirmed` as when it PUTs: its confirm step writes the one
    `succeeded` row (the same row id however many deliveries confirm it)."""
    if request.onboarding:
        _accepted(disk_out, request)
    else:
        disk_out.row(
            "snapshot-create",
            Status.ALREADY_TAKEN,
            "already there: an earlier delivery took it",
        )


def _outside_service(ctx: Context, request: RotationVmRequest) -> str | None:
    """Before any read: the subscription is served and every disk is in it."""
    subscription = request.subscription_id.lower()
    if subscription not in ctx.settings.subscriptions:
        return f"subscription {subscription} is not one Lifeboat serves"
    for disk in request.disks:
        parts = disk.disk_id.strip("/").split("/")
        if len(parts) != 8 or parts[1].lower() != subscription or parts[6].lower() != "disks":
            return f"{disk.disk_id!r} is not a disk of subscription {subscription}"
        if parts[3].lower() in ctx.settings.drill_groups:
            return f"{disk.disk_id} is in a drill resource group"
    return None


def _older_than_fresh(ctx: Context) -> bool:
    if ctx.created is None:
        return False
    age = (ctx.now() - ctx.created).total_seconds()
    return age > float(ctx.settings.message_freshness_minutes) * 60


def _out_of_scope(ctx: Context, request: RotationVmRequest) -> str | None:
    """Why a VM planned a while ago is no longer to be snapshotted now (one GET of the VM)."""
    vm = ctx.compute.get_vm(request.vm_id)
    why = vm_out_of_scope(
        vm,
        subscriptions=ctx.settings.subscriptions,
        drill_groups=ctx.settings.drill_groups,
        policies=ctx.policies,
        policy=request.policy,
    )
    if why is not None or vm is None:
        return why
    attached = {a.disk_id.lower() for a in vm.attachments if a.disk_id}
    detached = [d.disk_id for d in request.disks if d.disk_id.lower() not in attached]
    if detached:
        return f"disk(s) no longer attached: {', '.join(detached)}"
    return None


# --------------------------------------------------------------------------------- confirm


def confirm_night(request: RotationConfirmRequest, ctx: Context) -> Result:
    """After the create window: one list of the snapshot group says which of tonight's
    snapshots are good; prunes go out for the disks whose snapshot is; one run-end.

    A snapshot that is not there was never taken: its rotation-vm already said why, as its
    snapshot-create row (`blocked` by a refusal, `waiting` on a limit or on Azure's hold,
    `failed` by dispatch on the last delivery), since only what Azure accepted exists in the
    list. So the confirm reports it `unconfirmed`, never `failed`: a blocked create stays blocked
    for the night. Azure's word at the point of the PUT is the record; the confirm does not need
    to read tonight's rows. A set Azure held past this confirm is confirmed by its own
    confirm-vm step (see `snapshot_vm`). A snapshot that is there but not good failed.
    """
    subscription = request.subscription_id
    config = rotation_config(ctx.rt, subscription)
    policies = ctx.policies
    out = ctx.out.bind(subscription_id=subscription)
    compute = ctx.compute
    vms: list[Vm] | None = None
    disks: dict[str, Disk] | None = None
    try:
        vms = compute.list_vms(subscription)
        disks = {d.id.lower(): d for d in compute.list_disks(subscription)}
        snapshots = compute.list_snapshots(subscription, config.snapshot_group)
    except UnavailableError as e:
        if ctx.put_backs < READ_TRIES:
            return _read_again(ctx, "the confirm's lists", e)
        return _not_confirmed(ctx, request, out, vms, disks, e)
    plan = plan_night(vms, disks, snapshots, policies, config, parse_slot(request.slot))
    by_name = {s.name.lower(): s for s in snapshots}
    due: list[PlannedDisk] = []
    failed = missing = 0
    for vm_plan in plan.vms:
        vm_out = out.bind(vm=vm_plan.vm, policy=vm_plan.policy)
        for action in vm_plan.creates:
            due.append(
                PlannedDisk(disks[action.disk_id.lower()], policies.policies[vm_plan.policy])
            )
            details = {"snapshotName": action.snapshot_name, "slot": request.slot}
            tonight = by_name.get(action.snapshot_name.lower())
            if tonight is None:
                missing += 1
                vm_out.row(
                    "snapshot-create",
                    Status.UNCONFIRMED,
                    NOT_TAKEN,
                    resource_id=action.disk_id,
                    details=details,
                )
                continue
            problem = _not_good(tonight)
            if problem is not None:
                failed += 1
                vm_out.failed(
                    "snapshot-create", problem, resource_id=action.disk_id, details=details
                )
    prunes = plan_prunes(due, disks, snapshots, policies, config, request.slot)
    planned = sum(len(p.creates) for p in plan.vms)
    _record_prunes(out, prunes, dry_run=False)
    good = planned - failed - missing
    out.row(
        "run-end",
        Status.FAILED if failed or prunes.refused else Status.SUCCEEDED,
        count=good,
        details={
            "slot": request.slot,
            "totals": {
                "vms": len(plan.vms),
                "snapshotsPlanned": planned,
                "snapshotsGood": good,
                "snapshotsFailed": failed,
                "snapshotsNotTaken": missing,
                "disksSkipped": sum(len(p.skips) for p in plan.vms) + len(plan.skipped_disks),
                "vmsSkipped": len(plan.skipped_vms),
                "prunesDue": sum(len(p.delete) for p in prunes.disks),
                "pruneRefused": bool(prunes.refused),
            },
        },
    )
    if prunes.refused:
        return Done("prunes refused")
    return Send(
        *prune_messages(prunes, subscription, request.slot, ctx.settings.arm_writes_per_second)
    )


def prune_messages(
    prunes: PrunePlan, subscription: str, slot: str, per_second: float
) -> list[Outgoing]:
    """The night's deletes as paced prune messages, several disks a message.

    Each message holds whole disks' victims of one region, up to DELETES_PER_MESSAGE (a disk
    with more goes alone, in chunks of PRUNE_CHUNK, as the planner caps a disk at Azure's 500
    to one chunk); regions take turns. Deletes have their own ARM bucket, per subscription:
    message after message is sent `per_second` apart for each delete it holds, so the night's
    deletes keep to the budget while the queue holds a few hundred messages at full size,
    not one per disk.
    """
    by_region: dict[str, list[list[PruneDisk]]] = {}
    for prune in prunes.disks:
        ids = [r.snapshot.id for r in prune.delete]
        if not ids:
            continue
        region = (prune.delete[0].snapshot.location or "").lower()
        batches = by_region.setdefault(region, [])
        for start in range(0, len(ids), PRUNE_CHUNK):
            entry = PruneDisk(
                sourceId=prune.source_id,
                policy=prune.policy,
                snapshotIds=ids[start : start + PRUNE_CHUNK],
                orphan=prune.orphan,
            )
            held = sum(len(d.snapshot_ids) for d in batches[-1]) if batches else None
            if held is None or held + len(entry.snapshot_ids) > DELETES_PER_MESSAGE:
                batches.append([entry])
            else:
                batches[-1].append(entry)
    # Regions take turns, so each region's share of the deletes spreads over the whole phase.
    turns = [
        (region, number, batch)
        for region, batches in sorted(by_region.items())
        for number, batch in enumerate(batches)
    ]
    turns.sort(key=lambda t: (t[1] / len(by_region[t[0]]), t[0]))
    outgoing: list[Outgoing] = []
    cursor = 0.0
    for region, number, batch in turns:
        outgoing.append(
            Outgoing(
                RotationPruneRequest(subscriptionId=subscription, slot=slot, disks=batch),
                key=f"rotation-prune:{subscription}:{region}:{slot}:{number}",
                delay=cursor,
                early=True,
            )
        )
        cursor += sum(len(d.snapshot_ids) for d in batch) / per_second
    return outgoing


NOT_TAKEN = (
    "not found after the create window: never taken (its snapshot-create row says why) "
    "or taken later; its prunes wait for the next night"
)


def _not_good(tonight: Snapshot | None) -> str | None:
    """Why a snapshot that should exist after the create window is not good (None: it is)."""
    if tonight is None:
        return "not found after the create window"
    if tonight.good:
        return None
    return (
        f"not good after the create window (provisioningState {tonight.provisioning_state}, "
        f"completion {tonight.completion_percent})"
    )


def _not_confirmed(
    ctx: Context,
    request: RotationConfirmRequest,
    out: Outcomes,
    vms: list[Vm] | None,
    disks: dict[str, Disk] | None,
    error: UnavailableError,
) -> Result:
    """Azure would not list what the confirm needs: every disk it cannot confirm says so, with
    the cause; no prunes tonight (the next night's confirm plans them again); never poison."""
    reason = (
        f"not confirmed: Azure did not answer the confirm's lists after {ctx.put_backs + 1} "
        f"tries ({error}); prunes wait for the next night"
    )
    details = {"slot": request.slot, "putBacks": ctx.put_backs}
    planned = 0
    if vms is not None and disks is not None:  # the snapshot list failed: the plan is known
        config = rotation_config(ctx.rt, request.subscription_id)
        plan = plan_night(vms, disks, [], ctx.policies, config, parse_slot(request.slot))
        for vm_plan in plan.vms:
            vm_out = out.bind(vm=vm_plan.vm, policy=vm_plan.policy)
            for action in vm_plan.creates:
                planned += 1
                vm_out.row(
                    "snapshot-create",
                    Status.UNCONFIRMED,
                    reason,
                    resource_id=action.disk_id,
                    details={**details, "snapshotName": action.snapshot_name},
                )
    else:  # not even the VMs or disks: the subscription as a whole
        out.row("snapshot-create", Status.UNCONFIRMED, reason, details=details)
    out.failed("run-end", reason, count=0, details={**details, "unconfirmed": planned})
    return Done("not confirmed")


def confirm_vm(request: RotationConfirmVmRequest, ctx: Context) -> Result:
    """One VM's set after its create window: one GET per snapshot, a row per disk.

    For sets taken outside the night (onboarding): no list of the subscription, no run-end, no
    prunes; the night's confirm does those.
    """
    out = _vm_out(ctx, request)
    group = ctx.settings.snapshot_group(request.subscription_id)
    for index, disk in enumerate(request.disks):
        reads = ctx.compute.read_headroom(request.subscription_id)
        if reads is not None and reads < MIN_READ_HEADROOM:
            rest = request.model_copy(update={"disks": request.disks[index:]})
            return PutBack(HEADROOM_WAIT_SECONDS, f"read headroom {reads} is low", rest)
        snapshot_id = snapshot_id_of(request.subscription_id, group, disk.snapshot_name)
        problem = _not_good(ctx.compute.get_snapshot(snapshot_id))
        disk_out = out.bind(
            region=disk.location,
            resource_id=disk.disk_id,
            details={"snapshotName": disk.snapshot_name, "lun": disk.lun, "confirmed": True},
        )
        if problem is None:
            disk_out.succeeded("snapshot-create")
        else:
            disk_out.failed("snapshot-create", problem)
    return Done()


def _record_prunes(out: Outcomes, prunes: PrunePlan, *, dry_run: bool) -> None:
    blocks: list[tuple[Block, str | None]] = []
    for prune in prunes.disks:
        blocks += [(b, prune.policy) for b in prune.blocked]
        for hold in prune.held:
            _snapshot_out(out, hold.snapshot, prune.policy).row(
                "snapshot-delete",
                Status.HELD,
                hold.reason,
                details={"heldBy": "tag", "hold": hold_of(hold.snapshot)},
            )
        if prune.remaining:
            out.bind(resource_id=prune.source_id, policy=prune.policy).waiting(
                "snapshot-delete",
                f"{prune.remaining} snapshot(s) removed by retention remain for the next nights: "
                "at most the per-disk cap is deleted a night, oldest first",
                count=prune.remaining,
                details={"remaining": prune.remaining, "atLimit": prune.at_limit},
            )
        if dry_run and not prunes.refused:
            for removal in prune.delete:
                _snapshot_out(out, removal.snapshot, prune.policy).planned(
                    "snapshot-delete", removal.reason, dry_run=True
                )
    for block, policy in blocks:
        _snapshot_out(out, block.snapshot, policy).blocked("snapshot-delete", block.reason)
    _record_lookalikes(out, prunes.suspicious)
    if prunes.refused:
        out.blocked(
            "snapshot-delete",
            f"run refused: {prunes.refused}",
            count=sum(len(p.delete) for p in prunes.disks),
        )


LOOKALIKES_LISTED = 20


def _record_lookalikes(out: Outcomes, lookalikes: tuple[Block, ...]) -> None:
    """One row a night for the snapshots in Lifeboat's group named like its own that fail
    ownership: never deleted, not an alert; `lifeboat plan` lists them all with the rule."""
    if not lookalikes:
        return
    rules = Counter(b.reason for b in lookalikes)
    out.skipped(
        "lookalike-snapshots",
        f"{len(lookalikes)} snapshot(s) named like Lifeboat's fail ownership: not Lifeboat's, "
        "never deleted (lifeboat plan lists them)",
        count=len(lookalikes),
        resource_group=lookalikes[0].snapshot.resource_group,
        details={
            "rules": dict(sorted(rules.items())),
            "snapshots": [
                {"name": b.snapshot.name, "rule": b.reason}
                for b in sorted(lookalikes, key=lambda b: b.snapshot.name)[:LOOKALIKES_LISTED]
            ],
        },
    )


def _snapshot_out(out: Outcomes, snapshot: Snapshot, policy: str | None) -> Outcomes:
    return out.bind(
        subscription_id=snapshot.subscription_id,
        region=snapshot.location,
        resource_group=snapshot.resource_group,
        resource_id=snapshot.id,
        policy=policy,
        details={
            "snapshotName": snapshot.name,
            "sourceId": snapshot.source_resource_id,
            "timeCreated": format_time(snapshot.time_created) if snapshot.time_created else None,
        },
    )


# ----------------------------------------------------------------------------------- prune


def prune_snapshots(request: RotationPruneRequest, ctx: Context) -> Result:
    """Delete what retention removed, each only after Azure shows that the rules still allow it.

    A message carries several disks' victims (`prune_messages`). Before any read, every id must
    name a snapshot in a served subscription's Lifeboat group; then, per victim, a GET of the
    victim and (once per disk) of the disk's snapshot of the night: ownership from creationData,
    no hold tag, tonight's snapshot good and not the victim. A message asking for what the
    planner never would is refused whole. Throttling or low headroom puts the rest back (the
    current disk's remaining victims and the disks after it); a redelivery reads first and
    reports what an earlier delivery already deleted.
    """
    if _stale(ctx, request.slot, "rotation-prune"):
        return Done("stale")
    group = ctx.settings.snapshot_group(request.subscription_id)
    served = ctx.settings.subscriptions
    for snapshot_id in request.snapshot_ids:
        wrong = where_lifeboat_deletes(snapshot_id, subscriptions=served, snapshot_group=group)
        if wrong is not None:
            return Refuse(f"rotation-prune names what Lifeboat never deletes: {wrong.reason}")
    pruning = _Pruning(ctx, request, group, recheck=ctx.redelivered or request.recheck)
    for index, entry in enumerate(request.disks):
        stop = pruning.disk(index, entry)
        if stop is not None:
            return stop
    return Done()


class _Pruning:
    """One prune message's deliveries, disk by disk: the reads it shares across its disks."""

    def __init__(
        self, ctx: Context, request: RotationPruneRequest, group: str, *, recheck: bool
    ) -> None:
        self.ctx = ctx
        self.request = request
        self.group = group
        self.recheck = recheck
        self.tonight: dict[str, Snapshot | None] = {}
        # The group as listed once, only when a disk's snapshot of the night is not there (a
        # disk at Azure's 500?), less what this delivery has deleted since.
        self.listed: list[Snapshot] | None = None
        self.deleted: set[str] = set()

    def rest(self, index: int, entry: PruneDisk, at: int) -> RotationPruneRequest:
        """What is left from `entry`'s victim `at` on: put back, read first if ever tried."""
        left = entry.model_copy(update={"snapshot_ids": entry.snapshot_ids[at:]})
        disks = [left, *self.request.disks[index + 1 :]]
        return self.request.model_copy(update={"disks": disks, "recheck": self.recheck})

    def of_disk(self, source_id: str) -> list[Snapshot]:
        if self.listed is None:
            self.listed = self.ctx.compute.list_snapshots(self.request.subscription_id, self.group)
        return [
            s
            for s in self.listed
            if same_id(s.source_resource_id, source_id) and s.id.lower() not in self.deleted
        ]

    def disk(self, index: int, entry: PruneDisk) -> Result | None:
        """One disk's victims; a Result ends the delivery (put back, refused), None goes on."""
        ctx, request, compute = self.ctx, self.request, self.ctx.compute
        subscription = request.subscription_id
        out = ctx.out.bind(
            subscription_id=subscription,
            policy=entry.policy,
            details={"sourceId": entry.source_id, "slot": request.slot, "orphan": entry.orphan},
        )
        why = "orphan retention" if entry.orphan else "removed by retention"
        of_disk: list[Snapshot] | None = None  # counted once per disk, when it starts
        for at, snapshot_id in enumerate(entry.snapshot_ids):
            row = out.bind(resource_id=snapshot_id, resource_group=self.group)
            wait = _ahead_of_pace(ctx, subscription, len(self.request.snapshot_ids))
            if wait:
                return PutBack(wait, AHEAD_OF_PACE, self.rest(index, entry, at))
            headroom = compute.delete_headroom(subscription)
            if headroom is not None and headroom < ctx.settings.min_write_headroom:
                # A backlog of prunes must not empty the delete bucket and meet 429s: wait a
                # little (before reading: the reads are for the delete, stale by then).
                reason = f"delete headroom {headroom} is low"
                return PutBack(HEADROOM_WAIT_SECONDS, reason, self.rest(index, entry, at))
            reads = compute.read_headroom(subscription)
            if reads is not None and reads < MIN_READ_HEADROOM:
                # Two GETs per victim: a long prune must not empty the read bucket the night's
                # plans and confirms list with.
                reason = f"read headroom {reads} is low"
                return PutBack(HEADROOM_WAIT_SECONDS, reason, self.rest(index, entry, at))
            try:
                victim = compute.get_snapshot(snapshot_id)
                if victim is not None and not entry.orphan and victim.source_unique_id:
                    name = snapshot_name(entry.source_id, victim.source_unique_id, request.slot)
                    if name not in self.tonight:
                        self.tonight[name] = compute.get_snapshot(
                            snapshot_id_of(subscription, self.group, name)
                        )
                    if self.tonight[name] is None and of_disk is None:
                        # Maybe a disk at Azure's 500: count its snapshots as Azure lists them.
                        of_disk = self.of_disk(entry.source_id)
            except ThrottledError as e:
                reason = f"throttled by Azure: {e}"
                return PutBack(e.retry_after, reason, self.rest(index, entry, at))
            if victim is None or (victim.provisioning_state or "").lower() == "deleting":
                # An earlier delivery deleted it (report it again), or someone else did.
                if self.recheck:
                    row.succeeded("snapshot-delete", why)
                else:
                    row.row("snapshot-delete", Status.ALREADY_TAKEN, "already gone")
                continue
            name = snapshot_name(entry.source_id, victim.source_unique_id or "", request.slot)
            verdict = may_delete(
                victim,
                source_id=entry.source_id,
                tonight=self.tonight.get(name),
                orphan=entry.orphan,
                of_disk=of_disk,
            )
            if verdict is not None and verdict.forged:
                return Refuse(f"rotation-prune asks for what the rules forbid: {verdict.reason}")
            if verdict is not None:
                row.row("snapshot-delete", verdict.status, verdict.reason)
                continue
            try:
                compute.begin_delete_snapshot(snapshot_id)
            except ThrottledError as e:
                reason = f"throttled by Azure: {e}"
                return PutBack(e.retry_after, reason, self.rest(index, entry, at))
            except RefusedError as e:
                if e.code.lower() == "scopelocked":
                    row.row(
                        "snapshot-delete",
                        Status.HELD,
                        f"held by lock: {locked_scopes(e.message)}",
                        details={"heldBy": "lock", "error": str(e)[:1000]},
                    )
                else:
                    row.blocked("snapshot-delete", str(e))
                continue
            self.deleted.add(snapshot_id.lower())
            row.succeeded("snapshot-delete", why)
        return None


# ---------------------------------------------------------------------------------- helpers


_LOCKED = re.compile(r"locked:\s*(.+?)\.\s*(?:Please|$)", re.IGNORECASE | re.DOTALL)


def locked_scopes(message: str) -> str:
    """The locked scope(s) a `ScopeLocked` refusal names (ARM: "...because following scope(s)
    are locked: '<scope>'. Please remove the lock..."), or the message when it names none."""
    match = _LOCKED.search(message)
    return match.group(1).strip() if match else message


def _stale(ctx: Context, slot: str, operation: str, *, out: Outcomes | None = None) -> bool:
    """A message for a slot long past never writes: its snapshot may already be pruned."""
    age = ctx.now() - parse_slot(slot)
    if age <= timedelta(hours=ctx.settings.stale_slot_hours):
        return False
    (out or ctx.out).skipped(
        operation, f"slot {slot} is {age.total_seconds() / 3600:.0f} h old: too late to act"
    )
    return True


HANDLERS: HandlerTable = {
    RotationPlanRequest: plan_subscription,
    RotationConfirmRequest: confirm_night,
    RotationConfirmVmRequest: confirm_vm,
    RotationVmRequest: snapshot_vm,
    RotationPruneRequest: prune_snapshots,
}

TIMERS = {Timer.ROTATION: start_night}
