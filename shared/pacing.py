"""How far one worker process may run ahead of the night's pace.

A night's writes are paced by when each message becomes visible on its queue. When delivery
stalls (a queue that answers nothing for seconds, a host that restarts or scales out late), the
messages that came due meanwhile arrive together, and Azure's buckets take them up to their
depth (ARM's write bucket holds 200): in the full-size bench (bench/RESULTS.md), the minute after
a 15-second stall ran at 1.26 of its budget while no request met a 429. `Pace` bounds that
catch-up where it is judged, per minute: for each budget (ARM writes or deletes of a
subscription, snapshot creates of a subscription and region) it remembers when it let writes
go, and lets at most `PACE_CATCH_UP` over the budget go in any 60 seconds. A stall's backlog
goes as soon as that minute has room, so the night still ends on time; what finds no room is
put back, never slept through, each for when the minute will have a place for it, so the
put-backs return one by one.

The record lives in the process: each Function instance keeps its own minute.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
# Put-backs never come back sooner than this: a queue hides messages in whole seconds.
MIN_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Budget:
    """One rate a write counts against: `key` names it, `per_second` is the budget."""

    key: tuple[str, ...]
    per_second: float


class _Minute:
    __slots__ = ("at", "owed", "went")

    def __init__(self, at: float) -> None:
        self.went: deque[float] = deque()  # when writes went, the last WINDOW_SECONDS of them
        self.owed = 0.0  # writes put back and not yet due again, at the budget's rate
        self.at = at


class Pace:
    """A minute of writes per budget, shared by the process's threads; `Pace.off()` never holds
    back."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, enabled: bool = True):
        self._clock = clock
        self._enabled = enabled
        self._minutes: dict[tuple[str, ...], _Minute] = {}
        self._lock = threading.Lock()

    @classmethod
    def off(cls) -> Pace:
        """For use-case tests on fake ports, whose drains do not wait for real seconds."""
        return cls(enabled=False)

    def take(self, *budgets: Budget, catch_up: float, at_least: int = 1) -> float:
        """0 when one write counted against every budget may go now (it is recorded in each);
        otherwise how many seconds to put it back for (nothing recorded).

        Each budget lets (1 + `catch_up`) x its rate x 60 writes go in any 60 seconds, and at
        least `at_least`: what one message carries (a VM's disks, a prune message's deletes) is
        one step of the pace, so its writes may go together however low the budget. A write
        that finds no room is owed a place after the writes put back before it.
        """
        if not self._enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            minutes = [(self._minute(b, now), b) for b in budgets]
            full = [
                (minute, b)
                for minute, b in minutes
                if len(minute.went) >= max(at_least, b.per_second * WINDOW_SECONDS * (1 + catch_up))
            ]
            if not full:
                for minute, _ in minutes:
                    minute.went.append(now)
                return 0.0
            wait = 0.0
            for minute, _ in full:
                # Room opens as the minute's oldest writes leave it: the first write put back
                # gets the first place, the next the one after.
                minute.owed += 1.0
                place = min(int(minute.owed), len(minute.went)) - 1
                wait = max(wait, minute.went[place] + WINDOW_SECONDS - now)
            return max(MIN_WAIT_SECONDS, math.ceil(wait))

    def _minute(self, budget: Budget, now: float) -> _Minute:
        minute = self._minutes.get(budget.key)
        if minute is None:
            minute = self._minutes[budget.key] = _Minute(now)
        while minute.went and minute.went[0] <= now - WINDOW_SECONDS:
            minute.went.popleft()
        # The places handed to put-backs come due as the minute frees room, about the budget's
        # rate (they are not reserved: a put-back that returns finds room like any other write,
        # or is owed a place again).
        minute.owed = max(0.0, minute.owed - max(0.0, now - minute.at) * budget.per_second)
        minute.at = now
        return minute
