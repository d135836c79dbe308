"""How every queue worker treats a message: decode, dispatch, poison what can never succeed.

A message that can never succeed (not UTF-8, not JSON, unknown type or version, schema failure,
a type that does not belong on this queue) is written to `<queue>-poison` wrapped as
`{reason, originalQueue, dequeueCount, message}`, reported, and completed. A handler's error is
transient: it propagates so the host retries; on the last dequeue the failure is reported first,
because the host's own poison copy carries no reason.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import json
import logging
from collections.abc import Callable, Mapping

from shared import messages
from shared.messages import Envelope, Payload, PoisonMessageError
from shared.model import Job, Outcome, Status
from shared.ports import Runtime

log = logging.getLogger(__name__)

Handler = Callable[[Runtime, Envelope, Payload], None]

_delivery: contextvars.ContextVar[int] = contextvars.ContextVar("delivery", default=1)


def delivery_count() -> int:
    """How many times the host has delivered the message being handled (1 = first time).

    A handler that sees a redelivery cannot know how far an earlier delivery got, so it reads
    before it writes (DESIGN: every action first reads whether its end state holds).
    """
    return _delivery.get()


POISON_SUFFIX = "-poison"


def process_queue_message(
    rt: Runtime,
    *,
    queue: str,
    body: bytes,
    message_id: str,
    dequeue_count: int,
    job: Job,
    handlers: Mapping[str, Handler],
) -> None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        poison_message(
            rt,
            queue=queue,
            message=base64.b64encode(body).decode("ascii"),
            message_id=message_id,
            dequeue_count=dequeue_count,
            reason="not UTF-8 text (message kept base64-encoded)",
            message_type=None,
        )
        return
    try:
        envelope, payload = messages.decode(text, queue=queue, allowed=handlers.keys())
        handler = handlers[envelope.type]
    except PoisonMessageError as e:
        poison_message(
            rt,
            queue=queue,
            message=text,
            message_id=message_id,
            dequeue_count=dequeue_count,
            reason=e.reason,
            message_type=e.message_type,
        )
        return

    token = _delivery.set(dequeue_count)
    try:
        with _batched(rt):
            handler(rt, envelope, payload)
    except Exception as e:
        if dequeue_count >= rt.settings.max_dequeue_count:
            _report_last_failure(rt, queue, envelope, message_id, dequeue_count, job, e)
        raise
    finally:
        _delivery.reset(token)


def enqueue(
    rt: Runtime, queue: str, envelope: Envelope, *, job: Job, visibility_timeout: int = 0
) -> None:
    """Send one message; a message too large for a queue is refused, reported, and raised."""
    try:
        text = messages.encode(envelope)
    except messages.MessageTooLargeError as e:
        _report_safely(
            rt,
            Outcome(
                time=rt.clock.now(),
                run_id=envelope.run_id,
                job=job,
                operation=f"enqueue-{envelope.type}",
                status=Status.FAILED,
                reason=str(e),
                details={"queue": queue, "type": envelope.type, "messageId": envelope.id},
            ),
        )
        raise
    rt.queues.send(queue, text, visibility_timeout=visibility_timeout)


def poison_message(
    rt: Runtime,
    *,
    queue: str,
    message: str,
    message_id: str,
    dequeue_count: int,
    reason: str,
    message_type: str | None,
) -> None:
    """Move a message that can never succeed to `<queue>-poison` with its reason, and report it."""
    wrapped = json.dumps(
        {
            "reason": reason,
            "originalQueue": queue,
            "dequeueCount": dequeue_count,
            "message": message,
        }
    )
    if messages.encoded_size(wrapped) > messages.MAX_ENCODED_BYTES:
        # Too big to wrap: let the host retry and then move the original, untouched.
        raise RuntimeError(
            f"cannot poison message {message_id} from {queue} with reason: too large"
        )
    rt.queues.send(queue + POISON_SUFFIX, wrapped)
    log.warning("poisoned message %s from %s: %s", message_id, queue, reason)
    _report_safely(
        rt,
        Outcome(
            time=rt.clock.now(),
            run_id=message_id,
            job=Job.MAINTENANCE,
            operation="poison",
            status=Status.FAILED,
            reason=reason,
            details={
                "queue": queue,
                "type": message_type,
                "dequeueCount": dequeue_count,
                "messageId": message_id,
            },
        ),
    )


def _report_last_failure(
    rt: Runtime,
    queue: str,
    envelope: Envelope,
    message_id: str,
    dequeue_count: int,
    job: Job,
    error: Exception,
) -> None:
    _report_safely(
        rt,
        Outcome(
            time=rt.clock.now(),
            run_id=envelope.run_id,
            job=job,
            operation=envelope.type,
            status=Status.FAILED,
            reason=(
                f"failed on delivery {dequeue_count} of {rt.settings.max_dequeue_count}; "
                f"the host moves it to {queue}{POISON_SUFFIX}: {type(error).__name__}: {error}"
            ),
            details={
                "queue": queue,
                "type": envelope.type,
                "dequeueCount": dequeue_count,
                "messageId": message_id,
                "idempotencyKey": envelope.idempotency_key,
            },
        ),
    )


def _batched(rt: Runtime) -> contextlib.AbstractContextManager[None]:
    """One upload per invocation when the reporter batches (Azure Monitor); else as reported."""
    batch = getattr(rt.reporter, "batch", None)
    return batch() if callable(batch) else contextlib.nullcontext()


def _report_safely(rt: Runtime, outcome: Outcome) -> None:
    """Reporting must never fail or repeat the work it reports on."""
    try:
        rt.reporter.report([outcome])
    except Exception:
        log.exception("could not report %s %s: %s", outcome.job, outcome.operation, outcome.reason)
