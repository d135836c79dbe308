from __future__ import annotations

import base64
import hashlib
import json
import random
import zlib
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import messages
from shared.messages import (
    DrillState,
    MessageTooLargeError,
    OnboardingRequest,
    OutcomesRetryRequest,
    PoisonMessageError,
    RotationPruneRequest,
    RotationVmRequest,
    make_envelope,
)
from shared.signing import SigningKeys
from tests.conftest import SUBSCRIPTION, TEST_SIGNING_KEYS

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def onboarding_request(**overrides: object) -> OnboardingRequest:
    values: dict[str, object] = {
        "resourceId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/"
        "Microsoft.Compute/virtualMachines/vm1",
        "subscriptionId": SUBSCRIPTION,
        "resourceGroup": "rg",
        "vmName": "vm1",
        "eventId": "e1",
    }
    values.update(overrides)
    return OnboardingRequest.model_validate(values)


def envelope_text(**overrides: object) -> str:
    envelope = make_envelope(onboarding_request(), run_id="run-1", idempotency_key="k", created=NOW)
    raw = json.loads(messages.encode(envelope))
    raw.update(overrides)
    # Signed as Lifeboat signs: what it says is wrong, never who wrote it.
    return SigningKeys.parse(TEST_SIGNING_KEYS).sign(json.dumps(raw))


def test_envelope_round_trips_with_every_field() -> None:
    text = envelope_text()
    raw = json.loads(text)
    assert set(raw) == {
        "type",
        "version",
        "id",
        "runId",
        "idempotencyKey",
        "created",
        "payload",
        "putBacks",
        "sig",
    }
    envelope, payload = messages.decode(text)
    assert (envelope.type, envelope.version, envelope.run_id) == ("onboarding", 1, "run-1")
    assert payload == onboarding_request()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a message envelope: a JSON list"),
        (envelope_text(type="no-such-type"), "unknown message type 'no-such-type'"),
        (envelope_text(version=7), "unknown version 7 of message type 'onboarding'"),
        (envelope_text(payload={"vmName": "x"}), "onboarding v1 payload schema"),
        (envelope_text(runId=""), "envelope schema: runId"),
        (envelope_text(extra="field"), "envelope schema: extra"),
    ],
)
def test_messages_that_can_never_succeed_name_their_reason(text: str, reason: str) -> None:
    with pytest.raises(PoisonMessageError) as caught:
        messages.decode(text)
    assert reason in caught.value.reason


def test_oversized_message_is_refused_with_a_clear_error() -> None:
    """Records that do not deflate (random text) and would not fit: never an oversized send."""
    noise = base64.b64encode(random.Random(7).randbytes(60_000)).decode()
    records = [{"note": noise[i : i + 1000]} for i in range(0, len(noise), 1000)]
    big = OutcomesRetryRequest(records=records)
    envelope = make_envelope(big, run_id="r", idempotency_key="k", created=NOW)
    with pytest.raises(
        MessageTooLargeError, match=r"base64-encoded; a queue message holds at most 65536"
    ):
        messages.encode(envelope)


# The largest names Azure allows: 90-character groups, 80-character disks, 64-character VMs.
LONG_GROUP, LONG_DISK, LONG_VM = "g" * 90, "d" * 78, "v" * 64


def _lb_name(i: int) -> str:
    """A Lifeboat snapshot name (16 base32 characters, then the slot), unique per `i`."""
    b32 = "abcdefghijklmnopqrstuvwxyz234567"
    return f"lb-abcdefghijklmn{b32[i // 32]}{b32[i % 32]}-202611270100"


def _long_id(kind: str, name: str, group: str = LONG_GROUP) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/{kind}/{name}"


def largest_drill() -> DrillState:
    """A drill of a VM with the OS disk and 64 data disks, every list at its longest."""
    disks = [_long_id("Microsoft.Compute/disks", f"{LONG_DISK}{i:02d}") for i in range(65)]
    drill_group = "r" * 90

    def made(suffix: str) -> str:
        return _long_id("Microsoft.Compute/disks", f"lbd-abcdefghij-{suffix}", drill_group)

    return DrillState.model_validate(
        {
            "drillId": "lbd-abcdefghij",
            "step": "teardown",
            "startedAt": NOW,
            "expiresAt": NOW,
            "drillSubscription": SUBSCRIPTION,
            "drillGroup": drill_group,
            "location": "westeurope",
            "vmId": _long_id("Microsoft.Compute/virtualMachines", LONG_VM),
            "vmName": LONG_VM,
            "subscriptionId": SUBSCRIPTION,
            "snapshots": [
                {
                    "diskId": disk,
                    "snapshotId": _long_id("Microsoft.Compute/snapshots", _lb_name(i)),
                    "lun": i - 1 if i else None,
                    "timeCreated": NOW,
                    "sku": "PremiumV2_LRS",
                }
                for i, disk in enumerate(disks)
            ],
            "missingDisks": disks[:64],
            "policyAssignments": [
                _long_id("Microsoft.Authorization/policyAssignments", f"pa-{i:03d}")
                for i in range(200)
            ],
            "timings": {f"step-{i}": [NOW, NOW] for i in range(16)},
            "deleted": [made(f"lun{i}") for i in range(64)],
            "seen": [made(f"lun{i}") for i in range(80)],
            "reason": "r" * 2000,
        }
    )


def largest_rotation_set() -> RotationVmRequest:
    return RotationVmRequest.model_validate(
        {
            "subscriptionId": SUBSCRIPTION,
            "vmId": _long_id("Microsoft.Compute/virtualMachines", LONG_VM),
            "vmName": LONG_VM,
            "resourceGroup": LONG_GROUP,
            "policy": "p" * 64,
            "slot": "202611270100",
            "setId": "s" * 128,
            "disks": [
                {
                    "diskId": _long_id("Microsoft.Compute/disks", f"{LONG_DISK}{i:02d}"),
                    "uniqueId": "u" * 36,
                    "location": "westeurope",
                    "snapshotName": _lb_name(i),
                    "lun": i,
                }
                for i in range(64)
            ],
        }
    )


def largest_prune() -> RotationPruneRequest:
    """One disk's chunk: 100 victims, every name at its longest."""
    return RotationPruneRequest.model_validate(
        {
            "subscriptionId": SUBSCRIPTION,
            "slot": "202611270100",
            "disks": [
                {
                    "sourceId": _long_id("Microsoft.Compute/disks", LONG_DISK),
                    "policy": "p" * 64,
                    "snapshotIds": [
                        _long_id("Microsoft.Compute/snapshots", _lb_name(i)) for i in range(100)
                    ],
                }
            ],
        }
    )


def _unlike(seed: str, length: int) -> str:
    """A name of `length` that shares nothing with the others: deflate finds little to repeat."""
    text = "".join(hashlib.sha256(f"{seed}{n}".encode()).hexdigest() for n in range(3))
    return "n" + text[: length - 1]


def largest_prune_of_many_disks() -> RotationPruneRequest:
    """100 disks, each in its own group, one victim each: the most a message may name, every
    id and policy name at its longest and no two alike."""
    return RotationPruneRequest.model_validate(
        {
            "subscriptionId": SUBSCRIPTION,
            "slot": "202611270100",
            "recheck": True,
            "disks": [
                {
                    "sourceId": _long_id(
                        "Microsoft.Compute/disks", _unlike(f"d{i}", 80), _unlike(f"g{i}", 90)
                    ),
                    "policy": _unlike(f"p{i}", 64),
                    "snapshotIds": [_long_id("Microsoft.Compute/snapshots", _lb_name(i))],
                    "orphan": i % 2 == 0,
                }
                for i in range(100)
            ],
        }
    )


@pytest.mark.parametrize(
    "build", [largest_drill, largest_rotation_set, largest_prune, largest_prune_of_many_disks]
)
def test_the_largest_message_of_each_shape_fits_a_queue_message(build: Any) -> None:
    payload = build()
    keys = SigningKeys.parse(TEST_SIGNING_KEYS)
    key = "k" * 512
    envelope = make_envelope(payload, run_id="r" * 128, idempotency_key=key, created=NOW)
    text = messages.encode(envelope, keys)
    assert messages.encoded_size(text) <= messages.MAX_ENCODED_BYTES
    _, decoded = messages.decode(text, keys=keys)
    assert decoded == payload


def test_a_drill_that_does_not_fit_as_plain_json_travels_deflated() -> None:
    envelope = make_envelope(largest_drill(), run_id="r", idempotency_key="k", created=NOW)
    plain = envelope.model_dump_json(by_alias=True)
    assert messages.encoded_size(plain) > messages.MAX_ENCODED_BYTES
    raw = json.loads(messages.encode(envelope))
    assert raw["payload"] == {}
    assert raw["payloadZ"]


def _signed(raw: dict[str, Any]) -> str:
    return SigningKeys.parse(TEST_SIGNING_KEYS).sign(json.dumps(raw))


@pytest.mark.parametrize(
    ("packed", "reason"),
    [
        pytest.param(
            base64.b64encode(zlib.compress(b"[" * 2_000_000)).decode(),
            "inflates past 1048576 bytes",
            id="bomb",
        ),
        pytest.param("not base64!", "is not deflated JSON", id="not-base64"),
        pytest.param(base64.b64encode(b"plain").decode(), "is not deflated JSON", id="not-zlib"),
        pytest.param(
            base64.b64encode(zlib.compress(b"[1]")).decode(), "is not a JSON object", id="list"
        ),
        pytest.param(7, "must be a string", id="not-a-string"),
    ],
)
def test_a_hostile_deflated_payload_is_refused_with_its_reason(packed: object, reason: str) -> None:
    raw = json.loads(envelope_text())
    raw.pop("sig")
    raw.update(payload={}, payloadZ=packed)
    with pytest.raises(PoisonMessageError) as caught:
        messages.decode(_signed(raw), keys=SigningKeys.parse(TEST_SIGNING_KEYS))
    assert reason in caught.value.reason


def test_size_limit_counts_the_base64_text() -> None:
    assert messages.encoded_size("a" * 3) == 4
    assert messages.encoded_size("a" * 49_152) == 65_536
    assert messages.encoded_size("é") == 4  # two UTF-8 bytes


def test_the_schema_table_is_derived_from_the_payload_classes() -> None:
    assert {(p.TYPE, p.VERSION): p for p in messages.PAYLOADS} == messages.PAYLOAD_SCHEMAS
    assert len({p.TYPE for p in messages.PAYLOADS}) == len(messages.PAYLOADS)
    envelope = make_envelope(onboarding_request(), run_id="r", idempotency_key="k", created=NOW)
    assert (envelope.type, envelope.version) == ("onboarding", 1)


GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg"
VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/vm1"
VAULT = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.RecoveryServices/vaults/v"
)
FIRST_BACKUP = {
    "subscriptionId": SUBSCRIPTION,
    "vmId": VM,
    "vaultId": VAULT,
    "location": "westeurope",
    "policy": "daily",
    "rpoHours": 24,
    "enabledAt": "2026-11-27T01:00:00Z",
}


def hostile(message_type: str, version: int, payload: dict[str, object], **envelope: object) -> str:
    raw = {
        "type": message_type,
        "version": version,
        "id": "m",
        "runId": "r",
        "idempotencyKey": "k",
        "created": "2026-11-27T01:00:00Z",
        "payload": payload,
        **envelope,
    }
    return json.dumps(raw)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (hostile("onboarding", 1, {}, created="2026-11-27T01:00:00"), "created"),
        (
            hostile("rotation-plan", 1, {"subscriptionId": SUBSCRIPTION, "slot": "202602300200"}),
            "real time",
        ),
        (
            hostile("rotation-plan", 1, {"subscriptionId": "not-a-guid", "slot": "202611270200"}),
            "GUID",
        ),
        (
            hostile("verification-first-backup", 1, {**FIRST_BACKUP, "vaultId": "/v"}),
            "ARM resource id",
        ),
        (
            hostile("verification-first-backup", 1, {**FIRST_BACKUP, "vmId": "vm1"}),
            "ARM resource id",
        ),
        (hostile("verification-first-backup", 1, {**FIRST_BACKUP, "rpoHours": 1e12}), "rpoHours"),
        (
            hostile(
                "verification-first-backup", 1, {**FIRST_BACKUP, "enabledAt": "2026-11-27T01:00:00"}
            ),
            "enabledAt",
        ),
        (
            hostile(
                "verification-first-backup",
                1,
                {k: v for k, v in FIRST_BACKUP.items() if k != "vmId"},
            ),
            "vmId",
        ),
    ],
    ids=[
        "naive created",
        "impossible slot",
        "subscription",
        "short vault id",
        "vm id without /",
        "huge rpo",
        "naive time",
        "missing vmId",
    ],
)
def test_a_message_outside_its_bounds_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(PoisonMessageError) as caught:
        messages.decode(text)
    assert reason in caught.value.reason


def _prune_text(payload: dict[str, Any], version: int = 3) -> str:
    return hostile("rotation-prune", version, payload)


PRUNE_ID = _long_id("Microsoft.Compute/snapshots", _lb_name(0), "rg-lifeboat-snapshots")
SOURCE = _long_id("Microsoft.Compute/disks", "web-os", "rg-app")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            {
                "disks": [
                    {"sourceId": SOURCE, "snapshotIds": [PRUNE_ID] * 60},
                    {"sourceId": SOURCE, "snapshotIds": [PRUNE_ID] * 41},
                ]
            },
            "names 101 snapshots; a prune message names at most 100",
        ),
        (
            {"disks": [{"sourceId": SOURCE, "snapshotIds": [PRUNE_ID]}], "sourceId": SOURCE},
            "either disks or one disk's sourceId and snapshotIds, not both",
        ),
        ({"disks": []}, "disks"),
        ({"disks": [{"sourceId": SOURCE, "snapshotIds": []}]}, "snapshotIds"),
    ],
    ids=["101 victims", "both forms", "no disk", "a disk without victims"],
)
def test_a_prune_message_past_its_bounds_is_refused_with_the_reason(
    payload: dict[str, Any], reason: str
) -> None:
    text = _prune_text({"subscriptionId": SUBSCRIPTION, "slot": "202611270100", **payload})
    with pytest.raises(PoisonMessageError) as caught:
        messages.decode(text)
    assert reason in caught.value.reason


@pytest.mark.parametrize("version", [1, 2])
def test_a_single_disk_prune_of_an_earlier_version_reads_as_one_disk(version: int) -> None:
    payload = {
        "subscriptionId": SUBSCRIPTION,
        "sourceId": SOURCE,
        "slot": "202611270100",
        "snapshotIds": [PRUNE_ID],
        "orphan": True,
        **({"attempt": 2} if version == 1 else {"recheck": True}),
    }
    envelope, decoded = messages.decode(_prune_text(payload, version))
    assert isinstance(decoded, RotationPruneRequest)
    assert envelope.version == RotationPruneRequest.VERSION == 3
    [one] = decoded.disks
    assert (one.source_id, one.snapshot_ids, one.orphan) == (SOURCE, [PRUNE_ID], True)
    assert decoded.recheck is True
