"""Literal domain objects for planner and backup verification tests."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cli.events import vm_write_event
from shared.messages import VerificationVaultRequest
from shared.model import (
    BackupJob,
    Disk,
    DiskAttachment,
    ProtectedItem,
    RecoveryPoint,
    Snapshot,
    Vault,
    Vm,
)
from shared.snapshots import slot_of, snapshot_name

SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
GROUP = "rg-lifeboat-snapshots"


def placed(resource_id: str, name: str, group: str = "rg-app") -> dict[str, Any]:
    """The fields every ARM resource here shares: its id and name, in SUB/`group`, westeurope."""
    return {
        "id": resource_id,
        "name": name,
        "subscription_id": SUB,
        "resource_group": group,
        "location": "westeurope",
    }


def disk_id(name: str, group: str = "rg-app") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/disks/{name}"


def disk(name: str, *, group: str = "rg-app", unique: str | None = None, **extra: object) -> Disk:
    return Disk(
        **placed(disk_id(name, group), name, group),
        unique_id=unique or f"uid-{name}",
        sku="Premium_LRS",
        **extra,  # type: ignore[arg-type]
    )


def vm_id(name: str, group: str = "rg-app") -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/"
        f"virtualMachines/{name}"
    )


def vm(
    name: str,
    os_disk: str | None,
    *data: tuple[int, str],
    tags: dict[str, str] | None = None,
    group: str = "rg-app",
    ephemeral: bool = False,
    security_type: str | None = None,
) -> Vm:
    return Vm(
        **placed(vm_id(name, group), name, group),
        tags={"lifeboat:policy": "daily"} if tags is None else tags,
        os_disk=DiskAttachment(None, disk_id(os_disk) if os_disk else None, ephemeral=ephemeral),
        data_disks=tuple(DiskAttachment(lun, disk_id(d)) for lun, d in data),
        security_type=security_type,
        size="Standard_D2s_v5",
        os_type="Linux",
    )


def night(day: int, hour: int = 2) -> datetime:
    """2026-11-{day} at 02:00 UTC."""
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def snapshot_of(
    d: Disk,
    at: datetime,
    *,
    name: str | None = None,
    group: str = GROUP,
    state: str = "Succeeded",
    tags: dict[str, str] | None = None,
    source: str | None = None,
) -> Snapshot:
    name = name or snapshot_name(d.id, d.unique_id, slot_of(at))
    return Snapshot(
        **placed(
            f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/snapshots/{name}",
            name,
            group,
        ),
        time_created=at + timedelta(seconds=3),
        source_resource_id=source or d.id,
        source_unique_id=d.unique_id,
        incremental=True,
        provisioning_state=state,
        tags={"lifeboat:policy": "daily"} if tags is None else tags,
    )


# ---------------------------------------------------------------- backup verification literals

VERIFY_NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
VAULT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv"
)


VAULT = Vault(VAULT_ID, "rsv", SUB, "rg-backup", "westeurope")


def vault_request(
    vault: Vault, vms: dict[str, dict[str, list[str]]], *, slot: str, designated: bool = False
) -> VerificationVaultRequest:
    """The message that verifies `vault` at `slot`, its in-scope VMs packed as `vms`."""
    return VerificationVaultRequest.model_validate(
        {
            "subscriptionId": vault.subscription_id,
            "vaultId": vault.id,
            "vaultName": vault.name,
            "resourceGroup": vault.resource_group,
            "location": vault.location,
            "slot": slot,
            "designated": designated,
            "vms": vms,
        }
    )


def protected_item(name: str = "web", **changes: object) -> ProtectedItem:
    """VM `name` in vault rsv, protected, its last backup and recovery point 5 hours old."""
    base = ProtectedItem(
        id=f"/Subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/"
        f"vaults/rsv/backupFabrics/Azure/protectionContainers/IaasVMContainer;iaasvmcontainerv2;"
        f"rg-app;{name}/protectedItems/VM;iaasvmcontainerv2;rg-app;{name}",
        vault_id=VAULT_ID,
        vm_id=vm_id(name),
        container_name=f"IaasVMContainer;iaasvmcontainerv2;rg-app;{name}",
        name=f"VM;iaasvmcontainerv2;rg-app;{name}",
        protection_state="Protected",
        last_backup_time=VERIFY_NOW - timedelta(hours=5),
        last_recovery_point=VERIFY_NOW - timedelta(hours=5),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def backup_job(
    name: str, status: str, hours_ago: float, code: str | None = None, **kw: object
) -> BackupJob:
    return BackupJob(
        id=f"{VAULT_ID}/backupJobs/{name}-{status}-{hours_ago}",
        vault_id=VAULT_ID,
        entity_name=name,
        container_name=None,
        operation="Backup",
        status=status,
        start_time=VERIFY_NOW - timedelta(hours=hours_ago),
        error_code=code,
        **kw,  # type: ignore[arg-type]
    )


def recovery_point(hours_ago: float, kind: str = "CrashConsistent") -> RecoveryPoint:
    return RecoveryPoint(
        id=f"rp-{hours_ago}", time=VERIFY_NOW - timedelta(hours=hours_ago), consistency=kind
    )


def unattached_vm(name: str, *, created: datetime | None = None, **tags: str) -> Vm:
    """VM `name` with policy daily (and `tags`) and no disks: all verification reads of a VM."""
    return Vm(
        **placed(vm_id(name), name),
        tags={"lifeboat:policy": "daily", **tags},
        os_disk=DiskAttachment(lun=None, disk_id=None),
        time_created=created,
    )


# ------------------------------------------------------------------------------- VM events

OTHER_SUB = "9d9d9d9d-0000-4000-8000-000000000009"

# Events Lifeboat drops, the reason it gives, and whether the drop is reported as an outcome.
DROPPED_VM_EVENTS = [
    pytest.param(
        vm_write_event(
            SUB, "rg-app", "web", event_type="Microsoft.Resources.ResourceDeleteSuccess"
        ),
        "is not Microsoft.Resources.ResourceWriteSuccess",
        False,
        id="delete-event",
    ),
    pytest.param(
        vm_write_event(SUB, "rg-app", "web", operation="Microsoft.Resources/tags/write"),
        "is not Microsoft.Compute/virtualMachines/write",
        False,
        id="tag-write",
    ),
    pytest.param(
        vm_write_event(OTHER_SUB, "rg-app", "web"),
        "is not a target subscription",
        True,
        id="other-subscription",
    ),
]
