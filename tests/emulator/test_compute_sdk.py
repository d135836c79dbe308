"""azure-identity and azure-mgmt-compute, unchanged, against the stand-in."""

from __future__ import annotations

import time

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from emulator.process import Endpoints
from tests.emulator.conftest import SNAP_RG, SUB, disk_id, snapshot_body


def test_managed_identity_credential_gets_a_24h_token(
    credential: ManagedIdentityCredential, sdk_env: Endpoints
) -> None:
    token = credential.get_token(sdk_env.arm_audience + ".default")
    assert token.token.startswith("lbt1.")
    assert 86000 < token.expires_on - time.time() <= 86400


def test_vms_list_all_pages_and_by_group(compute: ComputeManagementClient) -> None:
    names = [vm.name for vm in compute.virtual_machines.list_all()]
    assert len(names) == 8  # page size 3: three pages through nextLink
    assert {"vm-web-01", "vm-db-02", "vm-report-01"} <= set(names)
    in_app = [vm.name for vm in compute.virtual_machines.list("rg-app")]
    assert sorted(in_app) == [
        "vm-api-01",
        "vm-cluster-01",
        "vm-cluster-02",
        "vm-web-01",
        "vm-web-02",
    ]


def test_vm_get_and_instance_view(compute: ComputeManagementClient) -> None:
    vm = compute.virtual_machines.get("rg-app", "vm-web-01")
    assert vm.storage_profile.os_disk.managed_disk.id.endswith("/disks/vm-web-01-osdisk")
    assert vm.security_profile.security_type == "TrustedLaunch"
    view = compute.virtual_machines.instance_view("rg-app", "vm-web-01")
    assert "PowerState/running" in [s.code for s in view.statuses]
    assert view.vm_agent.statuses[0].display_status == "Ready"
    stopped = compute.virtual_machines.instance_view("rg-app", "vm-api-01")
    assert "PowerState/deallocated" in [s.code for s in stopped.statuses]
    not_ready = compute.virtual_machines.instance_view("rg-data", "vm-report-01")
    assert not_ready.vm_agent.statuses[0].display_status == "Not Ready"


def test_ephemeral_os_and_plan_are_visible(compute: ComputeManagementClient) -> None:
    vm = compute.virtual_machines.get("rg-app", "vm-web-02")
    assert vm.storage_profile.os_disk.diff_disk_settings.option == "Local"
    db = compute.virtual_machines.get("rg-data", "vm-db-01")
    assert db.plan.publisher == "contoso-db"


def test_disks_list_and_get(compute: ComputeManagementClient) -> None:
    all_disks = list(compute.disks.list())
    assert len(all_disks) >= 14
    shared = compute.disks.get("rg-app", "disk-cluster-shared")
    assert shared.max_shares == 2
    assert len(shared.managed_by_extended) == 2
    other_group = compute.disks.get("rg-data", "vm-api-01-data-01")
    assert other_group.managed_by.endswith(
        "/rg-app/providers/Microsoft.Compute/virtualMachines/vm-api-01"
    )
    assert [d.name for d in compute.disks.list_by_resource_group("mrg-analytics")] == [
        "disk-analytics-scratch"
    ]
    with pytest.raises(ResourceNotFoundError) as missing:
        compute.disks.get("rg-app", "nope")
    assert missing.value.error.code == "ResourceNotFound"


def test_incremental_snapshot_create_get_list_delete(compute: ComputeManagementClient) -> None:
    source = compute.disks.get("rg-app", "vm-web-01-data-01")
    poller = compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-sdk-inc", snapshot_body(source.id)
    )
    snap = poller.result()
    assert snap.provisioning_state == "Succeeded"
    assert snap.incremental is True
    assert snap.creation_data.source_resource_id == source.id
    assert snap.creation_data.source_unique_id == source.unique_id
    assert snap.time_created is not None
    assert snap.tags["costCenter"] == "ops-backup"  # the estate's Azure Policy modify effect
    got = compute.snapshots.get(SNAP_RG, "t-sdk-inc")
    assert got.unique_id == snap.unique_id
    names = [s.name for s in compute.snapshots.list_by_resource_group(SNAP_RG)]
    assert "t-sdk-inc" in names
    assert "t-sdk-inc" in [s.name for s in compute.snapshots.list()]
    compute.snapshots.begin_delete(SNAP_RG, "t-sdk-inc").result()
    assert "t-sdk-inc" not in [s.name for s in compute.snapshots.list_by_resource_group(SNAP_RG)]


def test_a_list_paged_while_resources_are_deleted_skips_and_repeats_none(
    compute: ComputeManagementClient,
) -> None:
    """The skip token names where the last page ended, not an offset: deleting what a client has
    already read (another worker's prunes) never hides a snapshot it has not read yet."""
    source = compute.disks.get("rg-app", "vm-web-01-data-01")
    names = [f"a-paging-{n}" for n in range(4)]  # first in id order: the first page is ours
    pollers = [
        compute.snapshots.begin_create_or_update(SNAP_RG, name, snapshot_body(source.id))
        for name in names
    ]
    for poller in pollers:
        poller.result()
    before = [s.name for s in compute.snapshots.list_by_resource_group(SNAP_RG)]
    pages = compute.snapshots.list_by_resource_group(SNAP_RG).by_page()
    first = [s.name for s in next(pages)]
    assert first == names[:3]  # page size 3
    for name in first:
        compute.snapshots.begin_delete(SNAP_RG, name).result()
    rest = [s.name for page in pages for s in page]
    assert rest == [n for n in before if n not in first]
    compute.snapshots.begin_delete(SNAP_RG, names[3]).result()


def test_full_snapshot_from_source_uri(compute: ComputeManagementClient) -> None:
    source = disk_id("rg-app", "vm-cluster-01-osdisk")
    body = snapshot_body(source, incremental=False)
    body["properties"]["creationData"] = {"createOption": "Copy", "sourceUri": source}
    snap = compute.snapshots.begin_create_or_update(SNAP_RG, "t-sdk-full", body).result()
    assert snap.incremental is False
    assert snap.creation_data.source_resource_id == source  # filled in even when sourceUri was sent
    compute.snapshots.begin_delete(SNAP_RG, "t-sdk-full").result()


def test_put_without_polling_shows_updating_then_succeeded(
    compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    source = disk_id("rg-app", "vm-cluster-02-osdisk")
    admin.post("/clock", json={"rate": 0}).raise_for_status()  # time moves only when told
    try:
        compute.snapshots.begin_create_or_update(
            SNAP_RG, "t-sdk-nopoll", snapshot_body(source), polling=False
        )
        assert compute.snapshots.get(SNAP_RG, "t-sdk-nopoll").provisioning_state == "Updating"
        admin.post("/clock", json={"advanceSeconds": 1}).raise_for_status()
        assert compute.snapshots.get(SNAP_RG, "t-sdk-nopoll").provisioning_state == "Succeeded"
    finally:
        admin.post("/clock", json={"rate": 1}).raise_for_status()


def test_premium_v2_snapshot_hydrates_on_the_clock(
    compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    source = disk_id("rg-data", "vm-db-01-data-01")
    snap = compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-sdk-pv2", snapshot_body(source)
    ).result()
    assert snap.provisioning_state == "Succeeded"
    assert snap.snapshot_access_state == "Pending"
    assert snap.completion_percent < 100
    admin.post("/clock", json={"advanceSeconds": 300}).raise_for_status()
    half = compute.snapshots.get(SNAP_RG, "t-sdk-pv2")
    assert snap.completion_percent < half.completion_percent < 100
    admin.post("/clock", json={"advanceSeconds": 400}).raise_for_status()
    done = compute.snapshots.get(SNAP_RG, "t-sdk-pv2")
    assert done.completion_percent == 100
    assert done.snapshot_access_state == "Available"


def test_existing_name_is_a_no_op_and_source_change_is_refused(
    compute: ComputeManagementClient,
) -> None:
    source = disk_id("rg-app", "vm-api-01-osdisk")
    first = compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-sdk-again", snapshot_body(source)
    ).result()
    again = compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-sdk-again", snapshot_body(source)
    ).result()
    assert again.unique_id == first.unique_id
    other = snapshot_body(disk_id("rg-app", "vm-web-01-osdisk"))
    with pytest.raises(HttpResponseError) as info:
        compute.snapshots.begin_create_or_update(SNAP_RG, "t-sdk-again", other)
    assert info.value.status_code == 409
    assert info.value.error.code == "PropertyChangeNotAllowed"


def test_list_all_with_status_only_carries_power_states(compute: ComputeManagementClient) -> None:
    states = {
        vm.name: [s.code for s in vm.instance_view.statuses]
        for vm in compute.virtual_machines.list_all(status_only="true")
    }
    assert "PowerState/deallocated" in states["vm-api-01"]
    assert "PowerState/running" in states["vm-web-01"]


def test_vm_update_of_tags_is_synchronous(compute: ComputeManagementClient) -> None:
    vm = compute.virtual_machines.begin_update(
        "rg-app", "vm-cluster-02", {"tags": {"lifeboat:policy": "daily", "team": "x"}}
    ).result()
    assert vm.tags == {"lifeboat:policy": "daily", "team": "x"}
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.begin_update("rg-data", "vm-db-01", {"tags": {}}).result()
    assert (info.value.status_code, info.value.error.code) == (409, "ScopeLocked")


def test_location_header_monitors_the_operation(arm: httpx.Client, admin: httpx.Client) -> None:
    url = (
        f"/subscriptions/{SUB}/resourceGroups/{SNAP_RG}/providers/Microsoft.Compute/snapshots/"
        "t-monitor?api-version=2026-03-02"
    )
    admin.post("/clock", json={"rate": 0}).raise_for_status()
    try:
        put = arm.put(url, json=snapshot_body(disk_id("rg-app", "vm-web-02-data-01")))
        assert put.status_code == 202
        location = put.headers["Location"]
        assert "monitor=true" in location
        waiting = arm.get(location)
        assert waiting.status_code == 202
        assert "Retry-After" in waiting.headers
        admin.post("/clock", json={"advanceSeconds": 5}).raise_for_status()
        done = arm.get(location)
        assert done.status_code == 200
        assert done.json()["properties"]["provisioningState"] == "Succeeded"
        deleted = arm.delete(url)
        assert deleted.status_code == 202
        assert deleted.content == b""
        admin.post("/clock", json={"advanceSeconds": 5}).raise_for_status()
        finished = arm.get(deleted.headers["Location"])
        assert (finished.status_code, finished.content) == (200, b"")
    finally:
        admin.post("/clock", json={"rate": 1}).raise_for_status()
