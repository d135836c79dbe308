"""Onboarding a VM that was just written: take its first snapshot set, tag it if asked.

Event Grid says only that something wrote the VM, and it says so at least once, more often
twice on creation, and again on every update. Onboarding therefore reads the VM's current state
and acts only on what holds now: a VM created within the last day whose policy asks for a
snapshot on creation gets one snapshot set, named by its creation minute (so every event about
the same creation names the same snapshots); a new untagged VM gets the default policy tag when
a setting asks for it, through the Tags API (a tags write, which onboarding ignores). Nothing an
event claims is trusted beyond the VM's id.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from shared import messages, verification
from shared.messages import (
    DiskSnapshot,
    Envelope,
    OnboardingRequest,
    Payload,
    RotationVmRequest,
    expect,
)
from shared.model import Disk, Job, Outcome, Status, Vm
from shared.planning import RotationConfig, plan_night
from shared.policies import POLICY_TAG, has_tag
from shared.ports import Runtime, ThrottledError
from shared.rotation import VM_QUEUE, rotation_config
from shared.snapshots import slot_of
from shared.worker import enqueue

log = logging.getLogger(__name__)

# A write event on a VM created longer ago than this is an update, not a creation.
CREATION_WINDOW = timedelta(hours=24)


def onboard_vm(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, OnboardingRequest)
    compute = rt.compute
    if compute is None:
        _report(rt, envelope, request, "vm-seen", Status.SUCCEEDED, None)
        return
    try:
        vm = compute.get_vm(request.resource_id)
    except ThrottledError as e:
        # An Event Grid driven message: let the host retry it after a pause.
        raise RuntimeError(f"throttled reading {request.resource_id}: {e}") from e
    if vm is None:
        _report(rt, envelope, request, "vm-seen", Status.SKIPPED, "the VM no longer exists")
        return
    config = rotation_config(rt, vm.subscription_id)
    if vm.resource_group.lower() in config.drill_groups:
        _report(rt, envelope, request, "vm-seen", Status.SKIPPED, "in a drill resource group")
        return
    _report(rt, envelope, request, "vm-seen", Status.SUCCEEDED, None)
    policies = rt.need_policies()
    if (
        rt.settings.tag_default_policy
        and policies.default is not None
        and not has_tag(vm.tags, POLICY_TAG)
        and _is_new(rt, vm)
    ):
        if not rt.settings.dry_run:
            compute.merge_tags(vm.id, {POLICY_TAG: policies.default})
        vm = dataclasses.replace(vm, tags={**vm.tags, POLICY_TAG: policies.default})
        _report(
            rt,
            envelope,
            request,
            "tag-default-policy",
            Status.SUCCEEDED,
            None,
            policy=policies.default,
        )
    if _is_new(rt, vm):
        # Azure Backup (verification): a new in-scope VM's protection is checked at once.
        verification.check_new_vm(rt, envelope, vm)
    policy, why = policies.for_tags(vm.tags)
    if policy is None or not policy.snapshot_on_create or not _is_new(rt, vm):
        log.info(
            "onboarding %s: no snapshot on create (%s)",
            vm.id,
            why if policy is None else "not new, or the policy does not ask",
        )
        return
    assert vm.time_created is not None
    _first_snapshot_set(
        rt, envelope, vm, config, slot_of(vm.time_created.replace(second=0, microsecond=0))
    )


def _first_snapshot_set(
    rt: Runtime, envelope: Envelope, vm: Vm, config: RotationConfig, slot: str
) -> None:
    compute = rt.need_compute()
    disks: dict[str, Disk] = {}
    for attachment in vm.attachments:
        if attachment.disk_id:
            disk = compute.get_disk(attachment.disk_id)
            if disk is not None:
                disks[disk.id.lower()] = disk
    # The night planner decides what can be snapshotted, exactly as it does every night.
    occurrence = vm.time_created or rt.clock.now()
    plan = plan_night([vm], disks, [], rt.need_policies(), config, occurrence)
    for vm_plan in plan.vms:
        if not vm_plan.creates:
            continue
        request = RotationVmRequest(
            subscriptionId=vm.subscription_id,
            vmId=vm.id,
            vmName=vm.name,
            resourceGroup=vm.resource_group,
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
            onboarding=True,
        )
        message = messages.make_envelope(
            "rotation-vm",
            request,
            run_id=envelope.run_id,
            idempotency_key=f"onboarding-snapshot:{vm.id.lower()}:{slot}",
            created=rt.clock.now(),
        )
        enqueue(rt, VM_QUEUE, message, job=Job.ONBOARDING)
        log.info("onboarding %s: first snapshot set %s queued", vm.id, slot)


def _is_new(rt: Runtime, vm: Vm) -> bool:
    return vm.time_created is not None and rt.clock.now() - vm.time_created <= CREATION_WINDOW


def _report(
    rt: Runtime,
    envelope: Envelope,
    request: OnboardingRequest,
    operation: str,
    status: Status,
    reason: str | None,
    *,
    policy: str | None = None,
) -> None:
    rt.reporter.report(
        [
            Outcome(
                time=rt.clock.now(),
                run_id=envelope.run_id,
                job=Job.ONBOARDING,
                operation=operation,
                status=status,
                subscription_id=request.subscription_id,
                resource_group=request.resource_group,
                resource_id=request.resource_id,
                vm_name=request.vm_name,
                policy=policy,
                reason=reason,
                dry_run=rt.settings.dry_run,
                details={
                    "eventId": request.event_id,
                    "correlationId": request.correlation_id,
                    "messageId": envelope.id,
                },
            )
        ]
    )
