"""Event Grid: ResourceWriteSuccess for VM writes, at least once, to a loopback webhook."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from emulator.process import DEMO_ESTATE, Endpoints, running_emulator
from tests.emulator.conftest import FAST, SUB

OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"


class Webhook:
    """A webhook like the Functions host's: answers the handshake, fails each event's first try."""

    def __init__(self, fail_first: bool = True, allow_origin: str | None = "echo") -> None:
        self.fail_first = fail_first
        self.allow_origin = allow_origin
        self.notifications: list[tuple[dict[str, str], Any]] = []
        self.validations = 0
        self.origins: list[str | None] = []
        self.failed_once: set[str] = set()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_OPTIONS(self) -> None:
                """The CloudEvents handshake: allow the origin asked about (or not)."""
                origin = self.headers.get("WebHook-Request-Origin")
                hook.origins.append(origin)
                self.send_response(200)
                allowed = origin if hook.allow_origin == "echo" else hook.allow_origin
                if allowed:
                    self.send_header("WebHook-Allowed-Origin", allowed)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                kind = self.headers.get("aeg-event-type")
                if kind == "SubscriptionValidation":
                    hook.validations += 1
                    answer = json.dumps(
                        {"validationResponse": body[0]["data"]["validationCode"]}
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                event_id = (body[0] if isinstance(body, list) else body)["id"]
                if hook.fail_first and event_id not in hook.failed_once:
                    hook.failed_once.add(event_id)
                    self.send_response(500)
                else:
                    hook.notifications.append((dict(self.headers), body))
                    self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/runtime/webhooks/eventgrid"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [body[0] if isinstance(body, list) else body for _, body in self.notifications]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.notifications) < count:
            time.sleep(0.05)
        return self.events()


@pytest.fixture(scope="module")
def stand_in() -> Iterator[Endpoints]:
    """A stand-in of this module's own: the VMs created here stay out of the other tests."""
    with running_emulator(DEMO_ESTATE, *FAST) as endpoints:
        yield endpoints


@pytest.fixture
def webhook(admin: httpx.Client) -> Iterator[Webhook]:
    hook = Webhook()
    admin.post(
        "/eventgrid", json={"webhook": hook.url, "duplicateProbability": 1.0, "retryScale": 0.01}
    ).raise_for_status()
    yield hook
    admin.post("/eventgrid", json={"webhook": None, "duplicateProbability": 0.0}).raise_for_status()
    hook.server.shutdown()


def new_vm(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-app",
        "osType": "Linux",
        "osDisk": {"sku": "Premium_LRS", "sizeGB": 32},
        "dataDisks": [{"lun": 0, "name": f"{name}-data-01", "sku": "Premium_LRS", "sizeGB": 32}],
    }


def test_vm_creation_sends_two_writes_with_one_correlation_id_at_least_once(
    webhook: Webhook, admin: httpx.Client
) -> None:
    created = admin.post("/vms", json={"subscriptionId": SUB, "vm": new_vm("vm-new-01")})
    assert created.status_code == 201
    vm_id = created.json()["id"]
    events = webhook.wait_for(4)  # two writes, each delivered twice (duplicates on), after a 500
    assert len(events) == 4
    assert webhook.validations == 1
    assert {e["id"] for e in events} == {e["id"] for e in events[:4]}
    assert len({e["id"] for e in events}) == 2
    assert {e["data"]["correlationId"] for e in events} == {created.json()["correlationId"]}
    for headers, body in webhook.notifications:
        assert headers["aeg-event-type"] == "Notification"
        assert isinstance(body, list)
        assert len(body) == 1
    event = events[0]
    assert event["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert event["subject"] == vm_id
    assert event["data"]["resourceUri"] == vm_id
    assert event["data"]["operationName"] == "Microsoft.Compute/virtualMachines/write"
    assert event["topic"] == f"/subscriptions/{SUB}"
    status = admin.get("/eventgrid").json()
    assert any(a.get("status") == 500 for a in status["attempts"])


def test_lifeboat_tag_write_has_its_own_operation_and_caller(
    webhook: Webhook, admin: httpx.Client, arm: httpx.Client, stand_in: Endpoints
) -> None:
    vm_id = admin.post(
        "/vms", json={"subscriptionId": SUB, "vm": new_vm("vm-new-02"), "writes": 1}
    ).json()["id"]
    webhook.wait_for(2)
    response = arm.patch(
        vm_id + "/providers/Microsoft.Resources/tags/default?api-version=2021-04-01",
        json={"operation": "Merge", "properties": {"tags": {"lifeboat:policy": "daily"}}},
    )
    assert response.status_code == 200
    events = webhook.wait_for(4)
    tag_events = [
        e for e in events if e["data"]["operationName"] == "Microsoft.Resources/tags/write"
    ]
    assert tag_events
    assert tag_events[0]["data"]["claims"][OID_CLAIM] == stand_in.object_id
    assert tag_events[0]["subject"] == vm_id


def test_gets_send_no_events(webhook: Webhook, arm: httpx.Client, admin: httpx.Client) -> None:
    published = admin.get("/eventgrid").json()["published"]
    arm.get(
        f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines?api-version=2026-04-01"
    )
    assert admin.get("/eventgrid").json()["published"] == published


def test_deliveries_can_be_reordered(admin: httpx.Client) -> None:
    hook = Webhook(fail_first=False)
    admin.post(
        "/eventgrid", json={"webhook": hook.url, "reorderSeconds": 0.5, "duplicateProbability": 0}
    ).raise_for_status()
    try:
        published = []
        for i in range(8):
            created = admin.post(
                "/vms", json={"subscriptionId": SUB, "vm": new_vm(f"vm-order-{i}"), "writes": 1}
            )
            published.append(created.json()["id"])
        delivered = [e["subject"] for e in hook.wait_for(8)]
        assert sorted(delivered) == sorted(published)
        assert delivered != published  # 1 chance in 40,320 of the same order
    finally:
        admin.post("/eventgrid", json={"webhook": None, "reorderSeconds": 0}).raise_for_status()
        hook.server.shutdown()


def test_cloud_events_delivery_after_the_options_handshake(admin: httpx.Client) -> None:
    hook = Webhook(fail_first=False)
    admin.post(
        "/eventgrid",
        json={
            "webhook": hook.url,
            "deliverySchema": "CloudEventSchemaV1_0",
            "duplicateProbability": 0,
        },
    ).raise_for_status()
    try:
        created = admin.post(
            "/vms", json={"subscriptionId": SUB, "vm": new_vm("vm-cloud-01"), "writes": 1}
        ).json()
        [event] = hook.wait_for(1)
        assert hook.origins == ["eventgrid.azure.net"]
        assert hook.validations == 0, "no Event Grid schema handshake"
        [(headers, body)] = hook.notifications
        assert isinstance(body, dict), "one CloudEvent, not an array"
        assert headers["Content-Type"] == "application/cloudevents+json"
        assert headers["aeg-event-type"] == "Notification"
        assert event["specversion"] == "1.0"
        assert event["type"] == "Microsoft.Resources.ResourceWriteSuccess"
        assert event["subject"] == created["id"]
        assert event["source"] == f"/subscriptions/{SUB}"
        assert event["data"]["operationName"] == "Microsoft.Compute/virtualMachines/write"
        assert {"time", "id"} <= set(event)
        assert "eventType" not in event
        assert admin.get("/eventgrid").json()["deliverySchema"] == "CloudEventSchemaV1_0"
    finally:
        admin.post(
            "/eventgrid", json={"webhook": None, "deliverySchema": "EventGridSchema"}
        ).raise_for_status()
        hook.server.shutdown()


def test_a_webhook_that_does_not_allow_the_origin_gets_no_cloud_events(
    admin: httpx.Client,
) -> None:
    hook = Webhook(fail_first=False, allow_origin=None)
    admin.post(
        "/eventgrid",
        json={"webhook": hook.url, "deliverySchema": "CloudEventSchemaV1_0", "retryScale": 1},
    ).raise_for_status()
    try:
        admin.post(
            "/vms", json={"subscriptionId": SUB, "vm": new_vm("vm-cloud-02"), "writes": 1}
        ).raise_for_status()
        deadline = time.monotonic() + 5
        state = admin.get("/eventgrid").json()
        while time.monotonic() < deadline and not any(
            a.get("status") == "validation-failed" for a in state["attempts"]
        ):
            time.sleep(0.05)
            state = admin.get("/eventgrid").json()
        assert any(a.get("status") == "validation-failed" for a in state["attempts"])
        assert hook.notifications == []
        assert not state["validated"]
        bad = admin.post("/eventgrid", json={"deliverySchema": "CustomInputSchema"})
        assert bad.status_code == 400
    finally:
        admin.post(
            "/eventgrid", json={"webhook": None, "deliverySchema": "EventGridSchema"}
        ).raise_for_status()
        hook.server.shutdown()
