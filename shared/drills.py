"""DR drills: restore a VM from its latest snapshot set in isolation, prove it boots, clean up.

timer -> `start_drills`: one drill-plan message per target subscription
drill-plan -> `plan_drills`: the VMs whose drill plan is due tonight, one `prepare` each
drill-step -> `drill_step`: one step of one drill; the message carries the whole drill

    prepare -> create-disks -> create-vm -> wait-ready -> validate -> measure -> teardown -> report

A step that waits for Azure sends its own message again with a delay; every step reads before
it writes, so running one twice changes nothing. A failure anywhere goes to teardown, which
deletes the drill's resources by their `lifeboat:drill` tag, VMs first, then NICs, disks and the
network Lifeboat made. The sweeper timer tears down whatever outlived its `lifeboat:expires`,
whatever happened to the drill's messages. Everything happens inside the drill resource group;
the group itself is never created or deleted here.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import random
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import messages
from shared.isolation import isolation_problems
from shared.messages import DrillPlanRequest, DrillSnapshot, DrillState, Envelope, Payload, expect
from shared.model import Job, Outcome, Snapshot, Status, Vm, format_time
from shared.policies import DRILL_TAG, DrillPlan, tag_value
from shared.ports import (
    DrillDiskRequest,
    DrillNetworkRequest,
    DrillVmRequest,
    RefusedError,
    Runtime,
    ThrottledError,
)
from shared.snapshots import MANAGED_TAG, RUN_TAG, is_owned, parse_slot, slot_of, slot_of_name
from shared.worker import enqueue

log = logging.getLogger(__name__)

DRILL_QUEUE = "drill-step"
EXPIRES_TAG = "lifeboat:expires"
DRILL_ID_PREFIX = "lbd-"
DRILL_ID_PATTERN = re.compile(r"lbd-[a-z2-7]{10}")  # as `drill_id_of` makes them (DrillState)
# Teardown order: what holds a reference goes before what it references.
TEARDOWN_ORDER = (
    "virtualMachines",
    "networkInterfaces",
    "disks",
    "virtualNetworks",
    "networkSecurityGroups",
)
TEARDOWN_LIMIT = timedelta(hours=1)  # then the drill reports and the sweeper takes over
NETWORK_PREFIX = "10.255.0.0/24"
SUBNET_NAME = "drill"
WRITES_PER_DRILL = 8  # network (2), disks (~2), NIC, VM, and the deletes are paced by the polls
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60
# What a drill message spares for the policy assignments it lists: with 65 disks' ids the rest
# takes up to ~45 KB of the ~48 KB a queue message holds once base64-encoded.
POLICY_LIST_CHARS = 2500


def run_id_of(slot: str) -> str:
    return f"drill-{slot}"


def drill_id_of(vm_id: str, slot: str, *, manual: bool = False) -> str:
    """Deterministic per VM and slot, so a duplicated plan message starts the same drill.

    Manual drills have ids of their own: one started in the minute of a planned drill is a
    second drill, not a duplicate of the planned one; two manual starts in one minute are one.
    """
    seed = f"{vm_id.lower()}|{slot}" + ("|manual" if manual else "")
    digest = hashlib.sha256(seed.encode()).digest()
    return DRILL_ID_PREFIX + base64.b32encode(digest).decode("ascii")[:10].lower()


def is_due(vm_id: str, every_days: int, slot: str) -> bool:
    """Each VM of a plan comes round every `every_days` days, on a day of its own (no state)."""
    day = (parse_slot(slot).date() - datetime(1970, 1, 1).date()).days
    offset = int(hashlib.sha256(vm_id.lower().encode()).hexdigest()[:8], 16)
    return (day + offset) % every_days == 0


# ----------------------------------------------------------------------------- the timers


def start_drills(rt: Runtime, occurrence: datetime) -> int:
    """One drill-plan message per target subscription, keyed by the scheduled occurrence."""
    slot = slot_of(occurrence.replace(second=0, microsecond=0))
    subscriptions = sorted(rt.settings.subscriptions)
    for subscription in subscriptions:
        request = DrillPlanRequest(subscriptionId=subscription, slot=slot)
        envelope = messages.make_envelope(
            "drill-plan",
            request,
            run_id=run_id_of(slot),
            idempotency_key=f"drill-plan:{subscription}:{slot}",
            created=rt.clock.now(),
        )
        enqueue(rt, DRILL_QUEUE, envelope, job=Job.DRILL)
    rt.reporter.report(
        [
            Outcome(
                time=rt.clock.now(),
                run_id=run_id_of(slot),
                job=Job.DRILL,
                operation="run-start",
                status=Status.SUCCEEDED,
                count=len(subscriptions),
                details={"slot": slot, "subscriptions": subscriptions},
            )
        ]
    )
    return len(subscriptions)


def plan_drills(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    """Start tonight's drills of one subscription, spread out to stay inside the write budget."""
    request = expect(payload, DrillPlanRequest)
    policies = rt.need_policies()
    groups = rt.settings.drill_groups
    vms = rt.need_compute().list_vms(request.subscription_id)
    start = parse_slot(request.slot)
    now = rt.clock.now()
    spacing = math.ceil(WRITES_PER_DRILL / rt.settings.arm_writes_per_second)
    started: list[str] = []
    outcomes = []
    for vm in sorted(vms, key=lambda v: v.id.lower()):
        if vm.resource_group in groups:
            continue
        plan, _why = policies.drill_plan_for(vm.tags)
        if plan is None or not is_due(vm.id, plan.every_days, request.slot):
            continue
        delay = len(started) * spacing
        state = new_drill(rt, vm, plan, request.slot, max(now, start) + timedelta(seconds=delay))
        _send(rt, state, delay=delay, key=f"drill:{state.drill_id}:start")
        started.append(state.drill_id)
        outcomes.append(
            Outcome(
                time=now,
                run_id=envelope.run_id,
                job=Job.DRILL,
                operation="plan-drill",
                status=Status.PLANNED,
                subscription_id=vm.subscription_id,
                region=vm.location,
                resource_group=vm.resource_group,
                resource_id=vm.id,
                vm_name=vm.name,
                policy=plan.name,
                details={
                    "drillId": state.drill_id,
                    "drillGroup": state.drill_group,
                    "rtoTargetSeconds": plan.rto_target_seconds,
                    "startsInSeconds": delay,
                },
            )
        )
    outcomes.append(
        Outcome(
            time=now,
            run_id=envelope.run_id,
            job=Job.DRILL,
            operation="plan",
            status=Status.SUCCEEDED,
            subscription_id=request.subscription_id,
            count=len(started),
            details={"vms": len(vms), "drills": started[:200]},
        )
    )
    rt.reporter.report(outcomes)
    log.info("drills %s: %d started in %s", request.slot, len(started), request.subscription_id)


def new_drill(
    rt: Runtime, vm: Vm, plan: DrillPlan, slot: str, start: datetime, *, manual: bool = False
) -> DrillState:
    settings = rt.settings
    return DrillState(
        drillId=drill_id_of(vm.id, slot, manual=manual),
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
        plan=plan.name,
        rtoTargetSeconds=plan.rto_target_seconds,
        bootTimeoutSeconds=plan.boot_timeout_seconds,
        vmSize=plan.vm_size,
        subnetId=plan.subnet_id,
        manual=manual,
    )


def start_drill_now(rt: Runtime, vm_id: str, plan_name: str | None = None) -> DrillState:
    """`lifeboat drill start --vm ID`: one drill of one VM, now, through the queue."""
    vm = rt.need_compute().get_vm(vm_id)
    if vm is None:
        raise ValueError(f"VM {vm_id} does not exist (or this identity cannot read it)")
    if vm.resource_group in rt.settings.drill_groups:
        raise ValueError(f"VM {vm_id} is in a drill resource group: drills never drill drills")
    policies = rt.need_policies()
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
    now = rt.clock.now()
    state = new_drill(rt, vm, plan, slot_of(now.replace(second=0, microsecond=0)), now, manual=True)
    _send(rt, state, delay=0, key=f"drill:{state.drill_id}:start")
    return state


def sweep(rt: Runtime) -> int:
    """Tear down every drill whose resources outlived `lifeboat:expires`, whatever happened."""
    cloud = rt.need_drills()
    now = rt.clock.now()
    groups = rt.settings.drill_groups
    subscriptions = set(rt.settings.subscriptions)
    if rt.settings.drill_subscription is not None:
        subscriptions.add(str(rt.settings.drill_subscription).lower())
    found = 0
    outcomes = []
    for subscription in sorted(subscriptions):
        for group in cloud.list_resource_groups(subscription):
            if group not in groups:
                continue
            for drill_id, resources in _by_drill(cloud.list_drill_resources(subscription, group)):
                expires = _expiry(resources)
                if expires is not None and expires > now:
                    continue
                found += 1
                if not DRILL_ID_PATTERN.fullmatch(drill_id):
                    reason = f"tag {DRILL_TAG}={drill_id!r} is not a Lifeboat drill id: not deleted"
                    blocked = _sweep_outcome(
                        now, subscription, group, drill_id, resources, Status.BLOCKED, reason
                    )
                    outcomes.append(blocked)
                    continue
                why = (
                    f"past its expiry {format_time(expires)}"
                    if expires is not None
                    else f"no readable {EXPIRES_TAG} tag"
                )
                state = DrillState(
                    drillId=drill_id,
                    step="teardown",
                    startedAt=now,
                    expiresAt=expires or now,
                    drillSubscription=subscription,
                    drillGroup=group,
                    location=(resources[0].location or "unknown").lower(),
                    swept=True,
                    reason=f"swept: {why}",
                )
                _send(rt, state, delay=0, key=f"drill:{drill_id}:sweep:{slot_of(now)}")
                planned = _sweep_outcome(
                    now, subscription, group, drill_id, resources, Status.PLANNED, f"swept: {why}"
                )
                outcomes.append(planned)
    if outcomes:
        rt.reporter.report(outcomes)
    log.info("sweeper: %d expired drill(s)", found)
    return found


def _by_drill(resources: Iterable[Any]) -> list[tuple[str, list[Any]]]:
    grouped: dict[str, list[Any]] = {}
    for resource in resources:
        drill = tag_value(resource.tags, DRILL_TAG)
        if drill and (tag_value(resource.tags, MANAGED_TAG) or "").lower() == "true":
            grouped.setdefault(drill.strip().lower(), []).append(resource)
    return sorted(grouped.items())


def _expiry(resources: Iterable[Any]) -> datetime | None:
    """The earliest `lifeboat:expires` of a drill's resources; None if none can be read."""
    times = []
    for resource in resources:
        value = tag_value(resource.tags, EXPIRES_TAG)
        try:
            times.append(datetime.fromisoformat((value or "").replace("Z", "+00:00")))
        except ValueError:
            return None
    aware = [t for t in times if t.tzinfo is not None]
    return min(aware) if len(aware) == len(times) and aware else None


def _sweep_outcome(
    now: datetime,
    subscription: str,
    group: str,
    drill_id: str,
    resources: list[Any],
    status: Status,
    reason: str,
) -> Outcome:
    return Outcome(
        time=now,
        run_id=f"sweep-{slot_of(now)}",
        job=Job.DRILL,
        operation="sweep",
        status=status,
        subscription_id=subscription,
        resource_group=group,
        reason=reason,
        count=len(resources),
        details={"drillId": drill_id, "resources": sorted(r.name for r in resources)[:64]},
    )


# ------------------------------------------------------------------------------- the steps


@dataclass(frozen=True, slots=True)
class Next:
    """What a step hands on: the drill as it now stands, and when to look at it again."""

    state: DrillState
    delay: float = 0.0
    done: bool = False


Step = Callable[[Runtime, DrillState, datetime], Next]


def drill_step(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    """Run one step of one drill and hand the drill on (or finish it)."""
    state = expect(payload, DrillState)
    now = rt.clock.now()
    if state.step not in ("teardown", "report") and now >= state.expires_at:
        state = _failed(
            state,
            now,
            f"the drill passed its maximum lifetime at "
            f"{format_time(state.expires_at)} during {state.step}",
        )
        state = _goto(state, "teardown", now)
    if state.step not in state.timings:  # the first step, timed from the drill's start
        began = now if state.timings else min(now, state.started_at)
        state = state.model_copy(update={"timings": {**state.timings, state.step: [began]}})
    try:
        result = STEPS[state.step](rt, state, now)
    except ThrottledError as e:
        delay = math.ceil(e.retry_after) + random.uniform(0, 5)  # jitter
        log.info("drill %s %s throttled: again in %.0f s", state.drill_id, state.step, delay)
        result = Next(state.model_copy(update={"polls": state.polls + 1}), delay)
    except RefusedError as e:
        result = _refused(state, now, e)
    if result.done:
        return
    _send(
        rt,
        result.state,
        delay=result.delay,
        key=f"drill:{state.drill_id}:{result.state.step}:{result.state.polls}",
    )


def _refused(state: DrillState, now: datetime, error: RefusedError) -> Next:
    reason = f"Azure refused during {state.step}: {error.code}: {error.message}"
    if state.step in ("teardown", "report"):
        # Not healable by retrying; the sweeper tries again after expiry and reports it.
        note = f"{reason} (the sweeper retries after {format_time(state.expires_at)})"
        failed = _failed(state, now, note) if state.outcome != "skipped" else state
        return Next(_goto(failed, "report", now))
    return Next(_goto(_failed(state, now, reason), "teardown", now))


def _prepare(rt: Runtime, state: DrillState, now: datetime) -> Next:
    if state.set_slot is None:
        chosen = _choose(rt, state, now)
        if chosen.state.outcome is not None or chosen.state.set_slot is None:
            return chosen
        state = chosen.state
    cloud = rt.need_drills()
    if state.subnet_id is None or state.network_created:
        request = _network_request(state)
        subnet_id = f"{request.vnet_id}/subnets/{SUBNET_NAME}"
        state = state.model_copy(update={"subnet_id": subnet_id, "network_created": True})
        network = cloud.get_network(subnet_id)
        if network is None:
            cloud.begin_create_network(request)  # the NSG first, then the VNet on a later call
            return _again(rt, state)
        if (network.provisioning_state or "").lower() != "succeeded":
            return _again(rt, state)
    else:
        network = cloud.get_network(state.subnet_id)
        if network is None:
            return _abort(state, now, f"the drill subnet {state.subnet_id} does not exist")
    if network.location.lower() != state.location:
        return _abort(
            state,
            now,
            f"the drill network is in {network.location}; the VM and its "
            f"snapshots are in {state.location}",
        )
    assignments = cloud.list_policy_assignments(state.drill_subscription, state.drill_group)
    state = state.model_copy(update={"policy_assignments": _listed(assignments)})
    problems = isolation_problems(network)
    if problems:
        return _abort(state, now, "isolation pre-flight failed: " + "; ".join(problems))
    return Next(_goto(state, "create-disks", now))


def _listed(assignments: list[Any]) -> list[str]:
    """The policy assignments on the drill scope, within what a drill message can carry."""
    listed: list[str] = []
    used = 0
    for i, a in enumerate(assignments):
        entry = f"{a.display_name or a.name} [{a.enforcement_mode or 'Default'}] at {a.scope}"
        entry = entry[:300]
        if used + len(entry) > POLICY_LIST_CHARS or len(listed) == 199:
            listed.append(
                f"... and {len(assignments) - i} more (list them with az policy assignment list)"
            )
            break
        listed.append(entry)
        used += len(entry)
    return listed


def _choose(rt: Runtime, state: DrillState, now: datetime) -> Next:
    """Read the source VM and pick the newest complete snapshot set of its disks."""
    assert state.vm_id is not None
    assert state.subscription_id is not None
    compute = rt.need_compute()
    vm = compute.get_vm(state.vm_id)
    if vm is None:
        return _finish(state, now, "failed", "the source VM no longer exists")
    if (vm.security_type or "").lower() == "confidentialvm":
        return _finish(
            state,
            now,
            "skipped",
            "Confidential VMs are not drilled: their disks are bound to the source VM's keys",
        )
    if vm.os_disk.disk_id is None:
        kind = "ephemeral" if vm.os_disk.ephemeral else "unmanaged"
        return _finish(
            state,
            now,
            "skipped",
            f"the OS disk is {kind}: Lifeboat has no snapshot of it to restore",
        )
    group = rt.settings.snapshot_group(state.subscription_id)
    snapshots = compute.list_snapshots(state.subscription_id, group)
    choice = choose_snapshot_set(vm, snapshots, group)
    if choice is None:
        return _finish(
            state, now, "failed", f"no good snapshot of the OS disk in {group}: nothing to restore"
        )
    slot, chosen, missing = choice
    os_disk = compute.get_disk(vm.os_disk.disk_id)
    disks = []
    for snapshot, lun, source in chosen:
        disk = os_disk if lun is None else compute.get_disk(source)
        disks.append(
            DrillSnapshot(
                diskId=source,
                snapshotId=snapshot.id,
                lun=lun,
                timeCreated=snapshot.time_created or now,
                sku=disk.sku if disk else None,
            )
        )
    profile = _copied_security(vm.security_profile)
    return Next(
        state.model_copy(
            update={
                "set_slot": slot,
                "chosen_at": now,
                "snapshots": disks,
                "missing_disks": missing,
                "vm_size": state.vm_size or vm.size,
                "os_type": vm.os_type or (os_disk.os_type if os_disk else None),
                "security_profile": profile,
                "hyper_v_generation": (os_disk.hyper_v_generation if os_disk else None)
                or vm.hyper_v_generation,
                "marketplace_plan": dict(vm.plan) if vm.plan else None,
            }
        )
    )


def choose_snapshot_set(
    vm: Vm, snapshots: Iterable[Snapshot], group: str
) -> tuple[str, list[tuple[Snapshot, int | None, str]], list[str]] | None:
    """The newest slot with a good snapshot of every disk that has any; else of the OS disk.

    Returns (slot, [(snapshot, lun, source disk id)], disks left out), or None when the OS disk
    has no good snapshot at all. Only Lifeboat's own snapshots count (group, name, source).
    """
    luns = {a.disk_id.lower(): (a.lun, a.disk_id) for a in vm.attachments if a.disk_id}
    by_slot: dict[str, dict[str, Snapshot]] = {}
    for snapshot in snapshots:
        source = (snapshot.source_resource_id or "").lower()
        slot = slot_of_name(snapshot.name)
        if source not in luns or slot is None or not snapshot.good:
            continue
        if not is_owned(snapshot, group):
            continue
        by_slot.setdefault(slot, {})[source] = snapshot
    os_key = (vm.os_disk.disk_id or "").lower()
    covered = {disk for taken in by_slot.values() for disk in taken}
    candidates = [s for s in sorted(by_slot, reverse=True) if os_key in by_slot[s]]
    if not candidates:
        return None
    complete = [s for s in candidates if covered <= by_slot[s].keys()]
    slot = complete[0] if complete else candidates[0]
    taken = by_slot[slot]
    chosen = [(taken[key], luns[key][0], luns[key][1]) for key in sorted(taken)]
    chosen.sort(key=lambda item: -1 if item[1] is None else item[1])
    missing = sorted(luns[key][1] for key in covered - taken.keys())
    return slot, chosen, missing


def _copied_security(profile: dict[str, Any] | None) -> dict[str, Any] | None:
    """The parts of the source's securityProfile a restored VM keeps (no identities, no keys)."""
    if not profile:
        return None
    kept = {k: profile[k] for k in ("securityType", "uefiSettings") if profile.get(k) is not None}
    return kept or None


def _create_disks(rt: Runtime, state: DrillState, now: datetime) -> Next:
    cloud = rt.need_drills()
    pending = False
    for snapshot in state.snapshots:
        disk_id = _resource_id(state, "Microsoft.Compute/disks", _disk_suffix(snapshot.lun))
        found = cloud.get_resource(disk_id)
        if _vanished(state, disk_id, found):
            return _stop(state, disk_id)
        if found is None:
            cloud.begin_create_disk(
                DrillDiskRequest(
                    id=disk_id,
                    location=state.location,
                    source_snapshot_id=snapshot.snapshot_id,
                    sku=snapshot.sku,
                    os_type=state.os_type if snapshot.lun is None else None,
                    hyper_v_generation=state.hyper_v_generation if snapshot.lun is None else None,
                    security_type=_security_type(state) if snapshot.lun is None else None,
                    tags=_tags(state),
                )
            )
            pending = True
            continue
        state = _saw(state, disk_id)
        if found.failed:
            return _abort(
                state,
                now,
                f"disk {found.name} from {snapshot.snapshot_id} failed "
                f"to provision ({found.provisioning_state})",
            )
        if not found.succeeded:
            pending = True
    return _again(rt, state) if pending else Next(_goto(state, "create-vm", now))


def _create_vm(rt: Runtime, state: DrillState, now: datetime) -> Next:
    cloud = rt.need_drills()
    nic_id = _resource_id(state, "Microsoft.Network/networkInterfaces", "nic")
    nic = cloud.get_resource(nic_id)
    if _vanished(state, nic_id, nic):
        return _stop(state, nic_id)
    if nic is None:
        assert state.subnet_id is not None
        cloud.begin_create_nic(nic_id, state.location, state.subnet_id, _tags(state))
        return _again(rt, state)
    state = _saw(state, nic_id)
    if nic.failed:
        return _abort(state, now, f"NIC {nic.name} failed to provision")
    if not nic.succeeded:
        return _again(rt, state)
    vm_id = _resource_id(state, "Microsoft.Compute/virtualMachines", "vm")
    found = cloud.get_resource(vm_id)
    if _vanished(state, vm_id, found):
        return _stop(state, vm_id)
    if found is None:
        if not state.vm_size:
            return _abort(state, now, "the source VM's size is unknown; set vmSize in the plan")
        data = tuple(
            (s.lun, _resource_id(state, "Microsoft.Compute/disks", _disk_suffix(s.lun)))
            for s in state.snapshots
            if s.lun is not None
        )
        cloud.begin_create_vm(
            DrillVmRequest(
                id=vm_id,
                location=state.location,
                size=state.vm_size,
                os_disk_id=_resource_id(state, "Microsoft.Compute/disks", _disk_suffix(None)),
                os_type=state.os_type or "Linux",
                data_disks=data,
                nic_id=nic_id,
                security_profile=state.security_profile,
                plan=state.marketplace_plan,
                tags=_tags(state),
            )
        )
    return Next(_goto(_saw(state, vm_id), "wait-ready", now), _poll_delay(rt))


def _wait_ready(rt: Runtime, state: DrillState, now: datetime) -> Next:
    vm_id = _resource_id(state, "Microsoft.Compute/virtualMachines", "vm")
    status = rt.need_drills().get_vm_status(vm_id)
    if status is None:
        return _stop(state, vm_id)
    if status.provisioning_failed:
        return _abort(state, now, "the drill VM failed to provision")
    if status.ready:
        ready = state.model_copy(update={"ready_at": now})
        return Next(_goto(ready, "validate", now))
    # From when Azure accepted the VM create: our own throttled retries are not the VM's boot.
    accepted = state.timings.get("create-vm", [state.started_at])[-1]
    waited = (now - accepted).total_seconds()
    timeout = state.boot_timeout_seconds or 1200
    if waited >= timeout:
        reason = (
            f"the VM did not become ready within {timeout} s: power state "
            f"{status.power_state or 'unknown'}, VM agent {status.agent_status or 'unknown'}"
            + (f" ({status.agent_message})" if status.agent_message else "")
        )
        failed = _failed(state, now, reason)
        checks = {"running": status.power_state == "running", "agentReady": False}
        return Next(_goto(failed.model_copy(update={"checks": checks}), "measure", now))
    return _again(rt, state)


def _validate(rt: Runtime, state: DrillState, now: datetime) -> Next:
    vm_id = _resource_id(state, "Microsoft.Compute/virtualMachines", "vm")
    status = rt.need_drills().get_vm_status(vm_id)
    if status is None:
        return _stop(state, vm_id)
    expected = sum(1 for s in state.snapshots if s.lun is not None)
    checks = {
        "running": status is not None and status.power_state == "running",
        "agentReady": status is not None and status.ready,
        "dataDisksAttached": status is not None and status.data_disks == expected,
    }
    state = state.model_copy(update={"checks": checks})
    failing = [name for name, ok in checks.items() if not ok]
    if failing:
        state = _failed(state, now, "validation failed: " + ", ".join(failing))
    return Next(_goto(state, "measure", now))


def _recovery_point_age(state: DrillState) -> tuple[int | None, int | None]:
    """RPO: the age of the restored set (its oldest disk) when the drill chose it; its spread.

    Not from the drill's start: a set taken while the drill's first message waited on the
    queue would have a negative age.
    """
    times = [s.time_created for s in state.snapshots]
    if not times:
        return None, None
    rpo = round(((state.chosen_at or state.started_at) - min(times)).total_seconds())
    return rpo, round((max(times) - min(times)).total_seconds())


def _measure(rt: Runtime, state: DrillState, now: datetime) -> Next:
    rpo, spread = _recovery_point_age(state)
    rto = round((state.ready_at - state.started_at).total_seconds()) if state.ready_at else None
    update: dict[str, Any] = {"rpo_seconds": rpo, "spread_seconds": spread, "rto_seconds": rto}
    if state.outcome is None:
        target = state.rto_target_seconds
        if rto is not None and target is not None and rto > target:
            update.update(outcome="failed", reason=f"RTO {rto} s is over the target {target} s")
        else:
            update.update(outcome="succeeded")
    return Next(_goto(state.model_copy(update=update), "teardown", now))


def _teardown(rt: Runtime, state: DrillState, now: datetime) -> Next:
    # Never delete outside a drill group of a subscription Lifeboat serves, whatever a message says.
    refused = None
    if state.drill_group not in rt.settings.drill_groups:
        refused = f"{state.drill_group} is not a drill resource group"
    elif state.drill_subscription.lower() not in _drill_subscriptions(rt):
        refused = f"subscription {state.drill_subscription} is not one Lifeboat drills in"
    if refused is not None:
        failed = _failed(state, now, f"teardown refused: {refused}")
        return Next(_goto(failed, "report", now))
    cloud = rt.need_drills()
    mine = [
        r
        for r in cloud.list_drill_resources(state.drill_subscription, state.drill_group)
        if (tag_value(r.tags, DRILL_TAG) or "").strip().lower() == state.drill_id
        and (tag_value(r.tags, MANAGED_TAG) or "").lower() == "true"
    ]
    deleted = list(state.deleted)
    for kind in TEARDOWN_ORDER:
        tier = [r for r in mine if r.kind.lower() == kind.lower()]
        if not tier:
            continue
        began = state.timings.get("teardown", [now])[0]
        if now - began >= TEARDOWN_LIMIT:
            # Stop polling; the resources keep their expiry tag and the sweeper tries again.
            names = ", ".join(sorted(r.name for r in mine)[:8])
            limit = f"{TEARDOWN_LIMIT.total_seconds() / 60:.0f} min"
            reason = (
                f"teardown did not finish within {limit}: {len(mine)} resource(s) left "
                f"({names}); the sweeper removes them after expiry"
            )
            failed = _failed(state, now, reason)
            log.warning(
                "drill %s: teardown gave up with %d resource(s) left: %s",
                state.drill_id,
                len(mine),
                names,
            )
            return Next(_goto(failed, "report", now))
        for resource in tier:
            if (resource.provisioning_state or "").lower() != "deleting":
                cloud.begin_delete(resource.id)
            if resource.name not in deleted:
                deleted.append(resource.name)
        return _again(rt, state.model_copy(update={"deleted": deleted[:64]}))
    return Next(_goto(state, "report", now))


def _drill_subscriptions(rt: Runtime) -> set[str]:
    settings = rt.settings
    allowed = {s.lower() for s in settings.subscriptions}
    if settings.drill_subscription is not None:
        allowed.add(str(settings.drill_subscription).lower())
    return allowed


def _report_step(rt: Runtime, state: DrillState, now: datetime) -> Next:
    if _first_report(rt, state.drill_id, "sweep" if state.swept else "drill"):
        rt.reporter.report([drill_outcome(state, now)])
    log.info("drill %s: %s (%s)", state.drill_id, state.outcome, state.reason or "ok")
    return Next(state, done=True)


def drill_outcome(state: DrillState, now: datetime) -> Outcome:
    # A sweep succeeds when it removed everything; a drill without an outcome has failed.
    status = Status(state.outcome or ("succeeded" if state.swept else "failed"))
    steps = {
        name: round((span[-1] - span[0]).total_seconds())
        for name, span in state.timings.items()
        if len(span) == 2
    }
    details: dict[str, Any] = {
        "drillId": state.drill_id,
        "source": "snapshots",
        "setSlot": state.set_slot,
        "rtoTargetSeconds": state.rto_target_seconds,
        "steps": steps,
        "spreadSeconds": state.spread_seconds,
        "checks": state.checks,
        "drillGroup": state.drill_group,
        "drillSubscription": state.drill_subscription,
        "policyAssignments": state.policy_assignments,
        "deleted": state.deleted,
        "startedAt": format_time(state.started_at),
    }
    if state.missing_disks:
        details["missingDisks"] = state.missing_disks
    rpo, spread = state.rpo_seconds, state.spread_seconds
    if rpo is None and state.snapshots:
        rpo, spread = _recovery_point_age(state)
        details["spreadSeconds"] = spread
    if state.manual:
        details["manual"] = True
    resource_group = None
    if state.vm_id:
        resource_group = state.vm_id.split("/")[4] if len(state.vm_id.split("/")) > 4 else None
    return Outcome(
        time=now,
        run_id=_run_id(state),
        job=Job.DRILL,
        operation="sweep" if state.swept else "drill",
        status=status,
        subscription_id=state.subscription_id or state.drill_subscription,
        region=state.location,
        resource_group=resource_group,
        resource_id=state.vm_id,
        vm_name=state.vm_name,
        policy=state.plan,
        reason=state.reason,
        details=details,
        rpo_seconds=rpo,
        rto_seconds=state.rto_seconds,
        count=len(state.deleted),
    )


STEPS: dict[str, Step] = {
    "prepare": _prepare,
    "create-disks": _create_disks,
    "create-vm": _create_vm,
    "wait-ready": _wait_ready,
    "validate": _validate,
    "measure": _measure,
    "teardown": _teardown,
    "report": _report_step,
}


# ------------------------------------------------------------------------------- plumbing


def _goto(state: DrillState, step: str, now: datetime) -> DrillState:
    """Move to `step`. Steps are timed end to end: the next one starts as this one ends, so the
    time its message waits on the queue is its own, and the steps add up to the drill's time."""
    timings = dict(state.timings)
    if state.step in timings:
        timings[state.step] = [timings[state.step][0], now]
    timings.setdefault(step, [now])
    return state.model_copy(update={"step": step, "timings": timings, "polls": 0})


def _again(rt: Runtime, state: DrillState) -> Next:
    return Next(state.model_copy(update={"polls": state.polls + 1}), _poll_delay(rt))


def _poll_delay(rt: Runtime) -> float:
    return rt.settings.drill_poll_seconds


def _saw(state: DrillState, resource_id: str) -> DrillState:
    name = resource_id.rsplit("/", 1)[1]
    if name in state.seen:
        return state
    return state.model_copy(update={"seen": [*state.seen, name]})


def _vanished(state: DrillState, resource_id: str, found: Any) -> bool:
    """A resource this run saw exist is gone or going: another delivery is tearing it down."""
    if resource_id.rsplit("/", 1)[1] not in state.seen:
        return False
    return found is None or (found.provisioning_state or "").lower() == "deleting"


def _stop(state: DrillState, resource_id: str) -> Next:
    """Stop this delivery without a report: the one tearing the drill down reports it.

    Queues deliver at least once, so two deliveries of one drill can run side by side; the
    first to tear down wins. Should a drill resource vanish for another reason, what is left
    expires and the sweeper removes and reports it.
    """
    log.warning(
        "drill %s: %s vanished during %s; another delivery is tearing the drill down",
        state.drill_id,
        resource_id,
        state.step,
    )
    return Next(state, done=True)


def _failed(state: DrillState, now: datetime, reason: str) -> DrillState:
    del now
    if state.outcome == "failed" and state.reason:
        return state  # the first reason is the cause; later ones are consequences
    return state.model_copy(update={"outcome": "failed", "reason": reason[:2000]})


def _abort(state: DrillState, now: datetime, reason: str) -> Next:
    log.warning("drill %s: %s", state.drill_id, reason)
    return Next(_goto(_failed(state, now, reason), "teardown", now))


def _finish(state: DrillState, now: datetime, outcome: str, reason: str) -> Next:
    """Nothing was created: straight to the report."""
    update = {"outcome": outcome, "reason": reason}
    return Next(_goto(state.model_copy(update=update), "report", now))


def _security_type(state: DrillState) -> str | None:
    return (state.security_profile or {}).get("securityType")


def _resource_id(state: DrillState, provider_type: str, suffix: str) -> str:
    return (
        f"/subscriptions/{state.drill_subscription}/resourceGroups/{state.drill_group}"
        f"/providers/{provider_type}/{state.drill_id}-{suffix}"
    )


def _disk_suffix(lun: int | None) -> str:
    return "osdisk" if lun is None else f"lun{lun}"


def _network_request(state: DrillState) -> DrillNetworkRequest:
    return DrillNetworkRequest(
        vnet_id=_resource_id(state, "Microsoft.Network/virtualNetworks", "vnet"),
        nsg_id=_resource_id(state, "Microsoft.Network/networkSecurityGroups", "nsg"),
        location=state.location,
        address_prefix=NETWORK_PREFIX,
        subnet_name=SUBNET_NAME,
        tags=_tags(state),
    )


def _tags(state: DrillState) -> dict[str, str]:
    return {
        MANAGED_TAG: "true",
        DRILL_TAG: state.drill_id,
        EXPIRES_TAG: format_time(state.expires_at.replace(microsecond=0)),
        RUN_TAG: _run_id(state),
    }


def _run_id(state: DrillState) -> str:
    return state.run_id or state.drill_id


def _send(rt: Runtime, state: DrillState, *, delay: float, key: str) -> None:
    envelope = messages.make_envelope(
        "drill-step",
        state,
        run_id=_run_id(state),
        idempotency_key=key,
        created=rt.clock.now(),
    )
    visibility = min(MAX_VISIBILITY_SECONDS, max(0, math.ceil(delay)))
    enqueue(rt, DRILL_QUEUE, envelope, job=Job.DRILL, visibility_timeout=visibility)


# A redelivered report step (the host lost our completion) must not report twice through the
# same reporter; across processes the outcome's Details.drillId lets queries keep one per drill.
_reported: weakref.WeakKeyDictionary[Any, OrderedDict[tuple[str, str], None]] = (
    weakref.WeakKeyDictionary()
)
_reported_lock = threading.Lock()


def _first_report(rt: Runtime, drill_id: str, operation: str) -> bool:
    with _reported_lock:
        seen = _reported.setdefault(rt.reporter, OrderedDict())
        key = (drill_id, operation)
        if key in seen:
            return False
        seen[key] = None
        while len(seen) > 10_000:
            seen.popitem(last=False)
        return True
