"""One stand-in per test session (demo estate, fast LROs and Retry-After), plus SDK clients."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from emulator.process import DEMO_ESTATE, Endpoints, running_emulator

CLOCK_START = "2026-11-27T01:00:00Z"
FAST = (
    "--retry-after-scale",
    "0.1",
    "--operation-seconds",
    "0.6",
    "--page-size",
    "3",
    "--clock-start",
    CLOCK_START,
    "--seed",
    "7",
)
SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
SNAP_RG = "rg-lifeboat-snapshots"


@pytest.fixture(scope="session")
def stand_in() -> Iterator[Endpoints]:
    with running_emulator(DEMO_ESTATE, *FAST) as endpoints:
        yield endpoints


def pointed_at(endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    """The environment Flex gives the app, pointed at a stand-in."""
    for name, value in endpoints.environment().items():
        monkeypatch.setenv(name, value)
    return endpoints


@pytest.fixture
def sdk_env(stand_in: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    """The environment Flex gives the app, pointed at the stand-in."""
    return pointed_at(stand_in, monkeypatch)


@pytest.fixture
def credential(sdk_env: Endpoints) -> ManagedIdentityCredential:
    return ManagedIdentityCredential(client_id=sdk_env.client_id)


def make_compute(endpoints: Endpoints, credential: Any, **kwargs: Any) -> ComputeManagementClient:
    return ComputeManagementClient(
        credential,
        SUB,
        base_url=endpoints.arm,
        credential_scopes=[endpoints.arm_audience + ".default"],
        connection_verify=endpoints.ca_bundle,
        **{"polling_interval": 0.2, **kwargs},
    )


@pytest.fixture
def compute(sdk_env: Endpoints, credential: ManagedIdentityCredential) -> ComputeManagementClient:
    return make_compute(sdk_env, credential)


@pytest.fixture
def admin(stand_in: Endpoints) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stand_in.admin,
        verify=ssl.create_default_context(cafile=stand_in.ca_bundle),
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def arm_token(credential: ManagedIdentityCredential, sdk_env: Endpoints) -> AccessToken:
    return credential.get_token(sdk_env.arm_audience + ".default")


@pytest.fixture
def arm(stand_in: Endpoints, arm_token: AccessToken) -> Iterator[httpx.Client]:
    """A raw ARM client with a real token from the managed-identity endpoint."""
    with httpx.Client(
        base_url=stand_in.arm,
        verify=ssl.create_default_context(cafile=stand_in.ca_bundle),
        headers={"Authorization": f"Bearer {arm_token.token}"},
        timeout=30,
    ) as client:
        yield client


def snapshot_body(disk_id: str, *, incremental: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
            "incremental": incremental,
            "networkAccessPolicy": "DenyAll",
            "publicNetworkAccess": "Disabled",
        },
        **extra,
    }


def disk_id(group: str, name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/disks/{name}"


def refusal(call: Callable[[], Any]) -> HttpResponseError:
    with pytest.raises(HttpResponseError) as info:
        call()
    return info.value


def start_snapshot(compute: ComputeManagementClient, name: str, body: Any) -> None:
    """A snapshot create in the snapshots group, not waited for."""
    compute.snapshots.begin_create_or_update(SNAP_RG, name, body, polling=False)


def refused_snapshot(
    compute: ComputeManagementClient, name: str, body: Any
) -> tuple[Any, Any, str]:
    """A snapshot create the stand-in refuses: its status, code and message."""
    e = refusal(lambda: compute.snapshots.begin_create_or_update(SNAP_RG, name, body))
    return e.status_code, e.error.code if e.error else None, str(e.error.message if e.error else "")
