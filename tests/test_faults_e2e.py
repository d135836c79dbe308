"""Azure holding the work back, end to end: the local host runs the real app against Azurite and
the stand-in, whose Compute answers every snapshot create with `Retry-After: 1200` (a window on
the stand-in clock, as Compute has been seen to do). The night must end complete once the window
reopens, with a `waiting` row saying how long Azure held each create and no thread asleep. Like
every end-to-end test, it meets the stand-in's bodies written as untidily as Azure writes them
(tests/conftest.py).

Queue waits are real seconds (Azurite), the window is on the stand-in clock: the test scales the
queue's visibility delays down (1 s for each 1,000 s asked, whole seconds as Storage keeps them)
and moves the stand-in clock on by the 1,200 s once Azure has held the work. Product code and
settings are unchanged.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cli.azurite import Azurite
from emulator.process import DEMO_ESTATE, SHAPES_VARIABLE, running_emulator
from shared.ports import Queues, ReceivedMessage
from shared.services import build_queues, override_services, reset_services
from shared.settings import Settings
from tests.e2e_env import app_host, app_settings, stand_in_options, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

NIGHT = datetime.fromisoformat("2026-11-27T02:00:00+00:00")
SLOT = NIGHT.strftime("%Y%m%d%H%M")
HOLD = 1200
QUEUE_SECONDS_PER_ASKED = 1 / 1000


class ScaledQueues:
    """The app's queues with every visibility delay scaled down (at least 1 s when asked any)."""

    def __init__(self, queues: Queues, scale: float) -> None:
        self._queues = queues
        self._scale = scale

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        delay = math.ceil(visibility_timeout * self._scale) if visibility_timeout else 0
        self._queues.send(queue, text, visibility_timeout=delay)

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return self._queues.list_queues(suffix=suffix)

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[ReceivedMessage]:
        return self._queues.receive(queue, max_messages=max_messages)

    def delete(self, queue: str, message: ReceivedMessage) -> None:
        self._queues.delete(queue, message)


def _empty_queues(azurite: Azurite) -> None:
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    for queue in list(service.list_queues()):
        service.delete_queue(queue.name)


def _until(condition: Any, what: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def held_night(azurite: Azurite, tmp_path: Path) -> dict[str, Any]:
    """One night with every snapshot create held for 1,200 s; what it reported and took."""
    _empty_queues(azurite)
    reporter = MemoryReporter()
    options = stand_in_options(5, "--incremental-snapshot-family", "HighCostSnapshotCreateHydrate")
    with running_emulator(DEMO_ESTATE, *options) as ep, patched_environ(ep.environment()):
        environ = app_settings(
            azurite,
            ep,
            ARM_WRITES_PER_SECOND="200",
            SNAPSHOT_WRITES_PER_SECOND="200",
            # 5 s of queue time: after the held creates' put-backs (1,200-1,440 s: 2 s).
            CONFIRM_DELAY_SECONDS="5000",
        )
        overrides, clock, admin = wire_services(ep, environ, reporter, tmp_path / "host.json")
        queues = ScaledQueues(build_queues(Settings.from_env(environ)), QUEUE_SECONDS_PER_ASKED)
        override_services(queues=queues)
        # Compute's own 429 for the hydrate family: the first snapshot PUT opens a 1,200-second
        # window on the stand-in clock; every snapshot PUT inside it is refused.
        rule = admin.post(
            "/faults", json={"action": "throttle", "method": "PUT", "path": "/snapshots/"}
        ).json()
        assert (rule["retryAfter"], rule["holdSeconds"]) == (str(HOLD), HOLD)
        started = time.monotonic()
        with app_host(overrides, environ, clock) as host:
            admin.post("/clock", json={"set": SLOT_INSTANT}).raise_for_status()
            _until(lambda: _rows(reporter, "snapshot-create", "waiting"), "a held create")
            admin.post("/clock", json={"advanceSeconds": HOLD}).raise_for_status()
            _until(lambda: _rows(reporter, "run-end"), "the night's run-end")
            host.wait_idle(timeout=30)
            poisoned = sum(s.poisoned for s in host.stats.values())
        elapsed = time.monotonic() - started
        stand_in_seconds = (clock.now() - NIGHT).total_seconds()
        log = admin.get("/requests", params={"limit": 100000}).json()["entries"]
        untidy = admin.get("/behaviour").json()["untidyShapes"]
        admin.close()
    reset_services()
    return {
        "rows": list(reporter.outcomes),
        "elapsed": elapsed,
        "standInSeconds": stand_in_seconds,
        "poisoned": poisoned,
        "held": [e for e in log if e["fault"] == rule["id"]],
        "untidy": untidy,
    }


SLOT_INSTANT = NIGHT.strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows(rows: Any, operation: str, status: str | None = None) -> list[Any]:
    outcomes = rows.outcomes if isinstance(rows, MemoryReporter) else rows
    return [
        o
        for o in list(outcomes)
        if o.operation == operation
        and (status is None or o.status.value == status)
        and (o.operation != "run-end" or o.details.get("slot") == SLOT)
    ]


@pytest.mark.timeout(120)
def test_a_night_held_1200_seconds_ends_complete_when_the_window_reopens(
    azurite: Azurite, tmp_path: Path
) -> None:
    night = held_night(azurite, tmp_path)
    rows = night["rows"]
    # The suite's end-to-end tests run on untidy bodies unless a run chose tidy ones.
    assert night["untidy"] is (os.environ.get(SHAPES_VARIABLE, "untidy") == "untidy")
    # Azure held the creates (Compute's 429, the hydrate family's 30-minute policy) ...
    assert night["held"]
    assert {e["status"] for e in night["held"]} == {429}
    waiting = _rows(rows, "snapshot-create", "waiting")
    assert waiting
    assert all(o.reason.endswith("(HighCostSnapshotCreateHydrate30Min)") for o in waiting)
    assert max(o.details["heldSeconds"] for o in waiting) == HOLD
    assert all(0 < o.details["heldSeconds"] <= HOLD for o in waiting)
    assert all(o.details["afterSeconds"] >= HOLD - 5 for o in _rows(rows, "rotation-vm", "waiting"))
    # ... and no thread slept through it: the stand-in clock passed the window, the night took
    # seconds (a sleeping worker would have needed 1,200 of them).
    assert night["standInSeconds"] >= HOLD
    assert night["elapsed"] < 60
    # The night ends complete: every planned disk's snapshot good, but the one Azure refuses
    # (the deny assignment of the demo's managed group), which stays blocked, never failed.
    [end] = _rows(rows, "run-end")
    totals = end.details["totals"]
    blocked = _rows(rows, "snapshot-create", "blocked")
    assert [o.reason.split(":")[0] for o in blocked] == ["LinkedAuthorizationFailed"]
    assert (end.status.value, totals["snapshotsFailed"]) == ("succeeded", 0)
    assert totals["snapshotsNotTaken"] == len(blocked)
    assert totals["snapshotsGood"] == totals["snapshotsPlanned"] - len(blocked)
    assert not [o for o in rows if o.status.value == "failed"]
    assert night["poisoned"] == 0
