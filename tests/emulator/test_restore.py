"""Restores from Azure Backup recovery points on the stand-in, through the real SDK.

azure-mgmt-recoveryservicesbackup as installed: `recovery_points.list/get`,
`restores.begin_trigger` (no job id: the `Azure-AsyncOperation` header is captured with `cls=`
and `polling=False`), `protected_item_operation_statuses.get`, `job_details.get`; azure-mgmt-compute
for the restored disks. One stand-in of its own (frozen clock, moved through the admin API); each
test uses its own protected VM, so the order does not matter. Bodies are compared with the REST-spec
examples and the 0.4.0 recording (tests/data/ORIGIN.md).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpx
import pytest
import yaml
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

from emulator.clock import Clock
from emulator.config import Behaviour
from emulator.estate import EstateError, build_cloud
from emulator.process import Endpoints, running_emulator
from emulator.recoveryservices import RecoveryServices
from tests.emulator.conftest import CLOCK_START

SUB = "0b9f6d2e-4c1a-4e8b-9d3f-7a2c5e8b1f04"
VAULT, VAULT_RG, DRILL_RG, STAGE_RG = "rsv-weu", "rg-app", "rg-drill", "rg-stage"
DATA = Path(__file__).resolve().parents[1] / "data"


def _vm(name: str, *, data: int = 0) -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-app",
        "size": "Standard_D4s_v5",
        "osType": "Linux",
        "osDisk": {"name": f"{name}-osdisk", "sku": "Premium_LRS", "sizeGB": 64},
        "dataDisks": [
            {
                "lun": n,
                "name": f"{name}-data-{n}",
                "sku": "StandardSSD_LRS",
                "sizeGB": 128 * (n + 1),
            }
            for n in range(data)
        ],
    }


ESTATE: dict[str, Any] = {
    "version": 1,
    "identities": [
        {
            "name": "id-lifeboat",
            "clientId": "5e0c7a91-2b4d-4f6e-8a1c-3d9b7e5f2a60",
            "objectId": "9c4e2a71-6b3d-4e8f-a1c5-7d2b9e4f6a38",
        }
    ],
    "subscriptions": [
        {
            "id": SUB,
            "name": "restore",
            "location": "westeurope",
            "resourceGroups": [
                {"name": VAULT_RG},
                {"name": DRILL_RG},
                {"name": STAGE_RG},
                {"name": "rg-north", "location": "northeurope"},
            ],
            "vms": [
                _vm("vm-list-01"),
                _vm("vm-app-01", data=2),
                _vm("vm-fail-01", data=1),
                _vm("vm-warn-01"),
                _vm("vm-stuck-01"),
                _vm("vm-old-01"),
            ],
        }
    ],
    "storageAccounts": [
        {"name": "stlbstageweu", "resourceGroup": STAGE_RG},
        {"name": "stlbstagezrs", "resourceGroup": STAGE_RG, "sku": "Standard_ZRS"},
        {"name": "stlbstageblob", "resourceGroup": STAGE_RG, "kind": "BlobStorage"},
        {"name": "stlbstagenorth", "resourceGroup": "rg-north"},
    ],
    "vaults": [
        {
            "name": VAULT,
            "resourceGroup": VAULT_RG,
            "policies": [
                {"name": "Long", "time": "02:30", "retentionDays": 30},
                {"name": "Short", "time": "02:30", "retentionDays": 10},
            ],
            "items": [
                {
                    "vm": "rg-app/vm-list-01",
                    "outcome": "none",
                    "lastBackup": "5h",
                    "points": {
                        "count": 10,
                        "every": "1d",
                        "newest": "5h",
                        "appConsistentEvery": 7,
                        "snapshotTierDays": 5,
                    },
                },
                {"vm": "rg-app/vm-app-01", "lastBackup": "5h", "restore": {"seconds": 600}},
                {
                    "vm": "rg-app/vm-fail-01",
                    "lastBackup": "5h",
                    "restore": {"outcome": "fail", "errorCode": "UserErrorDiskCreationFailed"},
                },
                {
                    "vm": "rg-app/vm-warn-01",
                    "lastBackup": "5h",
                    "restore": {"outcome": "warn", "errorCode": "UserErrorDiskTagsNotCopied"},
                },
                {"vm": "rg-app/vm-stuck-01", "lastBackup": "5h"},
                {
                    "vm": "rg-app/vm-old-01",
                    "policy": "Short",
                    "outcome": "none",
                    "points": {"count": 2, "every": "1d", "newest": "204h"},
                },
            ],
        }
    ],
    "recoveryServices": {"pageSize": 4},
}


@pytest.fixture(scope="module")
def ep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    estate = tmp_path_factory.mktemp("restore") / "restore.yaml"
    estate.write_text(yaml.safe_dump(ESTATE))
    args = ("--clock-start", CLOCK_START, "--clock-rate", "0", "--retry-after-scale", "0")
    with (
        running_emulator(estate, *args, timeout=30) as endpoints,
        pytest.MonkeyPatch.context() as mp,
    ):
        for name, value in endpoints.environment().items():
            mp.setenv(name, value)
        yield endpoints


@pytest.fixture(scope="module")
def backup(ep: Endpoints) -> RecoveryServicesBackupClient:
    return RecoveryServicesBackupClient(
        ManagedIdentityCredential(client_id=ep.client_id),
        SUB,
        base_url=ep.arm,
        credential_scopes=[ep.arm_audience + ".default"],
        connection_verify=ep.ca_bundle,
    )


@pytest.fixture(scope="module")
def compute(ep: Endpoints) -> ComputeManagementClient:
    return ComputeManagementClient(
        ManagedIdentityCredential(client_id=ep.client_id),
        SUB,
        base_url=ep.arm,
        credential_scopes=[ep.arm_audience + ".default"],
        connection_verify=ep.ca_bundle,
    )


@pytest.fixture(scope="module")
def admin(ep: Endpoints) -> Iterator[httpx.Client]:
    tls = ssl.create_default_context(cafile=ep.ca_bundle)
    with httpx.Client(base_url=ep.admin, verify=tls, timeout=30) as client:
        yield client


def now(admin: httpx.Client) -> datetime:
    return datetime.fromisoformat(admin.get("/clock").json()["now"].replace("Z", "+00:00"))


def advance(admin: httpx.Client, seconds: float) -> None:
    admin.post("/clock", json={"advanceSeconds": seconds}).raise_for_status()


def where(vm: str) -> tuple[str, str]:
    """The container and item names as the SDK is given them (it sends `;` as %3B)."""
    inner = f"iaasvmcontainerv2;rg-app;{vm}"
    return f"IaasVMContainer;{inner}", f"VM;{inner}"


def points(backup: RecoveryServicesBackupClient, vm: str, **kwargs: Any) -> list[Any]:
    return list(backup.recovery_points.list(VAULT, VAULT_RG, "Azure", *where(vm), **kwargs))


def request(vm: str, point: str, account: str = "stlbstageweu", **extra: Any) -> dict[str, Any]:
    """A RestoreDisks request as Lifeboat will send it (keys of the spec example)."""
    account_group = "rg-north" if account == "stlbstagenorth" else STAGE_RG
    return {
        "properties": {
            "objectType": "IaasVMRestoreRequest",
            "recoveryPointId": point,
            "recoveryType": "RestoreDisks",
            "sourceResourceId": f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/"
            f"Microsoft.Compute/virtualMachines/{vm}",
            "storageAccountId": f"/subscriptions/{SUB}/resourceGroups/{account_group}/providers/"
            f"Microsoft.Storage/storageAccounts/{account}",
            "targetResourceGroupId": f"/subscriptions/{SUB}/resourceGroups/{DRILL_RG}",
            "region": "westeurope",
            "createNewCloudService": False,
            "originalStorageAccountOption": False,
            "encryptionDetails": {"encryptionEnabled": False},
            **extra,
        }
    }


def trigger(
    backup: RecoveryServicesBackupClient, vm: str, point: str, body: dict[str, Any]
) -> tuple[int, dict[str, str]]:
    """The 202's status and headers (lower-case names): begin_trigger returns none of them, so
    `cls` keeps them."""
    kept: dict[str, Any] = {}

    def keep(pipeline_response: Any, _body: Any, _headers: Any) -> None:
        kept["status"] = pipeline_response.http_response.status_code
        kept["headers"] = {k.lower(): v for k, v in pipeline_response.http_response.headers.items()}

    poller = backup.restores.begin_trigger(
        VAULT, VAULT_RG, "Azure", *where(vm), point, body, polling=False, cls=keep
    )
    poller.result()
    return kept["status"], kept["headers"]


def job_of(backup: RecoveryServicesBackupClient, vm: str, async_operation: str) -> str:
    """Operation status until it names the job, as the app will poll it."""
    operation = unquote(urlparse(async_operation).path).rsplit("/", 1)[-1]
    for _ in range(3):
        status = backup.protected_item_operation_statuses.get(
            VAULT, VAULT_RG, "Azure", *where(vm), operation
        )
        if status.status == "Succeeded":
            assert status.properties.object_type == "OperationStatusJobExtendedInfo"
            return str(status.properties.job_id)
        assert status.status == "InProgress"
    raise AssertionError("the operation status never named the job")


def restored(compute: ComputeManagementClient, vm: str) -> dict[str, Any]:
    return {
        d.name: d
        for d in compute.disks.list_by_resource_group(DRILL_RG)
        if d.name.startswith(f"{vm}-")
    }


def code_of(error: HttpResponseError) -> str | None:
    return error.error.code if error.error else None


def test_points_are_seeded_listed_filtered_and_got(
    backup: RecoveryServicesBackupClient, admin: httpx.Client
) -> None:
    at = now(admin)
    listed = points(backup, "vm-list-01")  # 10 points over pages of 4
    assert len(listed) == 10
    times = [p.properties.recovery_point_time for p in listed]
    assert times == sorted(times, reverse=True)
    assert at - times[0] >= timedelta(hours=5)  # `newest: 5h`, the item's lastBackup
    assert [p.properties.recovery_point_type for p in listed].count("AppConsistent") == 2
    assert listed[0].properties.recovery_point_type == "AppConsistent"
    assert listed[1].properties.recovery_point_type == "CrashConsistent"
    for point in listed:
        tiers = [(t.type, t.status) for t in point.properties.recovery_point_tier_details]
        young = at - point.properties.recovery_point_time < timedelta(days=5)
        assert tiers == ([(1, 1), (2, 1)] if young else [(2, 1)])
        assert point.id.startswith("/Subscriptions/")
        assert point.id.endswith(point.name)
    start, end = times[4] - timedelta(minutes=1), times[2] + timedelta(minutes=1)
    form = "%Y-%m-%d %I:%M:%S %p"  # what the CLI sends: yyyy-MM-dd hh:mm:ss tt
    window = f"startDate eq '{start:{form}}' and endDate eq '{end:{form}}'"
    assert [p.name for p in points(backup, "vm-list-01", filter=window)] == [
        p.name for p in listed[2:5]
    ]
    got = backup.recovery_points.get(VAULT, VAULT_RG, "Azure", *where("vm-list-01"), listed[3].name)
    assert got.as_dict() == listed[3].as_dict()
    spec = json.loads((DATA / "spec_backup_recovery_point_get.json").read_text())
    body = got.as_dict()
    assert set(body) >= set(spec) - {"source"}
    assert set(body["properties"]) >= set(spec["properties"])
    with pytest.raises(ResourceNotFoundError) as missing:
        backup.recovery_points.get(VAULT, VAULT_RG, "Azure", *where("vm-list-01"), "12345")
    assert code_of(missing.value) == "BMSUserErrorRecoveryPointNotFound"


def test_restore_disks_trigger_status_job_and_disks_on_the_clock(
    backup: RecoveryServicesBackupClient, compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    spec = json.loads((DATA / "spec_backup_restore_trigger.json").read_text())
    recorded = {
        e["Index"]: e
        for e in json.loads((DATA / "recording_restore_flow.json").read_text())["Entries"]
    }
    newest = points(backup, "vm-app-01")[0]
    admin.delete("/requests")
    status, headers = trigger(backup, "vm-app-01", newest.name, request("vm-app-01", newest.name))
    assert status == spec["status"] == recorded[60]["StatusCode"] == 202
    assert {h.lower() for h in spec["headers"]} <= set(headers)
    assert headers["retry-after"] == "0"  # 60, scaled by --retry-after-scale 0
    assert "/operationsStatus/" in headers["azure-asyncoperation"]
    assert "/operationResults/" in headers["location"]
    log = admin.get("/requests").json()["entries"]
    (post,) = [e for e in log if e["method"] == "POST"]
    assert post["operation"].endswith("/recoveryPoints/restore/action")
    assert "Microsoft.Compute/virtualMachines/write" in post["actions"]  # on the source VM

    job_id = job_of(backup, "vm-app-01", headers["azure-asyncoperation"])
    job = backup.job_details.get(VAULT, VAULT_RG, job_id)
    assert job.properties.job_type == "AzureIaaSVMJob"
    assert (job.properties.operation, job.properties.status) == ("Restore", "InProgress")
    bag = job.properties.extended_info.property_bag
    assert set(bag) == set(
        recorded[66]["ResponseBody"]["properties"]["extendedInfo"]["propertyBag"]
    )
    assert bag["Target Storage Account Name"] == "stlbstageweu"
    when = newest.properties.recovery_point_time
    assert datetime.strptime(bag["Recovery point time "], "%m/%d/%Y %I:%M:%S %p").replace(
        tzinfo=UTC
    ) == when.replace(microsecond=0)
    assert restored(compute, "vm-app-01") == {}  # nothing until the job completes

    advance(admin, 599)
    assert backup.job_details.get(VAULT, VAULT_RG, job_id).properties.status == "InProgress"
    advance(admin, 2)
    job = backup.job_details.get(VAULT, VAULT_RG, job_id)
    assert job.properties.status == "Completed"
    assert job.properties.duration == timedelta(seconds=600)
    assert job.properties.end_time - job.properties.start_time == timedelta(seconds=600)
    bag = job.properties.extended_info.property_bag
    last = recorded[76]["ResponseBody"]["properties"]["extendedInfo"]["propertyBag"]
    assert set(bag) == set(last)
    assert bag["Config Blob Name"] == f"config{job_id}.json"
    assert bag["Config Blob Container Name"].startswith("vhd")
    assert bag["Config Blob Uri"] == (
        f"https://stlbstageweu.blob.core.windows.net/{bag['Config Blob Container Name']}/"
        f"config{job_id}.json"
    )
    stamp = job.properties.start_time.strftime("%Y%m%d-%H%M%S")
    disks = restored(compute, "vm-app-01")
    assert set(disks) == {
        f"vm-app-01-osdisk-{stamp}",
        f"vm-app-01-data-0-{stamp}",
        f"vm-app-01-data-1-{stamp}",
    }
    os_disk = disks[f"vm-app-01-osdisk-{stamp}"]
    assert (os_disk.os_type, os_disk.disk_size_gb, os_disk.sku.name) == ("Linux", 64, "Premium_LRS")
    assert disks[f"vm-app-01-data-1-{stamp}"].disk_size_gb == 256
    assert disks[f"vm-app-01-data-1-{stamp}"].os_type is None
    assert all(not d.tags and d.managed_by is None for d in disks.values())
    assert all(d.creation_data.create_option == "Restore" for d in disks.values())
    listed = backup.backup_jobs.list(VAULT, VAULT_RG, filter="operation eq 'Restore'")
    assert job_id in {j.name for j in listed}

    # One LUN only: the OS disk and that data disk.
    advance(admin, 5)
    _, headers = trigger(
        backup, "vm-app-01", newest.name, request("vm-app-01", newest.name, restoreDiskLunList=[1])
    )
    second = job_of(backup, "vm-app-01", headers["azure-asyncoperation"])
    advance(admin, 601)
    job = backup.job_details.get(VAULT, VAULT_RG, second)
    assert job.properties.status == "Completed"
    stamp2 = job.properties.start_time.strftime("%Y%m%d-%H%M%S")
    assert {n for n in restored(compute, "vm-app-01") if n.endswith(stamp2)} == {
        f"vm-app-01-osdisk-{stamp2}",
        f"vm-app-01-data-1-{stamp2}",
    }


def test_shapes_carry_every_key_of_the_spec_examples(
    backup: RecoveryServicesBackupClient, ep: Endpoints
) -> None:
    """Raw bodies (not the SDK's view of them) against ProtectedItemOperationStatuses_Get and
    JobDetails_Get, and the job's keys against the recorded restore job."""
    point = points(backup, "vm-list-01")[0].name
    _, headers = trigger(backup, "vm-list-01", point, request("vm-list-01", point))
    token = ManagedIdentityCredential(client_id=ep.client_id).get_token(
        ep.arm_audience + ".default"
    )
    tls = ssl.create_default_context(cafile=ep.ca_bundle)
    auth = {"Authorization": f"Bearer {token.token}"}
    with httpx.Client(verify=tls, headers=auth, timeout=30) as arm:
        status_url = headers["azure-asyncoperation"]
        assert arm.get(status_url).json()["status"] == "InProgress"
        status = arm.get(status_url).json()
        spec_status = json.loads((DATA / "spec_backup_operation_status.json").read_text())
        assert set(status) >= set(spec_status) - {"source"}
        assert set(status["properties"]) == set(spec_status["properties"])
        job_url = f"{ep.arm}/subscriptions/{SUB}/resourceGroups/{VAULT_RG}/providers/"
        job_url += f"Microsoft.RecoveryServices/vaults/{VAULT}/backupJobs/"
        job = arm.get(job_url + status["properties"]["jobId"], params={"api-version": "2026-10-01"})
    body = job.json()
    spec_job = json.loads((DATA / "spec_backup_job_get.json").read_text())
    assert set(body) >= set(spec_job) - {"source"}
    assert set(body["properties"]) >= set(spec_job["properties"])
    assert set(body["properties"]["extendedInfo"]) >= set(spec_job["properties"]["extendedInfo"])
    recorded = json.loads((DATA / "recording_restore_flow.json").read_text())["Entries"]
    first_get = next(e for e in recorded if e["Index"] == 66)["ResponseBody"]
    assert set(body["properties"]) >= set(first_get["properties"])
    assert body["properties"]["extendedInfo"]["dynamicErrorMessage"] == ""


@pytest.mark.parametrize(
    ("vm", "status", "code", "disks"),
    [
        ("vm-fail-01", "Failed", "UserErrorDiskCreationFailed", 0),
        ("vm-warn-01", "CompletedWithWarnings", "UserErrorDiskTagsNotCopied", 1),
    ],
)
def test_scripted_job_endings_carry_their_code(
    backup: RecoveryServicesBackupClient,
    compute: ComputeManagementClient,
    admin: httpx.Client,
    vm: str,
    status: str,
    code: str,
    disks: int,
) -> None:
    point = points(backup, vm)[0].name
    _, headers = trigger(backup, vm, point, request(vm, point))
    job_id = job_of(backup, vm, headers["azure-asyncoperation"])
    advance(admin, 601)
    job = backup.job_details.get(VAULT, VAULT_RG, job_id)
    assert job.properties.status == status
    (error,) = job.properties.error_details
    assert error.error_string == code
    assert ("Config Blob Name" in job.properties.extended_info.property_bag) == bool(disks)
    assert len(restored(compute, vm)) == disks


def test_a_stuck_fault_makes_the_job_never_end(
    backup: RecoveryServicesBackupClient, admin: httpx.Client
) -> None:
    rule = {"action": "stuck", "method": "POST", "path": "vm-stuck-01/recoveryPoints/.+/restore"}
    rule_id = admin.post("/faults", json={**rule, "count": 1}).json()["id"]
    try:
        point = points(backup, "vm-stuck-01")[0].name
        _, headers = trigger(backup, "vm-stuck-01", point, request("vm-stuck-01", point))
    finally:
        admin.delete(f"/faults/{rule_id}")
    job_id = job_of(backup, "vm-stuck-01", headers["azure-asyncoperation"])
    advance(admin, 3600)
    job = backup.job_details.get(VAULT, VAULT_RG, job_id)
    assert job.properties.status == "InProgress"
    assert job.properties.duration >= timedelta(hours=1)
    assert job.properties.end_time is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"account": "stlbstagezrs"}, "BMSUserErrorStorageAccountNotSupported"),
        ({"account": "stlbstagenorth"}, "BMSUserErrorStorageAccountNotSupported"),
        ({"account": "stlbstageblob"}, "BMSUserErrorStorageAccountNotSupported"),
        ({"account": "stlbnosuchaccount"}, "BMSUserErrorStorageAccountNotFound"),
        ({"targetResourceGroupId": None}, "BMSUserErrorInvalidInput"),
        (
            {"targetResourceGroupId": f"/subscriptions/{SUB}/resourceGroups/rg-none"},
            "BMSUserErrorTargetResourceGroupNotFound",
        ),
        ({"recoveryType": "AlternateLocation"}, "BMSUserErrorInvalidInput"),
        ({"recoveryType": "Somewhere"}, "BMSUserErrorInvalidInput"),
        ({"restoreDiskLunList": [7]}, "BMSUserErrorInvalidInput"),
    ],
)
def test_refusals_at_the_trigger(
    backup: RecoveryServicesBackupClient, change: dict[str, Any], code: str
) -> None:
    point = points(backup, "vm-app-01")[0].name
    account = change.pop("account", "stlbstageweu")
    body = request("vm-app-01", point, account)
    body["properties"].update(change)
    body["properties"] = {k: v for k, v in body["properties"].items() if v is not None}
    with pytest.raises(HttpResponseError) as refused:
        trigger(backup, "vm-app-01", point, body)
    assert refused.value.status_code == 400
    assert code_of(refused.value) == code


def test_a_point_expired_between_choice_and_restore_is_not_found(
    backup: RecoveryServicesBackupClient, admin: httpx.Client
) -> None:
    listed = points(backup, "vm-old-01")
    oldest = listed[-1]
    age = now(admin) - oldest.properties.recovery_point_time
    advance(admin, (timedelta(days=10) - age).total_seconds() + 60)  # past the 10-day retention
    with pytest.raises(ResourceNotFoundError) as gone:
        trigger(backup, "vm-old-01", oldest.name, request("vm-old-01", oldest.name))
    assert code_of(gone.value) == "BMSUserErrorRecoveryPointNotFound"
    assert [p.name for p in points(backup, "vm-old-01")] == [listed[0].name]


def test_estate_keys_are_checked_and_named_by_their_path() -> None:
    """In-process: every problem with `points:`, `restore:` and `storageAccounts:` at once."""
    estate = json.loads(json.dumps(ESTATE))
    items = estate["vaults"][0]["items"]
    items[0]["points"] = {"count": 0, "every": "often", "colour": "blue"}
    items[1]["points"] = {"count": 3, "newest": "2h"}  # lastBackup says 5h
    items[2]["restore"] = {"outcome": "maybe", "seconds": -1}
    items[-1]["points"] = {"count": 40, "newest": "1h"}  # beyond the Short policy's 10 days
    estate["storageAccounts"].append({"name": "stx", "resourceGroup": "rg-none"})
    estate["storageAccounts"].append({"name": "sty", "resourceGroup": STAGE_RG, "sku": "Fast"})
    start = datetime.fromisoformat(CLOCK_START.replace("Z", "+00:00"))
    cloud = build_cloud(estate, start)
    with pytest.raises(EstateError) as bad:
        RecoveryServices(cloud, Clock(start, rate=0), Behaviour())
    text = str(bad.value)
    for expected in (
        "vaults[0].items[0].points: unknown keys ['colour']",
        "vaults[0].items[0].points.count: must be a whole number >= 1, got 0",
        "vaults[0].items[0].points.every: must be an age such as 1d or 12h, got 'often'",
        "vaults[0].items[1].points.newest (2h) and lastBackup (5h) disagree",
        "vaults[0].items[2].restore.outcome: must be one of complete, warn, fail, inprogress",
        "vaults[0].items[2].restore.seconds: must be a number >= 0, got -1",
        "vaults[0].items[5].points: the oldest of 40 points would be 39 days old, beyond the "
        "policy's retentionDays 10",
        "storageAccounts[4]: resource group 'rg-none' is not declared",
        "storageAccounts[5].sku: 'Fast' is not a storage account SKU",
    ):
        assert expected in text, text
