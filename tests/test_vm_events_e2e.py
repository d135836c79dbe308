"""A VM is created in the stand-in; Event Grid tells the local host; onboarding takes over.

The stand-in sends two writes per creation (one correlation id) and, here, every event twice.
Onboarding must take one first snapshot set and write the default policy tag through the Tags
API, whose own event is a tags write that changes nothing: no loop, nothing twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from cli.azurite import Azurite
from cli.events import post_events, vm_write_event
from cli.localhost import LocalHost
from emulator.process import DEMO_ESTATE, running_emulator
from shared.services import reset_services
from tests.e2e_env import SUB, app_host, app_settings, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e


def _new_vm(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-app",
        "size": "Standard_D2s_v5",
        "osType": "Linux",
        "osDisk": {"sku": "Premium_LRS", "sizeGB": 32},
        "dataDisks": [{"lun": 0, "name": f"{name}-data-01", "sku": "Premium_LRS", "sizeGB": 64}],
    }


@contextlib.contextmanager
def onboarding_world(
    tmp_path: Path,
    azurite: Azurite,
    reporter: MemoryReporter,
    *,
    schema: str = "EventGridSchema",
    own_principal: bool = False,
    **settings: str,
) -> Iterator[tuple[Any, httpx.Client, LocalHost]]:
    """The stand-in, the local host and Event Grid delivering every event twice, in `schema`;
    with `own_principal`, Lifeboat knows its identity's object id."""
    with (
        running_emulator(DEMO_ESTATE, "--operation-seconds", "0.1") as ep,
        patched_environ(ep.environment()),
    ):
        environ = app_settings(
            azurite,
            ep,
            VERIFICATION_SCHEDULE="0 0 6 * * *",
            TAG_DEFAULT_POLICY="true",
            CONFIRM_DELAY_SECONDS="1",
            **settings,
        )
        if own_principal:
            environ["LIFEBOAT_PRINCIPAL_ID"] = ep.object_id
        policies = tmp_path / "policies.yaml"
        policies.write_text(
            "version: 1\ndefaultPolicy: daily\npolicies:\n"
            "  daily: {retention: {daily: 7}, snapshotOnCreate: true}\n"
        )
        environ["POLICIES_FILE"] = str(policies)
        overrides, clock, admin = wire_services(ep, environ, reporter, tmp_path / "host.json")
        try:
            with app_host(overrides, environ, clock, run_timers=False) as host:
                webhook = (
                    f"{host.base_url}/runtime/webhooks/eventgrid?functionName=vm_events"
                    f"&code={host.key}"
                )
                admin.post(
                    "/eventgrid",
                    json={
                        "webhook": webhook,
                        "duplicateProbability": 1.0,
                        "deliverySchema": schema,
                    },
                ).raise_for_status()
                yield ep, admin, host
        finally:
            admin.close()
            reset_services()


def _confirmed(reporter: MemoryReporter, count: int, timeout: float = 30) -> list[Any]:
    """The onboarding set's confirm rows, once the confirm step has reported every disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [o for o in reporter.outcomes if o.details.get("confirmed")]
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    raise TimeoutError(f"the onboarding set was not confirmed: {reporter.operations()}")


def test_a_new_vm_is_onboarded_once_through_event_grid(
    azurite: Azurite, queue_service: Any, tmp_path: Path
) -> None:
    reporter = MemoryReporter()
    with onboarding_world(tmp_path, azurite, reporter) as (ep, admin, host):
        created = admin.post("/vms", json={"subscriptionId": SUB, "vm": _new_vm("vm-new-01")})
        created.raise_for_status()
        vm_id = created.json()["id"]
        _settle(admin, host)
        delivered_after_onboarding = admin.get("/eventgrid").json()["delivered"]
        confirmed = _confirmed(reporter, 2)
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
    assert vm["tags"]["lifeboat:policy"] == "daily"
    assert len(snapshots) == 2, "one first snapshot per disk, however many events"
    assert {s["tags"]["lifeboat:slot"] for s in snapshots} == {
        snapshots[0]["tags"]["lifeboat:slot"]
    }
    seen = [o for o in reporter.outcomes if o.operation == "vm-seen"]
    assert len(seen) >= 4, "two writes, each delivered twice"
    assert all(o.resource_id and o.resource_id.lower() == vm_id.lower() for o in seen)
    creates = [o for o in reporter.outcomes if o.operation == "snapshot-create"]
    assert {o.job.value for o in creates} == {"onboarding"}
    assert {o.status.value for o in creates} == {"unconfirmed", "succeeded"}
    # Confirmed after the create window, one row per disk (rows of a repeat share their ids).
    assert len({o.id for o in confirmed}) == 2
    assert {(o.operation, o.status.value) for o in confirmed} == {("snapshot-create", "succeeded")}
    # Backup verification: the new VM is in scope and no vault protects it (found in minutes).
    findings = {o.finding for o in reporter.outcomes if o.operation == "verify-vm"}
    assert findings == {"unprotected"}
    assert not [
        o for o in reporter.outcomes if o.status.value == "failed" and o.operation != "verify-vm"
    ]


def test_an_onboarding_set_that_never_completes_is_reported_failed_by_its_confirm(
    azurite: Azurite, queue_service: Any, tmp_path: Path
) -> None:
    reporter = MemoryReporter()
    with onboarding_world(tmp_path, azurite, reporter) as (_ep, admin, host):
        # Azure accepts the snapshot PUTs, and the copies never finish.
        admin.post(
            "/faults", json={"action": "stuck", "method": "PUT", "path": "/snapshots/"}
        ).raise_for_status()
        admin.post(
            "/vms", json={"subscriptionId": SUB, "vm": _new_vm("vm-new-02")}
        ).raise_for_status()
        _settle(admin, host)
        confirmed = _confirmed(reporter, 2)
    assert len({o.id for o in confirmed}) == 2
    assert {(o.operation, o.status.value) for o in confirmed} == {("snapshot-create", "failed")}
    assert all((o.reason or "").startswith("not good after the create window") for o in confirmed)
    accepted = [
        o
        for o in reporter.outcomes
        if o.operation == "snapshot-create" and not o.details.get("confirmed")
    ]
    assert accepted
    assert {o.status.value for o in accepted} == {"unconfirmed"}
    assert not [o for o in reporter.outcomes if o.operation in ("run-end", "snapshot-delete")]


def test_cloud_events_onboard_once_and_lifeboats_own_write_is_skipped(
    azurite: Azurite, queue_service: Any, tmp_path: Path
) -> None:
    """CloudEvents 1.0 after the OPTIONS handshake, every event twice; Lifeboat knows itself,
    so its tag write comes back as `vm-event skipped: own write`."""
    reporter = MemoryReporter()
    with onboarding_world(
        tmp_path, azurite, reporter, schema="CloudEventSchemaV1_0", own_principal=True
    ) as (ep, admin, host):
        admin.post(
            "/vms", json={"subscriptionId": SUB, "vm": _new_vm("vm-cloud-01")}
        ).raise_for_status()
        _settle(admin, host)
        confirmed = _confirmed(reporter, 2)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _own_writes(reporter):
            time.sleep(0.2)
        host.wait_idle(timeout=30)
        state = admin.get("/eventgrid").json()
        snapshots = [
            s
            for s in ep_snapshots(ep)
            if "vm-cloud-01" in s["properties"]["creationData"]["sourceResourceId"]
        ]
    assert state["deliverySchema"] == "CloudEventSchemaV1_0"
    assert any(a.get("validation") and a.get("ok") for a in state["attempts"])
    assert host.stats["vm_events"].failed == 0
    assert len(snapshots) == 2
    succeeded = {o.id for o in confirmed if o.status.value == "succeeded"}
    assert len(succeeded) == len(snapshots), "succeeded rows (by id) = snapshots created"
    own = _own_writes(reporter)
    assert own, "the tag write's event came back and was skipped"
    assert {o.details["schema"] for o in own} == {"CloudEventSchemaV1_0"}
    assert all(o.count == 1 and o.details["ownWrites"] == 1 for o in own)
    assert [o for o in reporter.outcomes if o.status.value == "refused"] == []


def test_unreadable_and_unhandled_events_get_rows_never_a_500(
    azurite: Azurite, queue_service: Any, tmp_path: Path
) -> None:
    """Beside the stand-in's deliveries, odd bodies sent to the host's webhook: every one is
    answered (202 with a row, or 400 for what is not events), none fails the function."""
    reporter = MemoryReporter()
    with onboarding_world(tmp_path, azurite, reporter) as (_ep, admin, host):
        url = f"{host.base_url}/runtime/webhooks/eventgrid?functionName=vm_events&code={host.key}"
        good = vm_write_event(SUB, "rg-app", "vm-odd", event_id="odd-0")
        odd = [
            {**good, "id": "odd-1", "data": None},
            {**good, "id": "odd-2", "subject": 42},
            {**good, "id": "odd-3", "eventType": "Microsoft.Resources.ResourceDeleteSuccess"},
        ]
        answers = [post_events(url, [event])[0] for event in odd]
        with httpx.Client(timeout=30) as client:
            for body in (b"{not json", b"[1, 2]", b"null"):
                response = client.post(
                    url, content=body, headers={"aeg-event-type": "Notification"}
                )
                answers.append(response.status_code)
        host.wait_idle(timeout=30)
        assert admin.get("/eventgrid").json()["deadLettered"] == 0
    assert answers == [202, 202, 202, 400, 400, 400]
    assert host.stats["vm_events"].failed == 0
    rows = {o.details.get("eventId"): o for o in reporter.outcomes if o.operation == "vm-event"}
    assert rows["odd-1"].status.value == "refused"
    assert "data is null" in (rows["odd-1"].reason or "")
    assert rows["odd-2"].status.value == "refused"
    assert all(0 < len(rows[i].details["excerpt"]) <= 200 for i in ("odd-1", "odd-2"))
    assert rows["odd-3"].status.value == "skipped"
    assert rows["odd-3"].details["unhandled"] == {"Microsoft.Resources.ResourceDeleteSuccess": 1}


def _own_writes(reporter: MemoryReporter) -> list[Any]:
    return [
        o for o in list(reporter.outcomes) if o.operation == "vm-event" and o.reason == "own write"
    ]


def ep_snapshots(ep: Any) -> list[dict[str, Any]]:
    compute = ComputeManagementClient(
        ManagedIdentityCredential(client_id=ep.client_id),
        SUB,
        base_url=ep.arm,
        credential_scopes=[ep.arm_audience + ".default"],
    )
    return [s.as_dict() for s in compute.snapshots.list_by_resource_group("rg-lifeboat-snapshots")]


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
