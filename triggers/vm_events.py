"""Event Grid trigger: VM writes in the target subscriptions become onboarding messages."""

from __future__ import annotations

import logging

import azure.functions as func

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("vm_events")
@bp.event_grid_trigger(arg_name="event")
def vm_events(event: func.EventGridEvent) -> None:
    from shared.services import services
    from shared.vm_events import VmEvent, receive_vm_event

    if not isinstance(event, func.EventGridEvent):
        # The subscription is made with the Event Grid schema; CloudEvents are a misconfiguration.
        log.error("vm event dropped: expected the Event Grid schema, got %s", type(event).__name__)
        return
    data = event.get_json()
    decision = receive_vm_event(
        services(),
        VmEvent(
            id=event.id or "",
            event_type=event.event_type or "",
            subject=event.subject or "",
            event_time=event.event_time,
            data=data if isinstance(data, dict) else {},
        ),
    )
    verdict = "accepted" if decision.accepted else "dropped"
    log.info("vm event %s %s: %s (%s)", event.id, verdict, event.subject, decision.reason)
