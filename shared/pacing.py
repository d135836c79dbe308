"""How far one worker process may run ahead of the night's pace.

A night's writes are paced by when each message becomes visible on its queue. When delivery
stalls (a queue that answered late, a host that restarted or scaled out late), the messages
that came due meanwhile arrive together, and Azure's buckets take them up to their depth: ARM's
writes bucket is 200 deep, so a minute after a 15-second stall ran at 1.26 of its budget while
no request met a 429. `Pace` bounds that catch-up: per budget (ARM writes or deletes of a
subscription, snapshot creates of a subscription and region) a token bucket that refills at the
budget and holds `PACE_BURST_SECONDS` of it. A write that finds no token is put back, never
slept through; the put-backs are spread at the budget's rate, so they return one by one.

The buckets live in the process: several Function instances each run at most one burst ahead.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Put-backs never come back sooner than this: a queue hides messages in whole seconds.
MIN_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Budget:
    """One rate a write counts against: `key` names the bucket, `per_second` is its refill."""

    key: tuple[str, ...]
    per_second: float


class _Bucket:
    __slots__ = ("at", "owed", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens  # writes that may go now
        self.owed = 0.0  # writes put back and not yet due again, at the refill rate
        self.at = at


class Pace:
    """Token buckets per budget, shared by the process's threads; `Pace.off()` never holds back."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, enabled: bool = True):
        self._clock = clock
        self._enabled = enabled
        self._buckets: dict[tuple[str, ...], _Bucket] = {}
        self._lock = threading.Lock()

    @classmethod
    def off(cls) -> Pace:
        """For use-case tests on fake ports, whose drains do not wait for real seconds."""
        return cls(enabled=False)

    def take(self, *budgets: Budget, burst_seconds: float, at_least: int = 1) -> float:
        """0 when one write counted against every budget may go now (a token taken from each);
        otherwise how many seconds to put it back for (nothing taken).

        A bucket holds `burst_seconds` of its budget, and at least `at_least` writes: what one
        message carries (a VM's disks, a prune message's deletes) is paced as one step, so its
        writes go together however low the budget. A write that finds a
        bucket empty is owed a place after the writes put back before it, so a backlog returns
        spread at the budget's rate rather than all at once.
        """
        if not self._enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            depth = max(1.0, float(at_least))
            buckets = [(self._refilled(b, burst_seconds, depth, now), b) for b in budgets]
            if all(bucket.tokens >= 1.0 for bucket, _ in buckets):
                for bucket, _ in buckets:
                    bucket.tokens -= 1.0
                return 0.0
            wait = 0.0
            for bucket, budget in buckets:
                if bucket.tokens < 1.0:
                    bucket.owed += 1.0
                    wait = max(wait, bucket.owed / budget.per_second)
            return max(MIN_WAIT_SECONDS, math.ceil(wait))

    def _refilled(self, budget: Budget, burst_seconds: float, least: float, now: float) -> _Bucket:
        depth = max(least, budget.per_second * burst_seconds)
        bucket = self._buckets.get(budget.key)
        if bucket is None:
            bucket = self._buckets[budget.key] = _Bucket(depth, now)
            return bucket
        gained = max(0.0, now - bucket.at) * budget.per_second
        bucket.at = now
        bucket.tokens = min(depth, bucket.tokens + gained)
        # The places handed to put-backs come due at the same rate (they are not reserved: a
        # put-back that returns takes a token like any other write).
        bucket.owed = max(0.0, bucket.owed - gained)
        return bucket
