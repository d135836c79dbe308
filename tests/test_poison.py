"""The poison drain keeps at most 1 KiB of a message in its row, the rest in a private blob.

Every drained message's full text is written to `lifeboat-poison/sha256/<hex>` before its row is
reported and before it is deleted; a message whose blob cannot be written stays on its queue.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from shared import dispatch, poison
from shared.model import Outcome
from shared.names import Job
from shared.ports import ReceivedMessage
from shared.settings import Settings
from tests.conftest import base_settings
from tests.fakes import FixedClock, MemoryBlobs, runtime

NOW = datetime(2026, 11, 27, 2, 15, tzinfo=UTC)


class Journal:
    """The order of what the drain did: blob writes, reports and deletes, with their subjects."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []


class JournalBlobs(MemoryBlobs):
    def __init__(self, journal: Journal) -> None:
        super().__init__()
        self.journal = journal

    def put_if_absent(self, name: str, data: bytes) -> None:
        super().put_if_absent(name, data)
        self.journal.events.append(("blob", name))


class JournalReporter:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.outcomes: list[Outcome] = []

    def report(self, outcomes: Any) -> None:
        for o in outcomes:
            self.outcomes.append(o)
            self.journal.events.append(("row", str(o.details.get("sha256", o.operation))))


class PoisonQueues:
    """Poison queues that keep a message until it is deleted; a received message stays hidden
    for the rest of the run (`next_run` shows what is left again)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.messages: dict[str, dict[str, str]] = {}
        self.hidden: set[str] = set()

    def put(self, queue: str, text: str) -> None:
        held = self.messages.setdefault(queue, {})
        held[f"{queue}#{len(held)}"] = text

    def next_run(self) -> None:
        self.hidden.clear()

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        raise AssertionError("the drain sends nothing")

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return sorted(q for q in self.messages if q.endswith(suffix))

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[ReceivedMessage]:
        visible = [(i, t) for i, t in self.messages.get(queue, {}).items() if i not in self.hidden]
        for message_id, text in visible[:max_messages]:
            self.hidden.add(message_id)
            yield ReceivedMessage(message_id, "r", text, text, 1)

    def delete(self, queue: str, message: ReceivedMessage) -> None:
        text = self.messages[queue].pop(message.id)
        self.journal.events.append(("delete", hashlib.sha256(text.encode()).hexdigest()))


def wrapped(message: str, reason: str = "refused: no subscription") -> str:
    """A message as dispatch poisons it."""
    return json.dumps(
        {"reason": reason, "originalQueue": "onboarding", "dequeueCount": 1, "message": message}
    )


def drain_world() -> tuple[Any, PoisonQueues, JournalBlobs, JournalReporter, Journal]:
    journal = Journal()
    queues, blobs, reporter = PoisonQueues(journal), JournalBlobs(journal), JournalReporter(journal)
    rt = runtime(Settings.from_env(base_settings()), FixedClock(NOW), reporter, queues, blobs=blobs)
    return rt, queues, blobs, reporter, journal


def run_drain(rt: Any) -> dispatch.Result:
    return dispatch.start(
        rt, Job.MAINTENANCE, "poison-1", "poison:1", lambda c: poison.drain_poison(c, NOW)
    )


def poison_rows(reporter: JournalReporter) -> list[Outcome]:
    return [o for o in reporter.outcomes if o.operation == "poison"]


# Over 1 KiB; a three-byte character straddles the 1,024th byte.
LONG = '{"type": "onboarding", "note": "' + "€" * 600 + '"}'


@pytest.mark.parametrize(
    "text",
    [LONG, "short", "", "x" * 1024, "x" * 1023 + "é", "lone \ud800 surrogate"],
    ids=["long", "short", "empty", "exactly-1-KiB", "cut-inside-a-character", "lone-surrogate"],
)
def test_a_row_keeps_at_most_one_kib_and_the_blob_keeps_the_whole_text(text: str) -> None:
    blobs = MemoryBlobs()
    kept = poison.keep_text(blobs, text)
    full = text.encode("utf-8", errors="surrogatepass")
    digest = hashlib.sha256(full).hexdigest()
    assert kept["sha256"] == digest
    assert kept["blob"] == f"lifeboat-poison/sha256/{digest}"
    assert blobs.blobs == {f"sha256/{digest}": full}
    assert (kept["size"], kept["truncated"]) == (len(full), len(full) > 1024)
    prefix = kept["message"].encode("utf-8")  # valid UTF-8 (a lone surrogate is dropped)
    assert len(prefix) <= 1024
    if "\ud800" not in text:
        assert full.startswith(prefix)
        assert len(prefix) > min(len(full), 1024) - 4  # only a split character is left out


def test_the_drain_writes_the_blob_then_the_row_then_deletes() -> None:
    rt, queues, blobs, reporter, journal = drain_world()
    queues.put("onboarding-poison", wrapped(LONG))
    queues.put("rotation-vm-poison", "{host copy")  # the host's raw copy, not wrapped
    run_drain(rt)

    first, second = (hashlib.sha256(t.encode()).hexdigest() for t in (LONG, "{host copy"))
    assert [e for e in journal.events if e[0] != "row" or e[1] in (first, second)] == [
        ("blob", f"sha256/{first}"),
        ("row", first),
        # The row is of the original message; the delete names the queue message (the wrapper).
        ("delete", hashlib.sha256(wrapped(LONG).encode()).hexdigest()),
        ("blob", f"sha256/{second}"),
        ("row", second),
        ("delete", second),
    ]
    row = poison_rows(reporter)[0]
    assert len(row.details["message"].encode()) <= 1024
    assert blobs.blobs[f"sha256/{row.details['sha256']}"] == LONG.encode()
    assert row.details["type"] == "onboarding"  # read from the full text, not the cut
    assert (row.details["queue"], row.details["drained"]) == ("onboarding", True)
    assert queues.messages == {"onboarding-poison": {}, "rotation-vm-poison": {}}


def test_the_same_text_poisoned_twice_is_one_blob() -> None:
    rt, queues, blobs, reporter, _ = drain_world()
    queues.put("onboarding-poison", wrapped(LONG, "first refusal"))
    queues.put("onboarding-poison", wrapped(LONG, "second refusal"))
    run_drain(rt)
    rows = poison_rows(reporter)
    assert len(rows) == 2
    assert len({r.details["blob"] for r in rows}) == 1
    assert (blobs.writes, len(blobs.blobs)) == (2, 1)


def test_a_blob_that_cannot_be_written_keeps_the_message_for_the_next_run() -> None:
    rt, queues, blobs, reporter, journal = drain_world()
    queues.put("onboarding-poison", wrapped(LONG))
    queues.put("onboarding-poison", wrapped("second"))
    blobs.fail = "403 AuthorizationPermissionMismatch"
    run_drain(rt)

    assert not any(kind == "delete" for kind, _ in journal.events)
    assert len(queues.messages["onboarding-poison"]) == 2
    [kept] = poison_rows(reporter)  # one row, and the drain stopped there
    assert (kept.details["drained"], kept.details["blob"]) == (False, None)
    assert "kept on onboarding-poison" in (kept.reason or "")
    assert "AuthorizationPermissionMismatch" in (kept.reason or "")
    [end] = [o for o in reporter.outcomes if o.operation == "run-end"]
    assert end.status == "failed"
    assert end.details["totals"] == {"count": 0, "drained": 0, "kept": 1}

    # The next run, with the store back, drains both.
    blobs.fail = None
    queues.next_run()
    reporter.outcomes.clear()
    run_drain(rt)
    assert queues.messages["onboarding-poison"] == {}
    assert [r.details["drained"] for r in poison_rows(reporter)] == [True, True]
    assert blobs.blobs[f"sha256/{hashlib.sha256(LONG.encode()).hexdigest()}"] == LONG.encode()
