"""In-memory fakes of the ports, recording what happened."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.model import Outcome
from shared.ports import ReceivedMessage, ThrottledError

ROOT = Path(__file__).resolve().parent.parent


class MemoryReporter:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()

    def report(self, outcomes: Iterable[Outcome]) -> None:
        with self._lock:
            self.outcomes.extend(outcomes)

    def operations(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(o.operation, o.status.value) for o in self.outcomes]


class FailingReporter:
    def report(self, outcomes: Iterable[Outcome]) -> None:
        raise ConnectionError("monitor unreachable")


class FixedClock:
    def __init__(self, now: datetime | None = None) -> None:
        self.current = now or datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self.current

    def advance(self, **delta: float) -> None:
        with self._lock:
            self.current += timedelta(**delta)

    def set(self, instant: datetime) -> None:
        with self._lock:
            self.current = max(self.current, instant)


class MemoryQueues:
    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {}
        self.visibility: dict[str, list[int]] = {}  # the visibility timeout of every send

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        self.sent.setdefault(queue, []).append(text)
        self.visibility.setdefault(queue, []).append(visibility_timeout)

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return sorted(q for q in self.sent if q.endswith(suffix))

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[ReceivedMessage]:
        pending = self.sent.get(queue, [])
        taken, self.sent[queue] = pending[:max_messages], pending[max_messages:]
        for i, text in enumerate(taken):
            yield ReceivedMessage(id=f"m{i}", pop_receipt="r", text=text, raw=text, dequeue_count=1)

    def delete(self, queue: str, message: ReceivedMessage) -> None:
        pass


class MemoryBlobs:
    """The BlobStore port in memory: `blobs` by name, `writes` counts every put (repeats too);
    with `fail` set, every put raises BlobStoreError with that text."""

    def __init__(self, container: str = "lifeboat-poison") -> None:
        self.container = container
        self.blobs: dict[str, bytes] = {}
        self.writes = 0
        self.fail: str | None = None

    def put_if_absent(self, name: str, data: bytes) -> None:
        from shared.ports import BlobStoreError

        if self.fail is not None:
            raise BlobStoreError(self.fail)
        self.writes += 1
        self.blobs.setdefault(name, data)


class MemoryStagingBlobs:
    """The StagingBlobs port in memory: `accounts[account][container]` = (last modified, blob
    names); `refuse` (account -> text) makes every call on that account raise StagingBlobsError;
    `deleted` lists what was deleted, as `account/container[/blob]`."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, tuple[datetime | None, list[str]]]] = {}
        self.refuse: dict[str, str] = {}
        self.deleted: list[str] = []

    def put(self, account: str, container: str, *blobs: str, at: datetime | None = None) -> None:
        stamp, names = self.accounts.setdefault(account, {}).get(container, (at, []))
        self.accounts[account][container] = (at or stamp, [*names, *blobs])

    def _account(self, account: str) -> dict[str, tuple[datetime | None, list[str]]]:
        from shared.ports import StagingBlobsError

        if account in self.refuse:
            raise StagingBlobsError(self.refuse[account])
        return self.accounts.setdefault(account, {})

    def list_containers(self, account, prefix):  # type: ignore[no-untyped-def]
        from shared.ports import StagingContainer

        return [
            StagingContainer(name, stamp)
            for name, (stamp, _) in sorted(self._account(account).items())
            if name.startswith(prefix)
        ]

    def list_blobs(self, account: str, container: str) -> list[str]:
        return list(self._account(account).get(container, (None, []))[1])

    def delete_blob(self, account: str, container: str, name: str) -> bool:
        found = self._account(account).get(container)
        if found is None or name not in found[1]:
            return False
        found[1].remove(name)
        self.deleted.append(f"{account}/{container}/{name}")
        return True

    def delete_container(self, account: str, container: str) -> bool:
        if self._account(account).pop(container, None) is None:
            return False
        self.deleted.append(f"{account}/{container}")
        return True


class FakeCompute:
    """An in-memory Compute: PUT on an existing name is a no-op, DELETE of a missing one too."""

    def __init__(self, clock: FixedClock) -> None:
        from shared.model import Disk, Snapshot, Vm

        self.clock = clock
        self.vms: list[Vm] = []
        self.disks: dict[str, Disk] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.writes: list[tuple[str, str]] = []
        self.reads: list[str] = []
        self.throttle: int = 0  # throttle this many of the next writes
        self.refuse: dict[str, str] = {}  # disk or snapshot id (lower) -> error code
        self.headroom: int | None = None
        self.deletes_left: int | None = None
        self.reads_left: int | None = None
        self.state = "Succeeded"
        self.errors: dict[str, list[Exception]] = {}  # target (lower) -> its next writes' errors
        self.silent: dict[str, int] = {}  # list method -> how many next calls get no answer

    def _listing(self, method: str) -> None:
        from shared.ports import UnavailableError

        if self.silent.get(method, 0) > 0:
            self.silent[method] -= 1
            raise UnavailableError(f"HTTP 503 ServiceUnavailable: {method} (after retries)", 503)

    def list_vms(self, subscription_id: str) -> list:  # type: ignore[type-arg]
        self._listing("list_vms")
        return list(self.vms)

    def list_disks(self, subscription_id: str) -> list:  # type: ignore[type-arg]
        self._listing("list_disks")
        return list(self.disks.values())

    def list_snapshots(self, subscription_id: str, resource_group: str) -> list:  # type: ignore[type-arg]
        self._listing("list_snapshots")
        return [
            s for s in self.snapshots.values() if s.resource_group.lower() == resource_group.lower()
        ]

    def list_subscription_snapshots(self, subscription_id: str) -> list:  # type: ignore[type-arg]
        self._listing("list_subscription_snapshots")
        return list(self.snapshots.values()) + list(getattr(self, "foreign_snapshots", []))

    def get_vm(self, vm_id: str):  # type: ignore[no-untyped-def]
        return next((v for v in self.vms if v.id.lower() == vm_id.lower()), None)

    def get_snapshot(self, snapshot_id: str):  # type: ignore[no-untyped-def]
        self.reads.append(snapshot_id)
        return self.snapshots.get(snapshot_id.lower())

    def get_disk(self, disk_id: str):  # type: ignore[no-untyped-def]
        return self.disks.get(disk_id.lower())

    def _write(self, kind: str, target: str) -> None:
        from shared.ports import RefusedError, ThrottledError

        if self.throttle > 0:
            self.throttle -= 1
            raise ThrottledError(2.0)
        if self.errors.get(target.lower()):
            raise self.errors[target.lower()].pop(0)
        code = self.refuse.get(target.lower())
        if code:
            raise RefusedError(code, f"refused {kind} of {target}")
        self.writes.append((kind, target))

    def begin_create_snapshot(self, request) -> None:  # type: ignore[no-untyped-def]
        from shared.model import Snapshot

        self._write("create", request.source_disk_id)
        sid = (
            f"/subscriptions/{request.subscription_id}/resourceGroups/{request.resource_group}"
            f"/providers/Microsoft.Compute/snapshots/{request.name}"
        )
        if sid.lower() in self.snapshots:
            return
        disk = self.disks[request.source_disk_id.lower()]
        self.snapshots[sid.lower()] = Snapshot(
            id=sid,
            name=request.name,
            subscription_id=request.subscription_id,
            resource_group=request.resource_group,
            location=request.location,
            time_created=self.clock.now(),
            source_resource_id=disk.id,
            source_unique_id=disk.unique_id,
            incremental=True,
            provisioning_state=self.state,
            tags=dict(request.tags),
        )

    def begin_delete_snapshot(self, snapshot_id: str) -> None:
        self._write("delete", snapshot_id)
        self.snapshots.pop(snapshot_id.lower(), None)

    def merge_tags(self, resource_id: str, tags: dict[str, str]) -> None:
        import dataclasses

        self._write("tags", resource_id)
        self.vms = [
            dataclasses.replace(v, tags={**v.tags, **tags})
            if v.id.lower() == resource_id.lower()
            else v
            for v in self.vms
        ]

    def write_headroom(self, subscription_id: str) -> int | None:
        return self.headroom

    def delete_headroom(self, subscription_id: str) -> int | None:
        return self.deletes_left

    def read_headroom(self, subscription_id: str) -> int | None:
        return self.reads_left


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a block (the stand-in's identity endpoint and CA bundle)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_python(
    *args: str, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`python *args` at the repository root, its output captured; by default with no app
    settings at all (only PATH in its environment), as on a fresh worker."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "")} if env is None else env,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


class FakeSiteRecovery:
    """Azure Site Recovery in memory: replicated items and recovery plans by vault id (lower
    case); `refused` vault ids answer RefusedError as a 403 would; every call is counted."""

    def __init__(self, items=None, plans=None, refused=()) -> None:  # type: ignore[no-untyped-def]
        self.items = {k.lower(): list(v) for k, v in (items or {}).items()}
        self.plans = {k.lower(): list(v) for k, v in (plans or {}).items()}
        self.refused = {r.lower() for r in refused}
        self.calls: list[tuple[str, str]] = []

    def _vault(self, call: str, vault) -> str:  # type: ignore[no-untyped-def]
        from shared.ports import RefusedError

        self.calls.append((call, vault.id))
        if vault.id.lower() in self.refused:
            raise RefusedError(
                "AuthorizationFailed",
                f"cannot read Site Recovery in {vault.name}: needs Site Recovery Reader",
            )
        return str(vault.id.lower())

    def list_replicated_items(self, vault):  # type: ignore[no-untyped-def]
        return list(self.items.get(self._vault("items", vault), []))

    def list_recovery_plans(self, vault):  # type: ignore[no-untyped-def]
        return list(self.plans.get(self._vault("plans", vault), []))


class Unused:
    """A port this test does not expect to be used: any use fails the test, naming the port."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> object:
        raise AssertionError(f"this test did not expect {self._name}.{attribute} to be used")


class Throttled:
    """A port that answers every call with Azure's 429 and a Retry-After of `retry_after`."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after

    def __getattr__(self, name: str) -> Any:
        def throttled(*args: object, **kwargs: object) -> Any:
            raise ThrottledError(self.retry_after)

        return throttled


def runtime(settings, clock, reporter, queues, **ports):  # type: ignore[no-untyped-def]
    """A Runtime whose ports not given are `Unused` (every port is required in product code), but
    for its blobs: a fresh MemoryBlobs (any refusal may keep a poisoned message's text there), its
    Site Recovery: a FakeSiteRecovery replicating nothing (every verification plan asks) and its
    staging accounts: an empty MemoryStagingBlobs."""
    from shared.ports import Runtime

    for name in ("compute", "policies", "backup", "drills"):
        ports.setdefault(name, Unused(name))
    ports.setdefault("blobs", MemoryBlobs())
    ports.setdefault("site_recovery", FakeSiteRecovery())
    ports.setdefault("staging", MemoryStagingBlobs())
    return Runtime(settings, clock, reporter, queues, **ports)


class FakeWorld:
    """A Runtime over fakes on `clock`: its queues, a MemoryReporter (or `reporter`), a
    FakeCompute, the settings `values`, `policies` and any other ports given; what a use case's
    tests set up first."""

    def __init__(
        self,
        clock,
        queues,
        values: dict[str, str],
        policies,
        *,
        reporter: MemoryReporter | None = None,
        **ports,
    ) -> None:  # type: ignore[no-untyped-def]
        from shared.settings import Settings

        self.clock = clock
        self.queues = queues
        self.reporter = reporter or MemoryReporter()
        self.compute = FakeCompute(clock)
        self.rt = runtime(
            Settings.from_env(values),
            clock,
            self.reporter,
            queues,
            compute=self.compute,
            policies=policies,
            **ports,
        )


def serve_runtime(rt) -> None:  # type: ignore[no-untyped-def]
    """Make `services()` (what the triggers call) hand out this runtime's settings and ports."""
    import dataclasses

    from shared.services import override_services

    override_services(**{f.name: getattr(rt, f.name) for f in dataclasses.fields(rt)})


def deliver(rt, text: str, *, dequeue_count: int = 1):  # type: ignore[no-untyped-def]
    """Run one message through the real dispatch, on the queue its type travels on."""
    from shared import dispatch, messages
    from shared.names import QUEUE_OF, MessageType

    envelope, _ = messages.decode(text)
    queue = QUEUE_OF[MessageType(envelope.type)]
    signed = rt.settings.signing_keys.sign(text)  # as Lifeboat sent it (tests build some by hand)
    return dispatch.deliver(rt, queue, signed, message_id="m", dequeue_count=dequeue_count)


def drain(rt, queues: MemoryQueues, names: Iterable[str], *, twice: bool = False) -> int:  # type: ignore[no-untyped-def]
    """Deliver everything on these queues (ignoring visibility delays) until they are empty."""
    handled = 0
    names = list(names)
    while any(queues.sent.get(q) for q in names):
        for queue in names:
            pending, queues.sent[queue] = queues.sent.get(queue, []), []
            for text in pending:
                for _ in range(2 if twice else 1):
                    deliver(rt, text)
                handled += 1
    return handled
