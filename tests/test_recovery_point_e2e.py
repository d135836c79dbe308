"""A recovery-point drill end to end on the stand-in: the real adapters and SDKs, the real
dispatch, the stand-in's clock moved by the simulated host (frozen in between).

Success: Azure Backup restores the VM's disks into the drill group, the drill boots a VM from
them in its isolated network, records RTO, RPO and the job's duration, and leaves nothing.
Fault: the restore job fails; the drill fails naming the job's error code, and nothing is left.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from emulator.process import Endpoints, running_emulator
from shared import dispatch
from shared.names import Timer
from shared.policies import parse_policies
from shared.services import build_runtime
from tests.drill_fakes import SimHost, SimQueues
from tests.e2e_env import stand_in_settings
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

SUB = "0b9f6d2e-4c1a-4e8b-9d3f-7a2c5e8b1f04"
DRILL_RG = "rg-lifeboat-drill-westeurope"
START = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
WRITER_CLIENT_ID = "7a1d3e5c-9b2f-4c6a-8e0d-1f3b5a7c9e21"
WRITER_OBJECT_ID = "2e4c6a8b-0d1f-4a3c-9b5e-7d9f1b3d5f62"
STAGING = (
    f"/subscriptions/{SUB}/resourceGroups/{DRILL_RG}/providers/Microsoft.Storage/"
    "storageAccounts/stlbstageweu"
)


def _vm(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-app",
        "size": "Standard_D2s_v5",
        "osType": "Linux",
        "tags": {"lifeboat:drill": "vault"},
        "osDisk": {"name": f"{name}-osdisk", "sku": "Premium_LRS", "sizeGB": 32},
        "dataDisks": [{"lun": 0, "name": f"{name}-data-0", "sku": "Premium_LRS", "sizeGB": 64}],
    }


ESTATE: dict[str, Any] = {
    "version": 1,
    "identities": [
        {
            "name": "id-lifeboat",
            "clientId": "5e0c7a91-2b4d-4f6e-8a1c-3d9b7e5f2a60",
            "objectId": "9c4e2a71-6b3d-4e8f-a1c5-7d2b9e4f6a38",
        },
        {
            "name": "id-lifeboat-backup-writer",
            "clientId": WRITER_CLIENT_ID,
            "objectId": WRITER_OBJECT_ID,
        },
    ],
    "subscriptions": [
        {
            "id": SUB,
            "name": "restore",
            "location": "westeurope",
            "resourceGroups": [{"name": "rg-app"}, {"name": "rg-backup"}, {"name": DRILL_RG}],
            "vms": [_vm("vm-good-01"), _vm("vm-fail-01")],
        }
    ],
    "storageAccounts": [{"name": "stlbstageweu", "resourceGroup": DRILL_RG}],
    "vaults": [
        {
            "name": "rsv-weu",
            "resourceGroup": "rg-backup",
            "policies": [{"name": "Daily", "time": "02:30", "retentionDays": 30}],
            "items": [
                {
                    "vm": "rg-app/vm-good-01",
                    "lastBackup": "90m",
                    "points": {"count": 10, "every": "1d", "newest": "90m"},
                    "restore": {"seconds": 600},
                },
                {
                    "vm": "rg-app/vm-fail-01",
                    "lastBackup": "90m",
                    "points": {"count": 3, "every": "1d", "newest": "90m"},
                    "restore": {"outcome": "fail", "errorCode": "UserErrorDiskCreationFailed"},
                },
            ],
        }
    ],
}
POLICIES = parse_policies(
    {
        "version": 1,
        "policies": {},
        "drillPlans": {
            "vault": {
                "everyDays": 1,
                "rtoTargetMinutes": 60,
                "maxLifetimeHours": 4,
                "bootTimeoutMinutes": 15,
                "source": "recovery-point",
                "recoveryPoint": {"choose": "random", "windowDays": 7, "rpoTargetHours": 26},
            }
        },
    }
)


class StandInClock:
    """The stand-in's frozen clock as SimQueues uses it: read here, moved through the admin API."""

    def __init__(self, admin: httpx.Client) -> None:
        self.admin = admin
        self.value = datetime.fromisoformat(
            admin.get("/clock").json()["now"].replace("Z", "+00:00")
        )

    def now(self) -> datetime:
        return self.value

    def set(self, at: datetime) -> None:
        self.admin.post(
            "/clock", json={"set": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        ).raise_for_status()
        self.value = at

    def advance(self, **delta: float) -> None:
        self.set(self.value + timedelta(**delta))


@pytest.fixture(scope="module")
def ep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    estate = tmp_path_factory.mktemp("rp-drill") / "estate.yaml"
    estate.write_text(yaml.safe_dump(ESTATE))
    args = ("--clock-start", "2026-11-27T04:00:00Z", "--clock-rate", "0")
    args += ("--retry-after-scale", "0", "--operation-seconds", "5")
    with running_emulator(estate, *args, timeout=30) as endpoints:
        yield endpoints


def _night(ep: Endpoints) -> tuple[MemoryReporter, Any, StandInClock]:
    tls = ssl.create_default_context(cafile=ep.ca_bundle)
    admin = httpx.Client(base_url=ep.admin, verify=tls, timeout=30)
    clock = StandInClock(admin)
    reporter = MemoryReporter()
    with patched_environ(ep.environment()):
        settings = stand_in_settings(
            ep,
            SUB,
            RECOVERY_POINT_DRILLS="true",
            RESTORE_STAGING_ACCOUNTS=f"westeurope={STAGING}",
            BACKUP_WRITER_CLIENT_ID=WRITER_CLIENT_ID,
        )
        queues = SimQueues(clock)  # type: ignore[arg-type]
        rt = build_runtime(
            settings, clock=clock, reporter=reporter, queues=queues, policies=POLICIES
        )
        host = SimHost(rt, queues)
        dispatch.fire(rt, Timer.DRILL)
        host.drain()
        clock.advance(hours=5)  # past every lifetime: the sweeper's next pass
        dispatch.fire(rt, Timer.SWEEPER)
        host.drain()
        left = rt.drills.list_drill_resources(SUB, DRILL_RG)
    return reporter, left, clock


def test_a_recovery_point_drill_on_the_stand_in_restores_boots_measures_and_cleans_up(
    ep: Endpoints,
) -> None:
    reporter, left, _clock = _night(ep)
    rows = {o.vm_name: o for o in reporter.outcomes if o.operation == "drill"}
    good = rows["vm-good-01"]
    assert good.status == "succeeded", good.reason
    details = good.details
    assert details["source"] == "recovery-point"
    assert details["restoreStatus"] == "Completed"
    assert details["validationStatus"] == "passed"
    assert details["restoreJobSeconds"] == 600
    assert details["restoreJobId"]
    assert details["pointId"].lower().endswith(details["pointId"].rsplit("/", 1)[1])
    assert good.rpo_seconds is not None
    assert good.rpo_seconds >= 90 * 60
    assert good.rto_seconds is not None
    assert good.rto_seconds > 600
    assert details["stagingLeft"][0].startswith("https://stlbstageweu.blob.core.windows.net/")
    # The fault: the restore job failed with its code; the drill says so.
    failed = rows["vm-fail-01"]
    assert failed.status == "failed"
    assert "UserErrorDiskCreationFailed" in (failed.reason or "")
    assert failed.details["validationStatus"] == "not run"
    # Nothing a drill made is left in the drill group.
    assert [
        r.name for r in left if r.kind in ("disks", "virtualMachines", "networkInterfaces")
    ] == []
    assert not [r for r in left if r.kind in ("virtualNetworks", "networkSecurityGroups")]
    # Both restores were triggered by the backup-writer identity, nothing else by it.
    tls = ssl.create_default_context(cafile=ep.ca_bundle)
    with httpx.Client(base_url=ep.admin, verify=tls, timeout=30) as admin:
        entries = admin.get("/requests", params={"limit": 20000}).json()["entries"]
    by_writer = [e for e in entries if e["principal"] == WRITER_OBJECT_ID]
    assert sorted(e["method"] for e in by_writer) == ["POST", "POST"]
    assert all(e["path"].endswith("/restore") for e in by_writer)
    assert not [
        e for e in entries if e["path"].endswith("/restore") and e["principal"] != WRITER_OBJECT_ID
    ]


def test_the_restore_module_names_no_alternate_or_original_location() -> None:
    source = (Path(__file__).parents[1] / "shared" / "adapters" / "backup.py").read_text()
    assert '"recoveryType": "RestoreDisks"' in source
    assert "AlternateLocation" not in source.replace("never `AlternateLocation`", "")
