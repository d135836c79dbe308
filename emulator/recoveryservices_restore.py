"""Restores from Azure Backup recovery points, as the stand-in serves them.

Recovery points seeded from the estate (`points:` on a vault item), their bodies
(`IaasVMRecoveryPoint` with the tier details as recorded), the `IaasVMRestoreRequest` checked as
Azure checks it (recovery type, target group, staging account: same region as the vault, not
zone-redundant, not blob-only), the restore job's `extendedInfo` as the recording fills it, and the
managed disks a finished RestoreDisks job leaves in the target group, and its config blob,
written into a real blob service when the estate's `recoveryServices.stagingBlobs` names one
(Azurite's connection string, standing in for every staging account). The routes are in
`recoveryservices.py`; the README's "Restore" section says where each shape comes from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from emulator.errors import ArmError
from emulator.ids import compute_id, key, stable_uuid
from emulator.model import Cloud, Disk, VirtualMachine
from emulator.recoveryservices_state import (
    DEFAULT_RESTORE_SECONDS,
    TIER_SNAPSHOT,
    TIER_VALID,
    TIER_VAULT,
    DiskPlan,
    Item,
    Job,
    RecoveryPoint,
    RestoreDetails,
    RestoreScript,
    StagingAccount,
    Vault,
    age_instant,
    azure_time,
    seconds_of,
)

RESTORE_REQUESTS = ("IaasVMRestoreRequest", "IaasVMRestoreWithRehydrationRequest")
RECOVERY_TYPES = ("RestoreDisks", "AlternateLocation", "OriginalLocation")
RESTORE_OUTCOMES = ("complete", "warn", "fail", "inprogress")
CONSISTENCIES = ("AppConsistent", "CrashConsistent", "FileSystemConsistent")
ZONE_REDUNDANT_SKUS = {"standard_zrs", "premium_zrs", "standard_gzrs", "standard_ragzrs"}
STORAGE_SKUS = ZONE_REDUNDANT_SKUS | {
    "standard_lrs",
    "standard_grs",
    "standard_ragrs",
    "premium_lrs",
}
BLOB_ONLY_KINDS = {"blobstorage", "blockblobstorage", "filestorage"}
STORAGE_KINDS = BLOB_ONLY_KINDS | {"storagev2", "storage"}
_GROUP_ID = re.compile(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)/?$", re.IGNORECASE)
_ACCOUNT_ID = re.compile(
    r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)/providers/microsoft\.storage/"
    r"storageaccounts/([^/]+)/?$",
    re.IGNORECASE,
)
MAX_DISK_NAME = 80
log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ the estate


def load_staging_accounts(cloud: Cloud, raw: Any, problems: list[str]) -> list[StagingAccount]:
    """Estate `storageAccounts:` (README, Recovery Services, "Restore")."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append("storageAccounts: must be a list")
        return []
    subs = list(cloud.subscriptions)
    found: list[StagingAccount] = []
    for i, entry in enumerate(raw):
        where = f"storageAccounts[{i}]"
        if not isinstance(entry, dict) or not entry.get("name") or not entry.get("resourceGroup"):
            problems.append(f"{where}: name and resourceGroup are required")
            continue
        sub = str(entry.get("subscription") or (subs[0] if subs else "")).lower()
        group = cloud.group(sub, str(entry["resourceGroup"]))
        if group is None:
            problems.append(f"{where}: resource group {entry['resourceGroup']!r} is not declared")
            continue
        sku = str(entry.get("sku", "Standard_LRS"))
        if sku.lower() not in STORAGE_SKUS:
            problems.append(f"{where}.sku: {sku!r} is not a storage account SKU")
            continue
        kind = str(entry.get("kind", "StorageV2"))
        if kind.lower() not in STORAGE_KINDS:
            problems.append(f"{where}.kind: {kind!r} is not a storage account kind")
            continue
        location = str(entry.get("location", group.location))
        found.append(StagingAccount(sub, group.name, str(entry["name"]), location, sku, kind))
    return found


def _whole(value: Any, where: str, problems: list[str], least: int = 1) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        problems.append(f"{where}: must be a whole number >= {least}, got {value!r}")
        return None
    return value


def seed_points(
    raw: Any,
    item: Item,
    last_backup: Any,
    retention_days: int,
    now: datetime,
    where: str,
    problems: list[str],
) -> None:
    """An item's recovery points, made without API calls: the estate's `points:` (count, every,
    newest, appConsistentEvery, snapshotTierDays), else three daily points ending at
    `lastBackup`. Sets `item.points` and `item.last_backup` (the newest point)."""
    last = age_instant(last_backup, now)
    if raw is None:
        if last is not None:
            item.points = [
                RecoveryPoint(last - timedelta(days=d), item.consistency) for d in (2, 1, 0)
            ]
            item.last_backup = last
        return
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping (count, every, newest, ...)")
        return
    unknown = set(raw) - {"count", "every", "newest", "appConsistentEvery", "snapshotTierDays"}
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    count = _whole(raw.get("count"), f"{where}.count", problems)
    every = seconds_of(str(raw.get("every", "1d")))
    if every is None or every <= 0:
        problems.append(
            f"{where}.every: must be an age such as 1d or 12h, got {raw.get('every')!r}"
        )
    newest_raw = raw.get("newest", last_backup)
    if newest_raw is None:
        problems.append(f"{where}.newest: give the newest point's age (or the item's lastBackup)")
        return
    try:
        newest = age_instant(newest_raw, now)
    except ValueError:
        problems.append(f"{where}.newest: {newest_raw!r} is neither an age nor an RFC 3339 instant")
        return
    if last is not None and newest is not None and abs((newest - last).total_seconds()) > 1:
        problems.append(
            f"{where}.newest ({newest_raw}) and lastBackup ({last_backup}) disagree: the newest "
            "point is the last backup, give one of them"
        )
    app_every = None
    if raw.get("appConsistentEvery") is not None:
        app_every = _whole(raw["appConsistentEvery"], f"{where}.appConsistentEvery", problems)
    tier_days = raw.get("snapshotTierDays")
    if tier_days is not None:
        if isinstance(tier_days, bool) or not isinstance(tier_days, int | float) or tier_days < 0:
            problems.append(f"{where}.snapshotTierDays: must be a number >= 0, got {tier_days!r}")
        else:
            item.snapshot_tier_days = float(tier_days)
    if count is None or every is None or every <= 0 or newest is None:
        return
    oldest = newest - timedelta(seconds=every * (count - 1))
    if oldest < now - timedelta(days=retention_days):
        problems.append(
            f"{where}: the oldest of {count} points would be {(now - oldest).days} days old, "
            f"beyond the policy's retentionDays {retention_days} (Azure would have deleted it)"
        )
        return
    points = []
    for n in range(count):
        consistency = item.consistency
        if app_every is not None:
            consistency = "AppConsistent" if n % app_every == 0 else item.consistency
        points.append(RecoveryPoint(newest - timedelta(seconds=every * n), consistency))
    item.points = points
    item.last_backup = newest


def load_restore_script(raw: Any, seconds: float, where: str, problems: list[str]) -> RestoreScript:
    """An item's `restore: {outcome, errorCode, seconds}`."""
    if raw is None:
        return RestoreScript(seconds=seconds)
    if not isinstance(raw, dict):
        problems.append(f"{where}: must be a mapping (outcome, errorCode, seconds)")
        return RestoreScript(seconds=seconds)
    outcome = str(raw.get("outcome", "complete")).lower()
    if outcome not in RESTORE_OUTCOMES:
        problems.append(
            f"{where}.outcome: must be one of {', '.join(RESTORE_OUTCOMES)}, got {outcome!r}"
        )
    value = raw.get("seconds", seconds)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        problems.append(f"{where}.seconds: must be a number >= 0, got {value!r}")
        value = seconds
    return RestoreScript(
        outcome=outcome,
        error_code=str(raw.get("errorCode", RestoreScript.error_code)),
        seconds=float(value),
    )


def restore_seconds(config: dict[str, Any]) -> float:
    value = config.get("restoreSeconds", DEFAULT_RESTORE_SECONDS)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"recoveryServices.restoreSeconds: must be a number >= 0, got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------- the points


def expire_points(item: Item, retention_days: int, now: datetime) -> None:
    """Points older than the policy's retention are gone, as Azure deletes them."""
    if item.retains:
        cutoff = now - timedelta(days=retention_days)
        item.points = [p for p in item.points if p.time >= cutoff]


def tier_details(item: Item, point: RecoveryPoint, now: datetime) -> list[dict[str, int]]:
    """A point is in the snapshot tier for `snapshotTierDays` after it is taken, and in the
    vault tier from then on (both while the snapshot lasts)."""
    vault_tier = {"type": TIER_VAULT, "status": TIER_VALID}
    if now - point.time < timedelta(days=item.snapshot_tier_days):
        return [{"type": TIER_SNAPSHOT, "status": TIER_VALID}, vault_tier]
    return [vault_tier]


def point_json(item: Item, point: RecoveryPoint, vm_size: str, now: datetime) -> dict[str, Any]:
    return {
        "id": f"{item.id}/recoveryPoints/{point.name}",
        "name": point.name,
        "type": "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/"
        "protectedItems/recoveryPoints",
        "properties": {
            "objectType": "IaasVMRecoveryPoint",
            "recoveryPointType": point.consistency,
            "recoveryPointTime": azure_time(point.time),
            "recoveryPointAdditionalInfo": "",
            "sourceVMStorageType": "NormalStorage",
            "isSourceVMEncrypted": False,
            "isInstantIlrSessionActive": False,
            "recoveryPointTierDetails": tier_details(item, point, now),
            "isManagedVirtualMachine": True,
            "virtualMachineSize": vm_size,
            "originalStorageAccountOption": False,
        },
    }


def missing_point(name: str) -> ArmError:
    return ArmError(
        404,
        "BMSUserErrorRecoveryPointNotFound",
        f"Recovery point {name} was not found. It may have expired under the backup policy's "
        "retention.",
    )


# ------------------------------------------------------------------------- the restore request


def disk_plans(cloud: Cloud, vm: VirtualMachine | None) -> list[DiskPlan]:
    """The VM's managed disks as a restore makes them again (VHD disks are not restored)."""
    if vm is None:
        return []
    plans = []
    luns: dict[str, int | None] = {}
    if vm.os_disk_key:
        luns[vm.os_disk_key] = None
    for data in vm.data_disks:
        luns[data.disk_key] = data.lun
    for disk_key, lun in luns.items():
        disk = cloud.disks.get(disk_key)
        if disk is None:
            continue
        plans.append(
            DiskPlan(
                lun=lun,
                name=disk.name,
                size_gb=disk.size_gb,
                sku=disk.sku,
                os_type=disk.os_type or (vm.os_type if lun is None else None),
                hyper_v_generation=disk.hyper_v_generation,
                security_type=disk.security_type,
            )
        )
    return plans


def _refuse(code: str, message: str, status: int = 400) -> ArmError:
    return ArmError(status, code, message)


def check_restore(
    cloud: Cloud,
    vault: Vault,
    item: Item,
    point: RecoveryPoint,
    body: dict[str, Any],
    accounts: list[StagingAccount],
) -> RestoreDetails:
    """The request as Azure checks it before it answers 202; refusals raise ArmError."""
    props = body.get("properties")
    if not isinstance(props, dict):
        raise _refuse("BMSUserErrorInvalidInput", "The restore request has no properties.")
    object_type = str(props.get("objectType", ""))
    if object_type not in RESTORE_REQUESTS:
        raise _refuse(
            "BMSUserErrorInvalidInput",
            f"properties.objectType must be one of {', '.join(RESTORE_REQUESTS)} for a virtual "
            f"machine, got {object_type!r}.",
        )
    recovery_type = str(props.get("recoveryType", ""))
    if recovery_type not in RECOVERY_TYPES:
        raise _refuse(
            "BMSUserErrorInvalidInput",
            f"properties.recoveryType must be one of {', '.join(RECOVERY_TYPES)}, "
            f"got {recovery_type!r}.",
        )
    if recovery_type != "RestoreDisks":
        raise _refuse(
            "BMSUserErrorInvalidInput",
            f"recoveryType {recovery_type} is not served by the stand-in (RestoreDisks only).",
        )
    named = props.get("recoveryPointId")
    if named and str(named) != point.name:
        raise _refuse(
            "BMSUserErrorInvalidInput",
            f"properties.recoveryPointId {named} does not match the point {point.name} in the URL.",
        )
    source = props.get("sourceResourceId")
    if source and key(str(source)) != key(item.vm_id):
        raise _refuse(
            "BMSUserErrorInvalidInput",
            f"properties.sourceResourceId {source} is not the protected VM {item.vm_id}.",
        )
    if item.soft_deleted:
        raise _refuse(
            "BMSUserErrorOperationNotAllowedForSoftDeletedItem",
            f"{item.vm} is soft-deleted: undelete it before restoring.",
        )
    target = str(props.get("targetResourceGroupId") or "")
    if not target:
        raise _refuse(
            "BMSUserErrorInvalidInput",
            "properties.targetResourceGroupId is required to restore the disks of a VM with "
            "managed disks.",
        )
    match = _GROUP_ID.match(target)
    group = cloud.group(match.group(1), match.group(2)) if match else None
    if match is None or group is None:
        raise _refuse(
            "BMSUserErrorTargetResourceGroupNotFound",
            f"The target resource group {target} was not found.",
        )
    identity_based = props.get("identityBasedRestoreDetails") or {}
    staging = str(
        props.get("storageAccountId") or identity_based.get("targetStorageAccountId") or ""
    )
    if not staging:
        raise _refuse(
            "BMSUserErrorInvalidInput",
            "properties.storageAccountId (the staging account) is required for RestoreDisks.",
        )
    account = next((a for a in accounts if key(a.id) == key(staging)), None)
    if _ACCOUNT_ID.match(staging) is None or account is None:
        raise _refuse(
            "BMSUserErrorStorageAccountNotFound", f"The storage account {staging} was not found."
        )
    if account.location.lower() != vault.location.lower():
        raise _refuse(
            "BMSUserErrorStorageAccountNotSupported",
            f"The staging storage account {account.name} is in {account.location}; it must be in "
            f"the vault's region {vault.location}.",
        )
    if account.sku.lower() in ZONE_REDUNDANT_SKUS:
        raise _refuse(
            "BMSUserErrorStorageAccountNotSupported",
            f"The staging storage account {account.name} is zone-redundant ({account.sku}); "
            "restores need a locally or geo-redundant account.",
        )
    if account.kind.lower() in BLOB_ONLY_KINDS:
        raise _refuse(
            "BMSUserErrorStorageAccountNotSupported",
            f"The staging storage account {account.name} is {account.kind}; restores need a "
            "general-purpose account.",
        )
    luns = props.get("restoreDiskLunList")
    if luns is not None:
        if not isinstance(luns, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) for n in luns
        ):
            raise _refuse(
                "BMSUserErrorInvalidInput", "properties.restoreDiskLunList must list whole LUNs."
            )
        vm = cloud.vms.get(key(item.vm_id))
        known = {d.lun for d in vm.data_disks} if vm else set()
        unknown = sorted(set(luns) - known)
        if unknown:
            raise _refuse(
                "BMSUserErrorInvalidInput",
                f"restoreDiskLunList names LUNs {unknown} that {item.vm} does not have.",
            )
    zones = props.get("zones")
    return RestoreDetails(
        point=point,
        target_subscription=match.group(1).lower(),
        target_group=group.name,
        account=account,
        luns=list(luns) if luns is not None else None,
        zones=[str(z) for z in zones] if isinstance(zones, list) and zones else None,
        container="vhd" + uuid.uuid4().hex,
        plans=disk_plans(cloud, cloud.vms.get(key(item.vm_id))) or list(item.layout),
    )


# ------------------------------------------------------------------------------ the job


def recorded_time(value: datetime) -> str:
    """`Recovery point time ` as the recording writes it: `10/19/2017 7:11:28 AM` (UTC)."""
    value = value.astimezone(UTC)
    hour = value.hour % 12 or 12
    half = "AM" if value.hour < 12 else "PM"
    return f"{value.month}/{value.day}/{value.year} {hour}:{value:%M:%S} {half}"


def extended_info(job: Job, status: str) -> dict[str, Any]:
    """A restore job's `extendedInfo` as the recorded job GET fills it: the property bag names
    the staging account and the point's time from the start, and the config blob once the job
    has completed; `tasksList` is empty."""
    details = job.restore
    assert details is not None
    bag = {
        "Job Type": "Recover disks",
        "Target Storage Account Name": details.account.name,
        "Recovery point time ": recorded_time(details.point.time),
    }
    if status in ("Completed", "CompletedWithWarnings"):
        container, blob = config_blob_of(job)
        bag["Config Blob Name"] = blob
        bag["Config Blob Container Name"] = container
        bag["Config Blob Uri"] = (
            f"https://{details.account.name}.blob.core.windows.net/{container}/{blob}"
        )
    info: dict[str, Any] = {"tasksList": [], "propertyBag": bag}
    if status == "InProgress":
        info["dynamicErrorMessage"] = ""
    elif status == "Failed":
        info["dynamicErrorMessage"] = job.error_code or ""
    return info


def restored_disk_name(source: str, at: datetime) -> str:
    """The source disk's name with the restore's date and time appended (Azure appends both;
    the exact form, `-yyyyMMdd-HHmmss`, is ours)."""
    suffix = at.astimezone(UTC).strftime("-%Y%m%d-%H%M%S")
    return source[: MAX_DISK_NAME - len(suffix)] + suffix


def config_blob_of(job: Job) -> tuple[str, str]:
    """(container, blob) of the config blob a completed restore job names."""
    assert job.restore is not None
    return job.restore.container, f"config{job.id}.json"


def write_config_blob(connection_string: str | None, job: Job) -> None:
    """Put the job's config blob where the property bag says, in the blob service that stands in
    for every staging account (estate `recoveryServices.stagingBlobs`, Azurite's connection
    string); nothing without one. The body is the stand-in's own (Azure's is the VM's
    configuration); what matters is that the blob and its container exist."""
    if not connection_string or job.restore is None:
        return
    from azure.core.exceptions import AzureError, ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    container, blob = config_blob_of(job)
    body = json.dumps({"jobId": job.id, "restoredDisks": job.restore.disks}).encode()
    service = BlobServiceClient.from_connection_string(connection_string, retry_total=1)
    try:
        with contextlib.suppress(ResourceExistsError):
            service.create_container(container)
        service.get_blob_client(container, blob).upload_blob(body, overwrite=True)
    except AzureError as e:  # the stand-in goes on; the blob is simply not there
        log.warning("stand-in: config blob %s/%s not written: %s", container, blob, e)


def finish_restore(cloud: Cloud, vault: Vault, job: Job, end: datetime) -> None:
    """A RestoreDisks job has ended well: its disks appear in the target group, untagged, one
    per restored disk (the OS disk and each LUN asked for), sized and typed as the source's."""
    details = job.restore
    assert details is not None
    with cloud.lock:
        for plan in details.plans:
            if plan.lun is not None and details.luns is not None and plan.lun not in details.luns:
                continue
            name = restored_disk_name(plan.name, job.start)
            disk_id = compute_id(details.target_subscription, details.target_group, "disks", name)
            n = 1
            while key(disk_id) in cloud.disks:  # two restores in the same second
                n += 1
                name = restored_disk_name(f"{plan.name}-{n}", job.start)
                disk_id = compute_id(
                    details.target_subscription, details.target_group, "disks", name
                )
            disk = Disk(
                subscription=details.target_subscription,
                group=details.target_group,
                name=name,
                location=vault.location,
                sku=plan.sku,
                size_gb=plan.size_gb,
                unique_id=stable_uuid(job.id, name),
                time_created=end,
                os_type=plan.os_type,
                hyper_v_generation=plan.hyper_v_generation,
                security_type=plan.security_type,
                create_option="Restore",
                zones=details.zones,
            )
            cloud.disks[key(disk_id)] = disk
            details.disks.append(disk.id)
