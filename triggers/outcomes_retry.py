"""Queue trigger: outcome records Azure Monitor refused, sent again."""

from __future__ import annotations

import azure.functions as func

from shared.names import Queue
from triggers import invoke

bp = func.Blueprint()


@bp.function_name("outcomes_retry")
@bp.queue_trigger(arg_name="msg", queue_name=Queue.OUTCOMES_RETRY, connection="AzureWebJobsStorage")
def outcomes_retry(msg: func.QueueMessage) -> None:
    invoke.queue_message(Queue.OUTCOMES_RETRY, msg)
