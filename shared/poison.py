"""Draining `*-poison` queues: every message is reported, with its content, then deleted.

Two kinds of message end up there: those a worker poisoned itself, wrapped with their reason,
and the host's raw copies of messages that failed on every delivery or could not be decoded.
The outcome row keeps the message (up to the table's field limit), so nothing leaves the queue
unrecorded.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.model import Job, Outcome, Status
from shared.ports import ReceivedMessage, Runtime
from shared.worker import POISON_SUFFIX

log = logging.getLogger(__name__)

# Log Analytics keeps at most 64 KB per field; leave room for the rest of Details.
_MAX_KEPT_MESSAGE_CHARS = 32_000
# Bounded per run so a flood never outlives the function timeout; the next run continues.
DEFAULT_DRAIN_LIMIT = 5_000


def drain_poison_queues(rt: Runtime, *, run_id: str, limit: int = DEFAULT_DRAIN_LIMIT) -> int:
    drained = 0
    for poison_queue in rt.queues.list_queues(suffix=POISON_SUFFIX):
        while drained < limit:
            batch = list(rt.queues.receive(poison_queue, max_messages=min(32, limit - drained)))
            if not batch:
                break
            for message in batch:
                outcome = describe_poisoned(rt, poison_queue, message, run_id)
                rt.reporter.report([outcome])
                rt.queues.delete(poison_queue, message)
                drained += 1
                log.warning(
                    "drained poison message %s from %s: %s",
                    message.id,
                    poison_queue,
                    outcome.reason,
                )
    if drained >= limit:
        log.warning("poison drain stopped at its limit of %d; the next run continues", limit)
    return drained


def describe_poisoned(
    rt: Runtime, poison_queue: str, message: ReceivedMessage, run_id: str
) -> Outcome:
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
            f"{rt.settings.max_dequeue_count} attempts"
        )
        dequeue_count = rt.settings.max_dequeue_count
    truncated = len(content) > _MAX_KEPT_MESSAGE_CHARS
    return Outcome(
        time=rt.clock.now(),
        run_id=run_id,
        job=Job.MAINTENANCE,
        operation="poison",
        status=Status.FAILED,
        reason=reason,
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
