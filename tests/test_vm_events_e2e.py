"""A VM is created in the stand-in; Event Grid tells the local host; onboarding takes over.

The stand-in sends two writes per creation (one correlation id) and, here, every event twice.
Onboarding must take one first snapshot set and write the default policy tag through the Tags
API, whose own event is a tags write that changes nothing: no loop, nothing twice.
"""

from __future__ import annotations

import contextlib
import json
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
from emulator.eventgrid import as_cloud_event
from emulator.process import DEMO_ESTATE, running_emulator
from shared.services import reset_services
from tests.e2e_env import SUB, app_host, app_settings, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

UNSERVED = "9b2d4c61-0e3f-4a57-8b19-2c6d8e0f4a73"  # a subscription Lifeboat does not serve


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
        state = admin.get("/eventgrid").json()
        assert state["delivered"] == delivered_after_onboarding, "no event loop"
        # What Lifeboat wrote comes back as events without their caller (published examples
        # carry empty claims): replayed to the webhook, read as a user's, they write nothing.
        own = _without_caller(
            [e for e in state["events"] if _caller(e) == ep.object_id]
            + [vm_write_event(SUB, "rg-app", "vm-new-01", event_id="own-vm")]
        )
        before = _mark(admin)
        rows_before = len(reporter.outcomes)
        assert post_events(_webhook(host), own)[0] == 202
        host.wait_idle(timeout=30)
        replayed = list(reporter.outcomes)[rows_before:]
        assert _writes(admin, before) == [], "no write caused by Lifeboat's own write"
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
    # Event Grid validated the webhook (SubscriptionValidation) before the first delivery.
    assert any(a.get("validation") and a.get("ok") for a in state["attempts"])
    assert {s["tags"]["lifeboat:slot"] for s in snapshots} == {
        snapshots[0]["tags"]["lifeboat:slot"]
    }
    seen = [o for o in reporter.outcomes if o.operation == "vm-seen"]
    assert len(seen) >= 4, "two writes, each delivered twice"
    assert all(o.resource_id and o.resource_id.lower() == vm_id.lower() for o in seen)
    creates = [o for o in reporter.outcomes if o.operation == "snapshot-create"]
    assert {o.job.value for o in creates} == {"onboarding"}
    assert {o.status.value for o in creates} == {"unconfirmed", "succeeded"}
    succeeded = {o.id for o in creates if o.status.value == "succeeded"}
    assert len(succeeded) == len(snapshots), "succeeded rows (by id) = snapshots created"
    # The replayed own writes: the VM write is onboarded again and finds its work done (its
    # snapshot rows are the same rows again, same ids); the tags writes are unhandled.
    assert "vm-seen" in {o.operation for o in replayed}
    earlier = {o.id for o in reporter.outcomes[: len(reporter.outcomes) - len(replayed)]}
    again = [o for o in replayed if o.operation == "snapshot-create"]
    assert again
    assert all(o.id in earlier for o in again)
    tags_writes = [o for o in replayed if o.operation == "vm-event"]
    assert tags_writes
    unhandled = {"Microsoft.Resources.ResourceWriteSuccess Microsoft.Resources/tags/write": 1}
    assert all(
        (o.status.value, o.details["unhandled"]) == ("skipped", unhandled) for o in tags_writes
    )
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
        # A batch (application/cloudevents-batch+json): one invocation per event, each read as
        # a single one. The VM write is onboarded again and writes nothing.
        invocations, before = host.stats["vm_events"].invocations, _mark(admin)
        batch = [
            as_cloud_event(vm_write_event(SUB, "rg-app", "vm-cloud-01", event_id="batch-1")),
            as_cloud_event(
                vm_write_event(
                    SUB,
                    "rg-app",
                    "vm-cloud-01",
                    operation="Microsoft.Resources/tags/write",
                    event_id="batch-2",
                )
            ),
        ]
        with httpx.Client(timeout=30) as client:
            answer = client.post(
                _webhook(host),
                content=json.dumps(batch).encode(),
                headers={
                    "Content-Type": "application/cloudevents-batch+json",
                    "aeg-event-type": "Notification",
                },
            )
        host.wait_idle(timeout=30)
        batched = host.stats["vm_events"].invocations - invocations
        assert _writes(admin, before) == [], "the batch wrote nothing"
        state = admin.get("/eventgrid").json()
        snapshots = [
            s
            for s in ep_snapshots(ep)
            if "vm-cloud-01" in s["properties"]["creationData"]["sourceResourceId"]
        ]
    assert state["deliverySchema"] == "CloudEventSchemaV1_0"
    # The CloudEvents handshake (OPTIONS) was answered before the first delivery.
    assert any(
        a.get("validation") and a.get("schema") == "CloudEventSchemaV1_0" and a.get("ok")
        for a in state["attempts"]
    )
    assert host.stats["vm_events"].failed == 0
    assert len(snapshots) == 2
    succeeded = {o.id for o in confirmed if o.status.value == "succeeded"}
    assert len(succeeded) == len(snapshots), "succeeded rows (by id) = snapshots created"
    own = _own_writes(reporter)
    assert own, "the tag write's event came back and was skipped"
    assert {o.details["schema"] for o in own} == {"CloudEventSchemaV1_0"}
    assert all(o.count == 1 and o.details["ownWrites"] == 1 for o in own)
    assert (answer.status_code, batched) == (202, 2)
    by_event = {o.details.get("eventId"): o for o in reporter.outcomes}
    assert by_event["batch-1"].operation == "vm-seen"
    assert (by_event["batch-2"].operation, by_event["batch-2"].status.value) == (
        "vm-event",
        "skipped",
    )
    assert by_event["batch-2"].details["schema"] == "CloudEventSchemaV1_0"
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
            vm_write_event(UNSERVED, "rg-app", "vm-web-01", event_id="odd-4"),
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
    assert answers == [202, 202, 202, 202, 400, 400, 400]
    assert host.stats["vm_events"].failed == 0
    rows = {o.details.get("eventId"): o for o in reporter.outcomes if o.operation == "vm-event"}
    assert rows["odd-1"].status.value == "refused"
    assert "data is null" in (rows["odd-1"].reason or "")
    assert rows["odd-2"].status.value == "refused"
    assert all(0 < len(rows[i].details["excerpt"]) <= 200 for i in ("odd-1", "odd-2"))
    assert rows["odd-3"].status.value == "skipped"
    assert rows["odd-3"].details["unhandled"] == {"Microsoft.Resources.ResourceDeleteSuccess": 1}
    # A VM write in a subscription Lifeboat does not serve: skipped, nothing onboarded.
    assert (rows["odd-4"].status.value, rows["odd-4"].reason) == (
        "skipped",
        f"subscription '{UNSERVED}' is not a target subscription",
    )
    assert [o for o in reporter.outcomes if o.operation == "vm-seen"] == []


def _webhook(host: LocalHost) -> str:
    return f"{host.base_url}/runtime/webhooks/eventgrid?functionName=vm_events&code={host.key}"


def _caller(event: dict[str, Any]) -> str | None:
    claims = event["data"].get("claims") or {}
    return claims.get("http://schemas.microsoft.com/identity/claims/objectidentifier")


def _without_caller(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events again, new ids, with empty claims and evidence: nothing says who wrote."""
    bare = []
    for n, event in enumerate(events):
        data = {**event["data"], "claims": {}}
        data["authorization"] = {**data["authorization"], "evidence": {}}
        bare.append({**event, "id": f"bare-{n}", "data": data})
    return bare


def _mark(admin: httpx.Client) -> int:
    return int(admin.get("/requests", params={"limit": 0}).json()["total"])


def _writes(admin: httpx.Client, since: int) -> list[str]:
    """The requests the stand-in answered since `since` that are not reads (Azure Backup's
    backupStatus is a POST that only reads whether a VM is protected)."""
    entries = admin.get("/requests", params={"since": since, "limit": 5000}).json()["entries"]
    return [
        f"{e['method']} {e['operation']} {e['path']}"
        for e in entries
        if e["method"] not in ("GET", "HEAD", "OPTIONS")
        and not e["operation"].endswith("/backupStatus/action")
    ]


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
