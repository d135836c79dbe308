"""Queue trigger: outcome records Azure Monitor refused, sent again."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.model import Job
from shared.reporting import RETRY_QUEUE, resend_outcomes
from shared.services import services
from shared.worker import process_queue_message

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("outcomes_retry")
@bp.queue_trigger(arg_name="msg", queue_name=RETRY_QUEUE, connection="AzureWebJobsStorage")
def outcomes_retry(msg: func.QueueMessage) -> None:
    process_queue_message(
        services(),
        queue=RETRY_QUEUE,
        body=msg.get_body(),
        message_id=msg.id or "",
        dequeue_count=msg.dequeue_count or 1,
        job=Job.MAINTENANCE,
        handlers={"outcomes-retry": resend_outcomes},
    )
    log.info("outcomes-retry message %s done (delivery %s)", msg.id, msg.dequeue_count)
