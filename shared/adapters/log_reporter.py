"""An in-process reporter: one JSON line per outcome on a stream (stderr by default).

The local host prints outcomes this way; in Azure they land in the function's logs until the
Logs Ingestion reporter (Azure Monitor) takes over.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from typing import TextIO

from shared.model import Outcome


class JsonLinesReporter:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def report(self, outcomes: Iterable[Outcome]) -> None:
        stream = self._stream or sys.stderr
        lines = [json.dumps(o.to_record(), separators=(",", ":")) for o in outcomes]
        if not lines:
            return
        with self._lock:
            stream.write("".join(f"{line}\n" for line in lines))
            stream.flush()
