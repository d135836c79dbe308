"""Authority end to end: messages of every type written straight to Azurite, as anyone with queue
data rights could, reach the real app in the local host against the stand-in.

Unsigned, or signed with Lifeboat's key but breaking a rule: refused on the first delivery, a
`refused` row each, the refusals alert fires for each queue and type, and the stand-in sees no
request at all. Signed and obeying every rule: Lifeboat acts as its planner would.
"""

from __future__ import annotations

import contextlib
import ssl
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from cli.azurite import Azurite, write_endpoints
from cli.hostprocess import running_host, write_json
from emulator.process import DEMO_ESTATE, running_emulator
from shared import messages
from shared.messages import PAYLOADS, OutcomesRetryRequest, Payload, RotationVmRequest
from shared.model import resource_key
from shared.names import QUEUE_OF
from shared.signing import SigningKeys
from shared.snapshots import snapshot_name
from tests.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION, TEST_SIGNING_KEYS, base_settings
from tests.fakes import patched_environ
from tests.test_alerts import run as run_alert
from tests.test_dispatch import SAMPLES

pytestmark = pytest.mark.e2e

FAST = {
    "extensions": {
        "queues": {"maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00"}
    }
}
KEYS = SigningKeys.parse(TEST_SIGNING_KEYS)
WRITES = {"PUT", "PATCH", "DELETE", "POST"}


def rule_breaking(payload: Payload) -> Payload:
    """The sample, breaking a rule a signature cannot make right."""
    if isinstance(payload, OutcomesRetryRequest):
        return payload.model_copy(update={"records": []})  # at least one record
    return payload.model_copy(update={"subscription_id": OTHER_SUBSCRIPTION})


def text(payload: Payload, *, signed: bool) -> str:
    envelope = messages.make_envelope(
        payload, run_id="stranger", idempotency_key="k", created=datetime.now(UTC)
    )
    return messages.encode(envelope, KEYS if signed else None)


def send(azurite: Azurite, payload: Payload, body: str) -> None:
    queue = QUEUE_OF[payload.TYPE]
    client = QueueClient.from_connection_string(
        azurite.connection_string, str(queue), message_encode_policy=TextBase64EncodePolicy()
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    client.send_message(body)


def arm_writes(admin: httpx.Client, since: int) -> list[dict[str, Any]]:
    entries = admin.get("/requests", params={"since": since, "limit": 5000}).json()["entries"]
    return [e for e in entries if e["method"] in WRITES and "/subscriptions/" in e["path"]]


@pytest.mark.timeout(180)
def test_every_type_unsigned_or_rule_breaking_is_refused_and_a_good_one_acts(
    azurite: Azurite, tmp_path: Path
) -> None:
    write_endpoints(azurite, tmp_path / "azurite.json")
    settings = write_json(tmp_path / "local.settings.json", {"Values": base_settings()})
    with (
        running_emulator(DEMO_ESTATE) as stand_in,
        patched_environ(stand_in.environment()),
        httpx.Client(
            base_url=stand_in.admin,
            verify=ssl.create_default_context(cafile=stand_in.ca_bundle),
            timeout=10,
        ) as admin,
        running_host(
            [
                "--settings",
                str(settings),
                "--storage-endpoints",
                str(tmp_path / "azurite.json"),
                "--emulator-endpoints",
                stand_in.path,
                "--host-overrides",
                str(write_json(tmp_path / "o.json", FAST)),
                "--no-timers",
            ]
        ) as host,
    ):
        since = admin.get("/requests", params={"limit": 0}).json()["total"]
        bad = [
            (p.TYPE, body)
            for schema in PAYLOADS
            for p, body in (
                (SAMPLES[schema], text(SAMPLES[schema], signed=False)),
                (SAMPLES[schema], text(rule_breaking(SAMPLES[schema]), signed=True)),
            )
        ]
        for message_type, body in bad:
            send(azurite, SAMPLES[next(s for s in PAYLOADS if message_type == s.TYPE)], body)

        def refused(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in rows if r["Status"] == "refused"]

        rows = host.wait_for(lambda rows: len(refused(rows)) >= len(bad), timeout=90)
        host.wait_idle(timeout=30)
        assert arm_writes(admin, since) == [], "a refused message reached Azure"
        by_type: dict[str, list[str]] = {}
        for row in refused(rows):
            by_type.setdefault(row["Details"]["type"], []).append(row["Reason"])
        assert {t: len(reasons) for t, reasons in by_type.items()} == {
            p.TYPE.value: 2 for p in PAYLOADS
        }
        assert all(any(r.startswith("unsigned") for r in reasons) for reasons in by_type.values())
        fired = run_alert("refusals", rows, datetime.now(UTC))
        assert {(f["Queue"], f["Type"]) for f in fired} == {
            (str(QUEUE_OF[p.TYPE]), p.TYPE.value) for p in PAYLOADS
        }

        # A signed request that obeys every rule: tonight's snapshot of vm-web-01's OS disk,
        # named and tagged as the planner names and tags it.
        compute = ComputeManagementClient(
            ManagedIdentityCredential(client_id=stand_in.client_id),
            SUBSCRIPTION,
            base_url=stand_in.arm,
            credential_scopes=[stand_in.arm_audience + ".default"],
        )
        web = compute.virtual_machines.get("rg-app", "vm-web-01")
        os_disk = compute.disks.get("rg-app", web.storage_profile.os_disk.name)
        slot = datetime.now(UTC).strftime("%Y%m%d%H00")
        name = snapshot_name(os_disk.id, os_disk.unique_id, slot)
        good = RotationVmRequest.model_validate(
            {
                "subscriptionId": SUBSCRIPTION,
                "vmId": web.id,
                "vmName": web.name,
                "resourceGroup": "rg-app",
                "policy": "daily",
                "slot": slot,
                "setId": "set-e2e",
                "disks": [
                    {
                        "diskId": os_disk.id,
                        "uniqueId": os_disk.unique_id,
                        "location": os_disk.location,
                        "snapshotName": name,
                    }
                ],
            }
        )
        send(azurite, good, text(good, signed=True))
        host.wait_for(
            lambda rows: any(
                r["Operation"] == "snapshot-create" and r["Status"] != "refused" for r in rows
            ),
            timeout=60,
        )
        taken = compute.snapshots.get("rg-lifeboat-snapshots", name)
        assert resource_key(taken.creation_data.source_resource_id) == resource_key(os_disk.id)
        assert taken.tags["lifeboat:slot"] == slot
        assert taken.tags["lifeboat:set"] == "set-e2e"
        [put] = arm_writes(admin, since)  # one write: the snapshot, nothing else
        assert (put["method"], put["path"].rsplit("/", 1)[-1].split("?")[0]) == ("PUT", name)
