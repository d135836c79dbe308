"""The queue message envelope and the payload schemas it may carry.

Every message on every Lifeboat queue is one JSON envelope, base64 on the wire:
`{type, version, id, runId, idempotencyKey, created, payload}`. Payloads are validated against
the schema registered for `(type, version)`; anything else can never succeed and is poisoned
with its reason by the worker.
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
import zlib
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from shared.names import MessageType
from shared.signing import SignatureError, SigningKeys

# Storage queues limit a message to 64 KiB of encoded text; Lifeboat's messages are base64.
MAX_ENCODED_BYTES = 64 * 1024
# A deflated payload (see `encode`) may inflate to at most this: a forged one cannot bomb memory.
MAX_PAYLOAD_BYTES = 1024 * 1024
PACKED_FIELD = "payloadZ"


class PoisonMessageError(ValueError):
    """A message that can never succeed: bad JSON, unknown type or version, schema failure."""

    def __init__(self, reason: str, *, message_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_type = message_type


class MessageTooLargeError(ValueError):
    """A producer tried to send more than a queue message can hold."""


def _real_slot(value: str) -> str:
    try:
        datetime.strptime(value, "%Y%m%d%H%M")
    except ValueError:
        raise ValueError(f"{value!r} is not a real time (yyyymmddHHMM)") from None
    return value


def _arm_id(value: str) -> str:
    parts = value.strip("/").split("/")
    if (
        not value.startswith("/")
        or len(parts) < 8
        or parts[0].lower() != "subscriptions"
        or parts[2].lower() != "resourcegroups"
        or parts[4].lower() != "providers"
        or not all(parts)
    ):
        raise ValueError("not an ARM resource id (/subscriptions/…/resourceGroups/…/providers/…)")
    return value


def _subscription(value: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value):
        raise ValueError("not a subscription id (a GUID)")
    return value


# Bounded field types: a message that breaks them can never succeed and is refused.
Slot = Annotated[str, Field(pattern=r"^\d{12}$"), AfterValidator(_real_slot)]
ArmId = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_arm_id)]
SubscriptionId = Annotated[str, AfterValidator(_subscription)]
Name = Annotated[str, Field(min_length=1, max_length=260)]  # names, groups, policies, regions
Token = Annotated[str, Field(min_length=1, max_length=128)]  # ids Azure or Lifeboat made up
Ref = Annotated[str, Field(min_length=1, max_length=1024)]  # what names a resource, as Azure did
Time = AwareDatetime  # a time without a zone is not a time Lifeboat can compare


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    type: str = Field(min_length=1, max_length=64)
    version: int = Field(ge=1)
    id: str = Field(min_length=1, max_length=64)
    run_id: str = Field(alias="runId", min_length=1, max_length=128)
    idempotency_key: str = Field(alias="idempotencyKey", min_length=1, max_length=512)
    created: Time
    payload: dict[str, Any]
    # How many times dispatch has put this work back on its queue (throttling, headroom).
    put_backs: int = Field(default=0, alias="putBacks", ge=0, le=1_000_000)
    # HMAC over the rest (shared/signing.py); checked before the envelope is even parsed.
    signature: str | None = Field(default=None, alias="sig", max_length=200)
    # Only in transit: a payload too large for a queue message as plain JSON travels deflated
    # and base64-encoded here (`encode`), and `decode` restores `payload` from it.
    packed: str | None = Field(default=None, alias="payloadZ", max_length=MAX_ENCODED_BYTES)


class Payload(BaseModel):
    """Base for payload schemas: camelCase on the wire, frozen, no unknown fields.

    Each schema names its message `TYPE` and `VERSION`; a change to a schema bumps its version,
    and `UPGRADES` turns messages of the previous version still in flight into the new one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    TYPE: ClassVar[MessageType]
    VERSION: ClassVar[int] = 1


class OnboardingRequest(Payload):
    """A VM was written (created or updated): look at it and onboard it if it is new to Lifeboat."""

    TYPE = MessageType.ONBOARDING

    resource_id: ArmId = Field(alias="resourceId")
    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    resource_group: Name = Field(alias="resourceGroup")
    vm_name: Name = Field(alias="vmName")
    event_id: Token = Field(alias="eventId")
    event_time: Time | None = Field(default=None, alias="eventTime")
    correlation_id: Token | None = Field(default=None, alias="correlationId")


class RotationPlanRequest(Payload):
    """Plan tonight's rotation for one subscription (one message per subscription per slot)."""

    TYPE = MessageType.ROTATION_PLAN

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    slot: Slot


class RotationConfirmRequest(Payload):
    """After the create window: confirm tonight's snapshots and enqueue the prunes."""

    TYPE = MessageType.ROTATION_CONFIRM

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    slot: Slot


class DiskSnapshot(Payload):
    disk_id: ArmId = Field(alias="diskId")
    unique_id: Token = Field(alias="uniqueId")
    location: Name
    snapshot_name: str = Field(alias="snapshotName", pattern=r"^lb-[a-z2-7]{16}-\d{12}$")
    lun: int | None = None


class VmSnapshotSet(Payload):
    """One VM's snapshot set: what the messages that take it and confirm it both carry."""

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    vm_id: ArmId = Field(alias="vmId")
    vm_name: Name = Field(alias="vmName")
    resource_group: Name = Field(alias="resourceGroup")
    policy: Name
    slot: Slot
    set_id: Token = Field(alias="setId")
    disks: list[DiskSnapshot] = Field(min_length=1, max_length=64)
    onboarding: bool = False


class RotationVmRequest(VmSnapshotSet):
    """Snapshot one VM's disks, back to back, under one slot and one set."""

    TYPE = MessageType.ROTATION_VM
    VERSION = 2

    # Whether an earlier delivery may have created some of these already (read each first).
    recheck: bool = False


# Snapshot ids one prune message may name, over all its disks (a disk's prunes are sent in such
# chunks: shared/planning.py's PRUNES_PER_MESSAGE); with the longest names Azure allows, the
# largest prune message fits a queue message (tests/test_messages.py builds it).
MAX_PRUNES_PER_MESSAGE = 100
_ONE_DISK_FIELDS = ("sourceId", "source_id", "snapshotIds", "snapshot_ids", "policy", "orphan")


class PruneDisk(Payload):
    """One disk's (or one orphaned source's) victims in a prune message."""

    source_id: ArmId = Field(alias="sourceId")
    policy: Name | None = None
    snapshot_ids: list[ArmId] = Field(
        alias="snapshotIds", min_length=1, max_length=MAX_PRUNES_PER_MESSAGE
    )
    orphan: bool = False


class RotationPruneRequest(Payload):
    """Delete what retention removed from one or more disks of one subscription (and region).

    Version 3 carries several disks, so a full-size night sends a queue of hundreds of prune
    messages rather than one per disk. One disk's prunes may still be written in version 2's
    single-disk form (`sourceId`, `snapshotIds`, `policy`, `orphan` beside `slot`): it reads as
    a `disks` of one, and is how version 2 messages in flight decode.
    """

    TYPE = MessageType.ROTATION_PRUNE
    VERSION = 3

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    slot: Slot
    disks: list[PruneDisk] = Field(min_length=1, max_length=MAX_PRUNES_PER_MESSAGE)
    # Whether an earlier delivery may have deleted some of these already (read each first).
    recheck: bool = False

    @model_validator(mode="before")
    @classmethod
    def _one_disk(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in _ONE_DISK_FIELDS):
            return data
        if "disks" in data:
            raise ValueError("either disks or one disk's sourceId and snapshotIds, not both")
        one = {k: v for k, v in data.items() if k in _ONE_DISK_FIELDS}
        rest = {k: v for k, v in data.items() if k not in _ONE_DISK_FIELDS}
        return {**rest, "disks": [one]}

    @model_validator(mode="after")
    def _bounded(self) -> RotationPruneRequest:
        named = sum(len(d.snapshot_ids) for d in self.disks)
        if named > MAX_PRUNES_PER_MESSAGE:
            raise ValueError(
                f"names {named} snapshots; a prune message names at most {MAX_PRUNES_PER_MESSAGE}"
            )
        return self

    @property
    def snapshot_ids(self) -> list[str]:
        """Every victim the message names, disk by disk."""
        return [i for d in self.disks for i in d.snapshot_ids]


class OutcomesRetryRequest(Payload):
    """Outcome records Azure Monitor did not take: send them again (the ledger loses nothing)."""

    TYPE = MessageType.OUTCOMES_RETRY
    VERSION = 2

    records: list[dict[str, Any]] = Field(min_length=1, max_length=5000)


class VerificationPlanRequest(Payload):
    """Verify one subscription's Azure Backup: find its vaults and in-scope VMs, fan out."""

    TYPE = MessageType.VERIFICATION_PLAN
    VERSION = 2

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    slot: Slot


class VerificationVaultRequest(Payload):
    """Verify one vault: one protected-items list, one job list, findings per in-scope VM.

    `vms` holds the in-scope VMs of the vault's subscription and region, packed to fit a queue
    message: `{"policy|rpoHours": {"resourceGroup": ["vm", ...]}}`. The designated vault of a
    region also lists its `peers` (the region's other vaults) and confirms and reports the
    region's unprotected VMs.
    """

    TYPE = MessageType.VERIFICATION_VAULT
    VERSION = 2

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    vault_id: ArmId = Field(alias="vaultId")
    vault_name: Name = Field(alias="vaultName")
    resource_group: Name = Field(alias="resourceGroup")
    location: Name
    slot: Slot
    designated: bool = False
    peers: list[ArmId] = Field(default_factory=list, max_length=500)
    vms: dict[Name, dict[Name, list[Name]]] = Field(default_factory=dict, max_length=1000)


class FirstBackupCheckRequest(Payload):
    """N hours after protection was enabled for a new VM: does its first recovery point exist?"""

    TYPE = MessageType.VERIFICATION_FIRST_BACKUP

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    vm_id: ArmId = Field(alias="vmId")
    vault_id: ArmId = Field(alias="vaultId")
    location: Name
    policy: Name
    rpo_hours: float = Field(alias="rpoHours", gt=0, le=24 * 366)
    enabled_at: Time = Field(alias="enabledAt")


DrillStep = Literal[
    "prepare",
    "restore",  # a recovery-point drill: Azure Backup restores the disks into the drill group
    "failover",  # a site-recovery drill: the plan's test failover, followed to its job's end
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

    TYPE = MessageType.DRILL_PLAN

    subscription_id: SubscriptionId = Field(alias="subscriptionId")
    slot: Slot


class DrillSnapshot(Payload):
    """One disk of the snapshot set a drill restores."""

    disk_id: ArmId = Field(alias="diskId")
    snapshot_id: ArmId = Field(alias="snapshotId")
    lun: int | None = Field(default=None, ge=0, le=63)
    time_created: Time = Field(alias="timeCreated")
    sku: Token | None = None


class DrillRestore(Payload):
    """A recovery-point drill: how its point is chosen, the point, and Azure Backup's restore."""

    # The drill plan's choice: the newest point, or one drawn by the drill id within the window;
    # or (a manual drill) the point the operator named.
    choose: Literal["latest", "random", "named"] = "latest"
    window_days: int = Field(default=30, alias="windowDays", ge=1, le=3650)
    app_consistent_only: bool = Field(default=False, alias="appConsistentOnly")
    tier: Literal["snapshot", "vault"] | None = None
    restore_timeout_seconds: int = Field(
        default=2 * 3600, alias="restoreTimeoutSeconds", gt=0, le=72 * 3600
    )
    rpo_target_seconds: int | None = Field(default=None, alias="rpoTargetSeconds", gt=0)
    # The point chosen (or named) and why.
    point_id: Ref | None = Field(default=None, alias="pointId")
    point_time: Time | None = Field(default=None, alias="pointTime")
    point_type: Token | None = Field(default=None, alias="pointType")
    point_tiers: list[Token] = Field(default_factory=list, alias="pointTiers", max_length=4)
    why: str | None = Field(default=None, max_length=500)
    item_id: Ref | None = Field(default=None, alias="itemId")
    vault_id: ArmId | None = Field(default=None, alias="vaultId")
    staging_account_id: ArmId | None = Field(default=None, alias="stagingAccountId")
    # Azure Backup's restore: the operation the trigger named, then its job.
    operation_id: Token | None = Field(default=None, alias="operationId")
    triggered_at: Time | None = Field(default=None, alias="triggeredAt")
    job_id: Token | None = Field(default=None, alias="jobId")
    job_status: Token | None = Field(default=None, alias="jobStatus")
    job_started: Time | None = Field(default=None, alias="jobStarted")
    job_ended: Time | None = Field(default=None, alias="jobEnded")
    job_error: str | None = Field(default=None, alias="jobError", max_length=500)
    # What the job left outside the drill group (no Lifeboat tag can reach it): its config blob.
    staging_blobs: list[Ref] = Field(default_factory=list, alias="stagingBlobs", max_length=4)


class DrillFailoverVm(Payload):
    """One VM of a site-recovery drill: its item, its test VM, its boot group, what it showed."""

    name: str = Field(min_length=1, max_length=80)  # the source VM's name
    item: Token  # the replicated item's name
    group_id: str = Field(alias="groupId", min_length=1, max_length=300)  # the test VM's group
    test_vm: str = Field(alias="testVm", min_length=1, max_length=80)
    boot_group: int = Field(alias="bootGroup", ge=0, le=63)
    disks: int = Field(default=0, ge=0, le=65)
    ready_at: Time | None = Field(default=None, alias="readyAt")
    validation: str | None = Field(default=None, max_length=200)


# A site-recovery drill carries at most this many VMs (a message fits 64 KiB by construction).
FAILOVER_MAX_VMS = 50


class DrillFailover(Payload):
    """A site-recovery drill: the recovery plan, its test failover's job, its cleanup."""

    plan_id: ArmId = Field(alias="planId")
    plan_name: Name = Field(alias="planName")
    network_id: Ref | None = Field(default=None, alias="networkId")
    recovery_point_type: Literal["LatestProcessed", "LatestApplicationConsistent"] = Field(
        default="LatestProcessed", alias="recoveryPointType"
    )
    multi_vm_sync: bool = Field(default=False, alias="multiVmSync")
    vms: list[DrillFailoverVm] = Field(default_factory=list, max_length=FAILOVER_MAX_VMS)
    triggered_at: Time | None = Field(default=None, alias="triggeredAt")
    job_id: Token | None = Field(default=None, alias="jobId")
    job_state: Token | None = Field(default=None, alias="jobState")
    job_error: str | None = Field(default=None, alias="jobError", max_length=500)
    job_ended: Time | None = Field(default=None, alias="jobEnded")
    group_rto_seconds: list[int | None] = Field(
        default_factory=list, alias="groupRtoSeconds", max_length=64
    )
    cleanup_jobs: list[Token] = Field(default_factory=list, alias="cleanupJobs", max_length=8)
    cleanup_attempts: int = Field(default=0, alias="cleanupAttempts", ge=0, le=8)
    cleanup_triggered_at: Time | None = Field(default=None, alias="cleanupTriggeredAt")
    cleanup_status: Token | None = Field(default=None, alias="cleanupStatus")
    cleanup_error: str | None = Field(default=None, alias="cleanupError", max_length=500)


class DrillState(Payload):
    """A drill in flight: every step's message carries all of it (functions are stateless)."""

    TYPE = MessageType.DRILL_STEP
    VERSION = 2  # 2: `source` and `restore` (recovery-point drills)

    drill_id: str = Field(alias="drillId", pattern=r"^lbd-[a-z2-7]{10}$")
    step: DrillStep
    started_at: Time = Field(alias="startedAt")
    expires_at: Time = Field(alias="expiresAt")
    drill_subscription: SubscriptionId = Field(alias="drillSubscription")
    drill_group: str = Field(alias="drillGroup", min_length=1, max_length=90)
    location: str = Field(min_length=1, max_length=64)
    # The source VM and the plan; a drill the sweeper found has only what the tags said.
    vm_id: ArmId | None = Field(default=None, alias="vmId")
    vm_name: Name | None = Field(default=None, alias="vmName")
    subscription_id: SubscriptionId | None = Field(default=None, alias="subscriptionId")
    plan: Name | None = None
    rto_target_seconds: int | None = Field(default=None, alias="rtoTargetSeconds", gt=0)
    boot_timeout_seconds: int | None = Field(default=None, alias="bootTimeoutSeconds", gt=0)
    vm_size: Token | None = Field(default=None, alias="vmSize")
    os_type: Token | None = Field(default=None, alias="osType")
    security_profile: dict[str, Any] | None = Field(default=None, alias="securityProfile")
    hyper_v_generation: Token | None = Field(default=None, alias="hyperVGeneration")
    marketplace_plan: dict[str, str] | None = Field(default=None, alias="marketplacePlan")
    run_id: str | None = Field(default=None, alias="runId", max_length=64)
    # What the steps found and did.
    set_slot: Slot | None = Field(default=None, alias="setSlot")
    chosen_at: Time | None = Field(default=None, alias="chosenAt")  # when the set was chosen
    # The OS disk and up to 64 data disks (the most any VM size attaches).
    snapshots: list[DrillSnapshot] = Field(default_factory=list, max_length=65)
    missing_disks: list[Ref] = Field(default_factory=list, alias="missingDisks", max_length=64)
    subnet_id: str | None = Field(default=None, alias="subnetId", max_length=1024)
    network_created: bool = Field(default=False, alias="networkCreated")
    policy_assignments: list[Ref] = Field(
        default_factory=list, alias="policyAssignments", max_length=200
    )
    timings: dict[str, list[Time]] = Field(default_factory=dict, max_length=16)
    ready_at: Time | None = Field(default=None, alias="readyAt")
    checks: dict[str, bool] = Field(default_factory=dict, max_length=32)
    outcome: Literal["succeeded", "failed", "skipped"] | None = None
    reason: str | None = Field(default=None, max_length=2000)
    rto_seconds: int | None = Field(default=None, alias="rtoSeconds")
    rpo_seconds: int | None = Field(default=None, alias="rpoSeconds")
    spread_seconds: int | None = Field(default=None, alias="spreadSeconds")
    deleted: list[Ref] = Field(default_factory=list, max_length=64)
    seen: list[Ref] = Field(default_factory=list, max_length=80)  # resources this run saw exist
    polls: int = Field(default=0, ge=0)
    manual: bool = False
    swept: bool = False
    # What the drill restores from: Lifeboat's snapshot sets, or an Azure Backup recovery point.
    source: Literal["snapshots", "recovery-point", "site-recovery"] = "snapshots"
    restore: DrillRestore | None = None
    failover: DrillFailover | None = None  # a site-recovery drill (shared/drills/failover.py)


class RotationConfirmVmRequest(VmSnapshotSet):
    """After the create window: confirm one VM's snapshot set (an onboarding set), one GET each."""

    TYPE = MessageType.ROTATION_CONFIRM_VM


PAYLOADS: tuple[type[Payload], ...] = (
    OnboardingRequest,
    RotationPlanRequest,
    RotationConfirmRequest,
    RotationConfirmVmRequest,
    RotationVmRequest,
    RotationPruneRequest,
    OutcomesRetryRequest,
    VerificationPlanRequest,
    VerificationVaultRequest,
    FirstBackupCheckRequest,
    DrillPlanRequest,
    DrillState,
)

# (type, version) -> schema: derived from the classes. The only way a message string selects code.
PAYLOAD_SCHEMAS: dict[tuple[str, int], type[Payload]] = {(p.TYPE, p.VERSION): p for p in PAYLOADS}


def _v1_attempt(payload: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Version 1 counted put-backs in the payload's `attempt`; version 2 in the envelope."""
    upgraded = dict(payload)
    attempt = upgraded.pop("attempt", 1)
    return upgraded, (attempt - 1 if isinstance(attempt, int) and attempt > 1 else 0)


def _v1_rotation(payload: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """As `_v1_attempt`; a v1 message without `recheck` read first on any later attempt."""
    upgraded, put_backs = _v1_attempt(payload)
    if upgraded.get("recheck") is None:
        upgraded["recheck"] = put_backs > 0
    return upgraded, put_backs


Upgrade = Callable[[dict[str, Any]], tuple[dict[str, Any], int]]

# (type, old version) -> how a message of that version becomes the current one (payload, and
# put-backs to add to the envelope's count). Messages in flight across a deployment still decode.
UPGRADES: dict[tuple[str, int], Upgrade] = {
    (MessageType.ROTATION_VM, 1): _v1_rotation,
    (MessageType.ROTATION_PRUNE, 1): _v1_rotation,  # single-disk form: read as one disk
    (MessageType.ROTATION_PRUNE, 2): lambda payload: (dict(payload), 0),
    (MessageType.OUTCOMES_RETRY, 1): _v1_attempt,
    (MessageType.VERIFICATION_PLAN, 1): _v1_attempt,
    (MessageType.VERIFICATION_VAULT, 1): _v1_attempt,
    (MessageType.DRILL_STEP, 1): lambda payload: (dict(payload), 0),  # v2 only adds fields
}


def make_envelope(
    payload: Payload,
    *,
    run_id: str,
    idempotency_key: str,
    created: datetime,
    put_backs: int = 0,
) -> Envelope:
    return Envelope(
        type=payload.TYPE.value,
        version=payload.VERSION,
        id=str(uuid.uuid4()),
        runId=run_id,
        idempotencyKey=idempotency_key,
        created=created,
        payload=payload.model_dump(mode="json", by_alias=True, exclude_none=True),
        putBacks=put_backs,
    )


def encoded_size(text: str) -> int:
    """Bytes the text takes on the queue once base64-encoded."""
    return 4 * math.ceil(len(text.encode("utf-8")) / 3)


def encode(envelope: Envelope, keys: SigningKeys | None = None) -> str:
    """The envelope as JSON text, signed with `keys` when given.

    Work is split so that messages fit (a region's VMs over several vault messages); what cannot
    be split (a drill of a VM with 64 data disks and long names carries ~600 bytes of ids per
    disk) travels deflated instead, and ARM ids deflate about ten to one. Raises
    MessageTooLargeError if even that is past the queue's limit: never an oversized send.
    """
    text = _signed_text(envelope, keys)
    if encoded_size(text) > MAX_ENCODED_BYTES:
        plain = json.dumps(envelope.payload, separators=(",", ":"), ensure_ascii=False)
        deflated = base64.b64encode(zlib.compress(plain.encode("utf-8"), 9)).decode("ascii")
        text = _signed_text(envelope.model_copy(update={"payload": {}, "packed": deflated}), keys)
    size = encoded_size(text)
    if size > MAX_ENCODED_BYTES:
        raise MessageTooLargeError(
            f"{envelope.type} message {envelope.id} is {size} bytes base64-encoded; "
            f"a queue message holds at most {MAX_ENCODED_BYTES}"
        )
    return text


def _signed_text(envelope: Envelope, keys: SigningKeys | None) -> str:
    dropped = {"signature"} if envelope.packed else {"signature", "packed"}
    text = envelope.model_dump_json(by_alias=True, exclude=dropped)
    return keys.sign(text) if keys is not None else text


def _unpacked(raw: dict[str, Any]) -> dict[str, Any]:
    """The envelope with a deflated payload restored, inflating at most MAX_PAYLOAD_BYTES."""
    packed = raw.pop(PACKED_FIELD)
    if not isinstance(packed, str) or raw.get("payload") not in (None, {}):
        raise PoisonMessageError(f"{PACKED_FIELD} must be a string and payload empty")
    try:
        inflater = zlib.decompressobj()
        plain = inflater.decompress(base64.b64decode(packed, validate=True), MAX_PAYLOAD_BYTES)
        if inflater.unconsumed_tail:
            raise PoisonMessageError(f"{PACKED_FIELD} inflates past {MAX_PAYLOAD_BYTES} bytes")
        payload = json.loads(plain)
    except (ValueError, zlib.error) as e:
        raise PoisonMessageError(f"{PACKED_FIELD} is not deflated JSON: {e}") from None
    if not isinstance(payload, dict):
        raise PoisonMessageError(f"{PACKED_FIELD} is not a JSON object")
    return {**raw, "payload": payload}


def decode(
    text: str,
    *,
    queue: str | None = None,
    allowed: Collection[str] | None = None,
    keys: SigningKeys | None = None,
) -> tuple[Envelope, Payload]:
    """Parse and validate a message; raises PoisonMessageError with the reason if it never can.

    With `keys`, a message not signed with one of them is refused before anything else is
    looked at; with `allowed`, a message of another type before its payload is.
    """
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PoisonMessageError(f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise PoisonMessageError(f"not a message envelope: a JSON {type(raw).__name__}")
    message_type = raw.get("type") if isinstance(raw.get("type"), str) else None
    if keys is not None:
        try:
            keys.verify(raw)
        except SignatureError as e:
            raise PoisonMessageError(str(e), message_type=message_type) from None
    if PACKED_FIELD in raw:
        raw = _unpacked(raw)
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
    upgrade = UPGRADES.get((envelope.type, envelope.version))
    if upgrade is not None:
        body, more = upgrade(envelope.payload)
        current = next(p for p in PAYLOADS if envelope.type == p.TYPE)
        envelope = envelope.model_copy(
            update={
                "version": current.VERSION,
                "payload": body,
                "put_backs": envelope.put_backs + more,
            }
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


def _summarise(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
