from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.events import vm_write_event
from shared import messages
from shared.messages import OnboardingRequest
from shared.names import Status
from shared.ports import Runtime
from shared.settings import Settings
from shared.vm_events import VM_WRITE as VM_WRITE_OP
from shared.vm_events import WRITE_SUCCESS, VmEvent, decide, receive_vm_event
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


@pytest.mark.parametrize(("event", "reason", "_reported"), DROPPED_VM_EVENTS)
def test_other_events_are_skipped_with_a_row(
    event: dict[str, object], reason: str, _reported: bool
) -> None:
    decision = decide(as_event(event), TARGETS)
    assert not decision.accepted
    assert reason in decision.reason
    assert decision.status is Status.SKIPPED


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


# ---------------------------------------------------------- odd content: refused, never raised

LONG_SUBJECT = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/"
    f"virtualMachines/{'v' * 5000}"
)


def odd(**changes: object) -> VmEvent:
    """A good VM write event with some fields replaced by odd content."""
    raw = vm_write_event(SUBSCRIPTION, "rg", "vm1", event_id="e-odd")
    fields: dict[str, object] = {
        "id": raw["id"],
        "event_type": raw["eventType"],
        "subject": raw["subject"],
        "event_time": datetime(2026, 11, 27, tzinfo=UTC),
        "data": raw["data"],
    }
    fields.update(changes)
    return VmEvent(**fields)  # type: ignore[arg-type]


ODD_EVENTS = {
    "null data": (odd(data=None), "data is null, not an object"),
    "list data": (odd(data=[1, 2]), "data is list, not an object"),
    "string data": (odd(data="x"), "data is str, not an object"),
    "long subject": (odd(subject=LONG_SUBJECT), f"subject is {len(LONG_SUBJECT)} characters"),
    "number subject": (odd(subject=42), "subject is int, not a string"),
    "null subject": (odd(subject=None), "subject is null, not a string"),
    "missing id": (odd(id=None), "event id is null"),
    "empty id": (odd(id=""), "event has no id"),
    "long id": (odd(id="i" * 500), "event id is 500 characters"),
    "not a vm id": (odd(subject="/subscriptions/x/resourceGroups/rg"), "is not a VM id"),
    "vm id without a slash": (odd(subject="vm1"), "'vm1' is not a VM id"),
    "naive time": (odd(event_time=datetime(2026, 11, 27)), "has no time zone"),
    "time not a time": (odd(event_time="yesterday"), "eventTime is 'yesterday', not a time"),
    "number operation": (odd(data={"operationName": 7}), "data.operationName is int"),
    "claims disagree": (
        odd(data={"operationName": VM_WRITE_OP, "subscriptionId": OTHER_SUBSCRIPTION}),
        "does not match the subject's",
    ),
    "cloud event without data": (
        VmEvent(
            id="c-1", event_type="t", subject="s", event_time=None, data=None, cloud_event=True
        ),
        "data is null, not an object",
    ),
}


@pytest.mark.parametrize(("event", "reason"), ODD_EVENTS.values(), ids=ODD_EVENTS.keys())
def test_odd_content_is_refused_with_a_reason(event: VmEvent, reason: str) -> None:
    decision = decide(event, TARGETS)
    assert not decision.accepted
    assert decision.status is Status.REFUSED
    assert reason in decision.reason


@pytest.mark.parametrize(("event", "reason"), ODD_EVENTS.values(), ids=ODD_EVENTS.keys())
def test_odd_content_writes_one_bounded_refused_row_through_dispatch(
    event: VmEvent, reason: str
) -> None:
    rt, queues, reporter = runtime()
    decision = receive_vm_event(rt, event)
    assert queues.sent == {}
    [row] = reporter.outcomes
    assert (row.operation, row.status) == ("vm-event", Status.REFUSED)
    assert row.reason == decision.reason
    assert reason in (row.reason or "")
    assert len(row.reason or "") <= 1000
    assert len(row.resource_id or "") <= 1024
    assert len(row.run_id) <= 128
    assert 0 < len(row.details["excerpt"]) <= 200
    json.dumps(row.to_record())


def test_a_refused_row_quotes_the_event_as_delivered() -> None:
    rt, _, reporter = runtime()
    receive_vm_event(
        rt, odd(subject="not-a-vm", data={"operationName": VM_WRITE_OP, "x": "y" * 500})
    )
    [row] = reporter.outcomes
    excerpt = row.details["excerpt"]
    assert len(excerpt) == 200
    assert excerpt.startswith(
        '{"id": "e-odd", "eventType": "Microsoft.Resources.ResourceWriteSuccess"'
    )
    assert '"subject": "not-a-vm"' in excerpt
    assert row.details["schema"] == "EventGridSchema"


def test_an_event_without_a_usable_id_gets_the_same_row_on_every_delivery() -> None:
    rt, _, reporter = runtime()
    event = odd(id=None)
    receive_vm_event(rt, event)
    receive_vm_event(rt, event)
    receive_vm_event(rt, dataclasses.replace(event, subject="vm2"))
    first, again, other = reporter.outcomes
    assert first.status is Status.REFUSED
    assert first.id == again.id
    assert other.id != first.id


def test_a_vm_id_too_long_for_its_message_is_refused_not_raised() -> None:
    """A subject under the 1,024-character bound whose message would break the envelope."""
    subject = (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{'g' * 300}/providers/"
        f"Microsoft.Compute/virtualMachines/{'n' * 300}"
    )
    rt, queues, reporter = runtime()
    decision = receive_vm_event(rt, odd(subject=subject))
    assert queues.sent == {}
    assert decision.status is Status.REFUSED
    [row] = reporter.outcomes
    assert (row.operation, row.status) == ("vm-event", Status.REFUSED)
    assert "the onboarding message cannot be built" in (row.reason or "")
    assert row.vm_name == "n" * 300


class DownQueues(MemoryQueues):
    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        raise ConnectionError("storage is down")


def test_only_a_failure_to_send_raises() -> None:
    reporter = MemoryReporter()
    rt = fakes.runtime(Settings.from_env(base_settings()), FixedClock(), reporter, DownQueues())
    assert receive_vm_event(rt, odd(subject=42)).status is Status.REFUSED
    with pytest.raises(ConnectionError):
        receive_vm_event(rt, odd())


def test_a_forged_claim_is_refused() -> None:
    rt, queues, reporter = runtime()
    raw = vm_write_event(OTHER_SUBSCRIPTION, "rg", "vm1")
    raw["data"]["subscriptionId"] = SUBSCRIPTION  # type: ignore[index]
    receive_vm_event(rt, as_event(raw))
    assert queues.sent == {}
    assert reporter.operations() == [("vm-event", "refused")]


# ---------------------------------------------------------------------------------- property

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Good content three times in four, so that valid events are drawn as well as odd ones."""
    return st.integers(0, 3).flatmap(lambda n: odd if n == 0 else good)


NAMES = mostly(
    st.sampled_from(["rg", "RG-App", "vm1", "web-01"]),
    st.one_of(
        st.sampled_from(["", "a/b", " "]),
        st.text(max_size=20),
        st.integers(0, 1100).map(lambda n: "x" * n),
    ),
)
SUBSCRIPTIONS = mostly(
    st.sampled_from([SUBSCRIPTION, SUBSCRIPTION.upper()]),
    st.sampled_from([OTHER_SUBSCRIPTION, "", "x"]),
)
VM_IDS = st.builds(
    lambda sub, rg, name, lead: (
        f"{lead}subscriptions/{sub}/resourceGroups/{rg}/providers/"
        f"Microsoft.Compute/virtualMachines/{name}"
    ),
    SUBSCRIPTIONS,
    NAMES,
    NAMES,
    st.sampled_from(["/", "/", "", "//"]),
)
VM_WRITE_DATA = st.fixed_dictionaries(
    {"operationName": mostly(st.sampled_from([VM_WRITE_OP, VM_WRITE_OP.upper()]), JSON)},
    optional={
        "status": mostly(st.sampled_from(["Succeeded", "succeeded"]), st.just("Failed") | JSON),
        "subscriptionId": mostly(SUBSCRIPTIONS, JSON),
        "correlationId": mostly(st.uuids().map(str), st.text(max_size=200) | JSON),
        "claims": JSON,
    },
)
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
TIMES = mostly(st.none() | st.datetimes(timezones=OFFSETS), st.datetimes() | JSON)
EVENTS = st.builds(
    VmEvent,
    id=mostly(st.uuids().map(str), st.text(max_size=150) | JSON),
    event_type=mostly(st.just(WRITE_SUCCESS), JSON),
    subject=mostly(VM_IDS, st.text(max_size=50) | JSON),
    event_time=TIMES,
    data=mostly(VM_WRITE_DATA, JSON),
    cloud_event=st.sampled_from([False] * 9 + [True]),
)


@settings(max_examples=400, deadline=None)
@given(event=EVENTS)
def test_no_event_content_makes_receive_raise(event: VmEvent) -> None:
    rt, queues, reporter = runtime()
    decision = receive_vm_event(rt, event)
    rows = [o for o in reporter.outcomes if o.operation == "vm-event"]
    assert len(reporter.outcomes) == len(rows), "only vm-event rows"
    sent = queues.sent.get("onboarding", [])
    assert set(queues.sent) <= {"onboarding"}
    if decision.accepted:
        assert len(sent) == 1
        assert rows == []
        _, payload = messages.decode(sent[0], keys=rt.settings.signing_keys)
        assert isinstance(payload, OnboardingRequest)
        assert payload.subscription_id == SUBSCRIPTION
        return
    assert sent == []
    [row] = rows  # every event Lifeboat does not act on gets its one row
    assert row.status is decision.status
    assert row.reason
    assert len(row.reason) <= 1000
    assert len(row.resource_id or "") <= 1024
    assert all(len(v or "") <= 1024 for v in row.details.values() if not isinstance(v, dict))
    if row.status is Status.REFUSED:
        assert len(row.details["excerpt"]) <= 200
    json.dumps(row.to_record())


# ------------------------------------------------------------------------------- own writes

LIFEBOAT = "5b0a7c1e-0000-4000-8000-00000000f00d"


def own_runtime() -> tuple[Runtime, MemoryQueues, MemoryReporter]:
    queues, reporter = MemoryQueues(), MemoryReporter()
    settings = Settings.from_env(base_settings(LIFEBOAT_PRINCIPAL_ID=LIFEBOAT))
    return fakes.runtime(settings, FixedClock(), reporter, queues), queues, reporter


def _evidence_only(raw: dict[str, Any], principal: str) -> dict[str, Any]:
    """A write whose claims are empty (as in published examples) and whose role assignment's
    principal is still given."""
    raw["data"]["claims"] = {}
    raw["data"]["authorization"]["evidence"] = {"principalId": principal}
    return raw


OWN_WRITES = {
    "long oid claim": vm_write_event(SUBSCRIPTION, "rg", "vm1", caller_object_id=LIFEBOAT),
    "upper-case oid claim": vm_write_event(
        SUBSCRIPTION, "rg", "vm1", caller_object_id=LIFEBOAT.upper()
    ),
    "short oid claim": {
        **vm_write_event(SUBSCRIPTION, "rg", "vm1"),
        "data": {**vm_write_event(SUBSCRIPTION, "rg", "vm1")["data"], "claims": {"oid": LIFEBOAT}},
    },
    "evidence principal": _evidence_only(vm_write_event(SUBSCRIPTION, "rg", "vm1"), LIFEBOAT),
    "own tags write": vm_write_event(
        SUBSCRIPTION,
        "rg",
        "vm1",
        operation="Microsoft.Resources/tags/write",
        caller_object_id=LIFEBOAT,
    ),
}


@pytest.mark.parametrize("raw", OWN_WRITES.values(), ids=OWN_WRITES.keys())
def test_lifeboats_own_write_is_skipped_and_counted(raw: dict[str, Any]) -> None:
    rt, queues, reporter = own_runtime()
    decision = receive_vm_event(rt, as_event(raw))
    assert not decision.accepted
    assert queues.sent == {}
    [row] = reporter.outcomes
    assert (row.operation, row.status, row.reason) == ("vm-event", Status.SKIPPED, "own write")
    assert row.count == 1
    assert row.details["ownWrites"] == 1


def test_someone_elses_write_is_accepted_when_lifeboat_knows_itself() -> None:
    rt, queues, reporter = own_runtime()
    assert receive_vm_event(rt, as_event(vm_write_event(SUBSCRIPTION, "rg", "vm1"))).accepted
    evidence = _evidence_only(vm_write_event(SUBSCRIPTION, "rg", "vm2"), str(uuid4()))
    assert receive_vm_event(rt, as_event(evidence)).accepted
    assert len(queues.sent["onboarding"]) == 2
    assert reporter.outcomes == []


@pytest.mark.parametrize(
    "claims",
    [{}, None, [LIFEBOAT], {"oid": 7}, {"oid": ""}],
    ids=["empty", "null", "list", "number", "blank"],
)
def test_a_write_without_a_readable_caller_is_a_users_write(claims: object) -> None:
    """Published examples carry empty claims: then the event goes on to onboarding, whose
    idempotence (tests/test_event_idempotence.py) keeps Lifeboat's own writes from looping."""
    raw = vm_write_event(SUBSCRIPTION, "rg", "vm1")
    raw["data"]["claims"] = claims
    raw["data"]["authorization"]["evidence"] = {}
    rt, queues, _ = own_runtime()
    assert receive_vm_event(rt, as_event(raw)).accepted
    assert len(queues.sent["onboarding"]) == 1


def test_without_the_setting_no_write_is_lifeboats() -> None:
    rt, queues, _ = runtime()
    raw = vm_write_event(SUBSCRIPTION, "rg", "vm1", caller_object_id=LIFEBOAT)
    assert receive_vm_event(rt, as_event(raw)).accepted
    assert len(queues.sent["onboarding"]) == 1


# ------------------------------------------------------------------------ unhandled events


UNHANDLED = {
    "delete": (
        vm_write_event(
            SUBSCRIPTION, "rg", "vm1", event_type="Microsoft.Resources.ResourceDeleteSuccess"
        ),
        "Microsoft.Resources.ResourceDeleteSuccess",
    ),
    "action": (
        vm_write_event(
            SUBSCRIPTION,
            "rg",
            "vm1",
            event_type="Microsoft.Resources.ResourceActionSuccess",
            operation="Microsoft.Compute/virtualMachines/start/action",
        ),
        "Microsoft.Resources.ResourceActionSuccess",
    ),
    "disk write": (
        vm_write_event(SUBSCRIPTION, "rg", "vm1", operation="Microsoft.Compute/disks/write"),
        "Microsoft.Resources.ResourceWriteSuccess Microsoft.Compute/disks/write",
    ),
}


@pytest.mark.parametrize(("raw", "kind"), UNHANDLED.values(), ids=UNHANDLED.keys())
def test_an_unhandled_event_is_counted_by_type_in_one_row(raw: dict[str, Any], kind: str) -> None:
    rt, queues, reporter = runtime()
    receive_vm_event(rt, as_event(raw))
    receive_vm_event(rt, as_event(raw))  # delivered again: the same row
    assert queues.sent == {}
    first, again = reporter.outcomes
    assert (first.operation, first.status) == ("vm-event", Status.SKIPPED)
    assert first.details["unhandled"] == {kind: 1}
    assert first.count == 1
    assert first.id == again.id


# ---------------------------------------------------------------------------- CloudEvents


def as_cloud_event(raw: dict[str, Any]) -> VmEvent:
    """The same write as the worker reads it from a CloudEvents 1.0 delivery."""
    return VmEvent(
        id=raw["id"],
        event_type=raw["eventType"],
        subject=raw["subject"],
        event_time=datetime(2026, 11, 27, tzinfo=UTC),
        data=raw["data"],
        cloud_event=True,
    )


def test_a_cloud_event_is_decided_like_the_same_event_grid_event() -> None:
    raw = vm_write_event(SUBSCRIPTION, "rg", "vm1", event_id="e-1", correlation_id="c-1")
    grid_rt, grid_queues, _ = runtime()
    cloud_rt, cloud_queues, _ = runtime()
    assert receive_vm_event(grid_rt, as_event(raw)) == receive_vm_event(
        cloud_rt, as_cloud_event(raw)
    )
    [grid] = grid_queues.sent["onboarding"]
    [cloud] = cloud_queues.sent["onboarding"]
    assert messages.decode(grid)[1] == messages.decode(cloud)[1]
    for changed in (
        {"eventType": "Microsoft.Resources.ResourceDeleteSuccess"},
        {"subject": "not-a-vm"},
    ):
        other = {**raw, **changed}
        assert decide(as_event(other), TARGETS) == decide(as_cloud_event(other), TARGETS)


def test_a_refused_cloud_event_says_its_schema() -> None:
    rt, _, reporter = runtime()
    receive_vm_event(
        rt, dataclasses.replace(as_cloud_event(vm_write_event(SUBSCRIPTION, "rg", "v")), data=None)
    )
    [row] = reporter.outcomes
    assert row.status is Status.REFUSED
    assert row.details["schema"] == "CloudEventSchemaV1_0"
    assert '"type": "Microsoft.Resources.ResourceWriteSuccess"' in row.details["excerpt"]
