"""The queue message envelope and the payload schemas it may carry.

Every message on every Lifeboat queue is one JSON envelope, base64 on the wire:
`{type, version, id, runId, idempotencyKey, created, payload}`. Payloads are validated against
the schema registered for `(type, version)`; anything else can never succeed and is poisoned
with its reason by the worker.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Storage queues limit a message to 64 KiB of encoded text; Lifeboat's messages are base64.
MAX_ENCODED_BYTES = 64 * 1024


class PoisonMessageError(ValueError):
    """A message that can never succeed: bad JSON, unknown type or version, schema failure."""

    def __init__(self, reason: str, *, message_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_type = message_type


class MessageTooLargeError(ValueError):
    """A producer tried to send more than a queue message can hold."""


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)
    id: str = Field(min_length=1, max_length=64)
    run_id: str = Field(alias="runId", min_length=1, max_length=128)
    idempotency_key: str = Field(alias="idempotencyKey", min_length=1, max_length=512)
    created: datetime
    payload: dict[str, Any]


class Payload(BaseModel):
    """Base for payload schemas: camelCase on the wire, frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class OnboardingRequest(Payload):
    """A VM was written (created or updated): look at it and onboard it if it is new to Lifeboat."""

    resource_id: str = Field(alias="resourceId", min_length=1, max_length=1024)
    subscription_id: str = Field(alias="subscriptionId")
    resource_group: str = Field(alias="resourceGroup")
    vm_name: str = Field(alias="vmName")
    event_id: str = Field(alias="eventId")
    event_time: datetime | None = Field(default=None, alias="eventTime")
    correlation_id: str | None = Field(default=None, alias="correlationId")


class RotationPlanRequest(Payload):
    """Plan tonight's rotation for one subscription (one message per subscription per slot)."""

    subscription_id: str = Field(alias="subscriptionId")
    slot: str = Field(pattern=r"^\d{12}$")


class RotationConfirmRequest(Payload):
    """After the create window: confirm tonight's snapshots and enqueue the prunes."""

    subscription_id: str = Field(alias="subscriptionId")
    slot: str = Field(pattern=r"^\d{12}$")


class DiskSnapshot(Payload):
    disk_id: str = Field(alias="diskId")
    unique_id: str = Field(alias="uniqueId")
    location: str
    snapshot_name: str = Field(alias="snapshotName", pattern=r"^lb-[a-z2-7]{16}-\d{12}$")
    lun: int | None = None


class RotationVmRequest(Payload):
    """Snapshot one VM's disks, back to back, under one slot and one set."""

    subscription_id: str = Field(alias="subscriptionId")
    vm_id: str = Field(alias="vmId")
    vm_name: str = Field(alias="vmName")
    resource_group: str = Field(alias="resourceGroup")
    policy: str
    slot: str = Field(pattern=r"^\d{12}$")
    set_id: str = Field(alias="setId")
    disks: list[DiskSnapshot] = Field(min_length=1, max_length=64)
    attempt: int = Field(default=1, ge=1)
    onboarding: bool = False
    # Whether an earlier delivery may have created some of these already (read each first).
    # None in messages from before the field: then any attempt after the first reads.
    recheck: bool | None = None


class RotationPruneRequest(Payload):
    """Delete what retention removed from one disk (or one orphaned source)."""

    subscription_id: str = Field(alias="subscriptionId")
    source_id: str = Field(alias="sourceId")
    policy: str | None = None
    slot: str = Field(pattern=r"^\d{12}$")
    snapshot_ids: list[str] = Field(alias="snapshotIds", min_length=1, max_length=100)
    orphan: bool = False
    attempt: int = Field(default=1, ge=1)
    # Whether an earlier delivery may have deleted some of these already (read each first).
    # None in messages from before the field: then any attempt after the first reads.
    recheck: bool | None = None


class OutcomesRetryRequest(Payload):
    """Outcome records Azure Monitor did not take: send them again (the ledger loses nothing)."""

    records: list[dict[str, Any]] = Field(min_length=1, max_length=5000)
    attempt: int = Field(default=1, ge=1)


class VerificationPlanRequest(Payload):
    """Verify one subscription's Azure Backup: find its vaults and in-scope VMs, fan out."""

    subscription_id: str = Field(alias="subscriptionId")
    slot: str = Field(pattern=r"^\d{12}$")
    attempt: int = Field(default=1, ge=1)


class VerificationVaultRequest(Payload):
    """Verify one vault: one protected-items list, one job list, findings per in-scope VM.

    `vms` holds the in-scope VMs of the vault's subscription and region, packed to fit a queue
    message: `{"policy|rpoHours": {"resourceGroup": ["vm", ...]}}`. The designated vault of a
    region also lists its `peers` (the region's other vaults) and confirms and reports the
    region's unprotected VMs.
    """

    subscription_id: str = Field(alias="subscriptionId")
    vault_id: str = Field(alias="vaultId", min_length=1, max_length=1024)
    vault_name: str = Field(alias="vaultName")
    resource_group: str = Field(alias="resourceGroup")
    location: str
    slot: str = Field(pattern=r"^\d{12}$")
    designated: bool = False
    peers: list[str] = Field(default_factory=list, max_length=500)
    vms: dict[str, dict[str, list[str]]] = Field(default_factory=dict)
    attempt: int = Field(default=1, ge=1)


class FirstBackupCheckRequest(Payload):
    """N hours after protection was enabled for a new VM: does its first recovery point exist?"""

    subscription_id: str = Field(alias="subscriptionId")
    vm_id: str = Field(alias="vmId", min_length=1, max_length=1024)
    vault_id: str = Field(alias="vaultId", min_length=1, max_length=1024)
    location: str
    policy: str
    rpo_hours: float = Field(alias="rpoHours", gt=0)
    enabled_at: datetime = Field(alias="enabledAt")


DrillStep = Literal[
    "prepare",
    "create-disks",
    "create-vm",
    "wait-ready",
    "validate",
    "measure",
    "teardown",
    "report",
]


class DrillPlanRequest(Payload):
    """Start the drills due in one subscription (one message per subscription per slot)."""

    subscription_id: str = Field(alias="subscriptionId")
    slot: str = Field(pattern=r"^\d{12}$")


class DrillSnapshot(Payload):
    """One disk of the snapshot set a drill restores."""

    disk_id: str = Field(alias="diskId", max_length=1024)
    snapshot_id: str = Field(alias="snapshotId", max_length=1024)
    lun: int | None = Field(default=None, ge=0, le=63)
    time_created: datetime = Field(alias="timeCreated")
    sku: str | None = None


class DrillState(Payload):
    """A drill in flight: every step's message carries all of it (functions are stateless)."""

    drill_id: str = Field(alias="drillId", pattern=r"^lbd-[a-z2-7]{10}$")
    step: DrillStep
    started_at: datetime = Field(alias="startedAt")
    expires_at: datetime = Field(alias="expiresAt")
    drill_subscription: str = Field(alias="drillSubscription")
    drill_group: str = Field(alias="drillGroup", min_length=1, max_length=90)
    location: str = Field(min_length=1, max_length=64)
    # The source VM and the plan; a drill the sweeper found has only what the tags said.
    vm_id: str | None = Field(default=None, alias="vmId", max_length=1024)
    vm_name: str | None = Field(default=None, alias="vmName")
    subscription_id: str | None = Field(default=None, alias="subscriptionId")
    plan: str | None = None
    rto_target_seconds: int | None = Field(default=None, alias="rtoTargetSeconds", gt=0)
    boot_timeout_seconds: int | None = Field(default=None, alias="bootTimeoutSeconds", gt=0)
    vm_size: str | None = Field(default=None, alias="vmSize")
    os_type: str | None = Field(default=None, alias="osType")
    security_profile: dict[str, Any] | None = Field(default=None, alias="securityProfile")
    hyper_v_generation: str | None = Field(default=None, alias="hyperVGeneration")
    marketplace_plan: dict[str, str] | None = Field(default=None, alias="marketplacePlan")
    run_id: str | None = Field(default=None, alias="runId", max_length=64)
    # What the steps found and did.
    set_slot: str | None = Field(default=None, alias="setSlot", pattern=r"^\d{12}$")
    chosen_at: datetime | None = Field(default=None, alias="chosenAt")  # when the set was chosen
    # The OS disk and up to 64 data disks (the most any VM size attaches).
    snapshots: list[DrillSnapshot] = Field(default_factory=list, max_length=65)
    missing_disks: list[str] = Field(default_factory=list, alias="missingDisks", max_length=64)
    subnet_id: str | None = Field(default=None, alias="subnetId", max_length=1024)
    network_created: bool = Field(default=False, alias="networkCreated")
    policy_assignments: list[str] = Field(
        default_factory=list, alias="policyAssignments", max_length=200
    )
    timings: dict[str, list[datetime]] = Field(default_factory=dict, max_length=16)
    ready_at: datetime | None = Field(default=None, alias="readyAt")
    checks: dict[str, bool] = Field(default_factory=dict, max_length=32)
    outcome: Literal["succeeded", "failed", "skipped"] | None = None
    reason: str | None = Field(default=None, max_length=2000)
    rto_seconds: int | None = Field(default=None, alias="rtoSeconds")
    rpo_seconds: int | None = Field(default=None, alias="rpoSeconds")
    spread_seconds: int | None = Field(default=None, alias="spreadSeconds")
    deleted: list[str] = Field(default_factory=list, max_length=64)
    seen: list[str] = Field(default_factory=list, max_length=80)  # resources this run saw exist
    polls: int = Field(default=0, ge=0)
    manual: bool = False
    swept: bool = False


# (type, version) -> schema. The only way a message string selects code.
PAYLOAD_SCHEMAS: dict[tuple[str, int], type[Payload]] = {
    ("onboarding", 1): OnboardingRequest,
    ("rotation-plan", 1): RotationPlanRequest,
    ("rotation-confirm", 1): RotationConfirmRequest,
    ("rotation-vm", 1): RotationVmRequest,
    ("rotation-prune", 1): RotationPruneRequest,
    ("outcomes-retry", 1): OutcomesRetryRequest,
    ("verification-plan", 1): VerificationPlanRequest,
    ("verification-vault", 1): VerificationVaultRequest,
    ("verification-first-backup", 1): FirstBackupCheckRequest,
    ("drill-plan", 1): DrillPlanRequest,
    ("drill-step", 1): DrillState,
}

P = TypeVar("P", bound=Payload)


def make_envelope(
    message_type: str,
    payload: Payload,
    *,
    run_id: str,
    idempotency_key: str,
    created: datetime,
    version: int = 1,
) -> Envelope:
    if PAYLOAD_SCHEMAS.get((message_type, version)) is not type(payload):
        raise TypeError(f"{type(payload).__name__} is not the schema of {message_type} v{version}")
    return Envelope(
        type=message_type,
        version=version,
        id=str(uuid.uuid4()),
        runId=run_id,
        idempotencyKey=idempotency_key,
        created=created,
        payload=payload.model_dump(mode="json", by_alias=True, exclude_none=True),
    )


def encoded_size(text: str) -> int:
    """Bytes the text takes on the queue once base64-encoded."""
    return 4 * math.ceil(len(text.encode("utf-8")) / 3)


def encode(envelope: Envelope) -> str:
    """The envelope as JSON text; raises MessageTooLargeError past the queue's limit."""
    text = envelope.model_dump_json(by_alias=True)
    size = encoded_size(text)
    if size > MAX_ENCODED_BYTES:
        raise MessageTooLargeError(
            f"{envelope.type} message {envelope.id} is {size} bytes base64-encoded; "
            f"a queue message holds at most {MAX_ENCODED_BYTES}"
        )
    return text


def decode(
    text: str, *, queue: str | None = None, allowed: Collection[str] | None = None
) -> tuple[Envelope, Payload]:
    """Parse and validate a message; raises PoisonMessageError with the reason if it never can.

    With `allowed`, a message of another type is refused before its payload is looked at.
    """
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PoisonMessageError(f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise PoisonMessageError(f"not a message envelope: a JSON {type(raw).__name__}")
    message_type = raw.get("type") if isinstance(raw.get("type"), str) else None
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as e:
        raise PoisonMessageError(
            f"envelope schema: {_summarise(e)}", message_type=message_type
        ) from None
    if allowed is not None and envelope.type not in allowed:
        raise PoisonMessageError(
            f"message type {envelope.type!r} does not belong on queue {queue!r}",
            message_type=envelope.type,
        )
    schema = PAYLOAD_SCHEMAS.get((envelope.type, envelope.version))
    if schema is None:
        known = sorted({t for t, _ in PAYLOAD_SCHEMAS})
        if envelope.type in known:
            reason = f"unknown version {envelope.version} of message type {envelope.type!r}"
        else:
            reason = f"unknown message type {envelope.type!r} (known: {', '.join(known)})"
        raise PoisonMessageError(reason, message_type=envelope.type)
    try:
        payload = schema.model_validate(envelope.payload)
    except ValidationError as e:
        raise PoisonMessageError(
            f"{envelope.type} v{envelope.version} payload schema: {_summarise(e)}",
            message_type=envelope.type,
        ) from None
    return envelope, payload


def expect(payload: Payload, schema: type[P]) -> P:
    if not isinstance(payload, schema):
        raise PoisonMessageError(f"expected a {schema.__name__}, got {type(payload).__name__}")
    return payload


def _summarise(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
