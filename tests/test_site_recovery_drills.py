"""Site-recovery drills (test failovers of recovery plans) on in-memory ports: the refusals
before the POST, the job followed by re-enqueued steps, every test VM checked, RTO per group,
the cleanup retried then reported, a plan still waiting for cleanup never started again."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import dispatch
from shared.drills.failover import start_failover_drill_now
from shared.messages import DrillState, encode, make_envelope
from shared.model import Outcome, Vault
from shared.names import Timer
from shared.policies import parse_policies
from shared.ports import (
    PlanAction,
    PlanGroup,
    RecoveryPlan,
    ReplicatedItem,
    SiteRecoveryJob,
)
from shared.ports import TestFailoverNic as Nic
from shared.ports import TestFailoverRequest as FailoverRequest
from tests.builders import SUB, night
from tests.conftest import base_settings
from tests.drill_fakes import (
    DRILL_GROUP,
    Fake,
    FakeDrillCloud,
    SimHost,
    SimQueues,
    TaggingCompute,
    operator_network,
)
from tests.fakes import FakeWorld, FixedClock

VAULT = Vault(
    f"/Subscriptions/{SUB}/resourceGroups/rg-asr/providers/Microsoft.RecoveryServices/vaults/rsv",
    "rsv",
    SUB,
    "rg-asr",
    "westeurope",
)
PLAN_ID = f"{VAULT.id}/replicationRecoveryPlans/rp-web"
NETWORK = (
    f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}/providers/Microsoft.Network/"
    "virtualNetworks/vnet-drill"
)
TARGET = f"/subscriptions/{SUB}/resourceGroups/rg-app-asr"
POLICIES = parse_policies(
    {"version": 1, "policies": {"daily": {"retention": {"daily": 7}}}, "drillPlans": {}}
)


@dataclass
class FakeJob:
    id: str
    scenario: str
    start: datetime
    end: datetime
    fails: bool = False
    error: str = ""


@dataclass
class FakePlan:
    """What the fake Site Recovery keeps of the plan `rp-web` (two boot groups)."""

    items: list[ReplicatedItem]
    groups: list[list[str]]
    actions: list[PlanAction] = field(default_factory=list)
    allowed: tuple[str, ...] = ("PlannedFailover", "UnplannedFailover", "TestFailover")
    job: FakeJob | None = None
    waiting: bool = False  # a test failover waits for its cleanup
    fails: bool = False  # the test failover job fails
    cleanup_failures: int = 0


class FakeSiteRecovery:
    """Site Recovery in memory: a test failover makes each item's test VM in the drill cloud
    (booting on the clock), its job ends after `job_seconds`; cleanup deletes them."""

    def __init__(self, clock: FixedClock, cloud: FakeDrillCloud, plan: FakePlan) -> None:
        self.clock = clock
        self.cloud = cloud
        self.plan = plan
        self.jobs: dict[str, FakeJob] = {}
        self.posts: list[tuple[str, Any]] = []
        self.boot_fails: set[str] = set()
        self.job_seconds = 300
        self.usages = [("cores", 10, 100), ("virtualMachines", 2, 50)]

    def _settle(self) -> None:
        job = self.plan.job
        if job is None or self.clock.now() < job.end or job.fails:
            return
        if job.scenario == "TestFailoverCleanup" and self.plan.waiting:
            self.plan.waiting = False
            for item in self.plan.items:
                self.cloud.resources.pop(_test_vm(item).lower(), None)

    def _rest_plan(self) -> RecoveryPlan:
        self._settle()
        job, now = self.plan.job, self.clock.now()
        allowed: tuple[str, ...] = self.plan.allowed
        status = None
        if job is not None and now < job.end:
            allowed, status = (), "InProgress"
        elif self.plan.waiting:
            allowed = ("TestFailoverCleanup",)
            status = "Failed" if job is not None and job.fails else "Suspended"
        by_name = {i.name: i.id for i in self.plan.items}
        return RecoveryPlan(
            id=PLAN_ID,
            vault_id=VAULT.id,
            name="rp-web",
            item_ids=tuple(i.id for i in self.plan.items),
            scenario=job.scenario if job else None,
            scenario_status=status,
            scenario_started=job.start if job else None,
            allowed_operations=allowed,
            groups=tuple(
                PlanGroup(tuple(by_name[n] for n in g), tuple(self.plan.actions) if k == 0 else ())
                for k, g in enumerate(self.plan.groups)
            ),
            job_id=job.id if job else None,
        )

    def list_replicated_items(self, vault: Vault) -> list[ReplicatedItem]:
        return list(self.plan.items)

    def list_recovery_plans(self, vault: Vault) -> list[RecoveryPlan]:
        return [self._rest_plan()]

    def get_recovery_plan(self, plan_id: str) -> RecoveryPlan | None:
        return self._rest_plan()

    def _job(self, scenario: str, seconds: float, fails: bool = False, error: str = "") -> FakeJob:
        now = self.clock.now()
        job = FakeJob(
            f"job-{len(self.jobs) + 1}",
            scenario,
            now,
            now + timedelta(seconds=seconds),
            fails,
            error,
        )
        self.jobs[job.id] = job
        self.plan.job = job
        return job

    def begin_test_failover(self, plan_id: str, request: FailoverRequest) -> None:
        plan = self._rest_plan()
        assert "TestFailover" in plan.allowed_operations, plan
        self.posts.append(("testFailover", request))
        self._job(
            "TestFailover", self.job_seconds, self.plan.fails, "TestFailoverVmCreationFailed: no"
        )
        self.plan.waiting = True
        if self.plan.fails:
            return
        for item in self.plan.items:
            vm_id = _test_vm(item)
            self.cloud.resources[vm_id.lower()] = Fake(
                vm_id,
                "virtualMachines",
                {},
                "westeurope",
                self.clock.now() + timedelta(seconds=self.job_seconds - 60),
                props={"boot_fails": item.name in self.boot_fails, "data_disks": item.disks - 1},
            )

    def begin_test_failover_cleanup(self, plan_id: str, comments: str) -> None:
        plan = self._rest_plan()
        assert "TestFailoverCleanup" in plan.allowed_operations, plan
        self.posts.append(("testFailoverCleanup", comments))
        fails = self.plan.cleanup_failures > 0
        self.plan.cleanup_failures -= 1
        self._job("TestFailoverCleanup", 120, fails, "TestFailoverCleanupFailed: busy")

    def get_job(self, vault_id: str, job_id: str) -> SiteRecoveryJob | None:
        self._settle()
        job = self.jobs.get(job_id)
        if job is None:
            return None
        done = self.clock.now() >= job.end
        state = "InProgress" if not done else ("Failed" if job.fails else "Succeeded")
        return SiteRecoveryJob(
            job.id,
            state,
            job.scenario,
            job.start,
            job.end if done else None,
            (job.error,) if done and job.fails else (),
        )

    def list_usages(self, subscription_id: str, location: str) -> list[tuple[str, int, int]]:
        return list(self.usages)


class FakeVaults:
    def list_vaults(self, subscription_id: str) -> list[Vault]:
        return [VAULT] if subscription_id.lower() == SUB.lower() else []


def _test_vm(item: ReplicatedItem) -> str:
    return f"{TARGET}/providers/Microsoft.Compute/virtualMachines/{item.test_vm_name}"


def item(name: str, **changes: Any) -> ReplicatedItem:
    base = ReplicatedItem(
        id=f"{VAULT.id}/replicationFabrics/f/replicationProtectionContainers/c/"
        f"replicationProtectedItems/{name}-item",
        vault_id=VAULT.id,
        name=name,
        vm_id=f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}",
        provider="A2A",
        protection_state="Protected",
        replication_health="Normal",
        rpo_seconds=90,
        allowed_operations=("PlannedFailover", "TestFailover"),
        recovery_group_id=TARGET,
        recovery_vm_size="Standard_D2s_v5",
        test_vm_name=f"{name}-test",
        test_network_id=NETWORK,
        test_nics=(Nic(NETWORK, "snet"),),
        disks=2,
    )
    return dataclasses.replace(base, **changes)


class World(FakeWorld):
    def __init__(self, items: list[ReplicatedItem] | None = None, **settings: str) -> None:
        clock = FixedClock(night(27, 4))
        self.cloud = FakeDrillCloud(clock)
        self.cloud.groups[SUB] = ["rg-app", DRILL_GROUP, "rg-app-asr"]
        self.cloud.networks[f"{NETWORK}/subnets/snet".lower()] = operator_network()
        values = base_settings(
            DRILL_POLL_SECONDS="30",
            SITE_RECOVERY_DRILLS="true",
        )
        values.update(settings)
        queues = SimQueues(clock)
        members = items if items is not None else [item("vm-db"), item("vm-web")]
        self.plan = FakePlan(members, [[members[0].name], [m.name for m in members[1:]]])
        self.asr = FakeSiteRecovery(clock, self.cloud, self.plan)
        super().__init__(
            clock,
            queues,
            values,
            POLICIES,
            drills=self.cloud,
            site_recovery=self.asr,
            backup=FakeVaults(),
        )
        self.compute = TaggingCompute(clock)
        self.compute.cloud = self.cloud
        self.rt = dataclasses.replace(self.rt, compute=self.compute)
        self.host = SimHost(self.rt, self.queues)
        self.tagged: dict[str, dict[str, str]] = {}  # test VM -> the tags it had at the end

        def seen(name: str) -> None:  # the tags each test VM carries while it lives
            for fake in self.cloud.resources.values():
                if fake.kind == "virtualMachines":
                    self.tagged[fake.id.rsplit("/", 1)[1]] = dict(fake.tags)

        self.cloud.fail = seen

    def drill(self) -> Outcome:
        state = start_failover_drill_now(self.rt, "rp-web")
        self.host.drain()
        rows = [o for o in self.reporter.outcomes if o.operation == "drill"]
        assert len({o.id for o in rows}) == 1, rows
        assert rows[0].details["drillId"] == state.drill_id
        return rows[0]


def test_a_plan_test_failover_boots_every_vm_measures_each_group_and_is_cleaned_up() -> None:
    world = World()
    row = world.drill()
    assert row.status == "succeeded", row.reason
    d = row.details
    assert d["source"] == "site-recovery"
    assert d["recoveryPlan"] == "rp-web"
    assert d["failoverJobId"] == "job-1"
    assert d["cleanupJobIds"] == ["job-2"]
    assert d["cleanupStatus"] == "succeeded"
    assert [vm["validation"] for vm in d["vms"]] == ["passed", "passed"]
    assert [vm["bootGroup"] for vm in d["vms"]] == [1, 2]
    groups = d["groupRtoSeconds"]
    assert len(groups) == 2
    assert all(isinstance(g, int) for g in groups)
    assert row.rto_seconds == max(groups)
    assert row.rto_seconds > 0
    assert row.rpo_seconds == 90
    kind, request = world.asr.posts[0]
    assert kind == "testFailover"
    assert request == FailoverRequest(NETWORK, "LatestProcessed", multi_vm_sync=True)
    kind, comment = world.asr.posts[1]
    assert kind == "testFailoverCleanup"
    assert d["drillId"] in comment
    assert len(world.asr.posts) == 2
    assert not world.cloud.resources  # the test VMs are gone (cleanup, never a delete)
    assert not any(c[0] == "begin_delete" for c in world.cloud.calls)
    # Each test VM was tagged as the drill's when the job ended (not lifeboat:managed: Site
    # Recovery's cleanup removes it), in a recovery group that is no drill group.
    assert sorted(world.tagged) == ["vm-db-test", "vm-web-test"]
    for tags in world.tagged.values():
        assert tags["lifeboat:drill"] == d["drillId"]
        assert "lifeboat:expires" in tags
        assert "lifeboat:managed" not in tags
    assert "rg-app-asr" not in world.rt.settings.drill_groups


def test_a_test_vm_that_cannot_be_tagged_fails_the_drill_and_is_still_cleaned_up() -> None:
    world = World()
    vm_id = f"{TARGET}/providers/Microsoft.Compute/virtualMachines/vm-web-test"
    world.compute.refuse[vm_id.lower()] = "AuthorizationFailed"
    row = world.drill()
    assert row.status == "failed"
    assert "vm-web-test could not be tagged" in (row.reason or "")
    assert "tags/write on rg-app-asr" in (row.reason or "")
    assert row.details["cleanupStatus"] == "succeeded"
    assert not world.cloud.resources


def test_a_test_vm_that_never_boots_fails_the_drill_and_it_is_still_cleaned_up() -> None:
    world = World(DRILL_RESOURCE_GROUPS="rg-app-asr")
    world.asr.boot_fails.add("vm-web")
    row = world.drill()
    assert row.status == "failed"
    assert "vm-web-test" in (row.reason or "")
    assert [vm["validation"].split(":")[0] for vm in row.details["vms"]] == ["passed", "failed"]
    assert row.details["groupRtoSeconds"][1] is None
    assert row.rto_seconds is None
    assert row.details["cleanupStatus"] == "succeeded"
    assert not world.cloud.resources


def test_a_failed_test_failover_job_fails_the_drill_and_cleans_up() -> None:
    world = World()
    world.plan.fails = True
    row = world.drill()
    assert row.status == "failed"
    assert "TestFailoverVmCreationFailed" in (row.reason or "")
    assert row.details["failoverJobState"] == "Failed"
    assert row.details["cleanupStatus"] == "succeeded"


def test_a_cleanup_that_fails_is_retried_then_succeeds() -> None:
    world = World()
    world.plan.cleanup_failures = 1
    row = world.drill()
    assert row.status == "succeeded", row.reason
    assert row.details["cleanupAttempts"] == 2
    assert row.details["cleanupJobIds"] == ["job-2", "job-3"]
    assert not world.cloud.resources


def test_a_cleanup_that_keeps_failing_is_reported_and_the_drill_fails() -> None:
    world = World(SITE_RECOVERY_CLEANUP_ATTEMPTS="2")
    world.plan.cleanup_failures = 5
    row = world.drill()
    assert row.status == "failed"
    assert row.details["cleanupStatus"] == "failed"
    assert row.details["cleanupAttempts"] == 2
    assert "TestFailoverCleanupFailed" in (row.reason or "")
    assert "left running" in (row.reason or "")
    assert world.cloud.resources  # left for the sweeper


def test_a_plan_still_waiting_for_cleanup_is_not_started_again() -> None:
    world = World()
    world.plan.waiting = True
    world.plan.job = FakeJob(
        "old",
        "TestFailover",
        world.clock.now() - timedelta(hours=30),
        world.clock.now() - timedelta(hours=29),
    )
    row = world.drill()
    assert row.status == "skipped"
    assert "waits for the cleanup" in (row.reason or "")
    assert world.asr.posts == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            {"test_nics": (Nic(NETWORK, "snet", nsg_id="/x/nsg"),)},
            "network security group",
        ),
        (
            {"test_nics": (Nic(NETWORK, "snet", public_ip_ids=("/x/pip",)),)},
            "public IP",
        ),
        (
            {"test_nics": (Nic(NETWORK, "snet", lb_pool_ids=("/x/pool",)),)},
            "load-balancer",
        ),
        ({"test_nics": (Nic(NETWORK, "snet", reuse_existing_nic=True),)}, "reuses"),
        ({"allowed_operations": ("PlannedFailover",)}, "does not allow TestFailover"),
        ({"recovery_group_id": None}, "names no recovery resource group"),
        (
            {
                "test_network_id": f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/"
                "Microsoft.Network/virtualNetworks/vnet-prod"
            },
            "networks differ",
        ),
    ],
)
def test_items_whose_test_failover_could_escape_are_refused_before_the_post(
    change: dict[str, Any], words: str
) -> None:
    world = World([item("vm-db"), item("vm-web", **change)])
    row = world.drill()
    assert row.status in ("failed", "skipped")
    assert words in (row.reason or ""), row.reason
    assert world.asr.posts == []


def test_a_network_outside_the_drill_group_or_not_isolated_is_refused() -> None:
    other = (
        f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/v"
    )
    world = World([item("vm-db", test_network_id=other, test_nics=(Nic(other, "s"),))])
    row = world.drill()
    assert "not in a drill resource group" in (row.reason or "")
    world = World()
    world.cloud.networks[f"{NETWORK}/subnets/snet".lower()] = operator_network(
        peerings=(
            "/subscriptions/x/resourceGroups/hub/providers/Microsoft.Network/virtualNetworks/hub",
        )
    )
    row = world.drill()
    assert row.status == "failed"
    assert "isolation" in (row.reason or "")
    assert world.asr.posts == []


def test_script_runbook_and_manual_actions_need_the_allow_list() -> None:
    world = World()
    world.plan.actions = [PlanAction("check-dns", "manual", ("TestFailover", "PlannedFailover"))]
    row = world.drill()
    assert row.status == "failed"
    assert "check-dns" in (row.reason or "")
    assert world.asr.posts == []
    allowed = World(SITE_RECOVERY_ALLOWED_ACTIONS="check-dns")
    allowed.plan.actions = list(world.plan.actions)
    assert allowed.drill().status == "succeeded"
    planned_only = World()
    planned_only.plan.actions = [PlanAction("stop-writes", "script", ("PlannedFailover",))]
    assert planned_only.drill().status == "succeeded"


def test_the_quota_of_the_recovery_region_must_hold_the_test_vms() -> None:
    world = World()
    world.asr.usages = [("cores", 98, 100)]
    row = world.drill()
    assert row.status == "skipped"
    assert "quota" in (row.reason or "")
    assert world.asr.posts == []


def test_a_redelivered_failover_step_follows_the_job_it_posted() -> None:
    from shared.drills.failover import STEPS

    world = World()
    state = start_failover_drill_now(world.rt, "rp-web")
    ctx = dispatch.Context(world.rt, dispatch.Job.DRILL, "r", "k")
    prepared = STEPS["prepare"](ctx, state, world.clock.now())
    at_failover = prepared.messages[0].payload  # type: ignore[union-attr]
    assert isinstance(at_failover, DrillState)
    assert at_failover.step == "failover"
    first = STEPS["failover"](ctx, at_failover, world.clock.now())
    world.clock.advance(seconds=5)
    again = STEPS["failover"](ctx, at_failover, world.clock.now())  # the same message again
    assert [k for k, _ in world.asr.posts] == ["testFailover"]
    for result in (first, again):
        if result.messages[0].payload.failover.job_id is not None:  # type: ignore[union-attr]
            assert result.messages[0].payload.failover.job_id == "job-1"  # type: ignore[union-attr]
    assert again.messages[0].payload.failover.job_id == "job-1"  # type: ignore[union-attr]


def test_off_by_default_and_the_largest_drill_message_fits_a_queue_message() -> None:
    world = World(SITE_RECOVERY_DRILLS="false")
    with pytest.raises(ValueError, match="SITE_RECOVERY_DRILLS"):
        start_failover_drill_now(world.rt, "rp-web")
    many = [item(f"vm-{n:02d}-{'x' * 60}"[:80]) for n in range(50)]
    world = World(many)
    state = start_failover_drill_now(world.rt, "rp-web")
    from shared.drills.failover import STEPS

    ctx = dispatch.Context(world.rt, dispatch.Job.DRILL, "r", "k")
    result = STEPS["prepare"](ctx, state, world.clock.now())
    sent = result.messages[0].payload  # type: ignore[union-attr]
    assert isinstance(sent, DrillState)
    assert len(sent.failover.vms) == 50
    text = encode(make_envelope(sent, run_id="r", idempotency_key="k", created=world.clock.now()))
    assert len(text) < 64 * 1024


def test_scheduled_drills_pick_plans_by_rotation() -> None:
    from shared.drills.failover import failover_starts
    from shared.drills.planning import is_due

    world = World()
    ctx = dispatch.Context(world.rt, dispatch.Job.DRILL, "r", "k")
    first = world.clock.now() + timedelta(days=1)
    slots = [(first + timedelta(days=d)).strftime("%Y%m%d%H%M") for d in range(30)]
    due = [s for s in slots if failover_starts(ctx, SUB, s, world.clock.now(), 0, 2)]
    assert len(due) == 1  # every 30 days, on a day of its own
    assert is_due(PLAN_ID, 30, due[0])
    # The drill plan's run starts it with the VMs' drills; off, it is not planned.
    world.clock.set(datetime.strptime(due[0], "%Y%m%d%H%M").replace(tzinfo=UTC))
    dispatch.fire(world.rt, Timer.DRILL)
    world.host.drain()
    (plan_row,) = [o for o in world.reporter.outcomes if o.operation == "plan"]
    assert plan_row.count == 1
    assert world.asr.posts[0][0] == "testFailover"
    off = World(SITE_RECOVERY_DRILLS="false")
    assert (
        failover_starts(
            dispatch.Context(off.rt, dispatch.Job.DRILL, "r", "k"),
            SUB,
            due[0],
            off.clock.now(),
            0,
            2,
        )
        == []
    )


def test_the_sweeper_cleans_up_a_forgotten_test_failover_through_site_recovery() -> None:
    world = World()
    world.plan.waiting = True
    long_ago = world.clock.now() - timedelta(hours=30)
    world.plan.job = FakeJob("old", "TestFailover", long_ago, long_ago + timedelta(minutes=10))
    dispatch.fire(world.rt, Timer.SWEEPER)
    world.host.drain()
    (row,) = {
        o.id: o for o in world.reporter.outcomes if o.operation == "sweep" and o.status != "planned"
    }.values()
    assert row.status == "succeeded", row.reason
    assert row.details["cleanupStatus"] == "succeeded"
    assert [k for k, _ in world.asr.posts] == ["testFailoverCleanup"]
    assert "Lifeboat drill" in world.asr.posts[0][1]
    assert not world.plan.waiting
    assert not any(c[0] == "begin_delete" for c in world.cloud.calls)


def test_the_sweeper_leaves_recent_and_foreign_test_failovers_alone() -> None:
    world = World()
    world.plan.waiting = True
    recent = world.clock.now() - timedelta(hours=1)
    world.plan.job = FakeJob("old", "TestFailover", recent, recent + timedelta(minutes=10))
    dispatch.fire(world.rt, Timer.SWEEPER)
    world.host.drain()
    assert world.asr.posts == []
    other = (
        f"/subscriptions/{SUB}/resourceGroups/rg-net/providers/Microsoft.Network/virtualNetworks/v"
    )
    foreign = World([item("vm-db", test_network_id=other)])
    foreign.plan.waiting = True
    foreign.plan.job = FakeJob("old", "TestFailover", recent - timedelta(days=2), recent)
    dispatch.fire(foreign.rt, Timer.SWEEPER)
    foreign.host.drain()
    assert foreign.asr.posts == []


def test_drill_list_shows_a_running_test_failover_with_its_tagged_test_vms() -> None:
    from cli.drill_cmd import running_drills

    world = World()
    state = start_failover_drill_now(world.rt, "rp-web")
    world.host.drain(until=world.clock.now() + timedelta(seconds=420))  # the job has ended
    [drill] = running_drills(world.rt)
    assert drill["drillId"] == state.drill_id
    assert drill["source"] == "site-recovery"
    assert drill["recoveryPlan"] == "rp-web"
    assert drill["resourceGroup"] == "rg-app-asr"
    assert drill["resources"] == {"virtualMachines": ["vm-db-test", "vm-web-test"]}
    assert drill["expiresAt"] is not None
    assert drill["expired"] is False
    world.host.drain()
    assert running_drills(world.rt) == []  # cleaned up
