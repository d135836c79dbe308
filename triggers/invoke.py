"""How a trigger hands its input to Lifeboat: one call into `shared/dispatch.py`, one log line.

Dispatch and the use cases are imported on the first invocation, not when the app is indexed:
a cold start pays only for `azure.functions` and `shared/names.py`.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.names import Queue, Timer

log = logging.getLogger(__name__)


def queue_message(queue: Queue, msg: func.QueueMessage) -> None:
    from shared import dispatch
    from shared.services import services

    result = dispatch.deliver(
        services(),
        queue,
        msg.get_body(),
        message_id=msg.id or "",
        dequeue_count=msg.dequeue_count or 1,
    )
    log.info(
        "%s message %s (delivery %s): %s",
        queue,
        msg.id,
        msg.dequeue_count,
        dispatch.describe(result),
    )


def timer(which: Timer, request: func.TimerRequest) -> None:
    from shared import dispatch
    from shared.services import services

    result = dispatch.fire(services(), which)
    log.info("%s timer (past due: %s): %s", which, request.past_due, dispatch.describe(result))
