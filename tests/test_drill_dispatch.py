"""Drills on the one dispatch path: tables, timers, put-backs, refusals, one row per drill."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any, get_args

import pytest

from shared import dispatch, drills, messages
from shared.dispatch import Done, PutBack, Refuse, Send
from shared.messages import DrillPlanRequest, DrillState
from shared.model import ConnectivityConfiguration, DrillNetwork, SecurityRule
from shared.names import Job, Queue, Timer
from shared.policies import parse_policies
from shared.ports import RefusedError, ThrottledError
from shared.settings import Settings
from tests.builders import OTHER_SUB, SUB, disk, disk_id, night, snapshot_of, vm, vm_id
from tests.conftest import base_settings
from tests.drill_fakes import FakeDrillCloud, operator_network
from tests.fakes import (
    FakeCompute,
    FixedClock,
    MemoryQueues,
    MemoryReporter,
    Throttled,
    deliver,
    runtime,
)

DRILL_GROUP = "rg-lifeboat-drill-westeurope"
NOW = night(27, 4)
IMPOSTOR = "lb-aaaaaaaaaaaaaaaa-202611270200"
POLICIES = parse_policies(
    {
        "version": 1,
        "policies": {"daily": {"retention": {"daily": 7}, "drillPlan": "nightly"}},
        "drillPlans": {"nightly": {"everyDays": 1}},
    }
)


def state(**changes: Any) -> DrillState:
    values: dict[str, Any] = {
        "drillId": "lbd-abcdefghij",
        "step": "prepare",
        "startedAt": NOW,
        "expiresAt": NOW + timedelta(hours=4),
        "drillSubscription": SUB,
        "drillGroup": DRILL_GROUP,
        "location": "westeurope",
        "vmId": vm("web", "web-os").id,
        "vmName": "web",
        "subscriptionId": SUB,
        "plan": "nightly",
        "runId": "drill-202611270400",
    }
    values.update(changes)
    return DrillState.model_validate(values)


def text_of(payload: DrillState | DrillPlanRequest, key: str = "key-1") -> str:
    envelope = messages.make_envelope(
        payload, run_id="drill-202611270400", idempotency_key=key, created=NOW
    )
    return messages.encode(envelope)


def world(
    clock: FixedClock | None = None, **ports: Any
) -> tuple[Any, MemoryQueues, MemoryReporter]:
    queues, reporter = MemoryQueues(), MemoryReporter()
    settings = Settings.from_env(base_settings())
    rt = runtime(settings, clock or FixedClock(NOW), reporter, queues, **ports)
    return rt, queues, reporter


class Drill:
    """A drill of VM `web` (OS and data disk, last night's set) on an operator's isolated
    subnet, run message by message through the real dispatch on port fakes."""

    def __init__(self) -> None:
        self.clock = FixedClock(NOW)
        self.compute = FakeCompute(self.clock)
        self.compute.vms.append(vm("web", "web-os", (0, "web-data")))
        for name in ("web-os", "web-data", "other-os"):
            d = disk(name)
            self.compute.disks[d.id.lower()] = d
            s = snapshot_of(d, night(27))
            self.compute.snapshots[s.id.lower()] = s
        # In Lifeboat's group, taken from web-os, named for some other disk: not Lifeboat's.
        impostor = snapshot_of(disk("web-os"), night(27), name=IMPOSTOR)
        self.compute.snapshots[impostor.id.lower()] = impostor
        self.cloud = FakeDrillCloud(self.clock)
        self.cloud.groups[SUB] = [DRILL_GROUP]
        self.network(operator_network())
        self.rt, self.queues, self.reporter = world(
            self.clock, compute=self.compute, drills=self.cloud, policies=POLICIES
        )

    def network(self, network: DrillNetwork) -> None:
        """What a read of the drill subnet answers from now on."""
        self.cloud.networks[SUBNET.lower()] = network

    def run(self, message: DrillState) -> tuple[Any, DrillState | None]:
        """Deliver one step; its result and the drill message it sent, if any."""
        self.queues.sent.clear()
        result = deliver(self.rt, text_of(message))
        following = [p for _, p in sent(self.queues) if isinstance(p, DrillState)]
        assert len(following) <= 1
        return result, following[0] if following else None

    def until(self, step: str) -> DrillState:
        """Run the drill from its start to the first message of `step`."""
        message: DrillState | None = state(subnetId=SUBNET)
        while message is not None and message.step != step:
            self.clock.advance(seconds=30)
            _, message = self.run(message)
        assert message is not None, f"the drill never reached {step}"
        return message

    def creates(self) -> list[tuple[str, str]]:
        return [c for c in self.cloud.calls if c[0].startswith("begin_create")]


SUBNET = operator_network().subnet_id


def sent(queues: MemoryQueues, queue: str = Queue.DRILL) -> list[tuple[messages.Envelope, Any]]:
    return [messages.decode(text) for text in queues.sent.get(queue, [])]


def test_the_drills_tables_serve_the_drill_queue_and_both_timers() -> None:
    assert dispatch.handlers_for(Queue.DRILL) == {
        "drill-plan": drills.plan_drills,
        "drill-step": drills.drill_step,
    }
    assert drills.TIMERS[Timer.DRILL] is drills.start_drills
    assert drills.TIMERS[Timer.SWEEPER] is drills.sweep
    # A handler for every step a DrillState can carry, and for no other.
    assert set(drills.STEPS) == set(get_args(messages.DrillStep))


def test_the_drill_timer_records_its_run_start_and_sends_one_plan_per_subscription() -> None:
    rt, queues, reporter = world()
    result = dispatch.fire(rt, Timer.DRILL)
    assert isinstance(result, Send)
    plans = sent(queues)
    assert [p.subscription_id for _, p in plans] == sorted(rt.settings.subscriptions)
    for envelope, plan in plans:
        assert isinstance(plan, DrillPlanRequest)
        assert plan.slot == "202611270400"
        assert envelope.run_id == "drill-202611270400"
        assert envelope.idempotency_key == f"drill-plan:{plan.subscription_id}:202611270400"
    (start,) = reporter.outcomes
    assert (start.operation, start.status, start.job) == ("run-start", "succeeded", Job.DRILL)
    assert start.count == len(plans)


@pytest.mark.parametrize("retry_after", [0.5, 37, 1200])
def test_a_throttled_step_is_put_back_once_by_dispatch_after_retry_after(
    retry_after: float,
) -> None:
    port = Throttled(retry_after)
    rt, queues, reporter = world(compute=port, drills=port, policies=POLICIES)
    for message in (state(), DrillPlanRequest(subscriptionId=SUB, slot="202611270400")):
        queues.sent.clear()
        queues.visibility.clear()
        result = deliver(rt, text_of(message))
        assert isinstance(result, PutBack), result
        ((envelope, payload),) = sent(queues)
        assert payload == message, "the work as it was: nothing half-done travels on"
        assert envelope.put_backs == 1
        (visibility,) = queues.visibility[Queue.DRILL]
        assert math.ceil(retry_after) <= visibility <= dispatch.MAX_VISIBILITY_SECONDS
    assert [o.status for o in reporter.outcomes] == ["waiting", "waiting"]


def test_a_refused_create_sends_the_drill_to_teardown_with_the_reason() -> None:
    drill = Drill()
    creating = drill.until("create-disks")

    def refuse(op: str) -> None:
        if op == "begin_create_disk":
            raise RefusedError("RequestDisallowedByPolicy", "disks of this SKU are denied here")

    drill.cloud.fail = refuse
    result, after = drill.run(creating)
    assert isinstance(result, Send)
    assert after is not None
    assert after.step == "teardown"
    assert after.outcome == "failed"
    assert after.reason == (
        "Azure refused during create-disks: RequestDisallowedByPolicy: "
        "disks of this SKU are denied here"
    )
    ((envelope, _),) = sent(drill.queues)
    assert envelope.idempotency_key == "drill:lbd-abcdefghij:teardown:0"
    assert envelope.run_id == "drill-202611270400"
    assert drill.queues.sent.get(Queue.DRILL.poison) is None


ALWAYS_ALLOW_OUT = SecurityRule(
    "cfg/ruleCollections/rc/rules/egress", 10, "Outbound", "AlwaysAllow", "*", ("*",), ("Internet",)
)
CHANGES = [
    pytest.param(
        {"peerings": (vm_id("prod-vnet").replace("virtualMachines", "virtualNetworks"),)},
        "the VNet is peered",
        id="peering-added",
    ),
    pytest.param(
        {"connectivity_configurations": (ConnectivityConfiguration("/nm/cc/mesh", "Mesh"),)},
        "connectivity configuration /nm/cc/mesh (Mesh)",
        id="avnm-mesh-added",
    ),
    pytest.param(
        {"admin_rules": (ALWAYS_ALLOW_OUT,)},
        "always allows outbound Internet traffic",
        id="avnm-always-allow-added",
    ),
    pytest.param(
        {
            "security_rules": (
                SecurityRule("web-out", 90, "Outbound", "Allow", "Tcp", ("*",), ("*",), ("443",)),
                *operator_network().security_rules,
            )
        },
        "allows outbound Internet traffic (rule 'web-out'",
        id="nsg-rule-opened",
    ),
    pytest.param(
        {"network_manager_unknown": "security admin rules: AuthorizationFailed: no"},
        "isolation cannot be proven",
        id="avnm-unreadable",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), CHANGES)
@pytest.mark.parametrize("step", ["create-disks", "create-vm"])
def test_a_network_changed_after_the_pre_flight_fails_the_drill_before_anything_is_created(
    step: str, changes: dict[str, Any], expected: str
) -> None:
    drill = Drill()
    message = drill.until(step)
    made = drill.creates()
    drill.network(operator_network(**changes))
    result, after = drill.run(message)
    assert isinstance(result, Send)
    assert after is not None
    assert (after.step, after.outcome) == ("teardown", "failed")
    assert after.reason is not None
    assert after.reason.startswith(f"isolation check before {step} failed: ")
    assert expected in after.reason
    assert drill.creates() == made, "nothing created after the network changed"
    assert drill.queues.sent.get(Queue.DRILL.poison) is None


def test_an_unchanged_network_lets_the_drill_create_its_disks_nic_and_vm() -> None:
    drill = Drill()
    drill.until("wait-ready")
    kinds = [c[1].rsplit("-", 1)[1] for c in drill.creates()]
    assert kinds == ["osdisk", "lun0", "nic", "vm"]
    assert [c for c in drill.cloud.calls if c[0] == "get_network"] == [("get_network", SUBNET)] * 4


def test_a_throttled_network_read_before_a_create_puts_the_step_back_untouched() -> None:
    drill = Drill()
    creating = drill.until("create-disks")

    def throttled(op: str) -> None:
        if op == "get_network":
            raise ThrottledError(45)

    drill.cloud.fail = throttled
    result, _ = drill.run(creating)
    assert isinstance(result, PutBack)
    assert result.after == 45
    ((_, again),) = sent(drill.queues)
    assert again == creating
    assert drill.creates() == []


def _snapshot_id(name: str, *, sub: str = SUB, group: str = "rg-lifeboat-snapshots") -> str:
    return (
        f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/snapshots/{name}"
    )


def _forge_os(**changes: Any) -> Any:
    """A forgery of the OS disk's entry of a create-disks message."""

    def forge(message: DrillState) -> DrillState:
        os_disk, *rest = message.snapshots
        return message.model_copy(update={"snapshots": [os_disk.model_copy(update=changes), *rest]})

    return forge


OTHER = snapshot_of(disk("other-os"), night(27))
WEB_OS = snapshot_of(disk("web-os"), night(27))
FORGED = [
    pytest.param(
        _forge_os(snapshot_id=_snapshot_id(WEB_OS.name, sub=OTHER_SUB)),
        f"is in subscription {OTHER_SUB}, not the VM's",
        id="snapshot-in-another-subscription",
    ),
    pytest.param(
        _forge_os(snapshot_id=_snapshot_id(WEB_OS.name, group="rg-app")),
        "is in rg-app, not Lifeboat's rg-lifeboat-snapshots",
        id="snapshot-in-another-group",
    ),
    pytest.param(
        _forge_os(snapshot_id=disk_id("web-os")),
        "is not a Lifeboat snapshot id",
        id="a-disk-not-a-snapshot",
    ),
    pytest.param(
        _forge_os(disk_id=disk_id("other-os"), snapshot_id=OTHER.id),
        "is not a disk of web",
        id="another-vms-disk",
    ),
    pytest.param(
        _forge_os(snapshot_id=OTHER.id),
        f"was taken from {disk_id('other-os')}, not {disk_id('web-os')}",
        id="snapshot-of-another-disk",
    ),
    pytest.param(
        _forge_os(snapshot_id=_snapshot_id(IMPOSTOR)),
        "is not Lifeboat's",
        id="name-not-its-creation-data",
    ),
    pytest.param(
        lambda m: m.model_copy(update={"drill_group": "rg-app"}),
        "rg-app is not a drill resource group",
        id="outside-the-drill-group",
    ),
    pytest.param(
        lambda m: m.model_copy(update={"drill_subscription": OTHER_SUB}),
        f"subscription {OTHER_SUB} is not one Lifeboat drills in",
        id="outside-the-drill-subscriptions",
    ),
    pytest.param(
        lambda m: m.model_copy(update={"subnet_id": None}),
        "names no drill subnet",
        id="skipped-the-pre-flight",
    ),
]


@pytest.mark.parametrize(("forge", "expected"), FORGED)
def test_a_forged_create_disks_message_is_refused_and_nothing_is_written(
    forge: Any, expected: str
) -> None:
    drill = Drill()
    creating = drill.until("create-disks")
    before = len(drill.reporter.outcomes)
    result, after = drill.run(forge(creating))
    assert isinstance(result, Refuse)
    assert expected in result.reason
    assert after is None
    assert drill.creates() == []
    (poisoned,) = drill.queues.sent[Queue.DRILL.poison]
    assert expected in json.loads(poisoned)["reason"]
    (row,) = drill.reporter.outcomes[before:]
    assert (row.operation, row.status) == ("poison", "refused")


def test_a_report_delivered_twice_is_one_row_and_each_sweep_of_a_drill_its_own() -> None:
    rt, queues, reporter = world()
    report = state(step="report", outcome="succeeded", timings={"report": [NOW]})
    for key in ("drill:lbd-abcdefghij:report:0", "drill:lbd-abcdefghij:report:0", "other"):
        assert isinstance(deliver(rt, text_of(report, key)), Done)
    other = state(drillId="lbd-bbbbbbbbbb", step="report", outcome="failed")
    deliver(rt, text_of(other))
    swept = state(step="report", swept=True, vmId=None, subscriptionId=None)
    deliver(rt, text_of(swept))
    later = swept.model_copy(update={"started_at": NOW + timedelta(hours=1)})
    deliver(rt, text_of(later))
    rows = [(o.operation, o.details["drillId"], o.id) for o in reporter.outcomes]
    assert [r[:2] for r in rows] == [
        ("drill", "lbd-abcdefghij"),
        ("drill", "lbd-abcdefghij"),
        ("drill", "lbd-abcdefghij"),
        ("drill", "lbd-bbbbbbbbbb"),
        ("sweep", "lbd-abcdefghij"),
        ("sweep", "lbd-abcdefghij"),
    ]
    ids = [r[2] for r in rows]
    assert ids[0] == ids[1] == ids[2] == drills.report_id(report)
    assert len(set(ids)) == 4, "one row per drill, one per sweep of it"
    assert queues.sent == {}


def test_a_manual_start_goes_through_dispatch_and_an_invalid_one_sends_nothing() -> None:
    compute = FakeCompute(FixedClock(NOW))
    compute.vms.append(vm("web", "web-os"))
    rt, queues, reporter = world(compute=compute, policies=POLICIES)
    with pytest.raises(ValueError, match="no drill plan 'weekly'"):
        drills.start_drill_now(rt, compute.vms[0].id, "weekly")
    assert queues.sent == {}
    started = drills.start_drill_now(rt, compute.vms[0].id)
    ((envelope, payload),) = sent(queues)
    assert payload == started
    assert started.manual
    assert started.step == "prepare"
    assert envelope.idempotency_key == f"drill:{started.drill_id}:start"
    assert envelope.run_id == "drill-202611270400"
    assert queues.visibility[Queue.DRILL] == [0]
    assert reporter.outcomes == []


def test_a_forged_create_vm_message_is_refused_before_the_nic() -> None:
    drill = Drill()
    vm_step = drill.until("create-vm")
    made = drill.creates()
    forged = _forge_os(snapshot_id=OTHER.id)(vm_step)
    result, after = drill.run(forged)
    assert isinstance(result, Refuse)
    assert "was taken from" in result.reason
    assert (after, drill.creates()) == (None, made)
    # the disks the VM would attach must be this drill's, made from the snapshots it names
    os_disk = next(f for k, f in drill.cloud.resources.items() if k.endswith("-osdisk"))
    os_disk.tags["lifeboat:drill"] = "lbd-bbbbbbbbbb"
    result, _ = drill.run(vm_step)
    assert isinstance(result, Refuse)
    assert "is not this drill's" in result.reason
    assert drill.creates() == made
