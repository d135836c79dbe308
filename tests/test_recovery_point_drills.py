"""Drills from Azure Backup recovery points with in-memory ports: the choice of point, the
restore into the drill group, the drill that follows, the row, and every fault ending in a
`drill failed` that names its cause with nothing left after the sweeper's next pass."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared import dispatch, drills
from shared.drills.source import choose_recovery_point
from shared.messages import DrillState
from shared.model import Outcome, RecoveryPoint
from shared.names import Timer
from shared.policies import parse_policies
from shared.ports import RefusedError
from tests.builders import SUB, disk, night, vm
from tests.conftest import base_settings
from tests.drill_fakes import (
    DRILL_GROUP,
    VAULT_ID,
    FakeDrillCloud,
    FakeRestoreBackup,
    InjectedError,
    SimHost,
    SimQueues,
    TaggingCompute,
)
from tests.fakes import FakeWorld, FixedClock

STAGING = (
    f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}/providers/Microsoft.Storage/"
    "storageAccounts/stlbstageweu"
)
POLICIES = parse_policies(
    {
        "version": 1,
        "policies": {"daily": {"retention": {"daily": 7}, "drillPlan": "vault"}},
        "drillPlans": {
            "vault": {
                "everyDays": 1,
                "rtoTargetMinutes": 60,
                "maxLifetimeHours": 4,
                "bootTimeoutMinutes": 10,
                "source": "recovery-point",
                "recoveryPoint": {
                    "choose": "random",
                    "windowDays": 7,
                    "restoreTimeoutMinutes": 60,
                    "rpoTargetHours": 26,
                },
            },
        },
    }
)


class World(FakeWorld):
    """Protected VMs with ten daily points, a drill group, a staging account, a host."""

    def __init__(self, vms: int = 1, **settings: str) -> None:
        clock = FixedClock(night(27, 4))
        self.cloud = FakeDrillCloud(clock)
        self.cloud.groups[SUB] = ["rg-app", DRILL_GROUP]
        values = base_settings(
            DRILL_POLL_SECONDS="30",
            ARM_WRITES_PER_SECOND="4",
            RECOVERY_POINT_DRILLS="true",
            RESTORE_STAGING_ACCOUNTS=f"westeurope={STAGING}",
            BACKUP_WRITER_CLIENT_ID="backup-writer",
        )
        values.update(settings)
        queues = SimQueues(clock)
        super().__init__(clock, queues, values, POLICIES, drills=self.cloud)
        self.compute = TaggingCompute(clock)
        self.compute.cloud = self.cloud
        self.backup = FakeRestoreBackup(clock, self.cloud, self.compute)
        self.rt = dataclasses.replace(self.rt, compute=self.compute, backup=self.backup)
        for i in range(vms):
            self.add_vm(f"vm{i:02d}")
        self.host = SimHost(self.rt, self.queues)

    def add_vm(self, name: str) -> None:
        os_disk, data_disk = disk(f"{name}-os"), disk(f"{name}-data")
        self.compute.disks[os_disk.id.lower()] = os_disk
        self.compute.disks[data_disk.id.lower()] = data_disk
        machine = vm(name, os_disk.name, (0, data_disk.name))
        self.compute.vms.append(machine)
        self.backup.protect(machine)

    def night(self) -> None:
        dispatch.fire(self.rt, Timer.DRILL)
        self.host.drain()

    def sweep_after_expiry(self) -> None:
        """Past every drill's lifetime and the drill window, the sweeper's next pass."""
        self.clock.advance(hours=5)
        dispatch.fire(self.rt, Timer.SWEEPER)
        self.host.drain()

    def outcomes(self, operation: str = "drill") -> list[Outcome]:
        rows: dict[str, Outcome] = {}
        for o in self.reporter.outcomes:
            if o.operation == operation:
                rows.setdefault(o.id or "", o)
        return list(rows.values())


def test_a_recovery_point_drill_restores_boots_measures_and_leaves_nothing() -> None:
    world = World()
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    details = outcome.details
    assert details["source"] == "recovery-point"
    assert details["restoreStatus"] == "Completed"
    assert details["validationStatus"] == "passed"
    assert details["restoreJobId"] == "job-1"
    assert details["restoreJobSeconds"] == 600
    assert details["pointId"].startswith(VAULT_ID)
    assert details["pointChoice"] == "random"
    assert "random:" in details["pointWhy"]
    assert details["pointType"] in ("AppConsistent", "CrashConsistent")
    assert details["pointTier"] in ("snapshot", "vault")
    assert {"prepare", "restore", "create-vm", "wait-ready"} <= set(details["steps"])
    assert "create-disks" not in details["steps"]
    # RPO is the drill's start minus the point's time; the RTO counts the restore.
    started = datetime.fromisoformat(details["startedAt"].replace("Z", "+00:00"))
    point_time = datetime.fromisoformat(details["pointTime"].replace("Z", "+00:00"))
    assert outcome.rpo_seconds == round((started - point_time).total_seconds())
    assert outcome.rto_seconds is not None
    assert outcome.rto_seconds > 600
    assert details["rpoTargetSeconds"] == 26 * 3600
    assert details["stagingLeft"] == ["https://stage.blob.core.windows.net/vhd1/cjob-1"]
    # RestoreDisks into the drill group of the vault's subscription, staged in Lifeboat's account.
    (request,) = world.backup.triggers
    assert request.target_group_id == f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}"
    assert request.staging_account_id == STAGING
    # The VM attached the restored disks, tagged as the drill's before the VM was made.
    (vm_request,) = world.cloud.vm_requests
    assert vm_request.os_disk_id.rsplit("/", 1)[1].startswith("vm00-os-2026")
    assert [lun for lun, _ in vm_request.data_disks] == [0]
    tagged = [w for w in world.compute.writes if w[0] == "tags"]
    assert len(tagged) == 2
    assert world.cloud.remaining() == []


def test_the_restore_request_is_restore_disks_never_a_vm_azure_builds() -> None:
    from shared.adapters.backup import restore_body
    from shared.ports import RestoreRequest

    body = restore_body(
        RestoreRequest(
            point_id=f"{VAULT_ID}/x/recoveryPoints/1001",
            source_vm_id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/"
            "virtualMachines/vm",
            region="westeurope",
            target_group_id=f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}",
            staging_account_id=STAGING,
        )
    )["properties"]
    assert body["recoveryType"] == "RestoreDisks"
    assert body["recoveryPointId"] == "1001"
    assert "AlternateLocation" not in str(body)
    assert "OriginalLocation" not in str(body)
    assert not {"targetVirtualMachineId", "virtualNetworkId", "subnetId"} & set(body)


def _fault(world: World, kind: str) -> None:
    if kind == "job failed":
        world.backup.outcome["vm00"] = "fail"
    elif kind == "job stuck":
        world.backup.outcome["vm00"] = "inprogress"
    elif kind == "point gone":
        original = world.backup.get_point

        def gone(item: Any, point_id: str) -> RecoveryPoint | None:
            if world.backup.triggers or any(
                o.operation == "drill" for o in world.reporter.outcomes
            ):
                return original(item, point_id)
            # chosen in prepare, expired before the restore step reads it again
            return None if world.clock.now() > night(27, 4) else original(item, point_id)

        world.backup.get_point = gone  # type: ignore[method-assign]
    elif kind == "staging refused":
        world.backup.refuse["vm00"] = RefusedError(
            "BMSUserErrorStorageAccountNotSupported",
            "the storage account stlbstageweu is zone-redundant",
        )


@pytest.mark.parametrize(
    ("kind", "cause"),
    [
        ("job failed", "the restore job job-1 Failed: UserErrorDiskCreationFailed"),
        ("job stuck", "the restore job job-1 did not end within 60 min (still InProgress)"),
        ("point gone", "no longer exists (expired or deleted since it was chosen)"),
        ("staging refused", "Azure refused during restore: BMSUserErrorStorageAccountNotSupported"),
    ],
)
def test_each_fault_fails_the_drill_naming_its_cause_and_leaves_nothing(
    kind: str, cause: str
) -> None:
    world = World()
    _fault(world, kind)
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "failed"
    assert cause in (outcome.reason or ""), outcome.reason
    assert outcome.details["validationStatus"] == "not run"
    # A stuck job makes its disks after the drill gave up: untagged, the sweeper removes them.
    world.backup.outcome["vm00"] = "complete"
    for restore in world.backup.restores.values():
        restore.outcome = "complete"
        world.backup.get_job(VAULT_ID, restore.job_id)
    world.sweep_after_expiry()
    assert world.cloud.remaining() == []


@pytest.mark.parametrize(
    "step", ["prepare", "restore", "create-vm", "wait-ready", "validate", "measure", "teardown"]
)
def test_a_worker_crash_at_every_step_starts_one_restore_and_ends_clean(step: str) -> None:
    """The worker dies after the step did its work, before it handed the drill on: the host
    delivers the step again, which finds what it did (never a second restore)."""
    world = World()
    crashed: list[str] = []

    def crash(text: str) -> bool:
        leaving = f'"step":"{step}"' in text or (step == "prepare" and '"step":"restore"' in text)
        if leaving and not crashed and '"type":"drill-step"' in text:
            crashed.append(text)
            return True
        return False

    world.queues.crash_before_send = crash
    world.night()
    assert crashed, f"no crash after {step}"
    assert world.host.failures >= 1
    assert len(world.backup.triggers) == 1
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    world.sweep_after_expiry()
    assert world.cloud.remaining() == []


def test_a_crash_after_the_trigger_finds_the_restore_it_started() -> None:
    world = World()
    original = world.backup.trigger_restore
    calls: list[str] = []

    def trigger_then_crash(item: Any, request: Any) -> str:
        operation = original(item, request)
        calls.append(operation)
        if len(calls) == 1:
            raise InjectedError("the worker died after the POST")
        return operation

    world.backup.trigger_restore = trigger_then_crash  # type: ignore[method-assign]
    world.night()
    assert calls == ["op-1"]  # the redelivery found job-1 and never posted again
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    assert outcome.details["restoreJobId"] == "job-1"


def test_no_drill_group_in_the_vaults_subscription_or_no_staging_account_refuses_with_why() -> None:
    world = World()
    world.cloud.groups[SUB] = ["rg-app"]
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "failed"
    assert f"no drill group {DRILL_GROUP} in the vault's subscription" in (outcome.reason or "")
    assert world.backup.triggers == []

    world = World(RESTORE_STAGING_ACCOUNTS="")
    world.night()
    (outcome,) = world.outcomes()
    assert "no staging storage account" in (outcome.reason or "")
    assert world.backup.triggers == []


def test_recovery_point_drills_are_off_until_the_operator_turns_them_on() -> None:
    world = World(RECOVERY_POINT_DRILLS="false")
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "skipped"
    assert "RECOVERY_POINT_DRILLS" in (outcome.reason or "")
    assert world.backup.triggers == []
    with pytest.raises(ValueError, match="RECOVERY_POINT_DRILLS"):
        drills.start_drill_now(world.rt, world.compute.vms[0].id, source="recovery-point")


def test_without_a_backup_writer_identity_no_restore_is_triggered() -> None:
    """The adapter would fall back to Lifeboat's own identity: the drill fails first, naming it."""
    world = World(BACKUP_WRITER_CLIENT_ID="")
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "failed"
    assert "BACKUP_WRITER_CLIENT_ID" in (outcome.reason or "")
    assert world.backup.triggers == []


def test_a_manual_drill_restores_the_point_it_names() -> None:
    world = World()
    machine = world.compute.vms[0]
    point = world.backup.points["vm00"][3]
    state = drills.start_drill_now(
        world.rt, machine.id, source="recovery-point", point=point.id.rsplit("/", 1)[1]
    )
    assert state.drill_id != drills.drill_id_of(machine.id, "202611270400", manual=True)
    world.host.drain()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    assert outcome.details["pointId"] == point.id
    assert outcome.details["pointWhy"] == "named when the drill was started"
    plain = parse_policies({"version": 1, "policies": {}, "drillPlans": {"snap": {"everyDays": 1}}})
    rt = dataclasses.replace(world.rt, policies=plain)
    with pytest.raises(ValueError, match="--point needs --from recovery-point"):
        drills.start_drill_now(rt, machine.id, "snap", point="latest")


def _points(n: int, now: datetime) -> list[RecoveryPoint]:
    return [
        RecoveryPoint(
            f"{VAULT_ID}/rp/{i}",
            now - timedelta(hours=12 * i + 1),
            "AppConsistent" if i % 3 == 0 else "CrashConsistent",
            ("snapshot", "vault") if i < 4 else ("vault",),
        )
        for i in range(n)
    ]


def test_random_within_the_window_reaches_every_point_in_it_and_none_outside() -> None:
    now = night(27, 4)
    points = _points(30, now)  # 15 days of points, twice a day
    inside = {p.id for p in points if p.time >= now - timedelta(days=7)}
    assert 10 < len(inside) < 30
    chosen: dict[str, int] = {}
    for n in range(600):
        drill_id = drills.drill_id_of(f"/vm/{n}", "202611270400")
        choice = choose_recovery_point(
            points,
            drill_id=drill_id,
            choose="random",
            window_days=7,
            app_consistent_only=False,
            tier=None,
            anchor=now,
        )
        assert not isinstance(choice, str)
        chosen[choice.point.id] = chosen.get(choice.point.id, 0) + 1
        again = choose_recovery_point(
            list(reversed(points)),
            drill_id=drill_id,
            choose="random",
            window_days=7,
            app_consistent_only=False,
            tier=None,
            anchor=now,
        )
        assert not isinstance(again, str)
        assert again.point == choice.point  # a redelivered step picks the same point
    assert set(chosen) == inside


def test_latest_app_consistent_and_tier_filters_say_why() -> None:
    now = night(27, 4)
    points = _points(30, now)
    kwargs: dict[str, Any] = {"drill_id": "lbd-aaaaaaaaaa", "window_days": 30, "anchor": now}
    latest = choose_recovery_point(
        points, choose="latest", app_consistent_only=False, tier=None, **kwargs
    )
    assert not isinstance(latest, str)
    assert latest.point == points[0]
    assert latest.why.startswith("latest of 30 points within 30 d")
    app = choose_recovery_point(
        points[1:], choose="latest", app_consistent_only=True, tier="vault", **kwargs
    )
    assert not isinstance(app, str)
    assert app.point == points[3]
    assert "application-consistent, in the vault tier" in app.why
    none = choose_recovery_point(
        points[4:], choose="latest", app_consistent_only=False, tier="snapshot", **kwargs
    )
    assert none == ("no recovery point within 30 d before 2026-11-27T04:00Z, in the snapshot tier")


def test_the_sweeper_never_touches_azure_backup_groups() -> None:
    world = World()
    state = DrillState(
        drillId="lbd-aaaaaaaaaa",
        step="teardown",
        startedAt=world.clock.now(),
        expiresAt=world.clock.now(),
        drillSubscription=SUB,
        drillGroup="AzureBackupRG_westeurope_1",
        location="westeurope",
        swept=True,
    )
    world.cloud.groups[SUB].append("AzureBackupRG_westeurope_1")
    world.cloud._add(
        f"/subscriptions/{SUB}/resourceGroups/AzureBackupRG_westeurope_1/providers/"
        "Microsoft.Compute/disks/d",
        "disks",
        "westeurope",
        {"lifeboat:drill": "lbd-aaaaaaaaaa", "lifeboat:managed": "true"},
    )
    rt = world.rt
    ctx = dispatch.Context(rt, dispatch.Job.DRILL, "r", "k")  # type: ignore[attr-defined]
    drills.drill_step(state, ctx)
    assert not [c for c in world.cloud.calls if c[0] == "begin_delete"]
