from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.storage.queue import QueueServiceClient

from cli.azurite import Azurite, running_azurite
from shared.services import reset_services

SUBSCRIPTION = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"  # the demo estate's
OTHER_SUBSCRIPTION = "9d9d9d9d-0000-4000-8000-000000000009"


def base_settings(**extra: str) -> dict[str, str]:
    values = {
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "TARGET_SUBSCRIPTIONS": SUBSCRIPTION,
        "POISON_SCHEDULE": "0 */15 * * * *",
        "ROTATION_SCHEDULE": "0 0 2 * * *",
        "VERIFICATION_SCHEDULE": "0 0 6 * * *",
        "DRILL_SCHEDULE": "0 0 4 * * *",
        "SWEEPER_SCHEDULE": "0 30 * * * *",
    }
    values.update(extra)
    return values


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
