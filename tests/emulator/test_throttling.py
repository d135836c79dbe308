"""Throttling as ARM and Compute do it, with small buckets set over the admin API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential

from emulator.process import Endpoints
from tests.emulator.conftest import SNAP_RG, SUB, disk_id, make_compute, snapshot_body

GROUPS = f"/subscriptions/{SUB}/resourceGroups?api-version=2021-04-01"


@pytest.fixture
def small_buckets(admin: httpx.Client) -> Iterator[None]:
    original = admin.get("/throttle").json()
    admin.post(
        "/throttle",
        json={
            "arm": {"reads": [5, 1], "writes": [3, 1], "deletes": [3, 1], "globalFactor": 15},
            "compute": {"writes_3min": 2, "deletes_3min": 2},
            "retryAfterScale": 1,
        },
    ).raise_for_status()
    yield
    admin.post("/throttle", json=original).raise_for_status()


@pytest.mark.usefixtures("small_buckets")
def test_arm_reads_run_out_with_429_and_both_header_families(arm: httpx.Client) -> None:
    remaining = []
    for _ in range(5):
        response = arm.get(GROUPS)
        assert response.status_code == 200
        remaining.append(int(response.headers["x-ms-ratelimit-remaining-subscription-reads"]))
        assert int(response.headers["x-ms-ratelimit-remaining-subscription-global-reads"]) > 60
    assert remaining == [4, 3, 2, 1, 0]
    throttled = arm.get(GROUPS)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert int(throttled.headers["Retry-After"]) >= 1
    # Writes have their own bucket.
    write = arm.patch(
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Resources/tags/default?api-version=2021-04-01",
        json={"operation": "Merge", "properties": {"tags": {"t": "1"}}},
    )
    assert write.status_code == 200
    assert write.headers["x-ms-ratelimit-remaining-subscription-writes"] == "2"
    assert "x-ms-ratelimit-remaining-subscription-global-writes" in write.headers


@pytest.mark.usefixtures("small_buckets")
def test_compute_snapshot_write_policy(arm: httpx.Client) -> None:
    source = disk_id("rg-app", "vm-cluster-01-osdisk")
    url = (
        f"/subscriptions/{SUB}/resourceGroups/{SNAP_RG}/providers/Microsoft.Compute/snapshots/"
        "t-throttle-%d?api-version=2026-03-02"
    )
    first = arm.put(url % 0, json=snapshot_body(source))
    assert first.status_code == 202
    assert first.headers["x-ms-ratelimit-remaining-resource"].startswith(
        "Microsoft.Compute/CreateUpdateDisks3Min;1,Microsoft.Compute/CreateUpdateDisks30Min;"
    )
    assert arm.put(url % 1, json=snapshot_body(source)).status_code == 202
    third = arm.put(url % 2, json=snapshot_body(source))
    assert third.status_code == 429
    assert "Retry-After" in third.headers
    # Compute's own 429: one header per policy, and a body without the `error` wrapper.
    policies = third.headers.get_list("x-ms-ratelimit-remaining-resource")
    assert policies[0] == "Microsoft.Compute/CreateUpdateDisks3Min;0"
    assert policies[1].startswith("Microsoft.Compute/CreateUpdateDisks30Min;")
    assert third.json()["code"] == "OperationNotAllowed"
    assert third.json()["details"][0]["target"] == "CreateUpdateDisks3Min"


@pytest.mark.usefixtures("small_buckets")
def test_sdk_sees_the_429(sdk_env: Endpoints, credential: ManagedIdentityCredential) -> None:
    compute = make_compute(sdk_env, credential, retry_total=0)
    for _ in range(5):  # the read bucket holds 5
        compute.snapshots.get(SNAP_RG, "lb-cjpatr2qbqd3h6qm-202611260200")
    with pytest.raises(HttpResponseError) as info:
        compute.snapshots.get(SNAP_RG, "lb-cjpatr2qbqd3h6qm-202611260200")
    assert info.value.status_code == 429


def test_retry_after_scales(admin: httpx.Client, arm: httpx.Client) -> None:
    original = admin.get("/throttle").json()
    try:
        admin.post(
            "/throttle", json={"arm": {"reads": [1, 0.01]}, "retryAfterScale": 0.01}
        ).raise_for_status()
        arm.get(GROUPS)
        throttled = arm.get(GROUPS)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "1"  # 100 s scaled by 0.01
    finally:
        admin.post("/throttle", json=original).raise_for_status()


def test_reads_report_compute_policies_as_recorded(arm: httpx.Client) -> None:
    snapshot = arm.get(
        f"/subscriptions/{SUB}/resourceGroups/{SNAP_RG}/providers/Microsoft.Compute/snapshots/"
        "lb-cjpatr2qbqd3h6qm-202611260200?api-version=2026-03-02"
    )
    assert snapshot.headers["x-ms-ratelimit-remaining-resource"].startswith(
        "Microsoft.Compute/LowCostGet3Min;"
    )
    vm = arm.get(
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/"
        "virtualMachines/vm-web-01?api-version=2026-04-01"
    )
    assert "Microsoft.Compute/LowCostGet30Min;" in vm.headers["x-ms-ratelimit-remaining-resource"]
