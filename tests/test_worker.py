from __future__ import annotations

import json

import pytest

from shared import messages
from shared.messages import Envelope, Payload, make_envelope
from shared.model import Job
from shared.ports import Runtime
from shared.settings import Settings
from shared.worker import enqueue, process_queue_message
from tests.conftest import base_settings
from tests.fakes import FailingReporter, FixedClock, MemoryQueues, MemoryReporter
from tests.test_messages import NOW, envelope_text, onboarding_request


def runtime(reporter: object | None = None) -> tuple[Runtime, MemoryQueues, MemoryReporter]:
    queues, memory = MemoryQueues(), MemoryReporter()
    rt = Runtime(
        Settings.from_env(base_settings()),
        FixedClock(),
        reporter or memory,
        queues,  # type: ignore[arg-type]
    )
    return rt, queues, memory


def process(rt: Runtime, body: bytes, handler: object, dequeue_count: int = 1) -> None:
    process_queue_message(
        rt,
        queue="onboarding",
        body=body,
        message_id="m-1",
        dequeue_count=dequeue_count,
        job=Job.ONBOARDING,
        handlers={"onboarding": handler},  # type: ignore[dict-item]
    )


def never_called(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    raise AssertionError("handler must not run")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not JSON"),
        (envelope_text(type="drill-step").encode(), "'drill-step' does not belong on queue"),
        (envelope_text(payload={}).encode(), "payload schema"),
    ],
)
def test_poison_goes_to_the_poison_queue_with_reason_and_is_reported(
    body: bytes, reason: str
) -> None:
    rt, queues, reporter = runtime()
    process(rt, body, never_called, dequeue_count=2)
    [wrapped] = queues.sent["onboarding-poison"]
    document = json.loads(wrapped)
    assert set(document) == {"reason", "originalQueue", "dequeueCount", "message"}
    assert reason in document["reason"]
    assert document["originalQueue"] == "onboarding"
    assert document["dequeueCount"] == 2
    [outcome] = reporter.outcomes
    assert (outcome.job, outcome.operation, outcome.status.value) == (
        Job.MAINTENANCE,
        "poison",
        "failed",
    )
    assert outcome.details["queue"] == "onboarding"


def test_a_type_that_does_not_belong_on_the_queue_is_poisoned() -> None:
    rt, queues, _ = runtime()
    process_queue_message(
        rt,
        queue="drill-step",
        body=envelope_text().encode(),
        message_id="m",
        dequeue_count=1,
        job=Job.DRILL,
        handlers={},
    )
    assert "does not belong on queue 'drill-step'" in queues.sent["drill-step-poison"][0]


def test_transient_failure_raises_and_is_reported_only_on_the_last_delivery() -> None:
    rt, _, reporter = runtime()

    def flaky(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
        raise TimeoutError("ARM did not answer")

    for delivery in range(1, rt.settings.max_dequeue_count + 1):
        with pytest.raises(TimeoutError):
            process(rt, envelope_text().encode(), flaky, dequeue_count=delivery)
    [outcome] = reporter.outcomes
    assert outcome.status.value == "failed"
    assert "failed on delivery 5 of 5" in (outcome.reason or "")
    assert "onboarding-poison" in (outcome.reason or "")


def test_a_reporting_failure_never_hides_the_work_error() -> None:
    rt, _, _ = runtime(FailingReporter())

    def flaky(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
        raise TimeoutError("ARM did not answer")

    with pytest.raises(TimeoutError):
        process(rt, envelope_text().encode(), flaky, dequeue_count=5)


def test_producer_refuses_and_reports_an_oversized_message() -> None:
    rt, queues, reporter = runtime()
    big = make_envelope(
        "onboarding",
        onboarding_request(correlationId="x" * 60_000),
        run_id="r",
        idempotency_key="k",
        created=NOW,
    )
    with pytest.raises(messages.MessageTooLargeError):
        enqueue(rt, "onboarding", big, job=Job.ONBOARDING)
    assert queues.sent == {}
    [outcome] = reporter.outcomes
    assert outcome.operation == "enqueue-onboarding"
    assert "at most 65536" in (outcome.reason or "")
