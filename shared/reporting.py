"""Resending outcome records Azure Monitor refused.

Records that could not be sent wait on the `outcomes-retry` queue; this worker sends them again,
backing off while Azure Monitor is down (the put-back count doubles the wait), and never drops
them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from shared.dispatch import Context, Done, HandlerTable, PutBack, Result
from shared.messages import OutcomesRetryRequest

log = logging.getLogger(__name__)

_MAX_RETRY_DELAY_SECONDS = 3600


@runtime_checkable
class RecordSender(Protocol):
    """A reporter that can send ready-made records and say which it could not send."""

    def send(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...


def resend_outcomes(request: OutcomesRetryRequest, ctx: Context) -> Result:
    """Send parked records again; what is still refused goes back on the queue, later."""
    reporter = ctx.rt.reporter
    if not isinstance(reporter, RecordSender):
        # Azure Monitor is not configured (any more): the records can only be logged.
        for record in request.records:
            log.warning("outcome record with no Azure Monitor to send it to: %s", record)
        return Done("no Azure Monitor")
    failed = reporter.send(request.records)
    if not failed:
        log.info("resent %d outcome record(s)", len(request.records))
        return Done()
    base = ctx.settings.monitor_retry_delay_seconds
    delay = min(_MAX_RETRY_DELAY_SECONDS, base * 2 ** min(ctx.put_backs, 10))
    return PutBack(
        delay,
        f"Azure Monitor still refuses {len(failed)} outcome record(s)",
        OutcomesRetryRequest(records=failed),
    )


HANDLERS: HandlerTable = {OutcomesRetryRequest: resend_outcomes}
