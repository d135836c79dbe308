"""The drill step machine: one step of one drill per message, the whole drill in the message.

    prepare -> create-disks -> create-vm -> wait-ready -> validate -> measure -> teardown -> report
    prepare -> restore -> create-vm -> ...      (a recovery-point drill: shared/drills/restore.py)

A step reads before it writes, so running one twice changes nothing. A message is a request,
never authority: every step that creates (the network, disks, the NIC, the VM) first checks that
what it creates lies in a drill group of a subscription Lifeboat drills in, and the steps that
create disks, the NIC or the VM read the drill subnet and its VNet again and run the isolation
checks just before they act, and have the source verify every disk's source (a Lifeboat snapshot
of a disk of the drill's VM) as Azure shows it now. A message that fails a check no Lifeboat step
would fail is refused (poisoned, a `refused` row); Azure changing under the drill fails it.
A step that waits for
Azure hands the drill on to itself with a delay (`Send`); the report step finishes (`Done`).
Azure's throttling propagates: dispatch puts the message back after Retry-After. A refusal that
will not heal sends the drill to teardown (or, during teardown, to its report: the sweeper tries
again after expiry). A failure anywhere goes to teardown, which deletes the drill's resources by
their `lifeboat:drill` tag, VMs first, then NICs, disks and the network Lifeboat made.
Everything happens inside the drill resource group; the group itself is never created or deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from shared.dispatch import Context, Done, Outgoing, Refuse, Result, Send
from shared.drills.source import NoRestorePoint, RecoveryPoints, SnapshotSets
from shared.isolation import isolation_problems
from shared.messages import DrillSnapshot, DrillState
from shared.model import VmStatus, format_time
from shared.names import Status, Tag
from shared.outcomes import outcome_id
from shared.policies import tag_value
from shared.ports import DrillDiskRequest, DrillNetworkRequest, DrillVmRequest, RefusedError
from shared.rules import same_id
from shared.settings import Settings

log = logging.getLogger(__name__)

# Teardown order: what holds a reference goes before what it references.
TEARDOWN_ORDER = (
    "virtualMachines",
    "networkInterfaces",
    "disks",
    "virtualNetworks",
    "networkSecurityGroups",
)
# Azure Backup's own groups (snapshot-tier recovery points): never touched, whatever matches.
BACKUP_GROUP_PREFIX = "azurebackuprg_"
TEARDOWN_LIMIT = timedelta(hours=1)  # then the drill reports and the sweeper takes over
NETWORK_PREFIX = "10.255.0.0/24"
SUBNET_NAME = "drill"
# What a drill message spares for the policy assignments it lists: with 65 disks' ids the rest
# takes up to ~45 KB of the ~48 KB a queue message holds once base64-encoded.
POLICY_LIST_CHARS = 2500

Step = Callable[[Context, DrillState, datetime], Result]


def drill_step(state: DrillState, ctx: Context) -> Result:
    """Run one step of one drill and hand the drill on (or finish it)."""
    now = ctx.now()
    if state.step not in ("teardown", "report") and now >= state.expires_at:
        state = _failed(
            state,
            f"the drill passed its maximum lifetime at "
            f"{format_time(state.expires_at)} during {state.step}",
        )
        state = _goto(state, "teardown", now)
    if state.step not in state.timings:  # the first step, timed from the drill's start
        began = now if state.timings else min(now, state.started_at)
        state = state.model_copy(update={"timings": {**state.timings, state.step: [began]}})
    steps = STEPS
    if state.source == "site-recovery":
        from shared.drills.failover import STEPS as steps
    try:
        return steps[state.step](ctx, state, now)
    except RefusedError as e:
        return _refused(state, now, e)


def step_message(state: DrillState, *, delay: float = 0.0, key: str | None = None) -> Outgoing:
    """The drill's next message: keyed by drill, step and poll, in the drill's run."""
    return Outgoing(
        state,
        key=key or f"drill:{state.drill_id}:{state.step}:{state.polls}",
        delay=delay,
        run_id=_run_id(state),
    )


def _hand_on(state: DrillState, delay: float = 0.0) -> Send:
    return Send(step_message(state, delay=delay))


def _refused(state: DrillState, now: datetime, error: RefusedError) -> Result:
    reason = f"Azure refused during {state.step}: {error.code}: {error.message}"
    if state.step in ("teardown", "report"):
        # Not healable by retrying; the sweeper tries again after expiry and reports it.
        note = f"{reason} (the sweeper retries after {format_time(state.expires_at)})"
        failed = _failed(state, note) if state.outcome != "skipped" else state
        return _hand_on(_goto(failed, "report", now))
    return _hand_on(_goto(_failed(state, reason), "teardown", now))


# ------------------------------------------------------------------------------ restore point


def source_of(ctx: Context, state: DrillState) -> SnapshotSets | RecoveryPoints:
    """What this drill restores from: Lifeboat's snapshot sets or an Azure Backup point."""
    assert state.subscription_id is not None
    if state.source == RecoveryPoints.kind:
        return RecoveryPoints(state.drill_subscription, state.drill_group)
    group = ctx.settings.snapshot_group(state.subscription_id)
    return SnapshotSets(ctx.compute, state.subscription_id, group)


def _choose(ctx: Context, state: DrillState, now: datetime) -> DrillState | Result:
    """Read the source VM and take its restore point; a Result when the drill ends here."""
    if state.vm_id is None or state.subscription_id is None:
        return _finish(state, now, "failed", "the drill names no source VM")
    vm = ctx.compute.get_vm(state.vm_id)
    if vm is None:
        return _finish(state, now, "failed", "the source VM no longer exists")
    if (vm.security_type or "").lower() == "confidentialvm":
        return _finish(
            state,
            now,
            "skipped",
            "Confidential VMs are not drilled: their disks are bound to the source VM's keys",
        )
    source = source_of(ctx, state)
    assert isinstance(source, SnapshotSets)
    point = source.choose(vm, now)
    if isinstance(point, NoRestorePoint):
        return _finish(state, now, point.outcome, point.reason)
    return state.model_copy(
        update={
            "set_slot": point.slot,
            "chosen_at": now,
            "snapshots": list(point.disks),
            "missing_disks": list(point.missing_disks),
            "vm_size": state.vm_size or vm.size,
            "os_type": vm.os_type or point.os_type,
            "security_profile": _copied_security(vm.security_profile),
            "hyper_v_generation": point.hyper_v_generation or vm.hyper_v_generation,
            "marketplace_plan": dict(vm.plan) if vm.plan else None,
        }
    )


def _copied_security(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of the source's securityProfile a restored VM keeps (no identities, no keys)."""
    if not profile:
        return None
    kept = {k: profile[k] for k in ("securityType", "uefiSettings") if profile.get(k) is not None}
    return kept or None


# ---------------------------------------------------------------------------------- the steps


def _prepare(ctx: Context, state: DrillState, now: datetime) -> Result:
    recovery_point = state.source == RecoveryPoints.kind
    if recovery_point and (state.restore is None or state.restore.item_id is None):
        from shared.drills.restore import choose_point

        chosen = choose_point(ctx, state, now)
        if not isinstance(chosen, DrillState):
            return chosen
        state = chosen
    elif not recovery_point and state.set_slot is None:
        chosen = _choose(ctx, state, now)
        if not isinstance(chosen, DrillState):
            return chosen
        state = chosen
    cloud = ctx.drills
    if state.subnet_id is None or state.network_created:
        outside = _outside_drill_group(ctx, state)
        if outside is not None:
            return _refuse(state, outside)
        request = _network_request(state)
        subnet_id = f"{request.vnet_id}/subnets/{SUBNET_NAME}"
        state = state.model_copy(update={"subnet_id": subnet_id, "network_created": True})
        network = cloud.get_network(subnet_id)
        if network is None:
            cloud.begin_create_network(request)  # the NSG first, then the VNet on a later call
            return _again(ctx, state)
        if (network.provisioning_state or "").lower() != "succeeded":
            return _again(ctx, state)
    else:
        network = cloud.get_network(state.subnet_id)
        if network is None:
            return _abort(state, now, f"the drill subnet {state.subnet_id} does not exist")
    if network.location.lower() != state.location:
        return _abort(
            state,
            now,
            f"the drill network is in {network.location}; the VM and its "
            f"snapshots are in {state.location}",
        )
    assignments = cloud.list_policy_assignments(state.drill_subscription, state.drill_group)
    state = state.model_copy(update={"policy_assignments": _listed(assignments)})
    problems = isolation_problems(network)
    if problems:
        return _abort(state, now, "isolation pre-flight failed: " + "; ".join(problems))
    return _hand_on(_goto(state, "restore" if recovery_point else "create-disks", now))


def _listed(assignments: list[Any]) -> list[str]:
    """The policy assignments on the drill scope, within what a drill message can carry."""
    listed: list[str] = []
    used = 0
    for i, a in enumerate(assignments):
        entry = f"{a.display_name or a.name} [{a.enforcement_mode or 'Default'}] at {a.scope}"
        entry = entry[:300]
        if used + len(entry) > POLICY_LIST_CHARS or len(listed) == 199:
            listed.append(
                f"... and {len(assignments) - i} more (list them with az policy assignment list)"
            )
            break
        listed.append(entry)
        used += len(entry)
    return listed


def _create_disks(ctx: Context, state: DrillState, now: datetime) -> Result:
    outside = _outside_drill_group(ctx, state)
    if outside is not None:
        return _refuse(state, outside)
    cloud = ctx.drills
    pending = False
    checked = False
    for snapshot in state.snapshots:
        disk_id = _resource_id(state, "Microsoft.Compute/disks", _disk_suffix(snapshot.lun))
        found = cloud.get_resource(disk_id)
        if _vanished(state, disk_id, found):
            return _stop(state, disk_id)
        if found is None:
            if not checked:  # once per delivery, just before its first create
                stopped = _verify_sources(ctx, state, now) or _isolated_now(ctx, state, now)
                if stopped is not None:
                    return stopped
                checked = True
            os_disk = snapshot.lun is None
            cloud.begin_create_disk(
                DrillDiskRequest(
                    id=disk_id,
                    location=state.location,
                    source_snapshot_id=snapshot.snapshot_id,
                    sku=snapshot.sku,
                    os_type=state.os_type if os_disk else None,
                    hyper_v_generation=state.hyper_v_generation if os_disk else None,
                    security_type=_security_type(state) if os_disk else None,
                    tags=_tags(state),
                )
            )
            pending = True
            continue
        state = _saw(state, disk_id)
        if found.failed:
            return _abort(
                state,
                now,
                f"disk {found.name} from {snapshot.snapshot_id} failed "
                f"to provision ({found.provisioning_state})",
            )
        if not found.succeeded:
            pending = True
    return _again(ctx, state) if pending else _hand_on(_goto(state, "create-vm", now))


def _create_vm(ctx: Context, state: DrillState, now: datetime) -> Result:
    outside = _outside_drill_group(ctx, state)
    if outside is not None:
        return _refuse(state, outside)
    cloud = ctx.drills
    nic_id = _resource_id(state, "Microsoft.Network/networkInterfaces", "nic")
    nic = cloud.get_resource(nic_id)
    if _vanished(state, nic_id, nic):
        return _stop(state, nic_id)
    if nic is None:
        stopped = _ready_for_vm(ctx, state, now)
        if stopped is not None:
            return stopped
        assert state.subnet_id is not None
        cloud.begin_create_nic(nic_id, state.location, state.subnet_id, _tags(state))
        return _again(ctx, state)
    state = _saw(state, nic_id)
    if nic.failed:
        return _abort(state, now, f"NIC {nic.name} failed to provision")
    if not nic.succeeded:
        return _again(ctx, state)
    vm_id = _resource_id(state, "Microsoft.Compute/virtualMachines", "vm")
    found = cloud.get_resource(vm_id)
    if _vanished(state, vm_id, found):
        return _stop(state, vm_id)
    if found is None:
        if not state.vm_size:
            return _abort(state, now, "the source VM's size is unknown; set vmSize in the plan")
        stopped = _ready_for_vm(ctx, state, now)
        if stopped is not None:
            return stopped
        data = tuple((s.lun, _disk_id(state, s)) for s in state.snapshots if s.lun is not None)
        os_disk = next(s for s in state.snapshots if s.lun is None)
        cloud.begin_create_vm(
            DrillVmRequest(
                id=vm_id,
                location=state.location,
                size=state.vm_size,
                os_disk_id=_disk_id(state, os_disk),
                os_type=state.os_type or "Linux",
                data_disks=data,
                nic_id=nic_id,
                security_profile=state.security_profile,
                plan=state.marketplace_plan,
                tags=_tags(state),
            )
        )
    return _hand_on(_goto(_saw(state, vm_id), "wait-ready", now), _poll_delay(ctx))


def _wait_ready(ctx: Context, state: DrillState, now: datetime) -> Result:
    vm_id = _resource_id(state, "Microsoft.Compute/virtualMachines", "vm")
    status = ctx.drills.get_vm_status(vm_id)
    if status is None or status.deleting:
        return _stop(state, vm_id)
    if status.provisioning_failed:
        return _abort(state, now, "the drill VM failed to provision")
    if status.ready:
        ready = state.model_copy(update={"ready_at": now})
        return _hand_on(_goto(ready, "validate", now))
    # From when Azure accepted the VM create: our own throttled retries are not the VM's boot.
    accepted = state.timings.get("create-vm", [state.started_at])[-1]
    waited = (now - accepted).total_seconds()
    timeout = state.boot_timeout_seconds or 1200
    if waited >= timeout:
        reason = (
            f"the VM did not become ready within {timeout} s: power state "
            f"{status.power_state or 'unknown'}, VM agent {status.agent_status or 'unknown'}"
            + (f" ({status.agent_message})" if status.agent_message else "")
        )
        checks = {"running": status.power_state == "running", "agentReady": False}
        failed = _failed(state, reason).model_copy(update={"checks": checks})
        return _hand_on(_goto(failed, "measure", now))
    return _again(ctx, state)


def _validate(ctx: Context, state: DrillState, now: datetime) -> Result:
    vm_id = _resource_id(state, "Microsoft.Compute/virtualMachines", "vm")
    status = ctx.drills.get_vm_status(vm_id)
    if status is None or status.deleting:
        return _stop(state, vm_id)
    expected = sum(1 for s in state.snapshots if s.lun is not None)
    checks = vm_checks(status, expected)
    state = state.model_copy(update={"checks": checks})
    failing = [name for name, ok in checks.items() if not ok]
    if failing:
        state = _failed(state, "validation failed: " + ", ".join(failing))
    return _hand_on(_goto(state, "measure", now))


def vm_checks(status: VmStatus, data_disks: int) -> dict[str, bool]:
    """What validate checks of a drill's VM (a site-recovery drill's test VMs too)."""
    return {
        "running": status.power_state == "running",
        "agentReady": status.ready,
        "dataDisksAttached": status.data_disks == data_disks,
    }


def recovery_point_age(state: DrillState) -> tuple[int | None, int | None]:
    """RPO: the age of the restored set (its oldest disk) when the drill chose it; its spread.

    Not from the drill's start: a set taken while the drill's first message waited on the
    queue would have a negative age.
    """
    times = [s.time_created for s in state.snapshots]
    if not times:
        return None, None
    rpo = round(((state.chosen_at or state.started_at) - min(times)).total_seconds())
    return rpo, round((max(times) - min(times)).total_seconds())


def _measure(ctx: Context, state: DrillState, now: datetime) -> Result:
    rpo, spread = recovery_point_age(state)
    if state.source == RecoveryPoints.kind:
        from shared.drills.restore import recovery_point_rpo

        rpo, spread = recovery_point_rpo(state), None
    rto = round((state.ready_at - state.started_at).total_seconds()) if state.ready_at else None
    update: dict[str, Any] = {"rpo_seconds": rpo, "spread_seconds": spread, "rto_seconds": rto}
    if state.outcome is None:
        target = state.rto_target_seconds
        if rto is not None and target is not None and rto > target:
            update.update(outcome="failed", reason=f"RTO {rto} s is over the target {target} s")
        else:
            update.update(outcome="succeeded")
    return _hand_on(_goto(state.model_copy(update=update), "teardown", now))


def _teardown(ctx: Context, state: DrillState, now: datetime) -> Result:
    # Never delete outside a drill group of a subscription Lifeboat serves, whatever a message says.
    refused = None
    if state.drill_group.lower().startswith(BACKUP_GROUP_PREFIX):
        refused = f"{state.drill_group} holds Azure Backup's instant-restore snapshots"
    elif state.drill_group not in ctx.settings.drill_groups:
        refused = f"{state.drill_group} is not a drill resource group"
    elif state.drill_subscription.lower() not in drill_subscriptions(ctx.settings):
        refused = f"subscription {state.drill_subscription} is not one Lifeboat drills in"
    if refused is not None:
        return _hand_on(_goto(_failed(state, f"teardown refused: {refused}"), "report", now))
    cloud = ctx.drills
    mine = [
        r
        for r in cloud.list_drill_resources(state.drill_subscription, state.drill_group)
        if (tag_value(r.tags, Tag.DRILL) or "").strip().lower() == state.drill_id
        and (tag_value(r.tags, Tag.MANAGED) or "").lower() == "true"
    ]
    deleted = list(state.deleted)
    for kind in TEARDOWN_ORDER:
        tier = [r for r in mine if r.kind.lower() == kind.lower()]
        if not tier:
            continue
        began = state.timings.get("teardown", [now])[0]
        if now - began >= TEARDOWN_LIMIT:
            # Stop polling; the resources keep their expiry tag and the sweeper tries again.
            names = ", ".join(sorted(r.name for r in mine)[:8])
            limit = f"{TEARDOWN_LIMIT.total_seconds() / 60:.0f} min"
            reason = (
                f"teardown did not finish within {limit}: {len(mine)} resource(s) left "
                f"({names}); the sweeper removes them after expiry"
            )
            log.warning(
                "drill %s: teardown gave up with %d resource(s) left: %s",
                state.drill_id,
                len(mine),
                names,
            )
            return _hand_on(_goto(_failed(state, reason), "report", now))
        for resource in tier:
            if (resource.provisioning_state or "").lower() != "deleting":
                cloud.begin_delete(resource.id)
            if resource.name not in deleted:
                deleted.append(resource.name)
        return _again(ctx, state.model_copy(update={"deleted": deleted[:64]}))
    return _hand_on(_goto(state, "report", now))


def drill_subscriptions(settings: Settings) -> set[str]:
    """The subscriptions a drill may delete in: those Lifeboat serves and its drill subscription."""
    allowed = {s.lower() for s in settings.subscriptions}
    if settings.drill_subscription is not None:
        allowed.add(str(settings.drill_subscription).lower())
    return allowed


def _report(ctx: Context, state: DrillState, now: datetime) -> Result:
    staging = None
    if state.source == RecoveryPoints.kind:  # what the restore left in the staging account
        from shared.drills.restore import remove_staging

        staging = remove_staging(ctx, state)
    record_report(ctx, state, staging)
    log.info("drill %s: %s (%s)", state.drill_id, state.outcome, state.reason or "ok")
    return Done(f"drill {state.drill_id} {state.outcome or 'ended'}")


def report_id(state: DrillState) -> str:
    """The report row's id: one per drill (one per sweep of a drill), however often it runs."""
    if state.swept:
        return outcome_id(state.drill_id, "sweep", format_time(state.started_at))
    return outcome_id(state.drill_id, "drill")


def step_seconds(state: DrillState) -> dict[str, int]:
    """Each timed step that ended, in whole seconds (the drill report's `steps`)."""
    return {
        name: round((span[-1] - span[0]).total_seconds())
        for name, span in state.timings.items()
        if len(span) == 2
    }


def record_report(ctx: Context, state: DrillState, staging: dict[str, Any] | None = None) -> None:
    """The drill's row (a sweep's, when the sweeper found it): what it restored and measured;
    `staging`: what the report step removed from a restore's staging account, and what it left."""
    # A sweep succeeds when it removed everything; a drill without an outcome has failed.
    status = Status(state.outcome or ("succeeded" if state.swept else "failed"))
    steps = step_seconds(state)
    details: dict[str, Any] = {
        "drillId": state.drill_id,
        "source": state.source,
        "setSlot": state.set_slot,
        "rtoTargetSeconds": state.rto_target_seconds,
        "steps": steps,
        "spreadSeconds": state.spread_seconds,
        "checks": state.checks,
        "drillGroup": state.drill_group,
        "drillSubscription": state.drill_subscription,
        "policyAssignments": state.policy_assignments,
        "deleted": state.deleted,
        "startedAt": format_time(state.started_at),
    }
    if state.missing_disks:
        details["missingDisks"] = state.missing_disks
    rpo = state.rpo_seconds
    if state.source == RecoveryPoints.kind:
        from shared.drills.restore import recovery_point_rpo, restore_details

        details.update(restore_details(state))
        details.update(staging or {})
        details.pop("spreadSeconds")
        rpo = recovery_point_rpo(state)
    elif rpo is None and state.snapshots:
        rpo, details["spreadSeconds"] = recovery_point_age(state)
    if state.manual:
        details["manual"] = True
    parts = (state.vm_id or "").split("/")
    out = ctx.out.bind(
        subscription_id=state.subscription_id or state.drill_subscription,
        region=state.location,
        resource_group=parts[4] if len(parts) > 4 else None,
        resource_id=state.vm_id,
        vm_name=state.vm_name,
        policy=state.plan,
    )
    out.row(
        "sweep" if state.swept else "drill",
        status,
        state.reason,
        id=report_id(state),
        details=details,
        rpo_seconds=rpo,
        rto_seconds=state.rto_seconds,
        count=len(state.deleted),
    )


STEPS: dict[str, Step] = {
    "prepare": _prepare,
    "restore": lambda ctx, state, now: _restore(ctx, state, now),
    "failover": lambda ctx, state, now: _refuse(state, "only a site-recovery drill fails over"),
    "create-disks": _create_disks,
    "create-vm": _create_vm,
    "wait-ready": _wait_ready,
    "validate": _validate,
    "measure": _measure,
    "teardown": _teardown,
    "report": _report,
}


def _restore(ctx: Context, state: DrillState, now: datetime) -> Result:
    from shared.drills.restore import restore_step

    return restore_step(ctx, state, now)


# ------------------------------------------------------------------ checks before each create


def _outside_drill_group(ctx: Context, state: DrillState) -> str | None:
    """Why what this step creates would not lie in a drill group Lifeboat drills in."""
    if state.drill_group not in ctx.settings.drill_groups:
        return f"{state.drill_group} is not a drill resource group"
    if state.drill_subscription.lower() not in drill_subscriptions(ctx.settings):
        return f"subscription {state.drill_subscription} is not one Lifeboat drills in"
    return None


def _refuse(state: DrillState, reason: str) -> Refuse:
    """A message no Lifeboat step wrote: nothing is created; dispatch poisons it with a row."""
    log.warning("drill %s: %s refused: %s", state.drill_id, state.step, reason)
    return Refuse(f"drill {state.drill_id} {state.step} refused: {reason}")


def _isolated_now(ctx: Context, state: DrillState, now: datetime) -> Result | None:
    """A fresh read of the drill subnet and its VNet, and the isolation checks again: None when
    the step may create; else the drill fails (a throttled read puts the step back)."""
    if state.subnet_id is None:
        return _refuse(state, "it names no drill subnet: the isolation pre-flight never ran")
    network = ctx.drills.get_network(state.subnet_id)
    if network is None:
        return _abort(state, now, f"the drill subnet {state.subnet_id} no longer exists")
    if network.location.lower() != state.location:
        return _abort(
            state, now, f"the drill network is in {network.location}, not {state.location}"
        )
    problems = isolation_problems(network)
    if problems:
        reason = f"isolation check before {state.step} failed: " + "; ".join(problems)
        return _abort(state, now, reason)
    return None


def _verify_sources(ctx: Context, state: DrillState, now: datetime) -> Result | None:
    """Every disk's source, as Azure shows it now, is what the drill's source gives for the
    drill's VM (read again); None when it is."""
    if state.vm_id is None or state.subscription_id is None:
        return _refuse(state, "it names no source VM")
    if state.subscription_id.lower() not in ctx.settings.subscriptions:
        return _refuse(state, f"subscription {state.subscription_id} is not one Lifeboat serves")
    if not any(s.lun is None for s in state.snapshots):
        return _refuse(state, "it names no source for the OS disk")
    vm = ctx.compute.get_vm(state.vm_id)
    if vm is None:
        return _abort(state, now, "the source VM no longer exists")
    if vm.subscription_id.lower() != state.subscription_id.lower():
        return _refuse(state, f"{vm.name} is not in subscription {state.subscription_id}")
    if vm.resource_group in ctx.settings.drill_groups:
        return _refuse(state, f"{vm.name} is in drill resource group {vm.resource_group}")
    source = source_of(ctx, state)
    for disk in state.snapshots:
        verdict = source.verify(vm, state.set_slot, disk)
        if verdict is None:
            continue
        if verdict.forged:
            return _refuse(state, verdict.reason)
        return _abort(state, now, f"the restore point changed: {verdict.reason}")
    return None


def _ready_for_vm(ctx: Context, state: DrillState, now: datetime) -> Result | None:
    """Before the NIC and before the VM: sources, the disks made from them, the network."""
    return (
        _verify_sources(ctx, state, now)
        or _verify_disks(ctx, state, now)
        or _isolated_now(ctx, state, now)
    )


def _verify_disks(ctx: Context, state: DrillState, now: datetime) -> Result | None:
    """The disks the VM attaches are this drill's, each made from the source the message names."""
    for snapshot in state.snapshots:
        disk_id = _disk_id(state, snapshot)
        disk = ctx.drills.get_resource(disk_id)
        if disk is None:
            return _abort(state, now, f"disk {disk_id} no longer exists")
        if (tag_value(disk.tags, Tag.DRILL) or "").strip().lower() != state.drill_id:
            return _refuse(state, f"disk {disk.name} is not this drill's")
        restored = state.source == RecoveryPoints.kind  # made by the vault, not from a snapshot
        if (
            not restored
            and disk.source_id is not None
            and not same_id(disk.source_id, snapshot.snapshot_id)
        ):
            return _refuse(
                state,
                f"disk {disk.name} was made from {disk.source_id}, not {snapshot.snapshot_id}",
            )
    return None


# ---------------------------------------------------------------------------------- plumbing


def _goto(state: DrillState, step: str, now: datetime) -> DrillState:
    """Move to `step`. Steps are timed end to end: the next one starts as this one ends, so the
    time its message waits on the queue is its own, and the steps add up to the drill's time."""
    timings = dict(state.timings)
    if state.step in timings:
        timings[state.step] = [timings[state.step][0], now]
    timings.setdefault(step, [now])
    return state.model_copy(update={"step": step, "timings": timings, "polls": 0})


def _again(ctx: Context, state: DrillState) -> Send:
    """Look again after the poll interval: Azure is still working."""
    return _hand_on(state.model_copy(update={"polls": state.polls + 1}), _poll_delay(ctx))


def _poll_delay(ctx: Context) -> float:
    return float(ctx.settings.drill_poll_seconds)


def _saw(state: DrillState, resource_id: str) -> DrillState:
    name = resource_id.rsplit("/", 1)[1]
    if name in state.seen:
        return state
    return state.model_copy(update={"seen": [*state.seen, name]})


def _vanished(state: DrillState, resource_id: str, found: Any) -> bool:
    """A resource this run saw exist is gone or going: another delivery is tearing it down."""
    if resource_id.rsplit("/", 1)[1] not in state.seen:
        return False
    return found is None or (found.provisioning_state or "").lower() == "deleting"


def _stop(state: DrillState, resource_id: str) -> Done:
    """Stop this delivery without a report: the one tearing the drill down reports it (a
    resource already being deleted counts as vanished).

    Queues deliver at least once, so two deliveries of one drill can run side by side; the
    first to tear down wins. Should a drill resource vanish for another reason, what is left
    expires and the sweeper removes and reports it.
    """
    log.warning(
        "drill %s: %s vanished during %s; another delivery is tearing the drill down",
        state.drill_id,
        resource_id,
        state.step,
    )
    return Done(f"{resource_id} vanished during {state.step}: another delivery tears it down")


def _failed(state: DrillState, reason: str) -> DrillState:
    if state.outcome == "failed" and state.reason:
        return state  # the first reason is the cause; later ones are consequences
    return state.model_copy(update={"outcome": "failed", "reason": reason[:2000]})


def _abort(state: DrillState, now: datetime, reason: str) -> Send:
    log.warning("drill %s: %s", state.drill_id, reason)
    return _hand_on(_goto(_failed(state, reason), "teardown", now))


def _finish(state: DrillState, now: datetime, outcome: str, reason: str) -> Send:
    """Nothing was created: straight to the report."""
    update = {"outcome": outcome, "reason": reason}
    return _hand_on(_goto(state.model_copy(update=update), "report", now))


def _security_type(state: DrillState) -> str | None:
    return (state.security_profile or {}).get("securityType")


def _resource_id(state: DrillState, provider_type: str, suffix: str) -> str:
    return (
        f"/subscriptions/{state.drill_subscription}/resourceGroups/{state.drill_group}"
        f"/providers/{provider_type}/{state.drill_id}-{suffix}"
    )


def _disk_id(state: DrillState, snapshot: DrillSnapshot) -> str:
    """The drill disk made for `snapshot`: named by the drill, or (a recovery-point drill) the
    disk the restore made, which the message carries as its source."""
    if state.source == RecoveryPoints.kind:
        return snapshot.snapshot_id
    return _resource_id(state, "Microsoft.Compute/disks", _disk_suffix(snapshot.lun))


def _disk_suffix(lun: int | None) -> str:
    return "osdisk" if lun is None else f"lun{lun}"


def _network_request(state: DrillState) -> DrillNetworkRequest:
    return DrillNetworkRequest(
        vnet_id=_resource_id(state, "Microsoft.Network/virtualNetworks", "vnet"),
        nsg_id=_resource_id(state, "Microsoft.Network/networkSecurityGroups", "nsg"),
        location=state.location,
        address_prefix=NETWORK_PREFIX,
        subnet_name=SUBNET_NAME,
        tags=_tags(state),
    )


def _tags(state: DrillState) -> dict[str, str]:
    return {
        Tag.MANAGED: "true",
        Tag.DRILL: state.drill_id,
        Tag.EXPIRES: format_time(state.expires_at.replace(microsecond=0)),
        Tag.RUN: _run_id(state),
    }


def _run_id(state: DrillState) -> str:
    return state.run_id or state.drill_id


# The plumbing the recovery-point steps (shared/drills/restore.py) build on.
abort = _abort
again = _again
copied_security = _copied_security
failed = _failed
finish = _finish
goto = _goto
hand_on = _hand_on
isolated_now = _isolated_now
outside_drill_group = _outside_drill_group
refuse = _refuse
tags_of = _tags
