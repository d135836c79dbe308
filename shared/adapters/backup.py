"""The `Backup` port on azure-mgmt-recoveryservicesbackup and azure-mgmt-recoveryservices.

Quirks hidden here (REFERENCE.md, Azure Backup):
- the SDK returns IaaS VM protected items as the base `ProtectedItem`: the nested discriminator
  `protectedItemType: Microsoft.Compute/virtualMachines` is not followed, so typed attributes
  such as `protection_state` are missing. Items are read from their REST JSON (`as_dict()`), never
  through the SDK's typed attributes (`tests/test_backup_adapter.py` fails when the gap closes);
- ids start `/Subscriptions/`, casing differs between ids and requests, container and item names
  carry `;` (the SDK sends it as `%3B`); `lastBackupTime` reads `2001-01-01T00:00:00Z` before the
  first backup;
- job `$filter` times use `yyyy-MM-dd hh:mm:ss tt` (12-hour clock, AM/PM);
- `backups.trigger` is not a poller: the 202's `Azure-AsyncOperation` names an operation whose
  status carries the job id. It is read at once, a few times, only when the 202 says
  `Retry-After: 0` (as the recorded answer does); otherwise the job id is left unknown (the port
  allows it: callers record it as a detail). No worker thread ever sleeps here;
- `restores.begin_trigger` is a poller that returns nothing: it is called with `polling=False`
  and a `cls=` that keeps the 202's headers; the drill step reads the operation and the job later
  (never waiting here). Recovery-point `$filter` times use the jobs' form (`startDate`/`endDate`).

Lists are per vault and paged by the server; reads never retry 429 (`ThrottledError`), POSTs never
retry at all (LifeboatRetryPolicy).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from shared.adapters.compute import translate
from shared.adapters.retry import LifeboatRetryPolicy
from shared.model import BackupJob, BackupStatus, ProtectedItem, RecoveryPoint, Vault, Vm
from shared.ports import RefusedError, RestoreJob, RestoreRequest, ThrottledError

log = logging.getLogger(__name__)

T = TypeVar("T")

FABRIC = "Azure"
NEVER = datetime(2001, 1, 1, tzinfo=UTC)  # lastBackupTime before the first backup
ITEM_FILTER = "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"
JOB_TIME_FORMAT = "%Y-%m-%d %I:%M:%S %p"  # .NET's yyyy-MM-dd hh:mm:ss tt
# Reads of a backup's operation status, at once, when Azure's Retry-After allows it (0 s).
OPERATION_POLLS = 3


def job_filter(since: datetime, until: datetime, operation: str = "Backup") -> str:
    """The backup-jobs `$filter` Azure accepts: times in `yyyy-MM-dd hh:mm:ss tt`, UTC."""
    start = since.astimezone(UTC).strftime(JOB_TIME_FORMAT)
    end = until.astimezone(UTC).strftime(JOB_TIME_FORMAT)
    return (
        f"backupManagementType eq 'AzureIaasVM' and operation eq '{operation}' and "
        f"startTime eq '{start}' and endTime eq '{end}'"
    )


def point_filter(since: datetime, until: datetime) -> str:
    """The recovery-points `$filter`, as the Azure CLI writes it (the jobs' time form)."""
    start = since.astimezone(UTC).strftime(JOB_TIME_FORMAT)
    end = until.astimezone(UTC).strftime(JOB_TIME_FORMAT)
    return f"startDate eq '{start}' and endDate eq '{end}'"


class AzureBackup:
    def __init__(
        self,
        credential: Any,
        *,
        arm_endpoint: str,
        arm_audience: str,
        writer_credential: Any = None,
        connection_verify: str | bool | None = None,
        transport: Any = None,
    ) -> None:
        self._credential = credential
        self._writer = writer_credential or credential
        self._endpoint = arm_endpoint.rstrip("/")
        self._scopes = [arm_audience]
        self._verify = connection_verify
        self._transport = transport
        self._clients: dict[tuple[str, str, bool], Any] = {}
        self._lock = threading.Lock()

    def _client(self, kind: str, subscription_id: str, *, writer: bool = False) -> Any:
        key = (kind, subscription_id.lower(), writer)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from azure.mgmt.recoveryservices import RecoveryServicesClient
                from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

                client_type: Any = (
                    RecoveryServicesClient if kind == "vaults" else RecoveryServicesBackupClient
                )
                options: dict[str, Any] = (
                    {} if self._verify is None else {"connection_verify": self._verify}
                )
                if self._transport is not None:
                    options["transport"] = self._transport
                client = client_type(
                    self._writer if writer else self._credential,
                    subscription_id.lower(),
                    base_url=self._endpoint,
                    credential_scopes=self._scopes,
                    retry_policy=LifeboatRetryPolicy(),
                    **options,
                )
                self._clients[key] = client
            return client

    # --- reads

    def list_vaults(self, subscription_id: str) -> list[Vault]:
        pages = self._client("vaults", subscription_id).vaults.list_by_subscription_id()
        return _call(lambda: [vault_from_rest(v.as_dict()) for v in pages])

    def list_protected_items(self, vault: Vault) -> list[ProtectedItem]:
        client = self._client("backup", vault.subscription_id)
        pages = client.backup_protected_items.list(
            vault.name, vault.resource_group, filter=ITEM_FILTER
        )
        return _call(lambda: items_from_rest(vault.id, (p.as_dict() for p in pages)))

    def list_jobs(self, vault: Vault, since: datetime, until: datetime) -> list[BackupJob]:
        client = self._client("backup", vault.subscription_id)
        pages = client.backup_jobs.list(
            vault.name, vault.resource_group, filter=job_filter(since, until)
        )
        return _call(lambda: [job_from_rest(vault.id, j.as_dict()) for j in pages])

    def list_recovery_points(self, item: ProtectedItem) -> list[RecoveryPoint]:
        sub, group, vault_name = _vault_parts(item.vault_id)
        pages = self._client("backup", sub).recovery_points.list(
            vault_name, group, FABRIC, item.container_name, item.name
        )
        try:
            return _call(lambda: [recovery_point_from_rest(p.as_dict()) for p in pages])
        except ResourceNotFoundError:
            return []

    def get_backup_status(self, vm_id: str, location: str) -> BackupStatus:
        from azure.mgmt.recoveryservicesbackup import models

        sub = vm_id.strip("/").split("/")[1]
        request = models.BackupStatusRequest(
            {"resourceType": "VM", "resourceId": vm_id, "poLogicalName": None}
        )
        client = self._client("backup", sub)
        answer = _call(lambda: client.backup_status.get(location.replace(" ", ""), request))
        return backup_status_from_rest(answer.as_dict())

    # --- writes (POST/PUT: never retried)

    def trigger_backup(self, item: ProtectedItem, keep_until: datetime) -> str | None:
        from azure.mgmt.recoveryservicesbackup import models

        sub, group, vault_name = _vault_parts(item.vault_id)
        client = self._client("backup", sub)
        body = models.BackupRequestResource(
            {
                "properties": {
                    "objectType": "IaasVMBackupRequest",
                    "recoveryPointExpiryTimeInUTC": keep_until.astimezone(UTC).strftime(
                        "%Y-%m-%dT%H:%M:%S.%fZ"
                    ),
                }
            }
        )
        headers: dict[str, str] = _call(
            lambda: client.backups.trigger(
                vault_name,
                group,
                FABRIC,
                item.container_name,
                item.name,
                body,
                cls=lambda response, _body, hdrs: dict(response.http_response.headers),
            )
        )
        status_url = headers.get("Azure-AsyncOperation") or headers.get("azure-asyncoperation")
        if not status_url:
            return None
        operation_id = status_url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        return self._job_of_operation(client, vault_name, group, item, operation_id, headers)

    def _job_of_operation(
        self,
        client: Any,
        vault_name: str,
        group: str,
        item: ProtectedItem,
        operation_id: str,
        headers: dict[str, str],
    ) -> str | None:
        """The job id when the operation names it without waiting: Azure's Retry-After is 0."""
        if _retry_after(headers) > 0:
            log.info(
                "backup of %s: operation %s asks to wait; job id unknown", item.id, operation_id
            )
            return None
        for _ in range(OPERATION_POLLS):
            status = _call(
                lambda: client.protected_item_operation_statuses.get(
                    vault_name, group, FABRIC, item.container_name, item.name, operation_id
                )
            ).as_dict()
            state = str(status.get("status", "")).lower()
            if state == "succeeded":
                job = (status.get("properties") or {}).get("jobId")
                return str(job) if job else None
            if state in ("failed", "canceled"):
                error = status.get("error") or {}
                raise RefusedError(
                    str(error.get("code") or "BackupFailed"), str(error.get("message") or state)
                )
        log.warning(
            "backup of %s: operation %s still running; job id unknown", item.id, operation_id
        )
        return None

    # --- restores (recovery-point drills)

    def list_points(
        self, item: ProtectedItem, since: datetime, until: datetime
    ) -> list[RecoveryPoint]:
        sub, group, vault_name = _vault_parts(item.vault_id)
        pages = self._client("backup", sub).recovery_points.list(
            vault_name,
            group,
            FABRIC,
            item.container_name,
            item.name,
            filter=point_filter(since, until),
        )
        try:
            return _call(lambda: [recovery_point_from_rest(p.as_dict()) for p in pages])
        except ResourceNotFoundError:
            return []

    def get_point(self, item: ProtectedItem, point_id: str) -> RecoveryPoint | None:
        sub, group, vault_name = _vault_parts(item.vault_id)
        client = self._client("backup", sub)
        name = point_id.rstrip("/").rsplit("/", 1)[-1]
        try:
            body = _call(
                lambda: client.recovery_points.get(
                    vault_name, group, FABRIC, item.container_name, item.name, name
                )
            )
        except ResourceNotFoundError:
            return None
        return recovery_point_from_rest(body.as_dict())

    def trigger_restore(self, item: ProtectedItem, request: RestoreRequest) -> str:
        """RestoreDisks as the backup-writer identity; the operation id, never the wait."""
        from azure.mgmt.recoveryservicesbackup import models

        sub, group, vault_name = _vault_parts(item.vault_id)
        client = self._client("backup", sub, writer=True)
        body = models.RestoreRequestResource(restore_body(request))
        name = request.point_id.rstrip("/").rsplit("/", 1)[-1]
        kept: dict[str, str] = {}

        def keep(pipeline_response: Any, _body: Any, _headers: Any) -> None:
            kept.update(pipeline_response.http_response.headers)

        try:
            _call(
                lambda: client.restores.begin_trigger(
                    vault_name,
                    group,
                    FABRIC,
                    item.container_name,
                    item.name,
                    name,
                    body,
                    polling=False,
                    cls=keep,
                ).result()  # no polling: result() only hands the 202 to `keep`
            )
        except HttpResponseError as e:  # a 400 or 404 will not heal by asking again
            if e.status_code is None or not 400 <= e.status_code < 500:
                raise
            message = str(getattr(getattr(e, "error", None), "message", "") or e.message)
            raise RefusedError(_code(e) or f"HTTP{e.status_code}", message[:500]) from e
        status_url = next(
            (v for k, v in kept.items() if k.lower() in ("azure-asyncoperation", "location")), None
        )
        if not status_url:
            raise RefusedError("NoOperation", "the restore's answer named no operation to follow")
        return status_url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]

    def get_restore_operation(self, item: ProtectedItem, operation_id: str) -> str | None:
        sub, group, vault_name = _vault_parts(item.vault_id)
        client = self._client("backup", sub)
        status = _call(
            lambda: client.protected_item_operation_statuses.get(
                vault_name, group, FABRIC, item.container_name, item.name, operation_id
            )
        ).as_dict()
        state = str(status.get("status", "")).lower()
        if state in ("failed", "canceled", "cancelled"):
            error = status.get("error") or {}
            raise RefusedError(
                str(error.get("code") or "RestoreFailed"), str(error.get("message") or state)
            )
        job = (status.get("properties") or {}).get("job_id") or (
            status.get("properties") or {}
        ).get("jobId")
        return str(job) if state == "succeeded" and job else None

    def get_job(self, vault_id: str, job_id: str) -> RestoreJob | None:
        sub, group, vault_name = _vault_parts(vault_id)
        client = self._client("backup", sub)
        try:
            body = _call(lambda: client.job_details.get(vault_name, group, job_id)).as_dict()
        except ResourceNotFoundError:
            return None
        return restore_job_from_rest(body)

    def list_restore_jobs(self, vault: Vault, since: datetime, until: datetime) -> list[BackupJob]:
        client = self._client("backup", vault.subscription_id)
        pages = client.backup_jobs.list(
            vault.name, vault.resource_group, filter=job_filter(since, until, "Restore")
        )
        return _call(lambda: [job_from_rest(vault.id, j.as_dict()) for j in pages])

    def ensure_protection(self, vault: Vault, vm: Vm, policy_name: str) -> ProtectedItem | None:
        """PUT the protected item (idempotent); the writer identity needs VM write."""
        from azure.mgmt.recoveryservicesbackup import models

        container = f"iaasvmcontainer;iaasvmcontainerv2;{vm.resource_group};{vm.name}".lower()
        item_name = f"vm;iaasvmcontainerv2;{vm.resource_group};{vm.name}".lower()
        body = models.ProtectedItemResource(
            {
                "properties": {
                    "protectedItemType": "Microsoft.Compute/virtualMachines",
                    "sourceResourceId": vm.id,
                    "policyId": f"{vault.id}/backupPolicies/{policy_name}",
                }
            }
        )
        client = self._client("backup", vault.subscription_id, writer=True)
        _call(
            lambda: client.protected_items.begin_create_or_update(
                vault.name,
                vault.resource_group,
                FABRIC,
                container,
                item_name,
                body,
                polling=False,
            )
        )
        reader = self._client("backup", vault.subscription_id)
        try:
            found = _call(
                lambda: reader.protected_items.get(
                    vault.name, vault.resource_group, FABRIC, container, item_name
                )
            )
        except ResourceNotFoundError:
            return None
        return item_from_rest(vault.id, found.as_dict())


# ------------------------------------------------------------------------------ translation


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except ResourceNotFoundError:
        raise
    except HttpResponseError as e:
        translated = translate(e)
        if isinstance(translated, (ThrottledError, RefusedError)):
            raise translated from e
        code = _code(e)
        if code.lower().startswith(("clouddos", "usererror")):
            raise RefusedError(code, str(e.message)[:500]) from e
        raise


def _code(error: HttpResponseError) -> str:
    try:
        response: Any = error.response
        body = response.json() if response is not None else {}
        return str((body.get("error") or {}).get("code") or "")
    except Exception:
        return ""


def _retry_after(headers: dict[str, str]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return 1.0
    return 1.0


def _vault_parts(vault_id: str) -> tuple[str, str, str]:
    parts = vault_id.strip("/").split("/")
    return parts[1].lower(), parts[3], parts[7]


def parse_time(value: Any) -> datetime | None:
    """An ARM time as Azure writes it (7 fractional digits, `Z`); None for none."""
    return _time(value)


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).replace("Z", "+00:00")
        # Azure sends 7 fractional digits; Python takes at most 6.
        if "." in text:
            head, _, tail = text.partition(".")
            digits = "".join(c for c in tail if c.isdigit())
            rest = tail[len(digits) :]
            text = f"{head}.{digits[:6]}{rest}"
        moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def vault_from_rest(body: dict[str, Any]) -> Vault:
    vault_id = str(body["id"])
    parts = vault_id.strip("/").split("/")
    return Vault(
        id=vault_id,
        name=str(body["name"]),
        subscription_id=parts[1].lower(),
        resource_group=parts[3],
        location=str(body.get("location", "")),
    )


def items_from_rest(vault_id: str, bodies: Iterable[dict[str, Any]]) -> list[ProtectedItem]:
    items = []
    for body in bodies:
        props = body.get("properties") or {}
        if str(props.get("protectedItemType", "")).lower() != "microsoft.compute/virtualmachines":
            continue  # classic VMs and other workloads are not Lifeboat's
        items.append(item_from_rest(vault_id, body))
    return items


def item_from_rest(vault_id: str, body: dict[str, Any]) -> ProtectedItem:
    props = body.get("properties") or {}
    item_id = str(body["id"])
    container = item_id.split("/protectionContainers/", 1)[1].split("/", 1)[0]
    last_backup = _time(props.get("lastBackupTime"))
    return ProtectedItem(
        id=item_id,
        vault_id=vault_id,
        vm_id=str(props.get("sourceResourceId") or props.get("virtualMachineId") or ""),
        container_name=container,
        name=str(body.get("name") or item_id.rsplit("/", 1)[-1]),
        protection_state=props.get("protectionState"),
        health_status=props.get("healthStatus"),
        last_backup_status=props.get("lastBackupStatus") or None,
        last_backup_time=None if last_backup is None or last_backup <= NEVER else last_backup,
        last_recovery_point=_time(props.get("lastRecoveryPoint")),
        soft_deleted=bool(props.get("isScheduledForDeferredDelete"))
        or str(props.get("protectionState", "")).lower() == "softdeleted",
        policy_name=props.get("policyName"),
    )


def _job_state(props: dict[str, Any]) -> dict[str, Any]:
    """What every Azure Backup job says of itself: operation, status, times, first error."""
    errors = props.get("errorDetails") or []
    first = errors[0] if errors else {}
    return {
        "operation": str(props.get("operation") or ""),
        "status": str(props.get("status") or ""),
        "start_time": _time(props.get("startTime")),
        "end_time": _time(props.get("endTime")),
        "error_code": first.get("errorString") or first.get("errorCode") or None,
        "error_message": first.get("errorTitle") or None,
    }


def job_from_rest(vault_id: str, body: dict[str, Any]) -> BackupJob:
    props = body.get("properties") or {}
    return BackupJob(
        id=str(body.get("id") or body.get("name")),
        vault_id=vault_id,
        entity_name=str(props.get("entityFriendlyName") or ""),
        container_name=props.get("containerName"),
        user_triggered=bool(props.get("isUserTriggered")),
        **_job_state(props),
    )


# recoveryPointTierDetails: type 1 InstantRP (snapshot tier), 2 HardenedRP (vault tier), 3
# ArchivedRP; status 1 Valid. Recorded answers write integers, the REST-spec examples the names.
_TIER_TYPES = {"1": "snapshot", "instantrp": "snapshot", "2": "vault", "hardenedrp": "vault"}
_TIER_VALID = ("1", "valid")


def recovery_point_from_rest(body: dict[str, Any]) -> RecoveryPoint:
    props = body.get("properties") or {}
    moment = _time(props.get("recoveryPointTime"))
    if moment is None:
        raise ValueError(f"recovery point {body.get('id')} has no recoveryPointTime")
    tiers = []
    for tier in props.get("recoveryPointTierDetails") or []:
        kind = _TIER_TYPES.get(str(tier.get("type", "")).lower())
        if kind and str(tier.get("status", "")).lower() in _TIER_VALID and kind not in tiers:
            tiers.append(kind)
    return RecoveryPoint(
        id=str(body.get("id") or body.get("name")),
        time=moment,
        consistency=props.get("recoveryPointType"),
        tiers=tuple(tiers),
    )


def restore_body(request: RestoreRequest) -> dict[str, Any]:
    """`IaasVMRestoreRequest` for RestoreDisks, keys as the REST-spec example writes them."""
    properties: dict[str, Any] = {
        "objectType": "IaasVMRestoreRequest",
        "recoveryPointId": request.point_id.rstrip("/").rsplit("/", 1)[-1],
        "recoveryType": "RestoreDisks",
        "sourceResourceId": request.source_vm_id,
        "storageAccountId": request.staging_account_id,
        "targetResourceGroupId": request.target_group_id,
        "region": request.region,
        "createNewCloudService": False,
        "originalStorageAccountOption": False,
        "encryptionDetails": {"encryptionEnabled": False},
    }
    if request.zones:
        properties["zones"] = list(request.zones)
    return {"properties": properties}


def restore_job_from_rest(body: dict[str, Any]) -> RestoreJob:
    props = body.get("properties") or {}
    bag = (props.get("extendedInfo") or {}).get("propertyBag") or {}
    return RestoreJob(
        id=str(body.get("name") or str(body.get("id", "")).rsplit("/", 1)[-1]),
        properties={str(k): str(v) for k, v in bag.items()},
        **_job_state(props),
    )


def backup_status_from_rest(body: dict[str, Any]) -> BackupStatus:
    protected = str(body.get("protectionStatus", "")).lower() == "protected"
    return BackupStatus(
        protected=protected,
        vault_id=body.get("vaultId") or None,
        policy_name=body.get("policyName") or None,
        error_code=body.get("errorCode") or None,
    )
