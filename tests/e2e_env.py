"""What the end-to-end tests share: the app settings against the stand-in, a fast host.json."""

from __future__ import annotations

from typing import Any

from cli.azurite import Azurite
from tests.conftest import TEST_SIGNING_KEYS

SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"  # the demo estate's subscription
NEVER = "0 0 0 1 6 *"  # a schedule that does not come round during a test
FAST_HOST = {
    "extensions": {
        "queues": {"maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00"}
    }
}


def app_settings(azurite: Azurite, ep: Any, **settings: str) -> dict[str, str]:
    """The app's settings for the local host against Azurite and the stand-in `ep`.

    Timers other than those a test names never fire; `settings` override anything here.
    """
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "TARGET_SUBSCRIPTIONS": SUB,
        "MESSAGE_SIGNING_KEYS": TEST_SIGNING_KEYS,
        "POISON_SCHEDULE": NEVER,
        "ROTATION_SCHEDULE": "0 0 2 * * *",
        "VERIFICATION_SCHEDULE": NEVER,
        "DRILL_SCHEDULE": NEVER,
        "SWEEPER_SCHEDULE": NEVER,
        "ARM_ENDPOINT": ep.arm,
        "ARM_AUDIENCE": ep.arm_audience + ".default",
        "AZURE_CLIENT_ID": ep.client_id,
        **settings,
    }
