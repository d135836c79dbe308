"""A VM is created in the stand-in; Event Grid tells the local host; onboarding takes over.

The stand-in sends two writes per creation (one correlation id) and, here, every event twice.
Onboarding must take one first snapshot set and write the default policy tag through the Tags
API, whose own event is a tags write that changes nothing: no loop, nothing twice.
"""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

import function_app
from cli.azurite import Azurite
from cli.clock import RemoteClock
from cli.localhost import LocalHost
from emulator.process import DEMO_ESTATE, running_emulator
from shared.services import override_services, reset_services
from shared.settings import Settings
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
FAST_HOST = {
    "extensions": {
        "queues": {"maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00"}
    }
}


def _new_vm(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-app",
        "size": "Standard_D2s_v5",
        "osType": "Linux",
        "osDisk": {"sku": "Premium_LRS", "sizeGB": 32},
        "dataDisks": [{"lun": 0, "name": f"{name}-data-01", "sku": "Premium_LRS", "sizeGB": 64}],
    }


def test_a_new_vm_is_onboarded_once_through_event_grid(
    azurite: Azurite, queue_service: Any, tmp_path: Path
) -> None:
    reporter = MemoryReporter()
    with (
        running_emulator(DEMO_ESTATE, "--operation-seconds", "0.1") as ep,
        patched_environ(ep.environment()),
    ):
        environ = {
            "AzureWebJobsStorage": azurite.connection_string,
            "TARGET_SUBSCRIPTIONS": SUB,
            "POISON_SCHEDULE": "0 0 0 1 1 *",
            "ROTATION_SCHEDULE": "0 0 2 * * *",
            "VERIFICATION_SCHEDULE": "0 0 6 * * *",
            "DRILL_SCHEDULE": "0 0 0 1 6 *",  # drills have their own tests
            "SWEEPER_SCHEDULE": "0 0 0 1 6 *",
            "ARM_ENDPOINT": ep.arm,
            "ARM_AUDIENCE": ep.arm_audience + ".default",
            "AZURE_CLIENT_ID": ep.client_id,
            "TAG_DEFAULT_POLICY": "true",
        }
        policies = tmp_path / "policies.yaml"
        policies.write_text(
            "version: 1\ndefaultPolicy: daily\npolicies:\n"
            "  daily: {retention: {daily: 7}, snapshotOnCreate: true}\n"
        )
        environ["POLICIES_FILE"] = str(policies)
        overrides = tmp_path / "host.json"
        overrides.write_text(json.dumps(FAST_HOST))
        clock = RemoteClock(ep.clock, ca_bundle=ep.ca_bundle)
        reset_services()
        override_services(settings=Settings.from_env(environ), reporter=reporter, clock=clock)
        admin = httpx.Client(
            base_url=ep.admin, verify=ssl.create_default_context(cafile=ep.ca_bundle), timeout=30
        )
        try:
            with LocalHost(
                function_app.app,
                overrides=overrides,
                environ=environ,
                clock=clock,
                run_timers=False,
            ) as host:
                webhook = (
                    f"{host.base_url}/runtime/webhooks/eventgrid?functionName=vm_events"
                    f"&code={host.key}"
                )
                admin.post(
                    "/eventgrid", json={"webhook": webhook, "duplicateProbability": 1.0}
                ).raise_for_status()
                created = admin.post(
                    "/vms", json={"subscriptionId": SUB, "vm": _new_vm("vm-new-01")}
                )
                created.raise_for_status()
                vm_id = created.json()["id"]
                _settle(admin, host)
                delivered_after_onboarding = admin.get("/eventgrid").json()["delivered"]
                time.sleep(2)
                host.wait_idle(timeout=30)
                assert admin.get("/eventgrid").json()["delivered"] == delivered_after_onboarding, (
                    "no event loop"
                )
            compute = ComputeManagementClient(
                ManagedIdentityCredential(client_id=ep.client_id),
                SUB,
                base_url=ep.arm,
                credential_scopes=[ep.arm_audience + ".default"],
            )
            vm = compute.virtual_machines.get("rg-app", "vm-new-01").as_dict()
            listed = compute.snapshots.list_by_resource_group("rg-lifeboat-snapshots")
            snapshots = [
                s.as_dict()
                for s in listed
                if "vm-new-01" in s.as_dict()["properties"]["creationData"]["sourceResourceId"]
            ]
        finally:
            admin.close()
            reset_services()
    assert vm["tags"]["lifeboat:policy"] == "daily"
    assert len(snapshots) == 2, "one first snapshot per disk, however many events"
    assert {s["tags"]["lifeboat:slot"] for s in snapshots} == {
        snapshots[0]["tags"]["lifeboat:slot"]
    }
    seen = [o for o in reporter.outcomes if o.operation == "vm-seen"]
    assert len(seen) >= 4, "two writes, each delivered twice"
    assert all(o.resource_id and o.resource_id.lower() == vm_id.lower() for o in seen)
    creates = [o for o in reporter.outcomes if o.operation == "snapshot-create"]
    assert creates
    assert {o.job.value for o in creates} == {"onboarding"}
    # Backup verification: the new VM is in scope and no vault protects it (found in minutes).
    findings = {o.finding for o in reporter.outcomes if o.operation == "verify-vm"}
    assert findings == {"unprotected"}
    assert not [
        o for o in reporter.outcomes if o.status.value == "failed" and o.operation != "verify-vm"
    ]


def _settle(admin: httpx.Client, host: LocalHost, timeout: float = 60) -> None:
    """Until Event Grid has nothing pending and the host is idle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = admin.get("/eventgrid").json()
        if state.get("validated") and state["delivered"] >= 4:
            host.wait_idle(timeout=timeout)
            return
        time.sleep(0.1)
    raise TimeoutError(f"Event Grid did not deliver: {admin.get('/eventgrid').json()}")
