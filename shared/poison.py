"""Poisoned messages: what Lifeboat keeps of them, and draining the `*-poison` queues.

Two kinds of message end up there: those a worker poisoned itself, wrapped with their reason,
and the host's raw copies of messages that failed on every delivery or could not be decoded.
A row keeps at most 1 KiB of a message's text, its SHA-256 and size; the full text goes first to
a private blob named by that hash (kept 30 days by the storage account's lifecycle rule). The
drain deletes a message only after its blob is written and its row reported: a message whose
text cannot be stored stays on its queue for the next run, and one row says why.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.dispatch import Context, Done, Result
from shared.names import POISON_SUFFIX, Status, Timer
from shared.ports import BlobStore, BlobStoreError, ReceivedMessage

log = logging.getLogger(__name__)

# A row keeps this many bytes of a message's UTF-8 text; the blob keeps all of it.
MAX_KEPT_BYTES = 1024
# Bounded per run so a flood never outlives the function timeout; the next run continues.
DEFAULT_DRAIN_LIMIT = 5_000


def keep_text(blobs: BlobStore, text: str) -> dict[str, Any]:
    """Write `text` to its blob (`sha256/<hex>`, once) and return what a row keeps of it:
    `message` (its first KiB, cut between characters), `sha256`, `size` (bytes), `truncated`,
    `blob` (container/name). Raises BlobStoreError when the blob cannot be written."""
    data = text.encode("utf-8", errors="surrogatepass")
    digest = hashlib.sha256(data).hexdigest()
    name = f"sha256/{digest}"
    blobs.put_if_absent(name, data)
    return {**_kept(data, digest), "blob": f"{blobs.container}/{name}"}


def kept_without_blob(text: str) -> dict[str, Any]:
    """What a row keeps of `text` when its blob could not be written (`blob` is None)."""
    data = text.encode("utf-8", errors="surrogatepass")
    return {**_kept(data, hashlib.sha256(data).hexdigest()), "blob": None}


def _kept(data: bytes, digest: str) -> dict[str, Any]:
    # "ignore" drops only what the cut split (and lone surrogates): the prefix stays valid UTF-8.
    prefix = data[:MAX_KEPT_BYTES].decode("utf-8", errors="ignore")
    return {
        "message": prefix,
        "sha256": digest,
        "size": len(data),
        "truncated": len(data) > MAX_KEPT_BYTES,
    }


def drain_poison(ctx: Context, occurrence: datetime, *, limit: int = DEFAULT_DRAIN_LIMIT) -> Result:
    """The poison timer: `run-start`, a row per drained message, `run-end` with the count."""
    ctx.out.succeeded("run-start", details={"function": "poison_drain"})
    drained, kept = _drain(ctx, limit=limit)  # if it raises, dispatch reports run-end
    totals = {"count": drained, "drained": drained, "kept": 1 if kept else 0}
    if kept is not None:
        ctx.out.failed(
            "run-end",
            f"stopped after {drained} drained: {kept}",
            count=drained,
            details={"function": "poison_drain", "totals": totals},
        )
        return Done(f"{drained} drained; stopped: {kept}")
    ctx.out.succeeded(
        "run-end", count=drained, details={"function": "poison_drain", "totals": totals}
    )
    log.info("poison drain %s: %d message(s) reported and deleted", ctx.run_id, drained)
    return Done(f"{drained} drained")


def drain_poison_queues(ctx: Context, *, limit: int = DEFAULT_DRAIN_LIMIT) -> int:
    """Report each poisoned message (its blob written and its row sent before it is deleted)."""
    return _drain(ctx, limit=limit)[0]


def _drain(ctx: Context, *, limit: int) -> tuple[int, str | None]:
    """The count drained, and why the drain stopped early (a blob it could not write), if it did.

    A message whose text cannot be stored is left on its queue (visible again after the receive's
    visibility timeout) and reported once; the drain stops there, since the store is likely down
    for the messages after it too."""
    queues = ctx.rt.queues
    drained = 0
    for poison_queue in queues.list_queues(suffix=POISON_SUFFIX):
        while drained < limit:
            batch = list(queues.receive(poison_queue, max_messages=min(32, limit - drained)))
            if not batch:
                break
            for message in batch:
                poisoned = read_poisoned(ctx.settings.max_dequeue_count, poison_queue, message)
                try:
                    kept = keep_text(ctx.rt.blobs, poisoned.content)
                except BlobStoreError as e:
                    why = f"kept on {poison_queue}: its full text could not be stored ({e})"
                    _report(ctx, poisoned, kept_without_blob(poisoned.content), why)
                    ctx.flush()
                    log.warning("poison drain stopped at message %s: %s", message.id, why)
                    return drained, why
                _report(ctx, poisoned, kept)
                ctx.flush()
                queues.delete(poison_queue, message)
                drained += 1
    if drained >= limit:
        log.warning("poison drain stopped at its limit of %d; the next run continues", limit)
    return drained, None


@dataclass(frozen=True, slots=True)
class Poisoned:
    """A message read from a poison queue: its original text, why it is there, where from."""

    message: ReceivedMessage
    poison_queue: str
    original_queue: str
    content: str
    reason: str
    dequeue_count: int | None


def read_poisoned(max_dequeue_count: int, poison_queue: str, message: ReceivedMessage) -> Poisoned:
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
    return Poisoned(message, poison_queue, original_queue, content, reason, dequeue_count)


def _report(
    ctx: Context, poisoned: Poisoned, kept: dict[str, Any], kept_back: str | None = None
) -> None:
    """The message's row: drained (its blob written), or `kept_back` on its queue and why."""
    message = poisoned.message
    if kept_back is None:
        log.warning(
            "drained poison message %s from %s: %s",
            message.id,
            poisoned.poison_queue,
            poisoned.reason,
        )
    ctx.out.row(
        "poison",
        Status.FAILED,
        poisoned.reason if kept_back is None else f"{poisoned.reason}; {kept_back}",
        distinct=message.id if kept_back is None else f"{message.id}:kept",
        details={
            "queue": poisoned.original_queue,
            "poisonQueue": poisoned.poison_queue,
            "type": _message_type(poisoned.content),
            "dequeueCount": poisoned.dequeue_count,
            "messageId": message.id,
            **kept,
            "drained": kept_back is None,
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
