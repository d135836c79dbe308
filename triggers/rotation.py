"""Rotation: the nightly timer and the three queue workers it feeds."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import rotation
from shared.model import Job
from shared.schedules import latest_occurrence
from shared.services import services
from shared.worker import process_queue_message

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("rotation_timer")
@bp.timer_trigger(arg_name="timer", schedule="%ROTATION_SCHEDULE%", run_on_startup=False)
@bp.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:01:00")
def rotation_timer(timer: func.TimerRequest) -> None:
    rt = services()
    occurrence = latest_occurrence(rt.settings.rotation_schedule, rt.clock.now())
    count = rotation.start_night(rt, occurrence)
    log.info(
        "rotation %s: %d subscription(s) to plan (past due: %s)", occurrence, count, timer.past_due
    )


def _process(msg: func.QueueMessage, queue: str, handlers: dict[str, rotation.Handler]) -> None:
    process_queue_message(
        services(),
        queue=queue,
        body=msg.get_body(),
        message_id=msg.id or "",
        dequeue_count=msg.dequeue_count or 1,
        job=Job.ROTATION,
        handlers=handlers,
    )
    log.info("%s message %s done (delivery %s)", queue, msg.id, msg.dequeue_count)


@bp.function_name("rotation_plan")
@bp.queue_trigger(arg_name="msg", queue_name=rotation.PLAN_QUEUE, connection="AzureWebJobsStorage")
def rotation_plan(msg: func.QueueMessage) -> None:
    _process(
        msg,
        rotation.PLAN_QUEUE,
        {"rotation-plan": rotation.plan_subscription, "rotation-confirm": rotation.confirm_night},
    )


@bp.function_name("rotation_vm")
@bp.queue_trigger(arg_name="msg", queue_name=rotation.VM_QUEUE, connection="AzureWebJobsStorage")
def rotation_vm(msg: func.QueueMessage) -> None:
    _process(msg, rotation.VM_QUEUE, {"rotation-vm": rotation.snapshot_vm})


@bp.function_name("rotation_prune")
@bp.queue_trigger(arg_name="msg", queue_name=rotation.PRUNE_QUEUE, connection="AzureWebJobsStorage")
def rotation_prune(msg: func.QueueMessage) -> None:
    _process(msg, rotation.PRUNE_QUEUE, {"rotation-prune": rotation.prune_snapshots})
