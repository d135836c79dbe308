"""Queue trigger: one message per VM that was just written."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.model import Job
from shared.onboarding import onboard_vm
from shared.services import services
from shared.worker import process_queue_message

log = logging.getLogger(__name__)

bp = func.Blueprint()

QUEUE = "onboarding"


@bp.function_name("onboarding")
@bp.queue_trigger(arg_name="msg", queue_name=QUEUE, connection="AzureWebJobsStorage")
def onboarding(msg: func.QueueMessage) -> None:
    process_queue_message(
        services(),
        queue=QUEUE,
        body=msg.get_body(),
        message_id=msg.id or "",
        dequeue_count=msg.dequeue_count or 1,
        job=Job.ONBOARDING,
        handlers={"onboarding": onboard_vm},
    )
    log.info("onboarding message %s done (delivery %s)", msg.id, msg.dequeue_count)
