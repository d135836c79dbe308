"""Compute writes DR drills need: disks from snapshots, VMs from attached disks, their deletes;
and those `lifeboat recover` needs (power actions, a disk swap, usages: emulator/recovery.py).

Disks: `PUT .../disks/{d}` with `creationData.createOption: Copy` from a snapshot answers 202 and
polls at DiskOperations exactly like a snapshot create; `DELETE` answers 202 (409 while attached).
VMs: `PUT .../virtualMachines/{vm}` with `osDisk.createOption: Attach` answers 201 with
`provisioningState: Creating` and `Azure-AsyncOperation` at `.../locations/{loc}/operations/{id}`
(no `Location`), as the azure-mgmt-compute 29.1.0 recording shows; the VM then moves through its
lifecycle on the stand-in clock (creating, starting, running, agent Ready). `DELETE` answers 202
with both headers and `Retry-After`; when it ends, disks lose `managedBy` and NICs lose
`virtualMachine` (they are not deleted).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from emulator import recovery
from emulator.arm_core import (
    Arm,
    body_tags,
    check_same_location,
    copy_source,
)
from emulator.errors import ArmError
from emulator.ids import compute_id, key, new_uuid
from emulator.model import DataDisk, Disk, Operation, VirtualMachine, copy_place
from emulator.routing import GROUP, SUBSCRIPTION, ArmRequest, Reply, Route, route

DISK_SKUS = {
    "standard_lrs",
    "premium_lrs",
    "standardssd_lrs",
    "ultrassd_lrs",
    "premium_zrs",
    "standardssd_zrs",
    "premiumv2_lrs",
}


def _never(now: datetime) -> datetime:
    return datetime.max.replace(tzinfo=now.tzinfo)


# ---- disks -------------------------------------------------------------------------------------
def put_disk(arm: Arm, req: ArmRequest, args: tuple[str, ...]) -> Reply:
    sub_id, _, name = args
    group, body, props, location = arm.put_basics(req, args, "disks")
    creation = props.get("creationData") or {}
    source = copy_source(creation, "disks", "use Copy from a snapshot.")
    tags = body_tags(body)
    disk_id = compute_id(sub_id, group.name, "disks", name)
    now = arm.clock.now()
    with arm.cloud.lock:
        arm.cloud.purge_deleted(now)
        snap = arm.cloud.live_snapshot(key(str(source)), now)
        if snap is None:
            raise ArmError(404, "NotFound", f"Resource {source} is not found.")
        arm.check_write(req, "Microsoft.Compute/disks", disk_id, location, body, tags)
        # What Azure checks on the source of a disk copy; see README ("linked actions").
        arm.linked_check(
            req,
            "Microsoft.Compute/snapshots/read",
            snap.id,
            "Microsoft.Compute/disks/write",
            disk_id,
        )
        existing = arm.cloud.disks.get(key(disk_id))
        if existing is not None and existing.deleting_at is None:
            if key(existing.source_resource_id or "") != key(snap.id):
                raise ArmError(
                    409,
                    "PropertyChangeNotAllowed",
                    "Changing property 'sourceResourceId' is not allowed.",
                    target="sourceResourceId",
                )
            arm.add_policy_tags("Microsoft.Compute/disks", disk_id, tags)
            existing.tags = {str(k): str(v) for k, v in tags.items()}
            return arm.copy_accepted(
                req,
                sub_id,
                existing.location,
                now,
                disk_id,
                existing.ready_at,
                in_flight(existing, snap.id),
            )
        if existing is not None:
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Disk {name} is being deleted; retry when the delete has finished.",
            )
        check_same_location(
            location,
            snap.location,
            f"The source snapshot '{snap.id}' is in location '{snap.location}', which does "
            f"not match the disk's location '{location}'.",
            "sourceResourceId",
        )
        if snap.completion_percent(now) < 100 or snap.provisioning_state(now) != "Succeeded":
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Snapshot {snap.id} is not ready to be used as a source yet "
                f"(completionPercent {snap.completion_percent(now)}).",
            )
        sku = str((body.get("sku") or {}).get("name") or "Standard_LRS")
        if sku.lower() not in DISK_SKUS:
            raise ArmError(400, "InvalidParameter", f"Disk SKU '{sku}' is not valid.", target="sku")
        size = int(props.get("diskSizeGB") or snap.size_gb)
        if size < snap.size_gb:
            raise ArmError(
                400,
                "InvalidParameter",
                f"Disk size {size} GB is smaller than the source snapshot's {snap.size_gb} GB.",
                target="diskSizeGB",
            )
        req.throttle_headers.update(arm.throttler.compute_check(sub_id, snap.location, "writes"))
        arm.add_policy_tags("Microsoft.Compute/disks", disk_id, tags)
        security = props.get("securityProfile") or {}
        ready = None if req.stuck else now + timedelta(seconds=arm.behaviour.operation_seconds)
        disk = Disk(
            **copy_place(sub_id, group.name, name, snap),
            sku=sku,
            size_gb=size,
            unique_id=new_uuid(),
            time_created=now,
            os_type=props.get("osType") or snap.os_type,
            hyper_v_generation=props.get("hyperVGeneration") or snap.hyper_v_generation,
            encryption_type=str(
                (props.get("encryption") or {}).get("type", "EncryptionAtRestWithPlatformKey")
            ),
            security_type=security.get("securityType") or snap.security_type,
            plan=props.get("purchasePlan") or snap.plan,
            tags={str(k): str(v) for k, v in tags.items()},
            create_option="Copy",
            source_resource_id=snap.id,
            source_unique_id=snap.unique_id,
            ready_at=ready or _never(now),
        )
        arm.cloud.disks[key(disk_id)] = disk
        return arm.copy_accepted(
            req, sub_id, disk.location, now, disk_id, ready, in_flight(disk, snap.id)
        )


def in_flight(disk: Disk, source: str) -> dict[str, Any]:
    """The 202 answer to a disk PUT: what the caller sent, `provisioningState: Updating`."""
    props: dict[str, Any] = {
        "creationData": {"createOption": "Copy", "sourceResourceId": source},
        "provisioningState": "Updating",
    }
    if disk.os_type:
        props["osType"] = disk.os_type
    body: dict[str, Any] = {
        "name": disk.name,
        "location": disk.location,
        "sku": {"name": disk.sku},
        "properties": props,
    }
    if disk.tags:
        body["tags"] = dict(disk.tags)
    return body


def _notified(arm: Arm, req: ArmRequest, op: Operation, **lro: bool) -> dict[str, str]:
    """The LRO headers Compute sends for a VM: async notification on, the poll Retry-After."""
    headers = {"Azure-AsyncNotification": "Enabled"}
    headers.update(arm.lro_headers(req, op, retry_after=False, **lro))
    headers["Retry-After"] = arm.behaviour.scaled(arm.behaviour.lro_poll_retry_after)
    return headers


def _start_delete(
    arm: Arm,
    req: ArmRequest,
    args: tuple[str, ...],
    kind: str,
    refuse: Callable[[Any], None],
    bucket: str,
    seconds: str,
    op_kind: str,
) -> Operation | None:
    """A Compute DELETE: None when absent (204); else the resource is marked deleting
    `seconds` (a behaviour setting) from now unless `refuse` raises, with its operation."""
    sub_id, group_name, name = args
    arm.need_group(sub_id, group_name)
    resource_id = compute_id(sub_id, group_name, kind, name)
    now = arm.clock.now()
    arm.cloud.purge_deleted(now)
    store = arm.cloud.disks if kind == "disks" else arm.cloud.vms
    resource = store.get(key(resource_id))
    if resource is None:
        return None
    arm.check_delete(req, f"Microsoft.Compute/{kind}", resource.id)
    refuse(resource)
    req.throttle_headers.update(arm.throttler.compute_check(sub_id, resource.location, bucket))
    delay = getattr(arm.behaviour, seconds)
    end = None if req.stuck else now + timedelta(seconds=delay)
    if resource.deleting_at is None:
        resource.deleting_at = end or _never(now)
        arm.cloud.pending_deletes[key(resource.id)] = resource.deleting_at
    op = arm.new_operation(sub_id, resource.location, op_kind, now, resource.id, "DELETE")
    op.end = end
    return op


def _refuse_attached(disk: Disk) -> None:
    if disk.managed_by:
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Disk {disk.name} is attached to VM {disk.managed_by[0]}.",
        )


def delete_disk(arm: Arm, req: ArmRequest, args: tuple[str, ...]) -> Reply:
    with arm.cloud.lock:
        op = _start_delete(
            arm,
            req,
            args,
            "disks",
            _refuse_attached,
            "deletes",
            "operation_seconds",
            "DiskOperations",
        )
        if op is None:
            return Reply(204)
        return Reply(202, None, arm.lro_headers(req, op, retry_after=False))


# ---- virtual machines --------------------------------------------------------------------------
def _disk_ref(arm: Arm, block: dict[str, Any], where: str) -> Disk:
    option = str(block.get("createOption", ""))
    if option.lower() != "attach":
        raise ArmError(
            400,
            "InvalidParameter",
            f"The stand-in creates VMs from existing disks only: {where}.createOption must be "
            f"Attach, not '{option}'.",
            target=f"{where}.createOption",
        )
    return recovery.referenced_disk(arm, block, where)


def boot_fails(arm: Arm, name: str, disks: list[Disk]) -> bool:
    """A VM made from disks copied from snapshots of a `bootFails` VM's disks never gets Ready;
    so does one named by a `POST /admin/boot-failures` pattern, or made from a scripted VM."""
    sources: set[str] = set()
    for disk in disks:
        snap = arm.cloud.snapshots.get(key(disk.source_resource_id or ""))
        if snap is None:
            continue
        origin = arm.cloud.disks.get(key(snap.source_id))
        for vm_id in origin.managed_by if origin else []:
            sources.add(key(vm_id))
        for vm in arm.cloud.vms.values():  # the disk may have been detached since
            if key(snap.source_id) in (vm.os_disk_key, *[d.disk_key for d in vm.data_disks]):
                sources.add(key(vm.id))
    for vm_key in sources:
        source_vm = arm.cloud.vms.get(vm_key)
        if source_vm is not None and source_vm.boot_fails and not source_vm.from_arm:
            return True
    for rule in arm.cloud.boot_failure_rules:
        pattern = rule.get("vmNamePattern")
        if pattern and fnmatch.fnmatchcase(name.lower(), pattern.lower()):
            return True
        source = rule.get("sourceVmId")
        if source and key(source) in sources:
            return True
    return False


def put_vm(arm: Arm, req: ArmRequest, args: tuple[str, ...]) -> Reply:
    sub_id, _, name = args
    group, body, props, location = arm.put_basics(req, args, "virtualMachines")
    tags = body_tags(body)
    vm_id = compute_id(sub_id, group.name, "virtualMachines", name)
    now = arm.clock.now()
    with arm.cloud.lock:
        arm.cloud.purge_deleted(now)
        arm.cloud.network.purge(now)
        arm.check_write(req, "Microsoft.Compute/virtualMachines", vm_id, location, body, tags)
        existing = arm.cloud.vms.get(key(vm_id))
        if existing is not None:
            if existing.deleting_at is not None:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Operation 'PUT' is not allowed on VM '{name}' since the VM is marked for "
                    "deletion.",
                )
            # A disk swap is an update (emulator/recovery.py); a repeated create is a no-op.
            updated = recovery.update_vm(arm, req, existing, body)
            return updated or Reply(200, arm.cloud.vm_json(existing, now))
        storage = props.get("storageProfile") or {}
        os_block = storage.get("osDisk") or {}
        if props.get("osProfile"):
            raise ArmError(
                400,
                "InvalidParameter",
                "Parameter 'osProfile' is not allowed when the OS disk is attached.",
                target="osProfile",
            )
        os_disk = _disk_ref(arm, os_block, "storageProfile.osDisk")
        os_type = os_block.get("osType") or os_disk.os_type
        if not os_type:
            raise ArmError(
                400,
                "InvalidParameter",
                "Required parameter 'osDisk.osType' is missing (null).",
                target="osDisk.osType",
            )
        data: list[tuple[int, Disk, str]] = []
        for i, block in enumerate(storage.get("dataDisks") or []):
            disk = _disk_ref(arm, block, f"storageProfile.dataDisks[{i}]")
            data.append((int(block.get("lun", i)), disk, str(block.get("caching", "None"))))
        disks = [os_disk, *[d for _, d, _ in data]]
        nic_ids = [
            str(n.get("id", ""))
            for n in (props.get("networkProfile") or {}).get("networkInterfaces") or []
        ]
        if not nic_ids:
            raise ArmError(
                400,
                "InvalidParameter",
                "At least one network interface is required.",
                target="networkProfile.networkInterfaces",
            )
        nics = []
        for nic_id in nic_ids:
            nic = arm.cloud.network.find(nic_id)
            if nic is None or getattr(nic, "kind", "") != "networkInterfaces":
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Network interface {nic_id} was not found.",
                    target="networkProfile.networkInterfaces",
                )
            if nic.location.lower() != location:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Network interface {nic.id} is in location '{nic.location}'; the VM is in "
                    f"'{location}'. Resources must be in the same region.",
                    target="networkProfile.networkInterfaces",
                )
            for other in arm.cloud.vms.values():
                if any(key(n) == key(nic.id) for n in other.nic_ids):
                    raise ArmError(
                        400,
                        "NicInUse",
                        f"Network Interface {nic.id} is used by existing resource {other.id}.",
                    )
            nics.append(nic)
        for disk in disks:
            if disk.location.lower().replace(" ", "") != location:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"Disk {disk.id} is in location '{disk.location}'; the VM is in "
                    f"'{location}'. Resources must be in the same region.",
                    target="storageProfile",
                )
            if disk.provisioning_state(now) != "Succeeded":
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Disk {disk.name} is still being created; retry when it is ready.",
                )
            if disk.managed_by and not (disk.max_shares and disk.max_shares > len(disk.managed_by)):
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Disk '{disk.name}' is already attached to VM '{disk.managed_by[0]}'.",
                )
        for nic in nics:
            arm.linked_check(
                req,
                "Microsoft.Network/networkInterfaces/join/action",
                nic.id,
                "Microsoft.Compute/virtualMachines/write",
                vm_id,
            )
        for disk in disks:
            arm.linked_check(
                req,
                "Microsoft.Compute/disks/write",
                disk.id,
                "Microsoft.Compute/virtualMachines/write",
                vm_id,
            )
        req.throttle_headers.update(arm.throttler.compute_check(sub_id, location, "vm-puts"))
        b = arm.behaviour
        provisioned = now + timedelta(seconds=b.vm_create_seconds)
        if req.stuck:
            provisioned = _never(now)
        running = provisioned + timedelta(seconds=b.boot_seconds) if not req.stuck else provisioned
        fails = boot_fails(arm, name, disks)
        agent = None if fails or req.stuck else running + timedelta(seconds=b.agent_seconds)
        security = props.get("securityProfile") or {}
        plan = body.get("plan")
        vm = VirtualMachine(
            subscription=sub_id.lower(),
            group=group.name,
            name=name,
            location=location,
            size=str((props.get("hardwareProfile") or {}).get("vmSize", "Standard_D2s_v5")),
            vm_id=new_uuid(),
            time_created=now,
            os_type=str(os_type),
            os_disk_key=key(os_disk.id),
            agent_ready=False,
            security_type=security.get("securityType"),
            plan=dict(plan) if plan else None,
            tags={str(k): str(v) for k, v in tags.items()},
            data_disks=[DataDisk(lun, key(d.id), caching) for lun, d, caching in data],
            zones=body.get("zones"),
            create_option="Attach",
            nic_ids=[n.id for n in nics],
            provisioned_at=provisioned,
            running_at=running,
            agent_at=agent,
            boot_fails=fails,
        )
        for disk in disks:
            disk.managed_by.append(vm.id)
        arm.cloud.vms[key(vm_id)] = vm
        op = arm.new_operation(sub_id, location, "operations", now, vm_id, "PUT")
        op.end = None if req.stuck else provisioned
        for _ in range(2):  # a create shows as two writes with one correlation id
            arm.events.resource_write(
                vm.id,
                "Microsoft.Compute/virtualMachines/write",
                req.caller.object_id,
                req.correlation_id,
                http_method="PUT-CREATE",
            )
        return Reply(201, arm.cloud.vm_json(vm, now), _notified(arm, req, op, location=False))


def delete_vm(arm: Arm, req: ArmRequest, args: tuple[str, ...]) -> Reply:
    with arm.cloud.lock:
        op = _start_delete(
            arm,
            req,
            args,
            "virtualMachines",
            lambda vm: None,
            "vm-deletes",
            "vm_delete_seconds",
            "operations",
        )
        if op is None:
            return Reply(204)
        return Reply(202, None, _notified(arm, req, op))


class Provisioning:
    """The Compute writes drills make, served through the ARM core."""

    def __init__(self, arm: Arm) -> None:
        self.arm = arm

    def routes(self) -> list[Route]:
        return ROUTES

    def put_disk(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return put_disk(self.arm, req, args)

    def delete_disk(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return delete_disk(self.arm, req, args)

    def put_vm(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return put_vm(self.arm, req, args)

    def delete_vm(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return delete_vm(self.arm, req, args)

    # `lifeboat recover` (emulator/recovery.py)
    def deallocate_vm(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return recovery.deallocate(self.arm, req, args)

    def start_vm(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return recovery.start(self.arm, req, args)

    def list_usages(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return recovery.usages(self.arm, req, args)


_CP = GROUP + r"/providers/microsoft\.compute"
ROUTES: list[Route] = [
    route("PUT", _CP + r"/disks/([^/]+)", "Microsoft.Compute/disks/write", "put_disk"),
    route("DELETE", _CP + r"/disks/([^/]+)", "Microsoft.Compute/disks/delete", "delete_disk"),
    route(
        "PUT",
        _CP + r"/virtualmachines/([^/]+)",
        "Microsoft.Compute/virtualMachines/write",
        "put_vm",
    ),
    route(
        "DELETE",
        _CP + r"/virtualmachines/([^/]+)",
        "Microsoft.Compute/virtualMachines/delete",
        "delete_vm",
    ),
    route(
        "POST",
        _CP + r"/virtualmachines/([^/]+)/deallocate",
        "Microsoft.Compute/virtualMachines/deallocate/action",
        "deallocate_vm",
    ),
    route(
        "POST",
        _CP + r"/virtualmachines/([^/]+)/start",
        "Microsoft.Compute/virtualMachines/start/action",
        "start_vm",
    ),
    route(
        "GET",
        SUBSCRIPTION + r"/providers/microsoft\.compute/locations/([^/]+)/usages",
        "Microsoft.Compute/locations/usages/read",
        "list_usages",
    ),
]
