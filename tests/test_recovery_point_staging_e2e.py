"""A recovery-point drill's staging blobs end to end: the stand-in writes the restore job's
config blob into Azurite (estate `recoveryServices.stagingBlobs`), and Lifeboat, with Azurite
standing in for the staging account (RESTORE_STAGING_CONNECTION), removes it.

Success: the blob and its container are gone once the drill has reported.
Fault: the staging account refuses (a wrong key: 403, as without the role); the drill still
succeeds and names the blob in `stagingLeft` with the reason; once access is given, the
sweeper's next pass removes it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from azure.storage.blob import BlobServiceClient

from cli.azurite import ACCOUNT_KEY, Azurite
from emulator.process import Endpoints, running_emulator
from shared import dispatch
from shared.model import Outcome
from shared.names import Timer
from shared.ports import Runtime
from shared.services import build_runtime
from tests.drill_fakes import SimHost, SimQueues
from tests.e2e_env import stand_in_settings
from tests.fakes import MemoryReporter, patched_environ
from tests.test_recovery_point_e2e import (
    ESTATE,
    POLICIES,
    STAGING,
    SUB,
    WRITER_CLIENT_ID,
    StandInClock,
)

pytestmark = pytest.mark.e2e

WRONG_KEY = "A" * len(ACCOUNT_KEY)


@pytest.fixture(scope="module")
def ep(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[Endpoints]:
    estate: dict[str, Any] = {**ESTATE}
    subscription = {**ESTATE["subscriptions"][0]}
    subscription["vms"] = subscription["vms"][:1]  # vm-good-01
    estate["subscriptions"] = [subscription]
    estate["vaults"] = [{**ESTATE["vaults"][0], "items": ESTATE["vaults"][0]["items"][:1]}]
    estate["recoveryServices"] = {"stagingBlobs": azurite.connection_string}
    path = tmp_path_factory.mktemp("rp-staging") / "estate.yaml"
    path.write_text(yaml.safe_dump(estate))
    # The stand-in's clock starts now: Azurite stamps containers with the real time, which the
    # sweeper compares with the stand-in's.
    start = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    args = ("--clock-start", start, "--clock-rate", "0")
    args += ("--retry-after-scale", "0", "--operation-seconds", "5")
    with running_emulator(path, *args, timeout=30) as endpoints:
        yield endpoints


def _runtime(ep: Endpoints, clock: StandInClock, connection: str) -> tuple[Runtime, SimHost]:
    """Lifeboat against the stand-in (inside its environment: the managed identity's endpoint)
    and Azurite as the staging account, reached with `connection`."""
    settings = stand_in_settings(
        ep,
        SUB,
        RECOVERY_POINT_DRILLS="true",
        RESTORE_STAGING_ACCOUNTS=f"westeurope={STAGING}",
        RESTORE_STAGING_CONNECTION=connection,
        BACKUP_WRITER_CLIENT_ID=WRITER_CLIENT_ID,
    )
    queues = SimQueues(clock)  # type: ignore[arg-type]
    rt = build_runtime(
        settings, clock=clock, reporter=MemoryReporter(), queues=queues, policies=POLICIES
    )
    return rt, SimHost(rt, queues)


def _drill(rt: Runtime, host: SimHost) -> Outcome:
    dispatch.fire(rt, Timer.DRILL)
    host.drain()
    reporter: MemoryReporter = rt.reporter  # type: ignore[assignment]
    (row,) = [o for o in reporter.outcomes if o.operation == "drill"]
    return row


def _exists(azurite: Azurite, uri: str) -> tuple[bool, bool]:
    """Whether the blob `uri` names, and its container, exist in Azurite."""
    container, blob = uri.split("/")[-2:]
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.get_container_client(container)
    return client.get_blob_client(blob).exists(), client.exists()


def test_the_drill_removes_the_config_blob_and_after_a_refusal_the_sweeper_does(
    ep: Endpoints, azurite: Azurite
) -> None:
    tls = ssl.create_default_context(cafile=ep.ca_bundle)
    admin = httpx.Client(base_url=ep.admin, verify=tls, timeout=30)
    clock = StandInClock(admin)
    with patched_environ(ep.environment()):
        _nights(ep, azurite, clock)


def _nights(ep: Endpoints, azurite: Azurite, clock: StandInClock) -> None:
    good = azurite.connection_string
    # Night one: the staging account lets Lifeboat in.
    rt, host = _runtime(ep, clock, good)
    row = _drill(rt, host)
    assert row.status == "succeeded", row.reason
    uri, _container = row.details["stagingRemoved"]
    assert uri.startswith("https://stlbstageweu.blob.core.windows.net/vhd")
    assert row.details["stagingLeft"] == []
    assert _exists(azurite, uri) == (False, False)
    # Night two: it refuses; the drill stands, the blob stays, named with the reason.
    clock.advance(days=1)
    rt, host = _runtime(ep, clock, good.replace(ACCOUNT_KEY, WRONG_KEY))
    row = _drill(rt, host)
    assert row.status == "succeeded", row.reason
    (left,) = row.details["stagingLeft"]
    assert left != uri
    assert "403" in row.details["stagingLeftReason"]
    assert _exists(azurite, left) == (True, True)
    # Access given; past the drill window the sweeper's next pass removes it.
    clock.advance(hours=5)
    rt, host = _runtime(ep, clock, good)
    dispatch.fire(rt, Timer.SWEEPER)
    host.drain()
    assert _exists(azurite, left) == (False, False)
    reporter: MemoryReporter = rt.reporter  # type: ignore[assignment]
    swept = [o for o in reporter.outcomes if o.operation == "sweep" and "container" in o.details]
    assert [(o.status, o.details["container"]) for o in swept] == [
        ("succeeded", left.split("/")[-2])
    ]
