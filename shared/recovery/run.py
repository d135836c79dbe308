"""Run a recovery: read, decide, then apply the plan through the `RecoveryCloud` port.

    gather (reads) -> decide (pure, planning.py) -> [the operator confirms] -> execute -> report

`execute` polls Azure until each step is done (a write starts Azure's work; the step reads until
it is there), times each step on the given clock and ends with a `Result`: RTO by step and in
total (from the first write to the VM being up), RPO (the recovery's start minus the source's
time: the set's, or the recovery point's). From a recovery point the first step is the restore
(shared/recovery/points.py), whose disks then take the place of a set's. The `lifeboat:recovery`
marker on the VM is removed however the recovery ends. A failure leaves what was created in place
and says what it was: a recovery never deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.model import DrillResource
from shared.names import Tag
from shared.policies import tag_value
from shared.ports import Backup, Clock, DrillDiskRequest, DrillVmRequest, RefusedError
from shared.recovery.model import NewDisk, Plan, RecoveryVm, Refusal, Result, SourceDisk
from shared.recovery.planning import Facts, Request, decide, names_of, vm_refusal
from shared.recovery.points import (
    RestoreFailedError,
    StagingAccounts,
    point_restore,
    restore_disks,
)
from shared.recovery.ports import PreconditionFailedError, RecoveryCloud
from shared.recovery.sources import NoSetError, choose_set, snapshot_sets
from shared.snapshots import slot_of

log = logging.getLogger(__name__)

OnStep = Callable[[str], None]


class RecoveryFailedError(Exception):
    """A step could not finish; the message says which and why."""


def prepare(
    cloud: RecoveryCloud,
    request: Request,
    snapshot_group: str,
    now: datetime,
    *,
    backup: Backup | None = None,
    staging_accounts: StagingAccounts = lambda subscription, region: None,
) -> Plan | Refusal:
    """Read what the recovery needs and decide (GETs and lists only: nothing is written).

    From a recovery point (`request.recovery_point`) it reads the VM's backup item and the point
    through `backup`, and takes `request.staging_account_id` or else `staging_accounts`."""
    vm = cloud.get_vm(request.vm_id)
    if vm is None:
        return Refusal(
            f"VM {request.vm_id} does not exist (or you cannot read it)",
            "Lifeboat recovers a VM it can read (docs/recover.md, what Lifeboat cannot do)",
        )
    stamp = slot_of(now)
    refused = vm_refusal(request, vm)
    if refused is not None:
        return refused
    if request.mode == "rollback":
        disks: dict[str, SourceDisk] = {}
        found: set[str] = set()
        for a in vm.attachments:
            disk = cloud.get_disk(a.disk_id) if a.disk_id else None
            if disk is None:
                continue
            disks[disk.id.lower()] = disk
            replaced = tag_value(disk.tags, Tag.REPLACES)
            if replaced and cloud.get_disk(replaced) is not None:
                found.add(replaced.lower())
        facts = Facts(vm, stamp, disks=disks, existing=frozenset(found))
        return decide(request, facts)
    chosen = None
    point = None
    if request.recovery_point is not None:
        if backup is None:
            return Refusal("recovery points need the Azure Backup client, which was not given")
        restoring = point_restore(
            backup,
            vm,
            request.recovery_point,
            target_group=request.resource_group or vm.resource_group,
            staging_account_id=request.staging_account_id,
            staging_accounts=staging_accounts,
        )
        if isinstance(restoring, Refusal):
            return restoring
        point = restoring
        sources = [a.disk_id for a in vm.attachments if a.disk_id]
    else:
        sets = snapshot_sets(
            vm, cloud.list_snapshots(vm.subscription_id, snapshot_group), snapshot_group
        )
        try:
            chosen = choose_set(vm, sets, at=request.at, wanted=request.set_id)
        except NoSetError as e:
            return Refusal(str(e))
        sources = [m.disk_id for m in chosen.members]
    disks = {}
    for source in sources:
        disk = cloud.get_disk(source)
        if disk is not None:
            disks[disk.id.lower()] = disk
    nic = cloud.get_nic(vm.nic_ids[0]) if vm.nic_ids else None
    ids = names_of(request, vm, stamp)
    wanted = [ids["vm"], ids["nic"]] if request.mode == "new-vm" else []
    wanted += (
        [ids["os" if m.lun is None else f"lun{m.lun}"] for m in chosen.members] if chosen else []
    )
    existing = frozenset(i.lower() for i in wanted if cloud.get_resource(i) is not None)
    subnet_location = None
    usages: tuple[Any, ...] = ()
    if request.mode == "new-vm":
        subnet = request.subnet_id or (nic.subnet_id if nic else None)
        subnet_location = cloud.get_subnet_location(subnet) if subnet else None
        usages = tuple(cloud.list_usages(vm.subscription_id, vm.location))
    facts = Facts(
        vm,
        stamp,
        chosen=chosen,
        disks=disks,
        nic=nic,
        subnet_location=subnet_location,
        usages=usages,
        existing=existing,
        point=point,
    )
    return decide(request, facts)


class Waiter:
    """Polls until a check passes, on `clock`, sleeping `poll_seconds` between reads."""

    def __init__(
        self,
        clock: Clock,
        sleep: Callable[[float], None],
        *,
        poll_seconds: float = 2.0,
        timeout_seconds: float = 1800.0,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds

    def until(self, what: str, check: Callable[[], bool]) -> None:
        began = self.clock.now()
        while not check():
            waited = (self.clock.now() - began).total_seconds()
            if waited >= self.timeout_seconds:
                raise RecoveryFailedError(
                    f"{what} did not finish within {self.timeout_seconds:.0f} s"
                )
            self.sleep(self.poll_seconds)


def execute(
    cloud: RecoveryCloud,
    plan: Plan,
    waiter: Waiter,
    *,
    recovery_id: str,
    caller: str,
    on_step: OnStep = lambda step: None,
    backup: Backup | None = None,
    on_wait: Callable[[str], None] = lambda text: None,
) -> Result:
    """Apply `plan`; the Result says how it ended, step by step. A plan from a recovery point
    restores its disks through `backup` first (`on_wait` hears the restore job's state)."""
    clock = waiter.clock
    started = clock.now()
    result = Result(plan, "failed", caller=caller)
    if plan.source_time is not None:
        result.rpo_seconds = round((started - plan.source_time).total_seconds())
    vm = plan.vm
    marked = False
    mark = f"{recovery_id} by {caller} at {started.isoformat(timespec='seconds')}"[:256]
    step_began = started

    def step(name: str) -> None:
        nonlocal step_began
        on_step(name)
        step_began = clock.now()

    def done(name: str) -> None:
        result.steps[name] = round((clock.now() - step_began).total_seconds(), 1)

    try:
        if plan.mode != "disks-only":
            cloud.merge_tags(vm.id, {Tag.RECOVERY: mark})
            marked = True
        if plan.restore is not None and plan.mode in ("new-vm", "swap-disks", "disks-only"):
            step("restore")
            if backup is None:
                raise RecoveryFailedError("no Azure Backup client to restore the point with")
            plan = restore_disks(
                cloud, backup, plan, waiter, recovery_id=recovery_id, result=result, on_wait=on_wait
            )
            result.plan = plan
            done("restore")
        elif plan.mode in ("new-vm", "swap-disks", "disks-only"):
            step("disks")
            _create_disks(cloud, plan, waiter, recovery_id, result)
            done("disks")
        if plan.mode == "disks-only":
            result.status = "succeeded"
        elif plan.mode == "new-vm":
            step("vm")
            _create_vm(cloud, plan, waiter, recovery_id, result)
            done("vm")
            step("agent-ready")
            _wait_ready(cloud, plan.new_vm_id or "", waiter, len(plan.disks) - 1)
            done("agent-ready")
            result.status = "succeeded"
        else:
            _swap(cloud, plan, waiter, step, done, started)
            result.status = "succeeded"
    except (RecoveryFailedError, RestoreFailedError, RefusedError, PreconditionFailedError) as e:
        result.reason = _why(e)
        log.warning("recovery %s of %s failed: %s", recovery_id, vm.name, result.reason)
    finally:
        if marked:
            try:
                cloud.delete_tags(vm.id, [Tag.RECOVERY])
            except Exception as e:  # the recovery's end stands; say the marker stayed
                note = f"the {Tag.RECOVERY} tag could not be removed ({type(e).__name__}: {e})"
                result.reason = f"{result.reason}; {note}" if result.reason else note
    if result.status == "succeeded":
        result.rto_seconds = round(sum(result.steps.values()), 1)
    return result


def _why(error: Exception) -> str:
    if isinstance(error, PreconditionFailedError):
        return (
            f"the VM changed while the recovery ran (If-Match on its ETag failed: {error}); "
            "nothing was swapped: read the plan again and rerun"
        )
    if isinstance(error, RefusedError):
        return f"Azure refused: {error.code}: {error.message}"
    return str(error)


def _create_disks(
    cloud: RecoveryCloud, plan: Plan, waiter: Waiter, recovery_id: str, result: Result
) -> None:
    vm = plan.vm
    for disk in plan.disks:
        if cloud.get_resource(disk.id) is None:
            cloud.begin_create_disk(_disk_request(vm, disk, recovery_id))
        result.created.append(disk.id)

    def all_made() -> bool:
        pending = False
        for disk in plan.disks:
            found = cloud.get_resource(disk.id)
            _fail_if_failed(found, disk.id)
            pending = pending or found is None or not found.succeeded
        return not pending

    waiter.until(f"creating {len(plan.disks)} disk(s)", all_made)


def _disk_request(vm: RecoveryVm, disk: NewDisk, recovery_id: str) -> DrillDiskRequest:
    source = disk.source_disk
    os_disk = disk.lun is None
    tags: dict[str, str] = {Tag.RECOVERED_FROM: f"{recovery_id} {vm.id}"[:256]}
    if disk.replaces:
        tags[Tag.REPLACES] = disk.replaces[:256]
    return DrillDiskRequest(
        id=disk.id,
        location=vm.location,
        source_snapshot_id=disk.snapshot_id,
        sku=source.sku,
        os_type=(source.os_type or vm.os_type) if os_disk else None,
        hyper_v_generation=source.hyper_v_generation if os_disk else None,
        security_type=vm.security_type if os_disk else None,
        tags=tags,
        zones=vm.zones,
        disk_encryption_set_id=source.disk_encryption_set_id,
    )


def _fail_if_failed(found: DrillResource | None, resource_id: str) -> None:
    if found is not None and found.failed:
        raise RecoveryFailedError(
            f"{resource_id.rsplit('/', 1)[-1]} failed to provision ({found.provisioning_state})"
        )


def _create_vm(
    cloud: RecoveryCloud, plan: Plan, waiter: Waiter, recovery_id: str, result: Result
) -> None:
    vm = plan.vm
    assert plan.new_vm_id
    assert plan.nic_id
    assert plan.subnet_id
    tags = {k: v for k, v in vm.tags.items() if k.lower() != Tag.RECOVERY}
    tags[Tag.RECOVERED_FROM] = f"{recovery_id} {vm.id}"[:256]
    if cloud.get_resource(plan.nic_id) is None:
        cloud.begin_create_nic(plan.nic_id, vm.location, plan.subnet_id, tags, plan.private_ip)
    result.created.append(plan.nic_id)

    def nic_made() -> bool:
        found = cloud.get_resource(plan.nic_id or "")
        _fail_if_failed(found, plan.nic_id or "")
        return found is not None and found.succeeded

    waiter.until("creating the NIC", nic_made)
    os_disk = next(d for d in plan.disks if d.lun is None)
    data = tuple((d.lun, d.id) for d in plan.disks if d.lun is not None)
    caching = {a.lun: a.caching for a in vm.data_disks if a.lun is not None and a.caching}
    if cloud.get_resource(plan.new_vm_id) is None:
        cloud.begin_create_vm(
            DrillVmRequest(
                id=plan.new_vm_id,
                location=vm.location,
                size=plan.size or vm.size or "",
                os_disk_id=os_disk.id,
                os_type=vm.os_type or os_disk.source_disk.os_type or "Linux",
                data_disks=data,
                nic_id=plan.nic_id,
                security_profile=_copied_security(vm.security_profile),
                plan=vm.plan,
                tags=tags,
                zones=vm.zones,
                boot_diagnostics=vm.boot_diagnostics,
                caching=caching or None,
            )
        )
    result.created.append(plan.new_vm_id)

    def vm_made() -> bool:
        found = cloud.get_resource(plan.new_vm_id or "")
        _fail_if_failed(found, plan.new_vm_id or "")
        return found is not None and found.succeeded

    waiter.until("creating the VM", vm_made)


def _copied_security(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a VM rebuilt from its OS disk keeps of the original's security profile."""
    if not profile:
        return None
    kept = {k: profile[k] for k in ("securityType", "uefiSettings") if profile.get(k) is not None}
    return kept or None


def _wait_ready(cloud: RecoveryCloud, vm_id: str, waiter: Waiter, data_disks: int) -> None:
    def ready() -> bool:
        status = cloud.get_vm_status(vm_id)
        if status is None:
            raise RecoveryFailedError(f"{vm_id.rsplit('/', 1)[-1]} no longer exists")
        if status.provisioning_failed:
            raise RecoveryFailedError(f"{vm_id.rsplit('/', 1)[-1]} failed to provision")
        return status.ready and status.data_disks == data_disks

    waiter.until(f"{vm_id.rsplit('/', 1)[-1]} to run with its VM agent ready", ready)


def _swap(
    cloud: RecoveryCloud,
    plan: Plan,
    waiter: Waiter,
    step: Callable[[str], None],
    done: Callable[[str], None],
    started: datetime,
) -> None:
    """Deallocate, swap the disks by PUT with If-Match, tag what was replaced, start."""
    vm = plan.vm
    if plan.mode == "rollback":
        swaps = {lun: old for lun, _now, old in plan.rollback}
        replaced = [now for _lun, now, _old in plan.rollback]
    else:
        swaps = {d.lun: d.id for d in plan.disks}
        replaced = [d.replaces for d in plan.disks if d.replaces]
    step("deallocate")
    cloud.begin_deallocate(vm.id)

    def deallocated() -> bool:
        status = cloud.get_vm_status(vm.id)
        return status is not None and status.power_state == "deallocated"

    waiter.until(f"deallocating {vm.name}", deallocated)
    done("deallocate")
    step("swap")
    current = cloud.get_vm(vm.id)  # the ETag after our own deallocate and tag writes
    if current is None:
        raise RecoveryFailedError(f"{vm.name} no longer exists")
    if current.etag != vm.etag and not _only_power_changed(vm, current):
        raise PreconditionFailedError(f"{vm.name}'s disks changed since the plan was made")
    os_id = swaps.get(None) or current.os_disk.disk_id or ""
    data = tuple(
        (a.lun, swaps.get(a.lun) or a.disk_id or "")
        for a in current.data_disks
        if a.lun is not None
    )
    try:
        cloud.update_vm_disks(current, os_id, data)
    except PreconditionFailedError:
        cloud.begin_start(vm.id)  # as it was before the recovery, best effort
        raise

    def swapped() -> bool:
        now = cloud.get_vm(vm.id)
        return (
            now is not None
            and (now.os_disk.disk_id or "").lower() == os_id.lower()
            and {(a.lun, (a.disk_id or "").lower()) for a in now.data_disks}
            == {(lun, d.lower()) for lun, d in data}
        )

    waiter.until(f"swapping the disks of {vm.name}", swapped)
    at = waiter.clock.now().isoformat(timespec="seconds")
    if plan.mode == "rollback":
        for disk_id in replaced:
            cloud.merge_tags(disk_id, {Tag.ROLLED_BACK_AT: at})
    else:
        for d in plan.disks:
            if d.replaces:
                cloud.merge_tags(d.replaces, {Tag.REPLACED_BY: d.id[:256], Tag.REPLACED_AT: at})
    done("swap")
    step("start")
    cloud.begin_start(vm.id)
    done("start")
    step("agent-ready")
    _wait_ready(cloud, vm.id, waiter, len(data))
    done("agent-ready")


def _only_power_changed(before: RecoveryVm, after: RecoveryVm) -> bool:
    """The VM's disks are what the plan read (its ETag moves with our own writes)."""
    return [(a.lun, (a.disk_id or "").lower()) for a in before.attachments] == [
        (a.lun, (a.disk_id or "").lower()) for a in after.attachments
    ]
