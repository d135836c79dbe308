"""Event Grid trigger: VM writes in the target subscriptions become onboarding messages.

The Functions host owns the webhook's status codes: this function raises only when the onboarding
message cannot be sent. Whatever the event holds, it is decided on (and refused with a row when
odd) in shared/vm_events.py.
"""

from __future__ import annotations

import logging

import azure.functions as func

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("vm_events")
@bp.event_grid_trigger(arg_name="event")
def vm_events(event: func.EventGridEvent) -> None:
    from shared.names import Status
    from shared.services import services
    from shared.vm_events import VmEvent, describe, receive_vm_event

    problem = ""
    if isinstance(event, func.EventGridEvent):
        received = VmEvent(
            id=event.id,
            event_type=event.event_type,
            subject=event.subject,
            event_time=event.event_time,
            data=event.get_json(),
        )
    else:
        # The subscription is made with the Event Grid schema; a CloudEvent is a misconfiguration.
        problem = f"expected the Event Grid schema, got {type(event).__name__}: "
        received = VmEvent(
            id=getattr(event, "id", None),
            event_type=getattr(event, "type", None),
            subject=getattr(event, "subject", None),
            event_time=getattr(event, "time", None),
            data=None,
            cloud_event=True,
        )
    decision = receive_vm_event(services(), received)
    refused = decision.status == Status.REFUSED
    level = logging.ERROR if problem else logging.WARNING if refused else logging.INFO
    log.log(level, "%s%s", problem, describe(received, decision))
