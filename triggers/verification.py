"""Azure Backup verification: the timer and the verification-vault queue worker."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import verification
from shared.model import Job
from shared.schedules import latest_occurrence
from shared.services import services
from shared.worker import process_queue_message

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("verification_timer")
@bp.timer_trigger(arg_name="timer", schedule="%VERIFICATION_SCHEDULE%", run_on_startup=False)
@bp.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:01:00")
def verification_timer(timer: func.TimerRequest) -> None:
    rt = services()
    occurrence = latest_occurrence(rt.settings.verification_schedule, rt.clock.now())
    count = verification.start_verification(rt, occurrence)
    log.info(
        "verification %s: %d subscription(s) to verify (past due: %s)",
        occurrence,
        count,
        timer.past_due,
    )


@bp.function_name("verification_vault")
@bp.queue_trigger(arg_name="msg", queue_name=verification.QUEUE, connection="AzureWebJobsStorage")
def verification_vault(msg: func.QueueMessage) -> None:
    process_queue_message(
        services(),
        queue=verification.QUEUE,
        body=msg.get_body(),
        message_id=msg.id or "",
        dequeue_count=msg.dequeue_count or 1,
        job=Job.VERIFICATION,
        handlers=verification.HANDLERS,
    )
    log.info("%s message %s done (delivery %s)", verification.QUEUE, msg.id, msg.dequeue_count)
