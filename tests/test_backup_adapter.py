"""The backup adapter on real recorded payloads, replayed through the real SDK client."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared import messages
from shared.adapters.backup import AzureBackup, job_filter
from shared.model import ProtectedItem, Vault
from shared.policies import parse_policies
from shared.settings import Settings
from tests.builders import vault_request
from tests.conftest import base_settings
from tests.fakes import FixedClock, MemoryQueues, MemoryReporter, deliver, runtime
from tests.replay import Answer, Credential, Replay, Routes

DATA = Path(__file__).parent / "data" / "recording_backup_flow.json"
SUB = "00000000-0000-0000-0000-000000000000"
VAULT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/PythonSDKBackupTestRg/providers/"
    "Microsoft.RecoveryServices/vaults/PySDKBackupTestRsVault"
)
VM_KEY = "swaggersdktestrg/swaggersdktest"


def recorded() -> dict[int, dict[str, Any]]:
    return {e["Index"]: e for e in json.loads(DATA.read_text())["Entries"]}


def adapter(routes: list[tuple[str, Any]]) -> tuple[AzureBackup, Routes]:
    transport = Routes(routes)
    backup = AzureBackup(
        Credential(),
        arm_endpoint="https://management.azure.com",
        arm_audience="https://management.azure.com/.default",
        transport=transport,
    )
    return backup, transport


def vault() -> Vault:
    return Vault(VAULT_ID, "PySDKBackupTestRsVault", SUB, "PythonSDKBackupTestRg", "westeurope")


def test_sdk_discriminator_gap_is_still_open() -> None:
    """When this fails, the SDK follows `protectedItemType` again: revisit the adapter's workaround
    (reading REST JSON) and REFERENCE.md."""
    from azure.mgmt.recoveryservicesbackup import models

    body = recorded()[18]["ResponseBody"]["value"][0]
    properties = models.ProtectedItemResource(body).properties
    assert type(properties) is models.ProtectedItem
    assert not hasattr(properties, "protection_state")
    assert properties["protectionState"] == "IRPending"


def test_recorded_protected_item_is_read_with_its_quirks() -> None:
    backup, transport = adapter([("/backupProtectedItems", recorded()[18]["ResponseBody"])])
    (item,) = backup.list_protected_items(vault())
    assert item.protection_state == "IRPending"
    assert item.last_backup_time is None  # the 2001-01-01 sentinel
    assert item.vm_id.endswith("/virtualMachines/swaggersdktest")
    assert (
        item.container_name == "IaasVMContainer;iaasvmcontainerv2;swaggersdktestrg;swaggersdktest"
    )
    assert item.id.startswith("/Subscriptions/")
    assert "$filter=backupManagementType" in transport.urls[0]


def test_recorded_jobs_and_recovery_points_are_read() -> None:
    rec = recorded()
    backup, _ = adapter([("/backupJobs", rec[23]["ResponseBody"])])
    since = datetime(2017, 10, 18, tzinfo=UTC)
    jobs = backup.list_jobs(vault(), since, datetime(2017, 10, 19, 13, tzinfo=UTC))
    assert [(j.operation, j.status) for j in jobs] == [
        ("Backup", "InProgress"),
        ("ConfigureBackup", "Completed"),
    ]
    assert jobs[0].entity_name == "swaggersdktest"
    backup, transport = adapter(
        [
            ("/backupProtectedItems", rec[18]["ResponseBody"]),
            ("/recoveryPoints", rec[59]["ResponseBody"]),
        ]
    )
    (item,) = backup.list_protected_items(vault())
    (point,) = backup.list_recovery_points(item)
    assert point.consistency == "AppConsistent"
    assert point.time == datetime(2017, 10, 19, 7, 11, 28, 74686, tzinfo=UTC)
    assert "iaasvmcontainer%3biaasvmcontainerv2%3bswaggersdktestrg%3bswaggersdktest" in (
        transport.urls[-1].lower()
    )


def test_job_filter_uses_the_12_hour_format_azure_expects() -> None:
    since = datetime(2016, 1, 1, 0, 0, tzinfo=UTC)
    until = datetime(2016, 1, 2, 13, 5, 9, tzinfo=UTC)
    assert job_filter(since, until) == (
        "backupManagementType eq 'AzureIaasVM' and operation eq 'Backup' and "
        "startTime eq '2016-01-01 12:00:00 AM' and endTime eq '2016-01-02 01:05:09 PM'"
    )


def run_vault(routes: list[tuple[str, Any]], now: datetime) -> dict[str, Any]:
    backup, _ = adapter(routes)
    reporter = MemoryReporter()
    rt = runtime(
        Settings.from_env(base_settings(TARGET_SUBSCRIPTIONS=SUB)),
        FixedClock(now),
        reporter,
        MemoryQueues(),
        policies=parse_policies({"version": 1, "policies": {}}),
        backup=backup,
    )
    vms = {"daily|26": {"swaggersdktestrg": ["swaggersdktest"]}}
    request = vault_request(vault(), vms, slot="201710190600")
    envelope = messages.make_envelope(request, run_id="r", idempotency_key="k", created=now)
    deliver(rt, messages.encode(envelope))
    (row,) = [o for o in reporter.outcomes if o.operation == "verify-vm"]
    return {"finding": row.finding, "rpo": row.rpo_seconds, "details": row.details}


def test_recorded_payloads_give_the_right_findings() -> None:
    rec = recorded()
    items = ("/backupProtectedItems", rec[18]["ResponseBody"])
    jobs = ("/backupJobs", rec[23]["ResponseBody"])
    points = ("/recoveryPoints", rec[59]["ResponseBody"])
    # The point taken at 07:11:28: fresh an hour later...
    fresh = run_vault([items, jobs, points], datetime(2017, 10, 19, 8, 11, 28, tzinfo=UTC))
    assert fresh["finding"] == "compliant"
    assert fresh["rpo"] == 3599
    # ...too old two days later...
    late = run_vault([items, jobs, points], datetime(2017, 10, 21, 8, 0, tzinfo=UTC))
    assert late["finding"] == "rpo-breached"
    assert late["details"]["consistency"] == "AppConsistent"
    # ...never backed up when the vault has no point yet (the item still reads IRPending)...
    empty = ("/recoveryPoints", {"value": []})
    assert run_vault([items, jobs, empty], datetime(2017, 10, 19, 8, tzinfo=UTC))["finding"] == (
        "never-backed-up"
    )
    # ...and failing when the recorded backup job ends Failed.
    failed_jobs = copy.deepcopy(rec[23]["ResponseBody"])
    failed_jobs["value"][0]["properties"].update(
        status="Failed",
        endTime="2017-10-19T07:40:00Z",
        errorDetails=[
            {
                "errorCode": 400018,
                "errorString": "CloudDosAbsoluteLimitReached",
                "errorTitle": "Backup limit reached",
            }
        ],
    )
    failing = run_vault(
        [items, ("/backupJobs", failed_jobs), points], datetime(2017, 10, 19, 8, tzinfo=UTC)
    )
    assert failing["finding"] == "backup-failing"
    assert failing["details"]["errorCode"] == "CloudDosAbsoluteLimitReached"


# ------------------------------------------------------- the backup trigger never sleeps a worker


def _item() -> ProtectedItem:
    container = "iaasvmcontainer;iaasvmcontainerv2;swaggersdktestrg;swaggersdktest"
    name = "vm;iaasvmcontainerv2;swaggersdktestrg;swaggersdktest"
    return ProtectedItem(
        id=f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{container}/protectedItems/{name}",
        vault_id=VAULT_ID,
        vm_id=f"/subscriptions/{SUB}/resourceGroups/swaggersdktestrg/providers/"
        "Microsoft.Compute/virtualMachines/swaggersdktest",
        container_name=container,
        name=name,
        protection_state="Protected",
    )


def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"a worker slept {seconds} s in the backup adapter")

    monkeypatch.setattr(time, "sleep", refuse)


def _in_progress() -> Answer:
    body = {"id": "op", "name": "op", "status": "InProgress", "startTime": "2017-10-19T07:11:23Z"}
    return Answer(200, body, method="GET")


@pytest.mark.parametrize("retry_after", ["60", "1"])
def test_a_backup_that_asks_to_wait_leaves_its_job_unknown_without_waiting(
    monkeypatch: pytest.MonkeyPatch, retry_after: str
) -> None:
    _no_sleep(monkeypatch)
    accepted = Answer.recorded(recorded()[19])
    accepted.headers = [(k, retry_after if k == "retry-after" else v) for k, v in accepted.headers]
    backup, transport = replayed(accepted)
    assert backup.trigger_backup(_item(), datetime(2017, 11, 19, tzinfo=UTC)) is None
    assert [r.method for r in transport.settled()] == ["POST"]
    assert transport.sleeps == []


def test_a_backup_read_at_once_names_its_job_or_is_left_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_sleep(monkeypatch)
    keep = datetime(2017, 11, 19, tzinfo=UTC)
    # Retry-After: 0 as recorded: read again at once, the second read names the job.
    backup, transport = replayed(
        Answer.recorded(recorded()[19]), _in_progress(), Answer.recorded(recorded()[22])
    )
    assert backup.trigger_backup(_item(), keep) == "a8619ff4-b0ad-44b7-adc4-f24fde707a65"
    assert [r.method for r in transport.settled()] == ["POST", "GET", "GET"]
    # Still running after three reads: the job id is unknown, nobody waited for it.
    backup, transport = replayed(Answer.recorded(recorded()[19]), *[_in_progress()] * 3)
    assert backup.trigger_backup(_item(), keep) is None
    assert [r.method for r in transport.settled()] == ["POST", "GET", "GET", "GET"]
    assert transport.sleeps == []


def replayed(*answers: Answer) -> tuple[AzureBackup, Replay]:
    transport = Replay(answers)
    backup = AzureBackup(
        Credential(),
        arm_endpoint="https://management.azure.com",
        arm_audience="https://management.azure.com/.default",
        transport=transport,
    )
    return backup, transport
