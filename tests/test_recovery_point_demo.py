"""`lifeboat demo`'s first night drills vm-web-01 from its Azure Backup recovery point too, the
restore triggered by the backup-writer identity (the session's demo run, shared with test_e2e)."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import DemoRun
from tests.test_infra_roles import _actions, _granted_by, _rows

pytestmark = pytest.mark.e2e

RESTORE = (
    "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/"
    "recoveryPoints/restore/action"
)


def test_demo_json_carries_a_succeeded_recovery_point_drill(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    [drill] = [d for d in demo_run.document["drills"] if d["source"] == "recovery-point"]
    assert drill["status"] == "succeeded", drill["reason"]
    assert drill["vmId"].endswith("/virtualMachines/vm-web-01")
    assert drill["validationStatus"] == "passed"
    # The restore job alone is the stand-in's ten minutes; the VM's create and boot come on top.
    assert drill["job"]["durationSeconds"] == 600
    assert drill["job"]["status"] == "Completed"
    assert drill["job"]["id"]
    assert isinstance(drill["rtoSeconds"], int)
    assert 600 < drill["rtoSeconds"] <= drill["rtoTargetSeconds"]
    point = drill["point"]
    assert "/protectedItems/VM;iaasvmcontainerv2;rg-app;vm-web-01/recoveryPoints/" in point["id"]
    assert point["type"] == "AppConsistent"
    assert point["tier"] == "snapshot"
    # The latest point: the vault's 02:30 backup of the first night; the drill starts at 04:00.
    taken = datetime.fromisoformat(point["time"].replace("Z", "+00:00"))
    assert (taken.hour, taken.minute // 30) == (2, 1)
    assert isinstance(drill["rpoSeconds"], int)
    assert 3600 <= drill["rpoSeconds"] <= 90 * 60
    assert "drill of vm-web-01 from recovery-point: succeeded" in demo_run.stderr


def test_only_the_backup_writer_identity_triggered_the_restore(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    app, writer = demo_run.requests, demo_run.requests["backupWriter"]
    assert writer["byOperation"] == {RESTORE: 1}
    # Azure's linked check on the source VM: why the trigger is not Lifeboat's own identity's.
    assert writer["byAction"] == {RESTORE: 1, "Microsoft.Compute/virtualMachines/write": 1}
    assert RESTORE not in app["byOperation"]
    assert RESTORE not in app["byAction"]
    role = sorted(_actions(_rows("separateIdentity", {"recoveryPointDrills"})))
    assert _granted_by(RESTORE, role)
