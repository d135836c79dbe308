"""The clock, fault injection, the request log and the 401s, over the admin API."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from emulator.process import Endpoints
from tests.emulator.conftest import CLOCK_START, SNAP_RG, SUB, disk_id, make_compute, snapshot_body

GROUPS = f"/subscriptions/{SUB}/resourceGroups?api-version=2021-04-01"


def parse(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def faults(admin: httpx.Client) -> Iterator[httpx.Client]:
    yield admin
    admin.delete("/faults").raise_for_status()


def test_clock_starts_at_the_given_instant_and_advances(admin: httpx.Client) -> None:
    now = parse(admin.get("/clock").json()["now"])
    assert now >= parse(CLOCK_START)
    later = parse(admin.post("/clock", json={"advanceSeconds": 3600}).json()["now"])
    assert timedelta(seconds=3600) <= later - now < timedelta(seconds=3700)
    target = later + timedelta(days=1)
    moved = parse(admin.post("/clock", json={"set": target.isoformat()}).json()["now"])
    assert moved >= target
    assert admin.post("/clock", json={"set": CLOCK_START}).status_code == 400  # never backwards


def test_status_fault_by_count_then_healthy(
    faults: httpx.Client, sdk_env: Endpoints, credential: ManagedIdentityCredential
) -> None:
    compute = make_compute(sdk_env, credential, retry_total=0)
    faults.post(
        "/faults",
        json={
            "method": "GET",
            "path": "/virtualMachines/vm-web-01$",
            "status": 503,
            "code": "ServiceUnavailable",
            "count": 1,
        },
    ).raise_for_status()
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.get("rg-app", "vm-web-01")
    assert info.value.status_code == 503
    assert compute.virtual_machines.get("rg-app", "vm-web-01").name == "vm-web-01"
    rules = faults.get("/faults").json()["rules"]
    assert rules[0]["hits"] == 1


def test_identity_endpoint_transient_500(faults: httpx.Client, stand_in: Endpoints) -> None:
    faults.post(
        "/faults", json={"path": "^/msi/token", "status": 500, "count": 1}
    ).raise_for_status()
    url = f"{stand_in.identity_endpoint}?api-version=2019-08-01&resource=https://management.azure.com/"
    headers = {"X-IDENTITY-HEADER": stand_in.identity_header}
    with httpx.Client(verify=ssl.create_default_context(cafile=stand_in.ca_bundle)) as client:
        assert client.get(url, headers=headers).status_code == 500
        second = client.get(url, headers=headers)
    assert second.status_code == 200
    assert isinstance(second.json()["expires_on"], int)


def test_probability_fault(faults: httpx.Client, arm: httpx.Client) -> None:
    faults.post(
        "/faults",
        json={"method": "GET", "path": "/resourceGroups$", "status": 500, "probability": 0.5},
    ).raise_for_status()
    statuses = [arm.get(GROUPS).status_code for _ in range(40)]
    assert 5 <= statuses.count(500) <= 35
    assert statuses.count(200) + statuses.count(500) == 40


def test_latency_fault(faults: httpx.Client, arm: httpx.Client) -> None:
    faults.post(
        "/faults",
        json={"action": "latency", "path": "/resourceGroups$", "latencyMs": 300, "count": 1},
    ).raise_for_status()
    start = time.monotonic()
    assert arm.get(GROUPS).status_code == 200
    assert time.monotonic() - start >= 0.3


def test_connection_reset_fault(
    faults: httpx.Client, sdk_env: Endpoints, credential: ManagedIdentityCredential
) -> None:
    compute = make_compute(sdk_env, credential, retry_total=0)
    compute.virtual_machines.get("rg-app", "vm-web-01")  # a token and a live connection first
    faults.post(
        "/faults", json={"action": "reset", "path": "/virtualMachines/vm-web-01$", "count": 1}
    ).raise_for_status()
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        compute.virtual_machines.get("rg-app", "vm-web-01")
    assert compute.virtual_machines.get("rg-app", "vm-web-01").name == "vm-web-01"


def test_stuck_operation(
    faults: httpx.Client, compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    faults.post(
        "/faults",
        json={"action": "stuck", "method": "PUT", "path": "/snapshots/t-stuck$", "count": 1},
    ).raise_for_status()
    source = disk_id("rg-app", "vm-web-01-data-01")
    poller = compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-stuck", snapshot_body(source), polling=False
    )
    assert poller.done()
    admin.post("/clock", json={"advanceSeconds": 86400}).raise_for_status()
    assert compute.snapshots.get(SNAP_RG, "t-stuck").provisioning_state == "Updating"


def test_request_log_counts_by_method_operation_and_status(
    admin: httpx.Client, compute: ComputeManagementClient
) -> None:
    before = admin.get("/requests").json()
    compute.disks.get("rg-app", "vm-web-01-osdisk")
    with pytest.raises(HttpResponseError):
        compute.disks.get("rg-app", "nope")
    after = admin.get("/requests", params={"since": before["total"]}).json()
    ops = [(e["method"], e["operation"], e["status"]) for e in after["entries"]]
    assert ("GET", "Microsoft.Compute/disks/read", 200) in ops
    assert ("GET", "Microsoft.Compute/disks/read", 404) in ops
    counters = after["counters"]
    assert (
        counters["byOperation"]["Microsoft.Compute/disks/read"]
        >= before["counters"]["byOperation"].get("Microsoft.Compute/disks/read", 0) + 2
    )
    assert counters["byStatus"]["404"] >= 1
    assert counters["byMethod"]["GET"] >= 2


def test_snapshot_create_logs_its_linked_action(
    admin: httpx.Client, compute: ComputeManagementClient
) -> None:
    since = admin.get("/requests").json()["total"]
    source = disk_id("rg-app", "vm-cluster-01-osdisk")
    compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-linked", snapshot_body(source), polling=False
    )
    entries = admin.get("/requests", params={"since": since}).json()["entries"]
    put = next(e for e in entries if e["method"] == "PUT")
    assert put["actions"] == [
        "Microsoft.Compute/snapshots/write",
        "Microsoft.Compute/disks/beginGetAccess/action",
    ]


def test_401_without_token_and_for_another_audience(
    stand_in: Endpoints, sdk_env: Endpoints
) -> None:
    with httpx.Client(
        base_url=stand_in.arm, verify=ssl.create_default_context(cafile=stand_in.ca_bundle)
    ) as client:
        missing = client.get(GROUPS)
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "AuthenticationFailed"
        assert "WWW-Authenticate" in missing.headers
        storage = ManagedIdentityCredential(client_id=stand_in.client_id).get_token(
            "https://storage.azure.com/.default"
        )
        wrong = client.get(GROUPS, headers={"Authorization": f"Bearer {storage.token}"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
        forged = client.get(GROUPS, headers={"Authorization": "Bearer lbt1.e30.bad"})
        assert forged.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_sdk_with_another_audience_gets_401(
    sdk_env: Endpoints, credential: ManagedIdentityCredential
) -> None:
    compute = ComputeManagementClient(
        credential,
        SUB,
        base_url=sdk_env.arm,
        credential_scopes=["https://monitor.azure.com/.default"],
        connection_verify=sdk_env.ca_bundle,
    )
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.get("rg-app", "vm-web-01")
    assert info.value.status_code == 401


def test_identity_endpoint_refuses_a_wrong_header_and_unknown_client(stand_in: Endpoints) -> None:
    ssl_ctx = ssl.create_default_context(cafile=stand_in.ca_bundle)
    with httpx.Client(verify=ssl_ctx) as client:
        base = f"{stand_in.identity_endpoint}?api-version=2019-08-01&resource=https://management.azure.com/"
        assert client.get(base, headers={"X-IDENTITY-HEADER": "wrong"}).status_code == 401
        unknown = client.get(
            base + "&client_id=00000000-0000-0000-0000-000000000001",
            headers={"X-IDENTITY-HEADER": stand_in.identity_header},
        )
        assert unknown.status_code == 400
