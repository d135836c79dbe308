"""The Recovery Services (Azure Backup) adapter against Azure's answers.

The real azure-mgmt-recoveryservicesbackup and azure-mgmt-recoveryservices clients, answered by
the replaying transport with the recorded backup flow (`recording_backup_flow.json`), the
published examples and documented error shapes. Reads are retried on a short 5xx; the backup
trigger and the backup-status query are POSTs and are never retried; 429 is never retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from shared.adapters.backup import AzureBackup
from shared.model import DiskAttachment, ProtectedItem, Vault, Vm
from shared.ports import RefusedError, ThrottledError
from tests.replay import (
    ARM,
    DATA,
    SUB,
    Answer,
    Credential,
    Replay,
    arm_error,
    assert_put_back_at_once,
    spec_body,
)

FLOW = json.loads((DATA / "recording_backup_flow.json").read_text())["Entries"]
RECORDED = {e["Index"]: e for e in FLOW}
VAULT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/PythonSDKBackupTestRg/providers/"
    "Microsoft.RecoveryServices/vaults/PySDKBackupTestRsVault"
)
CONTAINER = "iaasvmcontainer;iaasvmcontainerv2;swaggersdktestrg;swaggersdktest"
ITEM_NAME = "vm;iaasvmcontainerv2;swaggersdktestrg;swaggersdktest"
KEEP_UNTIL = datetime(2017, 11, 19, tzinfo=UTC)


def backup(*answers: Answer) -> tuple[AzureBackup, Replay]:
    transport = Replay(answers)
    adapter = AzureBackup(
        Credential(),
        arm_endpoint=ARM,
        arm_audience="https://management.azure.com/.default",
        transport=transport,
    )
    return adapter, transport


def vault() -> Vault:
    return Vault(VAULT_ID, "PySDKBackupTestRsVault", SUB, "PythonSDKBackupTestRg", "westeurope")


def item() -> ProtectedItem:
    return ProtectedItem(
        id=f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{CONTAINER}/protectedItems/{ITEM_NAME}",
        vault_id=VAULT_ID,
        vm_id=f"/subscriptions/{SUB}/resourceGroups/swaggersdktestrg/providers/"
        "Microsoft.Compute/virtualMachines/swaggersdktest",
        container_name=CONTAINER,
        name=ITEM_NAME,
        protection_state="Protected",
    )


def vm() -> Vm:
    return Vm(
        id=item().vm_id,
        name="swaggersdktest",
        subscription_id=SUB,
        resource_group="swaggersdktestrg",
        location="westeurope",
        tags={},
        os_disk=DiskAttachment(lun=None, disk_id="d", ephemeral=False, vhd_uri=None),
        data_disks=(),
    )


def _calls(adapter: AzureBackup) -> dict[str, Callable[[], object]]:
    return {
        "items": lambda: adapter.list_protected_items(vault()),
        "jobs": lambda: adapter.list_jobs(vault(), KEEP_UNTIL, KEEP_UNTIL),
        "vaults": lambda: adapter.list_vaults(SUB),
        "trigger": lambda: adapter.trigger_backup(item(), KEEP_UNTIL),
        "protect": lambda: adapter.ensure_protection(vault(), vm(), "DefaultPolicy"),
        "status": lambda: adapter.get_backup_status(item().vm_id, "westeurope"),
    }


def recorded(index: int, **changes: Any) -> Answer:
    return Answer.recorded(RECORDED[index], **changes)


# ------------------------------------------------------------------------------ success


def test_recorded_trigger_reads_the_job_id_from_the_operation_status() -> None:
    # POST 202 (Azure-AsyncOperation, Retry-After: 0), then the operation's status: Succeeded.
    adapter, transport = backup(recorded(19), recorded(22))
    assert adapter.trigger_backup(item(), KEEP_UNTIL) == "a8619ff4-b0ad-44b7-adc4-f24fde707a65"
    assert [r.method for r in transport.settled()] == ["POST", "GET"]
    assert "/operationsStatus/58e7eec8-68c2-4398-89b8-7f5d92eb05ce" in transport.requests[1].path
    body = transport.requests[0].json()["properties"]
    assert body["objectType"] == "IaasVMBackupRequest"
    assert body["recoveryPointExpiryTimeInUTC"].startswith("2017-11-19T00:00:00")


def test_a_failed_backup_operation_is_refused_with_its_code() -> None:
    failed = recorded(22)
    failed.body = {
        "id": "58e7eec8-68c2-4398-89b8-7f5d92eb05ce",
        "name": "58e7eec8-68c2-4398-89b8-7f5d92eb05ce",
        "status": "Failed",
        "error": {"code": "UserErrorVmNotFound", "message": "VM not found"},
    }
    adapter, _ = backup(recorded(19), failed)
    with pytest.raises(RefusedError) as caught:
        adapter.trigger_backup(item(), KEEP_UNTIL)
    assert caught.value.code == "UserErrorVmNotFound"


def test_protection_is_one_put_never_polled_then_one_get() -> None:
    protected = spec_body("spec_backup_protected_item_get")
    adapter, transport = backup(recorded(10), Answer(200, protected))
    found = adapter.ensure_protection(vault(), vm(), "DefaultPolicy")
    assert found is not None
    assert found.protection_state == protected["properties"]["protectionState"]
    assert [r.method for r in transport.settled()] == ["PUT", "GET"]
    policy = transport.requests[0].json()["properties"]["policyId"]
    assert policy.endswith("/backupPolicies/DefaultPolicy")
    assert transport.sleeps == []


def test_backup_status_reads_the_published_answer() -> None:
    adapter, transport = backup(Answer(200, spec_body("spec_backup_status")))
    status = adapter.get_backup_status(item().vm_id, "West Europe")
    assert status.protected
    assert status.policy_name == "myPolicy"
    assert [r.method for r in transport.settled()] == ["POST"]
    assert transport.requests[0].path.endswith("/locations/WestEurope/backupStatus")


# ------------------------------------------------------------------------------ 404


def test_404_recovery_points_are_none_and_a_vanished_item_is_none() -> None:
    adapter, transport = backup(
        arm_error(404, "ResourceNotFound"),
        recorded(10),
        arm_error(404, "ResourceNotFound"),
    )
    assert adapter.list_recovery_points(item()) == []
    assert adapter.ensure_protection(vault(), vm(), "DefaultPolicy") is None
    assert len(transport.requests) == 3


# ------------------------------------------------------------------------------ 429


@pytest.mark.parametrize("call", ["items", "jobs", "vaults", "trigger", "protect", "status"])
def test_429_with_retry_after_1200_is_put_back_at_once(call: str) -> None:
    adapter, transport = backup(
        arm_error(429, "ResourceRequestsThrottled", "", ("Retry-After", "1200"))
    )
    assert_put_back_at_once(_calls(adapter)[call], transport)


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        ("trigger", 400, "CloudDosAbsoluteLimitReached"),
        ("protect", 409, "ScopeLocked"),
        ("protect", 403, "LinkedAuthorizationFailed"),  # VM write on the protected VM
        ("protect", 403, "RequestDisallowedByPolicy"),
    ],
)
def test_unhealable_refusals_are_refused_once(call: str, status: int, code: str) -> None:
    adapter, transport = backup(arm_error(status, code, f"{code}: recorded message"))
    action = _calls(adapter)[call]
    with pytest.raises(RefusedError) as caught:
        action()
    assert caught.value.code == code
    assert len(transport.requests) == 1


# ------------------------------------------------------------------------------ 5xx


def test_a_read_is_retried_on_a_short_5xx() -> None:
    adapter, transport = backup(
        arm_error(500, "InternalServerError", "", ("Retry-After", "1")),
        recorded(18),
    )
    (found,) = adapter.list_protected_items(vault())
    assert found.protection_state == "IRPending"
    assert len(transport.requests) == 2
    assert transport.sleeps == [1.0]


@pytest.mark.parametrize("retry_after", [None, "1"])
@pytest.mark.parametrize("call", ["trigger", "status"])
def test_a_post_is_never_retried(call: str, retry_after: str | None) -> None:
    headers = [("Retry-After", retry_after)] if retry_after else []
    adapter, transport = backup(arm_error(503, "ServiceUnavailable", "", *headers))
    action = _calls(adapter)[call]
    with pytest.raises(HttpResponseError) as caught:
        action()
    assert not isinstance(caught.value, (ThrottledError, RefusedError))
    assert [r.method for r in transport.settled()] == ["POST"]
    assert transport.sleeps == []
