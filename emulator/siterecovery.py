"""Azure Site Recovery (Azure-to-Azure) for the slice Lifeboat reads and drives: routes and answers.

Replicated items with A2A details (vault-level and per-container lists, get), fabrics and
containers as A2A names them, recovery plans with their groups and actions, test failover and
test failover cleanup of a plan (202 + `Azure-AsyncOperation` at `replicationOperationStatus` +
`Location` at the plan's `operationResults`, `Retry-After`), and the jobs they start, with tasks
and errors. A test failover creates the test VMs (their NICs in the network given with
`VmNetworkAsInput`, their disks) in the recovery region; they boot on the stand-in clock like
every VM created through ARM. State is in `siterecovery_state.py`; bodies follow the REST-spec
examples of api-version 2025-08-01 (README, "Site Recovery").
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from emulator.arm_core import Arm, query_string
from emulator.clock import format_instant
from emulator.errors import ArmError
from emulator.ids import compute_id, key, new_uuid, stable_uuid
from emulator.model import DataDisk, Disk, VirtualMachine
from emulator.network_state import IpConfiguration, NetworkInterface, VirtualNetwork
from emulator.routing import GROUP, ArmRequest, Reply, Route, route
from emulator.siterecovery_state import (
    ACTION_KINDS,
    ITEM_OPERATIONS,
    PLAN_OPERATIONS,
    PREREQUISITE_SECONDS,
    PROTECTION_STATES,
    TEST_FAILOVER_STATES,
    AsrJob,
    AsrVault,
    Operation,
    PlanAction,
    RecoveryPlan,
    ReplicatedItem,
    SiteRecoveryState,
    Task,
    TestVm,
    load_site_recovery,
)

# Who Site Recovery's writes are made by (request log and Event Grid caller of test VMs).
ASR_PRINCIPAL = "00000000-0000-0000-0000-00000000a5a0"
STATUS_RETRY_AFTER = 30.0  # the REST-spec examples' Retry-After on a 202
_VAULT = GROUP + r"/providers/microsoft\.recoveryservices/vaults/([^/]+)"
_FABRIC = _VAULT + r"/replicationfabrics/([^/]+)"
_CONTAINER = _FABRIC + r"/replicationprotectioncontainers/([^/]+)"
_PLAN = _VAULT + r"/replicationrecoveryplans/([^/]+)"
_OP = "Microsoft.RecoveryServices/vaults/"


def asr_time(value: datetime) -> str:
    """Site Recovery writes 7 fractional digits and `Z`, as the examples show."""
    return format_instant(value).replace("Z", "0Z")


class SiteRecovery:
    """The Site Recovery provider of one stand-in, over the ARM core and its `Cloud`."""

    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.cloud = arm.cloud
        self.clock = arm.clock
        self.state = SiteRecoveryState()
        now = self.clock.now()
        load_site_recovery(self.state, self.cloud, self.cloud.extra.get("siteRecovery"), now)
        for vault in self.state.vaults.values():
            for plan in vault.plans.values():
                if plan.seeded_test_failover is not None:
                    self.seed_test_failover(plan, plan.seeded_test_failover)

    def seed_test_failover(self, plan: RecoveryPlan, started: datetime) -> None:
        """An estate's test failover started at `started` and never cleaned up (a forgotten
        one): its test VMs are in the first item's test network, booted by now."""
        network = self.cloud.network.find(plan.items[0].test_network_id)
        assert isinstance(network, VirtualNetwork)  # checked when the estate was loaded
        self.start_test_failover(plan, network, started)

    def routes(self) -> list[Route]:
        return ROUTES

    # ---- shared -------------------------------------------------------------------------------
    def now(self) -> datetime:
        now = self.clock.now()
        with self.cloud.lock:
            self.cloud.purge_deleted(now)
            self.cloud.network.purge(now)
            self.state.settle(self.cloud, now)
        return now

    def vault(self, args: tuple[str, ...]) -> AsrVault:
        self.arm.need_group(args[0], args[1])
        found = self.state.vault(args[0], args[1], args[2])
        if found is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.RecoveryServices/vaults/{args[2]}' under resource group "
                f"'{args[1]}' was not found.",
            )
        return found

    def plan(self, args: tuple[str, ...]) -> RecoveryPlan:
        vault = self.vault(args)
        found = vault.plans.get(args[3].lower())
        if found is None:
            raise ArmError(
                404,
                "RecoveryPlanNotFound",  # our reading: Site Recovery's code is not published
                f"Recovery plan '{args[3]}' was not found in vault '{vault.name}'.",
            )
        return found

    def page(self, req: ArmRequest, values: list[dict[str, Any]]) -> Reply:
        size = self.arm.behaviour.page_size
        try:
            start = int(req.query.get("$skiptoken", "0"))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from None
        body: dict[str, Any] = {"value": values[start : start + size]}
        if start + size < len(values):
            kept = {k: v for k, v in req.query.items() if k != "$skiptoken"}
            kept["$skiptoken"] = str(start + size)
            body["nextLink"] = f"{req.base_url}{req.path}?{query_string(kept)}"
        return Reply(200, body)

    # ---- renderers ----------------------------------------------------------------------------
    def item_test_state(self, item: ReplicatedItem, now: datetime) -> tuple[str, AsrJob | None]:
        """The item's testFailoverState and the job behind it (its plan's current scenario)."""
        for plan in item.vault.plans.values():
            if item not in plan.items or plan.job is None:
                continue
            job = plan.job
            status = job.state(now)
            if job.scenario == "TestFailover":
                if status == "InProgress":
                    return "InProgress", job
                return ("Failed" if job.fails else "WaitingForCompletion"), job
            if plan.test_job is not None:
                return ("CleanupInProgress" if status == "InProgress" else "Failed"), job
            return "None", job
        return item.test_failover_state, None

    def item_json(self, item: ReplicatedItem, now: datetime) -> dict[str, Any]:
        vault = item.vault
        tfo_state, job = self.item_test_state(item, now)
        scenario: dict[str, Any] = {
            "jobId": f"{vault.arm_id}/replicationJobs/None",
            "scenarioName": "None",
            "startTime": "1753-01-01T01:01:01Z",
        }
        if job is not None and job.state(now) == "InProgress":
            scenario = {
                "jobId": job.arm_id,
                "scenarioName": job.scenario,
                "startTime": asr_time(job.start),
            }
        allowed = item.allowed_operations
        if allowed is None:
            allowed = list(ITEM_OPERATIONS)
            if tfo_state != "None":
                allowed = ["TestFailoverCleanup"] if tfo_state != "InProgress" else []
        props: dict[str, Any] = {
            "activeLocation": "Primary",
            "allowedOperations": allowed,
            "currentScenario": scenario,
            "failoverHealth": "Normal",
            "friendlyName": item.vm_name,
            "healthErrors": [self.health_error(item, e) for e in item.health_errors],
            "policyFriendlyName": "24-hour-retention-policy",
            "policyId": f"{vault.arm_id}/replicationPolicies/24-hour-retention-policy",
            "primaryFabricFriendlyName": item.source_location,
            "primaryFabricProvider": "Azure",
            "primaryProtectionContainerFriendlyName": item.container,
            "protectableItemId": f"{vault.container_id(item.source_location)}/"
            f"replicationProtectableItems/{item.name}",
            "protectedItemType": "",
            "protectionState": item.protection_state,
            "protectionStateDescription": PROTECTION_STATES[item.protection_state],
            "providerSpecificDetails": self.a2a_details(item, now),
            "recoveryContainerId": vault.container_id(vault.location),
            "recoveryFabricFriendlyName": vault.location,
            "recoveryFabricId": vault.fabric_id(vault.location),
            "recoveryProtectionContainerFriendlyName": vault.container_name(vault.location),
            "replicationHealth": item.replication_health,
            "testFailoverState": tfo_state,
            "testFailoverStateDescription": TEST_FAILOVER_STATES[tfo_state],
        }
        if item.last_test_failover is not None:
            props["lastSuccessfulTestFailoverTime"] = asr_time(item.last_test_failover)
        return {
            "name": item.name,
            "type": "Microsoft.RecoveryServices/vaults/replicationFabrics/"
            "replicationProtectionContainers/replicationProtectedItems",
            "id": item.arm_id,
            "location": vault.location,
            "properties": props,
        }

    def health_error(self, item: ReplicatedItem, error: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in error.items() if k != "creationTimeUtc"}
        body.update(
            {
                "errorSource": "ASR",
                "errorType": "ReplicationHealth",
                "creationTimeUtc": asr_time(error["creationTimeUtc"])
                if error.get("creationTimeUtc")
                else None,
                "entityId": item.arm_id,
                "errorId": stable_uuid(item.name, error["errorCode"]),
                "customerResolvability": "Allowed",
                "innerHealthErrors": [],
            }
        )
        return body

    def a2a_details(self, item: ReplicatedItem, now: datetime) -> dict[str, Any]:
        vault = item.vault
        nics = []
        for n, nic in enumerate(item.nics):
            test_subnet = nic.test_subnet or self.first_subnet(item.test_network_id) or "default"
            ip_config: dict[str, Any] = {
                "isPrimary": True,
                "subnetName": "default",
                "ipAddressType": "Dynamic",
                "isSeletedForFailover": True,
                "recoverySubnetName": self.first_subnet(item.recovery_network_id) or "default",
                "recoveryIPAddressType": "Dynamic",
                "tfoSubnetName": test_subnet,
                "tfoLBBackendAddressPoolIds": list(nic.test_lb_pool_ids),
            }
            if nic.test_public_ip_id:
                ip_config["tfoPublicIPAddressId"] = nic.test_public_ip_id
            body: dict[str, Any] = {
                "nicId": stable_uuid(item.name, nic.source_nic_id),
                "sourceNicArmId": nic.source_nic_id,
                "vMNetworkName": nic.source_nic_id.split("/")[-1],
                "recoveryVMNetworkId": item.recovery_network_id,
                "tfoVMNetworkId": item.test_network_id,
                "selectionType": "SelectedByUser",
                "ipConfigs": [ip_config],
                "recoveryNicName": f"{item.vm_name}-nic-{n}-asr",
                "tfoRecoveryNicName": f"{item.vm_name}-nic-{n}-test",
                "tfoRecoveryNicResourceGroupName": item.target_group_id.split("/")[-1],
                "tfoReuseExistingNic": nic.reuse_existing_nic,
                "enableAcceleratedNetworkingOnTfo": False,
            }
            if nic.test_nsg_id:
                body["tfoNetworkSecurityGroupId"] = nic.test_nsg_id
            nics.append(body)
        disks = []
        for disk_id in item.disk_ids:
            disk = self.cloud.disks.get(key(disk_id))
            name = disk_id.split("/")[-1]
            disks.append(
                {
                    "diskId": disk_id,
                    "diskName": name,
                    "diskCapacityInBytes": (disk.size_gb if disk else 0) * 1024**3,
                    "diskType": disk.sku if disk else "Standard_LRS",
                    "recoveryResourceGroupId": item.target_group_id,
                    "recoveryReplicaDiskId": f"{item.target_group_id}/providers/Microsoft.Compute/"
                    f"disks/{name}-ASRReplica",
                    "tfoDiskName": f"{name}-test",
                    "diskState": "Protected",
                    "resyncRequired": False,
                }
            )
        body = {
            "instanceType": "A2A",
            "fabricObjectId": item.vm_id,
            "primaryFabricLocation": item.source_location,
            "recoveryFabricLocation": vault.location,
            "osType": item.os_type,
            "recoveryAzureVMSize": item.vm_size,
            "recoveryAzureVMName": item.vm_name,
            "recoveryAzureResourceGroupId": item.target_group_id,
            "selectedRecoveryAzureNetworkId": item.recovery_network_id,
            "selectedTfoAzureNetworkId": item.test_network_id,
            "tfoAzureVMName": item.test_vm_name,
            "vmNics": nics,
            "protectedManagedDisks": disks,
            "multiVmGroupName": "",
            "agentVersion": item.agent_version,
            "isReplicationAgentUpdateRequired": False,
            "lastHeartbeat": asr_time(now - timedelta(seconds=60)),
            "rpoInSeconds": item.rpo_seconds,
            "lastRpoCalculatedTime": asr_time(now - timedelta(seconds=30)),
            "vmProtectionState": item.protection_state,
            "vmProtectionStateDescription": PROTECTION_STATES[item.protection_state],
            "lifecycleId": stable_uuid("lifecycle", item.vm_id),
        }
        if item.agent_expiry is not None:
            body["agentExpiryDate"] = asr_time(item.agent_expiry)
        return body

    def first_subnet(self, network_id: str | None) -> str | None:
        found = self.cloud.network.find(network_id)
        if isinstance(found, VirtualNetwork) and found.subnets:
            return next(iter(found.subnets.values())).name
        return None

    def action_json(self, action: PlanAction) -> dict[str, Any]:
        details: dict[str, Any] = {"instanceType": ACTION_KINDS[action.kind]}
        if action.kind == "script":
            details["path"] = f"scripts/{action.name}.ps1"
            details["fabricLocation"] = "Recovery"
        if action.kind == "runbook":
            details["runbookId"] = action.runbook_id or action.name
            details["fabricLocation"] = "Recovery"
        if action.kind == "manual":
            details["description"] = action.name
        return {
            "actionName": action.name,
            "failoverTypes": list(action.failover_types),
            "failoverDirections": ["PrimaryToRecovery"],
            "customDetails": details,
        }

    def plan_json(self, plan: RecoveryPlan, now: datetime) -> dict[str, Any]:
        vault = plan.vault
        source = plan.items[0].source_location if plan.items else vault.location
        groups: list[dict[str, Any]] = [
            {
                "endGroupActions": [],
                "groupType": kind,
                "replicationProtectedItems": [],
                "startGroupActions": [],
            }
            for kind in ("Shutdown", "Failover")
        ]
        for group in plan.groups:
            groups.append(
                {
                    "endGroupActions": [self.action_json(a) for a in group.end_actions],
                    "groupType": "Boot",
                    "replicationProtectedItems": [
                        {"id": item.arm_id, "virtualMachineId": item.vm_id} for item in group.items
                    ],
                    "startGroupActions": [self.action_json(a) for a in group.start_actions],
                }
            )
        props: dict[str, Any] = {
            "allowedOperations": self.plan_operations(plan, now),
            "failoverDeploymentModel": "ResourceManager",
            "friendlyName": plan.name,
            "groups": groups,
            "primaryFabricFriendlyName": source,
            "primaryFabricId": vault.fabric_id(source),
            "recoveryFabricFriendlyName": vault.location,
            "recoveryFabricId": vault.fabric_id(vault.location),
            "replicationProviders": ["A2A"],
        }
        job = plan.job
        if job is not None:
            status = job.state(now)
            props["currentScenario"] = {
                "jobId": job.arm_id,
                "scenarioName": job.scenario,
                "startTime": asr_time(job.start),
            }
            if status == "InProgress":
                props["currentScenarioStatus"] = "InProgress"
                props["currentScenarioStatusDescription"] = "InProgress"
            elif job.fails:
                props["currentScenarioStatus"] = "Failed"
                props["currentScenarioStatusDescription"] = "Failed"
            elif job.scenario == "TestFailover":
                props["currentScenarioStatus"] = "Suspended"
                props["currentScenarioStatusDescription"] = "WaitingForStopTestFailover"
            else:
                props["currentScenarioStatus"] = "Succeeded"
                props["currentScenarioStatusDescription"] = "Completed"
        if plan.last_test_failover is not None:
            props["lastTestFailoverTime"] = asr_time(plan.last_test_failover)
        return {
            "name": plan.name,
            "type": "Microsoft.RecoveryServices/vaults/replicationRecoveryPlans",
            "id": plan.arm_id,
            "location": vault.location,
            "properties": props,
        }

    def plan_operations(self, plan: RecoveryPlan, now: datetime) -> list[str]:
        if plan.job is not None and plan.job.state(now) == "InProgress":
            return []
        if plan.test_job is not None:
            return ["TestFailoverCleanup"]
        if plan.allowed_operations is not None:
            return list(plan.allowed_operations)
        return list(PLAN_OPERATIONS)

    def job_json(self, job: AsrJob, now: datetime) -> dict[str, Any]:
        state = job.state(now)
        end = job.end
        tasks = []
        errors: list[dict[str, Any]] = []
        for n, task in enumerate(job.tasks):
            task_state = job.task_state(task, now)
            task_id = stable_uuid(job.id, str(n))
            body: dict[str, Any] = {
                "name": task.name,
                "allowedActions": [],
                "customDetails": {"instanceType": "ManualActionTaskDetails"},
                "errors": [],
                "friendlyName": task.friendly,
                "startTime": asr_time(task.start) if task_state != "NotStarted" else None,
                "state": task_state,
                "stateDescription": "Completed" if task_state == "Succeeded" else task_state,
                "taskId": task_id,
                "taskType": "TaskDetails",
            }
            if task.end is not None and task_state in ("Succeeded", "Failed"):
                body["endTime"] = asr_time(task.end)
            if task_state == "Failed":
                error = self.job_error(job, task, task_id)
                body["errors"] = [error]
                errors.append(error)
            tasks.append(body)
        props: dict[str, Any] = {
            "activityId": f"{stable_uuid('activity', job.id)} ActivityId: {job.id}",
            "allowedActions": ["Cancel"] if state == "InProgress" else [],
            "customDetails": {
                "instanceType": "AsrJobDetails",
                "affectedObjectDetails": {
                    "PrimaryFabricProviderId": "Azure",
                    "RecoveryFabricProviderId": "Azure",
                },
            },
            "errors": errors,
            "friendlyName": job.friendly,
            "scenarioName": job.scenario,
            "startTime": asr_time(job.start),
            "state": state,
            "stateDescription": "Completed" if state == "Succeeded" else state,
            "targetInstanceType": "RecoveryPlan",
            "targetObjectId": stable_uuid("plan", job.plan.arm_id),
            "targetObjectName": job.plan.name,
            "tasks": tasks,
        }
        if state != "InProgress" and end is not None:
            props["endTime"] = asr_time(end)
        return {
            "name": job.id,
            "type": "Microsoft.RecoveryServices/vaults/replicationJobs",
            "id": job.arm_id,
            "location": job.vault.location,
            "properties": props,
        }

    def job_error(self, job: AsrJob, task: Task, task_id: str) -> dict[str, Any]:
        return {
            "serviceErrorDetails": {
                "code": job.error_code,
                "message": job.error_message,
                "possibleCauses": "The operation failed in the recovery region.",
                "recommendedAction": "Retry the operation. If the issue persists, contact support.",
                "activityId": stable_uuid("error", job.id),
            },
            "providerErrorDetails": None,
            "errorLevel": "Error",
            "creationTime": asr_time(task.end or task.start),
            "taskId": task_id,
        }

    # ---- reads --------------------------------------------------------------------------------
    def list_items(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        now = self.now()
        items = list(vault.items.values())
        if len(args) > 3:  # per container: the container's fabric and name must match
            items = [
                i
                for i in items
                if i.fabric.lower() == args[3].lower() and i.container.lower() == args[4].lower()
            ]
        return self.page(req, [self.item_json(i, now) for i in items])

    def get_item(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        now = self.now()
        item = vault.items.get(args[5].lower())
        if item is None or item.container.lower() != args[4].lower():
            raise ArmError(
                404,
                "ReplicationProtectedItemNotFound",  # our reading
                f"Replication protected item '{args[5]}' was not found in container '{args[4]}'.",
            )
        return Reply(200, self.item_json(item, now))

    def fabric_json(self, vault: AsrVault, location: str) -> dict[str, Any]:
        return {
            "name": vault.fabric_name(location),
            "type": "Microsoft.RecoveryServices/vaults/replicationFabrics",
            "id": vault.fabric_id(location),
            "location": vault.location,
            "properties": {
                "friendlyName": location,
                "internalIdentifier": stable_uuid("fabric", vault.arm_id, location),
                "bcdrState": "Valid",
                "customDetails": {
                    "instanceType": "Azure",
                    "location": location,
                    "containerIds": [vault.container_id(location)],
                },
                "healthErrorDetails": [],
            },
        }

    def locations(self, vault: AsrVault) -> list[str]:
        found = sorted({i.source_location.lower() for i in vault.items.values()})
        return found + ([vault.location.lower()] if vault.location.lower() not in found else [])

    def list_fabrics(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        return self.page(req, [self.fabric_json(vault, loc) for loc in self.locations(vault)])

    def fabric_location(self, vault: AsrVault, name: str) -> str:
        for location in self.locations(vault):
            if vault.fabric_name(location) == name.lower():
                return location
        raise ArmError(404, "FabricNotFound", f"Fabric '{name}' was not found.")  # our reading

    def get_fabric(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        return Reply(200, self.fabric_json(vault, self.fabric_location(vault, args[3])))

    def container_json(self, vault: AsrVault, location: str) -> dict[str, Any]:
        count = sum(1 for i in vault.items.values() if i.source_location.lower() == location)
        return {
            "name": vault.container_name(location),
            "type": "Microsoft.RecoveryServices/vaults/replicationFabrics/"
            "replicationProtectionContainers",
            "id": vault.container_id(location),
            "location": vault.location,
            "properties": {
                "fabricFriendlyName": location,
                "friendlyName": vault.container_name(location),
                "fabricType": "Azure",
                "protectedItemCount": count,
                "pairingStatus": "Paired",
                "role": "Primary" if count else "Recovery",
                "fabricSpecificDetails": {"instanceType": "A2A"},
            },
        }

    def list_containers(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        location = self.fabric_location(vault, args[3])
        return self.page(req, [self.container_json(vault, location)])

    def list_plans(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        now = self.now()
        return self.page(req, [self.plan_json(p, now) for p in vault.plans.values()])

    def get_plan(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        plan = self.plan(args)
        return Reply(200, self.plan_json(plan, self.now()))

    def list_jobs(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        now = self.now()
        jobs = sorted(vault.jobs.values(), key=lambda j: j.start, reverse=True)
        return self.page(req, [self.job_json(j, now) for j in jobs])

    def get_job(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        now = self.now()
        job = vault.jobs.get(args[3].lower())
        if job is None:
            raise ArmError(404, "JobNotFound", f"Job '{args[3]}' was not found.")  # our reading
        return Reply(200, self.job_json(job, now))

    def operation(self, vault: AsrVault, op_id: str) -> Operation:
        found = vault.operations.get(op_id.lower())
        if found is None:
            raise ArmError(404, "OperationNotFound", f"Operation '{op_id}' was not found.")
        return found

    def operation_status(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        vault = self.vault(args)
        now = self.now()
        op = self.operation(vault, args[3])
        state = op.job.state(now)
        body: dict[str, Any] = {
            "id": f"{vault.arm_id}/replicationOperationStatus/{op.id}",
            "name": op.id,
            "status": state,
            "startTime": asr_time(op.job.start),
        }
        headers = {}
        if state == "InProgress":
            headers["Retry-After"] = self.arm.behaviour.scaled(STATUS_RETRY_AFTER)
        else:
            body["endTime"] = asr_time(op.job.end or now)
        if state == "Failed":
            body["error"] = {"code": op.job.error_code, "message": op.job.error_message}
        return Reply(200, body, headers)

    def operation_result(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        plan = self.plan(args)
        now = self.now()
        op = self.operation(plan.vault, args[4])
        if op.job.state(now) == "InProgress":
            return Reply(
                202,
                None,
                {
                    "Location": f"{req.base_url}{req.path}?{query_string(req.query)}",
                    "Retry-After": self.arm.behaviour.scaled(STATUS_RETRY_AFTER),
                },
            )
        return Reply(200, self.plan_json(plan, now))

    # ---- test failover ------------------------------------------------------------------------
    def accepted(self, req: ArmRequest, plan: RecoveryPlan, job: AsrJob) -> Reply:
        op = Operation(new_uuid(), job)
        plan.vault.operations[op.id] = op
        api = req.query.get("api-version", "")
        return Reply(
            202,
            None,
            {
                "Azure-AsyncOperation": f"{req.base_url}{plan.vault.arm_id}/"
                f"replicationOperationStatus/{op.id}?api-version={api}",
                "Location": f"{req.base_url}{plan.arm_id}/operationResults/{op.id}"
                f"?api-version={api}",
                "Retry-After": self.arm.behaviour.scaled(STATUS_RETRY_AFTER),
            },
        )

    def refuse(self, plan: RecoveryPlan, operation: str, now: datetime) -> None:
        if operation not in self.plan_operations(plan, now):
            status = plan.job.state(now) if plan.job is not None else "None"
            raise ArmError(
                409,
                "RecoveryPlanOperationNotAllowed",  # our reading: codes are not published
                f"Operation '{operation}' is not allowed on recovery plan '{plan.name}' now "
                f"(current scenario status {status}; allowed: "
                f"{', '.join(self.plan_operations(plan, now)) or 'none'}).",
            )

    def test_failover(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        plan = self.plan(args)
        now = self.now()
        self.arm.authorize(req, f"{_OP}replicationRecoveryPlans/testFailover/action", plan.arm_id)
        props = req.json_body().get("properties") or {}
        direction = props.get("failoverDirection")
        if direction != "PrimaryToRecovery":
            raise ArmError(
                400,
                "InvalidParameter",
                f"failoverDirection must be PrimaryToRecovery, got {direction!r}.",
                target="properties.failoverDirection",
            )
        if props.get("networkType") != "VmNetworkAsInput":
            raise ArmError(
                400,
                "InvalidParameter",
                "The stand-in serves networkType VmNetworkAsInput only, got "
                f"{props.get('networkType')!r}.",
                target="properties.networkType",
            )
        network = self.cloud.network.find(str(props.get("networkId") or ""))
        if not isinstance(network, VirtualNetwork):
            raise ArmError(
                400,
                "InvalidParameter",
                f"Virtual network {props.get('networkId')!r} was not found.",
                target="properties.networkId",
            )
        if network.location.lower() != plan.vault.location.lower():
            raise ArmError(
                400,
                "InvalidParameter",
                f"Virtual network {network.id} is in {network.location}; the test failover "
                f"runs in the recovery region {plan.vault.location}.",
                target="properties.networkId",
            )
        with self.cloud.lock:
            self.refuse(plan, "TestFailover", now)
            for item in plan.items:
                allowed = item.allowed_operations
                if allowed is not None and "TestFailover" not in allowed:
                    raise ArmError(
                        409,
                        "ProtectedItemOperationNotAllowed",  # our reading
                        f"Test failover is not allowed on replicated item {item.vm_name} "
                        f"(allowed: {', '.join(allowed) or 'none'}).",
                    )
            job = self.start_test_failover(
                plan, network, now, stuck=req.stuck, correlation=req.correlation_id
            )
        return self.accepted(req, plan, job)

    def start_test_failover(
        self,
        plan: RecoveryPlan,
        network: VirtualNetwork,
        now: datetime,
        *,
        stuck: bool = False,
        correlation: str | None = None,
    ) -> AsrJob:
        """Everything a test failover does, decided now: its job's tasks and its test VMs (none
        when the plan's `testFailoverFails`). `correlation` None: no Event Grid writes (an
        estate's seeded test failover)."""
        b = self.arm.behaviour
        prereq_end = now + timedelta(seconds=PREREQUISITE_SECONDS)
        tasks = [
            Task(
                "TestFailoverPrerequisitesCheck",
                "Prerequisites check for test failover",
                now,
                prereq_end,
            )
        ]
        job = AsrJob(
            id=new_uuid(),
            vault=plan.vault,
            scenario="TestFailover",
            friendly="Test failover",
            plan=plan,
            start=now,
            tasks=tasks,
        )
        if plan.test_failover_fails and plan.items:
            first = plan.items[0]
            job.fails = True
            job.error_code = plan.error_code
            job.error_message = (
                f"The test virtual machine {first.test_vm_name} could not be created in "
                f"{plan.vault.location}."
            )
            tasks.append(
                Task(
                    "CreateTestVm",
                    f"Create the test virtual machine {first.test_vm_name}",
                    prereq_end,
                    prereq_end + timedelta(seconds=b.vm_create_seconds / 2),
                    fails=True,
                )
            )
        else:
            group_start = prereq_end
            for g, group in enumerate(plan.groups, start=1):
                group_end = group_start
                tasks.append(Task(f"Group{g}Start", f"Group {g}: Start", group_start, group_start))
                for item in group.items:
                    test_vm = self.create_test_vm(
                        item, network, now, group_start, stuck, correlation
                    )
                    job.test_vms.append(test_vm)
                    vm = self.cloud.vms[key(test_vm.vm_id)]
                    assert vm.provisioned_at is not None
                    assert vm.running_at is not None
                    tasks.append(
                        Task(
                            "CreateTestVm",
                            f"Create the test virtual machine {vm.name}",
                            group_start,
                            None if stuck else vm.provisioned_at,
                        )
                    )
                    tasks.append(
                        Task(
                            "StartTestVm",
                            f"Start the virtual machine {vm.name}",
                            vm.provisioned_at,
                            None if stuck else vm.running_at,
                        )
                    )
                    group_end = max(group_end, vm.running_at)
                group_start = group_end
        plan.vault.jobs[job.id] = job
        plan.job = job
        plan.test_job = job
        plan.last_test_failover = now
        return job

    def create_test_vm(
        self,
        item: ReplicatedItem,
        network: VirtualNetwork,
        now: datetime,
        start: datetime,
        stuck: bool,
        correlation: str | None,
    ) -> TestVm:
        """The test VM of one item, its NIC in the network given and its disks, in the item's
        target group of the recovery region; created at `start` on the clock (its group's
        turn), then it boots like any VM created through ARM."""
        b = self.arm.behaviour
        vault = item.vault
        target_group = item.target_group_id.split("/")[-1]
        location = vault.location
        vm_id = compute_id(vault.subscription, target_group, "virtualMachines", item.test_vm_name)
        existing = self.cloud.vms.get(key(vm_id))
        if existing is not None:
            raise ArmError(
                409,
                "TestVmAlreadyExists",  # our reading
                f"A virtual machine {existing.name} already exists in {target_group}; clean up "
                "the previous test failover first.",
            )
        disks: list[Disk] = []
        for n, disk_id in enumerate(item.disk_ids):
            source = self.cloud.disks.get(key(disk_id))
            if source is None:
                continue
            name = f"{source.name}-test"
            disk = Disk(
                subscription=vault.subscription,
                group=target_group,
                name=name,
                location=location,
                sku=source.sku,
                size_gb=source.size_gb,
                unique_id=new_uuid(),
                time_created=now,
                os_type=source.os_type if n == 0 else None,
                hyper_v_generation=source.hyper_v_generation,
                security_type=source.security_type,
                create_option="Restore",
                tags={"ASR-ReplicaDisk": "TestFailover"},
            )
            self.cloud.disks[key(disk.id)] = disk
            disks.append(disk)
        if not disks:
            raise ArmError(
                409,
                "ProtectedItemHasNoDisks",  # our reading
                f"Replicated item {item.vm_name} has no managed disks to fail over.",
            )
        settings = item.nics[0] if item.nics else None
        subnet_name = (settings.test_subnet if settings else None) or next(
            iter(network.subnets.values())
        ).name
        subnet = network.subnets.get(subnet_name.lower())
        if subnet is None:
            raise ArmError(
                400,
                "InvalidParameter",
                f"Subnet {subnet_name} of item {item.vm_name} is not in {network.id}.",
                target="properties.networkId",
            )
        subnet_id = self.cloud.network.subnet_id(network, subnet)
        nic = NetworkInterface(
            subscription=vault.subscription,
            group=target_group,
            name=f"{item.vm_name}-nic-0-test",
            location=location,
            kind="networkInterfaces",
            ip_configurations=[
                IpConfiguration(
                    "ipconfig1",
                    subnet_id,
                    self.cloud.network.next_private_ip(subnet, subnet_id),
                    public_ip_id=settings.test_public_ip_id if settings else None,
                )
            ],
            nsg_id=settings.test_nsg_id if settings else None,
        )
        self.cloud.network.add(nic)
        provisioned = start + timedelta(seconds=b.vm_create_seconds)
        running = provisioned + timedelta(seconds=b.boot_seconds)
        if stuck:
            provisioned = running = datetime.max.replace(tzinfo=now.tzinfo)
        vm = VirtualMachine(
            subscription=vault.subscription,
            group=target_group,
            name=item.test_vm_name,
            location=location,
            size=item.vm_size,
            vm_id=new_uuid(),
            time_created=now,
            os_type=item.os_type,
            os_disk_key=key(disks[0].id),
            agent_ready=False,
            tags={"ASR-TestFailover": item.vm_name},
            data_disks=[DataDisk(lun, key(d.id), "None") for lun, d in enumerate(disks[1:])],
            create_option="Attach",
            nic_ids=[nic.id],
            provisioned_at=provisioned,
            running_at=running,
            agent_at=None
            if item.boot_fails or stuck
            else running + timedelta(seconds=b.agent_seconds),
            boot_fails=item.boot_fails,
        )
        for disk in disks:
            disk.managed_by.append(vm.id)
        self.cloud.vms[key(vm.id)] = vm
        if correlation is not None:
            self.arm.events.resource_write(
                vm.id,
                "Microsoft.Compute/virtualMachines/write",
                ASR_PRINCIPAL,
                correlation,
                http_method="PUT-CREATE",
            )
        return TestVm(item, vm.id, nic.id, [d.id for d in disks])

    def test_failover_cleanup(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        plan = self.plan(args)
        now = self.now()
        self.arm.authorize(
            req, f"{_OP}replicationRecoveryPlans/testFailoverCleanup/action", plan.arm_id
        )
        props = req.json_body().get("properties")
        if not isinstance(props, dict) or not isinstance(props.get("comments", ""), str):
            raise ArmError(
                400,
                "InvalidParameter",
                'The body must be {"properties": {"comments": "..."}}.',
                target="properties",
            )
        with self.cloud.lock:
            self.refuse(plan, "TestFailoverCleanup", now)
            tested = plan.test_job
            assert tested is not None
            b = self.arm.behaviour
            prereq_end = now + timedelta(seconds=PREREQUISITE_SECONDS)
            job = AsrJob(
                id=new_uuid(),
                vault=plan.vault,
                scenario="TestFailoverCleanup",
                friendly="Cleanup test failover",
                plan=plan,
                start=now,
                tasks=[
                    Task(
                        "TestFailoverCleanupPrerequisitesCheck",
                        "Prerequisites check for test failover cleanup",
                        now,
                        prereq_end,
                    )
                ],
                comments=str(props.get("comments", "")),
            )
            if plan.cleanup_failures > 0:
                plan.cleanup_failures -= 1
                job.fails = True
                job.error_code = "TestFailoverCleanupFailed"  # our reading
                job.error_message = (
                    f"The test virtual machines of recovery plan {plan.name} could not be deleted."
                )
                job.tasks.append(
                    Task(
                        "DeleteTestVm",
                        "Delete the test virtual machines",
                        prereq_end,
                        prereq_end + timedelta(seconds=b.vm_delete_seconds / 2),
                        fails=True,
                    )
                )
            else:
                end = prereq_end + timedelta(seconds=b.vm_delete_seconds)
                for test_vm in tested.test_vms:
                    self.delete_test_vm(test_vm, None if req.stuck else end)
                    job.tasks.append(
                        Task(
                            "DeleteTestVm",
                            f"Delete the test virtual machine {test_vm.item.test_vm_name}",
                            prereq_end,
                            None if req.stuck else end,
                        )
                    )
            plan.vault.jobs[job.id] = job
            plan.job = job
        return self.accepted(req, plan, job)

    def delete_test_vm(self, test_vm: TestVm, end: datetime | None) -> None:
        """The test VM, its NIC and its disks go when the cleanup ends (None: never)."""
        if end is None:
            return
        vm = self.cloud.vms.get(key(test_vm.vm_id))
        if vm is not None and vm.deleting_at is None:
            vm.deleting_at = end
            self.cloud.pending_deletes[key(vm.id)] = end
        for disk_id in test_vm.disk_ids:
            disk = self.cloud.disks.get(key(disk_id))
            if disk is not None and disk.deleting_at is None:
                disk.deleting_at = end + timedelta(seconds=1)
                self.cloud.pending_deletes[key(disk.id)] = disk.deleting_at
        nic = self.cloud.network.find(test_vm.nic_id)
        if isinstance(nic, NetworkInterface):
            nic.deleting_at = end + timedelta(seconds=1)


def _vault_route(method: str, tail: str, operation: str, handler: str) -> Route:
    return route(method, _VAULT + tail, _OP + operation, handler)


ROUTES: list[Route] = [
    _vault_route(
        "GET", r"/replicationprotecteditems", "replicationProtectedItems/read", "list_items"
    ),
    route(
        "GET",
        _CONTAINER + r"/replicationprotecteditems",
        _OP + "replicationFabrics/replicationProtectionContainers/replicationProtectedItems/read",
        "list_items",
    ),
    route(
        "GET",
        _CONTAINER + r"/replicationprotecteditems/([^/]+)",
        _OP + "replicationFabrics/replicationProtectionContainers/replicationProtectedItems/read",
        "get_item",
    ),
    _vault_route("GET", r"/replicationfabrics", "replicationFabrics/read", "list_fabrics"),
    route("GET", _FABRIC, _OP + "replicationFabrics/read", "get_fabric"),
    route(
        "GET",
        _FABRIC + r"/replicationprotectioncontainers",
        _OP + "replicationFabrics/replicationProtectionContainers/read",
        "list_containers",
    ),
    _vault_route(
        "GET", r"/replicationrecoveryplans", "replicationRecoveryPlans/read", "list_plans"
    ),
    route("GET", _PLAN, _OP + "replicationRecoveryPlans/read", "get_plan"),
    route(
        "POST",
        _PLAN + r"/testfailover",
        _OP + "replicationRecoveryPlans/testFailover/action",
        "test_failover",
    ),
    route(
        "POST",
        _PLAN + r"/testfailovercleanup",
        _OP + "replicationRecoveryPlans/testFailoverCleanup/action",
        "test_failover_cleanup",
    ),
    route(
        "GET",
        _PLAN + r"/operationresults/([^/]+)",
        _OP + "replicationRecoveryPlans/read",
        "operation_result",
    ),
    _vault_route(
        "GET",
        r"/replicationoperationstatus/([^/]+)",
        "replicationOperationStatus/read",
        "operation_status",
    ),
    _vault_route("GET", r"/replicationjobs", "replicationJobs/read", "list_jobs"),
    _vault_route("GET", r"/replicationjobs/([^/]+)", "replicationJobs/read", "get_job"),
]
