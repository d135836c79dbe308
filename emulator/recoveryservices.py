"""Recovery Services (Azure Backup) for the slice Lifeboat uses: the stand-in, part 2.

Vaults, backup policies, protectable items, IaaS VM protected items (with Azure's quirks:
`/Subscriptions/` ids, lower-case `;`-joined container and item names, the 2001-01-01
`lastBackupTime` sentinel), backup status by region (POST), recovery points, backup jobs (list
with the real `$filter` form, get), on-demand backup (202 + operation status -> job id) and
configure protection (PUT 202), restores from recovery points (POST 202 -> operation status ->
restore job -> disks in the target group; the rules are in `recoveryservices_restore.py`).
Scheduled backups run on the stand-in clock at each policy's time; every job ends as the estate
scripts it per VM (complete, fail with a code, stay InProgress); points expire by the policy's
retention. Lists page every `pageSize` items with `$skipToken`; reads are throttled per
subscription with 429 `ResourceRequestsThrottled`. The flow follows the azure-mgmt-
recoveryservicesbackup 0.4.0 recording; bodies follow the REST-spec examples (tests/data).
State is in `recoveryservices_state.py`.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from emulator.clock import Clock
from emulator.config import Behaviour
from emulator.errors import ArmError
from emulator.estate import EstateError
from emulator.ids import compute_id, key
from emulator.model import Cloud
from emulator.recoveryservices_restore import (
    CONSISTENCIES,
    check_restore,
    disk_plans,
    expire_points,
    extended_info,
    finish_restore,
    load_restore_script,
    load_staging_accounts,
    missing_point,
    point_json,
    restore_seconds,
    seed_points,
    write_config_blob,
)
from emulator.recoveryservices_state import (
    BackupPolicy,
    Item,
    Job,
    Operation,
    RecoveryPoint,
    StagingAccount,
    Vault,
    azure_time,
)
from emulator.routing import GROUP, SUBSCRIPTION, ArmRequest, Reply, Route, route

MAX_ON_DEMAND_PER_DAY = 3
MAX_ATTEMPTS_PER_DAY = 9
DEFAULT_PAGE_SIZE = 50
_RS = r"/providers/microsoft\.recoveryservices"
_VAULT = GROUP + _RS + r"/vaults/([^/]+)"
_ITEM = _VAULT + r"/backupfabrics/azure/protectioncontainers/([^/]+)/protecteditems/([^/]+)"


class ReadBucket:
    """Recovery Services reads per subscription: a token bucket in real time."""

    def __init__(self, capacity: float, per_second: float) -> None:
        self.capacity = capacity
        self.per_second = per_second
        self.tokens: dict[str, float] = {}
        self.stamp: dict[str, float] = {}

    def take(self, subscription: str) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        tokens = self.tokens.get(subscription, self.capacity)
        tokens = min(
            self.capacity, tokens + (now - self.stamp.get(subscription, now)) * self.per_second
        )
        self.stamp[subscription] = now
        if tokens >= 1:
            self.tokens[subscription] = tokens - 1
            return 0.0
        self.tokens[subscription] = tokens
        return (1 - tokens) / self.per_second


class RecoveryServices:
    def __init__(self, cloud: Cloud, clock: Clock, behaviour: Behaviour) -> None:
        self.cloud = cloud
        self.clock = clock
        self.behaviour = behaviour
        self.lock = threading.RLock()
        self.vaults: dict[str, Vault] = {}
        self.staging_accounts: list[StagingAccount] = []
        config = cloud.extra.get("recoveryServices") or {}
        self.page_size = int(config.get("pageSize", DEFAULT_PAGE_SIZE))
        # Where restores' config blobs are written (Azurite's connection string; none: nowhere).
        self.staging_blobs: str | None = config.get("stagingBlobs") or None
        throttle = config.get("throttle")
        self.bucket = (
            ReadBucket(float(throttle["capacity"]), float(throttle["perSecond"]))
            if throttle
            else None
        )
        load_vaults(self, cloud.extra.get("vaults") or [], clock.now())

    # ---- routing ------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return ROUTES

    _routes = routes  # tests/test_infra_roles.py reads the served operations through this name

    # ---- shared -------------------------------------------------------------------------
    def throttle(self, req: ArmRequest, subscription: str) -> None:
        if self.bucket is None:
            return
        wait = self.bucket.take(subscription.lower())
        if wait > 0:
            raise ArmError(
                429,
                "ResourceRequestsThrottled",
                "The request was throttled by Recovery Services. Please retry after some time.",
                headers={"Retry-After": self.behaviour.scaled(max(1.0, wait))},
            )

    def vault(self, args: tuple[str, ...]) -> Vault:
        found = self.vaults.get(f"{args[0]}/{args[1]}/{args[2]}".lower())
        if found is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.RecoveryServices/vaults/{args[2]}' under resource "
                f"group '{args[1]}' was not found.",
            )
        return found

    def item(self, args: tuple[str, ...]) -> tuple[Vault, Item]:
        vault = self.vault(args)
        container, name = args[3].lower(), args[4].lower()
        for item in vault.items.values():
            if f"iaasvmcontainer;{item.container}" == container and item.name.lower() == name:
                return vault, item
        raise ArmError(
            404,
            "BMSUserErrorDppObjectNotFound",  # as Azure Backup answers an unknown item
            f"Item not found: {args[4]} in container {args[3]}.",
        )

    def page(self, req: ArmRequest, values: list[dict[str, Any]]) -> Reply:
        try:
            start = int(req.query.get("$skipToken", req.query.get("$skiptoken", "0")))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from None
        body: dict[str, Any] = {"value": values[start : start + self.page_size]}
        if start + self.page_size < len(values):
            kept = {k: v for k, v in req.query.items() if k.lower() != "$skiptoken"}
            kept["$skipToken"] = str(start + self.page_size)
            query = "&".join(f"{k}={quote(v, safe='')}" for k, v in kept.items())
            body["nextLink"] = f"{req.base_url}{req.path}?{query}"
        return Reply(200, body)

    def advance(self, now: datetime) -> None:
        """Run scheduled backups up to `now`, finish jobs whose time has come (a restore leaves
        its disks) and expire points past their policy's retention."""
        for vault in self.vaults.values():
            for item in vault.items.values():
                self._schedule(vault, item, now)
            for job in vault.jobs:
                end = job.end()
                if job.finished or end is None or end > now:
                    continue
                job.finished = True
                if job.operation == "Restore" and job.outcome in ("complete", "warn"):
                    finish_restore(self.cloud, vault, job, end)
                    write_config_blob(self.staging_blobs, job)
                if job.operation != "Backup":
                    continue
                item = job.item
                if job.outcome == "complete":
                    item.points.append(RecoveryPoint(end, item.consistency))
                    item.last_backup = end
                    item.last_status = "Completed"
                    if item.state == "IRPending":
                        item.state = "Protected"
                else:
                    item.last_status = "Failed"
            for item in vault.items.values():
                policy = vault.policies.get(item.policy)
                expire_points(item, policy.retention_days if policy else 30, now)

    def _schedule(self, vault: Vault, item: Item, now: datetime) -> None:
        since = item.scheduled_until or now
        item.scheduled_until = now
        if item.soft_deleted or item.state == "ProtectionStopped" or item.outcome == "none":
            return
        policy = vault.policies.get(item.policy) or BackupPolicy(item.policy)
        day = since.replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= now:
            at = day.replace(hour=policy.hour, minute=policy.minute)
            if since < at <= now:
                self._new_job(vault, item, "Backup", at, user_triggered=False)
            day += timedelta(days=1)

    def _new_job(
        self, vault: Vault, item: Item, operation: str, at: datetime, *, user_triggered: bool
    ) -> Job:
        job = Job(
            id=str(uuid.uuid4()),
            item=item,
            operation=operation,
            start=at,
            seconds=item.job_seconds if operation == "Backup" else 30.0,
            outcome=item.outcome if operation == "Backup" else "complete",
            error_code=item.error_code if item.outcome == "fail" else None,
            user_triggered=user_triggered,
        )
        vault.jobs.append(job)
        return job

    def job_json(
        self, vault: Vault, job: Job, now: datetime, *, detail: bool = False
    ) -> dict[str, Any]:
        """A job as listed, or with `detail` as JobDetails_Get answers it (a restore job then
        carries `extendedInfo`, as recorded)."""
        status = job.status(now)
        restore = job.operation == "Restore"
        end = job.end()
        finished = status != "InProgress" and end is not None
        seconds = ((end if finished and end else now) - job.start).total_seconds()
        props: dict[str, Any] = {
            "jobType": "AzureIaaSVMJob",
            "duration": f"PT{max(0.0, seconds):.7f}S",
            # The recorded restore job says [1] (cancellable) even once Completed.
            "actionsInfo": [1] if status == "InProgress" or restore else [],
            "virtualMachineVersion": "Compute",
            "entityFriendlyName": job.item.vm,
            "backupManagementType": "AzureIaasVM",
            "operation": job.operation,
            "status": status,
            "startTime": azure_time(job.start),
            "activityId": str(uuid.uuid5(uuid.NAMESPACE_URL, job.id)),
            "containerName": job.item.container,
            "isUserTriggered": job.user_triggered,
        }
        if finished and end is not None:
            props["endTime"] = azure_time(end)
        if status in ("Failed", "CompletedWithWarnings"):
            title = "Backup failed"
            if restore:
                title = (
                    "Restore failed" if status == "Failed" else "Restore completed with warnings"
                )
            props["errorDetails"] = [
                {
                    "errorCode": 400018,
                    "errorString": job.error_code
                    or ("RestoreFailed" if restore else "BackupFailed"),
                    "errorTitle": title,
                    "recommendations": ["Retry the operation after some time."],
                }
            ]
        if restore and detail and job.restore is not None:
            props["extendedInfo"] = extended_info(job, status)
        return {
            "id": f"{vault.arm_id}/backupJobs/{job.id}",
            "name": job.id,
            "type": "Microsoft.RecoveryServices/vaults/backupJobs",
            "properties": props,
        }

    # ---- vaults and policies ------------------------------------------------------------
    def list_vaults(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub = args[0].lower()
        group = args[1].lower() if len(args) > 1 else None
        self.throttle(req, sub)
        with self.lock:
            found = [
                v.to_json()
                for v in self.vaults.values()
                if v.subscription == sub and (group is None or v.group.lower() == group)
            ]
        return self.page(req, found)

    def get_vault(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        return Reply(200, self.vault(args).to_json())

    def policy_json(self, vault: Vault, policy: BackupPolicy) -> dict[str, Any]:
        run = datetime(2026, 1, 1, policy.hour, policy.minute, tzinfo=UTC)
        return {
            "id": f"{vault.arm_id}/backupPolicies/{policy.name}",
            "name": policy.name,
            "type": "Microsoft.RecoveryServices/vaults/backupPolicies",
            "properties": {
                "backupManagementType": "AzureIaasVM",
                "schedulePolicy": {
                    "schedulePolicyType": "SimpleSchedulePolicy",
                    "scheduleRunFrequency": "Daily",
                    "scheduleRunTimes": [run.strftime("%Y-%m-%dT%H:%M:%SZ")],
                    "scheduleWeeklyFrequency": 0,
                },
                "retentionPolicy": {
                    "retentionPolicyType": "LongTermRetentionPolicy",
                    "dailySchedule": {
                        "retentionTimes": [run.strftime("%Y-%m-%dT%H:%M:%SZ")],
                        "retentionDuration": {
                            "count": policy.retention_days,
                            "durationType": "Days",
                        },
                    },
                },
                "timeZone": "UTC",
                "protectedItemsCount": sum(
                    1 for i in vault.items.values() if i.policy == policy.name
                ),
            },
        }

    def list_policies(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        vault = self.vault(args)
        return self.page(req, [self.policy_json(vault, p) for p in vault.policies.values()])

    def get_policy(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        vault = self.vault(args)
        policy = vault.policies.get(args[3]) or next(
            (p for n, p in vault.policies.items() if n.lower() == args[3].lower()), None
        )
        if policy is None:
            raise ArmError(404, "BMSUserErrorPolicyNotFound", f"Policy {args[3]} not found.")
        return Reply(200, self.policy_json(vault, policy))

    # ---- items --------------------------------------------------------------------------
    def protected_anywhere(self, vm_id: str) -> tuple[Vault, Item] | None:
        for vault in self.vaults.values():
            item = vault.items.get(key(vm_id))
            if item is not None and not item.soft_deleted:
                return vault, item
        return None

    def list_protectable(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        vault = self.vault(args)
        values = []
        with self.cloud.lock:
            vms = [
                vm
                for vm in self.cloud.vms.values()
                if vm.subscription == vault.subscription
                and vm.location.lower() == vault.location.lower()
            ]
        with self.lock:
            for vm in vms:
                if self.protected_anywhere(vm.id) is not None:
                    continue
                name = f"iaasvmcontainerv2;{vm.group};{vm.name}".lower()
                values.append(
                    {
                        "id": f"{vault.arm_id}/backupFabrics/Azure/protectionContainers/"
                        f"IaasVMContainer;{name}/protectableItems/vm;{name}",
                        "name": name,
                        "type": "Microsoft.RecoveryServices/vaults/backupFabrics/"
                        "protectionContainers/protectableItems",
                        "properties": {
                            "virtualMachineId": vm.id,
                            "virtualMachineVersion": "Compute",
                            "resourceGroup": vm.group,
                            "backupManagementType": "AzureIaasVM",
                            "workloadType": "VM",
                            "protectableItemType": "Microsoft.Compute/virtualMachines",
                            "friendlyName": vm.name,
                            "protectionState": "NotProtected",
                        },
                    }
                )
        return self.page(req, values)

    def list_items(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        now = self.clock.now()
        with self.lock:
            self.advance(now)
            vault = self.vault(args)
            values = [i.to_json() for i in vault.items.values()]
        return self.page(req, values)

    def get_item(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        with self.lock:
            self.advance(self.clock.now())
            _, item = self.item(args)
            return Reply(200, item.to_json())

    def put_item(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        """Configure protection: 202, then operationResults / operationsStatus as recorded."""
        body = req.body if isinstance(req.body, dict) else {}
        props = body.get("properties") or {}
        source = str(props.get("sourceResourceId") or props.get("virtualMachineId") or "")
        policy_id = str(props.get("policyId") or "")
        now = self.clock.now()
        with self.lock:
            vault = self.vault(args)
            with self.cloud.lock:
                vm = self.cloud.vms.get(key(source))
            if vm is None:
                raise ArmError(
                    400,
                    "BMSUserErrorInvalidSourceResourceId",
                    f"The virtual machine {source} was not found.",
                )
            expected = f"iaasvmcontainer;iaasvmcontainerv2;{vm.group};{vm.name}".lower()
            if args[3].lower() != expected:
                raise ArmError(
                    400,
                    "BMSUserErrorContainerObjectNotFound",
                    f"Container {args[3]} does not hold {source}.",
                )
            if vm.location.lower() != vault.location.lower():
                message = (
                    f"The VM is in {vm.location}; vault {vault.name} is in {vault.location}. "
                    "A vault protects VMs of its region."
                )
                raise ArmError(400, "BMSUserErrorInvalidInput", message)
            req.actions.append("Microsoft.Compute/virtualMachines/write")  # linked check
            policy = policy_id.rstrip("/").rsplit("/", 1)[-1] or "DefaultPolicy"
            if policy.lower() not in {p.lower() for p in vault.policies}:
                raise ArmError(400, "BMSUserErrorPolicyNotFound", f"Policy {policy} not found.")
            elsewhere = self.protected_anywhere(vm.id)
            if elsewhere is not None and elsewhere[0] is not vault:
                raise ArmError(
                    400,
                    "BMSUserErrorAlreadyProtected",
                    f"{vm.name} is already protected by vault {elsewhere[0].name}.",
                )
            item = vault.items.get(key(vm.id))
            if item is None:
                item = Item(
                    vault=vault,
                    vm_id=vm.id,
                    group=vm.group,
                    vm=vm.name,
                    policy=policy,
                    state="IRPending",
                    scheduled_until=now,
                    layout=disk_plans(self.cloud, vm),
                )
                item.outcome = vault_defaults(self.cloud).get("outcome", "complete")
                vault.items[key(vm.id)] = item
            else:
                item.policy = policy
                if item.state == "ProtectionStopped" and not item.soft_deleted:
                    item.state = "Protected"
            job = self._new_job(vault, item, "ConfigureBackup", now, user_triggered=True)
            op = Operation(id=str(uuid.uuid4()), job_id=job.id, start=now, body_item=item)
            vault.operations[op.id] = op
            return Reply(202, None, self.operation_headers(req, args, op, retry_after="60"))

    def operation_headers(
        self, req: ArmRequest, args: tuple[str, ...], op: Operation, *, retry_after: str
    ) -> dict[str, str]:
        base = (
            f"{req.base_url}{self.vault(args).arm_id}/backupFabrics/Azure/protectionContainers/"
            f"{args[3]}/protectedItems/{args[4]}"
        )
        api = req.query.get("api-version", "")
        return {
            "Azure-AsyncOperation": f"{base}/operationsStatus/{op.id}?api-version={api}",
            "Location": f"{base}/operationResults/{op.id}?api-version={api}",
            "Retry-After": self.behaviour.scaled(float(retry_after)),
        }

    def trigger(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        """On-demand backup: 202 with an empty body; the operation's status names the job."""
        now = self.clock.now()
        with self.lock:
            self.advance(now)
            vault, item = self.item(args)
            if item.soft_deleted or item.state == "ProtectionStopped":
                raise ArmError(
                    400,
                    "UserErrorBackupNotAllowedForStoppedItem",
                    "Backup is not allowed while protection is stopped.",
                )
            today = now.replace(hour=0, minute=0, second=0, microsecond=0)
            todays = [
                j
                for j in vault.jobs
                if j.item is item and j.operation == "Backup" and j.start >= today
            ]
            on_demand = [j for j in todays if j.user_triggered]
            if len(on_demand) >= MAX_ON_DEMAND_PER_DAY or len(todays) >= MAX_ATTEMPTS_PER_DAY:
                raise ArmError(
                    400,
                    "CloudDosAbsoluteLimitReached",
                    "Operation has reached the maximum number of backup attempts allowed for "
                    "this item today. Retry after 24 hours.",
                )
            job = self._new_job(vault, item, "Backup", now, user_triggered=True)
            op = Operation(id=str(uuid.uuid4()), job_id=job.id, start=now)
            vault.operations[op.id] = op
            return Reply(202, None, self.operation_headers(req, args, op, retry_after="0"))

    def _operation(self, args: tuple[str, ...]) -> tuple[Vault, Operation]:
        vault = self.vault(args)
        op = vault.operations.get(args[5])
        if op is None:
            raise ArmError(404, "BMSUserErrorOperationNotFound", f"Operation {args[5]} not found.")
        return vault, op

    def operation_result(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        """As recorded: 202 with the same headers on the first poll, then 200 (PUT) or 204."""
        with self.lock:
            _vault, op = self._operation(args)
            op.polls += 1
            if op.polls == 1:
                return Reply(202, {}, self.operation_headers(req, args, op, retry_after="0"))
            if op.body_item is not None:
                return Reply(200, op.body_item.to_json())
            return Reply(204, None)

    def operation_status(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.lock:
            _, op = self._operation(args)
            op.polls += 1
            body: dict[str, Any] = {
                "id": op.id,
                "name": op.id,
                "status": "InProgress" if op.polls == 1 else "Succeeded",
                "startTime": azure_time(op.start),
            }
            if op.polls > 1:
                body["endTime"] = azure_time(op.start)
                body["properties"] = {
                    "objectType": "OperationStatusJobExtendedInfo",
                    "jobId": op.job_id,
                }
            return Reply(200, body)

    # ---- recovery points and restores ---------------------------------------------------
    def _vm_size(self, item: Item) -> str:
        with self.cloud.lock:
            vm = self.cloud.vms.get(key(item.vm_id))
            return vm.size if vm is not None else "Standard_D2s_v5"

    def list_points(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        """Newest first. `$filter` as the SDK and the CLI send it: `startDate eq '...' and
        endDate eq '...'` in the job filter's `yyyy-MM-dd hh:mm:ss tt` form (UTC)."""
        self.throttle(req, args[0])
        clauses = parse_filter(req.query.get("$filter", ""))
        since = parse_job_time(clauses["startdate"]) if "startdate" in clauses else None
        until = parse_job_time(clauses["enddate"]) if "enddate" in clauses else None
        now = self.clock.now()
        with self.lock:
            self.advance(now)
            _, item = self.item(args)
            size = self._vm_size(item)
            values = [
                point_json(item, point, size, now)
                for point in sorted(item.points, key=lambda p: p.time, reverse=True)
                if (since is None or point.time >= since) and (until is None or point.time <= until)
            ]
        return self.page(req, values)

    def get_point(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        now = self.clock.now()
        with self.lock:
            self.advance(now)
            _, item = self.item(args)
            point = item.point(args[5])
            if point is None:
                raise missing_point(args[5])
            return Reply(200, point_json(item, point, self._vm_size(item), now))

    def trigger_restore(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        """Restores_Trigger: checked as Azure checks it, then 202 with `Azure-AsyncOperation`
        (the operation status names the job), `Location` and `Retry-After: 60`. The job runs
        for the item's restore seconds on the stand-in clock and ends as the estate scripts it;
        a `stuck` fault rule on this request makes it never end."""
        now = self.clock.now()
        with self.lock:
            self.advance(now)
            vault, item = self.item(args)
            point = item.point(args[5])
            if point is None:
                raise missing_point(args[5])
            with self.cloud.lock:
                details = check_restore(
                    self.cloud, vault, item, point, req.json_body(), self.staging_accounts
                )
            req.actions.append("Microsoft.Compute/virtualMachines/write")  # on the source VM
            script = item.restore
            outcome = "inprogress" if req.stuck else script.outcome
            job = Job(
                id=str(uuid.uuid4()),
                item=item,
                operation="Restore",
                start=now,
                seconds=script.seconds,
                outcome=outcome,
                error_code=script.error_code if outcome in ("fail", "warn") else None,
                user_triggered=True,
                restore=details,
            )
            vault.jobs.append(job)
            op = Operation(id=str(uuid.uuid4()), job_id=job.id, start=now)
            vault.operations[op.id] = op
            return Reply(202, None, self.operation_headers(req, args, op, retry_after="60"))

    # ---- jobs ---------------------------------------------------------------------------
    def list_jobs(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        clauses = parse_filter(req.query.get("$filter", ""))
        since = until = None
        if "starttime" in clauses:
            since = parse_job_time(clauses["starttime"])
        if "endtime" in clauses:
            until = parse_job_time(clauses["endtime"])
        now = self.clock.now()
        with self.lock:
            self.advance(now)
            vault = self.vault(args)
            chosen = []
            for job in sorted(vault.jobs, key=lambda j: j.start, reverse=True):
                if job.start > now:
                    continue
                if since is not None and job.start < since:
                    continue
                if until is not None and job.start > until:
                    continue
                if "operation" in clauses and job.operation.lower() != clauses["operation"].lower():
                    continue
                if "status" in clauses and job.status(now).lower() != clauses["status"].lower():
                    continue
                chosen.append(self.job_json(vault, job, now))
        return self.page(req, chosen)

    def get_job(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.throttle(req, args[0])
        now = self.clock.now()
        with self.lock:
            self.advance(now)
            vault = self.vault(args)
            for job in vault.jobs:
                if job.id.lower() == args[3].lower():
                    return Reply(200, self.job_json(vault, job, now, detail=True))
        raise ArmError(404, "BMSUserErrorJobNotFound", f"Job {args[3]} not found.")

    # ---- backup status ------------------------------------------------------------------
    def backup_status(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        resource = str(body.get("resourceId") or "")
        if str(body.get("resourceType", "")).lower() != "vm" or not resource:
            raise ArmError(
                400, "BMSUserErrorInvalidInput", "resourceType must be VM and resourceId a VM id."
            )
        with self.lock:
            found = self.protected_anywhere(resource)
        if found is None:
            return Reply(
                200,
                {
                    "protectionStatus": "NotProtected",
                    "fabricName": "Azure",
                    "errorCode": "Success",
                    "errorMessage": "",
                },
            )
        vault, item = found
        return Reply(
            200,
            {
                "protectionStatus": "Protected",
                "vaultId": vault.to_json()["id"],
                "fabricName": "Azure",
                "containerName": f"iaasvmcontainer;{item.container}",
                "protectedItemName": item.name.lower(),
                "policyName": item.policy,
                "errorCode": "Success",
                "errorMessage": "",
            },
        )


# ------------------------------------------------------------------------------- parsing


def parse_filter(text: str) -> dict[str, str]:
    """`a eq 'x' and b eq 'y'` -> {a: x, b: y} (lower-case names); anything else is refused."""
    if not text.strip():
        return {}
    clauses: dict[str, str] = {}
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = re.fullmatch(r"(\w+)\s+eq\s+'([^']*)'", part.strip(), re.IGNORECASE)
        if match is None:
            raise ArmError(400, "BMSUserErrorInvalidFilter", f"Invalid filter clause: {part!r}.")
        clauses[match.group(1).lower()] = match.group(2)
    return clauses


def parse_job_time(text: str) -> datetime:
    """Job filters take `yyyy-MM-dd hh:mm:ss tt` (UTC). The REST-spec example writes midnight
    `00:00:00 AM`, so hours 0-12 are accepted with AM/PM; ISO 8601 is refused."""
    match = re.fullmatch(
        r"(\d{4}-\d{2}-\d{2}) (\d{1,2}):(\d{2}):(\d{2}) ([AaPp][Mm])", text.strip()
    )
    if match is not None and int(match.group(2)) <= 12:
        hour = int(match.group(2)) % 12 + (12 if match.group(5).upper() == "PM" else 0)
        day = datetime.strptime(match.group(1), "%Y-%m-%d").replace(tzinfo=UTC)
        return day.replace(hour=hour, minute=int(match.group(3)), second=int(match.group(4)))
    raise ArmError(
        400,
        "BMSUserErrorInvalidFilter",
        f"Time '{text}' in the filter is not in the format 'yyyy-MM-dd hh:mm:ss tt'.",
    )


def vault_defaults(cloud: Cloud) -> dict[str, Any]:
    return dict((cloud.extra.get("recoveryServices") or {}).get("newItems") or {})


def load_vaults(rs: RecoveryServices, raw_vaults: list[Any], now: datetime) -> None:
    """Estate `vaults:` (README, Estate format): vaults, their policies and protected VMs, with
    their recovery points and how their restores end; and `storageAccounts:`, where restores
    stage (README, Recovery Services, "Restore")."""

    problems: list[str] = []
    config = rs.cloud.extra.get("recoveryServices") or {}
    try:
        default_restore_seconds = restore_seconds(config)
    except ValueError as e:
        problems.append(str(e))
        default_restore_seconds = restore_seconds({})
    rs.staging_accounts = load_staging_accounts(
        rs.cloud, rs.cloud.extra.get("storageAccounts"), problems
    )
    subs = list(rs.cloud.subscriptions)
    for i, raw in enumerate(raw_vaults):
        where = f"vaults[{i}]"
        if not isinstance(raw, dict) or not raw.get("name") or not raw.get("resourceGroup"):
            problems.append(f"{where}: name and resourceGroup are required")
            continue
        sub = str(raw.get("subscription") or (subs[0] if subs else "")).lower()
        group = rs.cloud.group(sub, str(raw["resourceGroup"]))
        if group is None:
            problems.append(f"{where}: resource group {raw['resourceGroup']!r} is not declared")
            continue
        vault = Vault(sub, group.name, str(raw["name"]), str(raw.get("location", group.location)))
        for p in raw.get("policies") or [{"name": "DefaultPolicy"}]:
            hour, _, minute = str(p.get("time", "02:30")).partition(":")
            vault.policies[str(p["name"])] = BackupPolicy(
                str(p["name"]), int(hour), int(minute or 0), int(p.get("retentionDays", 30))
            )
        for j, it in enumerate(raw.get("items") or []):
            ref = str(it.get("vm", ""))
            vm_id = ref
            if not ref.startswith("/"):
                group_name, _, vm_name = ref.partition("/")
                vm_id = compute_id(sub, group_name, "virtualMachines", vm_name)
            vm = rs.cloud.vms.get(key(vm_id))
            if vm is None:
                problems.append(f"{where}.items[{j}]: no VM {ref!r} in the estate")
                continue
            if vm.location.lower() != vault.location.lower():
                problems.append(f"{where}.items[{j}]: {vm.name} is not in {vault.location}")
                continue
            outcome = str(it.get("outcome", "complete")).lower()
            if outcome not in ("complete", "fail", "inprogress", "none"):
                problems.append(
                    f"{where}.items[{j}]: outcome must be complete, fail, "
                    f"inprogress or none, got {outcome!r}"
                )
            consistency = str(it.get("consistency", "CrashConsistent"))
            if consistency not in CONSISTENCIES:
                problems.append(
                    f"{where}.items[{j}].consistency: must be one of {', '.join(CONSISTENCIES)}, "
                    f"got {consistency!r}"
                )
            item = Item(
                vault=vault,
                vm_id=vm.id,
                group=vm.group,
                vm=vm.name,
                policy=str(it.get("policy", next(iter(vault.policies)))),
                state=str(it.get("state", "Protected")),
                soft_deleted=bool(it.get("softDeleted", False)),
                outcome=outcome,
                error_code=str(it.get("errorCode", "CloudDosAbsoluteLimitReached")),
                job_seconds=float(it.get("jobSeconds", 600)),
                consistency=consistency,
                scheduled_until=now,
                restore=load_restore_script(
                    it.get("restore"),
                    default_restore_seconds,
                    f"{where}.items[{j}].restore",
                    problems,
                ),
                layout=disk_plans(rs.cloud, vm),
            )
            policy = vault.policies.get(item.policy)
            seed_points(
                it.get("points"),
                item,
                it.get("lastBackup"),
                policy.retention_days if policy else 30,
                now,
                f"{where}.items[{j}].points",
                problems,
            )
            if item.last_backup is not None:
                item.last_status = "Completed"
            if outcome == "fail":
                rs._new_job(vault, item, "Backup", now - timedelta(hours=2), user_triggered=False)
            vault.items[key(vm.id)] = item
        rs.vaults[f"{sub}/{group.name}/{vault.name}".lower()] = vault
    if problems:
        raise EstateError("invalid estate:\n  " + "\n  ".join(problems))


_V = "Microsoft.RecoveryServices/vaults"
_ITEMS = f"{_V}/backupFabrics/protectionContainers/protectedItems"
ROUTES: list[Route] = [
    route("GET", SUBSCRIPTION + _RS + r"/vaults", f"{_V}/read", "list_vaults"),
    route(
        "GET",
        GROUP + _RS + r"/vaults",
        f"{_V}/read",
        "list_vaults",
    ),
    route("GET", _VAULT, f"{_V}/read", "get_vault"),
    route("GET", _VAULT + r"/backuppolicies", f"{_V}/backupPolicies/read", "list_policies"),
    route(
        "GET",
        _VAULT + r"/backuppolicies/([^/]+)",
        f"{_V}/backupPolicies/read",
        "get_policy",
    ),
    route(
        "GET",
        _VAULT + r"/backupprotectableitems",
        f"{_V}/backupProtectableItems/read",
        "list_protectable",
    ),
    route(
        "GET",
        _VAULT + r"/backupprotecteditems",
        f"{_V}/backupProtectedItems/read",
        "list_items",
    ),
    route("GET", _ITEM, f"{_ITEMS}/read", "get_item"),
    route("PUT", _ITEM, f"{_ITEMS}/write", "put_item"),
    route("POST", _ITEM + r"/backup", f"{_ITEMS}/backup/action", "trigger"),
    route(
        "GET",
        _ITEM + r"/operationresults/([^/]+)",
        f"{_ITEMS}/operationResults/read",
        "operation_result",
    ),
    route(
        "GET",
        _ITEM + r"/operationsstatus/([^/]+)",
        f"{_ITEMS}/operationsStatus/read",
        "operation_status",
    ),
    route("GET", _ITEM + r"/recoverypoints", f"{_ITEMS}/recoveryPoints/read", "list_points"),
    route("GET", _ITEM + r"/recoverypoints/([^/]+)", f"{_ITEMS}/recoveryPoints/read", "get_point"),
    route(
        "POST",
        _ITEM + r"/recoverypoints/([^/]+)/restore",
        f"{_ITEMS}/recoveryPoints/restore/action",
        "trigger_restore",
    ),
    route("GET", _VAULT + r"/backupjobs", f"{_V}/backupJobs/read", "list_jobs"),
    route("GET", _VAULT + r"/backupjobs/([^/]+)", f"{_V}/backupJobs/read", "get_job"),
    route(
        "POST",
        SUBSCRIPTION + _RS + r"/locations/([^/]+)/backupstatus",
        "Microsoft.RecoveryServices/locations/backupStatus/action",
        "backup_status",
    ),
]
