"""Azurite, the Azure Storage emulator (npm `azurite`, pinned in package.json), for queues."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cli.exits import Unreachable
from cli.processes import free_port, stop_process_group, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
# Azurite's well-known development account: public, and only ever served on loopback.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass(frozen=True)
class Azurite:
    queue_port: int

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={self.queue_endpoint};"
        )

    def endpoints(self) -> dict[str, str]:
        return {"queue": self.queue_endpoint, "connectionString": self.connection_string}


def azurite_command() -> Path:
    local = ROOT / "node_modules" / ".bin" / "azurite-queue"
    if local.exists():
        return local
    found = shutil.which("azurite-queue")
    if found:
        return Path(found)
    raise Unreachable(
        "Azurite is not installed (no azurite-queue): run `make setup` "
        "(npm ci installs the pinned Azurite)"
    )


@contextlib.contextmanager
def running_azurite(*, log_path: Path | None = None, timeout: float = 30.0) -> Iterator[Azurite]:
    """Start Azurite's queue service on a free loopback port; stop it and its children after."""
    workdir = Path(tempfile.mkdtemp(prefix="lifeboat-azurite-"))
    log = open(log_path or workdir / "azurite.log", "ab")  # noqa: SIM115 - closed below
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(3):
            port = free_port()
            proc = subprocess.Popen(
                [
                    str(azurite_command()),
                    "--queueHost",
                    "127.0.0.1",
                    "--queuePort",
                    str(port),
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--inMemoryPersistence",
                    "--silent",
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                wait_for_port(port, timeout=timeout, proc=proc)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        else:  # pragma: no cover - the loop either breaks or raises
            raise RuntimeError("Azurite did not start")
        yield Azurite(queue_port=port)
    finally:
        if proc is not None:
            stop_process_group(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def write_endpoints(azurite: Azurite, path: Path) -> None:
    path.write_text(json.dumps(azurite.endpoints(), indent=2) + "\n", encoding="utf-8")
