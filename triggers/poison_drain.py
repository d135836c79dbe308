"""Timer trigger: report and delete every message in every `*-poison` queue."""

from __future__ import annotations

import logging

import azure.functions as func

from shared.model import Job, format_time
from shared.poison import drain_poison_queues
from shared.reporting import heartbeat
from shared.services import services

log = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("poison_drain")
@bp.timer_trigger(arg_name="timer", schedule="%POISON_SCHEDULE%", run_on_startup=False)
def poison_drain(timer: func.TimerRequest) -> None:
    rt = services()
    run_id = f"poison-{format_time(rt.clock.now())}"
    with heartbeat(rt, Job.MAINTENANCE, run_id, {"function": "poison_drain"}) as totals:
        drained = drain_poison_queues(rt, run_id=run_id)
        totals.update(count=drained, drained=drained)
    log.info("poison drain %s: %d message(s) reported and deleted", run_id, drained)
