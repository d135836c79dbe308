"""A clock read from the Azure stand-in (`GET /admin/clock`), for the local host's timers."""

from __future__ import annotations

import json
import ssl
import urllib.request
from datetime import UTC, datetime


class RemoteClock:
    def __init__(self, url: str, *, ca_bundle: str | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self._context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None

    def now(self) -> datetime:
        with urllib.request.urlopen(self.url, timeout=self.timeout, context=self._context) as r:
            body = json.load(r)
        value = datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
