from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cli.events import vm_write_event
from shared import messages
from shared.messages import OnboardingRequest
from shared.ports import Runtime
from shared.settings import Settings
from shared.vm_events import VmEvent, decide, receive_vm_event
from tests import fakes
from tests.builders import DROPPED_VM_EVENTS
from tests.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION, base_settings
from tests.fakes import FixedClock, MemoryQueues, MemoryReporter

TARGETS = frozenset({SUBSCRIPTION})


def as_event(raw: dict[str, object]) -> VmEvent:
    data = raw.get("data")
    return VmEvent(
        id=str(raw.get("id") or ""),
        event_type=str(raw.get("eventType") or ""),
        subject=str(raw.get("subject") or ""),
        event_time=datetime(2026, 11, 27, tzinfo=UTC),
        data=data if isinstance(data, dict) else {},
    )


def runtime() -> tuple[Runtime, MemoryQueues, MemoryReporter]:
    queues, reporter = MemoryQueues(), MemoryReporter()
    rt = fakes.runtime(Settings.from_env(base_settings()), FixedClock(), reporter, queues)
    return rt, queues, reporter


def test_a_vm_write_in_a_target_subscription_is_accepted() -> None:
    decision = decide(as_event(vm_write_event(SUBSCRIPTION, "RG-App", "vm1")), TARGETS)
    assert decision.accepted
    assert decision.vm is not None
    assert (decision.vm.resource_group, decision.vm.name) == ("RG-App", "vm1")


@pytest.mark.parametrize(("event", "reason", "reported"), DROPPED_VM_EVENTS)
def test_other_events_are_dropped(event: dict[str, object], reason: str, reported: bool) -> None:
    decision = decide(as_event(event), TARGETS)
    assert not decision.accepted
    assert reason in decision.reason
    assert decision.report is reported


def test_a_vm_extension_write_is_not_a_vm_write() -> None:
    raw = vm_write_event(SUBSCRIPTION, "rg", "vm1")
    raw["subject"] = str(raw["subject"]) + "/extensions/AzureMonitorLinuxAgent"
    decision = decide(as_event(raw), TARGETS)
    assert not decision.accepted
    assert "is not a VM id" in decision.reason


def test_claims_that_disagree_with_the_subject_are_not_trusted() -> None:
    raw = vm_write_event(OTHER_SUBSCRIPTION, "rg", "vm1")
    raw["data"]["subscriptionId"] = SUBSCRIPTION  # type: ignore[index]
    decision = decide(as_event(raw), TARGETS)
    assert not decision.accepted
    assert decision.report


def test_failed_operations_are_dropped() -> None:
    raw = vm_write_event(SUBSCRIPTION, "rg", "vm1")
    raw["data"]["status"] = "Failed"  # type: ignore[index]
    assert not decide(as_event(raw), TARGETS).accepted


def test_accepted_event_enqueues_one_onboarding_message() -> None:
    rt, queues, reporter = runtime()
    raw = vm_write_event(SUBSCRIPTION, "rg", "vm1", correlation_id="c-1", event_id="e-1")
    receive_vm_event(rt, as_event(raw))
    [text] = queues.sent["onboarding"]
    envelope, payload = messages.decode(text)
    assert isinstance(payload, OnboardingRequest)
    assert payload.vm_name == "vm1"
    assert payload.correlation_id == "c-1"
    assert envelope.idempotency_key == (
        f"onboarding:/subscriptions/{SUBSCRIPTION}/resourcegroups/rg/providers/"
        "microsoft.compute/virtualmachines/vm1:e-1"
    )
    assert reporter.outcomes == []


def test_forged_subscription_is_reported_and_not_enqueued() -> None:
    rt, queues, reporter = runtime()
    receive_vm_event(rt, as_event(vm_write_event(OTHER_SUBSCRIPTION, "rg", "vm1")))
    assert queues.sent == {}
    [outcome] = reporter.outcomes
    assert (outcome.operation, outcome.status.value) == ("vm-event", "skipped")
    assert "not a target subscription" in (outcome.reason or "")
    json.dumps(outcome.to_record())


def test_odd_id_casing_names_the_same_vm() -> None:
    raw = vm_write_event(SUBSCRIPTION, "RG-App", "VM1")
    raw["subject"] = str(raw["subject"]).upper().replace("VM1", "VM1")
    raw["data"]["subscriptionId"] = SUBSCRIPTION.upper()  # type: ignore[index]
    decision = decide(as_event(raw), TARGETS)
    assert decision.accepted, decision.reason
    assert decision.vm is not None
    assert decision.vm.subscription_id == SUBSCRIPTION
    rt, queues, _ = runtime()
    receive_vm_event(rt, as_event(raw))
    receive_vm_event(rt, as_event(vm_write_event(SUBSCRIPTION, "rg-app", "vm1")))
    keys = {
        messages.decode(t)[0].idempotency_key.rsplit(":", 1)[0] for t in queues.sent["onboarding"]
    }
    assert len(keys) == 1, "one VM, whatever the casing"
