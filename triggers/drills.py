"""DR drills: the drill timer, the sweeper timer, and the drill-step queue worker."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import drills
from shared.model import Job
from shared.schedules import latest_occurrence
from shared.services import services
from shared.worker import process_queue_message

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("drill_timer")
@bp.timer_trigger(arg_name="timer", schedule="%DRILL_SCHEDULE%", run_on_startup=False)
@bp.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:01:00")
def drill_timer(timer: func.TimerRequest) -> None:
    rt = services()
    occurrence = latest_occurrence(rt.settings.drill_schedule, rt.clock.now())
    count = drills.start_drills(rt, occurrence)
    log.info(
        "drills %s: %d subscription(s) to plan (past due: %s)", occurrence, count, timer.past_due
    )


@bp.function_name("sweeper")
@bp.timer_trigger(arg_name="timer", schedule="%SWEEPER_SCHEDULE%", run_on_startup=False)
def sweeper(timer: func.TimerRequest) -> None:
    found = drills.sweep(services())
    log.info("sweeper: %d expired drill(s) (past due: %s)", found, timer.past_due)


@bp.function_name("drill_step")
@bp.queue_trigger(arg_name="msg", queue_name=drills.DRILL_QUEUE, connection="AzureWebJobsStorage")
def drill_step(msg: func.QueueMessage) -> None:
    process_queue_message(
        services(),
        queue=drills.DRILL_QUEUE,
        body=msg.get_body(),
        message_id=msg.id or "",
        dequeue_count=msg.dequeue_count or 1,
        job=Job.DRILL,
        handlers={"drill-plan": drills.plan_drills, "drill-step": drills.drill_step},
    )
    log.info("drill-step message %s done (delivery %s)", msg.id, msg.dequeue_count)
