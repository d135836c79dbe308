"""VM write events from Event Grid: validate, filter, and hand new work to the onboarding queue.

The event only says "something wrote this VM"; it is never trusted beyond that. Onboarding reads
the VM's current state itself. Both delivery schemas (Event Grid and CloudEvents 1.0) arrive here
as one `VmEvent` and go through the same decision.

In Azure the Functions host owns the webhook and its status codes: a function that raises makes
the host answer 500, and Event Grid then redelivers the whole batch for 24 hours. So nothing in an
event's content makes this module raise. Every event that is not accepted gets one `vm-event` row:

- odd content Lifeboat cannot read (no id, `data` that is not an object, a subject that is not a
  string or not a VM id, a time without a zone) is `refused`, with the reason and a short excerpt
  of the event (a bug, a forgery or a misconfigured subscription: the refusals alert sees it);
- Lifeboat's own write (the caller in `data.claims` or `data.authorization.evidence` is
  `LIFEBOAT_PRINCIPAL_ID`) is `skipped: own write`, counted;
- an event Lifeboat does not handle (another event type, another operation, a failed write) is
  `skipped`, counted by its type in `Details.unhandled`;
- a VM outside the target subscriptions is `skipped`.

Only a failure to send the onboarding message (Storage down) raises: then a redelivery is right.
Repeated deliveries need no dedupe store: the row ids and the onboarding message's key derive from
the event id, and onboarding names the snapshots by the VM's creation minute.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import dispatch, messages
from shared.dispatch import Context, Done, Outgoing, Result, Send
from shared.messages import OnboardingRequest
from shared.model import VmRef, parse_vm_id
from shared.names import Job, Status
from shared.ports import Runtime

log = logging.getLogger(__name__)

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
VM_WRITE = "Microsoft.Compute/virtualMachines/write"
# The caller's object id in an ARM event's claims: the long claim name, or the short one.
OID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
OWN_WRITE = "own write"
EVENT_GRID_SCHEMA = "EventGridSchema"
CLOUD_EVENTS_SCHEMA = "CloudEventSchemaV1_0"

# What a row keeps of an event: an ARM id is at most this long, and so is a kept subject.
MAX_SUBJECT = 1024
MAX_REASON = 1000
# Event Grid's ids are GUIDs; a longer one would not fit the envelope's run id either.
MAX_EVENT_ID = 100
# A value quoted inside a reason, and the excerpt of an unreadable event a row keeps.
_QUOTED = 200
MAX_EXCERPT = 200
MAX_CORRELATION_ID = 128


@dataclass(frozen=True, slots=True)
class VmEvent:
    """One event as the host delivered it. Every field is as it came, of whatever type."""

    id: object
    event_type: object
    subject: object
    event_time: object
    data: object
    # The worker built a CloudEvent (CloudEvents 1.0 delivery): `type`, `time` and `subject` were
    # read into event_type, event_time and subject.
    cloud_event: bool = False

    @property
    def schema(self) -> str:
        return CLOUD_EVENTS_SCHEMA if self.cloud_event else EVENT_GRID_SCHEMA


@dataclass(frozen=True, slots=True)
class Decision:
    accepted: bool
    reason: str
    vm: VmRef | None = None
    # The row a drop is worth: REFUSED for odd content (a bug, a forgery or a misconfigured
    # subscription), SKIPPED for a VM outside the target subscriptions, None for routine noise.
    status: Status | None = None
    # What a skipped event counts toward: {"ownWrites": 1} or {"unhandled": {type: 1}}.
    counts: Mapping[str, Any] | None = None

    @property
    def report(self) -> bool:
        return self.status is not None


def _refused(reason: str, vm: VmRef | None = None) -> Decision:
    return Decision(False, reason[:MAX_REASON], vm, Status.REFUSED)


def _quote(value: object) -> str:
    """A value for a reason or a log line: repr, bounded."""
    text = repr(value)
    return text if len(text) <= _QUOTED else f"{text[:_QUOTED]}… ({len(text)} characters)"


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _skipped(reason: str, counts: Mapping[str, Any], vm: VmRef | None = None) -> Decision:
    return Decision(False, reason[:MAX_REASON], vm, Status.SKIPPED, counts)


def caller_of(data: Mapping[Any, Any]) -> str | None:
    """The object id of whoever made the write, when the event says: its claims' oid, else the
    principal of the role assignment that allowed it. Lowercase; None when the event is silent
    (published examples carry empty claims)."""
    claims = data.get("claims")
    if isinstance(claims, Mapping):
        for key in OID_CLAIMS:
            value = claims.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip().lower()
    authorization = data.get("authorization")
    evidence = authorization.get("evidence") if isinstance(authorization, Mapping) else None
    principal = evidence.get("principalId") if isinstance(evidence, Mapping) else None
    if isinstance(principal, str) and principal.strip():
        return principal.strip().lower()
    return None


def decide(
    event: VmEvent, subscriptions: frozenset[str], own_principal: str | None = None
) -> Decision:
    """Accept a VM write in a target subscription; refuse odd content; skip Lifeboat's own
    writes and what it does not handle, counted; never raises."""
    if not isinstance(event.id, str):
        return _refused(f"event id is {_kind(event.id)}, not a string")
    if not event.id:
        return _refused("event has no id")
    if len(event.id) > MAX_EVENT_ID:
        return _refused(f"event id is {len(event.id)} characters; at most {MAX_EVENT_ID}")
    if not isinstance(event.event_type, str) or not event.event_type:
        return _refused(f"eventType is {_quote(event.event_type)}, not an event type")
    if not isinstance(event.subject, str):
        return _refused(f"subject is {_kind(event.subject)}, not a string")
    if len(event.subject) > MAX_SUBJECT:
        return _refused(
            f"subject is {len(event.subject)} characters; an ARM id has at most {MAX_SUBJECT}"
        )
    if not isinstance(event.data, Mapping):
        return _refused(f"data is {_kind(event.data)}, not an object")
    if event.event_time is not None:
        if not isinstance(event.event_time, datetime):
            return _refused(f"eventTime is {_quote(event.event_time)}, not a time")
        if event.event_time.utcoffset() is None:
            return _refused(f"eventTime {event.event_time.isoformat()} has no time zone")
    data: Mapping[Any, Any] = event.data
    operation = data.get("operationName")
    status = data.get("status")
    claimed = data.get("subscriptionId")
    for name, value in (
        ("operationName", operation),
        ("status", status),
        ("subscriptionId", claimed),
    ):
        if value is not None and not isinstance(value, str):
            return _refused(f"data.{name} is {_kind(value)}, not a string")

    caller = caller_of(data)
    if own_principal and caller == own_principal.lower():
        return _skipped(OWN_WRITE, {"ownWrites": 1})

    # What the subscription's filter should have kept away: counted by type, one row.
    if event.event_type != WRITE_SUCCESS:
        return _skipped(
            f"event type {_quote(event.event_type)} is not {WRITE_SUCCESS}",
            {"unhandled": {event.event_type[:_QUOTED]: 1}},
        )
    if (operation or "").lower() != VM_WRITE.lower():
        return _skipped(
            f"operation {_quote(operation or '')} is not {VM_WRITE}",
            {"unhandled": {f"{event.event_type} {operation or '(none)'}"[:_QUOTED]: 1}},
        )
    if status is not None and status.lower() != "succeeded":
        return _skipped(
            f"operation status is {_quote(status)}, not Succeeded",
            {"unhandled": {f"{event.event_type} {VM_WRITE} {status}"[:_QUOTED]: 1}},
        )

    vm = parse_vm_id(event.subject)
    if vm is None:
        return _refused(f"subject {_quote(event.subject)} is not a VM id")
    said = (claimed or vm.subscription_id).lower()
    if said != vm.subscription_id:
        return _refused(
            f"data.subscriptionId {_quote(said)} does not match the subject's {vm.subscription_id}",
            vm,
        )
    if vm.subscription_id not in subscriptions:
        return Decision(
            False,
            f"subscription {_quote(vm.subscription_id)} is not a target subscription",
            vm,
            Status.SKIPPED,
        )
    return Decision(True, "VM write in a target subscription", vm)


def receive_vm_event(rt: Runtime, event: VmEvent) -> Decision:
    """Decide; an accepted VM becomes an onboarding message, anything else one `vm-event` row.

    Never raises on the event's content; a failure to send the message propagates.
    """
    own = rt.settings.lifeboat_principal_id
    decision = decide(event, rt.settings.subscriptions, str(own) if own is not None else None)
    usable_id = isinstance(event.id, str) and 0 < len(event.id) <= MAX_EVENT_ID
    name = str(event.id) if usable_id else f"sha256-{_fingerprint(event)}"
    run_id = f"event-{name}"
    outgoing: Outgoing | None = None
    if decision.accepted and decision.vm is not None:
        outgoing, problem = _onboarding(rt, run_id, name, event, decision.vm)
        if outgoing is None:
            decision = _refused(f"the onboarding message cannot be built: {problem}", decision.vm)
    final = decision
    dispatch.start(
        rt,
        Job.ONBOARDING,
        run_id,
        f"vm-event:{name}",
        lambda ctx: _apply(ctx, event, final, outgoing),
    )
    return decision


def _apply(ctx: Context, event: VmEvent, decision: Decision, outgoing: Outgoing | None) -> Result:
    if outgoing is not None:
        return Send(outgoing)
    if decision.status is not None:
        subject = event.subject if isinstance(event.subject, str) else ""
        out = ctx.out.bind(resource_id=subject[:MAX_SUBJECT] or None)
        vm = decision.vm
        if vm is not None:
            out = out.bind(
                subscription_id=vm.subscription_id,
                resource_group=vm.resource_group[:MAX_SUBJECT],
                resource_id=vm.id[:MAX_SUBJECT],
                vm_name=vm.name[:MAX_SUBJECT],
            )
        details: dict[str, Any] = {
            "eventId": _kept(event.id),
            "eventType": _kept(event.event_type),
            "schema": event.schema,
            **(decision.counts or {}),
        }
        if decision.status == Status.REFUSED:
            details["excerpt"] = excerpt(event)
        out.row(
            "vm-event",
            decision.status,
            decision.reason[:MAX_REASON],
            count=1 if decision.counts else None,
            details=details,
        )
    return Done(decision.reason)


def excerpt(event: VmEvent) -> str:
    """The event as delivered, as JSON, cut to MAX_EXCERPT characters: what a person reads to see
    why it could not be read."""
    fields = {
        "id": event.id,
        "type" if event.cloud_event else "eventType": event.event_type,
        "subject": event.subject,
        "time" if event.cloud_event else "eventTime": event.event_time,
        "data": event.data,
    }
    try:
        text = json.dumps(fields, default=repr, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(fields)
    return text[:MAX_EXCERPT]


def _onboarding(
    rt: Runtime, run_id: str, event_id: str, event: VmEvent, vm: VmRef
) -> tuple[Outgoing | None, str]:
    """The onboarding message, checked against its schema, envelope and queue before sending."""
    data = event.data if isinstance(event.data, Mapping) else {}
    correlation = data.get("correlationId")
    key = f"onboarding:{vm.id.lower()}:{event_id}"
    try:
        request = OnboardingRequest(
            resourceId=vm.id,
            subscriptionId=vm.subscription_id,
            resourceGroup=vm.resource_group,
            vmName=vm.name,
            eventId=event_id,
            eventTime=event.event_time if isinstance(event.event_time, datetime) else None,
            # Informational only: kept when it is a plain, short string.
            correlationId=correlation
            if isinstance(correlation, str) and 0 < len(correlation) <= MAX_CORRELATION_ID
            else None,
        )
        envelope = messages.make_envelope(
            request, run_id=run_id, idempotency_key=key, created=rt.clock.now()
        )
        messages.encode(envelope, rt.settings.signing_keys)
    except ValueError as e:  # a schema's ValidationError, MessageTooLargeError
        return None, f"{type(e).__name__}: {e}"[:MAX_REASON]
    return Outgoing(request, key=key), ""


def _kept(value: object) -> str | None:
    """A field of the event for a row's details: a bounded string."""
    if value is None:
        return None
    if isinstance(value, str):
        return value[:MAX_SUBJECT]
    return _quote(value)


def _fingerprint(event: VmEvent) -> str:
    """A stable name for an event without a usable id: the same event gives the same rows."""
    fields = [event.id, event.event_type, event.subject, event.event_time, event.data]
    if event.cloud_event:
        fields.append(CLOUD_EVENTS_SCHEMA)
    try:
        text = json.dumps(fields, sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):
        text = repr(fields)
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def describe(event: VmEvent, decision: Decision) -> str:
    """One bounded log line: `vm event ID accepted|skipped|refused: SUBJECT (REASON)`."""
    verdict = (
        "accepted"
        if decision.accepted
        else "refused"
        if decision.status == Status.REFUSED
        else "skipped"
    )
    shown_id = event.id if isinstance(event.id, str) else _quote(event.id)
    subject = event.subject if isinstance(event.subject, str) else _quote(event.subject)
    return (
        f"vm event {shown_id[:_QUOTED]} {verdict}: {subject[:_QUOTED]} "
        f"({decision.reason[:MAX_REASON]})"
    )
