"""Onboarding a VM that was just written: take its first snapshot set, tag it if asked.

Event Grid says only that something wrote the VM, and it says so at least once, more often
twice on creation, and again on every update. Onboarding therefore reads the VM's current state
and acts only on what holds now: a VM created within the last day whose policy asks for a
snapshot on creation gets one snapshot set, named by its creation minute (so every event about
the same creation names the same snapshots); a new untagged VM gets the default policy tag when
a setting asks for it, through the Tags API (a tags write, which onboarding ignores). Nothing an
event claims is trusted beyond the VM's id. The set is confirmed after its create window by
rotation's `confirm_vm` (one GET per snapshot), which reports each disk's snapshot.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from shared import verification
from shared.dispatch import Context, Done, HandlerTable, Outgoing, Result, Send
from shared.messages import OnboardingRequest
from shared.model import Disk, Vm
from shared.names import Job, Tag
from shared.planning import RotationConfig, drill_resource, plan_night
from shared.policies import has_tag
from shared.rotation import rotation_config, vm_request
from shared.snapshots import slot_of

log = logging.getLogger(__name__)

# A write event on a VM created longer ago than this is an update, not a creation.
CREATION_WINDOW = timedelta(hours=24)


def onboard_vm(request: OnboardingRequest, ctx: Context) -> Result:
    out = ctx.out.bind(
        job=Job.ONBOARDING,
        subscription_id=request.subscription_id,
        resource_group=request.resource_group,
        resource_id=request.resource_id,
        vm_name=request.vm_name,
        details={"eventId": request.event_id, "correlationId": request.correlation_id},
    )
    compute = ctx.compute
    vm = compute.get_vm(request.resource_id)
    if vm is None:
        out.skipped("vm-seen", "the VM no longer exists")
        return Done("gone")
    config = rotation_config(ctx.rt, vm.subscription_id)
    if vm.resource_group.lower() in config.drill_groups:
        out.skipped("vm-seen", "in a drill resource group")
        return Done("drill group")
    drill = drill_resource(vm.tags)
    if drill is not None:
        out.skipped("vm-seen", f"a drill's test VM ({Tag.DRILL}={drill})")
        return Done("drill's test VM")
    if _on_drill_network(ctx, vm, config):
        out.skipped("vm-seen", "attached to a drill network")
        return Done("drill network")
    out.succeeded("vm-seen")
    policies = ctx.policies
    mistake = policies.tag_mistake(vm.tags)
    if mistake is not None:
        # Its owner chose something (a misspelt key, an unknown policy): the default would hide
        # the mistake, so the VM is left as it is and the row says what to fix.
        out.skipped("tag-default-policy", mistake.reason, details={"skip": mistake.kind})
    elif (
        ctx.settings.tag_default_policy
        and policies.default is not None
        and not has_tag(vm.tags, Tag.POLICY)
        and _is_new(ctx, vm)
    ):
        if not ctx.settings.dry_run:
            compute.merge_tags(vm.id, {Tag.POLICY: policies.default})
        vm = dataclasses.replace(vm, tags={**vm.tags, Tag.POLICY: policies.default})
        out.succeeded("tag-default-policy", policy=policies.default)
    # Azure Backup (verification): a new in-scope VM's protection is checked at once; enabling
    # it comes with a later check of the first recovery point.
    backup_checks = verification.check_new_vm(ctx, vm) if _is_new(ctx, vm) else []
    policy, why = policies.for_tags(vm.tags)
    if policy is None or not policy.snapshot_on_create or not _is_new(ctx, vm):
        reason = why if policy is None else "not new, or the policy does not ask"
        log.info("onboarding %s: no snapshot on create (%s)", vm.id, reason)
        return Send(*backup_checks) if backup_checks else Done(reason)
    assert vm.time_created is not None
    slot = slot_of(vm.time_created.replace(second=0, microsecond=0))
    return Send(*_first_snapshot_set(ctx, vm, config, slot), *backup_checks)


def _first_snapshot_set(ctx: Context, vm: Vm, config: RotationConfig, slot: str) -> list[Outgoing]:
    """The night planner decides what can be snapshotted, exactly as it does every night."""
    disks: dict[str, Disk] = {}
    for attachment in vm.attachments:
        if attachment.disk_id:
            disk = ctx.compute.get_disk(attachment.disk_id)
            if disk is not None:
                disks[disk.id.lower()] = disk
    occurrence = vm.time_created or ctx.now()
    plan = plan_night([vm], disks, [], ctx.policies, config, occurrence)
    log.info("onboarding %s: first snapshot set %s", vm.id, slot)
    return [
        Outgoing(
            # Every event about a creation asks for the same set: read before any PUT.
            vm_request(vm_plan, vm.subscription_id, slot, onboarding=True, recheck=True),
            key=f"onboarding-snapshot:{vm.id.lower()}:{slot}",
        )
        for vm_plan in plan.vms
        if vm_plan.creates
    ]


def _on_drill_network(ctx: Context, vm: Vm, config: RotationConfig) -> bool:
    """A new VM whose primary NIC is in a subnet of a network in a drill group: a Site Recovery
    test VM between its creation and the drill's tag (Site Recovery makes test VMs in the item's
    recovery group, which may also hold real failovers, so the group cannot tell). Read only
    while site-recovery drills are on: nothing else puts a VM outside drill groups on them."""
    if not ctx.settings.site_recovery_drills or not _is_new(ctx, vm):
        return False
    subnet = ctx.drills.get_primary_subnet(vm.id)
    parts = (subnet or "").strip("/").split("/")
    return len(parts) == 10 and parts[3].lower() in config.drill_groups


def _is_new(ctx: Context, vm: Vm) -> bool:
    return vm.time_created is not None and ctx.now() - vm.time_created <= CREATION_WINDOW


HANDLERS: HandlerTable = {OnboardingRequest: onboard_vm}
