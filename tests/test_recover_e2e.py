"""`lifeboat recover` end to end on the Azure stand-in, through the real SDK clients.

One stand-in with a three-disk VM (OS disk, LUN 0 and LUN 3 of two SKUs and sizes, in zone 2),
two nights of its snapshot sets and three daily Azure Backup recovery points; its clock runs 300
times faster, so a VM boots in half a second and a 10-minute restore job takes two. A new VM boots
with the right disks by LUN (lineage and sizes); a swap replaces the disks and keeps the old ones,
a rollback puts them back; disks only; a dry run through the command sends no write (the
stand-in's request log); a quota refusal says why and writes nothing; the command recovers from
the latest recovery point (restored disks by LUN, RTO and RPO); a stale ETag is refused 412.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from cli.recover_cmd import perform
from emulator.process import running_emulator
from shared.adapters.recovery import AzureRecovery
from shared.recovery import Request
from shared.services import build_compute
from shared.settings import Settings
from tests.conftest import TEST_SIGNING_KEYS
from tests.e2e_env import NEVER, SUB
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
VM = (
    f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/"
    "vm-three"
)
SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Network/virtualNetworks/"
    "vnet-prod/subnets/snet-app"
)
SCHEDULES = ("POISON", "ROTATION", "DRILL", "SWEEPER", "VERIFICATION", "POSTURE")
SCHEDULES = tuple(f"{name}_SCHEDULE" for name in SCHEDULES)
ESTATE = f"""\
version: 1
tenantId: 3d8e2f61-5b7a-4c9e-8f02-6a1b4c7d9e20
identities:
  - {{name: id-operator, clientId: 8a4f1e27-3c6b-4d95-a0e8-5b2c7f9d1e43,
     objectId: c2e75b19-8d4a-4f36-9b1e-7a3d5c8f2e64}}
subscriptions:
  - id: {SUB}
    location: westeurope
    resourceGroups:
      - {{name: rg-app, location: westeurope}}
      - {{name: rg-lifeboat-snapshots, location: westeurope}}
      - {{name: rg-backup, location: westeurope}}
    vms:
      - name: vm-three
        resourceGroup: rg-app
        size: Standard_D2s_v5
        osType: Linux
        zones: ["2"]
        tags: {{"lifeboat:policy": daily, tier: web}}
        osDisk: {{sku: Premium_LRS, sizeGB: 64}}
        dataDisks:
          - {{lun: 0, name: vm-three-data-00, sku: Premium_LRS, sizeGB: 128}}
          - {{lun: 3, name: vm-three-data-03, sku: StandardSSD_LRS, sizeGB: 256}}
        snapshots: {{count: 2, every: 1d, newest: 2h}}
    virtualNetworks:
      - name: vnet-prod
        resourceGroup: rg-app
        addressPrefixes: [10.10.0.0/16]
        subnets:
          - {{name: snet-app, addressPrefix: 10.10.1.0/24}}
quotas:
  westeurope: {{cores: 20, standardDSv5Family: 10}}
storageAccounts:
  - {{name: stlbstageweu, resourceGroup: rg-backup}}
vaults:
  - name: rsv-weu
    resourceGroup: rg-backup
    policies: [{{name: Daily, time: "02:30", retentionDays: 30}}]
    items:
      - vm: rg-app/vm-three
        points: {{count: 3, every: 1d, newest: 3h}}
        restore: {{seconds: 600}}
"""
STAGING = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.Storage/"
    "storageAccounts/stlbstageweu"
)


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("recover")
    (tmp / "estate.yaml").write_text(ESTATE)
    options = ("--clock-start", "2026-11-27T04:00:00Z", "--clock-rate", "300")
    with (
        running_emulator(tmp / "estate.yaml", *options, "--operation-seconds", "0.5") as ep,
        patched_environ(ep.environment()),
    ):
        settings = Settings.from_env(
            {
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "TARGET_SUBSCRIPTIONS": SUB,
                "MESSAGE_SIGNING_KEYS": TEST_SIGNING_KEYS,
                "ARM_ENDPOINT": ep.arm,
                "ARM_AUDIENCE": ep.arm_audience + ".default",
                "AZURE_CLIENT_ID": ep.client_id,
                **dict.fromkeys(SCHEDULES, NEVER),
            }
        )
        from cli.clock import RemoteClock

        clock = RemoteClock(ep.clock, ca_bundle=ep.ca_bundle)
        options_ = {"base_url": ep.arm, "credential_scopes": [ep.arm_audience + ".default"]}
        credential = ManagedIdentityCredential(client_id=ep.client_id)
        network = NetworkManagementClient(credential, SUB, **options_)
        # The original VM's NIC (estate VMs name theirs {vm}-nic), in the production subnet.
        network.network_interfaces.begin_create_or_update(
            "rg-app",
            "vm-three-nic",
            {
                "location": "westeurope",
                "properties": {
                    "ipConfigurations": [
                        {"name": "ipconfig1", "properties": {"subnet": {"id": SUBNET}}}
                    ]
                },
            },
        ).result()
        verify = ssl.create_default_context(cafile=ep.ca_bundle)
        admin = httpx.Client(base_url=ep.admin, verify=verify, timeout=30)
        yield {
            "ep": ep,
            "cloud": AzureRecovery(build_compute(settings)),  # type: ignore[arg-type]
            "clock": clock,
            "compute": ComputeManagementClient(credential, SUB, **options_),
            "admin": admin,
            "tmp": tmp,
        }
        admin.close()
        clock.close()


def _recover(env: dict[str, Any], reporter: MemoryReporter, **request: Any) -> dict[str, Any]:
    return perform(
        env["cloud"],
        env["clock"],
        reporter,
        Request(VM, **request),
        lambda subscription: "rg-lifeboat-snapshots",
        sleep=time.sleep,
        poll_seconds=0.05,
        timeout=1800,
    )


def _disks(compute: ComputeManagementClient, vm_name: str) -> dict[int | None, dict[str, Any]]:
    """The VM's disks by LUN (None: the OS disk) as REST bodies."""
    body = compute.virtual_machines.get("rg-app", vm_name).as_dict()
    storage = body.get("storage_profile") or body["properties"]["storageProfile"]
    found: dict[int | None, dict[str, Any]] = {}

    def disk(block: dict[str, Any]) -> dict[str, Any]:
        managed = block.get("managed_disk") or block.get("managedDisk")
        return compute.disks.get("rg-app", managed["id"].rsplit("/", 1)[-1]).as_dict()

    found[None] = disk(storage.get("os_disk") or storage.get("osDisk"))
    for block in storage.get("data_disks") or storage.get("dataDisks") or []:
        found[int(block["lun"])] = disk(block)
    return found


def _source(compute: ComputeManagementClient, disk: dict[str, Any]) -> str:
    """The disk a copied disk's snapshot was taken from (its lineage), by name."""
    creation = disk.get("creation_data") or disk["properties"]["creationData"]
    snapshot_id = creation.get("source_resource_id") or creation["sourceResourceId"]
    snap = compute.snapshots.get("rg-lifeboat-snapshots", snapshot_id.rsplit("/", 1)[-1])
    body = snap.as_dict()
    source = body.get("creation_data") or body["properties"]["creationData"]
    taken = source.get("source_resource_id") or source["sourceResourceId"]
    return str(taken).rsplit("/", 1)[-1]


def _size(disk: dict[str, Any]) -> int:
    return int(disk.get("disk_size_gb") or disk["properties"]["diskSizeGB"])


def test_new_vm_boots_with_the_right_disks_by_lun(stand_in: dict[str, Any]) -> None:
    reporter = MemoryReporter()
    document = _recover(stand_in, reporter)
    assert document["status"] == "succeeded", document["reason"]
    compute = stand_in["compute"]
    new_name = document["newVmId"].rsplit("/", 1)[-1]
    restored, original = _disks(compute, new_name), _disks(compute, "vm-three")
    assert sorted(restored, key=str) == sorted(original, key=str) == [0, 3, None]
    for lun, disk in restored.items():
        assert _source(compute, disk) == original[lun]["name"], lun
        assert _size(disk) == _size(original[lun]), lun
    status = stand_in["cloud"].get_vm_status(document["newVmId"])
    assert (status.power_state, status.agent_status, status.data_disks) == ("running", "Ready", 2)
    vm = compute.virtual_machines.get("rg-app", new_name)
    assert vm.zones == ["2"]
    assert vm.tags["tier"] == "web"
    assert document["rtoSeconds"] >= 135  # create 60 s, boot 45 s, agent 30 s on the stand-in
    assert 2 * 3600 <= document["rpoSeconds"] <= 3 * 3600  # the newest set, taken 2 h before
    [row] = reporter.outcomes
    assert (row.operation, row.status, row.details["caller"]) == (
        "recover",
        "succeeded",
        stand_in["ep"].object_id,
    )


def test_swap_keeps_the_old_disks_and_rollback_puts_them_back(stand_in: dict[str, Any]) -> None:
    compute = stand_in["compute"]
    before = {lun: d["name"] for lun, d in _disks(compute, "vm-three").items()}
    swapped = _recover(stand_in, MemoryReporter(), mode="swap-disks")
    assert swapped["status"] == "succeeded", swapped["reason"]
    now = _disks(compute, "vm-three")
    assert {lun: _source(compute, d) for lun, d in now.items()} == before
    for lun, name in before.items():
        old = compute.disks.get("rg-app", name)
        assert old.managed_by is None, name
        assert old.tags["lifeboat:replaced-by"].lower() == now[lun]["id"].lower()
    back = _recover(stand_in, MemoryReporter(), mode="rollback")
    assert back["status"] == "succeeded", back["reason"]
    assert {lun: d["name"] for lun, d in _disks(compute, "vm-three").items()} == before
    for disk in now.values():
        kept = compute.disks.get("rg-app", disk["name"])
        assert "lifeboat:rolled-back-at" in kept.tags
    status = stand_in["cloud"].get_vm_status(VM)
    assert (status.power_state, status.agent_status) == ("running", "Ready")


def test_disks_only_creates_the_disks_and_names_them(stand_in: dict[str, Any]) -> None:
    document = _recover(stand_in, MemoryReporter(), mode="disks-only", set_id="202611260200")
    assert document["status"] == "succeeded", document["reason"]
    assert [d.rsplit("-", 1)[-1] for d in document["disks"]] == ["osdisk", "lun0", "lun3"]
    for disk_id in document["disks"]:
        assert (
            stand_in["compute"].disks.get("rg-app", disk_id.rsplit("/", 1)[-1]).managed_by is None
        )
    assert document["source"].startswith("snapshot set 202611260200")


def _writes_since(admin: httpx.Client, mark: int) -> list[str]:
    entries = admin.get("/requests", params={"since": mark, "limit": 5000}).json()["entries"]
    return [f"{e['method']} {e['path']}" for e in entries if e["method"] not in ("GET", "HEAD")]


def test_dry_run_sends_no_write(stand_in: dict[str, Any]) -> None:
    admin = stand_in["admin"]
    mark = admin.get("/requests", params={"limit": 1}).json()["total"]
    done = subprocess.run(
        [
            *(sys.executable, "-m", "cli.main", "recover", VM, "--dry-run", "--json"),
            *("--emulator-endpoints", stand_in["ep"].path),
            *("--settings", str(ROOT / "local.settings.sample.json")),
        ],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["status"] == "planned"
    assert [a["action"] for a in document["plan"]].count("create-disk") == 3
    assert _writes_since(admin, mark) == []


def test_a_quota_refusal_says_why_and_writes_nothing(stand_in: dict[str, Any]) -> None:
    admin = stand_in["admin"]
    mark = admin.get("/requests", params={"limit": 1}).json()["total"]
    reporter = MemoryReporter()
    document = _recover(stand_in, reporter, size="Standard_D16s_v5")
    assert document["status"] == "refused"
    assert "quota exceeded: standardDSv5Family in westeurope" in document["reason"]
    assert _writes_since(admin, mark) == []
    assert [o.status for o in reporter.outcomes] == ["refused"]


def test_the_command_recovers_a_new_vm_from_the_latest_recovery_point(
    stand_in: dict[str, Any],
) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "cli.main", "recover", VM, "--recovery-point", "latest"),
            *("--new-vm", "--yes", "--json", "--staging-account", STAGING),
            *("--poll-seconds", "0.1", "--emulator-endpoints", stand_in["ep"].path),
            *("--settings", str(ROOT / "local.settings.sample.json")),
        ],
        cwd=ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    document = json.loads(done.stdout)
    assert document["status"] == "succeeded", document["reason"]
    assert document["source"].startswith("recovery point ")
    compute = stand_in["compute"]
    restored = _disks(compute, document["newVmId"].rsplit("/", 1)[-1])
    original = _disks(compute, "vm-three")
    assert sorted(restored, key=str) == sorted(original, key=str) == [0, 3, None]
    for lun, disk in restored.items():
        creation = disk.get("creation_data") or disk["properties"]["creationData"]
        assert (creation.get("create_option") or creation.get("createOption")) == "Restore"
        assert disk["name"].startswith(original[lun]["name"] + "-"), lun
        assert _size(disk) == _size(original[lun]), lun
        assert disk["tags"]["lifeboat:replaces"] == original[lun]["id"]
    status = stand_in["cloud"].get_vm_status(document["newVmId"])
    assert (status.power_state, status.agent_status, status.data_disks) == ("running", "Ready", 2)
    assert set(document["steps"]) == {"restore", "vm", "agent-ready"}
    assert document["steps"]["restore"] >= 600  # the job's 10 minutes on the stand-in's clock
    assert document["rtoSeconds"] >= 600 + 135
    assert 3 * 3600 <= document["rpoSeconds"] <= 4 * 3600  # the newest point, taken 3 h before
    assert document["restoreJob"]


def test_a_stale_etag_after_a_real_update_is_refused_412(stand_in: dict[str, Any]) -> None:
    from shared.recovery import PreconditionFailedError

    cloud = stand_in["cloud"]
    before = cloud.get_vm(VM)
    cloud.merge_tags(VM, {"owner": "etag-test"})  # a real update of the VM (the Tags API)
    after = cloud.get_vm(VM)
    assert after.etag != before.etag
    data = tuple((a.lun, a.disk_id) for a in before.data_disks)
    with pytest.raises(PreconditionFailedError, match="PreconditionFailed"):
        cloud.update_vm_disks(before, before.os_disk.disk_id, data[:1])
    assert cloud.get_vm(VM).data_disks == after.data_disks
    cloud.delete_tags(VM, ["owner"])


def test_the_stand_in_answers_a_stale_etag_412(stand_in: dict[str, Any]) -> None:
    from dataclasses import replace

    from shared.recovery import PreconditionFailedError

    cloud = stand_in["cloud"]
    vm = cloud.get_vm(VM)
    assert vm.etag
    data = tuple((a.lun, a.disk_id) for a in vm.data_disks)
    with pytest.raises(PreconditionFailedError, match="PreconditionFailed"):
        cloud.update_vm_disks(replace(vm, etag='"stale"'), vm.os_disk.disk_id, data[:1])
    assert cloud.get_vm(VM).data_disks == vm.data_disks
