"""The one path through every worker: decode, find the handler, run it, apply what it decided.

A handler is a plain function of (payload, context). It reads and writes Azure through the
context's ports, records outcome rows through `ctx.out` as things happen, and returns what
should happen to the queue work:

- `Done()`: nothing more;
- `Send(Outgoing(...), ...)`: follow-up messages, each with its delay;
- `PutBack(after, reason, payload=None)`: this work (or what is left of it) again after at least
  `after` seconds;
- `Refuse(reason)`: it can never succeed; poison it now, with the reason.

A handler raises for a transient error: the host delivers the message again (and on its last
delivery dispatch reports the failure first, since the host's poison copy carries no reason).
Two errors are translated here, once for every handler: Azure's throttling (`ThrottledError`)
puts the message back after Retry-After, and a refusal that will not heal (`RefusedError`)
refuses the message.

This module is the only one that sends to a queue: follow-ups, put-backs (one jitter formula,
never earlier than Retry-After, clamped to the queue's visibility maximum, the count carried in
the envelope), poison, timers' first messages, requests from outside (Event Grid, the CLI) and
outcome records Azure Monitor did not take. Outcome rows are reported once per delivery, even
when the handler raises.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared import messages
from shared.messages import Envelope, Payload, PoisonMessageError
from shared.model import Outcome
from shared.names import (
    HANDLERS_OF,
    JOB_OF,
    POISON_SUFFIX,
    QUEUE_OF,
    TIMER_SPECS,
    Job,
    Queue,
    Timer,
)
from shared.outcomes import Outcomes
from shared.policies import PolicySet
from shared.ports import (
    Backup,
    BlobStoreError,
    Compute,
    DrillCloud,
    RefusedError,
    Runtime,
    SiteRecovery,
    ThrottledError,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

# A queue hides a message for at most 7 days; keep a minute's margin.
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600 - 60


# ------------------------------------------------------------------------- what handlers return


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to send: its payload (the type names the queue), idempotency key and delay.

    Delays count from the handler's decision: dispatch takes off the time spent sending the
    messages before it, so a thousand paced messages do not stretch their window. Paced work
    (`early`) rounds its delay down to whole seconds, waits round up.
    """

    payload: Payload
    key: str
    delay: float = 0.0
    early: bool = False
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class Done:
    note: str = ""


@dataclass(frozen=True, slots=True, init=False)
class Send:
    messages: tuple[Outgoing, ...]

    def __init__(self, *outgoing: Outgoing) -> None:
        object.__setattr__(self, "messages", tuple(outgoing))


@dataclass(frozen=True, slots=True)
class PutBack:
    """Do this again after at least `after` seconds; `payload` is what is left (default: all)."""

    after: float
    reason: str
    payload: Payload | None = None


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str


Result = Done | Send | PutBack | Refuse


# ------------------------------------------------------------------------------------ context


@dataclass
class Context:
    """What a handler runs with: the ports, the message's identity, and its outcome factory."""

    rt: Runtime
    job: Job
    run_id: str
    key: str
    delivery: int = 1
    put_backs: int = 0
    created: datetime | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out = Outcomes(
            sink=self.outcomes.append,
            clock=self.rt.clock,
            job=self.job,
            run_id=self.run_id,
            key=self.key,
            dry_run=self.rt.settings.dry_run,
        )

    @property
    def settings(self) -> Settings:
        return self.rt.settings

    @property
    def compute(self) -> Compute:
        return self.rt.compute

    @property
    def backup(self) -> Backup:
        return self.rt.backup

    @property
    def drills(self) -> DrillCloud:
        return self.rt.drills

    @property
    def site_recovery(self) -> SiteRecovery:
        return self.rt.site_recovery

    @property
    def policies(self) -> PolicySet:
        return self.rt.policies

    def now(self) -> datetime:
        return self.rt.clock.now()

    def flush(self) -> None:
        """Report what has been recorded so far (before an irreversible step such as a delete)."""
        flush(self.rt, self.outcomes)

    @property
    def redelivered(self) -> bool:
        """The host delivered this message before: an earlier delivery may have done part of it."""
        return self.delivery > 1


Handler = Callable[[Any, Context], Result]
HandlerTable = Mapping[type[Payload], Handler]


def handlers_for(queue: Queue) -> dict[str, Handler]:
    """The message types a queue's function handles, and their handlers (imported on first use)."""
    module = importlib.import_module(HANDLERS_OF[queue])
    table: HandlerTable = module.HANDLERS
    return {schema.TYPE.value: h for schema, h in table.items() if QUEUE_OF[schema.TYPE] == queue}


# ---------------------------------------------------------------------------------- a delivery


def deliver(
    rt: Runtime,
    queue: Queue,
    body: bytes | str,
    *,
    message_id: str = "",
    dequeue_count: int = 1,
    handlers: Mapping[str, Handler] | None = None,
) -> Result:
    """Handle one queue message as the host delivered it, and apply the decision.

    `handlers` replaces the queue's HANDLERS table (a test app's own queue functions).
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            kept = base64.b64encode(body).decode("ascii")
            return _refuse_undecodable(
                rt,
                queue,
                kept,
                message_id,
                dequeue_count,
                PoisonMessageError("not UTF-8 text (message kept base64-encoded)"),
            )
    else:
        text = body
    handlers = handlers if handlers is not None else handlers_for(queue)
    try:
        envelope, payload = messages.decode(
            text, queue=str(queue), allowed=handlers.keys(), keys=rt.settings.signing_keys
        )
    except PoisonMessageError as e:
        return _refuse_undecodable(rt, queue, text, message_id, dequeue_count, e)
    ctx = Context(
        rt,
        job=JOB_OF.get(queue, Job.MAINTENANCE),
        run_id=envelope.run_id,
        key=envelope.idempotency_key,
        delivery=dequeue_count,
        put_backs=envelope.put_backs,
        created=envelope.created,
    )
    try:
        result = _run(handlers[envelope.type], payload, ctx)
        _apply(ctx, queue, envelope, payload, result, text, message_id)
        return result
    except Exception as e:
        if dequeue_count >= rt.settings.max_dequeue_count:
            ctx.out.failed(
                envelope.type,
                f"failed on delivery {dequeue_count} of {rt.settings.max_dequeue_count}; the "
                f"host moves it to {queue}{POISON_SUFFIX}: {type(e).__name__}: {e}"[:2000],
                details=_message_details(queue, envelope, message_id, dequeue_count),
            )
        raise
    finally:
        flush(rt, ctx.outcomes)


def _refuse_undecodable(
    rt: Runtime,
    queue: Queue,
    text: str,
    message_id: str,
    dequeue_count: int,
    error: PoisonMessageError,
) -> Refuse:
    rows: list[Outcome] = []
    _poison(rt, queue, text, message_id, dequeue_count, error.reason, error.message_type, rows)
    flush(rt, rows)
    return Refuse(error.reason)


def _unserved(payload: Payload, ctx: Context) -> str | None:
    """The rule every message obeys before its handler runs: the subscription it names is one
    Lifeboat serves (a subscription dropped from the settings, or a message written for another
    deployment, never reaches Azure). A drill's own subscription is its steps' to check."""
    subscription = getattr(payload, "subscription_id", None)
    if isinstance(subscription, str) and subscription.lower() not in ctx.settings.subscriptions:
        served = "which Lifeboat does not serve"
        return f"{payload.TYPE} names subscription {subscription.lower()}, {served}"
    return None


def _run(handler: Handler, payload: Payload, ctx: Context) -> Result:
    """Run a handler; Azure's throttling and unhealable refusals are translated here, once."""
    unserved = _unserved(payload, ctx)
    if unserved is not None:
        return Refuse(unserved)
    try:
        return handler(payload, ctx)
    except ThrottledError as e:
        return PutBack(e.retry_after, f"throttled by Azure: {e}")
    except RefusedError as e:
        return Refuse(f"Azure refused: {e}")


def _apply(
    ctx: Context,
    queue: Queue,
    envelope: Envelope,
    payload: Payload,
    result: Result,
    text: str,
    message_id: str,
) -> None:
    rt = ctx.rt
    if isinstance(result, Send):
        try:
            send_all(rt, result.messages, run_id=ctx.run_id)
        except messages.MessageTooLargeError as e:
            reason = f"a follow-up message cannot be sent: {e}"
            _poison(rt, queue, text, message_id, ctx.delivery, reason, envelope.type, ctx.outcomes)
    elif isinstance(result, PutBack):
        _put_back(ctx, queue, envelope, result.payload or payload, result)
    elif isinstance(result, Refuse):
        _poison(
            rt, queue, text, message_id, ctx.delivery, result.reason, envelope.type, ctx.outcomes
        )


def _put_back(
    ctx: Context, queue: Queue, envelope: Envelope, payload: Payload, result: PutBack
) -> None:
    """The work again after at least `after` seconds, spread by jitter; one formula for all."""
    after = max(0.0, result.after)
    jitter = random.uniform(0.0, max(0.2 * after, 1.0))
    visibility = min(MAX_VISIBILITY_SECONDS, math.ceil(after + jitter))
    put_backs = envelope.put_backs + 1
    again = messages.make_envelope(
        payload,
        run_id=envelope.run_id,
        idempotency_key=envelope.idempotency_key,
        created=envelope.created,
        put_backs=put_backs,
    )
    ctx.rt.queues.send(
        queue, messages.encode(again, ctx.settings.signing_keys), visibility_timeout=visibility
    )
    ctx.out.waiting(
        envelope.type,
        result.reason,
        distinct=put_backs,
        details={
            "queue": str(queue),
            "afterSeconds": after,
            "visibilitySeconds": visibility,
            "putBacks": put_backs,
        },
    )
    log.info(
        "%s back on %s in %d s (put back %d times): %s",
        envelope.type,
        queue,
        visibility,
        put_backs,
        result.reason,
    )


# ------------------------------------------------------------------------------------ sending


def visibility_of(delay: float, *, early: bool = False) -> int:
    """Queues hide messages in whole seconds. Paced work rounds down (`early`), waits round up,
    so a confirm always comes at least the create window after the last VM's snapshots."""
    seconds = math.floor(delay) if early else math.ceil(delay)
    return min(MAX_VISIBILITY_SECONDS, max(0, seconds))


def send_all(rt: Runtime, outgoing: Sequence[Outgoing], *, run_id: str) -> None:
    """Send messages in order; each delay counts from when the first was sent."""
    began = rt.clock.now()
    for item in outgoing:
        envelope = messages.make_envelope(
            item.payload,
            run_id=item.run_id or run_id,
            idempotency_key=item.key,
            created=rt.clock.now(),
        )
        text = messages.encode(envelope, rt.settings.signing_keys)
        spent = (rt.clock.now() - began).total_seconds()
        queue = QUEUE_OF[item.payload.TYPE]
        rt.queues.send(
            queue, text, visibility_timeout=visibility_of(item.delay - spent, early=item.early)
        )


def submit(rt: Runtime, job: Job, run_id: str, result: Result, *, key: str = "") -> None:
    """Apply a decision made outside a queue delivery (a timer, Event Grid, the CLI)."""
    if isinstance(result, Send):
        send_all(rt, result.messages, run_id=run_id)
    elif not isinstance(result, Done):
        raise ValueError(f"{type(result).__name__} is only for queue messages ({job} {key})")


def start(
    rt: Runtime,
    job: Job,
    run_id: str,
    key: str,
    decide: Callable[[Context], Result],
) -> Result:
    """Run a decision outside a queue delivery (a timer, the CLI): outcomes flushed, sends sent."""
    ctx = Context(rt, job=job, run_id=run_id, key=key)
    try:
        result = decide(ctx)
        submit(rt, job, run_id, result, key=key)
        return result
    except Exception as e:
        # The run broke: its run-end says so (the heartbeat alert and `lifeboat status` read it).
        ctx.out.failed("run-end", f"{type(e).__name__}: {e}"[:2000])
        raise
    finally:
        flush(rt, ctx.outcomes)


def fire(rt: Runtime, timer: Timer) -> Result:
    """A timer's run: its scheduled occurrence names the run; the use case decides the rest."""
    from shared.schedules import latest_occurrence
    from shared.snapshots import slot_of

    setting, module, job = TIMER_SPECS[timer]
    decide = importlib.import_module(module).TIMERS[timer]
    schedule = getattr(rt.settings, setting.lower())
    occurrence = latest_occurrence(schedule, rt.clock.now()).replace(second=0, microsecond=0)
    slot = slot_of(occurrence)
    return start(
        rt,
        job,
        f"{timer}-{slot}",
        f"{timer}:{slot}",
        lambda c: decide(c, occurrence),
    )


def per_subscription(
    ctx: Context,
    occurrence: datetime,
    request: Callable[[str, str], Payload],
    **details: Any,
) -> Send:
    """A timer's start: `run-start`, and one plan message per target subscription and slot.

    `request(subscription, slot)` makes each message; its idempotency key names the message
    type, the subscription and the slot, so a timer fired twice plans each subscription once.
    """
    from shared.snapshots import slot_of

    slot = slot_of(occurrence.replace(second=0, microsecond=0))
    subscriptions = sorted(ctx.settings.subscriptions)
    ctx.out.succeeded(
        "run-start",
        count=len(subscriptions),
        details={"slot": slot, "subscriptions": subscriptions, **details},
    )
    planned = [(s, request(s, slot)) for s in subscriptions]
    return Send(*(Outgoing(m, key=f"{m.TYPE}:{s}:{slot}") for s, m in planned))


def park_outcomes(
    rt: Runtime, records: Sequence[Mapping[str, Any]], *, put_backs: int = 0, delay: int = 0
) -> None:
    """Outcome records Azure Monitor did not take wait on `outcomes-retry` (chunks that fit)."""
    from shared.messages import OutcomesRetryRequest

    for chunk in _record_chunks([dict(r) for r in records]):
        run_id = str(chunk[0].get("RunId") or "outcomes")[:128]
        envelope = messages.make_envelope(
            OutcomesRetryRequest(records=chunk),
            run_id=run_id,
            idempotency_key=f"outcomes-retry:{chunk[0].get('OutcomeId') or run_id}:{len(chunk)}",
            created=rt.clock.now(),
            put_backs=put_backs,
        )
        rt.queues.send(
            Queue.OUTCOMES_RETRY,
            messages.encode(envelope, rt.settings.signing_keys),
            visibility_timeout=delay,
        )


# Leave room for the envelope inside a queue message's ~48 KiB of payload.
_MAX_RECORDS_BYTES = 40 * 1024


def _record_chunks(records: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(json.dumps(record, separators=(",", ":")).encode("utf-8")) + 1
        if chunk and size + record_size > _MAX_RECORDS_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk


# ------------------------------------------------------------------------------------- poison


def _poison(
    rt: Runtime,
    queue: Queue,
    text: str,
    message_id: str,
    dequeue_count: int,
    reason: str,
    message_type: str | None,
    outcomes: list[Outcome],
) -> None:
    """Move a message that can never succeed to `<queue>-poison` with its reason, and report it.

    Its full text goes to its blob first; the row keeps its first KiB and the blob's name. If the
    blob cannot be written the message is poisoned all the same (the poison queue keeps it, and
    the drain deletes it only once its blob is written) and the row says so."""
    from shared.poison import keep_text, kept_without_blob

    wrapped = json.dumps(
        {
            "reason": reason,
            "originalQueue": str(queue),
            "dequeueCount": dequeue_count,
            "message": text,
        }
    )
    if messages.encoded_size(wrapped) > messages.MAX_ENCODED_BYTES:
        # Too big to wrap: let the host retry and then move the original, untouched.
        raise RuntimeError(
            f"cannot poison message {message_id} from {queue} with reason: too large"
        )
    try:
        kept = keep_text(rt.blobs, text)
    except BlobStoreError as e:
        log.warning(
            "message %s from %s: its full text could not be stored: %s", message_id, queue, e
        )
        kept = {**kept_without_blob(text), "blobError": str(e)[:2000]}
    rt.queues.send(queue + POISON_SUFFIX, wrapped)
    log.warning("poisoned message %s from %s: %s", message_id, queue, reason)
    Outcomes(
        sink=outcomes.append,
        clock=rt.clock,
        job=Job.MAINTENANCE,
        run_id=message_id or "poison",
        key=f"poison:{queue!s}:{message_id}",
        dry_run=rt.settings.dry_run,
    ).refused(
        "poison",
        reason,
        details={
            "queue": str(queue),
            "type": message_type,
            "dequeueCount": dequeue_count,
            "messageId": message_id,
            **kept,
        },
    )


def _message_details(
    queue: Queue, envelope: Envelope, message_id: str, dequeue_count: int
) -> dict[str, Any]:
    return {
        "queue": str(queue),
        "type": envelope.type,
        "dequeueCount": dequeue_count,
        "messageId": message_id,
        "idempotencyKey": envelope.idempotency_key,
    }


# ---------------------------------------------------------------------------------- reporting


def flush(rt: Runtime, outcomes: list[Outcome]) -> None:
    """Report what a delivery recorded, once; reporting never fails or repeats the work."""
    if not outcomes:
        return
    batch = list(outcomes)
    outcomes.clear()
    try:
        rt.reporter.report(batch)
    except Exception:
        log.exception(
            "could not report %d outcome(s): %s",
            len(batch),
            "; ".join(f"{o.job} {o.operation} {o.status} {o.resource_id or ''}" for o in batch)[
                :4000
            ],
        )


def describe(result: Result) -> str:
    """One line for the trigger's INFO log."""
    if isinstance(result, Send):
        kinds = sorted({str(m.payload.TYPE) for m in result.messages})
        return f"sent {len(result.messages)} ({', '.join(kinds)})" if kinds else "done"
    if isinstance(result, PutBack):
        return f"put back for {result.after:.0f} s: {result.reason}"
    if isinstance(result, Refuse):
        return f"refused: {result.reason}"
    return "done" + (f": {result.note}" if result.note else "")


__all__ = [
    "MAX_VISIBILITY_SECONDS",
    "Context",
    "Done",
    "Handler",
    "Outgoing",
    "PutBack",
    "Refuse",
    "Result",
    "Send",
    "deliver",
]
