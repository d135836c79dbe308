"""Queue trigger: one message per VM that was just written."""

from __future__ import annotations

import azure.functions as func

from shared.names import Queue
from triggers import invoke

bp = func.Blueprint()


@bp.function_name("onboarding")
@bp.queue_trigger(arg_name="msg", queue_name=Queue.ONBOARDING, connection="AzureWebJobsStorage")
def onboarding(msg: func.QueueMessage) -> None:
    invoke.queue_message(Queue.ONBOARDING, msg)
