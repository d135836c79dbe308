"""Compute writes `lifeboat recover` needs: power, an in-place disk swap, and quota reads.

- `POST .../virtualMachines/{vm}/deallocate` and `.../start`: 202 with `Azure-AsyncOperation`
  (and `Location`), as Compute answers power actions. Deallocate takes effect at once (PowerState/
  deallocated, the agent gone) and its operation ends `operation_seconds` later; start moves the
  VM through its lifecycle on the stand-in clock like a VM created through ARM (starting, running
  after `boot_seconds`, agent Ready `agent_seconds` later; never for a scripted boot failure).
- `PUT .../virtualMachines/{vm}` of an existing VM whose storage profile differs: an update. With
  `If-Match`, the ETag must be the VM's (412 PreconditionFailed otherwise); the OS disk can only be
  swapped while the VM is deallocated or stopped (409 otherwise, as Azure says); every disk named
  must exist, be ready, in the VM's region and attached to no other VM. The disks it leaves lose
  `managedBy`; the tags are the body's. The same PUT with the same disks stays a no-op.
- `GET /subscriptions/{s}/providers/Microsoft.Compute/locations/{l}/usages`: VMs, total regional
  vCPUs and vCPUs per family counted from the VMs of that subscription and region (the size's
  vCPUs and family are read from its name); limits from the estate's top-level `quotas:`
  (`{westeurope: {cores: 100, virtualMachines: 50, standardDSv5Family: 40}}`), else defaults.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from emulator.arm_core import Arm, body_tags, check_tags
from emulator.errors import ArmError
from emulator.ids import compute_id, key
from emulator.model import DataDisk, Disk, VirtualMachine
from emulator.routing import ArmRequest, Reply

DEFAULT_LIMITS = {"virtualMachines": 25000, "cores": 350}
DEFAULT_FAMILY_LIMIT = 350
_SIZE = re.compile(r"^standard_([a-z]+?)(\d+)([a-z]*)(?:_v(\d+))?$", re.IGNORECASE)


def size_family(size: str) -> tuple[int, str] | None:
    """(vCPUs, quota family) of a size named like Standard_E8s_v5 (standardESv5Family)."""
    match = _SIZE.match(size.strip())
    if not match:
        return None
    series, cores, suffix, version = match.groups()
    premium = "S" if "s" in suffix.lower() and not series.upper().endswith("S") else ""
    return int(cores), f"standard{series.upper()}{premium}{'v' + version if version else ''}Family"


def power_of(vm: VirtualMachine, now: datetime) -> str:
    """The power state the instance view shows now."""
    if vm.from_arm and vm.running_at is not None:
        return "running" if now >= vm.running_at else "starting"
    return vm.power_state


def _find_vm(arm: Arm, args: tuple[str, ...]) -> VirtualMachine:
    sub_id, group_name, name = args[:3]
    arm.need_group(sub_id, group_name)
    vm = arm.cloud.vms.get(key(compute_id(sub_id, group_name, "virtualMachines", name)))
    if vm is None or vm.deleting_at is not None:
        raise ArmError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group "
            f"'{group_name}' was not found.",
        )
    return vm


def _accepted(arm: Arm, req: ArmRequest, vm: VirtualMachine, now: datetime, end: datetime) -> Reply:
    op = arm.new_operation(vm.subscription, vm.location, "operations", now, vm.id, "POST")
    op.end = end
    headers = arm.lro_headers(req, op, retry_after=False)
    headers["Retry-After"] = arm.behaviour.scaled(arm.behaviour.lro_poll_retry_after)
    return Reply(202, None, headers)


def deallocate(arm: Arm, req: ArmRequest, args: tuple[str, ...]) -> Reply:
    with arm.cloud.lock:
        vm = _find_vm(arm, args)
        arm.authorize(req, "Microsoft.Compute/virtualMachines/deallocate/action", vm.id)
        arm.check_locks(vm.id, "write")
        now = arm.clock.now()
        req.throttle_headers.update(
            arm.throttler.compute_check(vm.subscription, vm.location, "vm-writes")
        )
        # Settled: the instance view reads `power_state` again (not the create lifecycle).
        vm.provisioned_at = vm.running_at = vm.agent_at = None
        vm.power_state = "deallocated"
        vm.agent_ready = False
        end = now + timedelta(seconds=arm.behaviour.operation_seconds)
        return _accepted(arm, req, vm, now, end)


def start(arm: Arm, req: ArmRequest, args: tuple[str, ...]) -> Reply:
    with arm.cloud.lock:
        vm = _find_vm(arm, args)
        arm.authorize(req, "Microsoft.Compute/virtualMachines/start/action", vm.id)
        arm.check_locks(vm.id, "write")
        now = arm.clock.now()
        req.throttle_headers.update(
            arm.throttler.compute_check(vm.subscription, vm.location, "vm-writes")
        )
        b = arm.behaviour
        if power_of(vm, now) in ("running", "starting"):
            return _accepted(arm, req, vm, now, now)
        vm.power_state = "running"
        vm.agent_ready = True
        vm.provisioned_at = now
        vm.running_at = now + timedelta(seconds=b.boot_seconds)
        vm.agent_at = None if vm.boot_fails else vm.running_at + timedelta(seconds=b.agent_seconds)
        return _accepted(arm, req, vm, now, vm.running_at)


def referenced_disk(arm: Arm, block: dict[str, Any], where: str) -> Disk:
    """The disk a VM body's disk block names (`managedDisk.id`); 404 when there is none."""
    disk_id = str((block.get("managedDisk") or {}).get("id") or "")
    disk = arm.cloud.disks.get(key(disk_id))
    if disk is None or disk.deleting_at is not None:
        raise ArmError(
            404,
            "NotFound",
            f"Disk {disk_id} referenced by {where}.managedDisk.id was not found.",
            target=f"{where}.managedDisk.id",
        )
    return disk


def _disk_of(
    arm: Arm, block: dict[str, Any], where: str, vm: VirtualMachine, now: datetime
) -> Disk:
    disk = referenced_disk(arm, block, where)
    if disk.location.lower().replace(" ", "") != vm.location.lower():
        raise ArmError(
            400,
            "InvalidParameter",
            f"Disk {disk.id} is in location '{disk.location}'; the VM is in '{vm.location}'.",
            target=where,
        )
    if disk.provisioning_state(now) != "Succeeded":
        raise ArmError(
            409, "OperationNotAllowed", f"Disk {disk.name} is still being created; retry later."
        )
    others = [m for m in disk.managed_by if key(m) != key(vm.id)]
    if others and not (disk.max_shares and disk.max_shares > len(disk.managed_by)):
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Disk '{disk.name}' is already attached to VM '{others[0]}'.",
        )
    return disk


def update_vm(arm: Arm, req: ArmRequest, vm: VirtualMachine, body: dict[str, Any]) -> Reply | None:
    """A PUT of an existing VM: None when its disks are unchanged (the caller's no-op answer);
    else the swap applied, answered 200. Called with the cloud's lock held."""
    now = arm.clock.now()
    etag = str(arm.cloud.vm_json(vm, now).get("etag", ""))
    wanted = req.headers.get("if-match") if req.headers else None
    if wanted is not None and wanted not in ("*", etag):
        raise ArmError(
            412,
            "PreconditionFailed",
            f"The ETag {wanted} does not match the VM's current ETag {etag}: it was changed.",
        )
    storage = (body.get("properties") or {}).get("storageProfile") or {}
    os_block = storage.get("osDisk") or {}
    if not os_block:
        return None
    os_disk = _disk_of(arm, os_block, "storageProfile.osDisk", vm, now)
    data: list[tuple[int, Disk, str]] = []
    for i, block in enumerate(storage.get("dataDisks") or []):
        disk = _disk_of(arm, block, f"storageProfile.dataDisks[{i}]", vm, now)
        data.append((int(block.get("lun", i)), disk, str(block.get("caching", "None"))))
    same_os = key(os_disk.id) == vm.os_disk_key
    same_data = {(lun, key(d.id)) for lun, d, _ in data} == {
        (d.lun, d.disk_key) for d in vm.data_disks
    }
    if same_os and same_data:
        return None
    if not same_os and power_of(vm, now) not in ("deallocated", "stopped"):
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"The OS disk of VM '{vm.name}' can only be swapped while the VM is stopped "
            "(deallocated).",
        )
    tags = body_tags(body)
    check_tags(tags)
    for old in vm.managed_disk_keys():
        left = arm.cloud.disks.get(old)
        if left is not None:
            left.managed_by = [m for m in left.managed_by if key(m) != key(vm.id)]
    vm.os_disk_key = key(os_disk.id)
    vm.data_disks = [DataDisk(lun, key(d.id), caching) for lun, d, caching in data]
    for disk in [os_disk, *[d for _, d, _ in data]]:
        if not any(key(m) == key(vm.id) for m in disk.managed_by):
            disk.managed_by.append(vm.id)
    if "tags" in body:
        vm.tags = {str(k): str(v) for k, v in tags.items()}
    req.throttle_headers.update(
        arm.throttler.compute_check(vm.subscription, vm.location, "vm-puts")
    )
    arm.events.resource_write(
        vm.id,
        "Microsoft.Compute/virtualMachines/write",
        req.caller.object_id,
        req.correlation_id,
        http_method="PUT",
        url=f"{req.base_url}{req.path}",
    )
    op = arm.new_operation(vm.subscription, vm.location, "operations", now, vm.id, "PUT")
    headers = arm.lro_headers(req, op, retry_after=False, location=False)
    return Reply(200, arm.cloud.vm_json(vm, now), headers)


def usages(arm: Arm, req: ArmRequest, args: tuple[str, ...]) -> Reply:
    sub_id, location = args[0].lower(), args[1].lower().replace(" ", "")
    with arm.cloud.lock:
        limits = dict(DEFAULT_LIMITS)
        families: dict[str, int] = {}
        quotas = (arm.cloud.extra.get("quotas") or {}).get(location) or {}
        counts = {"virtualMachines": 0, "cores": 0}
        for vm in arm.cloud.vms.values():
            if vm.subscription.lower() != sub_id or vm.location.lower() != location:
                continue
            if vm.deleting_at is not None:
                continue
            counts["virtualMachines"] += 1
            sized = size_family(vm.size)
            if sized is None or power_of(vm, arm.clock.now()) == "deallocated":
                continue
            counts["cores"] += sized[0]
            families[sized[1]] = families.get(sized[1], 0) + sized[0]
        for name in quotas:
            if name not in counts and name not in families:
                families[str(name)] = 0
        value = [
            _usage(name, counts[name], int(quotas.get(name, limits[name])))
            for name in ("cores", "virtualMachines")
        ]
        value += [
            _usage(name, used, int(quotas.get(name, DEFAULT_FAMILY_LIMIT)))
            for name, used in sorted(families.items())
        ]
        return Reply(200, {"value": value})


def _usage(name: str, current: int, limit: int) -> dict[str, Any]:
    words = {"cores": "Total Regional vCPUs", "virtualMachines": "Virtual Machines"}
    return {
        "currentValue": current,
        "limit": limit,
        "name": {"value": name, "localizedValue": words.get(name, name)},
        "unit": "Count",
    }
