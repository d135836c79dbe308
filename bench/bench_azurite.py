"""How fast the local Azurite answers queue calls as a queue grows.

The rotation bench's prune phase puts one message per disk on `rotation-prune`, most of them
hidden by pacing delays. This measures, for queues of several lengths, the calls the local host
makes per message: send, receive (a batch of 16, as host.json's batchSize) and the message count
`wait_idle` reads, each for a fixed time against one Azurite started for the purpose. Messages are
paced as Lifeboat paces them (20 a second), so almost all are invisible while it measures.

    python -m bench azurite
"""

from __future__ import annotations

import time
from collections.abc import Callable

from azure.storage.queue import QueueClient

from cli.azurite import running_azurite

LENGTHS = (1_000, 3_000, 11_000)
BODY = "x" * 900  # about the size of an encoded rotation-prune message
PACED_PER_SECOND = 20
SECONDS = 3.0


def _rate(call: Callable[[], object]) -> float:
    started = time.monotonic()
    count = 0
    while time.monotonic() - started < SECONDS:
        call()
        count += 1
    return count / (time.monotonic() - started)


def main() -> None:
    rows: list[tuple[int, float, float, float]] = []
    with running_azurite() as azurite:
        for length in LENGTHS:
            queue = QueueClient.from_connection_string(azurite.connection_string, f"len{length}")
            queue.create_queue()
            started = time.monotonic()
            for i in range(length):
                queue.send_message(BODY, visibility_timeout=i // PACED_PER_SECOND)
            sends = length / (time.monotonic() - started)

            def receive(q: QueueClient = queue) -> object:
                batch = q.receive_messages(
                    messages_per_page=16, max_messages=16, visibility_timeout=600
                )
                return list(batch)

            receives = _rate(receive)
            counts = _rate(queue.get_queue_properties)
            rows.append((length, sends, receives, counts))
            queue.delete_queue()
    print(f"{'messages in queue':>18} {'send/s':>8} {'receive/s':>10} {'count/s':>8}")
    for length, sends, receives, counts in rows:
        print(f"{length:>18} {sends:>8.0f} {receives:>10.1f} {counts:>8.0f}")
