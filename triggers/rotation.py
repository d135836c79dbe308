"""Rotation: the nightly timer and the three queue workers it feeds."""

from __future__ import annotations

import azure.functions as func

from shared.names import Queue, Timer
from triggers import invoke

bp = func.Blueprint()


@bp.function_name("rotation_timer")
@bp.timer_trigger(arg_name="timer", schedule="%ROTATION_SCHEDULE%", run_on_startup=False)
@bp.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:01:00")
def rotation_timer(timer: func.TimerRequest) -> None:
    invoke.timer(Timer.ROTATION, timer)


@bp.function_name("rotation_plan")
@bp.queue_trigger(arg_name="msg", queue_name=Queue.ROTATION_PLAN, connection="AzureWebJobsStorage")
def rotation_plan(msg: func.QueueMessage) -> None:
    invoke.queue_message(Queue.ROTATION_PLAN, msg)


@bp.function_name("rotation_vm")
@bp.queue_trigger(arg_name="msg", queue_name=Queue.ROTATION_VM, connection="AzureWebJobsStorage")
def rotation_vm(msg: func.QueueMessage) -> None:
    invoke.queue_message(Queue.ROTATION_VM, msg)


@bp.function_name("rotation_prune")
@bp.queue_trigger(arg_name="msg", queue_name=Queue.ROTATION_PRUNE, connection="AzureWebJobsStorage")
def rotation_prune(msg: func.QueueMessage) -> None:
    invoke.queue_message(Queue.ROTATION_PRUNE, msg)
