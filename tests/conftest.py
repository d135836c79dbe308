from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from azure.storage.queue import QueueServiceClient

from cli.azurite import Azurite, running_azurite
from emulator.process import SHAPES_VARIABLE
from shared.services import reset_services
from tests.fakes import ROOT, run_python

SUBSCRIPTION = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"  # the demo estate's
OTHER_SUBSCRIPTION = "9d9d9d9d-0000-4000-8000-000000000009"
TEST_SIGNING_KEYS = "test=xB1zVZRLIKLPq3lsmof2kRzc3_YnUKXpkpEYUjEKwBM"


SHAPES_CHOSEN = os.environ.get(SHAPES_VARIABLE)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """End-to-end tests meet the stand-in's bodies as Azure writes them: ids in any casing,
    `sourceResourceId` without its leading slash, seven-digit fractions with `+00:00`
    (`--untidy-shapes`, for every stand-in the test starts, its subprocesses' included). The
    stand-in's own tests and the rest see the REST specification's tidy bodies.
    `LIFEBOAT_STAND_IN_SHAPES=tidy` (or `untidy`) set for the run chooses for every test."""
    if SHAPES_CHOSEN is not None:
        return
    if item.get_closest_marker("e2e") is not None:
        os.environ[SHAPES_VARIABLE] = "untidy"
    else:
        os.environ.pop(SHAPES_VARIABLE, None)


def base_settings(**extra: str) -> dict[str, str]:
    values = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "TARGET_SUBSCRIPTIONS": SUBSCRIPTION,
        "MESSAGE_SIGNING_KEYS": TEST_SIGNING_KEYS,
        "POISON_SCHEDULE": "0 */15 * * * *",
        "ROTATION_SCHEDULE": "0 0 2 * * *",
        "VERIFICATION_SCHEDULE": "0 0 6 * * *",
        "DRILL_SCHEDULE": "0 0 4 * * *",
        "SWEEPER_SCHEDULE": "0 30 * * * *",
        "POSTURE_SCHEDULE": "0 30 6 * * *",
    }
    values.update(extra)
    return values


def run_in_bare_python(code: str) -> str:
    """Run `code` in a fresh interpreter at the repository root with no app settings at all (only
    PATH in its environment); it must succeed. Its standard output."""
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with running_azurite() as instance:
        yield instance


@pytest.fixture
def queue_service(azurite: Azurite) -> QueueServiceClient:
    """Azurite's queue service, emptied of every queue before the test."""
    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    for queue in list(service.list_queues()):
        service.delete_queue(queue.name)
    return service


@pytest.fixture(autouse=True)
def _fresh_services() -> Iterator[None]:
    reset_services()
    yield
    reset_services()


@dataclass(frozen=True)
class DemoRun:
    """`lifeboat demo --nights 2 --json --requests FILE`, run once per test session."""

    returncode: int
    stdout: str
    stderr: str
    requests: dict[str, dict[str, int]]

    @property
    def document(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.stdout.strip().splitlines()[-1])
        return result


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo as a user runs it (a subprocess); the e2e and least-privilege tests share it."""
    path = tmp_path_factory.mktemp("demo") / "requests.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "demo",
            "--nights",
            "2",
            "--json",
            "--requests",
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    requests = json.loads(path.read_text()) if path.exists() else {}
    return DemoRun(result.returncode, result.stdout, result.stderr, requests)
