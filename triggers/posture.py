"""Timer trigger: the estate's posture, daily, read back from Azure Monitor (shared/posture.py)."""

from __future__ import annotations

import azure.functions as func

from shared.names import Timer
from triggers import invoke

bp = func.Blueprint()


@bp.function_name("posture_timer")
@bp.timer_trigger(arg_name="timer", schedule="%POSTURE_SCHEDULE%", run_on_startup=False)
@bp.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:05:00")
def posture_timer(timer: func.TimerRequest) -> None:
    invoke.timer(Timer.POSTURE, timer)
