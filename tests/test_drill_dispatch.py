"""Drills on the one dispatch path: tables, timers, put-backs, refusals, one row per drill."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, get_args

import pytest

from shared import dispatch, drills, messages
from shared.dispatch import Done, PutBack, Send
from shared.messages import DrillPlanRequest, DrillState
from shared.names import Job, Queue, Timer
from shared.policies import parse_policies
from shared.ports import RefusedError
from shared.settings import Settings
from tests.builders import SUB, disk_id, night, vm
from tests.conftest import base_settings
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


class RefusingDisks:
    """A drill cloud where no drill resource exists yet and every disk create is refused."""

    def get_resource(self, resource_id: str) -> None:
        return None

    def begin_create_disk(self, request: object) -> None:
        raise RefusedError("RequestDisallowedByPolicy", "disks of this SKU are denied here")


def world(**ports: Any) -> tuple[Any, MemoryQueues, MemoryReporter]:
    queues, reporter = MemoryQueues(), MemoryReporter()
    rt = runtime(Settings.from_env(base_settings()), FixedClock(NOW), reporter, queues, **ports)
    return rt, queues, reporter


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
    rt, queues, _ = world(drills=RefusingDisks())
    snapshot = {
        "diskId": disk_id("os"),
        "snapshotId": f"/subscriptions/{SUB}/resourceGroups/rg-lifeboat-snapshots/providers/"
        "Microsoft.Compute/snapshots/os",
        "timeCreated": NOW - timedelta(hours=2),
    }
    creating = state(
        step="create-disks",
        setSlot="202611270200",
        snapshots=[snapshot],
        timings={"prepare": [NOW, NOW], "create-disks": [NOW]},
    )
    result = deliver(rt, text_of(creating))
    assert isinstance(result, Send)
    ((envelope, after),) = sent(queues)
    assert after.step == "teardown"
    assert after.outcome == "failed"
    assert after.reason == (
        "Azure refused during create-disks: RequestDisallowedByPolicy: "
        "disks of this SKU are denied here"
    )
    assert envelope.idempotency_key == "drill:lbd-abcdefghij:teardown:0"
    assert envelope.run_id == "drill-202611270400"
    assert queues.sent.get(Queue.DRILL.poison) is None


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
