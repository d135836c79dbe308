"""`lifeboat host` as a child process: start it, read its endpoints, collect its outcomes."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cli.localhost import ROOT
from cli.processes import stop_process_group

# A host busy with a large night answers its admin API late, not never.
STATUS_TIMEOUT = 60.0


@dataclass
class HostProcess:
    proc: subprocess.Popen[bytes]
    endpoints: dict[str, str] = field(default_factory=dict)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def eventgrid_url(self) -> str:
        return self.endpoints["eventgrid"]

    @property
    def base_url(self) -> str:
        return self.endpoints["ready"]

    @property
    def key(self) -> str:
        return self.eventgrid_url.rsplit("code=", 1)[1]

    def status(self) -> dict[str, Any]:
        """The host's status; a host too busy to answer within the read timeout is not idle."""
        try:
            with urllib.request.urlopen(
                f"{self.base_url}/admin/host/status", timeout=STATUS_TIMEOUT
            ) as r:
                return json.load(r)  # type: ignore[no-any-return]
        except TimeoutError:
            if self.proc.poll() is not None:
                raise
            return {"state": "Busy", "idle": False, "functions": {}}

    def activity(self) -> tuple[int, int]:
        """Outcomes so far and invocations finished: it moves while the host works."""
        functions = self.status().get("functions", {})
        finished = sum(f.get("succeeded", 0) + f.get("failed", 0) for f in functions.values())
        return len(self.outcomes), finished

    def wait_idle(
        self, *, timeout: float | None = 60.0, settle: float = 0.5, stall: float | None = None
    ) -> None:
        """Until no function runs and every trigger queue is empty, for `settle` seconds.

        With `timeout` None there is no deadline: a long night is waited out for as long as it
        moves; with `stall` it gives up after that many seconds in which no outcome arrived and
        no invocation finished."""
        started = time.monotonic()
        quiet_since: float | None = None
        moved_at, last = started, self.activity() if stall is not None else (0, 0)
        while timeout is None or time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the host exited with code {self.proc.returncode}")
            if self.status()["idle"]:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return
            else:
                quiet_since = None
            if stall is not None:
                now = self.activity()
                if now != last:
                    moved_at, last = time.monotonic(), now
                elif time.monotonic() - moved_at > stall:
                    raise TimeoutError(
                        f"the host did nothing for {stall:.0f} s and is not idle: {self.status()}"
                    )
            time.sleep(0.1 if stall is None else 0.5)
        raise TimeoutError(f"the host was not idle within {timeout:.0f} s: {self.status()}")

    def invoke(self, function: str) -> None:
        """Run a timer function now (the Functions host's admin API)."""
        request = urllib.request.Request(
            f"{self.base_url}/admin/functions/{function}",
            data=b"{}",
            method="POST",
            headers={"x-functions-key": self.key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=STATUS_TIMEOUT) as response:
            if response.status != 202:
                raise RuntimeError(f"could not invoke {function}: HTTP {response.status}")

    def wait_for(
        self,
        predicate: Callable[[list[dict[str, Any]]], bool],
        *,
        timeout: float = 30.0,
        while_moving: bool = False,
    ) -> list[dict[str, Any]]:
        """Wait until the outcomes so far satisfy `predicate`; return them.

        With `while_moving`, `timeout` counts from the latest new outcome, not from the start:
        a long night that keeps reporting is never cut short."""
        deadline = time.monotonic() + timeout
        seen = len(self.outcomes)
        with self._changed:
            while not predicate(self.outcomes):
                if while_moving and len(self.outcomes) != seen:
                    seen, deadline = len(self.outcomes), time.monotonic() + timeout
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    tail = "\n".join(self.log_lines[-30:])
                    raise TimeoutError(
                        f"the host's outcomes did not get there in {timeout:.0f} s "
                        f"(exit code {self.proc.poll()}); last log lines:\n{tail}"
                    )
                self._changed.wait(min(left, 0.2))
            return list(self.outcomes)

    def _collect(self, stream: IO[bytes], echo: IO[str] | None) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            record = _outcome(line)
            with self._changed:
                if record is not None:
                    self.outcomes.append(record)
                else:
                    self.log_lines.append(line)
                self._changed.notify_all()
            if echo is not None and record is None:
                echo.write(line + "\n")


def _outcome(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    with contextlib.suppress(ValueError):
        record = json.loads(line)
        if isinstance(record, dict) and "Job" in record and "Operation" in record:
            return record
    return None


@contextlib.contextmanager
def running_host(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    log: IO[str] | None = None,
) -> Iterator[HostProcess]:
    """Run `lifeboat host ARGS`; stop it (and its children) on exit, even on error."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "host", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    host = HostProcess(proc)
    readers: list[threading.Thread] = []
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        stderr_reader = threading.Thread(target=host._collect, args=(proc.stderr, log), daemon=True)
        stderr_reader.start()
        readers.append(stderr_reader)
        deadline = time.monotonic() + timeout
        for raw in proc.stdout:
            word, _, rest = raw.decode().strip().partition(" ")
            if word in ("eventgrid", "admin", "ready"):
                host.endpoints[word] = rest
            if word == "ready" or time.monotonic() > deadline:
                break
        if "ready" not in host.endpoints:
            proc.wait(timeout=5)
            raise RuntimeError(
                "lifeboat host did not get ready:\n" + "\n".join(host.log_lines[-30:])
            )
        stdout_reader = threading.Thread(target=host._collect, args=(proc.stdout, log), daemon=True)
        stdout_reader.start()
        readers.append(stdout_reader)
        yield host
    finally:
        stop_process_group(proc)
        for reader in readers:
            reader.join(timeout=5)


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    return path
