"""The Compute adapter against Azure's answers, through the real azure-mgmt-compute client.

Success bodies and headers are the recorded ones in `tests/data`; errors are in the shapes Azure
documents (ARM's `{"error": ...}`; Compute's own unwrapped 429). Every test counts the requests
sent: a 429 is never retried inside the SDK, a refusal never, a 5xx only for an idempotent method
with a short Retry-After, and no thread sleeps (the transport records what it was asked to sleep).
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from shared.adapters.compute import AzureCompute, snapshot_from_rest
from shared.ports import (
    LimitReachedError,
    RefusedError,
    SnapshotRequest,
    UnavailableError,
)
from tests.replay import (
    ARM,
    SUB,
    Answer,
    Credential,
    Replay,
    ReplayedCompute,
    arm_error,
    compute_throttled,
    recorded_id,
    recording,
    spec_body,
    throttled,
)
from tests.replay import replayed_compute as compute

SNAPSHOTS = recording("recording_snapshot_flow")
PUT, GET, DELETE = SNAPSHOTS[0], SNAPSHOTS[3], SNAPSHOTS[4]  # the polls in between go unused
SNAPSHOT_ID = recorded_id(GET)
DISK_ID = f"/subscriptions/{SUB}/resourceGroups/rgname/providers/Microsoft.Compute/disks/disk1"
VM_ID = recorded_id(recording("recording_vm_get_instance_view")[0])
DEMO_SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"  # the demo estate's


def snapshot_request(name: str = "snapshotxbc8e2966") -> SnapshotRequest:
    return SnapshotRequest(
        subscription_id=SUB,
        resource_group="rgname",
        name=name,
        location="eastus",
        source_disk_id=DISK_ID,
        tags={"lifeboat:set": "s1"},
    )


# ------------------------------------------------------------------------------ success


def test_recorded_snapshot_get_reads_into_the_domain() -> None:
    adapter, transport = compute(Answer.recorded(GET))
    snapshot = adapter.get_snapshot(SNAPSHOT_ID)
    assert snapshot is not None
    assert snapshot.provisioning_state == "Succeeded"
    assert snapshot.source_unique_id == "def4d652-80ab-41b1-9237-777d7a64ed8c"
    assert str(snapshot.source_resource_id).endswith("/disks/disknamexbc8e2966")
    assert [r.method for r in transport.settled()] == ["GET"]


def test_recorded_vm_get_reads_into_the_domain() -> None:
    adapter, _ = compute(Answer.recorded(recording("recording_vm_get_instance_view")[0]))
    vm = adapter.get_vm(VM_ID)
    assert vm is not None
    assert (vm.name, vm.location) == ("virtualmachinexeb772750", "eastus")
    assert vm.size == "Standard_D2_v2"
    assert vm.os_disk.disk_id


def test_snapshot_put_sends_one_request_and_never_polls_the_recorded_202() -> None:
    adapter, transport = compute(Answer.recorded(PUT))
    adapter.begin_create_snapshot(snapshot_request())
    (put,) = transport.settled()  # the 202's Azure-AsyncOperation is not followed
    assert put.method == "PUT"
    body = put.json()
    assert body["properties"]["incremental"] is True
    assert body["properties"]["creationData"] == {
        "createOption": "Copy",
        "sourceResourceId": DISK_ID,
    }
    assert body["properties"]["networkAccessPolicy"] == "DenyAll"
    assert body["tags"] == {"lifeboat:set": "s1"}
    assert transport.sleeps == []


def test_snapshot_delete_sends_one_request_and_a_404_means_already_gone() -> None:
    adapter, transport = compute(
        Answer.recorded(DELETE),
        arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.Compute/snapshots/x' ..."),
    )
    adapter.begin_delete_snapshot(SNAPSHOT_ID)  # 202, empty body, not polled
    adapter.begin_delete_snapshot(SNAPSHOT_ID)  # 404: nothing to do
    assert [r.method for r in transport.settled()] == ["DELETE", "DELETE"]


def test_headroom_is_read_from_both_header_shapes_and_never_from_the_global_bucket() -> None:
    # The recorded snapshot PUT carries the old hourly counter (writes 1192).
    adapter, _ = compute(Answer.recorded(PUT))
    assert adapter.write_headroom(SUB) is None
    adapter.begin_create_snapshot(snapshot_request())
    assert 1192 <= (adapter.write_headroom(SUB) or 0) < 1192 + 10
    # Token-bucket answers (2026) carry 199 beside the subscription-wide global bucket's 2999.
    bucket = Answer.recorded(PUT, headers=[]).with_headers(
        ("x-ms-ratelimit-remaining-subscription-writes", "199"),
        ("x-ms-ratelimit-remaining-subscription-global-writes", "2999"),
    )
    adapter, _ = compute(bucket)
    adapter.begin_create_snapshot(snapshot_request())
    assert 199 <= (adapter.write_headroom(SUB) or 0) < 199 + 10
    # The recorded DELETE tells the deletes bucket, not the writes one.
    adapter, _ = compute(Answer.recorded(DELETE))
    adapter.begin_delete_snapshot(SNAPSHOT_ID)
    assert 14995 <= (adapter.delete_headroom(SUB) or 0) < 14995 + 10
    assert adapter.write_headroom(SUB) is None


def test_tags_merge_is_one_patch_and_its_answer_counts_as_headroom() -> None:
    answer = Answer(
        200,
        {"id": f"{VM_ID}/providers/Microsoft.Resources/tags/default", "properties": {"tags": {}}},
        [("x-ms-ratelimit-remaining-subscription-writes", "150")],
    )
    adapter, transport = compute(answer)
    adapter.merge_tags(VM_ID, {"lifeboat:policy": "default"})
    (patch,) = transport.requests
    assert patch.method == "PATCH"
    assert patch.path.endswith("/providers/Microsoft.Resources/tags/default")
    assert patch.json() == {
        "operation": "Merge",
        "properties": {"tags": {"lifeboat:policy": "default"}},
    }
    assert 150 <= (adapter.write_headroom(SUB) or 0) < 160


# ------------------------------------------------------------------------------ 404


def test_404_reads_are_none_and_a_missing_snapshot_group_lists_empty() -> None:
    adapter, transport = compute(
        arm_error(404, "ResourceNotFound", "The Resource 'Microsoft.Compute/disks/disk1' ..."),
        arm_error(404, "ResourceNotFound"),
        arm_error(404, "ResourceGroupNotFound", "Resource group 'lifeboat-snaps' not found."),
    )
    assert adapter.get_disk(DISK_ID) is None
    assert adapter.get_snapshot(SNAPSHOT_ID) is None
    assert adapter.list_snapshots(SUB, "lifeboat-snaps") == []
    assert len(transport.requests) == 3


# ------------------------------------------------------------------------------ 429


@pytest.mark.parametrize("verb", ["GET", "PUT", "DELETE", "PATCH"])
def test_compute_429_with_retry_after_1200_is_put_back_at_once(verb: str) -> None:
    adapter, transport = compute(compute_throttled("1200"))
    action = {
        "GET": lambda: adapter.get_snapshot(SNAPSHOT_ID),
        "PUT": lambda: adapter.begin_create_snapshot(snapshot_request()),
        "DELETE": lambda: adapter.begin_delete_snapshot(SNAPSHOT_ID),
        "PATCH": lambda: adapter.merge_tags(VM_ID, {"a": "b"}),
    }[verb]
    error, elapsed = throttled(action)
    assert error.retry_after == 1200
    assert elapsed < 1.0
    assert [r.method for r in transport.settled()] == [verb]  # no retry inside the SDK
    assert transport.sleeps == []


def test_arm_429_in_the_wrapped_shape_carries_its_retry_after() -> None:
    adapter, transport = compute(
        arm_error(
            429,
            "SubscriptionRequestsThrottled",
            "Number of 'write' requests for subscription '...' actor '...' exceeded. Please try "
            "again after '17' seconds after additional tokens are available.",
            ("Retry-After", "17"),
            ("x-ms-ratelimit-remaining-subscription-writes", "0"),
        )
    )
    error, _ = throttled(lambda: adapter.begin_create_snapshot(snapshot_request()))
    assert error.retry_after == 17
    assert "SubscriptionRequestsThrottled" in str(error)
    assert len(transport.requests) == 1
    assert 0 <= (adapter.write_headroom(SUB) or 0) < 10  # the 429's own reading counts


def test_429_without_retry_after_is_put_back_after_the_default() -> None:
    adapter, transport = compute(arm_error(429, "TooManyRequests"))
    error, _ = throttled(lambda: adapter.get_disk(DISK_ID))
    assert error.retry_after == 30
    assert len(transport.requests) == 1


def test_429_on_a_later_list_page_is_throttled_too() -> None:
    vm = spec_body("spec_vm_get")
    first = Answer(
        200,
        {
            "value": [vm],
            "nextLink": f"{ARM}/subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines"
            "?api-version=2026-04-01&$skiptoken=page2",
        },
    )
    adapter, transport = compute(first, compute_throttled("1200"))
    error, elapsed = throttled(lambda: adapter.list_vms(SUB))
    assert (error.retry_after, len(transport.requests)) == (1200, 2)
    assert elapsed < 1.0


# ------------------------------------------------------------------------------ refusals


REFUSALS = [
    ("DELETE", 409, "ScopeLocked"),
    ("PUT", 409, "ScopeLocked"),
    ("PUT", 403, "RequestDisallowedByPolicy"),
    ("PUT", 403, "LinkedAuthorizationFailed"),
    ("PUT", 403, "AuthorizationFailed"),  # a deny assignment
    ("PUT", 409, "SnapshotsLimitReached"),
    ("PUT", 409, "OperationNotAllowed"),  # "... exceeding approved ... quota"
    ("PUT", 409, "QuotaExceeded"),
    ("PATCH", 409, "ScopeLocked"),
    ("PATCH", 403, "RequestDisallowedByPolicy"),
]


@pytest.mark.parametrize(("verb", "status", "code"), REFUSALS)
def test_unhealable_refusals_are_refused_once_with_their_code(
    verb: str, status: int, code: str
) -> None:
    adapter, transport = compute(arm_error(status, code, f"{code}: recorded message"))
    action = {
        "PUT": lambda: adapter.begin_create_snapshot(snapshot_request()),
        "DELETE": lambda: adapter.begin_delete_snapshot(SNAPSHOT_ID),
        "PATCH": lambda: adapter.merge_tags(VM_ID, {"a": "b"}),
    }[verb]
    with pytest.raises(RefusedError) as caught:
        action()
    assert caught.value.code == code
    assert "recorded message" in caught.value.message
    assert len(transport.requests) == 1
    assert transport.sleeps == []


# ------------------------------------------------------------------------------ 5xx


def test_idempotent_5xx_with_a_short_retry_after_is_retried_then_succeeds() -> None:
    adapter, transport = compute(
        arm_error(503, "ServiceUnavailable", "", ("Retry-After", "2")),
        Answer.recorded(GET),
    )
    assert adapter.get_snapshot(SNAPSHOT_ID) is not None
    assert len(transport.requests) == 2
    assert transport.sleeps == [2.0]


@pytest.mark.parametrize(
    ("first", "call"),
    [
        (Answer.recorded(PUT), "PUT"),
        (Answer.recorded(DELETE), "DELETE"),
    ],
)
def test_put_and_delete_are_idempotent_so_a_5xx_is_retried(first: Answer, call: str) -> None:
    adapter, transport = compute(
        arm_error(502, "BadGateway", "", ("Retry-After", "1")),
        first,
    )
    if call == "PUT":
        adapter.begin_create_snapshot(snapshot_request())
    else:
        adapter.begin_delete_snapshot(SNAPSHOT_ID)
    assert [r.method for r in transport.settled()] == [call, call]
    assert transport.sleeps == [1.0]


@pytest.mark.parametrize("retry_after", ["11", "60"])
def test_a_5xx_with_a_long_retry_after_is_not_slept_through(retry_after: str) -> None:
    adapter, transport = compute(
        arm_error(503, "ServiceUnavailable", "", ("Retry-After", retry_after))
    )
    started = time.monotonic()
    with pytest.raises(UnavailableError) as caught:
        adapter.get_snapshot(SNAPSHOT_ID)
    assert time.monotonic() - started < 1.0
    assert caught.value.status == 503
    assert len(transport.requests) == 1
    assert transport.sleeps == []


def test_retries_stop_at_30_seconds_of_sleep_and_the_error_stays_transient() -> None:
    adapter, transport = compute(
        *[arm_error(503, "ServiceUnavailable", "", ("Retry-After", "10")) for _ in range(6)]
    )
    with pytest.raises(UnavailableError) as caught:
        adapter.get_disk(DISK_ID)
    assert caught.value.status == 503
    assert isinstance(caught.value.__cause__, HttpResponseError)  # transient, not a refusal
    assert transport.sleeps == [10.0, 10.0, 10.0]
    assert len(transport.requests) == 4


def test_a_5xx_without_retry_after_backs_off_briefly_and_boundedly() -> None:
    adapter, transport = compute(*[arm_error(500, "InternalServerError") for _ in range(6)])
    with pytest.raises(UnavailableError):
        adapter.get_vm(VM_ID)
    assert len(transport.requests) == 4
    assert sum(transport.sleeps) <= 30
    assert all(s <= 10 for s in transport.sleeps)


def test_a_patch_is_not_retried_on_a_5xx() -> None:
    adapter, transport = compute(arm_error(503, "ServiceUnavailable", "", ("Retry-After", "1")))
    with pytest.raises(UnavailableError):
        adapter.merge_tags(VM_ID, {"a": "b"})
    assert len(transport.requests) == 1
    assert transport.sleeps == []


class Silent(Replay):
    """A transport on which Azure never answers: every request times out."""

    def send(self, request: Any, **kwargs: Any) -> Any:
        super().send(request, **kwargs)  # recorded (and its scripted answer dropped)
        raise ServiceResponseError("Read timed out. (read timeout=60)")


def test_a_list_that_times_out_is_retried_boundedly_then_unavailable() -> None:
    transport = Silent([Answer(200, {}) for _ in range(6)])
    adapter = ReplayedCompute(transport)
    with pytest.raises(UnavailableError) as caught:
        adapter.list_snapshots(SUB, "rg-lifeboat-snapshots")
    assert "ServiceResponseError" in str(caught.value)
    assert len(transport.requests) == 4  # the first try and the policy's three
    assert sum(transport.sleeps) <= 30


def test_the_compute_clients_give_up_on_a_stuck_connection_within_a_minute() -> None:
    adapter = AzureCompute(Credential(), arm_endpoint=ARM, arm_audience=ARM + "/.default")
    config = adapter.client(SUB)._client._pipeline._transport.connection_config  # type: ignore[attr-defined]
    assert (config.timeout, config.read_timeout) == (20, 60)  # azure-core's default is 300 each


# ------------------------------------------------------------------------------ limits


# The stand-in's answers to the three snapshot limits (emulator/compute.py, README "Limits").
BURST = (
    "Up to 7 incremental snapshots per disk can be created every 5 minutes; disk '/subscriptions/"
    "x/resourceGroups/rg/providers/Microsoft.Compute/disks/d' reached that limit. Retry later."
)
REGION = (
    "Operation could not be completed as it results in exceeding approved Standard_ZRS snapshots "
    "quota. Additional details - Location: westeurope, Current Limit: 75000, Current Usage: "
    "75000, Additional Required: 1."
)
PER_DISK = (
    "Disk '/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/disks/d' already has "
    "500 incremental snapshots: a total of 500 incremental snapshots can be created for a single "
    "disk. Delete older snapshots and try again."
)


def test_seven_per_five_minutes_is_a_wait_of_five_minutes_not_a_refusal() -> None:
    adapter, transport = compute(arm_error(409, "OperationNotAllowed", BURST))
    error, elapsed = throttled(lambda: adapter.begin_create_snapshot(snapshot_request()))
    assert error.retry_after == 300
    assert str(error).startswith("snapshot limit: 7 per disk every 5 minutes")
    assert (len(transport.requests), transport.sleeps, elapsed < 1.0) == (1, [], True)


def test_five_hundred_per_disk_waits_for_the_prunes() -> None:
    adapter, transport = compute(arm_error(409, "SnapshotsLimitReached", PER_DISK))
    with pytest.raises(LimitReachedError) as caught:
        adapter.begin_create_snapshot(snapshot_request())
    assert caught.value.reason == "snapshot limit: 500 per disk"
    assert "500 incremental snapshots" in caught.value.message
    assert len(transport.requests) == 1


def test_seventy_five_thousand_per_region_is_blocked_with_the_reason() -> None:
    adapter, transport = compute(arm_error(409, "OperationNotAllowed", REGION))
    with pytest.raises(RefusedError) as caught:
        adapter.begin_create_snapshot(snapshot_request())
    assert not isinstance(caught.value, LimitReachedError)
    assert caught.value.code == "OperationNotAllowed"
    assert caught.value.message.startswith("snapshot limit: 75,000 per subscription and region: ")
    assert "Current Limit: 75000" in caught.value.message
    assert len(transport.requests) == 1


def test_compute_429_stays_a_throttle_though_its_code_is_operation_not_allowed() -> None:
    adapter, _ = compute(compute_throttled("7", policy="HighCostSnapshotCreateHydrate30Min"))
    error, _ = throttled(lambda: adapter.begin_create_snapshot(snapshot_request()))
    assert error.retry_after == 7
    assert str(error) == "throttled: OperationNotAllowed (HighCostSnapshotCreateHydrate30Min)"


# ---------------------------------------------------- the limits, from the stand-in, real SDK


@pytest.fixture(scope="module")
def stand_in() -> Iterator[tuple[AzureCompute, httpx.Client]]:
    """Lifeboat's Compute adapter as production builds it, against a stand-in of its own (the
    demo estate, its clock frozen), and the stand-in's admin API."""
    from azure.identity import ManagedIdentityCredential

    from emulator.process import DEMO_ESTATE, running_emulator
    from tests.fakes import patched_environ

    options = ("--clock-start", "2026-11-27T01:00:00Z", "--clock-rate", "0")
    with running_emulator(DEMO_ESTATE, *options) as ep, patched_environ(ep.environment()):
        adapter = AzureCompute(
            ManagedIdentityCredential(client_id=ep.client_id),
            arm_endpoint=ep.arm,
            arm_audience=ep.arm_audience + ".default",
        )
        verify = ssl.create_default_context(cafile=ep.ca_bundle)
        with httpx.Client(base_url=ep.admin, verify=verify, timeout=30) as admin:
            yield adapter, admin


def demo_request(disk: str, name: str) -> SnapshotRequest:
    return SnapshotRequest(
        subscription_id=DEMO_SUB,
        resource_group="rg-lifeboat-snapshots",
        name=name,
        location="westeurope",
        source_disk_id=f"/subscriptions/{DEMO_SUB}/resourceGroups/rg-app/providers/"
        f"Microsoft.Compute/disks/{disk}",
        tags={"lifeboat:set": "s1"},
    )


@contextlib.contextmanager
def behaviour(admin: httpx.Client, **changes: Any) -> Iterator[None]:
    """The stand-in's platform rules changed for a block, then put back."""
    before = admin.get("/behaviour").json()
    admin.post("/behaviour", json=changes).raise_for_status()
    try:
        yield
    finally:
        admin.post("/behaviour", json={k: before[k] for k in changes}).raise_for_status()


def test_each_snapshot_limit_of_the_stand_in_leaves_the_adapter_as_its_status(
    stand_in: tuple[AzureCompute, httpx.Client],
) -> None:
    adapter, admin = stand_in
    # 500 per disk (here 1): waiting for the prunes.
    with behaviour(admin, incrementalLimit=1):
        adapter.begin_create_snapshot(demo_request("vm-web-01-data-01", "t-disk-0"))
        with pytest.raises(LimitReachedError) as per_disk:
            adapter.begin_create_snapshot(demo_request("vm-web-01-data-01", "t-disk-1"))
    assert (per_disk.value.code, per_disk.value.reason) == (
        "SnapshotsLimitReached",
        "snapshot limit: 500 per disk",
    )
    # 7 per disk every 5 minutes (here 1): put back for the window.
    with behaviour(admin, burstLimit=1):
        adapter.begin_create_snapshot(demo_request("vm-api-01-osdisk", "t-burst-0"))
        error, elapsed = throttled(
            lambda: adapter.begin_create_snapshot(demo_request("vm-api-01-osdisk", "t-burst-1"))
        )
    assert (error.retry_after, elapsed < 5) == (300, True)
    assert str(error).startswith("snapshot limit: 7 per disk every 5 minutes: Up to 1 ")
    # 75,000 per subscription and region (here what the region holds): blocked, saying so.
    with behaviour(admin, regionSnapshotLimit=1), pytest.raises(RefusedError) as region:
        adapter.begin_create_snapshot(demo_request("vm-cluster-01-osdisk", "t-region-0"))
    assert not isinstance(region.value, LimitReachedError)
    assert region.value.message.startswith("snapshot limit: 75,000 per subscription and region")
    assert "Current Limit: 1," in region.value.message
    log = admin.get("/requests", params={"limit": 1000}).json()["entries"]
    puts = [(e["method"], e["status"]) for e in log if e["method"] == "PUT"]
    assert puts == [("PUT", 202), ("PUT", 409), ("PUT", 202), ("PUT", 409), ("PUT", 409)]


def test_a_source_id_written_without_its_leading_slash_is_kept_with_one() -> None:
    """Azure can write `sourceResourceId` without its leading slash; every lookup by id expects
    one, so the adapter adds it (the casing stays as written)."""
    source = "subscriptions/s1/resourceGroups/RG-App/providers/Microsoft.Compute/disks/d1"
    body = {
        "id": "/subscriptions/s1/resourceGroups/rg-snap/providers/Microsoft.Compute/snapshots/s",
        "name": "s",
        "location": "westeurope",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": source},
            "timeCreated": "2026-11-27T02:00:03.1234567+00:00",
        },
    }
    snapshot = snapshot_from_rest(body)
    assert snapshot.source_resource_id == "/" + source
    assert snapshot.time_created is not None
    assert snapshot.time_created.microsecond == 123456
