"""The BlobStore adapter with the real SDK against Azurite, and the poison drain through the real
queue and blob adapters: the blob is written before the message leaves its queue. The
StagingBlobs adapter against Azurite: lists, deletes, refusals and silence said as such."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from cli.azurite import ACCOUNT_KEY, Azurite
from cli.processes import free_port
from shared import dispatch, poison
from shared.adapters.blobs import NoStagingBlobs, StorageBlobs, StorageStagingBlobs
from shared.adapters.queues import StorageQueues
from shared.names import Job
from shared.ports import BlobStoreError, StagingBlobsError
from shared.settings import Settings
from tests.conftest import base_settings
from tests.fakes import FixedClock, MemoryReporter, runtime

NOW = datetime(2026, 11, 27, 2, 15, tzinfo=UTC)
WRONG_KEY = "A" * len(ACCOUNT_KEY)


def container_name() -> str:
    return f"poison-{uuid.uuid4().hex[:12]}"


def blobs_of(azurite: Azurite, container: str, *, key: str = ACCOUNT_KEY) -> StorageBlobs:
    connection = azurite.connection_string.replace(ACCOUNT_KEY, key)
    return StorageBlobs.from_connection_string(connection, container)


def test_a_blob_is_written_once_into_a_private_container_made_on_first_need(
    azurite: Azurite,
) -> None:
    container = container_name()
    blobs = blobs_of(azurite, container)
    blobs.put_if_absent("sha256/abc", "é full text".encode())
    blobs.put_if_absent("sha256/abc", b"other bytes")  # a repeat leaves the first as it is

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.get_container_client(container)
    assert client.get_container_properties().public_access is None
    blob = client.get_blob_client("sha256/abc")
    assert blob.download_blob().readall() == "é full text".encode()
    assert blob.get_blob_properties().content_settings.content_type.startswith("text/plain")
    assert blobs.container == container


def test_a_store_that_refuses_raises_blob_store_error(azurite: Azurite) -> None:
    with pytest.raises(BlobStoreError, match="cannot write blob poison-"):
        blobs_of(azurite, container_name(), key=WRONG_KEY).put_if_absent("sha256/x", b"x")


@pytest.mark.parametrize("key", [ACCOUNT_KEY, WRONG_KEY], ids=["stored", "store-refuses"])
def test_the_drain_deletes_a_message_only_after_its_blob_is_written(
    azurite: Azurite, queue_service: QueueServiceClient, key: str
) -> None:
    container = container_name()
    text = json.dumps({"type": "onboarding", "note": "€" * 700})
    poison_queue = QueueClient.from_connection_string(
        azurite.connection_string,
        "onboarding-poison",
        message_encode_policy=TextBase64EncodePolicy(),
    )
    poison_queue.create_queue()
    poison_queue.send_message(text)
    reporter = MemoryReporter()
    rt = runtime(
        Settings.from_env(base_settings()),
        FixedClock(NOW),
        reporter,
        StorageQueues.from_connection_string(azurite.connection_string),
        blobs=blobs_of(azurite, container, key=key),
    )
    drained = poison.drain_poison_queues(
        dispatch.Context(rt, job=Job.MAINTENANCE, run_id="drain-1", key="drain-1")
    )

    [row] = [o for o in reporter.outcomes if o.operation == "poison"]
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert row.details["sha256"] == digest
    assert len(row.details["message"].encode()) <= 1024
    left = queue_service.get_queue_client("onboarding-poison").get_queue_properties()
    if key == ACCOUNT_KEY:
        assert drained == 1
        assert left.approximate_message_count == 0
        assert row.details["blob"] == f"{container}/sha256/{digest}"
        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        blob = service.get_blob_client(container, f"sha256/{digest}")
        assert blob.download_blob().readall() == text.encode()
    else:
        assert drained == 0
        assert left.approximate_message_count == 1  # still there, for the next run
        assert row.details["drained"] is False
        assert "could not be stored" in (row.reason or "")


# ------------------------------------------------------------------------------ staging accounts


def test_staging_blobs_list_delete_and_say_what_was_not_there(azurite: Azurite) -> None:
    container = f"vhd{uuid.uuid4().hex}"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(container)
    service.get_blob_client(container, "config1.json").upload_blob(b"{}")
    staging = StorageStagingBlobs.from_connection_string(azurite.connection_string)

    listed = {c.name: c for c in staging.list_containers("stlbstageweu", container[:8])}
    assert container in listed
    assert listed[container].last_modified is not None
    assert staging.list_blobs("stlbstageweu", container) == ["config1.json"]
    assert staging.delete_blob("stlbstageweu", container, "config1.json") is True
    assert staging.delete_blob("stlbstageweu", container, "config1.json") is False
    assert staging.delete_container("stlbstageweu", container) is True
    assert staging.delete_container("stlbstageweu", container) is False
    assert staging.list_blobs("stlbstageweu", container) == []


def test_a_staging_account_that_refuses_or_does_not_answer_raises_naming_it(
    azurite: Azurite,
) -> None:
    refusing = StorageStagingBlobs.from_connection_string(
        azurite.connection_string.replace(ACCOUNT_KEY, WRONG_KEY)
    )
    with pytest.raises(StagingBlobsError, match=r"stlbstageweu refused .*\(403 .*Contributor"):
        refusing.delete_blob("stlbstageweu", "vhd0", "config1.json")
    silent = StorageStagingBlobs.from_identity(f"http://127.0.0.1:{free_port()}/{{account}}", None)
    with pytest.raises(StagingBlobsError, match="stlbstageweu did not answer"):
        silent.list_containers("stlbstageweu", "vhd")
    with pytest.raises(StagingBlobsError, match="RESTORE_STAGING_BLOB_ENDPOINT"):
        NoStagingBlobs().delete_blob("stlbstageweu", "vhd0", "config1.json")
