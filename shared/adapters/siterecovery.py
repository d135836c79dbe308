"""The `SiteRecovery` port on azure-mgmt-recoveryservicessiterecovery 2.0.0 (api 2025-08-01).

Read per vault, never per VM: the vault-level `replicationProtectedItems` list and the
`replicationRecoveryPlans` list, both paged by the server (`nextLink`). Bodies are read from their
REST JSON (`as_dict()` of the SDK's models gives it back with Azure's keys), so the parsing below is
tested on the REST-spec examples and on what the stand-in serves.

Quirks hidden here (REFERENCE.md, "Azure Site Recovery (Azure-to-Azure)"):
- the source VM is the A2A details' `fabricObjectId`, in any casing; ids in bodies start
  `/Subscriptions/`;
- times carry seven fractional digits; `currentScenario.startTime` reads `1753-01-01T01:01:01Z`
  and `scenarioName` `None` when nothing runs (both read as absent);
- a vault without Site Recovery answers an empty list (the stand-in: 404): no items.

Errors: 429 -> ThrottledError (the message is put back, never slept through); 403 ->
RefusedError saying which vault and which role is missing; other failures propagate as the other
adapters let them (LifeboatRetryPolicy retries GETs on 408/5xx, boundedly).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from shared.adapters.compute import translate
from shared.adapters.retry import LifeboatRetryPolicy
from shared.model import Vault
from shared.ports import (
    PlanAction,
    PlanGroup,
    RecoveryPlan,
    RefusedError,
    ReplicatedItem,
    SiteRecoveryJob,
    TestFailoverNic,
    TestFailoverRequest,
)

T = TypeVar("T")

# Site Recovery writes this instead of nothing (`currentScenario.startTime` when no scenario runs).
_NOT_A_TIME_BEFORE = 1900
NEEDED_ROLE = "Site Recovery Reader"
# Test failovers and their cleanup: the custom role infra/roles/actions.json describes.
WRITER_ROLE = "Lifeboat's Site Recovery test-failover role (siteRecoveryTestFailover)"
USAGES_API = "2024-07-01"
ACTION_KINDS = {
    "scriptactiondetails": "script",
    "automationrunbookactiondetails": "runbook",
    "manualactiondetails": "manual",
}


class AzureSiteRecovery:
    def __init__(
        self,
        credential: Any,
        *,
        arm_endpoint: str,
        arm_audience: str,
        connection_verify: str | bool | None = None,
        transport: Any = None,
    ) -> None:
        self._credential = credential
        self._endpoint = arm_endpoint.rstrip("/")
        self._scopes = [arm_audience]
        self._verify = connection_verify
        self._transport = transport
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _client(self, subscription_id: str) -> Any:
        key = subscription_id.lower()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

                options: dict[str, Any] = (
                    {} if self._verify is None else {"connection_verify": self._verify}
                )
                if self._transport is not None:
                    options["transport"] = self._transport
                client = SiteRecoveryManagementClient(
                    self._credential,
                    key,
                    base_url=self._endpoint,
                    credential_scopes=self._scopes,
                    retry_policy=LifeboatRetryPolicy(),
                    **options,
                )
                self._clients[key] = client
            return client

    def list_replicated_items(self, vault: Vault) -> list[ReplicatedItem]:
        pages = self._client(vault.subscription_id).replication_protected_items.list(
            vault.resource_group, vault.name
        )
        return _read(vault, lambda: items_from_rest(vault.id, (p.as_dict() for p in pages)))

    def list_recovery_plans(self, vault: Vault) -> list[RecoveryPlan]:
        pages = self._client(vault.subscription_id).replication_recovery_plans.list(
            vault.resource_group, vault.name
        )
        return _read(vault, lambda: plans_from_rest(vault.id, (p.as_dict() for p in pages)))

    # ---- test failovers (drills) -------------------------------------------------------------

    def _plan_parts(self, plan_id: str) -> tuple[Any, str, str, str]:
        parts = plan_id.strip("/").split("/")
        if len(parts) != 10 or parts[8].lower() != "replicationrecoveryplans":
            raise ValueError(f"{plan_id} is not a recovery plan id")
        return self._client(parts[1]), parts[3], parts[7], parts[9]

    def get_recovery_plan(self, plan_id: str) -> RecoveryPlan | None:
        client, group, vault, name = self._plan_parts(plan_id)
        vault_id = "/" + "/".join(plan_id.strip("/").split("/")[:8])
        try:
            body = client.replication_recovery_plans.get(group, vault, name).as_dict()
        except ResourceNotFoundError:
            return None
        except HttpResponseError as e:
            raise _written(e, vault) from e
        return plan_from_rest(vault_id, body)

    def begin_test_failover(self, plan_id: str, request: TestFailoverRequest) -> None:
        client, group, vault, name = self._plan_parts(plan_id)
        body = {
            "properties": {
                "failoverDirection": "PrimaryToRecovery",
                "networkType": "VmNetworkAsInput",
                "networkId": request.network_id,
                "providerSpecificDetails": [
                    {
                        "instanceType": "A2A",
                        "recoveryPointType": request.recovery_point_type,
                        "multiVmSyncPointOption": "UseMultiVmSyncRecoveryPoint"
                        if request.multi_vm_sync
                        else "UsePerVmRecoveryPoint",
                    }
                ],
            }
        }
        try:  # the 202 is all a step needs: the job is read from the plan and followed by steps
            client.replication_recovery_plans.begin_test_failover(
                group, vault, name, body, polling=False
            )
        except HttpResponseError as e:
            raise _written(e, vault) from e

    def begin_test_failover_cleanup(self, plan_id: str, comments: str) -> None:
        client, group, vault, name = self._plan_parts(plan_id)
        try:
            client.replication_recovery_plans.begin_test_failover_cleanup(
                group, vault, name, {"properties": {"comments": comments[:1024]}}, polling=False
            )
        except HttpResponseError as e:
            raise _written(e, vault) from e

    def get_job(self, vault_id: str, job_id: str) -> SiteRecoveryJob | None:
        parts = vault_id.strip("/").split("/")
        client = self._client(parts[1])
        try:
            body = client.replication_jobs.get(parts[3], parts[7], job_id).as_dict()
        except ResourceNotFoundError:
            return None
        except HttpResponseError as e:
            raise _written(e, parts[7]) from e
        return job_from_rest(body)

    def list_usages(self, subscription_id: str, location: str) -> list[tuple[str, int, int]]:
        from azure.core.rest import HttpRequest

        url = (
            f"{self._endpoint}/subscriptions/{subscription_id}/providers/Microsoft.Compute/"
            f"locations/{location}/usages?api-version={USAGES_API}"
        )
        found: list[tuple[str, int, int]] = []
        client = self._client(subscription_id)
        while url:
            response = client.send_request(HttpRequest("GET", url))
            try:
                response.raise_for_status()
            except HttpResponseError as e:
                translated = translate(e)
                raise (translated if translated is not e else e) from e
            body = response.json()
            for item in body.get("value") or []:
                name = (item.get("name") or {}).get("value")
                if name is not None and item.get("limit") is not None:
                    found.append((str(name), int(item.get("currentValue", 0)), int(item["limit"])))
            url = body.get("nextLink") or ""
        return found


def _written(e: HttpResponseError, vault: str) -> Exception:
    """A test-failover call's error as the ports name it (403 names the role)."""
    translated = translate(e)
    if e.status_code == 403 and isinstance(translated, RefusedError):
        return RefusedError(
            translated.code, f"Site Recovery in {vault}: needs {WRITER_ROLE} ({translated.message})"
        )
    return translated


def _read(vault: Vault, action: Callable[[], list[T]]) -> list[T]:
    """A paged read of one vault: [] for a vault without Site Recovery; 403 named clearly."""
    try:
        return action()
    except ResourceNotFoundError:
        return []
    except HttpResponseError as e:
        if e.status_code == 404:
            return []
        translated = translate(e)
        if e.status_code == 403 and isinstance(translated, RefusedError):
            raise RefusedError(
                translated.code,
                f"cannot read Site Recovery in {vault.name}: needs {NEEDED_ROLE} "
                f"({translated.message})",
            ) from e
        if translated is not e:
            raise translated from e
        raise


# ------------------------------------------------------------------------------ REST JSON


def asr_time(value: Any) -> datetime | None:
    """An instant as Site Recovery writes it (seven fractional digits, `Z` or an offset), or None
    for nothing and for its placeholder dates (year 1753, 0001)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip().replace("Z", "+00:00").replace("z", "+00:00")
        if "." in text:
            head, _, tail = text.partition(".")
            digits = "".join(c for c in tail if c.isdigit())
            text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None if moment.year < _NOT_A_TIME_BEFORE else moment.astimezone(UTC)


def _scenario(props: dict[str, Any]) -> tuple[str | None, datetime | None]:
    current = props.get("currentScenario") or {}
    name = current.get("scenarioName")
    if not name or str(name).lower() == "none":
        return None, None
    return str(name), asr_time(current.get("startTime"))


def _health_error(error: dict[str, Any]) -> str:
    code = error.get("errorCode") or error.get("code") or "no code"
    message = error.get("summaryMessage") or error.get("errorMessage") or error.get("message")
    return f"{code}: {message}" if message else str(code)


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def item_from_rest(vault_id: str, body: dict[str, Any]) -> ReplicatedItem:
    props = body.get("properties") or {}
    details = props.get("providerSpecificDetails") or {}
    scenario, started = _scenario(props)
    return ReplicatedItem(
        id=str(body["id"]),
        vault_id=vault_id,
        name=str(props.get("friendlyName") or body.get("name") or ""),
        vm_id=details.get("fabricObjectId") or None,
        provider=details.get("instanceType"),
        protection_state=props.get("protectionState"),
        replication_health=props.get("replicationHealth"),
        health_errors=tuple(_health_error(e) for e in props.get("healthErrors") or []),
        test_failover_state=props.get("testFailoverState"),
        last_successful_test_failover=asr_time(props.get("lastSuccessfulTestFailoverTime")),
        rpo_seconds=_int(details.get("rpoInSeconds")),
        rpo_calculated_at=asr_time(details.get("lastRpoCalculatedTime")),
        agent_version=details.get("agentVersion"),
        agent_expiry=asr_time(details.get("agentExpiryDate")),
        scenario=scenario,
        scenario_started=started,
        allowed_operations=tuple(props.get("allowedOperations") or ()),
        recovery_group_id=details.get("recoveryAzureResourceGroupId") or None,
        recovery_vm_size=details.get("recoveryAzureVMSize") or None,
        test_vm_name=details.get("tfoAzureVMName") or None,
        test_network_id=details.get("selectedTfoAzureNetworkId") or None,
        test_nics=tuple(_test_nic(n) for n in details.get("vmNics") or []),
        disks=len(details.get("protectedManagedDisks") or []),
    )


def _test_nic(nic: dict[str, Any]) -> TestFailoverNic:
    configs = nic.get("ipConfigs") or []
    primary = next((c for c in configs if c.get("isPrimary")), configs[0] if configs else {})
    return TestFailoverNic(
        network_id=nic.get("tfoVMNetworkId") or None,
        subnet_name=primary.get("tfoSubnetName") or None,
        nsg_id=nic.get("tfoNetworkSecurityGroupId") or None,
        public_ip_ids=tuple(
            str(c["tfoPublicIPAddressId"]) for c in configs if c.get("tfoPublicIPAddressId")
        ),
        lb_pool_ids=tuple(
            str(p) for c in configs for p in c.get("tfoLBBackendAddressPoolIds") or [] if p
        ),
        reuse_existing_nic=bool(nic.get("tfoReuseExistingNic")),
    )


def _action(body: dict[str, Any]) -> PlanAction:
    kind = str((body.get("customDetails") or {}).get("instanceType") or "")
    return PlanAction(
        name=str(body.get("actionName") or ""),
        kind=ACTION_KINDS.get(kind.lower(), kind or "unknown"),
        failover_types=tuple(str(t) for t in body.get("failoverTypes") or ()),
    )


def _job_name(value: Any) -> str | None:
    name = str(value or "").rstrip("/").rsplit("/", 1)[-1]
    return None if not name or name.lower() == "none" else name


def job_from_rest(body: dict[str, Any]) -> SiteRecoveryJob:
    props = body.get("properties") or {}
    errors = []
    for error in props.get("errors") or []:
        detail = error.get("serviceErrorDetails") or error.get("providerErrorDetails") or {}
        code = detail.get("code") or detail.get("errorCode") or "no code"
        message = detail.get("message") or detail.get("errorMessage") or ""
        errors.append(f"{code}: {message}" if message else str(code))
    return SiteRecoveryJob(
        id=str(body.get("name") or _job_name(body.get("id")) or ""),
        state=str(props.get("state") or ""),
        scenario=props.get("scenarioName"),
        start=asr_time(props.get("startTime")),
        end=asr_time(props.get("endTime")),
        errors=tuple(errors),
    )


def items_from_rest(vault_id: str, bodies: Iterable[dict[str, Any]]) -> list[ReplicatedItem]:
    return [item_from_rest(vault_id, b) for b in bodies]


def plan_from_rest(vault_id: str, body: dict[str, Any]) -> RecoveryPlan:
    props = body.get("properties") or {}
    scenario, started = _scenario(props)
    item_ids = tuple(
        str(item["id"])
        for group in props.get("groups") or []
        for item in group.get("replicationProtectedItems") or []
        if item.get("id")
    )
    return RecoveryPlan(
        id=str(body["id"]),
        vault_id=vault_id,
        name=str(body.get("name") or props.get("friendlyName") or ""),
        item_ids=item_ids,
        scenario=scenario,
        scenario_status=props.get("currentScenarioStatus"),
        scenario_status_description=props.get("currentScenarioStatusDescription"),
        scenario_started=started,
        last_test_failover=asr_time(props.get("lastTestFailoverTime")),
        allowed_operations=tuple(props.get("allowedOperations") or ()),
        groups=tuple(
            PlanGroup(
                item_ids=tuple(
                    str(i["id"])
                    for i in group.get("replicationProtectedItems") or []
                    if i.get("id")
                ),
                actions=tuple(
                    _action(a)
                    for a in [
                        *(group.get("startGroupActions") or []),
                        *(group.get("endGroupActions") or []),
                    ]
                ),
            )
            for group in props.get("groups") or []
            if str(group.get("groupType") or "Boot").lower() == "boot"
        ),
        job_id=_job_name((props.get("currentScenario") or {}).get("jobId")),
    )


def plans_from_rest(vault_id: str, bodies: Iterable[dict[str, Any]]) -> list[RecoveryPlan]:
    return [plan_from_rest(vault_id, b) for b in bodies]
