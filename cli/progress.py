"""What a long command (`run`, `demo`, `drill start`, `recover`) shows while it works.

One rich progress line on the terminal: the phase, the messages in flight on the app's queues, the
writes Lifeboat made against its write budget, and the time elapsed. `--json` and output that is
not a terminal get nothing. Durations for people are in words (humanize); JSON keeps seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any

import humanize
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

# Outcome rows that stand for an ARM write Lifeboat made (a PUT or DELETE that was sent).
WRITE_OPERATIONS = frozenset({"snapshot-create", "snapshot-delete", "tag-default-policy"})
WRITE_STATUSES = frozenset({"succeeded", "failed"})


def duration(seconds: float | None) -> str:
    """Seconds in words for people ("3 minutes"); None is "-"."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.1f} seconds"
    return humanize.naturaldelta(timedelta(seconds=seconds))


@dataclass
class Gauges:
    """The figures the display shows besides the phase."""

    in_flight: int | None = None
    writes: int | None = None
    budget_per_second: float | None = None


class LiveProgress:
    """A progress line refreshed by a background reader of `gauges()`; a no-op when not shown.

    `gauges` is called about once a second, from a thread of this object's own: it reads the
    queues and the outcomes so far, and must not raise (a failed reading shows nothing new).
    """

    def __init__(
        self,
        console: Console,
        *,
        enabled: bool,
        gauges: Callable[[], Gauges] | None = None,
        every: float = 1.0,
    ) -> None:
        self.enabled = enabled and console.is_terminal
        self._gauges = gauges
        self._every = every
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Progress | None = None
        self._task: Any = None
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._task = self._progress.add_task("starting", detail="")

    def __enter__(self) -> LiveProgress:
        if self._progress is not None:
            self._progress.start()
            if self._gauges is not None:
                self.watch(self._gauges)
        return self

    def watch(self, gauges: Callable[[], Gauges]) -> None:
        """Read these gauges from now on (once the queues and the host exist)."""
        self._gauges = gauges
        if self._progress is not None and self._thread is None:
            self._thread = threading.Thread(target=self._refresh, daemon=True)
            self._thread.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._progress is not None:
            self._progress.stop()

    def phase(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def _refresh(self) -> None:
        assert self._progress is not None
        while not self._stop.wait(self._every):
            try:
                assert self._gauges is not None
                gauges = self._gauges()
            except Exception:  # a reading that failed: keep the last figures
                continue
            self._progress.update(self._task, detail=describe(gauges, self.elapsed()))

    def elapsed(self) -> float:
        return time.monotonic() - self._started


def describe(gauges: Gauges, elapsed: float) -> str:
    """ "12 in flight · 340 writes (3.1/s of a 5/s budget)"."""
    parts = []
    if gauges.in_flight is not None:
        parts.append(f"{gauges.in_flight} in flight")
    if gauges.writes is not None:
        rate = gauges.writes / elapsed if elapsed > 0 else 0.0
        budget = (
            f" of {gauges.budget_per_second:g}/s" if gauges.budget_per_second is not None else ""
        )
        parts.append(f"{gauges.writes} writes, {rate:.1f}/s{budget}")
    return " · ".join(parts)


def queue_depth(connection_string: str) -> Callable[[], int]:
    """Messages waiting on every queue of this storage account (visible or not), summed."""
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(connection_string)

    def depth() -> int:
        total = 0
        for queue in service.list_queues():
            properties = service.get_queue_client(queue.name).get_queue_properties()
            total += properties.approximate_message_count or 0
        return total

    return depth


def count_writes(outcomes: list[dict[str, Any]]) -> int:
    return sum(
        1
        for r in list(outcomes)
        if r.get("Operation") in WRITE_OPERATIONS and r.get("Status") in WRITE_STATUSES
    )
