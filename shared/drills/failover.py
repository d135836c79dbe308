"""A site-recovery drill: a test failover of an Azure Site Recovery recovery plan, measured and
cleaned up by the drill step machine.

    prepare (the plan, its items, the network, quota) -> failover (testFailover; its job)
      -> wait-ready (every test VM) -> validate -> measure -> teardown (testFailoverCleanup)
      -> report

Site Recovery makes the test VMs itself, in each item's recovery resource group, with the NIC
settings of the item; Lifeboat chooses only the network (`VmNetworkAsInput`). So before the
POST the drill refuses what could let a test VM out of it: a network that is not a Lifeboat drill
network of the recovery region (the drill group's, and it passes the isolation checks on a fresh
read), a test-failover NSG, public IP, load-balancer pool or reused NIC on any item, and script,
runbook or manual actions that run in a test failover unless SITE_RECOVERY_ALLOWED_ACTIONS names
them. It starts
only when the plan and every item allow `TestFailover`, and the recovery region's Compute quota
holds the test VMs. A plan still waiting for the cleanup of an earlier test failover is never
started again (the drill is `skipped`, saying so; the sweeper cleans that one up).

The recovery group need not be a drill group: Azure-to-Azure fails over, for a test or for real,
into the same target group, and a drill group there would keep a real failover's VMs out of
Lifeboat too. Instead each test VM is tagged as the drill's (`lifeboat:drill` with the drill's
id, its expiry and run; never `lifeboat:managed`: Site Recovery's cleanup removes it, never a
Lifeboat delete) the moment the test failover job ends; onboarding, the nightly plan and the
drill planner skip VMs so tagged, and onboarding skips a new VM whose primary NIC is on a drill
network (the time between the test VM's creation and its tag).

The POST is made once: a redelivered step finds the test failover it started in the plan's
current scenario (started since the drill began) and follows that job. Test VMs are checked
with the drill's wait-ready and validate checks; RTO is measured per boot group (from the POST
to its last VM ready) and in total. Teardown is `testFailoverCleanup` with a comment naming the
drill, never a delete; a failed cleanup is tried again up to SITE_RECOVERY_CLEANUP_ATTEMPTS
times, then the drill fails saying the test failover is left (the drill-failed alert fires; the
sweeper tries again once the drill's window has passed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

from shared.dispatch import Context, Done, Result
from shared.drills.planning import drill_id_of, run_id_of
from shared.isolation import isolation_problems
from shared.messages import FAILOVER_MAX_VMS, DrillFailover, DrillFailoverVm, DrillState
from shared.model import Vault, format_time
from shared.names import Status, Tag
from shared.policies import DrillPlan
from shared.ports import RecoveryPlan, RefusedError, ReplicatedItem, TestFailoverRequest
from shared.rules import same_id
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.drills.steps import Step

log = logging.getLogger(__name__)

KIND: Literal["site-recovery"] = "site-recovery"
TEST_FAILOVER = "TestFailover"
CLEANUP = "TestFailoverCleanup"
JOB_OK = ("succeeded", "completedwithinformation", "completed")
JOB_FAILED = ("failed", "cancelled", "canceled", "suspended")
# A plan Lifeboat's drills use when SITE_RECOVERY_DRILL_PLAN names none.
DEFAULT_PLAN = DrillPlan(
    name="site-recovery",
    every_days=30,
    rto_target_seconds=3600,
    max_lifetime_seconds=4 * 3600,
    boot_timeout_seconds=1200,
)
CLEANUP_LIMIT = timedelta(hours=1)  # waiting for the plan to allow cleanup, then report


def drill_plan_of(settings: Settings, plans: dict[str, DrillPlan]) -> DrillPlan:
    """The drill plan whose timings a site-recovery drill uses."""
    name = settings.site_recovery_drill_plan
    if name is None:
        return DEFAULT_PLAN
    plan = plans.get(name)
    if plan is None:
        known = ", ".join(sorted(plans)) or "none defined"
        raise ValueError(f"SITE_RECOVERY_DRILL_PLAN names no drill plan {name!r} (known: {known})")
    return plan


def new_failover_drill(
    settings: Settings,
    plan: RecoveryPlan,
    vault: Vault,
    drill_plan: DrillPlan,
    slot: str,
    start: datetime,
    *,
    manual: bool = False,
) -> DrillState:
    """A site-recovery drill of `plan` (in `vault`, whose region is the recovery region)."""
    region = vault.location.replace(" ", "").lower()
    return DrillState(
        drillId=drill_id_of(plan.id, slot, manual=manual, kind=KIND),
        step="prepare",
        runId=run_id_of(slot),
        startedAt=start,
        expiresAt=start + timedelta(seconds=drill_plan.max_lifetime_seconds),
        drillSubscription=vault.subscription_id.lower(),
        drillGroup=settings.drill_groups.for_region(region),
        location=region,
        subscriptionId=vault.subscription_id.lower(),
        plan=drill_plan.name,
        rtoTargetSeconds=drill_plan.rto_target_seconds,
        bootTimeoutSeconds=drill_plan.boot_timeout_seconds,
        manual=manual,
        source=KIND,
        failover=DrillFailover(
            planId=plan.id,
            planName=plan.name,
            recoveryPointType=cast(Any, settings.site_recovery_recovery_point),
        ),
    )


# ---------------------------------------------------------------------------------- decisions


def waiting_for_cleanup(plan: RecoveryPlan) -> bool:
    """The plan's last test failover has not been cleaned up."""
    allowed = {o.lower() for o in plan.allowed_operations}
    return (
        (plan.scenario_status_description or "").lower() == "waitingforstoptestfailover"
        or (
            (plan.scenario or "").lower() == TEST_FAILOVER.lower()
            and (plan.scenario_status or "").lower() in ("suspended", "failed")
        )
        or (CLEANUP.lower() in allowed and TEST_FAILOVER.lower() not in allowed)
    )


def cleanup_pending(plan: RecoveryPlan) -> str:
    since = f" since {format_time(plan.scenario_started)}" if plan.scenario_started else ""
    return (
        f"recovery plan {plan.name} still waits for the cleanup of a test failover{since}: "
        "not started again (the sweeper cleans up the test failovers Lifeboat started)"
    )


def plan_problems(
    plan: RecoveryPlan, items: list[ReplicatedItem], settings: Settings
) -> tuple[str, str] | None:
    """Why this plan's test failover must not start: (`skipped` or `failed`, reason), or None."""
    if waiting_for_cleanup(plan):
        return "skipped", cleanup_pending(plan)
    if TEST_FAILOVER.lower() not in {o.lower() for o in plan.allowed_operations}:
        allowed = ", ".join(plan.allowed_operations) or "none"
        return "skipped", f"recovery plan {plan.name} does not allow TestFailover now ({allowed})"
    if not items:
        return "failed", f"recovery plan {plan.name} has no replicated items"
    if len(items) > FAILOVER_MAX_VMS:
        return (
            "failed",
            f"recovery plan {plan.name} holds {len(items)} VMs; a drill tests at most "
            f"{FAILOVER_MAX_VMS}",
        )
    allowed_actions = {a.lower() for a in settings.site_recovery_allowed_actions}
    for n, group in enumerate(plan.groups, start=1):
        for action in group.actions:
            tested = not action.failover_types or any(
                t.lower() == TEST_FAILOVER.lower() for t in action.failover_types
            )
            if tested and action.name.lower() not in allowed_actions:
                return (
                    "failed",
                    f"group {n} of {plan.name} runs the {action.kind} action {action.name!r} in "
                    "a test failover: not allowed unless SITE_RECOVERY_ALLOWED_ACTIONS names it",
                )
    for item in items:
        if TEST_FAILOVER.lower() not in {o.lower() for o in item.allowed_operations}:
            allowed = ", ".join(item.allowed_operations) or "none"
            return "skipped", f"{item.name} does not allow TestFailover now ({allowed})"
        escape = nic_escapes(item)
        if escape is not None:
            return "failed", escape
        target = (item.recovery_group_id or "").rstrip("/").rsplit("/", 1)[-1]
        if not target or not item.test_vm_name:
            return "failed", f"{item.name} names no recovery resource group or test VM name"
    return None


def nic_escapes(item: ReplicatedItem) -> str | None:
    """How the item's test-failover NIC settings could reach outside the drill network."""
    for n, nic in enumerate(item.test_nics):
        what = f"{item.name}'s NIC {n} in a test failover"
        if nic.nsg_id:
            return f"{what} gets the network security group {nic.nsg_id}, not the drill network's"
        if nic.public_ip_ids:
            return f"{what} gets the public IP {nic.public_ip_ids[0]}"
        if nic.lb_pool_ids:
            return f"{what} joins the load-balancer pool {nic.lb_pool_ids[0]}"
        if nic.reuse_existing_nic:
            return f"{what} reuses an existing NIC"
    return None


def test_subnet(items: list[ReplicatedItem]) -> tuple[str, str] | str:
    """(network id, subnet id) every item's test failover uses, or why there is not one."""
    networks = {(i.test_network_id or "").lower() for i in items}
    if len(networks) != 1 or "" in networks:
        return "the items' test-failover networks differ or are not set (selectedTfoAzureNetworkId)"
    network = next(i.test_network_id for i in items if i.test_network_id)
    assert network is not None
    subnets = {(nic.subnet_name or "").lower() for i in items for nic in i.test_nics}
    subnets.discard("")
    if len(subnets) > 1:
        return f"the items' test-failover subnets differ ({', '.join(sorted(subnets))})"
    subnet = next(
        (nic.subnet_name for i in items for nic in i.test_nics if nic.subnet_name), "default"
    )
    return network, f"{network}/subnets/{subnet}"


def quota_problem(
    usages: Iterable[tuple[str, int, int]], sizes: list[str], where: str
) -> str | None:
    """The test VMs would exceed a Compute quota of the recovery region."""
    from shared.recovery.planning import size_cores

    needs: dict[str, int] = {"virtualmachines": len(sizes)}
    for size in sizes:
        cores = size_cores(size)
        if cores is None:
            continue
        needs["cores"] = needs.get("cores", 0) + cores[0]
        needs[cores[1].lower()] = needs.get(cores[1].lower(), 0) + cores[0]
    for name, current, limit in usages:
        more = needs.get(name.lower())
        if more is not None and current + more > limit:
            return (
                f"quota exceeded in {where}: {name} is at {current} of {limit}; the test "
                f"failover needs {more} more"
            )
    return None


# ---------------------------------------------------------------------------------- the steps


def _vault_of(plan_id: str, location: str) -> Vault:
    parts = plan_id.strip("/").split("/")
    vault_id = "/" + "/".join(parts[:8])
    return Vault(vault_id, parts[7], parts[1].lower(), parts[3], location)


def _fo(state: DrillState) -> DrillFailover:
    assert state.failover is not None
    return state.failover


def _with(state: DrillState, **update: Any) -> DrillState:
    return state.model_copy(update={"failover": _fo(state).model_copy(update=update)})


def _read(ctx: Context, state: DrillState) -> tuple[RecoveryPlan, list[ReplicatedItem]] | str:
    """The plan and its items, read now."""
    fo = _fo(state)
    plan = ctx.site_recovery.get_recovery_plan(fo.plan_id)
    if plan is None:
        return f"recovery plan {fo.plan_id} does not exist"
    vault = _vault_of(plan.id, state.location)
    by_id = {i.id.lower(): i for i in ctx.site_recovery.list_replicated_items(vault)}
    wanted = [i for g in plan.groups for i in g.item_ids] or list(plan.item_ids)
    items = []
    for item_id in wanted:
        item = by_id.get(item_id.lower())
        if item is None:
            return f"{item_id} of plan {plan.name} is not a replicated item of its vault"
        items.append(item)
    return plan, items


def _isolated(ctx: Context, state: DrillState) -> str | None:
    """The drill network, read now: in the drill group of the recovery region, isolated."""
    fo = _fo(state)
    if fo.network_id is None:
        return "no drill network was chosen"
    parts = fo.network_id.strip("/").split("/")
    if len(parts) != 8 or parts[3] not in ctx.settings.drill_groups:
        return f"the test-failover network {fo.network_id} is not in a drill resource group"
    if parts[3].lower() != state.drill_group.lower():
        return (
            f"the test-failover network {fo.network_id} is not in {state.drill_group}, the drill "
            f"group of the recovery region {state.location}"
        )
    subnet_id = fo.network_id.rstrip("/") + "/subnets/" + _subnet_name(state)
    network = ctx.drills.get_network(subnet_id)
    if network is None:
        return f"the test-failover subnet {subnet_id} does not exist"
    if network.location.replace(" ", "").lower() != state.location:
        return f"the test-failover network is in {network.location}, not {state.location}"
    problems = isolation_problems(network)
    if problems:
        return "isolation check failed: " + "; ".join(problems)
    return None


def _subnet_name(state: DrillState) -> str:
    return state.subnet_id.rsplit("/", 1)[-1] if state.subnet_id else "default"


def _prepare(ctx: Context, state: DrillState, now: datetime) -> Result:
    from shared.drills.steps import finish, goto, hand_on

    if not ctx.settings.site_recovery_drills:
        return finish(
            state,
            now,
            "skipped",
            "site-recovery drills are off (SITE_RECOVERY_DRILLS): a test failover needs "
            "Lifeboat's test-failover role on the vault",
        )
    read = _read(ctx, state)
    if isinstance(read, str):
        return finish(state, now, "failed", read)
    plan, items = read
    refused = plan_problems(plan, items, ctx.settings)
    if refused is not None:
        return finish(state, now, refused[0], refused[1])
    chosen = test_subnet(items)
    if isinstance(chosen, str):
        return finish(state, now, "failed", chosen)
    network_id, subnet_id = chosen
    order = {item_id.lower(): n for n, g in enumerate(plan.groups) for item_id in g.item_ids}
    vms = [
        DrillFailoverVm(
            name=item.name[:80],
            item=item.id.rsplit("/", 1)[-1][:128],
            groupId=(item.recovery_group_id or "")[:300],
            testVm=(item.test_vm_name or "")[:80],
            bootGroup=min(order.get(item.id.lower(), 0), 63),
            disks=min(item.disks, 65),
        )
        for item in items
    ]
    rpos = [i.rpo_seconds for i in items if i.rpo_seconds is not None]
    state = state.model_copy(
        update={"subnet_id": subnet_id[:1024], "rpo_seconds": max(rpos) if rpos else None}
    )
    state = _with(state, network_id=network_id, vms=vms, multi_vm_sync=_multi_vm(items))
    problem = _isolated(ctx, state)
    if problem is not None:
        return finish(state, now, "failed", problem)
    sizes = [i.recovery_vm_size or "" for i in items]
    usages = ctx.site_recovery.list_usages(state.drill_subscription, state.location)
    over = quota_problem(usages, sizes, state.location)
    if over is not None:
        return finish(state, now, "skipped", over)
    return hand_on(goto(state, "failover", now))


def _multi_vm(items: list[ReplicatedItem]) -> bool:
    """Multi-VM sync where the plan's items replicate in a consistency group (our reading:
    `multiVmGroupName` is not carried by the port; a plan of more than one VM asks for it)."""
    return len(items) > 1


def _failover(ctx: Context, state: DrillState, now: datetime) -> Result:
    from shared.drills.steps import abort, again, goto, hand_on

    fo = _fo(state)
    if fo.job_id is None:
        plan = ctx.site_recovery.get_recovery_plan(fo.plan_id)
        if plan is None:
            return abort(state, now, f"recovery plan {fo.plan_id} no longer exists")
        mine = (
            (plan.scenario or "").lower() == TEST_FAILOVER.lower()
            and plan.job_id is not None
            and plan.scenario_started is not None
            and plan.scenario_started >= state.started_at - timedelta(minutes=1)
        )
        if mine and plan.job_id is not None:  # the POST's job (or a redelivery's)
            state = _with(state, job_id=plan.job_id[:128], triggered_at=fo.triggered_at or now)
        elif fo.triggered_at is not None:
            if now - fo.triggered_at > timedelta(minutes=10):
                return abort(
                    state, now, "Site Recovery accepted the test failover but named no job"
                )
            return again(ctx, state)
        else:
            if waiting_for_cleanup(plan):
                return _skip_unstarted(state, now, plan)
            problem = _isolated(ctx, state)  # a fresh read, just before the POST
            if problem is not None:
                return _fail_unstarted(state, now, problem)
            assert fo.network_id is not None
            ctx.site_recovery.begin_test_failover(
                fo.plan_id,
                TestFailoverRequest(
                    network_id=fo.network_id,
                    recovery_point_type=fo.recovery_point_type,
                    multi_vm_sync=fo.multi_vm_sync,
                ),
            )
            log.info("drill %s: test failover of %s posted", state.drill_id, fo.plan_name)
            return again(ctx, _with(state, triggered_at=now))
    fo = _fo(state)
    assert fo.job_id is not None
    job = ctx.site_recovery.get_job(_vault_of(fo.plan_id, state.location).id, fo.job_id)
    if job is None:
        return abort(state, now, f"the test failover job {fo.job_id} does not exist")
    state = _with(state, job_state=job.state[:128] or None, job_ended=job.end)
    status = job.state.lower()
    if status in JOB_FAILED:
        cause = "; ".join(job.errors) or "no error given"
        failed = _with(state, job_error=cause[:500])
        untagged = _tag_test_vms(ctx, failed, existing_only=True)
        reason = f"the test failover job {fo.job_id} {job.state}: {cause}"
        return abort(failed, now, reason + (f"; {untagged}" if untagged else ""))
    if status not in JOB_OK:
        return again(ctx, _seen_ready(ctx, state, now))  # boot groups finish one by one
    untagged = _tag_test_vms(ctx, state)
    if untagged is not None:
        return abort(state, now, untagged)
    return hand_on(goto(state, "wait-ready", now))


def _seen_ready(ctx: Context, state: DrillState, now: datetime) -> DrillState:
    """While the job runs, the test VMs of the boot groups done so far that are ready now: each
    group's RTO ends when its last VM is ready, not when the whole plan's job ends."""
    vms = list(_fo(state).vms)
    for n, vm in enumerate(vms):
        if vm.ready_at is None:
            status = ctx.drills.get_vm_status(_test_vm_id(state, vm))
            if status is not None and status.ready:
                vms[n] = vm.model_copy(update={"ready_at": now})
    return _with(state, vms=vms)


def test_vm_tags(state: DrillState) -> dict[str, str]:
    """What marks a test VM as the drill's: its id, expiry and run, not `lifeboat:managed` (Site
    Recovery made it and its cleanup removes it; the sweeper's deletes take managed ones only)."""
    from shared.drills.steps import tags_of

    return {k: v for k, v in tags_of(state).items() if k != Tag.MANAGED}


def _tag_test_vms(ctx: Context, state: DrillState, *, existing_only: bool = False) -> str | None:
    """Tag every test VM as the drill's (the Tags API: no write to the VM), so onboarding and
    the nightly plan leave it alone; why one could not be tagged, or None."""
    tags = test_vm_tags(state)
    for vm in _fo(state).vms:
        vm_id = _test_vm_id(state, vm)
        if existing_only and ctx.drills.get_resource(vm_id) is None:
            continue
        try:
            ctx.compute.merge_tags(vm_id, tags)
        except RefusedError as e:
            group = vm.group_id.rstrip("/").rsplit("/", 1)[-1]
            return (
                f"test VM {vm.test_vm} could not be tagged as the drill's ({e.code}: "
                f"{e.message}): Lifeboat needs Microsoft.Resources/tags/write on {group}, or "
                "onboarding and the nightly plan would take it for a VM to protect"
            )
    return None


def _skip_unstarted(state: DrillState, now: datetime, plan: RecoveryPlan) -> Result:
    from shared.drills.steps import finish

    return finish(state, now, "skipped", cleanup_pending(plan))


def _fail_unstarted(state: DrillState, now: datetime, reason: str) -> Result:
    from shared.drills.steps import finish

    return finish(state, now, "failed", reason)


def _test_vm_id(state: DrillState, vm: DrillFailoverVm) -> str:
    return f"{vm.group_id.rstrip('/')}/providers/Microsoft.Compute/virtualMachines/{vm.test_vm}"


def _wait_ready(ctx: Context, state: DrillState, now: datetime) -> Result:
    from shared.drills.steps import again, failed, goto, hand_on

    fo = _fo(state)
    vms = list(fo.vms)
    timeout = state.boot_timeout_seconds or 1200
    # From when the job ended (every test VM running, as Site Recovery sees it).
    late = (now - state.timings.get("wait-ready", [now])[0]).total_seconds()
    waiting = []
    for n, vm in enumerate(vms):
        if vm.ready_at is not None:
            continue
        status = ctx.drills.get_vm_status(_test_vm_id(state, vm))
        if status is not None and status.ready:
            vms[n] = vm.model_copy(update={"ready_at": now})
            continue
        if late >= timeout:
            power = status.power_state if status else "absent"
            agent = status.agent_status if status else "unknown"
            note = f"not ready within {timeout} s: power {power or 'unknown'}, agent {agent or '?'}"
            if status is not None and status.agent_message:
                note += f" ({status.agent_message})"
            vms[n] = vm.model_copy(update={"validation": f"failed: {note}"[:200]})
            continue
        waiting.append(vm.name)
    state = _with(state, vms=vms)
    if waiting:
        return again(ctx, state)
    stuck = [vm for vm in vms if vm.ready_at is None]
    if stuck:
        names = ", ".join(f"{vm.test_vm} {vm.validation or ''}".strip() for vm in stuck)
        state = failed(state, f"test VM(s) did not become ready: {names}")
    return hand_on(goto(state, "validate", now))


def _validate(ctx: Context, state: DrillState, now: datetime) -> Result:
    from shared.drills.steps import failed, goto, hand_on, vm_checks

    vms = list(_fo(state).vms)
    failing = []
    for n, vm in enumerate(vms):
        if vm.ready_at is None:
            failing.append(vm.test_vm)
            continue
        status = ctx.drills.get_vm_status(_test_vm_id(state, vm))
        if status is None:
            vms[n] = vm.model_copy(update={"validation": "failed: the test VM is gone"})
            failing.append(vm.test_vm)
            continue
        checks = vm_checks(status, max(vm.disks - 1, 0))
        bad = [name for name, ok in checks.items() if not ok]
        vms[n] = vm.model_copy(
            update={"validation": "failed: " + ", ".join(bad) if bad else "passed"}
        )
        if bad:
            failing.append(vm.test_vm)
    state = _with(state, vms=vms)
    state = state.model_copy(
        update={"checks": {vm.name[:64]: vm.validation == "passed" for vm in vms[:32]}}
    )
    if failing and state.outcome != "failed":
        state = failed(state, "validation failed: " + ", ".join(failing))
    return hand_on(goto(state, "measure", now))


def group_rtos(state: DrillState) -> list[int | None]:
    """Per boot group: from the POST to its last VM ready (None when one never was)."""
    fo = _fo(state)
    start = fo.triggered_at or state.started_at
    count = max((vm.boot_group for vm in fo.vms), default=-1) + 1
    rtos: list[int | None] = []
    for g in range(count):
        members = [vm for vm in fo.vms if vm.boot_group == g]
        if not members:
            rtos.append(0)
        elif any(vm.ready_at is None for vm in members):
            rtos.append(None)
        else:
            last = max(vm.ready_at for vm in members if vm.ready_at is not None)
            rtos.append(max(0, round((last - start).total_seconds())))
    return rtos


def _measure(ctx: Context, state: DrillState, now: datetime) -> Result:
    from shared.drills.steps import goto, hand_on

    rtos = group_rtos(state)
    fo = _fo(state)
    ready = [vm.ready_at for vm in fo.vms if vm.ready_at is not None]
    total = None
    if ready and len(ready) == len(fo.vms):
        total = max(0, round((max(ready) - (fo.triggered_at or state.started_at)).total_seconds()))
    update: dict[str, Any] = {"rto_seconds": total}
    if state.outcome is None:
        target = state.rto_target_seconds
        if total is not None and target is not None and total > target:
            update.update(outcome="failed", reason=f"RTO {total} s is over the target {target} s")
        else:
            update.update(outcome="succeeded")
    state = _with(state.model_copy(update=update), group_rto_seconds=rtos[:64])
    return hand_on(goto(state, "teardown", now))


def _teardown(ctx: Context, state: DrillState, now: datetime) -> Result:
    """`testFailoverCleanup` of the plan, once it allows it; retried, then reported."""
    from shared.drills.steps import again, failed, goto, hand_on

    fo = _fo(state)
    if fo.triggered_at is None and fo.job_id is None:
        return hand_on(goto(state, "report", now))  # nothing was started
    began = state.timings.get("teardown", [now])[0]
    # The job of the latest POST, once known (until then the last job is the failed one before).
    if (
        fo.cleanup_jobs
        and fo.cleanup_status is None
        and len(fo.cleanup_jobs) >= fo.cleanup_attempts
    ):
        job = ctx.site_recovery.get_job(
            _vault_of(fo.plan_id, state.location).id, fo.cleanup_jobs[-1]
        )
        status = (job.state if job else "").lower()
        if job is not None and status in JOB_OK:
            return hand_on(goto(_with(state, cleanup_status="succeeded"), "report", now))
        if job is not None and status not in JOB_FAILED:
            return again(ctx, state)
        cause = "; ".join(job.errors) if job else f"the cleanup job {fo.cleanup_jobs[-1]} is gone"
        state = _with(state, cleanup_error=(cause or "no error given")[:500])
        fo = _fo(state)
        if fo.cleanup_attempts >= ctx.settings.site_recovery_cleanup_attempts:
            reason = (
                f"test failover cleanup of {fo.plan_name} failed {fo.cleanup_attempts} time(s) "
                f"({fo.cleanup_error}): its test VMs are left running; the sweeper tries again "
                f"after {format_time(state.expires_at)}"
            )
            return hand_on(
                goto(failed(_with(state, cleanup_status="failed"), reason), "report", now)
            )
    plan = ctx.site_recovery.get_recovery_plan(fo.plan_id)
    if plan is None:
        return hand_on(goto(failed(state, f"recovery plan {fo.plan_id} is gone"), "report", now))
    cleaning = (
        (plan.scenario or "").lower() == CLEANUP.lower()
        and plan.job_id is not None
        and plan.job_id[:128] not in fo.cleanup_jobs
        and plan.scenario_started is not None
        and plan.scenario_started >= began - timedelta(minutes=1)
    )
    if cleaning and plan.job_id is not None:  # our POST's job (or a redelivery's)
        jobs = [*fo.cleanup_jobs, plan.job_id[:128]]
        attempts = max(fo.cleanup_attempts, len(jobs))
        return again(ctx, _with(state, cleanup_jobs=jobs, cleanup_attempts=attempts))
    if fo.cleanup_triggered_at is not None and len(fo.cleanup_jobs) < fo.cleanup_attempts:
        if now - fo.cleanup_triggered_at > timedelta(minutes=10):
            reason = f"Site Recovery accepted the cleanup of {fo.plan_name} but named no job"
            unknown = _with(state, cleanup_status="unknown")
            return hand_on(goto(failed(unknown, reason), "report", now))
        return again(ctx, state)
    if CLEANUP.lower() not in {o.lower() for o in plan.allowed_operations}:
        if now - began >= CLEANUP_LIMIT:
            reason = (
                f"{fo.plan_name} did not allow its test failover's cleanup within "
                f"{CLEANUP_LIMIT.total_seconds() / 60:.0f} min; the sweeper tries again"
            )
            return hand_on(
                goto(failed(_with(state, cleanup_status="pending"), reason), "report", now)
            )
        return again(ctx, state)  # the test failover's job still runs
    comments = (
        f"Lifeboat drill {state.drill_id}: test failover of {fo.plan_name} "
        f"({state.outcome or 'ended'})"
    )
    ctx.site_recovery.begin_test_failover_cleanup(fo.plan_id, comments)
    log.info("drill %s: cleanup of %s posted", state.drill_id, fo.plan_name)
    return again(
        ctx,
        _with(
            state,
            cleanup_attempts=fo.cleanup_attempts + 1,
            cleanup_triggered_at=now,
            cleanup_status=None,
        ),
    )


def _report(ctx: Context, state: DrillState, now: datetime) -> Result:
    from shared.drills.steps import report_id, step_seconds

    fo = _fo(state)
    status = Status(state.outcome or "failed")
    if state.swept:  # the sweeper's cleanup of a forgotten test failover
        status = Status.SUCCEEDED if fo.cleanup_status == "succeeded" else Status.FAILED
    steps = step_seconds(state)
    details: dict[str, Any] = {
        "drillId": state.drill_id,
        "source": KIND,
        "recoveryPlan": fo.plan_name,
        "recoveryPlanId": fo.plan_id,
        "networkId": fo.network_id,
        "recoveryPointType": fo.recovery_point_type,
        "multiVmSync": fo.multi_vm_sync,
        "failoverJobId": fo.job_id,
        "failoverJobState": fo.job_state,
        "failoverJobError": fo.job_error,
        "cleanupJobIds": fo.cleanup_jobs,
        "cleanupAttempts": fo.cleanup_attempts,
        "cleanupStatus": fo.cleanup_status
        or ("not needed" if fo.triggered_at is None else "not run"),
        "cleanupError": fo.cleanup_error,
        "groupRtoSeconds": fo.group_rto_seconds,
        "rtoTargetSeconds": state.rto_target_seconds,
        "vms": [
            {
                "name": vm.name,
                "testVmId": _test_vm_id(state, vm),
                "bootGroup": vm.boot_group + 1,
                "readyAt": format_time(vm.ready_at) if vm.ready_at else None,
                "validation": vm.validation or "not run",
            }
            for vm in fo.vms
        ],
        "steps": steps,
        "drillGroup": state.drill_group,
        "drillSubscription": state.drill_subscription,
        "startedAt": format_time(state.started_at),
    }
    if state.manual:
        details["manual"] = True
    parts = fo.plan_id.split("/")
    ctx.out.bind(
        subscription_id=state.drill_subscription,
        region=state.location,
        resource_group=parts[4] if len(parts) > 4 else None,
        resource_id=fo.plan_id,
        policy=state.plan,
    ).row(
        "sweep" if state.swept else "drill",
        status,
        state.reason,
        id=report_id(state),
        details=details,
        rpo_seconds=state.rpo_seconds,
        rto_seconds=state.rto_seconds,
        count=len(fo.vms),
    )
    log.info("drill %s: %s (%s)", state.drill_id, state.outcome, state.reason or "ok")
    return Done(f"drill {state.drill_id} {state.outcome or 'ended'}")


STEPS: dict[str, Step] = {
    "prepare": _prepare,
    "failover": _failover,
    "wait-ready": _wait_ready,
    "validate": _validate,
    "measure": _measure,
    "teardown": _teardown,
    "report": _report,
}


def find_item(items: Iterable[ReplicatedItem], vm_id: str) -> ReplicatedItem | None:
    return next((i for i in items if same_id(i.vm_id, vm_id)), None)


# ------------------------------------------------------------------------- starting the drills


def recovery_plans(
    backup: Any, site_recovery: Any, subscription_id: str
) -> list[tuple[Vault, RecoveryPlan]]:
    """Every recovery plan of the subscription's vaults (one list per vault)."""
    found = []
    for vault in backup.list_vaults(subscription_id):
        for plan in site_recovery.list_recovery_plans(vault):
            found.append((vault, plan))
    return found


def failover_starts(
    ctx: Context, subscription_id: str, slot: str, start: datetime, first_delay: int, spacing: int
) -> list[DrillState]:
    """The site-recovery drills due in `slot` in one subscription, by rotation like VM drills
    (each plan on a day of its own every `everyDays`); none when they are off."""
    from shared.drills.planning import is_due

    if not ctx.settings.site_recovery_drills:
        return []
    drill_plan = drill_plan_of(ctx.settings, dict(ctx.policies.drill_plans))
    states: list[DrillState] = []
    for vault, plan in recovery_plans(ctx.backup, ctx.site_recovery, subscription_id):
        if not is_due(plan.id, drill_plan.every_days, slot):
            continue
        delay = first_delay + len(states) * spacing
        states.append(
            new_failover_drill(
                ctx.settings, plan, vault, drill_plan, slot, start + timedelta(seconds=delay)
            )
        )
    return states


def start_failover_drill_now(rt: Any, plan_name: str) -> DrillState:
    """`lifeboat drill start --plan NAME`: a test failover of the recovery plan NAME (or id), now,
    through the drill queue. Raises ValueError naming the reason; nothing is sent then."""
    from shared import dispatch
    from shared.dispatch import Send
    from shared.drills.planning import start_message
    from shared.names import Job
    from shared.snapshots import slot_of

    if not rt.settings.site_recovery_drills:
        raise ValueError(
            "site-recovery drills are off: set SITE_RECOVERY_DRILLS=true (and grant Lifeboat's "
            "test-failover role on the vault)"
        )
    wanted = plan_name.strip().lower()
    matches = [
        (vault, plan)
        for subscription in rt.settings.subscriptions
        for vault, plan in recovery_plans(rt.backup, rt.site_recovery, subscription)
        if plan.name.lower() == wanted or plan.id.lower() == wanted
    ]
    if not matches:
        raise ValueError(f"no recovery plan {plan_name!r} in the vaults Lifeboat can read")
    if len(matches) > 1:
        raise ValueError(
            f"{len(matches)} recovery plans are named {plan_name!r}: pass the plan's id "
            f"({', '.join(p.id for _, p in matches[:3])})"
        )
    vault, plan = matches[0]
    drill_plan = drill_plan_of(rt.settings, dict(rt.policies.drill_plans))
    now = rt.clock.now()
    slot = slot_of(now.replace(second=0, microsecond=0))
    state = new_failover_drill(rt.settings, plan, vault, drill_plan, slot, now, manual=True)
    first = start_message(state)
    dispatch.submit(rt, Job.DRILL, run_id_of(slot), Send(first), key=first.key)
    return state


# ------------------------------------------------------------------------------- the sweeper


def forgotten_failovers(ctx: Context, window: timedelta) -> list[DrillState]:
    """Test failovers Lifeboat started (every item's test network is a Lifeboat drill network)
    whose plan still waits for cleanup past `window`: one teardown (`testFailoverCleanup`, never
    a delete) each, reported as a `sweep` row. Read from Site Recovery itself."""
    from shared.snapshots import slot_of

    if not ctx.settings.site_recovery_drills:  # Lifeboat started none
        return []
    now = ctx.now()
    found: list[DrillState] = []
    groups = ctx.settings.drill_groups
    for subscription in sorted(ctx.settings.subscriptions):
        for vault in ctx.backup.list_vaults(subscription):
            plans = ctx.site_recovery.list_recovery_plans(vault)
            waiting = [p for p in plans if waiting_for_cleanup(p)]
            if not waiting:
                continue
            by_id = {i.id.lower(): i for i in ctx.site_recovery.list_replicated_items(vault)}
            for plan in waiting:
                items = [by_id.get(i.lower()) for i in plan.item_ids]
                networks = {(i.test_network_id or "") if i else "" for i in items}
                ours = bool(items) and all(
                    len(n.strip("/").split("/")) == 8 and n.strip("/").split("/")[3] in groups
                    for n in networks
                )
                started = plan.scenario_started
                if not ours or (started is not None and now - started < window):
                    continue
                region = vault.location.replace(" ", "").lower()
                slot = slot_of(now)
                state = DrillState(
                    drillId=drill_id_of(plan.id, f"sweep|{started}", kind=KIND),
                    step="teardown",
                    startedAt=now,
                    expiresAt=now + CLEANUP_LIMIT * 2,
                    drillSubscription=vault.subscription_id.lower(),
                    drillGroup=groups.for_region(region),
                    location=region,
                    subscriptionId=vault.subscription_id.lower(),
                    swept=True,
                    source=KIND,
                    reason=f"swept: test failover of {plan.name} waiting for cleanup since "
                    f"{format_time(started) if started else 'an unknown time'}",
                    failover=DrillFailover(
                        planId=plan.id, planName=plan.name, triggeredAt=started or now
                    ),
                    runId=f"sweep-{slot}",
                )
                found.append(state)
    return found


# ------------------------------------------------------------------------- `lifeboat drill list`


def running_failovers(rt: Any) -> list[dict[str, Any]]:
    """The test failovers Lifeboat started that are still up, read from Site Recovery: plans in a
    test failover or its cleanup (running, or waiting for cleanup) whose items' test network is
    in a drill group, each with its test VMs and, from their `lifeboat:drill` tags, the drill's
    id and expiry."""
    from shared.planning import drill_resource
    from shared.policies import tag_value

    if not rt.settings.site_recovery_drills:
        return []
    groups = rt.settings.drill_groups
    found: list[dict[str, Any]] = []
    for subscription in sorted(rt.settings.subscriptions):
        for vault in rt.backup.list_vaults(subscription):
            plans = [
                p
                for p in rt.site_recovery.list_recovery_plans(vault)
                if waiting_for_cleanup(p)
                or (
                    (p.scenario or "").lower() in (TEST_FAILOVER.lower(), CLEANUP.lower())
                    and (p.scenario_status or "").lower() == "inprogress"
                )
            ]
            if not plans:
                continue
            by_id = {i.id.lower(): i for i in rt.site_recovery.list_replicated_items(vault)}
            for plan in plans:
                items = [by_id[i.lower()] for i in plan.item_ids if i.lower() in by_id]
                networks = [(i.test_network_id or "").strip("/").split("/") for i in items]
                if not items or not all(len(n) == 8 and n[3] in groups for n in networks):
                    continue
                entry: dict[str, Any] = {
                    "drillId": None,
                    "source": KIND,
                    "recoveryPlan": plan.name,
                    "recoveryPlanId": plan.id,
                    "subscription": vault.subscription_id.lower(),
                    "resourceGroup": ", ".join(
                        sorted({(i.recovery_group_id or "").rsplit("/", 1)[-1] for i in items})
                    ),
                    "step": "waiting for cleanup"
                    if waiting_for_cleanup(plan)
                    else f"{plan.scenario} running",
                    "startedAt": format_time(plan.scenario_started)
                    if plan.scenario_started
                    else None,
                    "expiresAt": None,
                    "resources": {"virtualMachines": []},
                }
                for item in items:
                    if not item.recovery_group_id or not item.test_vm_name:
                        continue
                    vm_id = (
                        f"{item.recovery_group_id.rstrip('/')}/providers/Microsoft.Compute/"
                        f"virtualMachines/{item.test_vm_name}"
                    )
                    vm = rt.drills.get_resource(vm_id)
                    if vm is None:
                        continue
                    entry["resources"]["virtualMachines"].append(vm.name)
                    entry["drillId"] = entry["drillId"] or drill_resource(vm.tags)
                    entry["expiresAt"] = entry["expiresAt"] or tag_value(vm.tags, Tag.EXPIRES)
                found.append(entry)
    return found
