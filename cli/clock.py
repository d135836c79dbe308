"""A clock read from the Azure stand-in (`GET /admin/clock`), for the local host's timers.

One kept-alive HTTPS connection; a reading is reused for a few milliseconds, so a burst of
outcomes does not become a burst of requests.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from shared.adapters.clock import SystemClock

_REUSE_SECONDS = 0.05


class RemoteClock:
    def __init__(self, url: str, *, ca_bundle: str | None = None, timeout: float = 5.0) -> None:
        self.url = url
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
        )
        self._client = httpx.Client(verify=verify, timeout=timeout)
        self._lock = threading.Lock()
        self._last: tuple[float, datetime] | None = None

    def now(self) -> datetime:
        with self._lock:
            mono = time.monotonic()
            if self._last is not None and mono - self._last[0] < _REUSE_SECONDS:
                return self._last[1] + timedelta(seconds=mono - self._last[0])
            response = self._client.get(self.url)
            response.raise_for_status()
            value = datetime.fromisoformat(str(response.json()["now"]).replace("Z", "+00:00"))
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            value = value.astimezone(UTC)
            self._last = (time.monotonic(), value)
            return value

    def close(self) -> None:
        self._client.close()


def clock_of(emulator_endpoints: Path | None) -> Any:
    """A command's clock: the system's, or the stand-in's (`--emulator-endpoints` names it)."""
    if emulator_endpoints is None:
        return SystemClock()
    return RemoteClock(
        json.loads(emulator_endpoints.read_text())["clock"],
        ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE"),
    )


class NoLocalRows:
    """A command's outcome rows go to Azure Monitor when it is configured, never as JSON lines
    on the command's own output."""

    def report(self, outcomes: Any) -> None:
        return None
