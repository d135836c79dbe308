"""DR drills with in-memory ports: steps, measurements, safety, and 50 drills under faults."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta
from typing import Any

import pytest

from shared import dispatch, drills
from shared.dispatch import Send
from shared.messages import DrillState, decode
from shared.model import DiskAttachment, DrillNetwork, Outcome, PolicyAssignment, SecurityRule
from shared.names import Job, Timer
from shared.policies import parse_policies
from shared.ports import ThrottledError
from shared.snapshots import slot_of
from tests.builders import SUB, disk, night, snapshot_of, vm
from tests.conftest import base_settings
from tests.drill_fakes import (
    DEFAULT_RULES,
    FakeDrillCloud,
    InjectedError,
    SimHost,
    SimQueues,
    operator_network,
)
from tests.fakes import FakeWorld, FixedClock, runtime

DRILL_GROUP = "rg-lifeboat-drill-westeurope"
POLICIES = parse_policies(
    {
        "version": 1,
        "policies": {"daily": {"retention": {"daily": 7}, "drillPlan": "nightly"}},
        "drillPlans": {
            "nightly": {
                "everyDays": 1,
                "rtoTargetMinutes": 30,
                "maxLifetimeHours": 4,
                "bootTimeoutMinutes": 10,
            },
            "slow": {"everyDays": 1, "rtoTargetMinutes": 1, "maxLifetimeHours": 4},
        },
    }
)


class World(FakeWorld):
    """VMs with a week of snapshots, a drill group, and a host on the fake clock."""

    def __init__(self, vms: int = 3, **settings: str) -> None:
        clock = FixedClock(night(27, 4))
        self.cloud = FakeDrillCloud(clock)
        self.cloud.groups[SUB] = ["rg-app", "rg-lifeboat-snapshots", DRILL_GROUP]
        values = base_settings(DRILL_POLL_SECONDS="15", ARM_WRITES_PER_SECOND="4", **settings)
        super().__init__(clock, SimQueues(clock), values, POLICIES, drills=self.cloud)
        for i in range(vms):
            self.add_vm(f"vm{i:02d}", data=i % 2 == 0)
        self.host = SimHost(self.rt, self.queues)

    def add_vm(self, name: str, *, data: bool = True, **extra: Any) -> None:
        os_disk, data_disk = disk(f"{name}-os"), disk(f"{name}-data")
        self.compute.disks[os_disk.id.lower()] = os_disk
        self.compute.disks[data_disk.id.lower()] = data_disk
        machine = vm(name, os_disk.name, *([(0, data_disk.name)] if data else []), **extra)
        self.compute.vms.append(machine)
        for day in range(20, 27):
            for d in (os_disk, data_disk) if data else (os_disk,):
                s = snapshot_of(d, night(day))
                self.compute.snapshots[s.id.lower()] = s

    def night(self) -> None:
        self.fire_drills()
        self.host.drain()

    def fire_drills(self) -> None:
        """The drill timer, as its trigger fires it (DRILL_SCHEDULE is 04:00)."""
        dispatch.fire(self.rt, Timer.DRILL)

    def add_drill_disk(
        self,
        name: str,
        drill_id: str,
        expires: str | None = None,
        *,
        subscription: str = SUB,
        group: str = DRILL_GROUP,
    ) -> None:
        """A disk `name` tagged as drill `drill_id`'s (expiring at `expires`, if given)."""
        tags = {"lifeboat:drill": drill_id, "lifeboat:managed": "true"}
        if expires is not None:
            tags["lifeboat:expires"] = expires
        self.cloud._add(
            f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/"
            f"disks/{name}",
            "disks",
            "westeurope",
            tags,
        )

    def tear_down(self, subscription: str, group: str) -> Outcome:
        """A swept drill's teardown step for `group` in `subscription`, run; its sweep outcome."""
        state = DrillState(
            drillId="lbd-aaaaaaaaaa",
            step="teardown",
            startedAt=self.clock.now(),
            expiresAt=self.clock.now(),
            drillSubscription=subscription,
            drillGroup=group,
            location="westeurope",
            swept=True,
        )
        self.send(state)
        self.host.drain()
        (outcome,) = self.outcomes("sweep")
        return outcome

    def sweep(self) -> int:
        """The sweeper timer; how many expired drills it found (to tear down or blocked)."""
        before = len(self.reporter.outcomes)
        dispatch.fire(self.rt, Timer.SWEEPER)
        return sum(
            1
            for o in self.reporter.outcomes[before:]
            if o.operation == "sweep" and o.status in ("planned", "blocked")
        )

    def send(self, state: DrillState) -> None:
        """A drill message from outside a delivery (as the sweeper or the CLI sends one)."""
        dispatch.submit(self.rt, Job.DRILL, "test", Send(drills.step_message(state, key="test")))

    def outcomes(self, operation: str = "drill") -> list[Outcome]:
        """The rows as the outcomes table counts them: each row id once (a repeat is one row)."""
        rows: dict[str, Outcome] = {}
        for o in self.reporter.outcomes:
            if o.operation == operation:
                assert o.id, o
                rows.setdefault(o.id, o)
        return list(rows.values())


def test_a_night_of_drills_restores_boots_measures_and_leaves_nothing() -> None:
    world = World(vms=3)
    world.night()
    results = world.outcomes()
    assert len(results) == 3
    for outcome in results:
        assert outcome.status == "succeeded", outcome.reason
        assert outcome.rto_seconds is not None
        assert 0 < outcome.rto_seconds <= 30 * 60
        # the set restored is last night's (02:00:03), the drill started at 04:00 or later
        assert outcome.rpo_seconds is not None
        assert outcome.rpo_seconds >= 2 * 3600 - 3
        details = outcome.details
        assert details["rtoTargetSeconds"] == 1800
        assert details["setSlot"] == "202611260200"
        assert outcome.run_id == "drill-202611270400"
        assert set(details["steps"]) >= {"prepare", "create-disks", "create-vm", "wait-ready"}
        to_ready = ("prepare", "create-disks", "create-vm", "wait-ready")
        assert abs(sum(details["steps"][s] for s in to_ready) - outcome.rto_seconds) <= 2
        assert details["checks"] == {"running": True, "agentReady": True, "dataDisksAttached": True}
        assert details["policyAssignments"] == [
            f"Allowed locations [Default] at /subscriptions/{SUB}"
        ]
        assert len(details["deleted"]) >= 5  # VM, NIC, OS disk, VNet, NSG (+ data disk)
    assert world.cloud.remaining() == []
    planned = world.outcomes("plan-drill")
    assert {o.vm_name for o in planned} == {"vm00", "vm01", "vm02"}


def test_a_vm_that_never_boots_fails_with_its_rpo_and_is_torn_down() -> None:
    world = World(vms=1)
    os_disk = disk("vm00-os")
    last = snapshot_of(os_disk, night(26))
    world.cloud.boot_fails.add(last.id.lower())
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "failed"
    assert "did not become ready within 600 s" in (outcome.reason or "")
    assert "Not Ready" in (outcome.reason or "")
    assert outcome.rto_seconds is None
    assert outcome.rpo_seconds is not None
    assert outcome.details["checks"]["agentReady"] is False
    assert world.cloud.remaining() == []


def test_rto_over_target_fails_the_drill() -> None:
    world = World(vms=1)
    world.compute.vms[0] = vm("vm00", "vm00-os", (0, "vm00-data"), tags={"lifeboat:drill": "slow"})
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "failed"
    assert outcome.reason is not None
    assert outcome.reason.endswith("is over the target 60 s")


def test_confidential_and_ephemeral_vms_are_skipped_with_reasons_and_nothing_created() -> None:
    world = World(vms=0)
    world.add_vm("cvm", security_type="ConfidentialVM")
    world.compute.vms.append(vm("eph", None, ephemeral=True))
    world.night()
    reasons = {o.vm_name: (o.status, o.reason) for o in world.outcomes()}
    assert reasons["cvm"][0] == "skipped"
    assert "Confidential" in (reasons["cvm"][1] or "")
    assert reasons["eph"][0] == "skipped"
    assert "ephemeral" in (reasons["eph"][1] or "")
    assert not [c for c in world.cloud.calls if c[0].startswith("begin_create")]


def _operator_network(**changes: Any) -> DrillNetwork:
    return operator_network(**changes)


def _world_with_network(network: DrillNetwork) -> World:
    policies = parse_policies(
        {
            "version": 1,
            "policies": {"daily": {"retention": {"daily": 7}, "drillPlan": "own-net"}},
            "drillPlans": {"own-net": {"everyDays": 1, "network": {"subnetId": network.subnet_id}}},
        }
    )
    world = World(vms=1)
    world.rt = runtime(
        world.rt.settings,
        world.clock,
        world.reporter,
        world.queues,
        compute=world.compute,
        policies=policies,
        drills=world.cloud,
    )
    world.host = SimHost(world.rt, world.queues)
    world.cloud.networks[network.subnet_id.lower()] = network
    return world


def test_an_isolated_operator_network_is_used_and_never_deleted() -> None:
    world = _world_with_network(_operator_network())
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    assert not [c for c in world.cloud.calls if c[0] == "begin_create_network"]
    assert all("vnet-drill" not in d for d in world.cloud.deleted)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {
                "peerings": (
                    "/subscriptions/p/resourceGroups/rg-app/providers/Microsoft.Network/"
                    "virtualNetworks/vnet-prod",
                )
            },
            "the VNet is peered",
        ),
        (
            {
                "security_rules": (
                    SecurityRule(
                        "web-out", 200, "Outbound", "Allow", "Tcp", ("*",), ("Internet",), ("443",)
                    ),
                    *DEFAULT_RULES,
                )
            },
            "allows outbound Internet traffic (rule 'web-out'",
        ),
        ({"security_rules": DEFAULT_RULES}, "allows outbound Internet traffic"),
        ({"default_outbound_access": None}, "default outbound access"),
        ({"nat_gateway_id": "/subscriptions/x/natGateways/nat"}, "NAT gateway"),
        ({"subnet_names": ("snet", "GatewaySubnet")}, "gateway"),
        ({"public_ips": ("/subscriptions/x/publicIPAddresses/pip",)}, "public IP"),
        ({"private_endpoints": ("/subscriptions/x/privateEndpoints/pe",)}, "private endpoint"),
        ({"nsg_id": None}, "no network security group"),
    ],
)
def test_the_pre_flight_blocks_a_network_that_is_not_isolated(
    changes: dict[str, Any], expected: str
) -> None:
    world = _world_with_network(_operator_network(**changes))
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "failed"
    assert "isolation pre-flight failed" in (outcome.reason or "")
    assert expected in (outcome.reason or "")
    assert not [c for c in world.cloud.calls if c[0] == "begin_create_disk"]


def test_a_route_leaving_the_vnet_fails_the_pre_flight_but_a_blackhole_does_not() -> None:
    from shared.isolation import isolation_problems
    from shared.model import NetworkRoute

    table = "/subscriptions/x/routeTables/rt"
    blackhole = _operator_network(
        route_table_id=table, routes=(NetworkRoute("drop", "0.0.0.0/0", "None"),)
    )
    assert isolation_problems(blackhole) == []
    leaving = _operator_network(
        route_table_id=table, routes=(NetworkRoute("fw", "0.0.0.0/0", "VirtualAppliance"),)
    )
    (problem,) = isolation_problems(leaving)
    assert "sends 0.0.0.0/0 to VirtualAppliance" in problem


def test_drill_groups_are_never_planned_and_teardown_refuses_other_groups() -> None:
    world = World(vms=0)
    world.add_vm("restored", group=DRILL_GROUP)
    world.night()
    assert world.outcomes() == []
    # a resource in a production group that carries the drill's tags
    world.add_drill_disk("x", "lbd-aaaaaaaaaa", group="rg-app")
    outcome = world.tear_down(SUB, "rg-app")
    assert outcome.status == "failed"
    assert "is not a drill resource group" in (outcome.reason or "")
    assert len(world.cloud.remaining()) == 1


def throttle(world: World, op: str, times: int, retry_after: int) -> dict[str, int]:
    """The cloud answers `op` with 429 (Retry-After `retry_after`) `times` times; counts them."""
    throttled = {"n": 0}

    def fail(called: str) -> None:
        if called == op and throttled["n"] < times:
            throttled["n"] += 1
            raise ThrottledError(retry_after)

    world.cloud.fail = fail
    return throttled


def test_throttling_re_enqueues_the_step_after_retry_after() -> None:
    world = World(vms=1)
    throttled = throttle(world, "begin_create_disk", times=2, retry_after=40)
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    assert throttled["n"] == 2
    assert world.host.failures == 0  # throttling is not a failure: the step waits its turn
    waits = [o for o in world.reporter.outcomes if o.status == "waiting"]
    assert [o.operation for o in waits] == ["drill-step", "drill-step"]
    assert all(o.details["visibilitySeconds"] >= 40 for o in waits), "never before Retry-After"


def test_the_boot_timeout_counts_from_when_azure_accepted_the_vm_not_from_our_retries() -> None:
    world = World(vms=1)  # boot timeout 600 s; the VM is ready 95 s after its create
    throttled = throttle(world, "begin_create_vm", times=3, retry_after=300)
    world.night()
    (outcome,) = world.outcomes()
    assert throttled["n"] == 3  # 900 s and more spent waiting for our turn to create the VM
    assert outcome.status == "succeeded", outcome.reason
    assert outcome.details["steps"]["create-vm"] >= 900


def test_the_sweeper_removes_what_a_poisoned_drill_left_behind() -> None:
    world = World(vms=1)

    def fail(op: str) -> None:
        if op == "get_vm_status":
            raise InjectedError("instance view unavailable")

    world.cloud.fail = fail
    world.night()
    assert world.outcomes() == []
    assert len(world.queues.poison["drill-step-poison"]) == 1
    assert world.cloud.remaining()  # the drill's VM, NIC, disks and network are still there
    world.cloud.fail = lambda _op: None
    assert world.sweep() == 0  # nothing has expired yet
    world.clock.advance(hours=4)
    assert world.sweep() == 1
    world.host.drain()
    assert world.cloud.remaining() == []
    swept = [o for o in world.outcomes("sweep") if o.status == "succeeded"]
    assert len(swept) == 1
    assert swept[0].reason is not None
    assert swept[0].reason.startswith("swept: past its expiry")


def test_a_duplicated_plan_message_starts_each_drill_once() -> None:
    world = World(vms=2)
    world.fire_drills()
    world.fire_drills()
    world.host.drain()
    assert sorted(o.vm_name or "" for o in world.outcomes()) == ["vm00", "vm01"]
    # however often a drill's report ran, its rows are one row (one id) per drill
    reports = {
        o.details["drillId"]: o.id for o in world.reporter.outcomes if o.operation == "drill"
    }
    assert len({o.id for o in world.reporter.outcomes if o.operation == "drill"}) == len(reports)
    assert world.cloud.remaining() == []


def test_a_step_delivered_again_after_the_drill_moved_on_never_reports_a_failure() -> None:
    """Queues deliver at least once: a copy of wait-ready or validate that comes back while the
    other delivery is deleting the drill VM stops quietly; the drill's one report is the truth."""
    world = World(vms=1)
    copies: list[tuple[str, str]] = []
    send = world.queues.send

    def keep_copies(queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        send(queue, text, visibility_timeout=visibility_timeout)
        if any(f'"step":"{step}"' in text for step in ("wait-ready", "validate")):
            copies.append((queue, text))

    world.queues.send = keep_copies  # type: ignore[method-assign]
    world.night()
    assert {'"step":"validate"' in text for _, text in copies} == {True, False}
    # The copies come back while the VM is still being deleted, as Azure shows it.
    vm_id = _drill_vm_id(copies[0][1])
    world.cloud._add(vm_id, "virtualMachines", "westeurope", {})
    world.cloud.resources[vm_id.lower()].deleting_at = world.clock.now() + timedelta(hours=1)
    before = len(world.cloud.calls)
    for queue, text in copies:
        send(queue, text)
    world.host.drain(until=world.clock.now())
    assert ("get_vm_status", vm_id) in world.cloud.calls[before:]
    assert world.queues.heap == [], "every copy stopped"
    reports = [o for o in world.reporter.outcomes if o.operation == "drill"]
    assert [o.status for o in reports] == ["succeeded"], [o.reason for o in reports]


def _drill_vm_id(text: str) -> str:
    """The drill VM a drill-step message's state names."""
    state = decode(json_text(text))[1]
    assert isinstance(state, DrillState)
    assert state.drill_subscription
    assert state.drill_group
    return (
        f"/subscriptions/{state.drill_subscription}/resourceGroups/{state.drill_group}/"
        f"providers/Microsoft.Compute/virtualMachines/{state.drill_id}-vm"
    )


def test_fifty_drills_under_failures_crashes_and_poison_leave_nothing_and_all_report() -> None:
    """Random step failures, crashes before and after a step hands on, poisoned messages."""
    rng = random.Random(20261128)
    world = World(vms=50)
    world.host = SimHost(world.rt, world.queues, rng=rng, lose_completion=0.05)
    doomed = {f"vm{i:02d}" for i in (3, 17, 41)}  # their drills are poisoned at wait-ready

    def fail(op: str) -> None:
        roll = rng.random()
        if roll < 0.08:
            raise InjectedError(f"injected failure in {op}")
        if roll < 0.10:
            raise ThrottledError(rng.choice([1, 5, 20]))

    def poisoned(op: str) -> None:
        fail(op)
        target = world.cloud.calls[-1][1]
        if op == "get_vm_status" and any(
            drills.drill_id_of(v.id, "202611270400") in target
            for v in world.compute.vms
            if v.name in doomed
        ):
            raise InjectedError("this drill's wait-ready always fails")

    world.cloud.fail = poisoned
    world.queues.crash_before_send = lambda text: (
        '"type":"drill-step"' in text and '"step":"prepare"' not in text and rng.random() < 0.05
    )
    world.night()

    assert world.host.failures > 20  # the faults really happened
    poisoned_ids = {
        decode(json_text(t))[1].drill_id  # type: ignore[attr-defined]
        for t in world.queues.poison.get("drill-step-poison", [])
        if '"type":"drill-step"' in json_text(t)
    }
    assert len(poisoned_ids) >= 3

    # Past every drill's lifetime the sweeper runs (hourly, say) until nothing is left.
    world.cloud.fail = lambda _op: None
    world.queues.crash_before_send = lambda _text: False
    world.clock.advance(hours=5)
    for _ in range(3):
        world.sweep()
        world.host.drain()
        world.clock.advance(hours=1)
    assert world.cloud.remaining() == []

    expected = {drills.drill_id_of(v.id, "202611270400") for v in world.compute.vms}
    reported = {
        o.details["drillId"]
        for o in world.reporter.outcomes
        if o.operation in ("drill", "sweep") and o.status != "planned"
    }
    assert reported == expected
    assert {o.vm_name for o in world.outcomes() if o.status == "succeeded"} >= {
        f"vm{i:02d}" for i in range(50)
    } - doomed - {v for v in _vm_names(poisoned_ids, world)}


def json_text(text: str) -> str:
    """Poison entries hold the original message text (SimQueues keeps it unwrapped)."""
    import json

    try:
        wrapped = json.loads(text)
    except ValueError:
        return text
    return wrapped["message"] if isinstance(wrapped, dict) and "message" in wrapped else text


def _vm_names(drill_ids: set[str], world: World) -> set[str]:
    return {
        v.name for v in world.compute.vms if drills.drill_id_of(v.id, "202611270400") in drill_ids
    }


def test_messages_of_a_drill_fit_a_queue_message_with_many_disks() -> None:
    world = World(vms=0)
    data = [(lun, f"big-data-{lun}") for lun in range(32)]
    for _, name in data:
        d = disk(name)
        world.compute.disks[d.id.lower()] = d
        s = snapshot_of(d, night(26))
        world.compute.snapshots[s.id.lower()] = s
    world.add_vm("big", data=False)
    world.compute.vms[-1] = vm("big", "big-os", *data)
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    assert len(outcome.details["deleted"]) == 32 + 5
    assert drills.WRITES_PER_DRILL > 0
    assert world.clock.now() - night(27, 4) < timedelta(hours=1)


def test_drill_status_lists_running_drills_by_tag_with_their_expiry() -> None:
    from cli.drill_cmd import running_drills

    world = World(vms=1)
    world.fire_drills()
    world.host.drain(until=night(27, 4) + timedelta(minutes=2))
    (running,) = running_drills(world.rt)
    assert running["drillId"] == drills.drill_id_of(world.compute.vms[0].id, "202611270400")
    assert running["resourceGroup"] == DRILL_GROUP
    assert running["expiresAt"] == "2026-11-27T08:00:00Z"
    assert running["expired"] is False
    assert "disks" in running["resources"]
    world.host.drain()
    assert running_drills(world.rt) == []


def test_a_manual_drill_needs_a_plan_and_never_drills_a_drill_group() -> None:
    world = World(vms=0)
    world.add_vm("plain", tags={"lifeboat:policy": "none"})
    world.add_vm("restored", group=DRILL_GROUP)
    with pytest.raises(ValueError, match="has no drill plan"):
        drills.start_drill_now(world.rt, world.compute.vms[0].id)
    with pytest.raises(ValueError, match="no drill plan 'hourly'"):
        drills.start_drill_now(world.rt, world.compute.vms[0].id, "hourly")
    with pytest.raises(ValueError, match="drill resource group"):
        drills.start_drill_now(world.rt, world.compute.vms[1].id, "nightly")
    with pytest.raises(ValueError, match="does not exist"):
        drills.start_drill_now(world.rt, world.compute.vms[0].id + "-gone", "nightly")
    state = drills.start_drill_now(world.rt, world.compute.vms[0].id, "nightly")
    assert state.manual
    world.host.drain()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    assert outcome.details["manual"] is True


def test_the_restored_vm_keeps_the_sources_security_generation_and_plan_and_nothing_else() -> None:
    import dataclasses as dc

    world = World(vms=0)
    world.add_vm("tl")
    source = world.compute.vms[0]
    world.compute.vms[0] = dc.replace(
        source,
        security_type="TrustedLaunch",
        security_profile={
            "securityType": "TrustedLaunch",
            "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
            "encryptionIdentity": {"userAssignedIdentityResourceId": "/id/of/prod"},
        },
        plan={"name": "byol", "publisher": "contoso", "product": "db"},
        size="Standard_E8s_v5",
    )
    os_disk = world.compute.disks[source.os_disk.disk_id.lower()]  # type: ignore[union-attr]
    world.compute.disks[os_disk.id.lower()] = dc.replace(os_disk, hyper_v_generation="V2")
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    (request,) = world.cloud.vm_requests
    assert request.size == "Standard_E8s_v5"
    assert request.plan == {"name": "byol", "publisher": "contoso", "product": "db"}
    assert request.security_profile == {
        "securityType": "TrustedLaunch",
        "uefiSettings": {"secureBootEnabled": True, "vTpmEnabled": True},
    }, "no identity of the source travels with the restore"
    assert request.tags["lifeboat:drill"] == outcome.details["drillId"]
    assert {"lifeboat:managed", "lifeboat:expires", "lifeboat:run"} <= set(request.tags)
    os_request = next(d for d in world.cloud.disk_requests if d.id.endswith("-osdisk"))
    assert (os_request.hyper_v_generation, os_request.security_type) == ("V2", "TrustedLaunch")
    assert os_request.source_snapshot_id.endswith("202611260200")


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        # a Deny for one source only closes nothing: the default rules let the rest out
        (
            (SecurityRule("deny-one", 100, "Outbound", "Deny", "*", ("10.0.0.4/32",)),),
            "allows outbound Internet traffic (rule 'AllowInternetOutBound'",
        ),
        (
            (
                SecurityRule(
                    "deny-one", 100, "Outbound", "Deny", "*", ("*",), ("*",), ("*",), ("1024",)
                ),
            ),
            "allows outbound Internet traffic",
        ),
        # an Allow to one public address, or to another service tag, reaches the Internet
        (
            (
                SecurityRule("dns", 90, "Outbound", "Allow", "Udp", ("*",), ("8.8.8.8",), ("53",)),
                SecurityRule("deny-out", 100, "Outbound", "Deny"),
            ),
            "(rule 'dns'",
        ),
        (
            (
                SecurityRule(
                    "blob", 90, "Outbound", "Allow", "Tcp", ("*",), ("Storage",), ("443",)
                ),
                SecurityRule("deny-out", 100, "Outbound", "Deny"),
            ),
            "(rule 'blob'",
        ),
        (
            (
                SecurityRule(
                    "rdp", 90, "Inbound", "Allow", "Tcp", ("203.0.113.0/24",), ("*",), ("3389",)
                ),
                SecurityRule("deny-in", 100, "Inbound", "Deny"),
            ),
            "allows inbound Internet traffic",
        ),
        (
            (
                SecurityRule("prod", 90, "Outbound", "Allow", "*", ("*",), ("10.1.0.0/16",)),
                SecurityRule("deny-out", 100, "Outbound", "Deny"),
            ),
            "allows outbound VirtualNetwork",
        ),
    ],
)
def test_the_pre_flight_sees_narrow_denies_and_allows_to_addresses(
    rules: tuple[SecurityRule, ...], expected: str
) -> None:
    from shared.isolation import isolation_problems

    deny_in = SecurityRule("deny-in", 100, "Inbound", "Deny")
    network = _operator_network(security_rules=(*rules, deny_in, *DEFAULT_RULES))
    problems = isolation_problems(network)
    assert any(expected in p for p in problems), problems


def test_the_pre_flight_accepts_a_full_deny_written_as_a_port_range() -> None:
    from shared.isolation import isolation_problems

    rules = (
        SecurityRule("deny-in", 100, "Inbound", "Deny", "*", ("*",), ("*",), ("0-65535",)),
        SecurityRule("deny-out", 100, "Outbound", "Deny", "*", ("*",), ("*",), ("0-65535",)),
        SecurityRule("subnet", 90, "Outbound", "Allow", "*", ("*",), ("192.0.2.0/24",)),
    )
    problems = isolation_problems(_operator_network(security_rules=(*rules, *DEFAULT_RULES)))
    assert problems == [
        "NSG /subscriptions/x/resourceGroups/y/providers/Microsoft.Network/"
        "networkSecurityGroups/nsg allows outbound Internet traffic "
        "(rule 'subnet', priority 90)"
    ]


def test_nsg_rules_are_read_with_their_application_security_groups_and_source_ports() -> None:
    from shared.adapters.drills import _rule
    from shared.isolation import first_allow

    asg = (
        "/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/applicationSecurityGroups/db"
    )
    deny_to_asg = _rule(
        {
            "name": "deny-db",
            "properties": {
                "priority": 100,
                "direction": "Outbound",
                "access": "Deny",
                "protocol": "*",
                "sourceAddressPrefix": "*",
                "sourcePortRange": "*",
                "destinationPortRange": "*",
                "destinationApplicationSecurityGroups": [{"id": asg}],
            },
        }
    )
    assert deny_to_asg.destinations == (asg,)
    allow_out = SecurityRule("out", 200, "Outbound", "Allow", "*", ("*",), ("Internet",))
    assert first_allow([deny_to_asg, allow_out], "Outbound", "Internet") == allow_out
    ports = _rule(
        {
            "name": "p",
            "properties": {
                "priority": 100,
                "direction": "Inbound",
                "access": "Deny",
                "protocol": "*",
                "sourcePortRanges": ["1-1023"],
            },
        }
    )
    assert ports.source_ports == ("1-1023",)


def test_a_garbled_drill_tag_is_blocked_and_the_sweeper_goes_on() -> None:
    world = World(vms=0)
    for name, drill_id in (("bad", "lbd-0189abcdef"), ("good", "lbd-aaaaaaaaaa")):
        world.add_drill_disk(name, drill_id, expires="2026-11-27T00:00:00Z")
    assert world.sweep() == 2
    world.host.drain()
    assert [r.rsplit("/", 1)[1] for r in world.cloud.remaining()] == ["bad"]
    sweeps = {o.details["drillId"]: o.status for o in world.outcomes("sweep")}
    assert sweeps["lbd-0189abcdef"] == "blocked"


def test_the_sweeper_tears_down_what_it_found_whatever_the_tag_value_s_spacing() -> None:
    world = World(vms=0)
    world.add_drill_disk("d", " LBD-AAAAAAAAAA ", expires="2026-11-27T00:00:00Z")
    assert world.sweep() == 1
    world.host.drain()
    assert world.cloud.remaining() == []


def test_a_vm_with_64_data_disks_and_long_names_is_drilled() -> None:
    world = World(vms=0)
    many = [  # a landing zone: many long-named assignments inherited from management groups
        PolicyAssignment(
            f"a{i:032d}",
            f"Deploy Microsoft Defender for Endpoint agent on Linux virtual machines ({i})",
            "/providers/Microsoft.Management/managementGroups/contoso-landingzones-corp",
            "Default",
        )
        for i in range(200)
    ]
    world.cloud.list_policy_assignments = lambda _s, _g: many  # type: ignore[method-assign]
    group = "rg-" + "p" * 87  # resource group names go up to 90 characters
    long = "d" * 70
    data = [(lun, f"{long}-data-{lun:02d}") for lun in range(64)]
    for _, name in [(None, f"{long}-os"), *data]:
        d = disk(name, group=group)
        world.compute.disks[d.id.lower()] = d
        s = snapshot_of(d, night(26))
        world.compute.snapshots[s.id.lower()] = s
    big = vm("big", None, group=group)
    world.compute.vms.append(
        dataclasses.replace(
            big,
            os_disk=DiskAttachment(None, disk(f"{long}-os", group=group).id),
            data_disks=tuple(DiskAttachment(lun, disk(name, group=group).id) for lun, name in data),
        )
    )
    world.night()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    assert outcome.details["checks"]["dataDisksAttached"] is True
    listed = outcome.details["policyAssignments"]
    assert listed[0].startswith("Deploy Microsoft Defender")
    assert listed[-1].endswith("more (list them with az policy assignment list)")
    assert world.cloud.remaining() == []
    assert world.queues.poison == {} or not any(world.queues.poison.values())


def test_a_teardown_that_never_finishes_reports_and_leaves_the_rest_to_the_sweeper() -> None:
    world = World(vms=1)
    world.cloud.delete_seconds = 10 * 24 * 3600  # Azure never finishes deleting the VM
    world.night()  # drains: the teardown stops polling after its limit
    (outcome,) = world.outcomes()
    assert outcome.status == "failed"
    assert "teardown did not finish within 60 min" in (outcome.reason or "")
    assert outcome.rto_seconds is not None  # the restore itself worked and was measured
    assert len(world.cloud.remaining()) >= 5  # the VM first, so everything is still there
    for fake in world.cloud.resources.values():
        fake.deleting_at = None  # the delete failed on Azure's side; the VM is back
    world.cloud.delete_seconds = 10
    world.clock.advance(hours=4)
    assert world.sweep() == 1
    world.host.drain()
    assert world.cloud.remaining() == []
    swept = [o.status for o in world.outcomes("sweep")]
    assert swept == ["planned", "succeeded"]


def test_teardown_never_deletes_in_a_subscription_lifeboat_does_not_serve() -> None:
    world = World(vms=0)
    other = "00000000-0000-0000-0000-00000000abcd"
    world.cloud.groups[other] = [DRILL_GROUP]
    # drill-tagged, in a group of the right name, in somebody else's subscription
    world.add_drill_disk("x", "lbd-aaaaaaaaaa", subscription=other)
    outcome = world.tear_down(other, DRILL_GROUP)
    assert outcome.status == "failed"
    assert f"subscription {other} is not one Lifeboat drills in" in (outcome.reason or "")
    assert len(world.cloud.remaining()) == 1


def test_a_manual_drill_in_a_planned_drills_minute_is_a_drill_of_its_own() -> None:
    world = World(vms=1)
    machine = world.compute.vms[0]
    world.fire_drills()  # the 04:00 plan
    manual = drills.start_drill_now(world.rt, machine.id, "nightly")  # and a manual one at 04:00
    again = drills.start_drill_now(world.rt, machine.id, "nightly")  # the CLI run twice
    assert again.drill_id == manual.drill_id
    planned = drills.drill_id_of(machine.id, "202611270400")
    assert manual.drill_id != planned
    world.host.drain()
    outcomes = world.outcomes()
    assert sorted(o.details["drillId"] for o in outcomes) == sorted([planned, manual.drill_id])
    assert {o.status for o in outcomes} == {"succeeded"}
    assert world.cloud.remaining() == []


def test_the_rpo_is_the_sets_age_when_it_was_chosen_never_negative() -> None:
    world = World(vms=1)
    machine = world.compute.vms[0]
    state = drills.start_drill_now(world.rt, machine.id, "nightly")
    # the message waits on the queue while tonight's set is taken
    world.clock.advance(seconds=30)
    for name in ("vm00-os", "vm00-data"):
        s = snapshot_of(world.compute.disks[disk(name).id.lower()], state.started_at)
        world.compute.snapshots[s.id.lower()] = s  # created 3 s after the drill started
    world.host.drain()
    (outcome,) = world.outcomes()
    assert outcome.status == "succeeded", outcome.reason
    assert outcome.details["setSlot"] == slot_of(state.started_at)
    assert outcome.rpo_seconds == 27


def test_drill_status_shows_a_drill_whose_expiry_tag_has_no_timezone_as_expired() -> None:
    from cli.drill_cmd import running_drills

    world = World(vms=0)
    world.add_drill_disk("d", "lbd-aaaaaaaaaa", expires="2026-11-28T00:00:00")
    (running,) = running_drills(world.rt)
    assert running["expired"] is True  # as the sweeper reads it: no readable expiry
