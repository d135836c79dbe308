"""`lifeboat recover --recovery-point` on in-memory ports: the point's choice, each refusal (no
item, the point gone, no staging account...), the restore followed to its job's end, the VM built
from the restored disks by LUN, a failed job, a dry run that triggers nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from cli.recover_cmd import perform
from shared.model import DrillResource, ProtectedItem, RecoveryPoint, Vault
from shared.ports import RefusedError, RestoreJob, RestoreRequest
from shared.recovery import Request
from shared.recovery.model import SourceDisk
from tests.builders import SUB
from tests.fakes import FixedClock, MemoryReporter
from tests.test_recover import D0, D3, GROUP, NOW, OS, VM_ID, FakeRecovery

VAULT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/"
    "vaults/rsv-weu"
)
CONTAINER = "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-app"
ITEM_ID = (
    f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{CONTAINER}/protectedItems/"
    "VM;iaasvmcontainerv2;rg-app;vm-app"
)
STAGING = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.Storage/"
    "storageAccounts/stlbstageweu"
)
NEWEST = NOW - timedelta(hours=3)


def _point(
    name: str, hours_ago: float, tiers: tuple[str, ...] = ("snapshot", "vault")
) -> RecoveryPoint:
    return RecoveryPoint(
        f"{ITEM_ID}/recoveryPoints/{name}", NOW - timedelta(hours=hours_ago), "AppConsistent", tiers
    )


@dataclass
class Restore:
    request: RestoreRequest
    started: datetime


class FakePointBackup:
    """A vault protecting vm-app with three points; a restore's job runs `job_seconds` on the
    test clock, then leaves a disk per disk of the VM in the target group (named as Azure does)."""

    def __init__(self, clock: FixedClock, cloud: FakeRecovery) -> None:
        self.clock = clock
        self.cloud = cloud
        self.vault = Vault(VAULT_ID, "rsv-weu", SUB, "rg-backup", "West Europe")
        self.items = [
            ProtectedItem(ITEM_ID, VAULT_ID, VM_ID, CONTAINER, ITEM_ID.rsplit("/", 1)[-1], "On")
        ]
        self.points = [_point("1001", 3), _point("1002", 27), _point("1003", 51, ("vault",))]
        self.status = "Completed"
        self.job_seconds = 600.0
        self.restores: list[Restore] = []

    def list_vaults(self, subscription_id: str) -> list[Vault]:
        return [self.vault]

    def list_protected_items(self, vault: Vault) -> list[ProtectedItem]:
        return list(self.items)

    def list_recovery_points(self, item: ProtectedItem) -> list[RecoveryPoint]:
        return list(self.points)

    def get_point(self, item: ProtectedItem, point_id: str) -> RecoveryPoint | None:
        name = point_id.rsplit("/", 1)[-1]
        return next((p for p in self.points if p.id.rsplit("/", 1)[-1] == name), None)

    def trigger_restore(self, item: ProtectedItem, request: RestoreRequest) -> str:
        self.restores.append(Restore(request, self.clock.now()))
        return "op-1"

    def get_restore_operation(self, item: ProtectedItem, operation_id: str) -> str | None:
        waited = self.clock.now() - self.restores[-1].started
        return "job-1" if waited >= timedelta(seconds=30) else None

    def get_job(self, vault_id: str, job_id: str) -> RestoreJob | None:
        restore = self.restores[-1]
        end = restore.started + timedelta(seconds=self.job_seconds)
        status = self.status if self.clock.now() >= end else "InProgress"
        if status != "InProgress" and not self.cloud.group_disks:
            self._leave_disks(restore, only_os=status == "Failed")
        failed = status == "Failed"
        return RestoreJob(
            job_id,
            "Restore",
            status,
            restore.started,
            None if status == "InProgress" else end,
            error_code="UserErrorDiskCreationFailed" if failed else None,
            error_message="Disk creation failed" if failed else None,
        )

    def _leave_disks(self, restore: Restore, *, only_os: bool) -> None:
        stamp = restore.started.strftime("-%Y%m%d-%H%M%S")
        for source in (OS,) if only_os else (OS, D0, D3):
            disk_id = f"{restore.request.target_group_id}/providers/Microsoft.Compute/disks/" + (
                source.rsplit("/", 1)[-1] + stamp
            )
            self.cloud.group_disks.append(
                DrillResource(
                    disk_id,
                    "disks",
                    disk_id.rsplit("/", 1)[-1],
                    provisioning_state="Succeeded",
                    time_created=self.clock.now(),
                )
            )
            self.cloud.disks[disk_id.lower()] = SourceDisk(
                disk_id, disk_id.rsplit("/", 1)[-1], "westeurope", "Premium_LRS", 64
            )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def cloud(clock: FixedClock) -> FakeRecovery:
    return FakeRecovery(clock)


@pytest.fixture
def backup(clock: FixedClock, cloud: FakeRecovery) -> FakePointBackup:
    return FakePointBackup(clock, cloud)


def _recover(
    cloud: FakeRecovery,
    clock: FixedClock,
    backup: FakePointBackup,
    point: str = "latest",
    *,
    staging: str | None = STAGING,
    waits: list[str] | None = None,
    dry_run: bool = False,
    reporter: MemoryReporter | None = None,
    **request: Any,
) -> dict[str, Any]:
    return perform(
        cloud,
        clock,
        reporter or MemoryReporter(),
        Request(VM_ID, recovery_point=point, **request),
        lambda s: GROUP,
        sleep=lambda s: clock.advance(seconds=s),
        poll_seconds=5,
        dry_run=dry_run,
        backup=backup,
        staging_accounts=lambda sub, region: staging if region == "westeurope" else None,
        on_wait=(waits if waits is not None else []).append,
    )


def test_latest_point_restores_its_disks_and_boots_a_new_vm_from_them_by_lun(
    cloud: FakeRecovery, clock: FixedClock, backup: FakePointBackup
) -> None:
    waits: list[str] = []
    reporter = MemoryReporter()
    document = _recover(cloud, clock, backup, waits=waits, reporter=reporter)
    assert document["status"] == "succeeded", document["reason"]
    [restore] = backup.restores
    assert restore.request == RestoreRequest(
        point_id=f"{ITEM_ID}/recoveryPoints/1001",
        source_vm_id=VM_ID,
        region="westeurope",
        target_group_id=f"/subscriptions/{SUB}/resourceGroups/rg-app",
        staging_account_id=STAGING,
        zones=("2",),
    )
    stamp = restore.started.strftime("-%Y%m%d-%H%M%S")
    vm = next(r for kind, r in cloud.writes if kind == "vm")
    assert vm.os_disk_id.endswith(f"/disks/vm-app-os{stamp}")
    assert [(lun, d.rsplit("/", 1)[-1]) for lun, d in vm.data_disks] == [
        (0, f"vm-app-d0{stamp}"),
        (3, f"vm-app-d3{stamp}"),
    ]
    assert not [kind for kind, _ in cloud.writes if kind == "disk"]  # the restore made them
    tags = {r[0].rsplit("/", 1)[-1]: r[1] for kind, r in cloud.writes if kind == "tag"}
    assert tags[f"vm-app-d3{stamp}"]["lifeboat:replaces"] == D3
    assert tags[f"vm-app-d3{stamp}"]["lifeboat:recovered-from"].endswith(VM_ID)
    assert set(document["steps"]) == {"restore", "vm", "agent-ready"}
    assert document["steps"]["restore"] >= 600
    assert document["rtoSeconds"] == pytest.approx(sum(document["steps"].values()))
    assert document["rpoSeconds"] == (NOW - NEWEST).total_seconds()
    assert document["restoreJob"] == "job-1"
    [row] = reporter.outcomes
    assert (row.details["pointId"], row.details["restoreJobId"]) == (document["pointId"], "job-1")
    assert document["source"].startswith("recovery point 1001 of ")
    assert any("job job-1 InProgress" in w for w in waits)
    assert cloud.writes[-1] == ("untag", (VM_ID, ["lifeboat:recovery"]))


def test_a_named_point_by_name_or_id_and_a_swap_from_it(
    cloud: FakeRecovery, clock: FixedClock, backup: FakePointBackup
) -> None:
    planned = _recover(cloud, clock, backup, "1002", dry_run=True)
    assert planned["pointId"].endswith("/1002")
    document = _recover(cloud, clock, backup, f"{ITEM_ID}/recoveryPoints/1002", mode="swap-disks")
    assert document["status"] == "succeeded", document["reason"]
    assert document["rpoSeconds"] == 27 * 3600
    _etag, os_id, data = next(r for kind, r in cloud.writes if kind == "update")
    assert os_id == document["disks"][0]
    assert [lun for lun, _ in data] == [0, 3]
    assert cloud.disks[D0.lower()].tags["lifeboat:replaced-by"] == document["disks"][1]


def test_a_dry_run_shows_the_point_and_the_plan_and_triggers_nothing(
    cloud: FakeRecovery, clock: FixedClock, backup: FakePointBackup
) -> None:
    document = _recover(cloud, clock, backup, dry_run=True)
    assert document["status"] == "planned"
    assert backup.restores == []
    assert cloud.writes == []
    actions = [(a["action"], a["source"]) for a in document["plan"]]
    assert actions[:2] == [("tag", None), ("restore-disks", f"{ITEM_ID}/recoveryPoints/1001")]
    assert [a for a, _ in actions].count("restore-disk") == 3
    assert [a for a, _ in actions][-3:] == ["create-nic", "create-vm", "untag"]


REFUSALS: list[tuple[str, str, str]] = [
    ("no-item", "latest", "vm-app has no Azure Backup item in subscription"),
    ("soft-deleted", "latest", "backup item in vault rsv-weu is soft-deleted"),
    ("no-points", "latest", "vm-app has no recovery point to restore"),
    ("gone", "999", "recovery point 999 of vm-app is gone (expired"),
    ("another-item", f"{VAULT_ID}/x/recoveryPoints/1001", "is not a recovery point of vm-app's"),
    ("archived", "1003x", "is in the archive tier only"),
    ("no-staging", "latest", "no staging storage account for subscription"),
    ("ade", "latest", "vm-app-d0 uses Azure Disk Encryption: Lifeboat restores disks without"),
]


@pytest.mark.parametrize(("case", "point", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_refusal_says_why_and_triggers_nothing(
    cloud: FakeRecovery,
    clock: FixedClock,
    backup: FakePointBackup,
    case: str,
    point: str,
    message: str,
) -> None:
    staging: str | None = STAGING
    if case == "no-item":
        backup.items = []
    elif case == "soft-deleted":
        backup.items = [replace(backup.items[0], soft_deleted=True)]
    elif case == "no-points":
        backup.points = []
    elif case == "archived":
        backup.points.append(_point("1003x", 900, ()))
    elif case == "no-staging":
        staging = None
    elif case == "ade":
        cloud.disks[D0.lower()] = replace(cloud.disks[D0.lower()], azure_disk_encryption=True)
    document = _recover(cloud, clock, backup, point, staging=staging)
    assert document["status"] == "refused"
    assert message in document["reason"]
    assert backup.restores == []
    assert [kind for kind, _ in cloud.writes] == []


def test_the_staging_account_option_wins_over_the_settings(
    cloud: FakeRecovery, clock: FixedClock, backup: FakePointBackup
) -> None:
    mine = STAGING.replace("stlbstageweu", "stmine")
    _recover(cloud, clock, backup, staging=None, staging_account_id=mine, mode="disks-only")
    assert backup.restores[0].request.staging_account_id == mine


def test_a_failed_restore_job_fails_naming_its_error_and_keeps_what_it_restored(
    cloud: FakeRecovery, clock: FixedClock, backup: FakePointBackup
) -> None:
    backup.status = "Failed"
    document = _recover(cloud, clock, backup)
    assert document["status"] == "failed"
    assert document["reason"] == (
        "the restore job job-1 Failed: UserErrorDiskCreationFailed: Disk creation failed"
    )
    [kept] = document["created"]
    assert kept.rsplit("/", 1)[-1].startswith("vm-app-os-")
    assert kept in [r[0] for kind, r in cloud.writes if kind == "tag"]
    assert not [kind for kind, _ in cloud.writes if kind in ("nic", "vm", "deallocate")]
    assert cloud.writes[-1] == ("untag", (VM_ID, ["lifeboat:recovery"]))
    assert document["rtoSeconds"] is None


def test_a_trigger_azure_refuses_fails_with_its_code(
    cloud: FakeRecovery, clock: FixedClock, backup: FakePointBackup
) -> None:
    def refuse(item: ProtectedItem, request: RestoreRequest) -> str:
        raise RefusedError("AuthorizationFailed", "no Microsoft.Compute/virtualMachines/write")

    backup.trigger_restore = refuse  # type: ignore[method-assign]
    document = _recover(cloud, clock, backup)
    assert document["status"] == "failed"
    assert document["reason"].startswith("Azure refused: AuthorizationFailed: no Microsoft")
