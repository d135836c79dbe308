"""Event Grid trigger: VM writes in the target subscriptions become onboarding messages.

The subscription may deliver the Event Grid schema or CloudEvents 1.0: the worker builds a
`func.EventGridEvent` or a `func.CloudEvent` from the body (a `specversion` field makes it a
CloudEvent), and both become one `VmEvent` for the same decision. The Functions host owns the
webhook's status codes: this function raises only when the onboarding message cannot be sent.
Whatever the event holds, it is decided on (and refused with a row when odd) in
shared/vm_events.py.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.vm_events import VmEvent

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("vm_events")
@bp.event_grid_trigger(arg_name="event")
def vm_events(event: func.EventGridEvent) -> None:
    from shared.names import Status
    from shared.services import services
    from shared.vm_events import describe, receive_vm_event

    received = as_vm_event(event)
    decision = receive_vm_event(services(), received)
    level = (
        logging.WARNING
        if decision.status == Status.REFUSED
        else logging.DEBUG
        if decision.counts
        else logging.INFO
    )
    log.log(level, "%s", describe(received, decision))


def as_vm_event(event: object) -> VmEvent:
    """What the worker built, as one VmEvent: fields as they came, of whatever type."""
    from shared.vm_events import VmEvent

    if isinstance(event, func.EventGridEvent):
        return VmEvent(
            id=event.id,
            event_type=event.event_type,
            subject=event.subject,
            event_time=event.event_time,
            data=event.get_json(),
        )
    # A CloudEvent (or anything else the worker might hand over): read by attribute.
    get_json = getattr(event, "get_json", None)
    return VmEvent(
        id=getattr(event, "id", None),
        event_type=getattr(event, "type", None),
        subject=getattr(event, "subject", None),
        event_time=getattr(event, "time", None),
        data=get_json() if callable(get_json) else None,
        cloud_event=True,
    )
