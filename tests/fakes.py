"""In-memory fakes of the ports, recording what happened."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from shared.model import Outcome
from shared.ports import ReceivedMessage


class MemoryReporter:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()

    def report(self, outcomes: Iterable[Outcome]) -> None:
        with self._lock:
            self.outcomes.extend(outcomes)

    def operations(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(o.operation, o.status.value) for o in self.outcomes]


class FailingReporter:
    def report(self, outcomes: Iterable[Outcome]) -> None:
        raise ConnectionError("monitor unreachable")


class FixedClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self.current

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.current += timedelta(**delta)


class MemoryQueues:
    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {}

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        self.sent.setdefault(queue, []).append(text)

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return sorted(q for q in self.sent if q.endswith(suffix))

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[ReceivedMessage]:
        pending = self.sent.get(queue, [])
        taken, self.sent[queue] = pending[:max_messages], pending[max_messages:]
        for i, text in enumerate(taken):
            yield ReceivedMessage(id=f"m{i}", pop_receipt="r", text=text, raw=text, dequeue_count=1)

    def delete(self, queue: str, message: ReceivedMessage) -> None:
        pass
