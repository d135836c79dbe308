"""The ports the use cases talk through. Adapters in `shared/adapters` implement them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.model import Outcome
from shared.settings import Settings


class Clock(Protocol):
    """The only way product code learns the time. Always timezone-aware UTC."""

    def now(self) -> datetime: ...


class Reporter(Protocol):
    """Sends outcome records to wherever the ops team reads them."""

    def report(self, outcomes: Iterable[Outcome]) -> None: ...


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A queue message as text (already base64-decoded when it could be), with its receipt."""

    id: str
    pop_receipt: str
    text: str | None
    raw: str
    dequeue_count: int


class Queues(Protocol):
    """Storage queues, base64 on the wire."""

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None: ...

    def list_queues(self, *, suffix: str = "") -> list[str]: ...

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[ReceivedMessage]: ...

    def delete(self, queue: str, message: ReceivedMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class Runtime:
    """The ports and settings one worker process runs with; built once by `services()`."""

    settings: Settings
    clock: Clock
    reporter: Reporter
    queues: Queues
