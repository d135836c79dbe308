"""Which drills start, and when: the drill timer, the per-subscription plan, a manual start.

timer -> `start_drills`: one drill-plan message per target subscription
drill-plan -> `plan_drills`: the VMs whose drill plan is due tonight, one `prepare` each, spread
              out to stay inside the ARM write budget
`lifeboat drill start` -> `start_drill_now`: one drill of one VM, now, through the same queue

Drill ids and due days are derived from the VM and the slot, never stored: a duplicated plan
message starts the same drills, and every VM of a plan comes round on a day of its own.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
from datetime import datetime, timedelta
from typing import Any

from shared import dispatch
from shared.dispatch import Context, Outgoing, Result, Send, per_subscription
from shared.messages import DrillPlanRequest, DrillRestore, DrillState
from shared.model import Vm
from shared.names import Job
from shared.planning import drill_resource
from shared.policies import DrillPlan, RecoveryPointSpec
from shared.ports import Runtime
from shared.settings import Settings
from shared.snapshots import parse_slot, slot_of

log = logging.getLogger(__name__)

DRILL_ID_PREFIX = "lbd-"
# Network (2), disks (~2), NIC, VM; the deletes are paced by the polls.
WRITES_PER_DRILL = 8


def run_id_of(slot: str) -> str:
    return f"drill-{slot}"


def drill_id_of(vm_id: str, slot: str, *, manual: bool = False, kind: str = "snapshots") -> str:
    """Deterministic per VM and slot, so a duplicated plan message starts the same drill.

    Manual drills have ids of their own: one started in the minute of a planned drill is a
    second drill, not a duplicate of the planned one; two manual starts in one minute are one.
    """
    seed = f"{vm_id.lower()}|{slot}" + ("|manual" if manual else "")
    if kind != "snapshots":  # a recovery-point drill is not a duplicate of a snapshot drill
        seed += f"|{kind}"
    digest = hashlib.sha256(seed.encode()).digest()
    return DRILL_ID_PREFIX + base64.b32encode(digest).decode("ascii")[:10].lower()


def is_due(vm_id: str, every_days: int, slot: str) -> bool:
    """Each VM of a plan comes round every `every_days` days, on a day of its own (no state)."""
    day = (parse_slot(slot).date() - datetime(1970, 1, 1).date()).days
    offset = int(hashlib.sha256(vm_id.lower().encode()).hexdigest()[:8], 16)
    return (day + offset) % every_days == 0


def start_message(state: DrillState, delay: float = 0.0) -> Outgoing:
    """The first message of a drill; its key is the drill's, so a repeated start is one drill."""
    return Outgoing(state, key=f"drill:{state.drill_id}:start", delay=delay, run_id=state.run_id)


# ---------------------------------------------------------------------------------- the timer


def start_drills(ctx: Context, occurrence: datetime) -> Result:
    """One drill-plan message per target subscription, keyed by the scheduled occurrence."""
    return per_subscription(
        ctx, occurrence, lambda s, slot: DrillPlanRequest(subscriptionId=s, slot=slot)
    )


# ----------------------------------------------------------------------------------- the plan


def plan_drills(request: DrillPlanRequest, ctx: Context) -> Result:
    """Start tonight's drills of one subscription, spread out to stay inside the write budget."""
    groups = ctx.settings.drill_groups
    vms = ctx.compute.list_vms(request.subscription_id)
    start = max(ctx.now(), parse_slot(request.slot))
    spacing = math.ceil(WRITES_PER_DRILL / ctx.settings.arm_writes_per_second)
    starts: list[Outgoing] = []
    started: list[str] = []
    for vm in sorted(vms, key=lambda v: v.id.lower()):
        if vm.resource_group in groups or drill_resource(vm.tags) is not None:
            continue  # a drill's own VM (a drill group's, or a test failover's test VM)
        plan, _why = ctx.policies.drill_plan_for(vm.tags)
        if plan is None or not is_due(vm.id, plan.every_days, request.slot):
            continue
        delay = len(starts) * spacing
        state = new_drill(ctx.settings, vm, plan, request.slot, start + timedelta(seconds=delay))
        starts.append(start_message(state, delay))
        started.append(state.drill_id)
        ctx.out.bind(vm=vm, policy=plan.name).planned(
            "plan-drill",
            details={
                "drillId": state.drill_id,
                "drillGroup": state.drill_group,
                "rtoTargetSeconds": plan.rto_target_seconds,
                "startsInSeconds": delay,
            },
        )
    from shared.drills.failover import failover_starts  # recovery plans' test failovers

    for state in failover_starts(
        ctx, request.subscription_id, request.slot, start, len(starts) * spacing, spacing
    ):
        delay = round((state.started_at - start).total_seconds())
        starts.append(start_message(state, delay))
        started.append(state.drill_id)
    ctx.out.succeeded(
        "plan",
        subscription_id=request.subscription_id,
        count=len(started),
        details={"vms": len(vms), "drills": started[:200]},
    )
    log.info("drills %s: %d started in %s", request.slot, len(started), request.subscription_id)
    return Send(*starts)


def new_drill(
    settings: Settings,
    vm: Vm,
    plan: DrillPlan,
    slot: str,
    start: datetime,
    *,
    manual: bool = False,
    source: str | None = None,
    point: str | None = None,
) -> DrillState:
    """A drill of `vm` under `plan`, at its first step: what every later message carries.

    `source` overrides the plan's (`snapshots` or `recovery-point`); `point` (a recovery-point
    drill) is `latest`, `random` or a recovery point's id or name.
    """
    what_the_plan_sets: dict[str, Any] = {
        "plan": plan.name,
        "rtoTargetSeconds": plan.rto_target_seconds,
        "bootTimeoutSeconds": plan.boot_timeout_seconds,
        "vmSize": plan.vm_size,
        "subnetId": plan.subnet_id,
    }
    return DrillState(
        **what_the_plan_sets,
        drillId=drill_id_of(vm.id, slot, manual=manual, kind=source or plan.source),
        step="prepare",
        runId=run_id_of(slot),
        startedAt=start,
        expiresAt=start + timedelta(seconds=plan.max_lifetime_seconds),
        drillSubscription=str(settings.drill_subscription or vm.subscription_id).lower(),
        drillGroup=settings.drill_groups.for_region(vm.location),
        location=vm.location.lower(),
        vmId=vm.id,
        vmName=vm.name,
        subscriptionId=vm.subscription_id,
        manual=manual,
        **_restore_of(plan, source, point),
    )


def _restore_of(plan: DrillPlan, source: str | None, point: str | None) -> dict[str, Any]:
    """What a recovery-point drill carries from its plan (and the operator's --point)."""
    if (source or plan.source) != "recovery-point":
        return {}
    spec = plan.recovery_point or RecoveryPointSpec()
    restore: dict[str, Any] = {
        "choose": spec.choose,
        "windowDays": spec.window_days,
        "appConsistentOnly": spec.app_consistent_only,
        "tier": spec.tier,
        "restoreTimeoutSeconds": round(spec.restore_timeout_minutes * 60),
    }
    if spec.rpo_target_hours is not None:
        restore["rpoTargetSeconds"] = round(spec.rpo_target_hours * 3600)
    if point in ("latest", "random"):
        restore["choose"] = point
    elif point:
        restore.update(choose="named", pointId=point)
    return {"source": "recovery-point", "restore": DrillRestore(**restore)}


# ------------------------------------------------------------------------------ a manual start


def start_drill_now(
    rt: Runtime,
    vm_id: str,
    plan_name: str | None = None,
    *,
    source: str | None = None,
    point: str | None = None,
) -> DrillState:
    """`lifeboat drill start --vm ID [--from recovery-point [--point ...]]`: one drill of one VM,
    now, through the queue.

    Raises ValueError, naming the reason, when the VM cannot be drilled; nothing is sent then.
    """
    vm = rt.compute.get_vm(vm_id)
    if vm is None:
        raise ValueError(f"VM {vm_id} does not exist (or this identity cannot read it)")
    if vm.resource_group in rt.settings.drill_groups:
        raise ValueError(f"VM {vm_id} is in a drill resource group: drills never drill drills")
    if drill_resource(vm.tags) is not None:
        raise ValueError(f"VM {vm_id} is a drill's test VM: drills never drill drills")
    policies = rt.policies
    if plan_name is not None:
        plan = policies.drill_plans.get(plan_name)
        if plan is None:
            known = ", ".join(sorted(policies.drill_plans)) or "none defined"
            raise ValueError(f"no drill plan {plan_name!r} (known: {known})")
    else:
        found, why = policies.drill_plan_for(vm.tags)
        if found is None:
            raise ValueError(f"VM {vm.name} has no drill plan ({why}): pass --plan")
        plan = found
    if (source or plan.source) == "recovery-point" and not rt.settings.recovery_point_drills:
        raise ValueError(
            "recovery-point drills are off: set RECOVERY_POINT_DRILLS=true (the restore runs as "
            "the backup-writer identity, which holds VM write on the source VMs)"
        )
    if point is not None and (source or plan.source) != "recovery-point":
        raise ValueError("--point needs --from recovery-point (or a recovery-point drill plan)")
    now = rt.clock.now()
    slot = slot_of(now.replace(second=0, microsecond=0))
    state = new_drill(rt.settings, vm, plan, slot, now, manual=True, source=source, point=point)
    first = start_message(state)
    dispatch.submit(rt, Job.DRILL, run_id_of(slot), Send(first), key=first.key)
    return state
