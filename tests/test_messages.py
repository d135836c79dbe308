from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared import messages
from shared.messages import (
    MessageTooLargeError,
    OnboardingRequest,
    PoisonMessageError,
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
    big = onboarding_request(correlationId="x" * 49_000)
    envelope = make_envelope(big, run_id="r", idempotency_key="k", created=NOW)
    with pytest.raises(
        MessageTooLargeError, match=r"base64-encoded; a queue message holds at most 65536"
    ):
        messages.encode(envelope)


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
