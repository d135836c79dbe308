"""VM write events from Event Grid: validate, filter, and hand new work to the onboarding queue.

The event only says "something wrote this VM"; it is never trusted beyond that. Onboarding reads
the VM's current state itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import dispatch
from shared.dispatch import Context, Done, Outgoing, Result, Send
from shared.messages import OnboardingRequest
from shared.model import VmRef, parse_vm_id
from shared.names import Job
from shared.ports import Runtime

log = logging.getLogger(__name__)

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
VM_WRITE = "Microsoft.Compute/virtualMachines/write"


@dataclass(frozen=True, slots=True)
class VmEvent:
    id: str
    event_type: str
    subject: str
    event_time: datetime | None
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    accepted: bool
    reason: str
    vm: VmRef | None = None
    # Drops worth an outcome row (forgeries, misconfiguration), not routine noise.
    report: bool = False


def decide(event: VmEvent, subscriptions: frozenset[str]) -> Decision:
    if not event.id:
        return Decision(False, "event has no id", report=True)
    if event.event_type != WRITE_SUCCESS:
        return Decision(False, f"event type {event.event_type!r} is not {WRITE_SUCCESS}")
    operation = str(event.data.get("operationName") or "")
    if operation.lower() != VM_WRITE.lower():
        return Decision(False, f"operation {operation!r} is not {VM_WRITE}")
    status = event.data.get("status")
    if status is not None and str(status).lower() != "succeeded":
        return Decision(False, f"operation status is {status!r}, not Succeeded")
    vm = parse_vm_id(event.subject)
    if vm is None:
        return Decision(False, f"subject {event.subject!r} is not a VM id", report=True)
    claimed = str(event.data.get("subscriptionId") or vm.subscription_id).lower()
    if claimed != vm.subscription_id:
        return Decision(
            False,
            f"data.subscriptionId {claimed} does not match the subject's {vm.subscription_id}",
            vm=vm,
            report=True,
        )
    if vm.subscription_id not in subscriptions:
        return Decision(
            False, f"subscription {vm.subscription_id} is not a target subscription", vm, True
        )
    return Decision(True, "VM write in a target subscription", vm)


def receive_vm_event(rt: Runtime, event: VmEvent) -> Decision:
    """Decide; an accepted VM becomes an onboarding message. Send errors propagate."""
    decision = decide(event, rt.settings.subscriptions)
    dispatch.start(
        rt,
        Job.ONBOARDING,
        f"event-{event.id}",
        f"vm-event:{event.id}",
        lambda ctx: _apply(ctx, event, decision),
    )
    return decision


def _apply(ctx: Context, event: VmEvent, decision: Decision) -> Result:
    vm = decision.vm
    if decision.accepted and vm is not None:
        request = OnboardingRequest(
            resourceId=vm.id,
            subscriptionId=vm.subscription_id,
            resourceGroup=vm.resource_group,
            vmName=vm.name,
            eventId=event.id,
            eventTime=event.event_time,
            correlationId=_text(event.data.get("correlationId")),
        )
        return Send(Outgoing(request, key=f"onboarding:{vm.id.lower()}:{event.id}"))
    if decision.report:
        out = ctx.out.bind(resource_id=event.subject or None)
        if vm is not None:
            out = out.bind(
                subscription_id=vm.subscription_id,
                resource_group=vm.resource_group,
                resource_id=vm.id,
                vm_name=vm.name,
            )
        out.skipped(
            "vm-event",
            decision.reason,
            details={"eventId": event.id, "eventType": event.event_type},
        )
    return Done(decision.reason)


def _text(value: Any) -> str | None:
    return str(value) if value else None
