"""The `Compute` port on azure-mgmt-compute (and ARM's Tags API), returning domain types.

Reads are subscription-level lists; writes never poll (`polling=False`). Azure's errors are
translated in one place (`translate`):

- 429 (ARM's wrapped body or Compute's own) -> `ThrottledError` with the server's Retry-After;
- the platform's snapshot limits (REFERENCE.md, "Managed disks and snapshots"; the codes and
  messages are the best reading in the stand-in README, "Limits"):
  7 incremental snapshots per disk every 5 minutes -> `ThrottledError` after 5 minutes;
  500 incremental snapshots per disk (`SnapshotsLimitReached`) -> `LimitReachedError`: it lifts
  when snapshots are deleted, so the disk waits for the next night's prunes;
  75,000 snapshots per subscription and region -> `RefusedError` (blocked) saying so;
- other refusals that will not heal -> `RefusedError`;
- 5xx, 408, timeouts and dropped connections that outlast the bounded SDK retries ->
  `UnavailableError` (`call_compute`).

Models are read through their REST JSON (`as_dict()`), the shape the REST specs document, so SDK
generator differences do not leak into Lifeboat.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.policies import ARMHttpLoggingPolicy

from shared.adapters.retry import (
    CONNECTION_TIMEOUT_SECONDS,
    READ_TIMEOUT_SECONDS,
    LifeboatRetryPolicy,
)
from shared.model import Disk, DiskAttachment, Snapshot, Vm
from shared.ports import (
    LimitReachedError,
    RefusedError,
    SnapshotRequest,
    ThrottledError,
    UnavailableError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

TAGS_API_VERSION = "2021-04-01"
# Refusals that retrying will not heal (DESIGN.md "Pacing, not sleeping").
UNHEALABLE = frozenset(
    {
        "scopelocked",
        "requestdisallowedbypolicy",
        "linkedauthorizationfailed",
        "authorizationfailed",
        "snapshotslimitreached",
        "operationnotallowed",
        "quotaexceeded",
        "badrequest",
        "invalidparameter",
        "propertychangenotallowed",
        "conflictingoperation",
        "denyassignmentauthorizationfailed",
    }
)
DEFAULT_RETRY_AFTER = 30.0

# The snapshot limits, told apart by what Azure says (REFERENCE.md; the messages are the
# best reading of the documentation's sentences in the stand-in README, "Limits").
BURST_LIMIT = "snapshot limit: 7 per disk every 5 minutes"
BURST_WAIT_SECONDS = 300.0  # the window is 5 minutes: a later try finds it open
DISK_LIMIT = "snapshot limit: 500 per disk"
REGION_LIMIT = "snapshot limit: 75,000 per subscription and region"
_BURST = re.compile(r"incremental snapshots per disk .*every \d+ minutes", re.IGNORECASE)
_REGION = re.compile(r"exceeding approved .*snapshots? quota", re.IGNORECASE)


HEADROOM_HEADERS = {
    "reads": "x-ms-ratelimit-remaining-subscription-reads",
    "writes": "x-ms-ratelimit-remaining-subscription-writes",
    "deletes": "x-ms-ratelimit-remaining-subscription-deletes",
}
# ARM refills each bucket per subscription and principal (REFERENCE.md): reads 25 tokens a
# second, writes and deletes 10. Only an answer of a bucket's kind carries its header, so a low
# reading must age: work that waits on it sends nothing that would refresh it. Both header
# shapes (the token bucket's 249/199/199 and the older hourly 11999/1199/14999) are read alike;
# an hourly counter refills more slowly than this, but its numbers are far from low.
HEADROOM_REFILL_PER_SECOND = {"reads": 25.0, "writes": 10.0, "deletes": 10.0}


class Headroom:
    """The last `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}` per subscription.

    Installed as the clients' `raw_response_hook`, so it sees every response, retries included.
    `estimate` adds what the bucket has refilled since the reading. It is not capped at the
    bucket's depth (no header says it); it only has to tell whether work may go now.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._readings: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        url = response.http_request.url
        if "/subscriptions/" not in url:
            return
        subscription = url.split("/subscriptions/", 1)[1].split("/", 1)[0].split("?", 1)[0]
        for kind, header in HEADROOM_HEADERS.items():
            value = response.http_response.headers.get(header)
            if value is None:
                continue
            try:
                remaining = int(value)
            except ValueError:
                continue
            with self._lock:
                self._readings[(kind, subscription.lower())] = (remaining, self._clock())

    def estimate(self, kind: str, subscription_id: str) -> int | None:
        """Tokens left now, from the last reading and the refill since; None before any reading."""
        with self._lock:
            reading = self._readings.get((kind, subscription_id.lower()))
        if reading is None:
            return None
        remaining, at = reading
        refilled = max(0.0, self._clock() - at) * HEADROOM_REFILL_PER_SECOND[kind]
        return remaining + int(refilled)


class AzureCompute:
    def __init__(
        self,
        credential: Any,
        *,
        arm_endpoint: str,
        arm_audience: str,
        connection_verify: str | bool | None = None,
    ) -> None:
        self._credential = credential
        self._endpoint = arm_endpoint.rstrip("/")
        self._scopes = [arm_audience]
        self._verify = connection_verify
        self._clients: dict[str, ComputeManagementClient] = {}
        self._lock = threading.Lock()
        self.headroom = Headroom()
        self._arm: ARMPipelineClient[Any, Any] = ARMPipelineClient(
            base_url=self._endpoint,
            policies=self._policies(),
            **self._transport_options(),
        )

    # --- clients

    def _transport_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "connection_timeout": CONNECTION_TIMEOUT_SECONDS,
            "read_timeout": READ_TIMEOUT_SECONDS,
        }
        if self._verify is not None:
            options["connection_verify"] = self._verify
        return options

    def _policies(self) -> list[Any]:
        from azure.core.pipeline.policies import (
            ContentDecodePolicy,
            CustomHookPolicy,
            HeadersPolicy,
            RequestIdPolicy,
            UserAgentPolicy,
        )
        from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy

        return [
            RequestIdPolicy(),
            HeadersPolicy(),
            UserAgentPolicy(sdk_moniker="lifeboat"),
            LifeboatRetryPolicy(),
            ARMChallengeAuthenticationPolicy(self._credential, *self._scopes),
            ContentDecodePolicy(),
            CustomHookPolicy(raw_response_hook=self.headroom),
            ARMHttpLoggingPolicy(),
        ]

    def client(self, subscription_id: str) -> ComputeManagementClient:
        key = subscription_id.lower()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = ComputeManagementClient(
                    self._credential,
                    key,
                    base_url=self._endpoint,
                    credential_scopes=self._scopes,
                    retry_policy=LifeboatRetryPolicy(),
                    raw_response_hook=self.headroom,
                    **self._transport_options(),
                )
                self._clients[key] = client
            return client

    # --- reads

    def list_vms(self, subscription_id: str) -> list[Vm]:
        pages = self.client(subscription_id).virtual_machines.list_all()
        return call_compute(lambda: [vm_from_rest(v.as_dict()) for v in pages])

    def list_disks(self, subscription_id: str) -> list[Disk]:
        pages = self.client(subscription_id).disks.list()
        return call_compute(lambda: [disk_from_rest(d.as_dict()) for d in pages])

    def list_snapshots(self, subscription_id: str, resource_group: str) -> list[Snapshot]:
        pages = self.client(subscription_id).snapshots.list_by_resource_group(resource_group)
        try:
            return call_compute(lambda: [snapshot_from_rest(s.as_dict()) for s in pages])
        except ResourceNotFoundError:
            log.warning(
                "snapshot resource group %s does not exist in %s", resource_group, subscription_id
            )
            return []

    def list_subscription_snapshots(self, subscription_id: str) -> list[Snapshot]:
        pages = self.client(subscription_id).snapshots.list()
        return call_compute(lambda: [snapshot_from_rest(s.as_dict()) for s in pages])

    def get_vm(self, vm_id: str) -> Vm | None:
        sub, group, name = _split(vm_id, "virtualMachines")
        found = _found(lambda: self.client(sub).virtual_machines.get(group, name))
        return None if found is None else vm_from_rest(found)

    def get_disk(self, disk_id: str) -> Disk | None:
        sub, group, name = _split(disk_id, "disks")
        found = _found(lambda: self.client(sub).disks.get(group, name))
        return None if found is None else disk_from_rest(found)

    def get_snapshot(self, snapshot_id: str) -> Snapshot | None:
        sub, group, name = _split(snapshot_id, "snapshots")
        found = _found(lambda: self.client(sub).snapshots.get(group, name))
        return None if found is None else snapshot_from_rest(found)

    # --- writes

    def begin_create_snapshot(self, request: SnapshotRequest) -> None:
        body: dict[str, Any] = {
            "location": request.location,
            "tags": request.tags,
            "properties": {
                "creationData": {
                    "createOption": "Copy",
                    "sourceResourceId": request.source_disk_id,
                },
                "incremental": True,
                "networkAccessPolicy": "DenyAll",
                "publicNetworkAccess": "Disabled",
            },
        }
        client = self.client(request.subscription_id)
        call_compute(
            lambda: client.snapshots.begin_create_or_update(  # type: ignore[call-overload]
                request.resource_group, request.name, body, polling=False
            )
        )

    def begin_delete_snapshot(self, snapshot_id: str) -> None:
        sub, group, name = _split(snapshot_id, "snapshots")
        client = self.client(sub)
        try:
            call_compute(lambda: client.snapshots.begin_delete(group, name, polling=False))
        except ResourceNotFoundError:
            log.info("snapshot %s was already gone", snapshot_id)

    def merge_tags(self, resource_id: str, tags: dict[str, str]) -> None:
        """Tags API PATCH with operation Merge: no write to the resource itself."""
        request = HttpRequest(
            "PATCH",
            f"{self._endpoint}{resource_id}/providers/Microsoft.Resources/tags/default",
            params={"api-version": TAGS_API_VERSION},
            json={"operation": "Merge", "properties": {"tags": tags}},
        )

        def send() -> None:
            response = self._arm.send_request(request)
            if response.status_code >= 400:
                raise HttpResponseError(response=response)

        call_compute(send)

    def write_headroom(self, subscription_id: str) -> int | None:
        return self.headroom.estimate("writes", subscription_id)

    def delete_headroom(self, subscription_id: str) -> int | None:
        return self.headroom.estimate("deletes", subscription_id)

    def read_headroom(self, subscription_id: str) -> int | None:
        return self.headroom.estimate("reads", subscription_id)


# ------------------------------------------------------------------------------ translation


def call_arm(action: Callable[[], T]) -> T:
    """Run one SDK call; Azure's errors leave as Lifeboat's (404 stays the SDK's "not found")."""
    try:
        return action()
    except ResourceNotFoundError:
        raise
    except HttpResponseError as e:
        raise translate(e) from e


def call_compute(action: Callable[[], T]) -> T:
    """`call_arm` for the Compute port: what Azure did not answer, even after the retry policy's
    tries (5xx, 408, a timeout, a reset), leaves as `UnavailableError` for the handler to put its
    work back. (The drill adapter shares `call_arm` and lets those reach the host.)"""
    try:
        return call_arm(action)
    except (ServiceRequestError, ServiceResponseError) as e:
        raise UnavailableError(f"Azure did not answer: {type(e).__name__}: {e}"[:500]) from e
    except HttpResponseError as e:
        status = e.status_code or 0
        if status == 408 or status >= 500:
            message = f"HTTP {status} {_error_code(e)}: {_error_message(e)}"
            raise UnavailableError(message, status) from e
        raise


def _found(get: Callable[[], Any]) -> dict[str, Any] | None:
    """One GET as the REST body (a dict), or None when Azure says it does not exist."""
    try:
        body: dict[str, Any] = call_compute(get).as_dict()
    except ResourceNotFoundError:
        return None
    return body


def translate(error: HttpResponseError) -> Exception:
    """Azure's answer as Lifeboat's error (the module docstring lists them); else `error`."""
    status = error.status_code or 0
    code = _error_code(error)
    if status == 429:
        policy = _throttling_policy(error)
        return ThrottledError(
            _retry_after(error),
            f"throttled: {code or 'TooManyRequests'}" + (f" ({policy})" if policy else ""),
        )
    message = _error_message(error)
    if status == 409 and code.lower() == "snapshotslimitreached":
        return LimitReachedError(code, message, DISK_LIMIT)
    if status == 409 and code.lower() == "operationnotallowed" and _BURST.search(message):
        return ThrottledError(BURST_WAIT_SECONDS, f"{BURST_LIMIT}: {message}")
    if status == 409 and code.lower() == "operationnotallowed" and _REGION.search(message):
        return RefusedError(code, f"{REGION_LIMIT}: {message}")
    if code.lower() in UNHEALABLE or code.lower().startswith("clouddos") or status in (403, 409):
        return RefusedError(code or f"HTTP{status}", message)
    return error


def _error_code(error: HttpResponseError) -> str:
    inner = getattr(error, "error", None)
    code = getattr(inner, "code", None)
    if code:
        return str(code)
    try:
        response: Any = error.response
        body = response.json() if response is not None else {}
        return str(body.get("error", {}).get("code") or "")
    except Exception:
        return ""


def _throttling_policy(error: HttpResponseError) -> str | None:
    """The Compute policy a 429 names (`details[].target`: HighCostSnapshotCreateHydrate30Min)."""
    for detail in getattr(getattr(error, "error", None), "details", None) or []:
        if str(getattr(detail, "code", "")).lower() == "toomanyrequests" and detail.target:
            return str(detail.target)
    return None


def _error_message(error: HttpResponseError) -> str:
    inner = getattr(error, "error", None)
    message = getattr(inner, "message", None)
    return str(message or error.message or error)[:500]


def _retry_after(error: HttpResponseError) -> float:
    response: Any = error.response
    headers = response.headers if response is not None else {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


def _split(resource_id: str, kind: str) -> tuple[str, str, str]:
    parts = resource_id.strip("/").split("/")
    if len(parts) != 8 or parts[6].lower() != kind.lower():
        raise ValueError(f"not a {kind} id: {resource_id!r}")
    return parts[1].lower(), parts[3], parts[7]


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _arm_id(value: Any) -> str | None:
    """An ARM id as Lifeboat keeps it: Azure can write `sourceResourceId` without its leading
    slash (REFERENCE.md), and every lookup by id expects one."""
    if not value:
        return None
    return "/" + str(value).lstrip("/")


def _resource_fields(body: dict[str, Any], kind: str) -> dict[str, Any]:
    """What every ARM resource body says the same way: id, name, where it is, its tags."""
    resource_id = str(body["id"])
    subscription, group, _ = _split(resource_id, kind)
    return {
        "id": resource_id,
        "name": str(body["name"]),
        "subscription_id": subscription,
        "resource_group": group,
        "location": str(body.get("location", "")),
        "tags": dict(body.get("tags") or {}),
    }


def vm_from_rest(body: dict[str, Any]) -> Vm:
    props = body.get("properties") or {}
    storage = props.get("storageProfile") or {}
    os_disk = storage.get("osDisk") or {}

    def attachment(disk: dict[str, Any], lun: int | None) -> DiskAttachment:
        managed = (disk.get("managedDisk") or {}).get("id")
        ephemeral = ((disk.get("diffDiskSettings") or {}).get("option") or "").lower() == "local"
        return DiskAttachment(
            lun=lun,
            disk_id=None if ephemeral else managed,
            ephemeral=ephemeral,
            vhd_uri=(disk.get("vhd") or {}).get("uri"),
        )

    security_profile = props.get("securityProfile") or None
    security = (security_profile or {}).get("securityType")
    statuses = ((props.get("instanceView") or {}).get("statuses")) or []
    power = next(
        (
            s.get("code", "").split("/", 1)[1]
            for s in statuses
            if str(s.get("code", "")).startswith("PowerState/")
        ),
        None,
    )
    return Vm(
        **_resource_fields(body, "virtualMachines"),
        os_disk=attachment(os_disk, None),
        data_disks=tuple(
            attachment(d, int(d["lun"])) for d in storage.get("dataDisks") or [] if "lun" in d
        ),
        security_type=security,
        hyper_v_generation=(props.get("instanceView") or {}).get("hyperVGeneration"),
        plan=dict(body["plan"]) if body.get("plan") else None,
        power_state=power,
        time_created=_time(props.get("timeCreated")),
        size=(props.get("hardwareProfile") or {}).get("vmSize"),
        os_type=os_disk.get("osType"),
        security_profile=dict(security_profile) if security_profile else None,
    )


def disk_from_rest(body: dict[str, Any]) -> Disk:
    props = body.get("properties") or {}
    encryption = props.get("encryption") or {}
    return Disk(
        **_resource_fields(body, "disks"),
        unique_id=str(props.get("uniqueId") or ""),
        sku=(body.get("sku") or {}).get("name"),
        encryption_type=encryption.get("type"),
        disk_encryption_set_id=encryption.get("diskEncryptionSetId"),
        azure_disk_encryption=bool(
            (props.get("encryptionSettingsCollection") or {}).get("enabled")
        ),
        size_gb=props.get("diskSizeGB"),
        max_shares=props.get("maxShares"),
        hyper_v_generation=props.get("hyperVGeneration"),
        os_type=props.get("osType"),
    )


def snapshot_from_rest(body: dict[str, Any]) -> Snapshot:
    props = body.get("properties") or {}
    creation = props.get("creationData") or {}
    return Snapshot(
        **_resource_fields(body, "snapshots"),
        time_created=_time(props.get("timeCreated")),
        source_resource_id=_arm_id(creation.get("sourceResourceId")),
        source_unique_id=creation.get("sourceUniqueId"),
        incremental=bool(props.get("incremental")),
        provisioning_state=props.get("provisioningState"),
        completion_percent=props.get("completionPercent"),
    )
