"""Decide a recovery: what it creates and changes, or why it will not run. Pure: no I/O.

`decide(request, facts)` takes what `gather` read (the VM, the chosen set or recovery point, the
source disks, the primary NIC, usages, which target names exist) and returns a `Plan` (every
resource created or changed, each disk with its snapshot or the point that restores it; a point's
disks are known only once its restore has run) or the first `Refusal`, in the order an operator
would want to hear them: what Lifeboat cannot recover at all, another recovery running, the mode's
limits, keys, names, the address, the network, quota.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.names import Tag
from shared.policies import tag_value
from shared.recovery.model import (
    Action,
    Mode,
    NewDisk,
    Nic,
    Plan,
    PointRestore,
    RecoveryVm,
    Refusal,
    SnapshotSet,
    SourceDisk,
    Usage,
)
from shared.rules import same_id

MAX_VM_NAME = 64
_SIZE = re.compile(r"^standard_([a-z]+?)(\d+)([a-z]*)(?:_v(\d+))?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Request:
    """What the operator asked for (the command's options)."""

    vm_id: str
    mode: Mode = "new-vm"
    at: datetime | None = None
    set_id: str | None = None
    name: str | None = None
    resource_group: str | None = None
    size: str | None = None
    subnet_id: str | None = None
    keep_ip: bool = False
    recovery_point: str | None = None  # "latest" or a point's id or name (Azure Backup)
    staging_account_id: str | None = None  # --staging-account (default: the settings')


@dataclass(frozen=True, slots=True)
class Facts:
    """What `gather` read before deciding."""

    vm: RecoveryVm
    stamp: str  # yyyymmddHHMM of the recovery, in names
    chosen: SnapshotSet | None = None
    disks: dict[str, SourceDisk] = field(default_factory=dict)  # by lower-case id
    nic: Nic | None = None  # the VM's primary NIC
    subnet_location: str | None = None  # of the target subnet; None: it does not exist
    usages: tuple[Usage, ...] = ()
    existing: frozenset[str] = frozenset()  # lower-case ids of target names that exist
    point: PointRestore | None = None  # the recovery point instead of a set


def names_of(request: Request, vm: RecoveryVm, stamp: str) -> dict[str, str]:
    """The ids a recovery creates: deterministic from the VM and the minute it started."""
    base = f"{vm.name[: MAX_VM_NAME - 14]}-r{stamp}"
    group = request.resource_group or vm.resource_group
    prefix = f"/subscriptions/{vm.subscription_id}/resourceGroups/{group}/providers"
    name = request.name or base
    ids = {
        "vm": f"{prefix}/Microsoft.Compute/virtualMachines/{name}",
        "nic": f"{prefix}/Microsoft.Network/networkInterfaces/{name[:75]}-nic",
        "os": f"{prefix}/Microsoft.Compute/disks/{base}-osdisk",
    }
    for a in vm.data_disks:
        ids[f"lun{a.lun}"] = f"{prefix}/Microsoft.Compute/disks/{base}-lun{a.lun}"
    return ids


def disk_key(lun: int | None) -> str:
    return "os" if lun is None else f"lun{lun}"


def size_cores(size: str) -> tuple[int, str] | None:
    """(vCPUs, quota family) of a size named like Standard_D4s_v5; None when it is not.

    Azure's Resource SKUs API is the authority; the family names follow its pattern
    (Standard_E8s_v5 -> standardESv5Family) and a family the usages do not list is not checked.
    """
    match = _SIZE.match(size.strip())
    if not match:
        return None
    series, cores, suffix, version = match.groups()
    premium = "S" if "s" in suffix.lower() and not series.upper().endswith("S") else ""
    family = f"standard{series.upper()}{premium}{'v' + version if version else ''}Family"
    return int(cores), family


def vm_refusal(request: Request, vm: RecoveryVm) -> Refusal | None:
    """What about the VM itself forbids this recovery (read before its snapshot sets)."""
    unmanaged = [a for a in vm.attachments if a.vhd_uri]
    if unmanaged:
        return Refusal(
            f"{vm.name} has unmanaged (VHD) disks: Lifeboat snapshots and recovers managed disks "
            "only",
            "migrate the VM to managed disks (az vm convert)",
        )
    marker = tag_value(vm.tags, Tag.RECOVERY)
    if marker:
        return Refusal(
            f"{vm.name} is in use by another recovery ({Tag.RECOVERY} = {marker})",
            f"wait for it to end; if it is stale, remove the tag {Tag.RECOVERY} from the VM",
        )
    security = (vm.security_type or "").lower()
    if request.mode in ("swap-disks", "rollback", "new-vm") and security == "confidentialvm":
        return Refusal(
            f"{vm.name} is a Confidential VM: its disks are bound to its own keys, so Lifeboat "
            f"does not {request.mode.replace('-', ' ')} it",
            "use --disks-only and rebuild the VM with its confidential disk encryption",
        )
    if vm.os_disk.ephemeral:
        return Refusal(
            f"{vm.name} has an ephemeral OS disk: it has no snapshot to recover from and cannot "
            "be swapped",
            "recreate the VM from its image, then attach disks made with --disks-only",
        )
    return None


def refusal_of(request: Request, facts: Facts) -> Refusal | None:
    """The first reason this recovery must not run, or None."""
    vm = facts.vm
    refused = vm_refusal(request, vm)
    if refused is not None or request.mode == "rollback":
        return refused
    sources = [m.disk_id for m in facts.chosen.members] if facts.chosen else []
    if facts.point is not None:
        sources = [a.disk_id for a in vm.attachments if a.disk_id]
    for source in sources:
        disk = facts.disks.get(source.lower())
        if disk is None:
            continue
        if disk.azure_disk_encryption and facts.point is not None:
            return Refusal(
                f"disk {disk.name} uses Azure Disk Encryption: Lifeboat restores disks without "
                "the VM's encryption settings and keys, so it could not build a VM from them",
                "restore the VM with Azure Backup itself (Restore VM, Create new), which restores "
                "the keys with the disks",
            )
        if disk.azure_disk_encryption:
            return Refusal(
                f"disk {disk.name} uses Azure Disk Encryption: its keys are in Key Vault with the "
                "VM's encryption settings, which a disk copied from a snapshot does not carry",
                "restore it with Azure Backup, which restores the keys with the disks",
            )
        des = disk.disk_encryption_set_id
        if des and des.strip("/").split("/")[1].lower() != vm.subscription_id.lower():
            return Refusal(
                f"disk {disk.name} is encrypted with disk encryption set {des}, in another "
                f"subscription than the target {vm.subscription_id}: the target cannot use its "
                "keys",
                "grant the target subscription's disks access to that key, or recover there",
            )
    ids = names_of(request, vm, facts.stamp)
    wanted = [ids[disk_key(m.lun)] for m in facts.chosen.members] if facts.chosen else []
    if request.mode == "new-vm":
        wanted += [ids["vm"], ids["nic"]]
    for resource in wanted:
        if resource.lower() in facts.existing:
            name = resource.rsplit("/", 1)[-1]
            return Refusal(
                f"the target name {name} exists already ({resource})",
                "choose another with --name or --resource-group",
            )
    if request.mode != "new-vm":
        return None
    if request.keep_ip:
        if facts.nic is None or not facts.nic.private_ip:
            return Refusal(f"{vm.name}'s private IP address cannot be read: --keep-ip has none")
        return Refusal(
            f"--keep-ip: {vm.name}'s NIC {facts.nic.id.rsplit('/', 1)[-1]} still holds "
            f"{facts.nic.private_ip}",
            "recover without --keep-ip (a new address), or free the address first",
        )
    subnet = request.subnet_id or (facts.nic.subnet_id if facts.nic else None)
    if subnet is None:
        return Refusal(f"{vm.name} has no NIC with a subnet to recover into", "pass --subnet ID")
    if facts.subnet_location is None:
        return Refusal(f"subnet {subnet} does not exist", "pass --subnet with an existing one")
    if facts.subnet_location.lower().replace(" ", "") != vm.location.lower():
        return Refusal(
            f"subnet {subnet} is in {facts.subnet_location}; {vm.name} and its snapshots are "
            f"in {vm.location}",
            "choose a subnet in the VM's region",
        )
    return quota_refusal(request.size or vm.size or "", facts.usages, vm.location)


def quota_refusal(size: str, usages: tuple[Usage, ...], location: str) -> Refusal | None:
    """A new VM of `size` would exceed a Compute quota of the region (read before writing)."""
    found = {u.name.lower(): u for u in usages}
    cores = size_cores(size)
    needs = [("virtualMachines", 1)]
    if cores is not None:
        needs += [("cores", cores[0]), (cores[1], cores[0])]
    for name, more in needs:
        usage = found.get(name.lower())
        if usage is not None and usage.current + more > usage.limit:
            return Refusal(
                f"quota exceeded: {name} in {location} is at {usage.current} of {usage.limit}; "
                f"a {size} needs {more} more",
                "ask for a quota increase, or pass a smaller --size",
            )
    return None


def decide(request: Request, facts: Facts) -> Plan | Refusal:
    """The plan of this recovery, or why it must not run."""
    refused = refusal_of(request, facts)
    if refused is not None:
        return refused
    vm = facts.vm
    if request.mode == "rollback":
        return _rollback_plan(facts)
    ids = names_of(request, vm, facts.stamp)
    group = _group(request, vm)
    notes: list[str] = []
    if facts.point is not None:
        source, source_time = facts.point.label, facts.point.point.time
        disks: tuple[NewDisk, ...] = ()  # the restore's, known when its job has completed
        disk_actions = _restore_actions(vm, facts.point)
        swapped = [(a.lun, a.disk_id, "its restored disk") for a in vm.attachments if a.disk_id]
        notes.append(
            f"{facts.point.why}; the restore runs as you (Azure asks for "
            f"Microsoft.Compute/virtualMachines/write on {vm.name}) and the command follows its "
            "job to the end"
        )
    else:
        chosen = facts.chosen
        assert chosen is not None
        source, source_time = f"snapshot set {chosen.slot} ({chosen.set_id})", chosen.taken_at
        disks = tuple(
            NewDisk(
                id=ids[disk_key(m.lun)],
                lun=m.lun,
                snapshot_id=m.snapshot_id,
                source_disk=facts.disks.get(m.disk_id.lower()) or _unknown(m.disk_id, vm.location),
                replaces=m.disk_id,
            )
            for m in chosen.members
        )
        disk_actions = [
            Action(
                "create-disk",
                d.id,
                f"{_where(d.lun)}, copy of {d.source_disk.name} "
                f"({d.source_disk.sku or 'same SKU'})",
                d.snapshot_id,
            )
            for d in disks
        ]
        swapped = [(d.lun, d.replaces, d.id.rsplit("/", 1)[-1]) for d in disks if d.replaces]
    marker = Action("tag", vm.id, f"{Tag.RECOVERY} while the recovery runs")
    actions = ([] if request.mode == "disks-only" else [marker]) + disk_actions
    plan = Plan(
        request.mode,
        vm,
        source,
        source_time,
        (),
        disks,
        target_group=group,
        restore=facts.point,
    )
    if request.mode == "disks-only":
        return _with(plan, actions, notes)
    if request.mode == "new-vm":
        size = request.size or vm.size or ""
        subnet = request.subnet_id or (facts.nic.subnet_id if facts.nic else None)
        if cores := size_cores(size):
            notes.append(f"quota read: {size} needs {cores[0]} vCPUs of {cores[1]}")
        else:
            notes.append(f"quota: {size} has no known vCPU count; only the VM count is checked")
        zone = f" in zone {','.join(vm.zones)}" if vm.zones else ""
        actions += [
            Action("create-nic", ids["nic"], f"in {_short(subnet)}, a new private IP address"),
            Action(
                "create-vm",
                ids["vm"],
                f"{size}{zone}, OS disk and {len(swapped) - 1} data disk(s) by LUN, the "
                "original's tags and boot diagnostics",
            ),
            Action("untag", vm.id, f"{Tag.RECOVERY} removed"),
        ]
        new_vm = replace(plan, new_vm_id=ids["vm"], nic_id=ids["nic"], subnet_id=subnet, size=size)
        return _with(new_vm, actions, notes)
    swaps = "; ".join(
        f"{_where(lun)}: {old.rsplit('/', 1)[-1]} -> {new}" for lun, old, new in swapped
    )
    actions += [
        Action("deallocate", vm.id, f"{vm.name} is {vm.power_state or 'in an unknown state'}"),
        Action("swap-disks", vm.id, f"PUT with If-Match {vm.etag}: {swaps}"),
        *[Action("tag", old, f"{Tag.REPLACED_BY} {new}, kept") for _, old, new in swapped],
        Action("start", vm.id),
        Action("untag", vm.id, f"{Tag.RECOVERY} removed"),
    ]
    return _with(plan, actions, notes)


def _restore_actions(vm: RecoveryVm, point: PointRestore) -> list[Action]:
    """The restore of the point and, for each disk of the VM, the disk it will make."""
    group = point.target_group_id.rsplit("/", 1)[-1]
    account = point.staging_account_id.rsplit("/", 1)[-1]
    actions = [
        Action(
            "restore-disks",
            point.point.id,
            f"Azure Backup RestoreDisks into {group}, staged through {account}",
            point.point.id,
        )
    ]
    for a in vm.attachments:
        if a.disk_id is None:
            continue
        name = a.disk_id.rsplit("/", 1)[-1]
        actions.append(
            Action(
                "restore-disk",
                f"{point.target_group_id}/providers/Microsoft.Compute/disks/{name}-<time>",
                f"{_where(a.lun)}, {name} as the point has it (named by Azure Backup)",
                point.point.id,
            )
        )
    return actions


def _where(lun: int | None) -> str:
    return "OS disk" if lun is None else f"LUN {lun}"


def _rollback_plan(facts: Facts) -> Plan | Refusal:
    """Put back the disks a swap replaced: each attached disk that names what it replaced."""
    vm = facts.vm
    back: list[tuple[int | None, str, str]] = []
    for attached in vm.attachments:
        disk = facts.disks.get((attached.disk_id or "").lower())
        replaced = tag_value(disk.tags, Tag.REPLACES) if disk else None
        if attached.disk_id and replaced:
            back.append((attached.lun, attached.disk_id, replaced))
    if not back:
        return Refusal(
            f"{vm.name} has no disk that a recovery swapped in ({Tag.REPLACES} on none of its "
            "disks): nothing to roll back"
        )
    for _, _, old in back:
        if old.lower() not in facts.existing:
            return Refusal(f"the replaced disk {old} no longer exists: it cannot be put back")
    swaps = "; ".join(
        f"{'OS disk' if lun is None else f'LUN {lun}'}: {now.rsplit('/', 1)[-1]} -> "
        f"{old.rsplit('/', 1)[-1]}"
        for lun, now, old in back
    )
    actions = [
        Action("tag", vm.id, f"{Tag.RECOVERY} while the rollback runs"),
        Action("deallocate", vm.id),
        Action("swap-disks", vm.id, f"PUT with If-Match {vm.etag}: {swaps}"),
        *[Action("tag", now, f"{Tag.ROLLED_BACK_AT}, kept") for _, now, _ in back],
        Action("start", vm.id),
        Action("untag", vm.id, f"{Tag.RECOVERY} removed"),
    ]
    return Plan(
        "rollback", vm, "the disks a swap replaced", None, tuple(actions), rollback=tuple(back)
    )


def _with(plan: Plan, actions: list[Action], notes: list[str]) -> Plan:
    return replace(plan, actions=tuple(actions), notes=tuple(notes))


def _group(request: Request, vm: RecoveryVm) -> str:
    return request.resource_group or vm.resource_group


def _unknown(disk_id: str, location: str) -> SourceDisk:
    return SourceDisk(id=disk_id, name=disk_id.rsplit("/", 1)[-1], location=location)


def same_disk(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and same_id(a, b)


def _short(subnet: str | None) -> str:
    """vnet/subnet of a subnet id, for people."""
    parts = (subnet or "").strip("/").split("/")
    return f"{parts[-3]}/{parts[-1]}" if len(parts) >= 3 else str(subnet)
