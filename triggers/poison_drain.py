"""Timer trigger: report and delete every message in every `*-poison` queue."""

from __future__ import annotations

import azure.functions as func

from shared.names import Timer
from triggers import invoke

bp = func.Blueprint()


@bp.function_name("poison_drain")
@bp.timer_trigger(arg_name="timer", schedule="%POISON_SCHEDULE%", run_on_startup=False)
def poison_drain(timer: func.TimerRequest) -> None:
    invoke.timer(Timer.POISON, timer)
