"""Compute under pressure (REFERENCE.md): throttling families and their headers as recorded, both
ARM header shapes, the 1,200-second 429 and the 429 without Retry-After, the platform limits with
their errors, and the untidy bodies, through the real azure-mgmt-compute client."""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline import PipelineResponse
from azure.core.rest import HttpResponse
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from emulator.process import Endpoints, running_emulator
from tests.emulator.conftest import (
    SNAP_RG,
    SUB,
    disk_id,
    make_compute,
    pointed_at,
    refusal,
    refused_snapshot,
    snapshot_body,
    start_snapshot,
)

SNAPS = f"/subscriptions/{SUB}/resourceGroups/{SNAP_RG}/providers/Microsoft.Compute/snapshots"
GROUPS = f"/subscriptions/{SUB}/resourceGroups?api-version=2021-04-01"
API = "?api-version=2026-03-02"
RESOURCE = "x-ms-ratelimit-remaining-resource"
# The 2024 azure-sdk-assets recording of a snapshot create (REFERENCE.md, "Compute under pressure").
RECORDED_HYDRATE = (
    "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;999,"
    "Microsoft.Compute/HighCostSnapshotCreateHydrate30Min;7999"
)
SEVEN_DIGITS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$")


class Headers:
    """Collects the headers of every answer an SDK call saw (`raw_response_hook`)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        self.seen.append(dict(response.http_response.headers))

    @property
    def last(self) -> dict[str, str]:
        return self.seen[-1]


def sdk_body(source: str, *, incremental: bool = True) -> Any:
    """A snapshot PUT body as JSON (the SDK takes a dict as it takes its model)."""
    return snapshot_body(source, incremental=incremental)


def headers_of(error: HttpResponseError) -> Any:
    assert error.response is not None
    return cast(HttpResponse, error.response).headers


@pytest.fixture
def throttle(admin: httpx.Client) -> Iterator[Callable[..., None]]:
    """Full buckets now (a POST resets them all), changes on demand, the old settings after."""
    original = admin.get("/throttle").json()
    admin.post("/throttle", json=original).raise_for_status()

    def change(**settings: Any) -> None:
        admin.post("/throttle", json=settings).raise_for_status()

    yield change
    admin.post("/throttle", json=original).raise_for_status()


@pytest.fixture
def no_retry(sdk_env: Endpoints, credential: ManagedIdentityCredential) -> ComputeManagementClient:
    """A client that shows a 429 instead of sleeping through it (azure-core has no cap)."""
    return make_compute(sdk_env, credential, retry_total=0)


@pytest.fixture
def faults(admin: httpx.Client) -> Iterator[Callable[..., dict[str, Any]]]:
    def add(**rule: Any) -> dict[str, Any]:
        response = admin.post("/faults", json=rule)
        response.raise_for_status()
        added: dict[str, Any] = response.json()
        return added

    yield add
    admin.delete("/faults").raise_for_status()


# ---- families ------------------------------------------------------------------------------


@pytest.mark.usefixtures("throttle")
def test_a_full_create_counts_against_the_hydrate_family_as_recorded(
    compute: ComputeManagementClient,
) -> None:
    seen = Headers()
    body = sdk_body(disk_id("rg-app", "vm-web-01-data-01"), incremental=False)
    compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-press-full-0", body, polling=False, raw_response_hook=seen
    )
    assert seen.last[RESOURCE] == RECORDED_HYDRATE
    # An incremental create counts against CreateUpdateDisks unless told otherwise.
    incremental = sdk_body(disk_id("rg-app", "vm-web-01-data-01"))
    compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-press-inc-0", incremental, polling=False, raw_response_hook=seen
    )
    assert seen.last[RESOURCE].startswith("Microsoft.Compute/CreateUpdateDisks3Min;2999,")
    for name in ("t-press-full-0", "t-press-inc-0"):
        compute.snapshots.begin_delete(SNAP_RG, name, polling=False)


def test_full_creates_run_out_of_the_hydrate_family(
    no_retry: ComputeManagementClient, throttle: Callable[..., None]
) -> None:
    throttle(compute={"hydrate_3min": 2})  # refills 2 per 180 s: counts are exact
    seen = Headers()
    body = sdk_body(disk_id("rg-app", "vm-web-01-data-01"), incremental=False)
    for name in ("t-press-out-0", "t-press-out-1"):
        no_retry.snapshots.begin_create_or_update(
            SNAP_RG, name, body, polling=False, raw_response_hook=seen
        )
    assert [h[RESOURCE].split(",")[0] for h in seen.seen] == [
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;1",
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;0",
    ]
    e = refusal(lambda: no_retry.snapshots.begin_create_or_update(SNAP_RG, "t-press-out-2", body))
    assert e.status_code == 429
    assert json.loads(e.response.text() if e.response else "{}")["details"][0]["target"] == (
        "HighCostSnapshotCreateHydrate3Min"
    )
    for name in ("t-press-out-0", "t-press-out-1"):
        no_retry.snapshots.begin_delete(SNAP_RG, name, polling=False)


def test_the_incremental_family_is_a_setting(
    compute: ComputeManagementClient, throttle: Callable[..., None], admin: httpx.Client
) -> None:
    throttle(compute={"incremental_family": "HighCostSnapshotCreateHydrate"})
    assert admin.get("/throttle").json()["compute"]["incremental_family"] == (
        "HighCostSnapshotCreateHydrate"
    )
    seen = Headers()
    body = sdk_body(disk_id("rg-data", "vm-db-02-osdisk"))
    compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-press-inc-h", body, polling=False, raw_response_hook=seen
    )
    assert seen.last[RESOURCE] == RECORDED_HYDRATE
    compute.snapshots.begin_delete(SNAP_RG, "t-press-inc-h", polling=False)
    bad = admin.post("/throttle", json={"compute": {"incremental_family": "Nope"}})
    assert bad.status_code == 400


@pytest.mark.usefixtures("throttle")
def test_deletes_reads_and_polls_count_against_their_own_families(
    compute: ComputeManagementClient,
) -> None:
    seen = Headers()
    body = sdk_body(disk_id("rg-app", "vm-web-01-data-01"), incremental=False)
    poller = compute.snapshots.begin_create_or_update(
        SNAP_RG, "t-press-families", body, raw_response_hook=seen
    )
    poller.result()
    resources = [h.get(RESOURCE, "") for h in seen.seen]
    polls = [r for r in resources if r.startswith("Microsoft.Compute/GetOperation3Min;")]
    assert polls
    assert polls[0].startswith("Microsoft.Compute/GetOperation3Min;49999,")
    assert "Microsoft.Compute/GetOperation30Min;399999" in polls[0]
    compute.snapshots.get(SNAP_RG, "t-press-families", raw_response_hook=seen)
    # The poller's final GET and this one: both reads, refilling fast (15,000 per 180 s, so on a
    # loaded machine the bucket may be full again by the time the GET is answered).
    three, thirty = seen.last[RESOURCE].split(",")
    assert three.startswith("Microsoft.Compute/LowCostGet3Min;")
    assert 14990 <= int(three.split(";")[1]) <= 14999
    assert thirty.startswith("Microsoft.Compute/LowCostGet30Min;")
    assert 119990 <= int(thirty.split(";")[1]) <= 119999
    compute.snapshots.begin_delete(
        SNAP_RG, "t-press-families", polling=False, raw_response_hook=seen
    )
    assert seen.last[RESOURCE] == (
        "Microsoft.Compute/DeleteDisks3Min;2999,Microsoft.Compute/DeleteDisks30Min;23999"
    )


# ---- ARM header shapes ---------------------------------------------------------------------


def _first_of_each(arm: httpx.Client) -> dict[str, str]:
    """One read, one write and one delete; their ARM headers."""
    headers: dict[str, str] = {}
    for response in (
        arm.get(GROUPS),
        arm.put(
            f"{SNAPS}/t-press-shape{API}",
            json=sdk_body(disk_id("rg-app", "vm-web-01-data-01"), incremental=False),
        ),
        arm.delete(f"{SNAPS}/t-press-shape{API}"),
    ):
        assert response.status_code < 300, response.text
        headers.update(
            {
                k: v
                for k, v in response.headers.items()
                if k.startswith("x-ms-ratelimit-remaining-s")
            }
        )
    return headers


@pytest.mark.usefixtures("throttle")
def test_token_bucket_headers_with_global_twins(arm: httpx.Client) -> None:
    assert _first_of_each(arm) == {
        "x-ms-ratelimit-remaining-subscription-reads": "249",
        "x-ms-ratelimit-remaining-subscription-global-reads": "3749",
        "x-ms-ratelimit-remaining-subscription-writes": "199",
        "x-ms-ratelimit-remaining-subscription-global-writes": "2999",
        "x-ms-ratelimit-remaining-subscription-deletes": "199",
        "x-ms-ratelimit-remaining-subscription-global-deletes": "2999",
    }


def test_hourly_headers_as_in_the_2024_recording(
    arm: httpx.Client, throttle: Callable[..., None]
) -> None:
    throttle(arm={"shape": "hourly"})
    assert _first_of_each(arm) == {
        "x-ms-ratelimit-remaining-subscription-reads": "11999",
        "x-ms-ratelimit-remaining-subscription-writes": "1199",
        "x-ms-ratelimit-remaining-subscription-deletes": "14999",
    }
    throttle(arm={"shape": "hourly", "hourly": {"reads": 1}})
    arm.get(GROUPS)
    throttled = arm.get(GROUPS)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert (
        "exceeded the limit of '1' for time interval '01:00:00'"
        in (throttled.json()["error"]["message"])
    )
    assert int(throttled.headers["Retry-After"]) >= 1


# ---- injected Compute 429s -----------------------------------------------------------------


def test_a_1200_second_429_with_the_unwrapped_body_and_separate_headers(
    no_retry: ComputeManagementClient,
    arm: httpx.Client,
    admin: httpx.Client,
    faults: Callable[..., dict[str, Any]],
) -> None:
    rule = faults(action="throttle", method="PUT", path="/snapshots/t-press-held")
    assert (rule["retryAfter"], rule["holdSeconds"], rule["count"]) == ("1200", 1200, 1)
    body = sdk_body(disk_id("rg-app", "vm-web-01-data-01"), incremental=False)
    e = refusal(lambda: no_retry.snapshots.begin_create_or_update(SNAP_RG, "t-press-held", body))
    assert e.status_code == 429
    assert e.response is not None
    assert headers_of(e)["Retry-After"] == "1200"
    assert e.error is not None
    assert e.error.code == "OperationNotAllowed"  # read unwrapped
    raw = json.loads(e.response.text())
    assert "error" not in raw
    assert raw["code"] == "OperationNotAllowed"
    assert raw["details"][0]["target"] == "HighCostSnapshotCreateHydrate30Min"
    # The same window, seen raw: two headers, and Retry-After counts down on the clock.
    admin.post("/clock", json={"advanceSeconds": 200}).raise_for_status()
    again = arm.put(f"{SNAPS}/t-press-held{API}", json=body)
    assert again.status_code == 429
    assert 999 <= int(again.headers["Retry-After"]) <= 1000
    assert again.headers.get_list(RESOURCE) == [
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;0",
        "Microsoft.Compute/HighCostSnapshotCreateHydrate30Min;0",
    ]
    # Other requests are not held; the window reopens when the clock has passed it.
    assert arm.get(f"{SNAPS}{API}").status_code == 200
    admin.post("/clock", json={"advanceSeconds": 1000}).raise_for_status()
    no_retry.snapshots.begin_create_or_update(SNAP_RG, "t-press-held", body, polling=False)
    no_retry.snapshots.begin_delete(SNAP_RG, "t-press-held", polling=False)
    log = admin.get("/requests", params={"limit": 100000}).json()["entries"]
    held = [e for e in log if e["fault"] == rule["id"]]
    assert [e["status"] for e in held] == [429, 429]


def test_a_429_without_retry_after(
    no_retry: ComputeManagementClient, faults: Callable[..., dict[str, Any]]
) -> None:
    faults(action="throttle", method="DELETE", path="/snapshots/t-press-bare", retryAfter=None)
    body = sdk_body(disk_id("rg-app", "vm-web-01-data-01"), incremental=False)
    no_retry.snapshots.begin_create_or_update(SNAP_RG, "t-press-bare", body, polling=False)
    for _ in range(2):  # no window: every matching request, until `count` (unlimited here)
        e = refusal(lambda: no_retry.snapshots.begin_delete(SNAP_RG, "t-press-bare"))
        assert e.status_code == 429
        assert e.response is not None
        assert "Retry-After" not in headers_of(e)
        assert json.loads(e.response.text())["details"][0]["target"] == "DeleteDisks30Min"
        assert headers_of(e)[RESOURCE] == (
            "Microsoft.Compute/DeleteDisks3Min;0, Microsoft.Compute/DeleteDisks30Min;0"
        )


# ---- untidy shapes -------------------------------------------------------------------------


@pytest.fixture
def untidy(admin: httpx.Client) -> Iterator[None]:
    admin.post("/behaviour", json={"untidyShapes": True}).raise_for_status()
    yield
    admin.post("/behaviour", json={"untidyShapes": False}).raise_for_status()


@pytest.mark.usefixtures("untidy")
def test_untidy_list_and_get_bodies(arm: httpx.Client, compute: ComputeManagementClient) -> None:
    held = "lb-4fpx7cgz2zw7slu7-202611200200"
    listed = arm.get(f"{SNAPS}{API}").json()["value"]
    got = arm.get(f"{SNAPS}/{held}{API}").json()
    for snap in [*listed, got]:
        props = snap["properties"]
        source = props["creationData"]["sourceResourceId"]
        assert source.startswith("subscriptions/")  # no leading slash, as the spec example
        assert "/resourcegroups/" in source
        assert "/providers/microsoft.compute/disks/" in source
        assert SEVEN_DIGITS.match(props["timeCreated"]), props["timeCreated"]
        assert f"/resourcegroups/{SNAP_RG.upper()}/" in snap["id"]
    assert got["tags"]["lifeboat:hold"] == "incident-4711"  # tag values stay as written
    disk = arm.get(
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/disks/"
        f"vm-web-01-osdisk{API}"
    ).json()
    assert SEVEN_DIGITS.match(disk["properties"]["timeCreated"])
    assert "/resourcegroups/RG-APP/" in disk["managedBy"]
    vm = arm.get(
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/"
        "virtualMachines/vm-web-01?api-version=2026-04-01&$expand=instanceView"
    ).json()
    assert (
        "/resourcegroups/RG-APP/"
        in vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
    )
    # The real SDK reads them: datetimes parse, ids come through as written.
    snapshot = compute.snapshots.get(SNAP_RG, held)
    assert snapshot.time_created is not None
    assert snapshot.time_created.utcoffset() is not None
    assert snapshot.creation_data.source_resource_id.startswith("subscriptions/")
    names = [s.name for s in compute.snapshots.list_by_resource_group(SNAP_RG)]
    assert held in names


def test_tidy_by_default(arm: httpx.Client) -> None:
    got = arm.get(f"{SNAPS}/lb-cjpatr2qbqd3h6qm-202611260200{API}").json()
    assert got["properties"]["creationData"]["sourceResourceId"].startswith("/subscriptions/")
    assert got["properties"]["timeCreated"].endswith("Z")


# ---- limits, on a stand-in of their own ----------------------------------------------------

LIMITS_SUB = "3a4b5c6d-7e8f-4a0b-8c1d-2e3f4a5b6c7d"
FULL = "vm-full-osdisk"  # 500 incremental snapshots already


def _limits_estate(path: Path) -> Path:
    vms = [
        {
            "name": name,
            "resourceGroup": "rg-app",
            "osDisk": {"sku": "StandardSSD_LRS", "sizeGB": 32},
        }
        for name in ("vm-full", "vm-burst", "vm-quota")
    ]
    vms.append(
        {
            "name": "vm-north",
            "resourceGroup": "rg-north",
            "osDisk": {"sku": "StandardSSD_LRS", "sizeGB": 32},
        }
    )
    snapshots = [
        {
            "name": f"seed-{i:03d}",
            "resourceGroup": "rg-lifeboat-snapshots",
            "source": f"rg-app/{FULL}",
            "timeCreated": f"{500 - i}h",
        }
        for i in range(500)
    ]
    estate = {
        "version": 1,
        "identities": [
            {
                "name": "id-lifeboat",
                "clientId": "5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a",
                "objectId": "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
            }
        ],
        "subscriptions": [
            {
                "id": LIMITS_SUB,
                "location": "westeurope",
                "resourceGroups": [
                    {"name": "rg-app"},
                    {"name": "rg-north", "location": "northeurope"},
                    {"name": "rg-lifeboat-snapshots"},
                ],
                "vms": vms,
                "snapshots": snapshots,
            }
        ],
    }
    path.write_text(json.dumps(estate))
    return path


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    estate = _limits_estate(tmp_path_factory.mktemp("limits") / "limits.json")
    options = (
        "--operation-seconds",
        "0.2",
        "--clock-start",
        "2026-11-27T01:00:00Z",
        "--clock-rate",
        "0",
        "--page-size",
        "1000",
        "--arm-header-shape",
        "hourly",
        "--incremental-snapshot-family",
        "HighCostSnapshotCreateHydrate",
        "--untidy-shapes",
    )
    with running_emulator(estate, *options) as endpoints:
        yield endpoints


@pytest.fixture
def limited(
    limits: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ComputeManagementClient, httpx.Client]]:
    pointed_at(limits, monkeypatch)
    client = ComputeManagementClient(
        ManagedIdentityCredential(client_id=limits.client_id),
        LIMITS_SUB,
        base_url=limits.arm,
        credential_scopes=[limits.arm_audience + ".default"],
        connection_verify=limits.ca_bundle,
        polling_interval=0.1,
        retry_total=0,
    )
    verify = ssl.create_default_context(cafile=limits.ca_bundle)
    with httpx.Client(base_url=limits.admin, verify=verify, timeout=30) as admin:
        yield client, admin


def _source(group: str, name: str) -> str:
    return (
        f"/subscriptions/{LIMITS_SUB}/resourceGroups/{group}/providers/Microsoft.Compute/"
        f"disks/{name}"
    )


def _body(source: str, *, incremental: bool = True) -> Any:
    body = sdk_body(source, incremental=incremental)
    body["location"] = "northeurope" if "/rg-north/" in source else "westeurope"
    return body


def test_the_options_reach_the_settings(
    limited: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, admin = limited
    throttle = admin.get("/throttle").json()
    assert throttle["arm"]["shape"] == "hourly"
    assert throttle["compute"]["incremental_family"] == "HighCostSnapshotCreateHydrate"
    behaviour = admin.get("/behaviour").json()
    assert behaviour["untidyShapes"] is True
    assert behaviour["regionSnapshotLimit"] == 75000
    assert (behaviour["incrementalLimit"], behaviour["burstLimit"]) == (500, 7)
    # Untidy shapes, read by the SDK on a 500-item list.
    snaps = list(compute.snapshots.list_by_resource_group("rg-lifeboat-snapshots"))
    assert len(snaps) >= 500
    assert all(not s.creation_data.source_resource_id.startswith("/") for s in snaps)


def _after_delete(compute: ComputeManagementClient, admin: httpx.Client, name: str) -> None:
    """A snapshot delete, finished."""
    compute.snapshots.begin_delete(SNAP_RG, name, polling=False)
    admin.post("/clock", json={"advanceSeconds": 1}).raise_for_status()


def test_500_incremental_snapshots_per_disk(
    limited: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, admin = limited
    source = _source("rg-app", FULL)
    status, code, message = refused_snapshot(compute, "t-501", _body(source))
    assert (status, code) == (409, "SnapshotsLimitReached")
    assert "500 incremental snapshots" in message
    # A full snapshot is not incremental; a finished delete frees a place.
    start_snapshot(compute, "t-full", _body(source, incremental=False))
    _after_delete(compute, admin, "seed-000")
    start_snapshot(compute, "t-501", _body(source))


def test_seven_incremental_snapshots_per_disk_per_five_minutes(
    limited: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, admin = limited
    source = _source("rg-app", "vm-burst-osdisk")
    for i in range(7):
        start_snapshot(compute, f"t-burst-{i}", _body(source))
    status, code, message = refused_snapshot(compute, "t-burst-7", _body(source))
    assert (status, code) == (409, "OperationNotAllowed")
    assert "every 5 minutes" in message
    admin.post("/clock", json={"advanceSeconds": 300}).raise_for_status()
    start_snapshot(compute, "t-burst-7", _body(source))


def test_snapshots_per_subscription_and_region(
    limited: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, admin = limited
    zrs = sum(
        1
        for s in compute.snapshots.list()
        if s.sku is not None and s.sku.name == "Standard_ZRS" and s.location == "westeurope"
    )
    admin.post("/behaviour", json={"regionSnapshotLimit": zrs + 1}).raise_for_status()
    try:
        source = _source("rg-app", "vm-quota-osdisk")
        start_snapshot(compute, "t-quota-0", _body(source))
        status, code, message = refused_snapshot(compute, "t-quota-1", _body(source))
        assert (status, code) == (409, "OperationNotAllowed")
        assert f"Current Limit: {zrs + 1}" in message
        # Standard_LRS counts apart, and so does another region.
        start_snapshot(compute, "t-quota-lrs", _body(source, incremental=False))
        start_snapshot(compute, "t-quota-north", _body(_source("rg-north", "vm-north-osdisk")))
        # A delete frees the place once it has finished.
        _after_delete(compute, admin, "t-quota-0")
        start_snapshot(compute, "t-quota-1", _body(source))
    finally:
        admin.post("/behaviour", json={"regionSnapshotLimit": 75000}).raise_for_status()


def test_the_hydrate_family_is_per_region(
    limited: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, admin = limited
    original = admin.get("/throttle").json()
    # Full buckets; the 3-minute hydrate window holds 2 and refills 2 per 180 s: exact counts.
    admin.post("/throttle", json={"compute": {"hydrate_3min": 2}}).raise_for_status()
    seen = Headers()
    west = _body(_source("rg-app", "vm-quota-osdisk"), incremental=False)
    north = _body(_source("rg-north", "vm-north-osdisk"), incremental=False)
    for name, body in (("t-fam-w0", west), ("t-fam-w1", west), ("t-fam-n0", north)):
        compute.snapshots.begin_create_or_update(
            "rg-lifeboat-snapshots", name, body, polling=False, raw_response_hook=seen
        )
    admin.post("/throttle", json=original).raise_for_status()
    assert [h[RESOURCE].split(",")[0] for h in seen.seen] == [
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;1",
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;0",
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;1",  # northeurope counts apart
    ]
    # Hourly ARM shape from the command line: writes 1199 first, no global twin.
    assert seen.seen[0]["x-ms-ratelimit-remaining-subscription-writes"] == "1199"
    assert "x-ms-ratelimit-remaining-subscription-global-writes" not in seen.seen[0]
