"""Azure Site Recovery (Azure-to-Azure) state: vaults, replicated items, recovery plans and the
jobs of their test failovers, read from the estate's `siteRecovery:` key.

Nothing runs on a thread. A test failover decides everything when it starts (which test VMs,
when each group's VMs are created and boot, whether the job fails): its VMs are ordinary
`VirtualMachine`s with their lifecycle on the stand-in clock, and jobs, tasks, plan and item
states are read from the clock when asked. `SiteRecoveryState.settle(now)` folds the effects of
jobs that have ended (a cleaned-up test failover sets `lastSuccessfulTestFailoverTime`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emulator.clock import parse_instant
from emulator.estate import EstateError, duration
from emulator.ids import compute_id, key, network_id, stable_uuid, vault_id
from emulator.model import Cloud, VirtualMachine

PREREQUISITE_SECONDS = 20.0  # "Prerequisites check" task of a test failover or its cleanup
PROTECTION_STATES = {
    "Protected": "Protected",
    "UnprotectedStatesBegin": "Not protected",
    "EnablingProtection": "Enabling protection",
    "ProtectedStatesBegin": "Protected",
    "ResynchronizationPending": "Resynchronization pending",
    "InitialReplicationInProgress": "Initial replication in progress",
}
REPLICATION_HEALTHS = ("Normal", "Warning", "Critical")
TEST_FAILOVER_STATES = {
    "None": "None",
    "InProgress": "Test failover in progress",
    "WaitingForCompletion": "Cleanup test failover pending",
    "Failed": "Test failover failed",
    "CleanupInProgress": "Cleanup test failover in progress",
}
ACTION_KINDS = {
    "script": "ScriptActionDetails",
    "runbook": "AutomationRunbookActionDetails",
    "manual": "ManualActionDetails",
}
FAILOVER_TYPES = ("TestFailover", "PlannedFailover", "UnplannedFailover")
ITEM_OPERATIONS = [
    "PlannedFailover",
    "UnplannedFailover",
    "DisableProtection",
    "TestFailover",
]
PLAN_OPERATIONS = ["PlannedFailover", "UnplannedFailover", "TestFailover"]


@dataclass
class NicSettings:
    """One NIC's test-failover settings (A2A `vmNics[]`): what a test VM's NIC gets."""

    source_nic_id: str
    test_nsg_id: str | None = None
    test_public_ip_id: str | None = None
    test_lb_pool_ids: list[str] = field(default_factory=list)
    reuse_existing_nic: bool = False
    test_subnet: str | None = None


@dataclass
class ReplicatedItem:
    vault: AsrVault
    name: str
    vm_id: str
    vm_name: str
    source_location: str
    os_type: str
    vm_size: str
    target_group_id: str
    recovery_network_id: str | None
    test_network_id: str | None
    protection_state: str = "Protected"
    replication_health: str = "Normal"
    health_errors: list[dict[str, Any]] = field(default_factory=list)
    rpo_seconds: int = 60
    last_test_failover: datetime | None = None
    test_failover_state: str = "None"  # the estate's state when no test failover of ours runs
    agent_version: str = "9.62.7172.1"
    agent_expiry: datetime | None = None
    nics: list[NicSettings] = field(default_factory=list)
    allowed_operations: list[str] | None = None
    boot_fails: bool = False
    disk_ids: list[str] = field(default_factory=list)

    @property
    def container(self) -> str:
        return self.vault.container_name(self.source_location)

    @property
    def fabric(self) -> str:
        return self.vault.fabric_name(self.source_location)

    @property
    def arm_id(self) -> str:
        return (
            f"{self.vault.arm_id}/replicationFabrics/{self.fabric}/replicationProtectionContainers/"
            f"{self.container}/replicationProtectedItems/{self.name}"
        )

    @property
    def test_vm_name(self) -> str:
        return f"{self.vm_name}-test"


@dataclass
class PlanAction:
    name: str
    kind: str  # script, runbook, manual
    failover_types: list[str]
    runbook_id: str | None = None


@dataclass
class PlanGroup:
    items: list[ReplicatedItem]
    start_actions: list[PlanAction] = field(default_factory=list)
    end_actions: list[PlanAction] = field(default_factory=list)


@dataclass
class Task:
    name: str
    friendly: str
    start: datetime
    end: datetime | None  # None: never ends (a stuck operation)
    fails: bool = False


@dataclass
class TestVm:
    """A VM a test failover made, and what it was made of (all deleted by the cleanup)."""

    item: ReplicatedItem
    vm_id: str
    nic_id: str
    disk_ids: list[str]


@dataclass
class AsrJob:
    id: str
    vault: AsrVault
    scenario: str  # TestFailover, TestFailoverCleanup
    friendly: str
    plan: RecoveryPlan
    start: datetime
    tasks: list[Task]
    fails: bool = False
    error_code: str = ""
    error_message: str = ""
    test_vms: list[TestVm] = field(default_factory=list)
    comments: str = ""
    settled: bool = False

    @property
    def arm_id(self) -> str:
        return f"{self.vault.arm_id}/replicationJobs/{self.id}"

    @property
    def end(self) -> datetime | None:
        ends = [t.end for t in self.tasks]
        if any(e is None for e in ends):
            return None
        return max([e for e in ends if e is not None], default=self.start)

    def state(self, now: datetime) -> str:
        end = self.end
        if end is None or now < end:
            return "InProgress"
        return "Failed" if self.fails else "Succeeded"

    def task_state(self, task: Task, now: datetime) -> str:
        if now < task.start:
            return "NotStarted"
        if task.end is None or now < task.end:
            return "InProgress"
        return "Failed" if task.fails else "Succeeded"


@dataclass
class RecoveryPlan:
    vault: AsrVault
    name: str
    groups: list[PlanGroup]
    allowed_operations: list[str] | None = None
    test_failover_fails: bool = False
    error_code: str = "TestFailoverVmCreationFailed"
    cleanup_failures: int = 0  # this many cleanups fail before one succeeds
    job: AsrJob | None = None  # the current scenario
    test_job: AsrJob | None = None  # the test failover not yet cleaned up
    last_test_failover: datetime | None = None
    seeded_test_failover: datetime | None = None  # estate `testFailoverStarted`: never cleaned

    @property
    def arm_id(self) -> str:
        return f"{self.vault.arm_id}/replicationRecoveryPlans/{self.name}"

    @property
    def items(self) -> list[ReplicatedItem]:
        return [item for group in self.groups for item in group.items]


@dataclass
class Operation:
    """An Azure-AsyncOperation record: ends with its job."""

    id: str
    job: AsrJob


@dataclass
class AsrVault:
    subscription: str
    group: str
    name: str
    location: str  # the recovery region
    items: dict[str, ReplicatedItem] = field(default_factory=dict)  # lower name -> item
    plans: dict[str, RecoveryPlan] = field(default_factory=dict)  # lower name -> plan
    jobs: dict[str, AsrJob] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)

    @property
    def arm_id(self) -> str:
        return vault_id(self.subscription, self.group, self.name)

    @staticmethod
    def fabric_name(location: str) -> str:
        return f"asr-a2a-default-{location.lower()}"

    def container_name(self, location: str) -> str:
        return f"{self.fabric_name(location)}-container"

    def fabric_id(self, location: str) -> str:
        return f"{self.arm_id}/replicationFabrics/{self.fabric_name(location)}"

    def container_id(self, location: str) -> str:
        return (
            f"{self.fabric_id(location)}/replicationProtectionContainers/"
            f"{self.container_name(location)}"
        )


class SiteRecoveryState:
    """Every vault's Site Recovery objects; `vault(sub, group, name)` finds one."""

    def __init__(self) -> None:
        self.vaults: dict[str, AsrVault] = {}

    def vault(self, subscription: str, group: str, name: str) -> AsrVault | None:
        return self.vaults.get(f"{subscription}/{group}/{name}".lower())

    def settle(self, cloud: Cloud, now: datetime) -> None:
        """Apply what ended jobs leave behind: a cleanup that succeeded frees the plan and sets
        each item's `lastSuccessfulTestFailoverTime` to when its test failover completed."""
        for vault in self.vaults.values():
            for job in vault.jobs.values():
                end = job.end
                if job.settled or end is None or now < end:
                    continue
                job.settled = True
                plan = job.plan
                if job.scenario == "TestFailoverCleanup" and not job.fails:
                    tested = plan.test_job
                    if tested is not None and not tested.fails and tested.end is not None:
                        for item in plan.items:
                            item.last_test_failover = tested.end
                    plan.test_job = None


# ---- the estate --------------------------------------------------------------------------------
def _when(value: Any, now: datetime, where: str, problems: list[str], *, future: bool) -> Any:
    """An age (`200d`: that long ago; with `future`, that long from now) or an RFC 3339 instant."""
    if value is None:
        return None
    seconds = duration(value)
    if seconds is not None:
        return now + timedelta(seconds=seconds) if future else now - timedelta(seconds=seconds)
    try:
        return parse_instant(str(value))
    except ValueError:
        problems.append(f"{where}: expected an age like 30d or an RFC 3339 instant, got {value!r}")
        return None


def _ref(value: Any, subscription: str, kind: str, namespace: str = "Microsoft.Network") -> str:
    """`group/name` in the vault's subscription, or an id, -> an id."""
    text = str(value)
    if text.startswith("/"):
        return text
    group, _, name = text.partition("/")
    if namespace == "Microsoft.Compute":
        return compute_id(subscription, group, kind, name)
    return network_id(subscription, group, kind, name)


def _operations(raw: Any, where: str, problems: list[str]) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        problems.append(f"{where}.allowedOperations: expected a list of operation names")
        return None
    return list(raw)


def _health_errors(
    raw: Any, where: str, now: datetime, problems: list[str]
) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"{where}.healthErrors: expected a list")
        return []
    found = []
    for k, err in enumerate(raw):
        if not isinstance(err, dict) or not err.get("errorCode"):
            problems.append(f"{where}.healthErrors[{k}]: errorCode is required")
            continue
        found.append(
            {
                "errorCode": str(err["errorCode"]),
                "errorMessage": str(err.get("message", err.get("errorMessage", ""))),
                "summaryMessage": str(err.get("summary", err.get("message", ""))),
                "errorLevel": str(err.get("level", "Error")),
                "errorCategory": str(err.get("category", "Replication")),
                "possibleCauses": str(err.get("possibleCauses", "")),
                "recommendedAction": str(err.get("recommendedAction", "")),
                "creationTimeUtc": _when(
                    err.get("since", "1h"),
                    now,
                    f"{where}.healthErrors[{k}].since",
                    problems,
                    future=False,
                ),
            }
        )
    return found


def _nics(
    raw: Any, vm: VirtualMachine, subscription: str, where: str, problems: list[str]
) -> list[NicSettings]:
    sources = vm.network_interfaces()
    given = raw if isinstance(raw, list) else []
    if raw is not None and not isinstance(raw, list):
        problems.append(f"{where}.nics: expected a list of NIC test-failover settings")
    if len(given) > len(sources):
        problems.append(
            f"{where}.nics: {len(given)} entries, but {vm.name} has {len(sources)} NICs"
        )
    found = []
    for n, source in enumerate(sources):
        entry = given[n] if n < len(given) and isinstance(given[n], dict) else {}
        pools = entry.get("testLbPools") or []
        if not isinstance(pools, list):
            problems.append(f"{where}.nics[{n}].testLbPools: expected a list of pool ids")
            pools = []
        found.append(
            NicSettings(
                source_nic_id=source,
                test_nsg_id=_ref(entry["testNsg"], subscription, "networkSecurityGroups")
                if entry.get("testNsg")
                else None,
                test_public_ip_id=_ref(entry["testPublicIp"], subscription, "publicIPAddresses")
                if entry.get("testPublicIp")
                else None,
                test_lb_pool_ids=[str(p) for p in pools],
                reuse_existing_nic=bool(entry.get("reuseExistingNic", False)),
                test_subnet=str(entry["testSubnet"]) if entry.get("testSubnet") else None,
            )
        )
    return found


def _actions(raw: Any, where: str, problems: list[str]) -> list[PlanAction]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"{where}: expected a list of actions")
        return []
    found = []
    for a, action in enumerate(raw):
        here = f"{where}[{a}]"
        if not isinstance(action, dict) or not action.get("name"):
            problems.append(f"{here}: name is required")
            continue
        kind = str(action.get("type", "")).lower()
        if kind not in ACTION_KINDS:
            problems.append(f"{here}.type: must be script, runbook or manual, got {kind!r}")
            continue
        types = action.get("failoverTypes", list(FAILOVER_TYPES))
        if not isinstance(types, list) or not set(types) <= set(FAILOVER_TYPES):
            problems.append(f"{here}.failoverTypes: a list of {', '.join(FAILOVER_TYPES)}")
            continue
        found.append(PlanAction(str(action["name"]), kind, list(types), action.get("runbookId")))
    return found


def load_site_recovery(
    state: SiteRecoveryState, cloud: Cloud, raw_vaults: Any, now: datetime
) -> None:
    """The estate's `siteRecovery:` (emulator/README.md, "Site Recovery"); every problem at once,
    each naming its path."""
    if raw_vaults is None:
        return
    problems: list[str] = []
    if not isinstance(raw_vaults, list):
        raise EstateError("siteRecovery: expected a list of vaults")
    subs = list(cloud.subscriptions)
    for i, raw in enumerate(raw_vaults):
        where = f"siteRecovery[{i}]"
        if not isinstance(raw, dict) or not raw.get("vault") or not raw.get("resourceGroup"):
            problems.append(f"{where}: vault and resourceGroup are required")
            continue
        sub = str(raw.get("subscription") or (subs[0] if subs else "")).lower()
        group = cloud.group(sub, str(raw["resourceGroup"]))
        if group is None:
            problems.append(f"{where}.resourceGroup: {raw['resourceGroup']!r} is not declared")
            continue
        vault = AsrVault(
            sub, group.name, str(raw["vault"]), str(raw.get("location", group.location))
        )
        state.vaults[f"{sub}/{group.name}/{vault.name}".lower()] = vault
        for j, it in enumerate(raw.get("items") or []):
            _load_item(vault, cloud, it, f"{where}.items[{j}]", now, problems)
        for p, rp in enumerate(raw.get("plans") or []):
            _load_plan(vault, rp, f"{where}.plans[{p}]", now, problems)
    if problems:
        raise EstateError("\n".join(problems))


def _load_item(
    vault: AsrVault, cloud: Cloud, it: Any, where: str, now: datetime, problems: list[str]
) -> None:
    if not isinstance(it, dict) or not it.get("vm"):
        problems.append(f"{where}: vm is required (group/name or a VM id)")
        return
    vm_id = _ref(it["vm"], vault.subscription, "virtualMachines", "Microsoft.Compute")
    vm = cloud.vms.get(key(vm_id))
    if vm is None:
        problems.append(f"{where}.vm: no VM {it['vm']!r} in the estate")
        return
    if vm.location.lower() == vault.location.lower():
        problems.append(
            f"{where}.vm: {vm.name} is in {vm.location}, the vault's recovery region; A2A "
            "replicates to another region"
        )
    target = str(it.get("targetResourceGroup") or "")
    target_group = cloud.group(vault.subscription, target) if target else None
    if target_group is None:
        problems.append(
            f"{where}.targetResourceGroup: {target!r} is not declared in the vault's subscription"
        )
        return
    state_name = str(it.get("protectionState", "Protected"))
    if state_name not in PROTECTION_STATES:
        problems.append(
            f"{where}.protectionState: one of {', '.join(PROTECTION_STATES)}, got {state_name!r}"
        )
    health = str(it.get("replicationHealth", "Normal"))
    if health not in REPLICATION_HEALTHS:
        problems.append(
            f"{where}.replicationHealth: one of {', '.join(REPLICATION_HEALTHS)}, got {health!r}"
        )
    tfo_state = str(it.get("testFailoverState", "None"))
    if tfo_state not in TEST_FAILOVER_STATES:
        problems.append(
            f"{where}.testFailoverState: one of {', '.join(TEST_FAILOVER_STATES)}, "
            f"got {tfo_state!r}"
        )
    try:
        rpo = int(it.get("rpoInSeconds", 60))
    except (TypeError, ValueError):
        problems.append(
            f"{where}.rpoInSeconds: expected whole seconds, got {it.get('rpoInSeconds')!r}"
        )
        rpo = 60
    networks = {}
    for name in ("recoveryNetwork", "testNetwork"):
        value = it.get(name)
        networks[name] = _ref(value, vault.subscription, "virtualNetworks") if value else None
        found = cloud.network.find(networks[name]) if value else None
        if value and found is None:
            problems.append(f"{where}.{name}: no virtual network {value!r} in the estate")
        elif found is not None and found.location.lower() != vault.location.lower():
            problems.append(
                f"{where}.{name}: {found.name} is in {found.location}, not the recovery region "
                f"{vault.location}"
            )
    item = ReplicatedItem(
        vault=vault,
        name=str(it.get("name") or stable_uuid("asr-item", vm.id)),
        vm_id=vm.id,
        vm_name=vm.name,
        source_location=vm.location,
        os_type=vm.os_type,
        vm_size=vm.size,
        target_group_id=target_group.id,
        recovery_network_id=networks["recoveryNetwork"],
        test_network_id=networks["testNetwork"],
        protection_state=state_name,
        replication_health=health,
        health_errors=_health_errors(it.get("healthErrors"), where, now, problems),
        rpo_seconds=rpo,
        last_test_failover=_when(
            it.get("lastSuccessfulTestFailoverTime"),
            now,
            f"{where}.lastSuccessfulTestFailoverTime",
            problems,
            future=False,
        ),
        test_failover_state=tfo_state,
        agent_version=str(it.get("agentVersion", "9.62.7172.1")),
        agent_expiry=_when(
            it.get("agentExpiresIn", "180d"), now, f"{where}.agentExpiresIn", problems, future=True
        ),
        nics=_nics(it.get("nics"), vm, vault.subscription, where, problems),
        allowed_operations=_operations(it.get("allowedOperations"), where, problems),
        boot_fails=bool(it.get("bootFails", False)),
        disk_ids=[cloud.disks[k].id for k in vm.managed_disk_keys() if k in cloud.disks],
    )
    if any(i.vm_id.lower() == vm.id.lower() for i in vault.items.values()):
        problems.append(f"{where}.vm: {vm.name} is already replicated by this vault")
        return
    vault.items[item.name.lower()] = item


def _load_plan(vault: AsrVault, rp: Any, where: str, now: datetime, problems: list[str]) -> None:
    if not isinstance(rp, dict) or not rp.get("name"):
        problems.append(f"{where}: name is required")
        return
    by_vm = {i.vm_name.lower(): i for i in vault.items.values()}
    by_vm.update({i.vm_id.lower(): i for i in vault.items.values()})
    groups = []
    raw_groups = rp.get("groups") or []
    if not isinstance(raw_groups, list) or not raw_groups:
        problems.append(f"{where}.groups: at least one group of VMs is required")
        raw_groups = []
    for g, raw_group in enumerate(raw_groups):
        here = f"{where}.groups[{g}]"
        if not isinstance(raw_group, dict):
            problems.append(f"{here}: expected {{vms: [...], start: [...], end: [...]}}")
            continue
        members = []
        for v, ref in enumerate(raw_group.get("vms") or []):
            text = str(ref).lower()
            item = by_vm.get(text) or by_vm.get(text.rpartition("/")[2])
            if item is None:
                problems.append(f"{here}.vms[{v}]: {ref!r} is not replicated by {vault.name}")
                continue
            members.append(item)
        groups.append(
            PlanGroup(
                members,
                _actions(raw_group.get("start"), f"{here}.start", problems),
                _actions(raw_group.get("end"), f"{here}.end", problems),
            )
        )
    try:
        cleanup_failures = int(rp.get("cleanupFailures", 0))
    except (TypeError, ValueError):
        problems.append(f"{where}.cleanupFailures: expected a count")
        cleanup_failures = 0
    plan = RecoveryPlan(
        vault=vault,
        name=str(rp["name"]),
        groups=groups,
        allowed_operations=_operations(rp.get("allowedOperations"), where, problems),
        test_failover_fails=bool(rp.get("testFailoverFails", False)),
        error_code=str(rp.get("errorCode", "TestFailoverVmCreationFailed")),
        cleanup_failures=cleanup_failures,
        seeded_test_failover=_when(
            rp.get("testFailoverStarted"),
            now,
            f"{where}.testFailoverStarted",
            problems,
            future=False,
        ),
    )
    if plan.seeded_test_failover is not None:
        if not plan.items or not all(i.test_network_id for i in plan.items):
            problems.append(
                f"{where}.testFailoverStarted: every VM of the plan needs a testNetwork"
            )
            plan.seeded_test_failover = None
        elif plan.test_failover_fails:
            problems.append(f"{where}.testFailoverStarted: not with testFailoverFails")
            plan.seeded_test_failover = None
    vault.plans[plan.name.lower()] = plan
