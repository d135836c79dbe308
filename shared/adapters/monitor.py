"""Azure Monitor: outcome records to the `LifeboatOutcomes_CL` table through the Logs Ingestion API.

Reports are batched per invocation (`batch()`, entered by the queue worker for each message;
outside one, each `report()` call is a batch): azure-monitor-ingestion splits a batch into gzip
chunks of at most 1 MiB. 429 and 5xx are retried inside the call with bounded backoff
(Retry-After honoured only when short, total sleep bounded). A chunk that still fails never
fails the work it reports on: its records go to the `outcomes-retry` queue and the retry worker
sends them later. If even the queue refuses, the records are logged at ERROR in full, so nothing
is lost silently.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import RetryPolicy
from azure.monitor.ingestion import LogsIngestionClient, LogsUploadError

from shared import messages
from shared.model import Outcome
from shared.ports import Queues

log = logging.getLogger(__name__)

RETRY_QUEUE = "outcomes-retry"
# Leave room for the envelope inside a queue message's ~48 KiB of payload.
_MAX_RETRY_PAYLOAD_BYTES = 40 * 1024
_MAX_RETRY_AFTER_SECONDS = 10.0


class MonitorRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """Retry 408, 429 and 5xx (ingestion POSTs are safe to resend) with bounded total sleep.

    azure-core's default would sleep any Retry-After in full, without a cap, and retry ten times.
    """

    def __init__(self, max_sleep_seconds: float, **kwargs: Any) -> None:
        kwargs.setdefault("retry_total", 4)
        kwargs.setdefault("retry_backoff_factor", 0.5)
        kwargs.setdefault("retry_backoff_max", 8)
        kwargs.setdefault("retry_on_status_codes", [408, 429, 500, 502, 503, 504])
        super().__init__(**kwargs)
        self.max_sleep_seconds = max_sleep_seconds

    def _is_method_retryable(self, settings: Any, request: Any, response: Any = None) -> bool:
        return True

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        status = response.http_response.status_code
        if status not in (408, 429) and status < 500:
            return False
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > _MAX_RETRY_AFTER_SECONDS:
            return False
        wait = retry_after if retry_after is not None else self.get_backoff_time(settings)
        slept = float(settings.get("lifeboat_slept", 0.0))
        return slept + wait <= self.max_sleep_seconds

    def sleep(
        self,
        settings: dict[str, Any],
        transport: Any,
        response: PipelineResponse[Any, Any] | None = None,
    ) -> None:
        retry_after = self.get_retry_after(response) if response is not None else None
        wait = retry_after if retry_after is not None else self.get_backoff_time(settings)
        settings["lifeboat_slept"] = float(settings.get("lifeboat_slept", 0.0)) + wait
        super().sleep(settings, transport, response)


class MonitorReporter:
    """The `Reporter` port on the Logs Ingestion API, with the retry queue as its safety net."""

    def __init__(
        self,
        client: Any,
        *,
        rule_id: str,
        stream: str,
        queues: Queues | None,
    ) -> None:
        self._client = client
        self._rule_id = rule_id
        self._stream = stream
        self._queues = queues
        self._local = threading.local()

    @classmethod
    def build(
        cls,
        credential: Any,
        *,
        endpoint: str,
        rule_id: str,
        stream: str,
        audience: str,
        queues: Queues | None,
        max_retry_seconds: float = 30.0,
    ) -> MonitorReporter:
        client = LogsIngestionClient(
            endpoint,
            credential,
            credential_scopes=[audience],
            retry_policy=MonitorRetryPolicy(max_retry_seconds),
        )
        return cls(client, rule_id=rule_id, stream=stream, queues=queues)

    def report(self, outcomes: Iterable[Outcome]) -> None:
        records = [o.to_record() for o in outcomes]
        buffer: list[dict[str, Any]] | None = getattr(self._local, "buffer", None)
        if buffer is not None:
            buffer.extend(records)
        elif records:
            self._send_or_keep(records)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold this thread's reports until the invocation ends, then send them in one upload
        (chunked under 1 MB), whether the invocation succeeded or raised."""
        if getattr(self._local, "buffer", None) is not None:
            yield  # already batching (nested)
            return
        self._local.buffer = []
        try:
            yield
        finally:
            records, self._local.buffer = self._local.buffer, None
            if records:
                self._send_or_keep(records)

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

    def _send_or_keep(self, records: list[dict[str, Any]]) -> None:
        failed = self.send(records)
        if failed:
            park(self._queues, failed, attempt=1)


def park(
    queues: Queues | None,
    records: Sequence[Mapping[str, Any]],
    *,
    attempt: int,
    visibility_timeout: int = 0,
) -> None:
    """Put records on the outcomes-retry queue; log what cannot be queued, in full."""
    for chunk in _chunks([dict(r) for r in records]):
        try:
            if queues is None:
                raise RuntimeError("no queue to park outcome records on")
            envelope = messages.make_envelope(
                "outcomes-retry",
                messages.OutcomesRetryRequest(records=chunk, attempt=attempt),
                run_id=str(chunk[0].get("RunId") or "outcomes")[:128],
                idempotency_key=f"outcomes-retry:{chunk[0].get('RunId')}:{len(chunk)}"[:512],
                created=datetime.now(UTC),
            )
            queues.send(
                RETRY_QUEUE, messages.encode(envelope), visibility_timeout=visibility_timeout
            )
        except Exception:
            for record in chunk:
                log.exception(
                    "outcome record LOST from Azure Monitor, kept only here: %s",
                    json.dumps(record, separators=(",", ":")),
                )


def _chunks(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for record in records:
        record_size = len(json.dumps(record, separators=(",", ":")).encode("utf-8")) + 1
        if chunk and size + record_size > _MAX_RETRY_PAYLOAD_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk


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

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return self.monitor.batch()
