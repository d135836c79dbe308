"""The Azure Monitor (Logs Ingestion) reporter against the API's answers.

The real azure-monitor-ingestion client with Lifeboat's `MonitorRetryPolicy`, answered by the
replaying transport: 204 on success (REFERENCE.md, Azure Monitor), 429 with Retry-After, 5xx.
Ingestion POSTs are safe to resend, so 429 and 5xx are retried inside the call, but only with a
short Retry-After and a bounded total sleep; what is still not taken is what `send()` returns.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from shared.adapters.monitor import MonitorReporter, MonitorRetryPolicy
from tests.replay import Answer, Credential, Replay, arm_error

ENDPOINT = "https://lifeboat-dce.westeurope-1.ingest.monitor.azure.com"
RULE = "dcr-00000000000000000000000000000000"
STREAM = "Custom-LifeboatOutcomes_CL"
MAX_SLEEP = 30.0


def reporter(*answers: Answer) -> tuple[MonitorReporter, Replay]:
    from azure.monitor.ingestion import LogsIngestionClient

    transport = Replay(answers)
    client = LogsIngestionClient(
        ENDPOINT,
        Credential(),
        credential_scopes=["https://monitor.azure.com/.default"],
        retry_policy=MonitorRetryPolicy(MAX_SLEEP),
        transport=transport,
    )
    return MonitorReporter(client, rule_id=RULE, stream=STREAM, park=None), transport


def records(n: int, filler: int = 0) -> list[dict[str, Any]]:
    def noise(i: int) -> str:  # incompressible enough that chunks are counted before gzip
        text, seed = "", str(i).encode()
        while len(text) < filler:
            seed = hashlib.sha256(seed).digest()
            text += seed.hex()
        return text[:filler]

    return [
        {"TimeGenerated": "2026-11-20T02:00:00Z", "RunId": "r1", "Seq": i, "Details": noise(i)}
        for i in range(n)
    ]


def accepted() -> Answer:
    return Answer(204, None, [("x-ms-request-id", "00000000-0000-0000-0000-000000000001")])


def test_204_means_every_record_was_taken_in_one_gzip_post() -> None:
    monitor, transport = reporter(accepted())
    assert monitor.send(records(3)) == []
    (post,) = transport.requests
    assert post.method == "POST"
    assert post.path == f"/dataCollectionRules/{RULE}/streams/{STREAM}"
    assert "api-version=2023-01-01" in post.url
    assert post.headers.get("Content-Encoding") == "gzip"
    assert [r["Seq"] for r in post.json()] == [0, 1, 2]


def test_a_429_with_a_short_retry_after_is_retried_and_then_taken() -> None:
    monitor, transport = reporter(
        arm_error(429, "TooManyRequests", "", ("Retry-After", "5")),
        accepted(),
    )
    assert monitor.send(records(2)) == []
    assert len(transport.requests) == 2
    assert transport.sleeps == [5.0]


@pytest.mark.parametrize("retry_after", ["11", "1200"])
def test_a_429_with_a_long_retry_after_returns_the_records_at_once(retry_after: str) -> None:
    monitor, transport = reporter(
        arm_error(429, "TooManyRequests", "", ("Retry-After", retry_after))
    )
    batch = records(4)
    started = time.monotonic()
    assert monitor.send(batch) == batch
    assert time.monotonic() - started < 1.0
    assert len(transport.requests) == 1
    assert transport.sleeps == []


@pytest.mark.parametrize("retry_after", [None, "10"])
def test_5xx_is_retried_with_bounded_sleep_then_the_records_are_returned(
    retry_after: str | None,
) -> None:
    headers = [("Retry-After", retry_after)] if retry_after else []
    monitor, transport = reporter(
        *[arm_error(503, "ServiceUnavailable", "", *headers) for _ in range(8)]
    )
    batch = records(2)
    assert monitor.send(batch) == batch
    assert len(transport.requests) == 4
    assert sum(transport.sleeps) <= MAX_SLEEP
    assert transport.sleeps == ([10.0, 10.0, 10.0] if retry_after else [1.0, 2.0])


def test_a_refused_upload_is_not_retried_and_is_returned() -> None:
    monitor, transport = reporter(
        arm_error(400, "InvalidStream", "Stream Custom-LifeboatOutcomes_CL is not in the rule")
    )
    batch = records(1)
    assert monitor.send(batch) == batch
    assert len(transport.requests) == 1


def test_only_the_chunk_that_was_not_taken_is_returned() -> None:
    batch = records(40, filler=40_000)  # about 1.6 MB: two chunks under 1 MiB each
    monitor, transport = reporter(
        accepted(),
        arm_error(429, "TooManyRequests", "", ("Retry-After", "1200")),
    )
    failed = monitor.send(batch)
    assert len(transport.requests) == 2
    first, second = (r.json() for r in transport.requests)
    assert failed == second
    assert [r["Seq"] for r in first + failed] == list(range(40))
