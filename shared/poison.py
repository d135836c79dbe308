"""Draining `*-poison` queues: every message is reported, with its content, then deleted.

Two kinds of message end up there: those a worker poisoned itself, wrapped with their reason,
and the host's raw copies of messages that failed on every delivery or could not be decoded.
The outcome row keeps the message (up to the table's field limit), so nothing leaves the queue
unrecorded.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from shared.dispatch import Context, Done, Result
from shared.names import POISON_SUFFIX, Status, Timer
from shared.outcomes import Outcomes
from shared.ports import ReceivedMessage

log = logging.getLogger(__name__)

# Log Analytics keeps at most 64 KB per field; leave room for the rest of Details.
_MAX_KEPT_MESSAGE_CHARS = 32_000
# Bounded per run so a flood never outlives the function timeout; the next run continues.
DEFAULT_DRAIN_LIMIT = 5_000


def drain_poison(ctx: Context, occurrence: datetime, *, limit: int = DEFAULT_DRAIN_LIMIT) -> Result:
    """The poison timer: `run-start`, a row per drained message, `run-end` with the count."""
    ctx.out.succeeded("run-start", details={"function": "poison_drain"})
    drained = drain_poison_queues(ctx, limit=limit)  # if it raises, dispatch reports run-end
    ctx.out.succeeded(
        "run-end",
        count=drained,
        details={"function": "poison_drain", "totals": {"count": drained, "drained": drained}},
    )
    log.info("poison drain %s: %d message(s) reported and deleted", ctx.run_id, drained)
    return Done(f"{drained} drained")


def drain_poison_queues(ctx: Context, *, limit: int = DEFAULT_DRAIN_LIMIT) -> int:
    """Report each poisoned message (the row is sent before the message is deleted)."""
    queues = ctx.rt.queues
    drained = 0
    for poison_queue in queues.list_queues(suffix=POISON_SUFFIX):
        while drained < limit:
            batch = list(queues.receive(poison_queue, max_messages=min(32, limit - drained)))
            if not batch:
                break
            for message in batch:
                describe_poisoned(ctx.out, ctx.settings.max_dequeue_count, poison_queue, message)
                ctx.flush()
                queues.delete(poison_queue, message)
                drained += 1
    if drained >= limit:
        log.warning("poison drain stopped at its limit of %d; the next run continues", limit)
    return drained


def describe_poisoned(
    out: Outcomes, max_dequeue_count: int, poison_queue: str, message: ReceivedMessage
) -> None:
    original_queue = poison_queue.removesuffix(POISON_SUFFIX)
    wrapper = _wrapper(message.text)
    if wrapper is not None:
        content = str(wrapper["message"])
        reason = str(wrapper["reason"])
        dequeue_count: int | None = _int(wrapper.get("dequeueCount"))
        original_queue = str(wrapper.get("originalQueue") or original_queue)
    elif message.text is None:
        content = message.raw
        reason = "not base64: the host poisoned it without invoking the function"
        dequeue_count = 0
    else:
        content = message.text
        reason = (
            f"failed on every delivery: the host moved it to {poison_queue} after "
            f"{max_dequeue_count} attempts"
        )
        dequeue_count = max_dequeue_count
    truncated = len(content) > _MAX_KEPT_MESSAGE_CHARS
    log.warning("drained poison message %s from %s: %s", message.id, poison_queue, reason)
    out.row(
        "poison",
        Status.FAILED,
        reason,
        distinct=message.id,
        details={
            "queue": original_queue,
            "poisonQueue": poison_queue,
            "type": _message_type(content),
            "dequeueCount": dequeue_count,
            "messageId": message.id,
            "message": content[:_MAX_KEPT_MESSAGE_CHARS],
            "truncated": truncated,
            "drained": True,
        },
    )


def _wrapper(text: str | None) -> dict[str, Any] | None:
    parsed = _json_object(text)
    if parsed is not None and {"reason", "originalQueue", "message"} <= parsed.keys():
        return parsed
    return None


def _message_type(content: str) -> str | None:
    parsed = _json_object(content)
    value = parsed.get("type") if parsed else None
    return value if isinstance(value, str) else None


def _json_object(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


TIMERS = {Timer.POISON: drain_poison}
