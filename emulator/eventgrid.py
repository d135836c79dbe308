"""Event Grid: ResourceWriteSuccess events for VM writes, delivered to one webhook.

At least once, like the real service: one event per POST, header `aeg-event-type: Notification`,
retried on anything but 200-204 on Event Grid's schedule (scaled), with optional duplicates and
reordering. The delivery schema is the event subscription's (`deliverySchema`):

- `EventGridSchema` (default): a JSON array of one event; the webhook is validated once, before
  the first delivery, with the subscription validation handshake (a POST the webhook answers with
  `{"validationResponse": code}`);
- `CloudEventSchemaV1_0`: one CloudEvent, `Content-Type: application/cloudevents+json` (`type`,
  `source` = the topic, `time`, `subject`, `data` as in the Event Grid schema); the webhook is
  validated with the CloudEvents abuse-protection handshake (OPTIONS with
  `WebHook-Request-Origin: eventgrid.azure.net`, answered 200 with `WebHook-Allowed-Origin`
  naming that origin or `*`).

Validation can be turned off (`validate: false`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulator.clock import Clock, format_instant
from emulator.ids import new_uuid

log = logging.getLogger(__name__)

RETRY_SCHEDULE = [10, 30, 60, 300, 600, 1800, 3600] + [3600] * 23  # 30 attempts in all
EVENT_GRID_SCHEMA = "EventGridSchema"
CLOUD_EVENTS_SCHEMA = "CloudEventSchemaV1_0"
SCHEMAS = (EVENT_GRID_SCHEMA, CLOUD_EVENTS_SCHEMA)
ORIGIN = "eventgrid.azure.net"


@dataclass
class DeliveryOptions:
    webhook: str | None = None
    retry_scale: float = 1.0
    duplicate_probability: float = 0.0
    reorder_seconds: float = 0.0
    validate: bool = True
    seed: int | None = None
    schema: str = EVENT_GRID_SCHEMA


@dataclass
class Delivery:
    event: dict[str, Any]
    attempt: int = 0
    duplicate: bool = False


@dataclass
class EventGridState:
    published: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    delivered: int = 0
    dead: int = 0
    validated: bool = False


class EventGrid:
    def __init__(self, clock: Clock, tenant_id: str, options: DeliveryOptions) -> None:
        self.clock = clock
        self.tenant_id = tenant_id
        self.options = options
        self.state = EventGridState()
        self._random = random.Random(options.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._validation_lock: asyncio.Lock | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=30.0, verify=False)  # loopback test webhook
        self._validation_lock = asyncio.Lock()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()

    def configure(self, spec: dict[str, Any]) -> None:
        if "webhook" in spec:
            self.options.webhook = spec["webhook"] or None
            self.state.validated = False
        if "duplicateProbability" in spec:
            self.options.duplicate_probability = float(spec["duplicateProbability"])
        if "reorderSeconds" in spec:
            self.options.reorder_seconds = float(spec["reorderSeconds"])
        if "retryScale" in spec:
            self.options.retry_scale = float(spec["retryScale"])
        if "validate" in spec:
            self.options.validate = bool(spec["validate"])
        if "deliverySchema" in spec:
            schema = spec["deliverySchema"] or EVENT_GRID_SCHEMA
            if schema not in SCHEMAS:
                raise ValueError(f"deliverySchema {schema!r} is not one of {', '.join(SCHEMAS)}")
            if schema != self.options.schema:
                self.state.validated = False
            self.options.schema = schema

    def status(self) -> dict[str, Any]:
        return {
            "webhook": self.options.webhook,
            "duplicateProbability": self.options.duplicate_probability,
            "reorderSeconds": self.options.reorder_seconds,
            "retryScale": self.options.retry_scale,
            "deliverySchema": self.options.schema,
            "validated": self.state.validated,
            "published": len(self.state.published),
            "delivered": self.state.delivered,
            "deadLettered": self.state.dead,
            "events": self.state.published[-200:],
            "attempts": self.state.attempts[-500:],
        }

    def resource_write(
        self,
        resource_id: str,
        operation: str,
        object_id: str,
        correlation_id: str,
        *,
        http_method: str | None = None,
        url: str | None = None,
    ) -> dict[str, Any]:
        subscription = resource_id.split("/")[2]
        provider = operation.split("/")[0]
        data: dict[str, Any] = {
            "authorization": {
                "scope": resource_id,
                "action": operation,
                "evidence": {
                    "role": "Contributor",
                    "roleAssignmentScope": f"/subscriptions/{subscription}",
                    "principalId": object_id,
                    "principalType": "ServicePrincipal",
                },
            },
            "claims": {
                "aud": "https://management.azure.com/",
                "iss": f"https://sts.windows.net/{self.tenant_id}/",
                "http://schemas.microsoft.com/identity/claims/objectidentifier": object_id,
                "http://schemas.microsoft.com/identity/claims/tenantid": self.tenant_id,
                "idtyp": "app",
            },
            "correlationId": correlation_id,
            "resourceProvider": provider,
            "resourceUri": resource_id,
            "operationName": operation,
            "status": "Succeeded",
            "subscriptionId": subscription,
            "tenantId": self.tenant_id,
        }
        if http_method and http_method != "PUT-CREATE":
            data["httpRequest"] = {
                "clientRequestId": new_uuid(),
                "clientIpAddress": "127.0.0.1",
                "method": http_method,
                "url": url or resource_id,
            }
        event = {
            "id": new_uuid(),
            "topic": f"/subscriptions/{subscription}",
            "subject": resource_id,
            "eventType": "Microsoft.Resources.ResourceWriteSuccess",
            "eventTime": format_instant(self.clock.now()),
            "data": data,
            "dataVersion": "2",
            "metadataVersion": "1",
        }
        self.state.published.append(event)
        self._enqueue(Delivery(event))
        return event

    def _enqueue(self, delivery: Delivery, delay: float = 0.0) -> None:
        if self._loop is None or not self.options.webhook:
            return
        self._loop.call_soon_threadsafe(self._spawn, delivery, delay)

    def _spawn(self, delivery: Delivery, delay: float) -> None:
        task = asyncio.ensure_future(self._deliver(delivery, delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _validate(self, url: str) -> bool:
        assert self._client is not None
        assert self._validation_lock is not None
        async with self._validation_lock:
            if self.state.validated:
                return True
            if self.options.schema == CLOUD_EVENTS_SCHEMA:
                ok = await self._validate_cloud_events(url)
                self.state.attempts.append(
                    {
                        "validation": True,
                        "schema": CLOUD_EVENTS_SCHEMA,
                        "ok": ok,
                        "time": format_instant(self.clock.now()),
                    }
                )
                self.state.validated = ok
                return ok
            code = new_uuid()
            event = {
                "id": new_uuid(),
                "topic": "/subscriptions/lifeboat-stand-in",
                "subject": "",
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "eventTime": format_instant(self.clock.now()),
                "data": {"validationCode": code, "validationUrl": ""},
                "dataVersion": "2",
                "metadataVersion": "1",
            }
            try:
                response = await self._client.post(
                    url, json=[event], headers={"aeg-event-type": "SubscriptionValidation"}
                )
                ok = (
                    response.status_code == 200
                    and response.json().get("validationResponse") == code
                )
            except (httpx.HTTPError, ValueError, AttributeError):
                ok = False
            self.state.attempts.append(
                {"validation": True, "ok": ok, "time": format_instant(self.clock.now())}
            )
            self.state.validated = ok
            return ok

    async def _validate_cloud_events(self, url: str) -> bool:
        """CloudEvents abuse protection: OPTIONS, and the webhook must allow this origin."""
        assert self._client is not None
        try:
            response = await self._client.request(
                "OPTIONS", url, headers={"WebHook-Request-Origin": ORIGIN}
            )
        except httpx.HTTPError:
            return False
        allowed = response.headers.get("WebHook-Allowed-Origin", "")
        return response.status_code == 200 and allowed.strip().lower() in (ORIGIN, "*")

    def _body(self, event: dict[str, Any]) -> tuple[Any, str]:
        """What one delivery POSTs, and its content type, in the subscription's schema."""
        if self.options.schema == CLOUD_EVENTS_SCHEMA:
            return as_cloud_event(event), "application/cloudevents+json"
        return [event], "application/json"

    async def _deliver(self, delivery: Delivery, delay: float) -> None:
        assert self._client is not None
        jitter = (
            self._random.uniform(0, self.options.reorder_seconds)
            if self.options.reorder_seconds
            else 0
        )
        await asyncio.sleep(delay + jitter)
        url = self.options.webhook
        if not url:
            return
        delivery.attempt += 1
        status: int | str
        if self.options.validate and not await self._validate(url):
            status = "validation-failed"
        else:
            body, content_type = self._body(delivery.event)
            try:
                response = await self._client.post(
                    url,
                    content=json.dumps(body).encode(),
                    headers={
                        "Content-Type": content_type,
                        "aeg-event-type": "Notification",
                        "aeg-subscription-name": "LIFEBOAT-VM-WRITES",
                        "aeg-delivery-count": str(delivery.attempt - 1),
                        "aeg-data-version": "2",
                        "aeg-metadata-version": "1",
                    },
                )
                status = response.status_code
            except httpx.HTTPError as e:
                status = type(e).__name__
        self.state.attempts.append(
            {
                "eventId": delivery.event["id"],
                "attempt": delivery.attempt,
                "status": status,
                "time": format_instant(self.clock.now()),
            }
        )
        if isinstance(status, int) and 200 <= status <= 204:
            self.state.delivered += 1
            duplicate = self._random.random() < self.options.duplicate_probability
            if not delivery.duplicate and duplicate:
                self._spawn(Delivery(delivery.event, duplicate=True), 0.0)
            return
        if delivery.attempt >= len(RETRY_SCHEDULE) + 1:
            self.state.dead += 1
            return
        wait = RETRY_SCHEDULE[delivery.attempt - 1] * self.options.retry_scale
        self._spawn(delivery, wait)


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """An Event Grid schema event as Event Grid delivers it in CloudEvents 1.0."""
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "type": event["eventType"],
        "subject": event["subject"],
        "time": event["eventTime"],
        "data": event["data"],
    }
