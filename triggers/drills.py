"""DR drills: the drill timer, the sweeper timer, and the drill-step queue worker."""

from __future__ import annotations

import azure.functions as func

from shared.names import Queue, Timer
from triggers import invoke

bp = func.Blueprint()


@bp.function_name("drill_timer")
@bp.timer_trigger(arg_name="timer", schedule="%DRILL_SCHEDULE%", run_on_startup=False)
@bp.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:01:00")
def drill_timer(timer: func.TimerRequest) -> None:
    invoke.timer(Timer.DRILL, timer)


@bp.function_name("sweeper")
@bp.timer_trigger(arg_name="timer", schedule="%SWEEPER_SCHEDULE%", run_on_startup=False)
def sweeper(timer: func.TimerRequest) -> None:
    invoke.timer(Timer.SWEEPER, timer)


@bp.function_name("drill_step")
@bp.queue_trigger(arg_name="msg", queue_name=Queue.DRILL, connection="AzureWebJobsStorage")
def drill_step(msg: func.QueueMessage) -> None:
    invoke.queue_message(Queue.DRILL, msg)
