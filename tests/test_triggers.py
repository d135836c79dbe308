"""Every decorated function, called through the app's function index with the inputs the Python
worker builds, against in-memory ports bound through `override_services`.

Inputs come from the azure.functions converters (`QueueMessageInConverter`,
`TimerRequestConverter`, `EventGridEventInConverter`), as the worker and `cli/localhost.py` build
them; each function is called by the `name` its trigger binding declares. So a wrong `arg_name`, an
annotation the worker would refuse, a queue function that hands its message to another queue's
handlers or a timer that fires another timer's run fails a test here.

No function is HTTP-triggered, so no `HttpRequest` is built: a test says so, and fails when one
appears without a test of its own.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import azure.functions as func
import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from azure.functions.queue import QueueMessageInConverter
from azure.functions.timer import TimerRequestConverter

import function_app
from cli.events import vm_write_event
from cli.localhost import index_app
from shared import messages
from shared.messages import (
    DrillPlanRequest,
    DrillState,
    OnboardingRequest,
    OutcomesRetryRequest,
    Payload,
    RotationPlanRequest,
    RotationPruneRequest,
    RotationVmRequest,
    VerificationPlanRequest,
    VerificationVaultRequest,
)
from shared.model import BackupStatus, Outcome, Vault
from shared.names import POISON_SUFFIX, TIMER_SPECS, Queue, Timer
from shared.policies import parse_policies
from shared.schedules import latest_occurrence
from shared.signing import SigningKeys
from shared.snapshots import slot_of
from tests.builders import DROPPED_VM_EVENTS, SUB, disk, night, snapshot_of, vm
from tests.conftest import TEST_SIGNING_KEYS, base_settings
from tests.drill_fakes import FakeDrillCloud
from tests.fakes import FakeWorld, FixedClock, MemoryQueues, MemoryReporter, serve_runtime

POLICIES = parse_policies(
    {
        "version": 1,
        "defaultPolicy": "daily",
        "policies": {
            "daily": {
                "retention": {"daily": 3},
                "snapshotOnCreate": True,
                "drillPlan": "nightly",
            }
        },
        "drillPlans": {"nightly": {"everyDays": 1, "rtoTargetMinutes": 30, "maxLifetimeHours": 4}},
    }
)
SLOT = "202611270200"
DRILL_GROUP = "rg-lifeboat-drill-westeurope"

# What each timer function must fire (its binding's schedule setting must be that timer's).
TIMER_FUNCTIONS = {
    "rotation_timer": Timer.ROTATION,
    "verification_timer": Timer.VERIFICATION,
    "drill_timer": Timer.DRILL,
    "sweeper": Timer.SWEEPER,
    "poison_drain": Timer.POISON,
    "posture_timer": Timer.POSTURE,
}
EVENT_GRID_FUNCTIONS = {"vm_events"}


# ------------------------------------------------------------------------- the function index


@dataclasses.dataclass(frozen=True)
class Function:
    name: str
    trigger: dict[str, Any]
    call: Callable[..., Any]

    def __call__(self, value: object) -> None:
        """As the worker calls it: the input under the name the trigger binding declares."""
        result = self.call(**{self.trigger["name"]: value})
        assert result is None, f"{self.name} returned {result!r}; no function has an output"


def _index() -> dict[str, Function]:
    functions: dict[str, Function] = {}
    for indexed in index_app(function_app.app):
        bindings = json.loads(indexed.get_function_json())["bindings"]
        [trigger] = [b for b in bindings if str(b["type"]).endswith("Trigger")]
        name = indexed.get_function_name()
        functions[name] = Function(name, trigger, indexed.get_user_function())
    return functions


FUNCTIONS = _index()
QUEUE_FUNCTIONS = {
    name: Queue(f.trigger["queueName"])
    for name, f in FUNCTIONS.items()
    if f.trigger["type"] == "queueTrigger"
}


def test_every_function_in_the_index_is_tested_here_and_none_is_http() -> None:
    by_type: dict[str, set[str]] = {}
    for name, f in FUNCTIONS.items():
        by_type.setdefault(f.trigger["type"], set()).add(name)
    assert "httpTrigger" not in by_type  # an HTTP function needs an HttpRequest test here
    assert by_type == {
        "queueTrigger": set(QUEUE_FUNCTIONS),
        "timerTrigger": set(TIMER_FUNCTIONS),
        "eventGridTrigger": EVENT_GRID_FUNCTIONS,
    }
    assert set(QUEUE_FUNCTIONS.values()) == set(Queue)  # every queue has its function
    assert set(QUEUE_FUNCTIONS) == set(GOOD_MESSAGES)
    assert set(TIMER_FUNCTIONS) == set(TIMER_CASES)


_CONVERTERS: dict[str, type[Any]] = {
    "queueTrigger": QueueMessageInConverter,
    "timerTrigger": TimerRequestConverter,
    "eventGridTrigger": EventGridEventInConverter,
}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_trigger_parameter_is_one_the_worker_can_bind(name: str) -> None:
    """The worker binds the parameter named by the binding, checking its annotation."""
    function = FUNCTIONS[name]
    hints = typing.get_type_hints(function.call)
    parameters = [p for p in hints if p != "return"]
    assert parameters == [function.trigger["name"]]
    assert _CONVERTERS[function.trigger["type"]].check_input_type_annotation(
        hints[function.trigger["name"]]
    )
    assert hints["return"] is type(None)


# ----------------------------------------------------------------------------- worker inputs


def queue_message(
    text: str | bytes, *, message_id: str = "msg-1", dequeue_count: int = 1
) -> func.QueueMessage:
    """A queue message as the worker hands it over: the host has base64-decoded the body."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    on_the_queue = base64.b64encode(raw).decode("ascii")  # messageEncoding base64
    inserted = night(27, hour=1)
    value: func.QueueMessage = QueueMessageInConverter.decode(
        Datum(base64.b64decode(on_the_queue, validate=True), "bytes"),
        trigger_metadata={
            "Id": Datum(message_id, "string"),
            "DequeueCount": Datum(str(dequeue_count), "string"),
            "PopReceipt": Datum("pop-1", "string"),
            "InsertionTime": Datum(inserted.isoformat(), "string"),
            "ExpirationTime": Datum((inserted + timedelta(days=7)).isoformat(), "string"),
            "NextVisibleTime": Datum((inserted + timedelta(minutes=10)).isoformat(), "string"),
        },
    )
    return value


def timer_request(*, past_due: bool = False) -> func.TimerRequest:
    value: func.TimerRequest = TimerRequestConverter.decode(
        Datum(
            json.dumps(
                {
                    "Schedule": {"AdjustForDST": False},
                    "ScheduleStatus": {"LastUpdated": night(26).isoformat()},
                    "IsPastDue": past_due,
                }
            ),
            "json",
        ),
        trigger_metadata=None,
    )
    return value


def grid_event(event: Mapping[str, Any]) -> Any:
    return EventGridEventInConverter.decode(Datum(json.dumps(event), "json"), trigger_metadata=None)


def envelope_text(payload: Payload, *, key: str = "test") -> str:
    envelope = messages.make_envelope(
        payload, run_id="test-run", idempotency_key=key, created=night(27)
    )
    return messages.encode(envelope, SigningKeys.parse(TEST_SIGNING_KEYS))


# ------------------------------------------------------------------------------- the ports


class MonitorLike(MemoryReporter):
    """A reporter that also resends ready-made records, as the Azure Monitor reporter does."""

    def __init__(self) -> None:
        super().__init__()
        self.resent: list[dict[str, Any]] = []
        self.refuse = False

    def send(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        if self.refuse:
            return [dict(r) for r in records]
        self.resent.extend(dict(r) for r in records)
        return []


class OneVault:
    """Azure Backup with one vault in the VM's region, which protects every VM."""

    vault = Vault(
        id=f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers"
        "/Microsoft.RecoveryServices/vaults/vault-we",
        name="vault-we",
        subscription_id=SUB,
        resource_group="rg-backup",
        location="westeurope",
    )

    def list_vaults(self, subscription_id: str) -> list[Vault]:
        return [self.vault] if subscription_id == SUB else []

    def get_backup_status(self, vm_id: str, location: str) -> BackupStatus:
        return BackupStatus(protected=True, vault_id=self.vault.id)


class World(FakeWorld):
    """In-memory ports bound as the host's `services()`: one VM with two disks, one old set."""

    reporter: MonitorLike

    def __init__(self) -> None:
        clock = FixedClock(night(27) + timedelta(minutes=1))
        self.cloud = FakeDrillCloud(clock)
        super().__init__(
            clock,
            MemoryQueues(),
            base_settings(TARGET_SUBSCRIPTIONS=SUB),
            POLICIES,
            reporter=MonitorLike(),
            backup=OneVault(),
            drills=self.cloud,
        )
        self.cloud.groups[SUB] = ["rg-app", DRILL_GROUP]
        self.disks = [disk("web-os"), disk("web-data")]
        for d in self.disks:
            self.compute.disks[d.id.lower()] = d
        self.vm = dataclasses.replace(
            vm("web", "web-os", (0, "web-data")), time_created=night(27) - timedelta(minutes=3)
        )
        self.compute.vms = [self.vm]
        self.old = snapshot_of(self.disks[0], night(20))
        self.compute.snapshots[self.old.id.lower()] = self.old
        # The disk's good snapshot of the night: a prune re-reads it before deleting.
        tonight = snapshot_of(self.disks[0], night(27))
        self.compute.snapshots[tonight.id.lower()] = tonight
        serve_runtime(self.rt)

    def sent(self, queue: str) -> list[tuple[messages.Envelope, Payload]]:
        return [messages.decode(text) for text in self.queues.sent.get(queue, [])]

    def rows(self, operation: str, status: str | None = None) -> list[Outcome]:
        return [
            o
            for o in self.reporter.outcomes
            if o.operation == operation and (status is None or o.status.value == status)
        ]


@pytest.fixture
def world() -> World:
    return World()  # conftest resets the services after every test


# ------------------------------------------------------------------------------ queue triggers


def _expect_rotation_vms(world: World) -> None:
    [(_, request)] = world.sent(Queue.ROTATION_VM)
    assert isinstance(request, RotationVmRequest)
    assert (request.vm_id, request.slot) == (world.vm.id, SLOT)
    assert {d.disk_id for d in request.disks} == {d.id for d in world.disks}
    assert world.rows("plan-vm", "planned")


def _expect_snapshots(world: World) -> None:
    created = {target for kind, target in world.compute.writes if kind == "create"}
    assert created == {d.id for d in world.disks}
    assert len(world.rows("snapshot-create", "succeeded")) == 2


def _expect_prune(world: World) -> None:
    assert world.compute.writes == [("delete", world.old.id)]
    assert world.old.id.lower() not in world.compute.snapshots
    [row] = world.rows("snapshot-delete", "succeeded")
    assert row.resource_id == world.old.id


def _expect_onboarding(world: World) -> None:
    [(_, request)] = world.sent(Queue.ROTATION_VM)
    assert isinstance(request, RotationVmRequest)
    assert request.onboarding
    assert request.vm_id == world.vm.id
    assert world.rows("vm-seen", "succeeded")


def _expect_resent(world: World) -> None:
    assert world.reporter.resent == [{"OutcomeId": "o-1", "Operation": "snapshot-create"}]
    assert not world.queues.sent.get(Queue.OUTCOMES_RETRY)


def _expect_drill_started(world: World) -> None:
    [(_, state)] = world.sent(Queue.DRILL)
    assert isinstance(state, DrillState)
    assert (state.step, state.vm_id, state.drill_group) == ("prepare", world.vm.id, DRILL_GROUP)
    assert world.rows("plan-drill", "planned")


def _expect_vault_message(world: World) -> None:
    [(_, request)] = world.sent(Queue.VERIFICATION)
    assert isinstance(request, VerificationVaultRequest)
    assert (request.vault_id, request.designated) == (OneVault.vault.id, True)
    assert "web" in json.dumps(request.vms)


def _prune_request(world: World) -> Payload:
    return RotationPruneRequest(
        subscriptionId=SUB, sourceId=world.disks[0].id, slot=SLOT, snapshotIds=[world.old.id]
    )


def _vm_request(world: World) -> Payload:
    """What tonight's plan sends for the VM (through the rotation_plan function)."""
    plan = RotationPlanRequest(subscriptionId=SUB, slot=SLOT)
    FUNCTIONS["rotation_plan"](queue_message(envelope_text(plan), message_id="plan-1"))
    [(_, request)] = world.sent(Queue.ROTATION_VM)
    world.queues.sent.clear()
    world.reporter.outcomes.clear()
    return request


# queue function -> (the message it is given, what must have happened)
GOOD_MESSAGES: dict[str, tuple[Callable[[World], Payload], Callable[[World], None]]] = {
    "rotation_plan": (
        lambda w: RotationPlanRequest(subscriptionId=SUB, slot=SLOT),
        _expect_rotation_vms,
    ),
    "rotation_vm": (_vm_request, _expect_snapshots),
    "rotation_prune": (_prune_request, _expect_prune),
    "onboarding": (
        lambda w: OnboardingRequest(
            resourceId=w.vm.id,
            subscriptionId=SUB,
            resourceGroup=w.vm.resource_group,
            vmName=w.vm.name,
            eventId="e-1",
        ),
        _expect_onboarding,
    ),
    "outcomes_retry": (
        lambda w: OutcomesRetryRequest(
            records=[{"OutcomeId": "o-1", "Operation": "snapshot-create"}]
        ),
        _expect_resent,
    ),
    "drill_step": (
        lambda w: DrillPlanRequest(subscriptionId=SUB, slot=SLOT),
        _expect_drill_started,
    ),
    "verification_vault": (
        lambda w: VerificationPlanRequest(subscriptionId=SUB, slot=SLOT),
        _expect_vault_message,
    ),
}


@pytest.mark.parametrize("name", sorted(GOOD_MESSAGES))
def test_a_queue_function_handles_a_real_message_of_its_queue(
    name: str, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    make, expect = GOOD_MESSAGES[name]
    message = queue_message(envelope_text(make(world)), message_id="good-1")
    with caplog.at_level(logging.INFO, logger="triggers"):
        FUNCTIONS[name](message)
    expect(world)
    assert not any(q.endswith(POISON_SUFFIX) for q in world.queues.sent)
    [line] = [r.getMessage() for r in caplog.records if r.name == "triggers.invoke"]
    assert line.startswith(f"{QUEUE_FUNCTIONS[name]} message good-1 (delivery 1): ")


@pytest.mark.parametrize("name", sorted(QUEUE_FUNCTIONS))
def test_a_message_that_is_not_json_is_poisoned_on_its_own_queue_with_a_reason(
    name: str, world: World
) -> None:
    queue = QUEUE_FUNCTIONS[name]
    FUNCTIONS[name](queue_message("{not json", message_id="bad-1", dequeue_count=2))
    [wrapped] = [json.loads(t) for t in world.queues.sent.pop(queue + POISON_SUFFIX)]
    assert wrapped["originalQueue"] == queue.value
    assert wrapped["reason"].startswith("not JSON")
    assert (wrapped["message"], wrapped["dequeueCount"]) == ("{not json", 2)
    assert world.queues.sent == {}
    [row] = world.rows("poison", "refused")
    assert row.details["messageId"] == "bad-1"
    assert row.details["queue"] == queue.value


@pytest.mark.parametrize("name", sorted(QUEUE_FUNCTIONS))
def test_a_message_of_another_queue_is_refused_not_handled(name: str, world: World) -> None:
    """A function that handed its message to the wrong queue's handlers would take it here."""
    queue = QUEUE_FUNCTIONS[name]
    other = next(n for n in sorted(GOOD_MESSAGES) if QUEUE_FUNCTIONS[n] != queue)
    text = envelope_text(GOOD_MESSAGES[other][0](world))
    world.queues.sent.clear()
    world.reporter.outcomes.clear()
    FUNCTIONS[name](queue_message(text, message_id="stray-1"))
    [wrapped] = [json.loads(t) for t in world.queues.sent.pop(queue + POISON_SUFFIX)]
    assert f"does not belong on queue {queue.value!r}" in wrapped["reason"]
    assert world.queues.sent == {}
    assert world.compute.writes == []


def test_a_body_that_is_not_utf8_is_poisoned_and_kept_base64(world: World) -> None:
    FUNCTIONS["rotation_plan"](queue_message(b"\xff\xfe\x00", message_id="bin-1"))
    [wrapped] = [json.loads(t) for t in world.queues.sent["rotation-plan-poison"]]
    assert wrapped["message"] == base64.b64encode(b"\xff\xfe\x00").decode("ascii")
    assert "not UTF-8" in wrapped["reason"]


def test_the_last_delivery_of_a_failing_message_is_reported_before_the_host_poisons_it(
    world: World,
) -> None:
    """The function raises (the host's retry); on the last delivery the failure has a row."""

    def unreachable(subscription_id: str) -> list[Any]:
        raise ConnectionError("ARM unreachable")

    world.compute.list_vms = unreachable  # type: ignore[method-assign]
    text = envelope_text(RotationPlanRequest(subscriptionId=SUB, slot=SLOT))
    with pytest.raises(ConnectionError):
        FUNCTIONS["rotation_plan"](queue_message(text, message_id="m-4", dequeue_count=4))
    assert world.rows("rotation-plan", "failed") == []
    with pytest.raises(ConnectionError):
        FUNCTIONS["rotation_plan"](queue_message(text, message_id="m-5", dequeue_count=5))
    [row] = world.rows("rotation-plan", "failed")
    assert "delivery 5 of 5" in (row.reason or "")
    assert world.queues.sent == {}  # the host moves it to poison, not Lifeboat


def test_records_azure_monitor_still_refuses_are_put_back_later(world: World) -> None:
    world.reporter.refuse = True
    records = [{"OutcomeId": "o-1"}]
    FUNCTIONS["outcomes_retry"](queue_message(envelope_text(OutcomesRetryRequest(records=records))))
    [(envelope, again)] = world.sent(Queue.OUTCOMES_RETRY)
    assert isinstance(again, OutcomesRetryRequest)
    assert again.records == records
    assert envelope.put_backs == 1
    assert world.queues.visibility[Queue.OUTCOMES_RETRY][0] > 0


# ------------------------------------------------------------------------------ timer triggers


def _expect_plan_messages(queue: Queue, kind: type[Payload]) -> Callable[[World], None]:
    def expect(world: World) -> None:
        [(_, request)] = world.sent(queue)
        assert isinstance(request, kind)
        assert request.subscription_id == SUB  # type: ignore[attr-defined]

    return expect


def _expect_teardown(world: World) -> None:
    [(_, state)] = world.sent(Queue.DRILL)
    assert isinstance(state, DrillState)
    assert (state.step, state.drill_id, state.swept) == ("teardown", "lbd-aaaaaaaaaa", True)


def _expect_drained(world: World) -> None:
    assert world.queues.sent.get("rotation-plan-poison") == []
    [row] = world.rows("poison", "failed")
    assert row.details["queue"] == "rotation-plan"
    [end] = world.rows("run-end", "succeeded")
    assert end.count == 1


def _an_expired_drill(world: World) -> None:
    world.cloud._add(
        f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}/providers/Microsoft.Compute/disks/d",
        "disks",
        "westeurope",
        {
            "lifeboat:drill": "lbd-aaaaaaaaaa",
            "lifeboat:managed": "true",
            "lifeboat:expires": "2026-11-27T00:00:00Z",
        },
    )


def _expect_posture_off(world: World) -> None:
    """Without LOG_ANALYTICS_WORKSPACE_ID the posture timer says it is off (tests/test_posture.py
    covers what it writes when it reads a workspace)."""
    [end] = world.rows("run-end", "feature-off")
    assert "LOG_ANALYTICS_WORKSPACE_ID" in (end.reason or "")


def _a_poisoned_message(world: World) -> None:
    world.queues.send("rotation-plan-poison", "left by the host")


# timer function -> (what is there before it fires, whether it reports run-start, what it did)
TIMER_CASES: dict[str, tuple[Callable[[World], None], bool, Callable[[World], None]]] = {
    "rotation_timer": (
        lambda w: None,
        True,
        _expect_plan_messages(Queue.ROTATION_PLAN, RotationPlanRequest),
    ),
    "drill_timer": (lambda w: None, True, _expect_plan_messages(Queue.DRILL, DrillPlanRequest)),
    "verification_timer": (
        lambda w: None,
        True,
        _expect_plan_messages(Queue.VERIFICATION, VerificationPlanRequest),
    ),
    # The sweeper reports a `sweep` row per expired drill between its run-start and run-end
    # (its heartbeat: the dead man's switch watches it).
    "sweeper": (_an_expired_drill, True, _expect_teardown),
    "poison_drain": (_a_poisoned_message, True, _expect_drained),
    "posture_timer": (lambda w: None, True, _expect_posture_off),
}


@pytest.mark.parametrize("name", sorted(TIMER_CASES))
def test_a_timer_fires_its_own_run_once(
    name: str, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    timer = TIMER_FUNCTIONS[name]
    setting = TIMER_SPECS[timer][0]
    assert FUNCTIONS[name].trigger["schedule"] == f"%{setting}%"
    prepare, reports_start, expect = TIMER_CASES[name]
    prepare(world)
    with caplog.at_level(logging.INFO, logger="triggers"):
        FUNCTIONS[name](timer_request(past_due=True))
    expect(world)
    schedule = getattr(world.rt.settings, setting.lower())
    slot = slot_of(latest_occurrence(schedule, world.clock.now()).replace(second=0))
    assert {o.run_id for o in world.reporter.outcomes} == {f"{timer}-{slot}"}
    starts = world.rows("run-start", "succeeded")
    assert len(starts) == (1 if reports_start else 0)
    [line] = [r.getMessage() for r in caplog.records if r.name == "triggers.invoke"]
    assert line.startswith(f"{timer} timer (past due: True): ")


# ------------------------------------------------------------------------- Event Grid trigger


def _vm_event_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "triggers.vm_events"]


def test_a_vm_write_event_enqueues_one_onboarding_message(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    raw = vm_write_event(SUB, "rg-app", "web", event_id="ev-1", when=night(27))
    event = grid_event(raw)
    assert isinstance(event, func.EventGridEvent)
    with caplog.at_level(logging.INFO, logger="triggers"):
        FUNCTIONS["vm_events"](event)
    [(envelope, request)] = world.sent(Queue.ONBOARDING)
    assert isinstance(request, OnboardingRequest)
    assert (request.vm_name, request.resource_group, request.event_id) == ("web", "rg-app", "ev-1")
    assert request.event_time == night(27)
    assert request.correlation_id == raw["data"]["correlationId"]
    assert envelope.run_id == "event-ev-1"
    assert set(world.queues.sent) == {Queue.ONBOARDING}
    [(level, line)] = _vm_event_lines(caplog)
    assert level == logging.INFO
    assert line.startswith(f"vm event ev-1 accepted: {raw['subject']}")


def test_a_cloud_event_enqueues_the_same_onboarding_message(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscription delivering CloudEvents 1.0: the worker builds a CloudEvent."""
    raw = vm_write_event(SUB, "rg-app", "web", event_id="ce-1", when=night(27))
    cloud_event = {
        "specversion": "1.0",
        "id": raw["id"],
        "source": raw["topic"],
        "type": raw["eventType"],
        "subject": raw["subject"],
        "time": raw["eventTime"],
        "data": raw["data"],
    }
    event = grid_event(cloud_event)
    assert isinstance(event, func.CloudEvent)
    with caplog.at_level(logging.INFO, logger="triggers"):
        FUNCTIONS["vm_events"](event)
    [(envelope, request)] = world.sent(Queue.ONBOARDING)
    assert isinstance(request, OnboardingRequest)
    assert (request.vm_name, request.event_id, request.event_time) == ("web", "ce-1", night(27))
    assert envelope.run_id == "event-ce-1"
    assert world.reporter.outcomes == []
    [(level, line)] = _vm_event_lines(caplog)
    assert level == logging.INFO
    assert line.startswith(f"vm event ce-1 accepted: {raw['subject']}")


def test_an_unreadable_cloud_event_is_refused_with_a_row_and_a_warning(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    event = grid_event({"specversion": "1.0", "id": "ce-2", "type": 7, "data": "x"})
    with caplog.at_level(logging.INFO, logger="triggers"):
        FUNCTIONS["vm_events"](event)
    assert world.queues.sent == {}
    [row] = world.reporter.outcomes
    assert (row.operation, row.status.value) == ("vm-event", "refused")
    assert row.details["schema"] == "CloudEventSchemaV1_0"
    assert row.details["excerpt"].startswith('{"id": "ce-2", "type": 7')
    [(level, _line)] = _vm_event_lines(caplog)
    assert level == logging.WARNING


@pytest.mark.parametrize(("raw", "reason", "_reported"), DROPPED_VM_EVENTS)
def test_an_event_of_another_kind_is_skipped_with_one_row(
    raw: dict[str, Any],
    reason: str,
    _reported: bool,
    world: World,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every event gets its row; an unhandled type is counted there, not logged at INFO."""
    with caplog.at_level(logging.DEBUG, logger="triggers"):
        FUNCTIONS["vm_events"](grid_event(raw))
    assert world.queues.sent == {}
    [(level, line)] = _vm_event_lines(caplog)
    [row] = world.reporter.outcomes
    assert (row.operation, row.status.value) == ("vm-event", "skipped")
    assert level == (logging.DEBUG if "unhandled" in row.details else logging.INFO)
    assert line.startswith(f"vm event {raw['id']} skipped: {raw['subject']}")
    assert reason in line
