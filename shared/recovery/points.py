"""Recovering from an Azure Backup recovery point (`--recovery-point latest|ID`).

    the VM's backup item (a vault of its subscription) -> the point -> the staging account
    -> [plan, confirm] -> RestoreDisks into the target group -> the operation names its job
    -> the job ends -> the restored disks, matched to the VM's disks and tagged -> as for a set

The vault restores the point's disks with `RestoreDisks` (never `AlternateLocation` or
`OriginalLocation`: Lifeboat builds the VM, or swaps the disks, itself, exactly as from a snapshot
set) into the recovery's target group, staged through a storage account in the vault's region.
The restore is the operator's own request: Azure asks for VM write on the source VM for it.
Azure names the restored disks after their source disks with the restore's date and time; they
are matched to the VM's disks as a recovery-point drill matches them
(`shared.drills.restore.restored_disk_of`) and tagged at once (`lifeboat:recovered-from`,
`lifeboat:replaces`). A failed job fails the recovery with the job's error; whatever the job
restored is kept, tagged and listed (a recovery never deletes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from shared.drills.restore import TERMINAL_FAILED, TERMINAL_OK, restored_disk_of
from shared.model import ProtectedItem, RecoveryPoint, Vault
from shared.names import Tag
from shared.ports import Backup, RestoreJob, RestoreRequest
from shared.recovery.model import (
    NewDisk,
    Plan,
    PointRestore,
    RecoveryVm,
    Refusal,
    Result,
    SourceDisk,
)
from shared.recovery.ports import RecoveryCloud
from shared.rules import same_id

if TYPE_CHECKING:
    from shared.recovery.run import Waiter

log = logging.getLogger(__name__)

LATEST = "latest"
StagingAccounts = Callable[[str, str], str | None]  # (subscription, region) -> account id


class RestoreFailedError(Exception):
    """The restore did not give the VM's disks; the message says why."""


def find_item(backup: Backup, vm: RecoveryVm) -> tuple[Vault, ProtectedItem] | Refusal:
    """The VM's Azure Backup item and its vault, among the vaults of the VM's subscription."""
    for vault in backup.list_vaults(vm.subscription_id):
        for item in backup.list_protected_items(vault):
            if not same_id(item.vm_id, vm.id):
                continue
            if item.soft_deleted:
                return Refusal(
                    f"{vm.name}'s backup item in vault {vault.name} is soft-deleted: its recovery "
                    "points cannot be restored",
                    "undelete it in the vault (Backup items), or recover from a snapshot set "
                    "(--at or --set)",
                )
            return vault, item
    return Refusal(
        f"{vm.name} has no Azure Backup item in subscription {vm.subscription_id} (no vault "
        "there protects it): there is no recovery point to restore",
        "recover from one of Lifeboat's snapshot sets (--at or --set)",
    )


def choose_point(
    backup: Backup, vm: RecoveryVm, item: ProtectedItem, wanted: str
) -> tuple[RecoveryPoint, str] | Refusal:
    """`latest` (the newest point in a tier a restore can read), or the point named by its id or
    name; a Refusal when there is none or the named one is gone."""
    if wanted.strip().lower() == LATEST:
        points = backup.list_recovery_points(item)
        usable = sorted((p for p in points if p.tiers), key=lambda p: (p.time, p.id.lower()))
        if not usable:
            more = f" ({len(points)} in the archive tier only)" if points else ""
            return Refusal(
                f"{vm.name} has no recovery point to restore in its backup item{more}",
                "recover from one of Lifeboat's snapshot sets (--at or --set)",
            )
        return usable[-1], f"latest of {len(usable)} points"
    named = wanted.strip().rstrip("/")
    if "/" in named and not named.lower().startswith(f"{item.id.lower()}/recoverypoints/"):
        return Refusal(
            f"{named} is not a recovery point of {vm.name}'s backup item ({item.id})",
            "pass one of its points: az backup recoverypoint list, or --recovery-point latest",
        )
    point = backup.get_point(item, named)
    if point is None:
        return Refusal(
            f"recovery point {named.rsplit('/', 1)[-1]} of {vm.name} is gone (expired under the "
            "backup policy's retention, or deleted)",
            "pass --recovery-point latest, or another point (az backup recoverypoint list)",
        )
    if not point.tiers:
        return Refusal(
            f"recovery point {named.rsplit('/', 1)[-1]} of {vm.name} is in the archive tier only: "
            "it must be rehydrated before it can be restored",
            "rehydrate it in the vault, or pass another point",
        )
    return point, "named"


def point_restore(
    backup: Backup,
    vm: RecoveryVm,
    wanted: str,
    *,
    target_group: str,
    staging_account_id: str | None,
    staging_accounts: StagingAccounts,
) -> PointRestore | Refusal:
    """What the restore will be: the item, the point and the staging account (reads only)."""
    found = find_item(backup, vm)
    if isinstance(found, Refusal):
        return found
    vault, item = found
    region = vault.location.replace(" ", "").lower()
    chosen = choose_point(backup, vm, item, wanted)
    if isinstance(chosen, Refusal):
        return chosen
    point, why = chosen
    staging = staging_account_id or staging_accounts(vault.subscription_id, region)
    if staging is None:
        return Refusal(
            f"no staging storage account for subscription {vault.subscription_id} in {region}: "
            "Azure Backup stages a restore through one",
            "pass --staging-account ID, or set RESTORE_STAGING_ACCOUNTS (region=storage account "
            "id; in the vault's region, not zone-redundant, not blob-only)",
        )
    return PointRestore(
        point=point,
        item=item,
        vault=vault,
        why=why,
        staging_account_id=staging,
        target_group_id=f"/subscriptions/{vm.subscription_id}/resourceGroups/{target_group}",
    )


def restore_disks(
    cloud: RecoveryCloud,
    backup: Backup,
    plan: Plan,
    waiter: Waiter,
    *,
    recovery_id: str,
    result: Result,
    on_wait: Callable[[str], None] = lambda text: None,
) -> Plan:
    """Trigger the restore, follow its operation to the job and the job to its end, then match
    and tag the restored disks: the plan with its disks. Raises RestoreFailedError."""
    restore = plan.restore
    assert restore is not None
    vm = plan.vm
    clock = waiter.clock
    began = clock.now()
    operation = backup.trigger_restore(
        restore.item,
        RestoreRequest(
            point_id=restore.point.id,
            source_vm_id=vm.id,
            region=restore.vault.location.replace(" ", "").lower(),
            target_group_id=restore.target_group_id,
            staging_account_id=restore.staging_account_id,
            zones=vm.zones,
        ),
    )
    log.info("recovery %s of %s: restore triggered, operation %s", recovery_id, vm.name, operation)
    named: list[str] = []

    def job_named() -> bool:
        job_id = backup.get_restore_operation(restore.item, operation)
        on_wait(f"operation {operation[:8]} accepted, {_elapsed(clock.now() - began)}")
        if job_id:
            named.append(job_id)
        return bool(job_id)

    waiter.until(f"the restore operation {operation} to name its job", job_named)
    job_id = named[0]
    result.restore_job = job_id
    ended: list[RestoreJob] = []

    def job_ended() -> bool:
        job = backup.get_job(restore.vault.id, job_id)
        if job is None:
            raise RestoreFailedError(f"the restore job {job_id} does not exist")
        on_wait(f"job {job_id[:8]} {job.status}, {_elapsed(clock.now() - began)}")
        status = job.status.lower()
        if status in TERMINAL_OK or status in TERMINAL_FAILED:
            ended.append(job)
            return True
        return False

    waiter.until(f"the restore job {job_id}", job_ended)
    job = ended[0]
    disks, missing = _restored(cloud, plan, job, recovery_id)
    result.created.extend(d.id for d in disks)
    if job.status.lower() in TERMINAL_FAILED:
        cause = ": ".join(x for x in (job.error_code, job.error_message) if x) or "no error given"
        raise RestoreFailedError(f"the restore job {job_id} {job.status}: {cause}")
    if missing:
        names = ", ".join(m.rsplit("/", 1)[-1] for m in missing)
        raise RestoreFailedError(
            f"the restore job {job_id} {job.status} but no restored disk of {names} is in "
            f"{restore.target_group_id.rsplit('/', 1)[-1]}"
        )
    return replace(plan, disks=tuple(disks))


def _restored(
    cloud: RecoveryCloud, plan: Plan, job: RestoreJob, recovery_id: str
) -> tuple[list[NewDisk], list[str]]:
    """Each disk of the VM and the disk the restore made of it, tagged as this recovery's now."""
    restore = plan.restore
    assert restore is not None
    vm = plan.vm
    parts = restore.target_group_id.strip("/").split("/")
    candidates = [
        d
        for d in cloud.list_disks(parts[1], parts[3])
        if job.start_time is None or d.time_created is None or d.time_created >= job.start_time
    ]
    found: list[NewDisk] = []
    missing: list[str] = []
    for attachment in vm.attachments:
        if attachment.disk_id is None:
            continue
        disk = restored_disk_of(attachment.disk_id.rsplit("/", 1)[-1], candidates)
        if disk is None:
            missing.append(attachment.disk_id)
            continue
        cloud.merge_tags(
            disk.id,
            {
                Tag.RECOVERED_FROM: f"{recovery_id} {vm.id}"[:256],
                Tag.REPLACES: attachment.disk_id[:256],
            },
        )
        source = cloud.get_disk(attachment.disk_id) or SourceDisk(
            attachment.disk_id, attachment.disk_id.rsplit("/", 1)[-1], vm.location
        )
        found.append(NewDisk(disk.id, attachment.lun, restore.point.id, source, attachment.disk_id))
    return found, missing


def _elapsed(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
