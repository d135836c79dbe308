"""Event Grid deliveries as Azure sends them (event-grid schema), for the demo and tests.

Shape: the Microsoft.Resources.ResourceWriteSuccess event of a subscription system topic, as
documented for Azure Resource Manager events (authorization, claims, correlationId,
resourceProvider, resourceUri, operationName, status, subscriptionId, tenantId).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

TENANT = "72f988bf-0000-4000-8000-00000000beef"


def vm_write_event(
    subscription_id: str,
    resource_group: str,
    vm_name: str,
    *,
    operation: str = "Microsoft.Compute/virtualMachines/write",
    event_type: str = "Microsoft.Resources.ResourceWriteSuccess",
    caller_object_id: str = "0a4bdfaa-0000-4000-8000-0000000c0ffe",
    correlation_id: str | None = None,
    event_id: str | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    resource_id = (
        f"/subscriptions/{subscription_id}/resourcegroups/{resource_group}"
        f"/providers/Microsoft.Compute/virtualMachines/{vm_name}"
    )
    when = when or datetime.now(UTC)
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": f"/subscriptions/{subscription_id}",
        "subject": resource_id,
        "eventType": event_type,
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {
            "authorization": {"scope": resource_id, "action": operation, "evidence": {}},
            "claims": {
                "http://schemas.microsoft.com/identity/claims/objectidentifier": caller_object_id,
            },
            "correlationId": correlation_id or str(uuid.uuid4()),
            "resourceProvider": "Microsoft.Compute",
            "resourceUri": resource_id,
            "operationName": operation,
            "status": "Succeeded",
            "subscriptionId": subscription_id,
            "tenantId": TENANT,
        },
    }


def post_events(
    url: str, events: list[dict[str, Any]], *, kind: str | None = "Notification"
) -> tuple[int, bytes]:
    """POST an Event Grid delivery; returns (status, body)."""
    headers = {"Content-Type": "application/json"}
    if kind:
        headers["aeg-event-type"] = kind
    request = urllib.request.Request(
        url, data=json.dumps(events).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
