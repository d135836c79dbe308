"""The stand-in's clock: starts at a given instant, runs at a given rate, jumps when told to."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def parse_instant(text: str) -> datetime:
    """Parse an RFC 3339 instant; a missing offset means UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_instant(value: datetime) -> str:
    """RFC 3339 with a `Z`, as ARM writes times in JSON bodies (microsecond precision)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """now = start + real elapsed x rate + advances. Rate 0 freezes time between advances."""

    def __init__(self, start: datetime | None = None, rate: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._origin = start or datetime.now(UTC)
        self._mono = time.monotonic()
        self._rate = rate

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._mono) * self._rate
            return self._origin + timedelta(seconds=elapsed)

    @property
    def rate(self) -> float:
        return self._rate

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._origin += timedelta(seconds=seconds)
        return self.now()

    def set(self, instant: datetime) -> datetime:
        current = self.now()
        if instant < current:
            raise ValueError("the clock only moves forward")
        return self.advance((instant - current).total_seconds())

    def set_rate(self, rate: float) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        now = self.now()
        with self._lock:
            self._origin = now
            self._mono = time.monotonic()
            self._rate = rate
