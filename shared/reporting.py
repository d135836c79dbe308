"""Reporting use cases: run heartbeats, and resending outcome records Azure Monitor refused.

Every run of every job reports `run-start` and `run-end` (with `Count` and `Details.totals`), so
the dead man's switch can tell a quiet night from a dead app. Records that could not be sent wait
on the `outcomes-retry` queue; the retry worker sends them again, backing off while Azure Monitor
is down, and never drops them.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from shared import messages
from shared.messages import Envelope, OutcomesRetryRequest, Payload, expect
from shared.model import Job, Outcome, Status
from shared.ports import Runtime
from shared.worker import enqueue

log = logging.getLogger(__name__)

RETRY_QUEUE = "outcomes-retry"
_MAX_RETRY_DELAY_SECONDS = 3600


@runtime_checkable
class RecordSender(Protocol):
    """A reporter that can send ready-made records and say which it could not send."""

    def send(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...


def report_run(
    rt: Runtime,
    job: Job,
    run_id: str,
    operation: str,
    status: Status = Status.SUCCEEDED,
    *,
    count: int | None = None,
    totals: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> None:
    """Report a `run-start` or `run-end` heartbeat; reporting never fails the run."""
    extra: dict[str, Any] = dict(details or {})
    if totals is not None:
        extra["totals"] = dict(totals)
    outcome = Outcome(
        time=rt.clock.now(),
        run_id=run_id,
        job=job,
        operation=operation,
        status=status,
        count=count,
        reason=reason,
        dry_run=rt.settings.dry_run,
        details=extra,
    )
    try:
        rt.reporter.report([outcome])
    except Exception:
        log.exception("could not report %s %s of %s", job, operation, run_id)


@contextlib.contextmanager
def heartbeat(
    rt: Runtime, job: Job, run_id: str, details: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """`run-start` now; `run-end` with the totals the body filled in (failed if it raised)."""
    report_run(rt, job, run_id, "run-start", details=details)
    totals: dict[str, Any] = {}
    try:
        yield totals
    except Exception as e:
        report_run(
            rt,
            job,
            run_id,
            "run-end",
            Status.FAILED,
            count=totals.get("count"),
            totals=totals,
            details=details,
            reason=f"{type(e).__name__}: {e}"[:1000],
        )
        raise
    report_run(
        rt, job, run_id, "run-end", count=totals.get("count"), totals=totals, details=details
    )


def resend_outcomes(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    """Send parked records again; what is still refused goes back on the queue, later."""
    request = expect(payload, OutcomesRetryRequest)
    reporter = rt.reporter
    if not isinstance(reporter, RecordSender):
        # Azure Monitor is not configured (any more): the records can only be logged.
        for record in request.records:
            log.warning("outcome record with no Azure Monitor to send it to: %s", record)
        return
    failed = reporter.send(request.records)
    if not failed:
        log.info("resent %d outcome record(s) (attempt %d)", len(request.records), request.attempt)
        return
    attempt = request.attempt + 1
    base = rt.settings.monitor_retry_delay_seconds
    delay = math.ceil(min(_MAX_RETRY_DELAY_SECONDS, base * 2 ** min(request.attempt - 1, 10)))
    again = messages.make_envelope(
        "outcomes-retry",
        OutcomesRetryRequest(records=failed, attempt=attempt),
        run_id=envelope.run_id,
        idempotency_key=envelope.idempotency_key,
        created=rt.clock.now(),
    )
    enqueue(rt, RETRY_QUEUE, again, job=Job.MAINTENANCE, visibility_timeout=delay)
    log.warning(
        "Azure Monitor still refuses %d outcome record(s); retry %d in %d s",
        len(failed),
        attempt,
        delay,
    )
