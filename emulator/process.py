"""Start and stop the stand-in as a child process (for tests, the local host and tooling)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_ESTATE = Path(__file__).resolve().parent / "estates" / "demo.yaml"


@dataclass(frozen=True)
class Endpoints:
    arm: str
    arm_audience: str
    identity_endpoint: str
    identity_header: str
    admin: str
    clock: str
    ca_bundle: str
    client_id: str
    object_id: str
    tenant_id: str
    subscriptions: tuple[str, ...]
    path: str
    pid: int
    raw: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> Endpoints:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            arm=raw["arm"],
            arm_audience=raw["armAudience"],
            identity_endpoint=raw["identityEndpoint"],
            identity_header=raw["identityHeader"],
            admin=raw["admin"],
            clock=raw["clock"],
            ca_bundle=raw["caBundle"],
            client_id=raw["clientId"],
            object_id=raw["objectId"],
            tenant_id=raw["tenantId"],
            subscriptions=tuple(raw["subscriptions"]),
            path=str(path),
            pid=int(raw["pid"]),
            raw=raw,
        )

    def environment(self) -> dict[str, str]:
        """The variables a process needs to reach the stand-in like Azure (Flex identity + CA)."""
        return {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
        }


class EmulatorStartError(RuntimeError):
    pass


SHAPES_VARIABLE = "LIFEBOAT_STAND_IN_SHAPES"
UNTIDY = "--untidy-shapes"


def _terminate(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)


@contextlib.contextmanager
def running_emulator(
    estate: str | Path = DEMO_ESTATE,
    *args: str,
    timeout: float = 15.0,
    state_dir: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Endpoints]:
    """Run `python -m emulator --estate ESTATE *args`; yield its endpoints once it is ready.

    The child runs in its own process group; on exit the whole group is terminated (then killed),
    even when the body raised, and its pipes are closed. With LIFEBOAT_STAND_IN_SHAPES=untidy in
    the environment it writes list and GET bodies as Azure does (`--untidy-shapes`).
    """
    if os.environ.get(SHAPES_VARIABLE, "").lower() == "untidy" and UNTIDY not in args:
        args = (*args, UNTIDY)  # every stand-in of a run writes its bodies as Azure does
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="lifeboat-stand-in-")
            )
        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
        log_file = stack.enter_context(open(state / "emulator.log", "w", encoding="utf-8"))
        command = [
            sys.executable,
            "-m",
            "emulator",
            "--estate",
            str(estate),
            "--state-dir",
            str(state),
            *args,
        ]
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        stack.callback(_terminate, proc)
        assert proc.stdout is not None
        stack.callback(proc.stdout.close)
        found: list[str] = []

        def read_ready() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("ready "):
                    found.append(line.strip())
                    break

        reader = threading.Thread(target=read_ready, daemon=True)
        reader.start()
        reader.join(timeout)
        if not found:
            _terminate(proc)
            log = (state / "emulator.log").read_text(encoding="utf-8", errors="replace")[-4000:]
            raise EmulatorStartError(f"the stand-in did not get ready within {timeout}s:\n{log}")
        endpoints_path = found[0].split("endpoints=", 1)[1]
        yield Endpoints.load(endpoints_path)
