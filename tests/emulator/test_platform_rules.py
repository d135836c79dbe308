"""Platform rules and refusals, with Azure's status and error codes, seen through the real SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from emulator.process import running_emulator
from tests.emulator.conftest import (
    SNAP_RG,
    SUB,
    disk_id,
    pointed_at,
    refusal,
    refused_snapshot,
    snapshot_body,
    start_snapshot,
)

VMS = "/providers/Microsoft.Compute/virtualMachines"
VM_WEB = f"/subscriptions/{SUB}/resourceGroups/rg-app{VMS}/vm-web-01"
VM_DB = f"/subscriptions/{SUB}/resourceGroups/rg-data{VMS}/vm-db-02"
TAGS_API = "/providers/Microsoft.Resources/tags/default?api-version=2021-04-01"


def test_ephemeral_os_disk_cannot_be_snapshotted(compute: ComputeManagementClient) -> None:
    source = disk_id("rg-app", "vm-web-02-osdisk")
    e = refusal(
        lambda: compute.snapshots.begin_create_or_update(SNAP_RG, "t-eph", snapshot_body(source))
    )
    assert (e.status_code, e.error.code) == (409, "OperationNotAllowed")


def test_deny_assignment_fails_the_linked_check(compute: ComputeManagementClient) -> None:
    source = disk_id("mrg-analytics", "disk-analytics-scratch")
    e = refusal(
        lambda: compute.snapshots.begin_create_or_update(SNAP_RG, "t-deny", snapshot_body(source))
    )
    assert (e.status_code, e.error.code) == (403, "LinkedAuthorizationFailed")
    assert "Microsoft.Compute/disks/beginGetAccess/action" in e.error.message
    assert source in e.error.message


def test_policy_denial(compute: ComputeManagementClient) -> None:
    body = snapshot_body(disk_id("rg-app", "vm-web-01-osdisk"))
    body["properties"]["networkAccessPolicy"] = "AllowAll"
    e = refusal(lambda: compute.snapshots.begin_create_or_update(SNAP_RG, "t-policy", body))
    assert (e.status_code, e.error.code) == (403, "RequestDisallowedByPolicy")
    assert "snapshots-deny-public-network" in e.error.message


def test_read_only_lock_refuses_tag_writes(arm: httpx.Client) -> None:
    response = arm.patch(
        VM_DB + TAGS_API, json={"operation": "Merge", "properties": {"tags": {"a": "b"}}}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ScopeLocked"
    assert "/resourceGroups/rg-data" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", ["x" * 81, "ends-with-dash-", "-starts-bad", "has space"])
def test_name_rules(compute: ComputeManagementClient, name: str) -> None:
    body = snapshot_body(disk_id("rg-app", "vm-web-01-osdisk"))
    e = refusal(lambda: compute.snapshots.begin_create_or_update(SNAP_RG, name, body))
    assert (e.status_code, e.error.code) == (400, "InvalidResourceName")


def test_longest_valid_name_is_accepted(compute: ComputeManagementClient) -> None:
    name = "a" * 79 + "_"
    body = snapshot_body(disk_id("rg-app", "vm-cluster-01-osdisk"))
    compute.snapshots.begin_create_or_update(SNAP_RG, name, body, polling=False)
    compute.snapshots.begin_delete(SNAP_RG, name, polling=False)


def test_not_found_shapes(compute: ComputeManagementClient, arm: httpx.Client) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        compute.snapshots.get(SNAP_RG, "nope")
    assert missing.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as no_group:
        compute.snapshots.get("rg-nope", "nope")
    assert no_group.value.error.code == "ResourceGroupNotFound"
    compute.snapshots.begin_delete(SNAP_RG, "never-existed").result()  # 204: nothing to do
    other = arm.get(
        "/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups?api-version=2021-04-01"
    )
    assert (other.status_code, other.json()["error"]["code"]) == (404, "SubscriptionNotFound")


def test_premium_v2_needs_incremental(compute: ComputeManagementClient) -> None:
    body = snapshot_body(disk_id("rg-data", "vm-db-01-data-01"), incremental=False)
    e = refusal(lambda: compute.snapshots.begin_create_or_update(SNAP_RG, "t-pv2-full", body))
    assert e.status_code == 400


@pytest.fixture
def behaviour(admin: httpx.Client) -> Iterator[Callable[..., None]]:
    original = admin.get("/behaviour").json()

    def change(**settings: Any) -> None:
        admin.post("/behaviour", json=settings).raise_for_status()

    yield change
    admin.post("/behaviour", json=original).raise_for_status()


def test_incremental_snapshot_limit_per_disk(
    compute: ComputeManagementClient, admin: httpx.Client, behaviour: Callable[..., None]
) -> None:
    assert admin.get("/behaviour").json()["incrementalLimit"] == 500
    behaviour(incrementalLimit=2)
    source = disk_id("rg-app", "vm-web-02-data-01")
    for i in range(2):
        start_snapshot(compute, f"t-limit-{i}", snapshot_body(source))
    assert refused_snapshot(compute, "t-limit-2", snapshot_body(source))[:2] == (
        409,
        "SnapshotsLimitReached",
    )
    # A full snapshot does not count against the incremental limit.
    start_snapshot(compute, "t-limit-full", snapshot_body(source, incremental=False))


def test_seven_incremental_snapshots_per_disk_per_five_minutes(
    compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    source = disk_id("rg-app", "vm-cluster-02-osdisk")
    admin.post("/clock", json={"advanceSeconds": 301}).raise_for_status()  # a fresh window
    for i in range(7):
        start_snapshot(compute, f"t-burst-{i}", snapshot_body(source))
    assert refused_snapshot(compute, "t-burst-7", snapshot_body(source))[:2] == (
        409,
        "OperationNotAllowed",
    )
    admin.post("/clock", json={"advanceSeconds": 301}).raise_for_status()
    start_snapshot(compute, "t-burst-7", snapshot_body(source))


def test_tag_keys_are_case_insensitive_and_keep_the_first_casing(arm: httpx.Client) -> None:
    first = arm.patch(
        VM_WEB + TAGS_API,
        json={"operation": "Merge", "properties": {"tags": {"Lifeboat:Test": "1"}}},
    )
    assert first.status_code == 200
    second = arm.patch(
        VM_WEB + TAGS_API,
        json={"operation": "Merge", "properties": {"tags": {"lifeboat:test": "2"}}},
    )
    tags = second.json()["properties"]["tags"]
    assert tags["Lifeboat:Test"] == "2"
    assert "lifeboat:test" not in tags
    assert tags["lifeboat:policy"] == "daily"  # merge keeps the others
    gone = arm.patch(
        VM_WEB + TAGS_API,
        json={"operation": "Delete", "properties": {"tags": {"LIFEBOAT:TEST": ""}}},
    )
    assert "Lifeboat:Test" not in gone.json()["properties"]["tags"]


@pytest.mark.parametrize(
    ("tags", "code"),
    [
        ({f"k{i}": "v" for i in range(51)}, "InvalidTagCount"),
        ({"k" * 513: "v"}, "InvalidTagNameLength"),
        ({"k": "v" * 257}, "InvalidTagValueLength"),
        ({"microsoft-thing": "v"}, "InvalidTagName"),
    ],
)
def test_tag_limits(arm: httpx.Client, tags: dict[str, str], code: str) -> None:
    response = arm.patch(
        VM_WEB + TAGS_API, json={"operation": "Merge", "properties": {"tags": tags}}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_can_not_delete_lock_refuses_deletes_but_not_creates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    estate = Path(__file__).parent / "estates" / "locked.yaml"
    with running_emulator(estate) as endpoints:
        pointed_at(endpoints, monkeypatch)
        credential = ManagedIdentityCredential(client_id=endpoints.client_id)
        compute = ComputeManagementClient(
            credential,
            endpoints.subscriptions[0],
            base_url=endpoints.arm,
            credential_scopes=[endpoints.arm_audience + ".default"],
            connection_verify=endpoints.ca_bundle,
        )
        e = refusal(lambda: compute.snapshots.begin_delete(SNAP_RG, "old-1"))
        assert (e.status_code, e.error.code) == (409, "ScopeLocked")
        source = compute.disks.get("rg-app", "vm-1-osdisk")
        body = snapshot_body(source.id)
        compute.snapshots.begin_create_or_update(SNAP_RG, "new-1", body, polling=False)
        assert compute.snapshots.get(SNAP_RG, "new-1").name == "new-1"
