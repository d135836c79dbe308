"""Azure Monitor: outcome records to the `LifeboatOutcomes_CL` table through the Logs Ingestion API.

Dispatch reports a delivery's rows in one `report()` call: azure-monitor-ingestion splits them
into gzip chunks of at most 1 MiB. 429 and 5xx are retried inside the call with bounded backoff
(Retry-After honoured only when short, total sleep bounded). A chunk that still fails never
fails the work it reports on: its records are handed to `park` (dispatch puts them on the
`outcomes-retry` queue and the retry worker sends them later). If even that fails, the records
are logged at ERROR in full, so nothing is lost silently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from azure.core.pipeline import PipelineResponse
from azure.monitor.ingestion import LogsIngestionClient, LogsUploadError

from shared.adapters.retry import BoundedRetryPolicy
from shared.model import Outcome

log = logging.getLogger(__name__)

_MAX_RETRY_AFTER_SECONDS = 10.0


class MonitorRetryPolicy(BoundedRetryPolicy):
    """Retry 408, 429 and 5xx (ingestion POSTs are safe to resend) with bounded total sleep.

    azure-core's default would sleep any Retry-After in full, without a cap, and retry ten times.
    """

    def __init__(self, max_sleep_seconds: float, **kwargs: Any) -> None:
        kwargs.setdefault("retry_total", 4)
        kwargs.setdefault("retry_backoff_factor", 0.5)
        kwargs.setdefault("retry_backoff_max", 8)
        kwargs.setdefault("retry_on_status_codes", [408, 429, 500, 502, 503, 504])
        super().__init__(
            max_retry_after=_MAX_RETRY_AFTER_SECONDS, max_total_sleep=max_sleep_seconds, **kwargs
        )

    def _is_method_retryable(self, settings: Any, request: Any, response: Any = None) -> bool:
        return True

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        status = response.http_response.status_code
        if status not in (408, 429) and status < 500:
            return False
        return self.within_bounds(settings, response)


Park = Callable[[list[dict[str, Any]]], None]


class MonitorReporter:
    """The `Reporter` port on the Logs Ingestion API; what it cannot send goes to `park`."""

    def __init__(self, client: Any, *, rule_id: str, stream: str, park: Park | None) -> None:
        self._client = client
        self._rule_id = rule_id
        self._stream = stream
        self._park = park

    @classmethod
    def build(
        cls,
        credential: Any,
        *,
        endpoint: str,
        rule_id: str,
        stream: str,
        audience: str,
        park: Park | None,
        max_retry_seconds: float = 30.0,
    ) -> MonitorReporter:
        client = LogsIngestionClient(
            endpoint,
            credential,
            credential_scopes=[audience],
            retry_policy=MonitorRetryPolicy(max_retry_seconds),
        )
        return cls(client, rule_id=rule_id, stream=stream, park=park)

    def report(self, outcomes: Iterable[Outcome]) -> None:
        records = [o.to_record() for o in outcomes]
        if not records:
            return
        failed = self.send(records)
        if not failed:
            return
        try:
            if self._park is None:
                raise RuntimeError("nowhere to park outcome records")
            self._park(failed)
        except Exception:
            for record in failed:
                log.exception(
                    "outcome record LOST from Azure Monitor, kept only here: %s",
                    json.dumps(record, separators=(",", ":")),
                )

    def send(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Upload records; return those Azure Monitor did not take (never raises for them)."""
        failed: list[dict[str, Any]] = []
        errors: list[BaseException] = []

        def keep(error: LogsUploadError) -> None:
            failed.extend(dict(r) for r in error.failed_logs)
            errors.append(error.error)

        try:
            self._client.upload(
                rule_id=self._rule_id,
                stream_name=self._stream,
                logs=[dict(r) for r in records],
                on_error=keep,
            )
        except Exception as e:  # the client itself broke (credential, transport): keep them all
            log.warning("outcome upload failed before any chunk was sent: %s", e)
            return [dict(r) for r in records]
        if failed:
            log.warning(
                "Azure Monitor refused %d of %d outcome record(s): %s",
                len(failed),
                len(records),
                "; ".join(f"{type(e).__name__}: {e}" for e in errors)[:500],
            )
        return failed


class TeeReporter:
    """Azure Monitor plus another reporter (the local host's JSON lines, a test's memory)."""

    def __init__(self, monitor: MonitorReporter, also: Any) -> None:
        self.monitor = monitor
        self.also = also

    def report(self, outcomes: Iterable[Outcome]) -> None:
        batch = list(outcomes)
        self.also.report(batch)
        self.monitor.report(batch)

    def send(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return self.monitor.send(records)
