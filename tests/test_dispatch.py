"""The one path through every worker: decode, handle, apply; poison, put back, report.

The throttling matrix runs every (type, handler) of every HANDLERS table through the real
dispatch with ports that answer 429 to everything: each must put back exactly one message.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import math
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared import dispatch, messages
from shared.dispatch import Context, Done, Outgoing, PutBack, Refuse, Send
from shared.messages import (
    DiskSnapshot,
    DrillPlanRequest,
    DrillState,
    FirstBackupCheckRequest,
    OnboardingRequest,
    OutcomesRetryRequest,
    Payload,
    RotationConfirmRequest,
    RotationConfirmVmRequest,
    RotationPlanRequest,
    RotationPruneRequest,
    RotationVmRequest,
    VerificationPlanRequest,
    VerificationVaultRequest,
)
from shared.names import HANDLERS_OF, QUEUE_OF, SERVED_BY, Job, MessageType, Queue
from shared.policies import parse_policies
from shared.ports import ThrottledError
from shared.settings import Settings
from shared.signing import SigningKeys
from tests.builders import VAULT, vault_request
from tests.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION, TEST_SIGNING_KEYS, base_settings
from tests.fakes import (
    FailingReporter,
    FixedClock,
    MemoryQueues,
    MemoryReporter,
    Throttled,
    runtime,
)

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 27, 2, 5, tzinfo=UTC)
SLOT = "202611270200"
ARM = f"/subscriptions/{SUBSCRIPTION}/resourceGroups"
VM_ID = f"{ARM}/rg-app/providers/Microsoft.Compute/virtualMachines/web"
DISK_ID = f"{ARM}/rg-app/providers/Microsoft.Compute/disks/web-os"
VAULT_ID = f"{ARM}/rg-backup/providers/Microsoft.RecoveryServices/vaults/v1"
POLICIES = parse_policies(
    {
        "version": 1,
        "defaultPolicy": "daily",
        "policies": {"daily": {"retention": {"daily": 3}, "snapshotOnCreate": True}},
    }
)
DISK = DiskSnapshot(
    diskId=DISK_ID,
    uniqueId="u1",
    location="westeurope",
    snapshotName="lb-abcdefghijklmnop-202611270200",
    lun=None,
)
VM_FIELDS: dict[str, Any] = {
    "subscriptionId": SUBSCRIPTION,
    "vmId": VM_ID,
    "vmName": "web",
    "resourceGroup": "rg-app",
    "policy": "daily",
    "slot": SLOT,
    "setId": "s1",
    "disks": [DISK],
}

# One valid message of every type (a new payload type must add its own).
SAMPLES: dict[type[Payload], Payload] = {
    OnboardingRequest: OnboardingRequest(
        resourceId=VM_ID,
        subscriptionId=SUBSCRIPTION,
        resourceGroup="rg-app",
        vmName="web",
        eventId="e1",
    ),
    RotationPlanRequest: RotationPlanRequest(subscriptionId=SUBSCRIPTION, slot=SLOT),
    RotationConfirmRequest: RotationConfirmRequest(subscriptionId=SUBSCRIPTION, slot=SLOT),
    RotationConfirmVmRequest: RotationConfirmVmRequest(**VM_FIELDS),
    RotationVmRequest: RotationVmRequest(**VM_FIELDS),
    RotationPruneRequest: RotationPruneRequest(
        subscriptionId=SUBSCRIPTION,
        sourceId=DISK_ID,
        slot=SLOT,
        snapshotIds=[
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-lifeboat-snapshots/providers/Microsoft.Compute/snapshots/lb-abcdefghijklmnop-202611200200"
        ],
    ),
    OutcomesRetryRequest: OutcomesRetryRequest(records=[{"RunId": "r", "Operation": "x"}]),
    VerificationPlanRequest: VerificationPlanRequest(subscriptionId=SUBSCRIPTION, slot=SLOT),
    VerificationVaultRequest: vault_request(
        VAULT, {"daily|24": {"rg-app": ["web"]}}, slot=SLOT, designated=True
    ),
    FirstBackupCheckRequest: FirstBackupCheckRequest(
        subscriptionId=SUBSCRIPTION,
        vmId=VM_ID,
        vaultId=VAULT_ID,
        location="westeurope",
        policy="daily",
        rpoHours=24,
        enabledAt=NOW,
    ),
    DrillPlanRequest: DrillPlanRequest(subscriptionId=SUBSCRIPTION, slot=SLOT),
    DrillState: DrillState(
        drillId="lbd-abcdefghij",
        step="prepare",
        startedAt=NOW,
        expiresAt=NOW.replace(hour=8),
        drillSubscription=SUBSCRIPTION,
        drillGroup="rg-lifeboat-drill-westeurope",
        location="westeurope",
        vmId=VM_ID,
        vmName="web",
        subscriptionId=SUBSCRIPTION,
        plan="weekly",
        runId="drill-202611270200",
    ),
}


class ThrottledReporter(MemoryReporter):
    """Reports rows, but Azure Monitor answers 429 to resends."""

    def __init__(self, retry_after: float) -> None:
        super().__init__()
        self.retry_after = retry_after

    def send(self, records: object) -> list[dict[str, Any]]:
        raise ThrottledError(self.retry_after)


def every_handler() -> list[tuple[Queue, type[Payload]]]:
    pairs = []
    for queue in Queue:
        for type_name in dispatch.handlers_for(queue):
            schema = next(p for p in messages.PAYLOADS if type_name == p.TYPE)
            pairs.append((queue, schema))
    return pairs


KEYS = SigningKeys.parse(TEST_SIGNING_KEYS)


def text_of(payload: Payload, *, put_backs: int = 0, keys: SigningKeys | None = KEYS) -> str:
    envelope = messages.make_envelope(
        payload, run_id="run-1", idempotency_key="key-1", created=NOW, put_backs=put_backs
    )
    return messages.encode(envelope, keys)


def test_every_payload_type_has_a_handler_on_its_queue_and_a_sample() -> None:
    handled = {schema for _, schema in every_handler()}
    assert handled == set(messages.PAYLOADS)
    assert set(SAMPLES) == set(messages.PAYLOADS)
    for queue, schema in every_handler():
        assert QUEUE_OF[schema.TYPE] == queue


@pytest.mark.parametrize(
    ("queue", "schema"),
    [(q, s) for q, s in every_handler() if "subscription_id" in s.model_fields],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
def test_a_signed_message_naming_an_unserved_subscription_is_refused_before_its_handler(
    queue: Queue, schema: type[Payload]
) -> None:
    """Whatever its type: nothing is read or written (every port is `Unused`), one `refused`
    row names the subscription, and the message is in poison."""
    rt, queues, reporter = world()
    foreign = SAMPLES[schema].model_copy(update={"subscription_id": OTHER_SUBSCRIPTION})
    result = dispatch.deliver(rt, queue, text_of(foreign), message_id="m")
    assert isinstance(result, Refuse)
    assert list(queues.sent) == [queue.poison]
    [row] = reporter.outcomes
    assert row.status == "refused"
    assert f"names subscription {OTHER_SUBSCRIPTION}" in (row.reason or "")


@pytest.mark.parametrize("retry_after", [0.5, 1, 37, 1200])
@pytest.mark.parametrize(
    ("queue", "schema"), every_handler(), ids=lambda v: getattr(v, "__name__", str(v))
)
def test_a_throttled_handler_puts_back_exactly_one_message(
    queue: Queue, schema: type[Payload], retry_after: float
) -> None:
    queues = MemoryQueues()
    port = Throttled(retry_after)
    reporter = ThrottledReporter(retry_after)
    rt = runtime(
        Settings.from_env(base_settings()),
        FixedClock(NOW),
        reporter,
        queues,
        compute=port,
        backup=port,
        drills=port,
        policies=POLICIES,
    )
    result = dispatch.deliver(rt, queue, text_of(SAMPLES[schema]), message_id="m")
    assert isinstance(result, PutBack), result
    assert list(queues.sent) == [queue], "exactly one message, on its own queue"
    [visibility] = queues.visibility[queue]
    assert math.ceil(retry_after) <= visibility <= dispatch.MAX_VISIBILITY_SECONDS
    envelope, _ = messages.decode(queues.sent[queue][0])
    assert envelope.put_backs == 1
    assert envelope.idempotency_key == "key-1"
    [waiting] = [o for o in reporter.outcomes if o.status == "waiting"]
    assert waiting.details["visibilitySeconds"] == visibility


def test_a_put_back_never_comes_earlier_than_retry_after_and_stays_under_the_maximum() -> None:
    for after in (0.0, 0.2, 0.5, 1.0, 9.99, 37.0, 1200.0, 1235.0, 10 * 24 * 3600.0):
        for _ in range(20):
            queues = MemoryQueues()
            rt = runtime(
                Settings.from_env(base_settings()), FixedClock(NOW), MemoryReporter(), queues
            )
            ctx = Context(rt, job=Job.ROTATION, run_id="r", key="k")
            envelope, payload = messages.decode(text_of(SAMPLES[RotationPlanRequest]))
            dispatch._apply(
                ctx, Queue.ROTATION_PLAN, envelope, payload, PutBack(after, "x"), "", "m"
            )
            [visibility] = queues.visibility[Queue.ROTATION_PLAN]
            assert min(math.ceil(after), dispatch.MAX_VISIBILITY_SECONDS) <= visibility
            assert visibility <= dispatch.MAX_VISIBILITY_SECONDS


def world(reporter: object | None = None) -> tuple[Any, MemoryQueues, MemoryReporter]:
    queues, memory = MemoryQueues(), MemoryReporter()
    rt = runtime(Settings.from_env(base_settings()), FixedClock(NOW), reporter or memory, queues)
    return rt, queues, memory


def with_handler(monkeypatch: pytest.MonkeyPatch, handler: Any) -> None:
    """Serve the onboarding queue with `handler` (the table dispatch reads is the seam)."""
    monkeypatch.setattr("shared.onboarding.HANDLERS", {OnboardingRequest: handler})


def serving(
    monkeypatch: pytest.MonkeyPatch, handler: Any, reporter: object | None = None
) -> tuple[Any, MemoryQueues, MemoryReporter]:
    """`world(reporter)`, its onboarding queue served by `handler`."""
    with_handler(monkeypatch, handler)
    return world(reporter)


def deliver_sample(
    monkeypatch: pytest.MonkeyPatch, handler: Any
) -> tuple[MemoryQueues, MemoryReporter, str]:
    """The sample onboarding message, delivered once to `handler`: the queues, the reporter and
    the reason of the first message parked on the poison queue ("" if none was)."""
    rt, queues, reporter = serving(monkeypatch, handler)
    dispatch.deliver(rt, Queue.ONBOARDING, text_of(SAMPLES[OnboardingRequest]), message_id="m")
    parked = queues.sent.get("onboarding-poison", [])
    return queues, reporter, json.loads(parked[0])["reason"] if parked else ""


def never_called(payload: Payload, ctx: Context) -> Done:
    raise AssertionError("handler must not run")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not JSON"),
        (text_of(SAMPLES[DrillPlanRequest]).encode(), "'drill-plan' does not belong on queue"),
        (
            KEYS.sign(
                json.dumps({**json.loads(text_of(SAMPLES[OnboardingRequest])), "payload": {}})
            ).encode(),
            "payload schema",
        ),
    ],
)
def test_a_message_that_can_never_succeed_is_refused_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, body: bytes, reason: str
) -> None:
    rt, queues, reporter = serving(monkeypatch, never_called)
    result = dispatch.deliver(rt, Queue.ONBOARDING, body, message_id="m-1", dequeue_count=2)
    assert isinstance(result, Refuse)
    [wrapped] = queues.sent["onboarding-poison"]
    document = json.loads(wrapped)
    assert set(document) == {"reason", "originalQueue", "dequeueCount", "message"}
    assert reason in document["reason"]
    assert (document["originalQueue"], document["dequeueCount"]) == ("onboarding", 2)
    [outcome] = reporter.outcomes
    assert (outcome.job, outcome.operation, outcome.status) == (
        Job.MAINTENANCE,
        "poison",
        "refused",
    )
    assert outcome.details["queue"] == "onboarding"


# Not JSON, over 1 KiB, a two-byte character straddling the 1,024th byte.
LONG_UNDECODABLE = "{" + "é" * 1500


def test_a_refused_row_keeps_one_kib_and_the_hash_of_the_full_text_kept_in_its_blob() -> None:
    rt, queues, reporter = world()
    dispatch.deliver(rt, Queue.ONBOARDING, LONG_UNDECODABLE.encode(), message_id="m-1")
    full = LONG_UNDECODABLE.encode()
    [row] = reporter.outcomes
    kept = row.details["message"]
    assert len(kept.encode()) <= 1024
    assert full.startswith(kept.encode())
    assert len(kept.encode()) == 1023  # the character the cut splits is left out
    assert row.details["sha256"] == hashlib.sha256(full).hexdigest()
    assert (row.details["size"], row.details["truncated"]) == (len(full), True)
    assert row.details["blob"] == f"lifeboat-poison/sha256/{row.details['sha256']}"
    assert rt.blobs.blobs == {f"sha256/{row.details['sha256']}": full}
    # The poison queue keeps the whole message too, until the drain has stored it.
    assert json.loads(queues.sent["onboarding-poison"][0])["message"] == LONG_UNDECODABLE


def test_a_refused_message_whose_blob_cannot_be_written_is_poisoned_and_says_so() -> None:
    rt, queues, reporter = world()
    rt.blobs.fail = "blob service unavailable"
    result = dispatch.deliver(rt, Queue.ONBOARDING, LONG_UNDECODABLE.encode(), message_id="m-1")
    assert isinstance(result, Refuse)
    assert json.loads(queues.sent["onboarding-poison"][0])["message"] == LONG_UNDECODABLE
    [row] = reporter.outcomes
    assert row.details["blob"] is None
    assert "blob service unavailable" in row.details["blobError"]
    assert row.details["sha256"] == hashlib.sha256(LONG_UNDECODABLE.encode()).hexdigest()


def test_a_transient_failure_raises_and_is_reported_only_on_the_last_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def flaky(payload: Payload, ctx: Context) -> Done:
        ctx.out.succeeded("vm-seen")  # recorded before the failure: still reported
        raise TimeoutError("ARM did not answer")

    rt, _, reporter = serving(monkeypatch, flaky)
    text = text_of(SAMPLES[OnboardingRequest])
    for delivery in range(1, rt.settings.max_dequeue_count + 1):
        with pytest.raises(TimeoutError):
            dispatch.deliver(rt, Queue.ONBOARDING, text, dequeue_count=delivery)
    assert [o.operation for o in reporter.outcomes].count("vm-seen") == 5
    [failed] = [o for o in reporter.outcomes if o.status == "failed"]
    assert "failed on delivery 5 of 5" in (failed.reason or "")
    assert "onboarding-poison" in (failed.reason or "")


def test_a_reporting_failure_never_hides_the_work_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def flaky(payload: Payload, ctx: Context) -> Done:
        raise TimeoutError("ARM did not answer")

    rt, _, _ = serving(monkeypatch, flaky, FailingReporter())
    with pytest.raises(TimeoutError):
        dispatch.deliver(rt, Queue.ONBOARDING, text_of(SAMPLES[OnboardingRequest]), dequeue_count=5)


# Random text does not deflate: too large for a queue message whichever way it travels.
BIG_SAMPLE = SAMPLES[OnboardingRequest].model_copy(
    update={"correlation_id": base64.b64encode(random.Random(3).randbytes(60_000)).decode()}
)


@pytest.mark.parametrize(
    ("handler", "reason_says"),
    [
        pytest.param(
            lambda p, ctx: Refuse("the VM id names no subscription"),
            "names no subscription",
            id="a-handler-that-refuses-poisons-on-the-first-delivery",
        ),
        pytest.param(
            lambda p, ctx: Send(Outgoing(BIG_SAMPLE, key="k")),
            "at most 65536",
            id="a-follow-up-too-large-for-a-queue-refuses-the-message",
        ),
    ],
)
def test_a_refused_message_is_poisoned_on_its_first_delivery(
    monkeypatch: pytest.MonkeyPatch, handler: Any, reason_says: str
) -> None:
    queues, reporter, reason = deliver_sample(monkeypatch, handler)
    assert list(queues.sent) == ["onboarding-poison"]
    assert reason_says in reason
    assert [o.status for o in reporter.outcomes] == ["refused"]


def test_a_redelivered_message_reports_the_same_rows_with_the_same_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def seen(payload: Payload, ctx: Context) -> Done:
        ctx.out.succeeded("vm-seen", resource_id=VM_ID)
        ctx.out.skipped("tag-default-policy", "no default", resource_id=VM_ID)
        return Done()

    rt, _, reporter = serving(monkeypatch, seen)
    text = text_of(SAMPLES[OnboardingRequest])
    dispatch.deliver(rt, Queue.ONBOARDING, text, dequeue_count=1)
    dispatch.deliver(rt, Queue.ONBOARDING, text, dequeue_count=2)
    ids = [o.id for o in reporter.outcomes]
    assert len(ids) == 4
    assert ids[:2] == ids[2:]
    assert ids[0] != ids[1]


def test_a_message_of_the_previous_version_still_decodes() -> None:
    v1 = {
        "type": "rotation-vm",
        "version": 1,
        "id": "m1",
        "runId": "rotation-202611270200",
        "idempotencyKey": "k",
        "created": "2026-11-27T02:00:00Z",
        "payload": {
            **json.loads(SAMPLES[RotationVmRequest].model_dump_json(by_alias=True)),
            "attempt": 3,
        },
    }
    del v1["payload"]["recheck"]
    envelope, payload = messages.decode(json.dumps(v1))
    assert (envelope.version, envelope.put_backs) == (2, 2)
    assert isinstance(payload, RotationVmRequest)
    assert payload.recheck is True


# ------------------------------------------------------------------------------ the code itself


def python_files(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]


def test_only_dispatch_sends_to_a_queue() -> None:
    """Product code sends through `shared/dispatch.py`; the queue adapter is the port itself."""
    allowed = {ROOT / "shared/dispatch.py", ROOT / "shared/adapters/queues.py"}
    senders = []
    for path in python_files("shared", "triggers"):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("send", "send_message"):
                owner = ast.unparse(node.value)
                if "queue" in owner.lower():
                    senders.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.{node.attr}")
    assert senders == []


def test_no_module_imports_a_private_name_of_another() -> None:
    found = []
    for path in [*python_files("shared", "triggers", "cli", "bench"), ROOT / "function_app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] not in {
                    "shared",
                    "triggers",
                    "cli",
                    "emulator",
                    "bench",
                }:
                    continue
                for alias in node.names:
                    if alias.name.startswith("_"):
                        found.append(
                            f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}"
                        )
    assert found == []


def test_each_queue_names_a_handlers_module_and_messages_name_their_queue() -> None:
    assert set(HANDLERS_OF) == set(Queue)
    assert set(QUEUE_OF) == set(MessageType)


def test_the_readme_maps_every_queue_type_handler_port_and_adapter() -> None:
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    table = {(r[0], r[1]): r for r in rows if len(r) == 5}
    expected = {
        (queue.value, type_name): f"{handler.__module__}.{handler.__name__}"
        for queue in Queue
        for type_name, handler in dispatch.handlers_for(queue).items()
    }
    assert {key: row[2] for key, row in table.items()} == expected
    adapters = "".join(p.read_text() for p in (ROOT / "shared/adapters").glob("*.py"))
    for (_, _), (_, _, handler, ports, named) in table.items():
        source = _source_with_use_cases(handler.rsplit(".", 1)[0])
        for port in (p.strip() for p in ports.split(",")):
            assert f".{port}" in source, f"{handler} is said to use the {port} port"
        for adapter in (a.strip().strip("`") for a in named.split(",")):
            assert f"class {adapter}" in adapters, adapter


def _source_with_use_cases(module: str) -> str:
    """A handler's module (its whole package) and the use cases it calls into."""

    def files(name: str) -> list[Path]:
        path = ROOT / name.replace(".", "/")
        if (path / "__init__.py").exists():
            return sorted(path.glob("*.py"))
        return [path.with_suffix(".py")] if path.with_suffix(".py").exists() else []

    package = module.rsplit(".", 1)[0] if module.count(".") > 1 else module
    own = files(package)
    called: set[str] = set()
    for path in own:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "shared":
                called |= {f"shared.{a.name}" for a in node.names}
    use_cases = {name for name, _ in SERVED_BY.values()}
    return "".join(
        f.read_text() for name in [package, *sorted(called & use_cases)] for f in files(name)
    )


OTHER_KEYS = SigningKeys.parse("other=" + "A" * 43)


def _tampered(text: str) -> str:
    raw = json.loads(text)
    raw["payload"]["subscriptionId"] = "9d9d9d9d-0000-4000-8000-000000000009"
    return json.dumps(raw)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: text_of(SAMPLES[RotationPruneRequest], keys=None), "unsigned"),
        (lambda: text_of(SAMPLES[RotationPruneRequest], keys=OTHER_KEYS), "does not hold"),
        (lambda: _tampered(text_of(SAMPLES[RotationPruneRequest])), "altered or forged"),
    ],
    ids=["unsigned", "unknown key", "tampered"],
)
def test_a_message_lifeboat_did_not_sign_is_refused_before_any_read(make: Any, reason: str) -> None:
    queues, reporter = MemoryQueues(), MemoryReporter()
    rt = runtime(
        Settings.from_env(base_settings()),
        FixedClock(NOW),
        reporter,
        queues,
        compute=Throttled(1),
        policies=POLICIES,
    )
    result = dispatch.deliver(rt, Queue.ROTATION_PRUNE, make(), message_id="m")
    assert isinstance(result, Refuse)
    assert reason in result.reason
    assert list(queues.sent) == ["rotation-prune-poison"]
    assert [(o.operation, o.status) for o in reporter.outcomes] == [("poison", "refused")]


def test_every_message_dispatch_sends_is_signed_and_a_second_key_verifies_while_rotating() -> None:
    queues = MemoryQueues()
    rotating = base_settings(MESSAGE_SIGNING_KEYS=f"new={'B' * 43},{TEST_SIGNING_KEYS}")
    rt = runtime(Settings.from_env(rotating), FixedClock(NOW), MemoryReporter(), queues)
    dispatch.submit(rt, Job.ROTATION, "r", Send(Outgoing(SAMPLES[RotationPlanRequest], key="k")))
    [sent] = queues.sent["rotation-plan"]
    assert json.loads(sent)["sig"].startswith("new:")
    old_rt = runtime(Settings.from_env(base_settings()), FixedClock(NOW), MemoryReporter(), queues)
    with pytest.raises(messages.PoisonMessageError, match="does not hold"):
        messages.decode(sent, keys=old_rt.settings.signing_keys)
    messages.decode(text_of(SAMPLES[RotationPlanRequest]), keys=rt.settings.signing_keys)
