"""Lifeboat's retry policy for every ARM client.

azure-core's default retries any response with Retry-After, whatever the method (POSTs
included), and sleeps the whole Retry-After with no cap (Compute has answered 1200 s). Lifeboat
instead: never retries 429 inside the SDK (the worker re-enqueues its message), retries 408 and
5xx only for idempotent methods, only when Retry-After (if any) is at most 10 s, and sleeps at
most 30 s in total per call; never retries a POST. A connection or read that hangs gives up
after `CONNECTION_TIMEOUT_SECONDS` / `READ_TIMEOUT_SECONDS` (azure-core waits 300 s), and is
retried like a 5xx. What still fails leaves the adapter as `UnavailableError`; the handler puts
its work back, not the SDK.
"""

from __future__ import annotations

from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import RetryPolicy

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
MAX_RETRY_AFTER_SECONDS = 10.0
MAX_TOTAL_SLEEP_SECONDS = 30.0
# azure-core waits 300 s for a connection and for each read: four tries of a stuck list page
# would hold a worker for 20 minutes. ARM answers a list page within seconds.
CONNECTION_TIMEOUT_SECONDS = 20
READ_TIMEOUT_SECONDS = 60


class BoundedRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """Retries only when Retry-After (if any) is short, with one call's total sleep bounded."""

    def __init__(self, *, max_retry_after: float, max_total_sleep: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_retry_after = max_retry_after
        self.max_total_sleep = max_total_sleep

    def within_bounds(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after is not None and retry_after > self.max_retry_after:
            return False
        slept = float(settings.get("lifeboat_slept", 0.0))
        return slept + self._wait(settings, response) <= self.max_total_sleep

    def sleep(
        self,
        settings: dict[str, Any],
        transport: Any,
        response: PipelineResponse[Any, Any] | None = None,
    ) -> None:
        wait = self._wait(settings, response)
        settings["lifeboat_slept"] = float(settings.get("lifeboat_slept", 0.0)) + wait
        super().sleep(settings, transport, response)

    def _wait(self, settings: dict[str, Any], response: PipelineResponse[Any, Any] | None) -> float:
        retry_after = self.get_retry_after(response) if response is not None else None
        return retry_after if retry_after is not None else float(self.get_backoff_time(settings))


class LifeboatRetryPolicy(BoundedRetryPolicy):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("retry_total", 3)
        kwargs.setdefault("retry_backoff_factor", 0.8)
        kwargs.setdefault("retry_backoff_max", 10)
        kwargs.setdefault("retry_on_status_codes", [408, 500, 502, 503, 504])
        super().__init__(
            max_retry_after=MAX_RETRY_AFTER_SECONDS,
            max_total_sleep=MAX_TOTAL_SLEEP_SECONDS,
            **kwargs,
        )

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        status = response.http_response.status_code
        if status == 429:
            return False
        if response.http_request.method.upper() not in IDEMPOTENT:
            return False
        if status != 408 and status < 500:
            return False
        return self.within_bounds(settings, response)

    def _is_method_retryable(
        self, settings: dict[str, Any], request: PipelineRequest[Any] | Any, response: Any = None
    ) -> bool:
        method = getattr(request, "method", "").upper()
        return method in IDEMPOTENT
