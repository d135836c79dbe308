"""Azurite, the Azure Storage emulator (npm `azurite`, pinned in package.json): queues for the
work, blobs for the full text of poisoned messages (its table service listens too, unused)."""

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
    blob_port: int

    @property
    def queue_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.queue_port}/{ACCOUNT}"

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={self.queue_endpoint};BlobEndpoint={self.blob_endpoint};"
        )

    def endpoints(self) -> dict[str, str]:
        return {
            "queue": self.queue_endpoint,
            "blob": self.blob_endpoint,
            "connectionString": self.connection_string,
        }


def azurite_command() -> Path:
    local = ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return local
    found = shutil.which("azurite")
    if found:
        return Path(found)
    raise Unreachable(
        "Azurite is not installed (no azurite): run `make setup` "
        "(npm ci installs the pinned Azurite)"
    )


@contextlib.contextmanager
def running_azurite(*, log_path: Path | None = None, timeout: float = 30.0) -> Iterator[Azurite]:
    """Start Azurite's queue and blob services on free loopback ports (its table service on
    another); stop it and its children after."""
    workdir = Path(tempfile.mkdtemp(prefix="lifeboat-azurite-"))
    log = open(log_path or workdir / "azurite.log", "ab")  # noqa: SIM115 - closed below
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(3):
            port, blob_port, table_port = free_port(), free_port(), free_port()
            proc = subprocess.Popen(
                [
                    str(azurite_command()),
                    "--queueHost",
                    "127.0.0.1",
                    "--queuePort",
                    str(port),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(blob_port),
                    "--tableHost",
                    "127.0.0.1",
                    "--tablePort",
                    str(table_port),
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
                wait_for_port(blob_port, timeout=timeout, proc=proc)
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        else:  # pragma: no cover - the loop either breaks or raises
            raise RuntimeError("Azurite did not start")
        yield Azurite(queue_port=port, blob_port=blob_port)
    finally:
        if proc is not None:
            stop_process_group(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def write_endpoints(azurite: Azurite, path: Path) -> None:
    path.write_text(json.dumps(azurite.endpoints(), indent=2) + "\n", encoding="utf-8")
