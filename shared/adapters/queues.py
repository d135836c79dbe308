"""Azure Storage queues, base64 on the wire like the Functions host expects."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64EncodePolicy,
)

from shared.ports import ReceivedMessage

log = logging.getLogger(__name__)

# How long a drained message stays hidden while it is reported, before it is deleted.
_RECEIVE_VISIBILITY_SECONDS = 300


class StorageQueues:
    """The `Queues` port on Azure Storage (or Azurite).

    Sends encode text as base64 (TextBase64EncodePolicy). Receives decode base64 themselves so a
    message that is not base64 (the host poisons those) is still read, as raw text.
    """

    def __init__(self, service: QueueServiceClient) -> None:
        self._service = service
        self._senders: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str) -> StorageQueues:
        return cls(QueueServiceClient.from_connection_string(connection_string))

    @classmethod
    def from_identity(cls, queue_service_uri: str, credential: Any) -> StorageQueues:
        return cls(QueueServiceClient(queue_service_uri, credential=credential))

    def _sender(self, queue: str) -> QueueClient:
        with self._lock:
            client = self._senders.get(queue)
            if client is None:
                client = self._service.get_queue_client(
                    queue, message_encode_policy=TextBase64EncodePolicy()
                )
                self._senders[queue] = client
            return client

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        client = self._sender(queue)
        try:
            client.send_message(text, visibility_timeout=visibility_timeout or None)
        except ResourceNotFoundError:
            log.info("queue %s does not exist yet; creating it", queue)
            self._ensure_queue(client)
            client.send_message(text, visibility_timeout=visibility_timeout or None)

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return sorted(q.name for q in self._service.list_queues() if q.name.endswith(suffix))

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[ReceivedMessage]:
        client = self._service.get_queue_client(queue)
        try:
            batch = list(
                client.receive_messages(
                    messages_per_page=min(max_messages, 32),
                    max_messages=max_messages,
                    visibility_timeout=_RECEIVE_VISIBILITY_SECONDS,
                )
            )
        except ResourceNotFoundError:
            return
        for message in batch:
            raw = str(message.content)
            yield ReceivedMessage(
                id=message.id,
                pop_receipt=str(message.pop_receipt),
                text=decode_base64_text(raw),
                raw=raw,
                dequeue_count=int(message.dequeue_count or 0),
            )

    def delete(self, queue: str, message: ReceivedMessage) -> None:
        client = self._service.get_queue_client(queue)
        try:
            client.delete_message(message.id, message.pop_receipt)
        except ResourceNotFoundError:
            log.info("message %s was already gone from %s", message.id, queue)

    @staticmethod
    def _ensure_queue(client: QueueClient) -> None:
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()


def decode_base64_text(raw: str) -> str | None:
    """The UTF-8 text inside base64 `raw`, or None when it is not base64 UTF-8."""
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
