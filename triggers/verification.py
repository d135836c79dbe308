"""Azure Backup verification: the timer and the verification-vault queue worker."""

from __future__ import annotations

import azure.functions as func

from shared.names import Queue, Timer
from triggers import invoke

bp = func.Blueprint()


@bp.function_name("verification_timer")
@bp.timer_trigger(arg_name="timer", schedule="%VERIFICATION_SCHEDULE%", run_on_startup=False)
@bp.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:01:00")
def verification_timer(timer: func.TimerRequest) -> None:
    invoke.timer(Timer.VERIFICATION, timer)


@bp.function_name("verification_vault")
@bp.queue_trigger(arg_name="msg", queue_name=Queue.VERIFICATION, connection="AzureWebJobsStorage")
def verification_vault(msg: func.QueueMessage) -> None:
    invoke.queue_message(Queue.VERIFICATION, msg)
