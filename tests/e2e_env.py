"""What the end-to-end tests share: the app settings against the stand-in, a fast host.json."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

import httpx

import function_app
from cli.azurite import Azurite
from cli.clock import RemoteClock
from cli.localhost import LocalHost
from shared.ports import Reporter
from shared.services import override_services, reset_services
from shared.settings import Settings
from tests.conftest import TEST_SIGNING_KEYS, base_settings

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
        "POSTURE_SCHEDULE": NEVER,
        "ARM_ENDPOINT": ep.arm,
        "ARM_AUDIENCE": ep.arm_audience + ".default",
        "AZURE_CLIENT_ID": ep.client_id,
        **settings,
    }


def stand_in_settings(ep: Any, subscription: str, **settings: str) -> Settings:
    """Lifeboat's settings for a test that drives the app in its own process (no local host):
    the unit tests' base, serving `subscription` of the stand-in `ep`, drills polled every 30 s
    (stand-in time); `settings` override anything here."""
    return Settings.from_env(
        base_settings(
            TARGET_SUBSCRIPTIONS=subscription,
            ARM_ENDPOINT=ep.arm,
            ARM_AUDIENCE=ep.arm_audience + ".default",
            AZURE_CLIENT_ID=ep.client_id,
            DRILL_POLL_SECONDS="30",
            **settings,
        )
    )


def replicated_item(vm: str, **extra: Any) -> dict[str, Any]:
    """A stand-in estate's Site Recovery item for `vm`: replicated to northeurope, tested in the
    Lifeboat drill network there; `extra` adds or overrides keys."""
    return {
        "vm": vm,
        "targetResourceGroup": "rg-app-asr",
        "recoveryNetwork": "rg-net-neu/vnet-dr-neu",
        "testNetwork": "rg-lifeboat-drill-northeurope/vnet-drill-isolated",
        **extra,
    }


def stand_in_options(seed: int, *extra: str) -> tuple[str, ...]:
    """The stand-in's options for a night: its clock from 01:00 on 27 November, operations of
    0.1 s, hydration 0.5 s, Retry-After a tenth as long, seeded with `seed`; then `extra`."""
    return (
        "--clock-start",
        "2026-11-27T01:00:00Z",
        "--operation-seconds",
        "0.1",
        "--hydration-seconds",
        "0.5",
        "--retry-after-scale",
        "0.1",
        "--seed",
        str(seed),
        *extra,
    )


def wire_services(
    ep: Any, environ: dict[str, str], reporter: Reporter, host_json: Path
) -> tuple[Path, RemoteClock, httpx.Client]:
    """Write the fast host.json at `host_json`, point Lifeboat's services at `environ`, `reporter`
    and the stand-in's clock; that host.json, the clock and a client of the stand-in's admin API."""
    host_json.write_text(json.dumps(FAST_HOST))
    clock = RemoteClock(ep.clock, ca_bundle=ep.ca_bundle)
    reset_services()
    override_services(settings=Settings.from_env(environ), reporter=reporter, clock=clock)
    verify = ssl.create_default_context(cafile=ep.ca_bundle)
    return host_json, clock, httpx.Client(base_url=ep.admin, verify=verify, timeout=30)


def app_host(
    overrides: Path, environ: dict[str, str], clock: RemoteClock, **options: Any
) -> LocalHost:
    """The local host running Lifeboat's function app with `environ`, `overrides` and `clock`."""
    return LocalHost(function_app.app, overrides=overrides, environ=environ, clock=clock, **options)


def fail_ingestion(admin: httpx.Client, **fault: Any) -> None:
    """From now on the stand-in answers every log ingestion POST 503 ServiceUnavailable (with
    `fault`'s further fields, such as retryAfter), until its faults are cleared."""
    admin.post(
        "/faults",
        json={
            "action": "status",
            "method": "POST",
            "path": "/dataCollectionRules/",
            "status": 503,
            "code": "ServiceUnavailable",
            **fault,
        },
    ).raise_for_status()
