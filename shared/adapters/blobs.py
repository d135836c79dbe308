"""Azure Storage blobs: one private container, each blob written once (its name is its hash);
and the restore staging accounts' containers, which Azure Backup's restores leave behind."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings, ExponentialRetry

from shared.ports import BlobStoreError, StagingBlobsError, StagingContainer

log = logging.getLogger(__name__)

_TEXT = ContentSettings(content_type="text/plain; charset=utf-8")


class StorageBlobs:
    """The `BlobStore` port on Azure Storage (or Azurite).

    A write sends If-None-Match: * (`overwrite=False`): a blob that exists already holds the same
    bytes, so it is left as it is. The container is made on first need (private: no public access);
    in Azure the infra has made it and the app's role may not create containers.
    """

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self._container = service.get_container_client(container)

    @classmethod
    def from_connection_string(cls, connection_string: str, container: str) -> StorageBlobs:
        return cls(BlobServiceClient.from_connection_string(connection_string), container)

    @classmethod
    def from_identity(cls, blob_service_uri: str, credential: Any, container: str) -> StorageBlobs:
        return cls(BlobServiceClient(blob_service_uri, credential=credential), container)

    @property
    def container(self) -> str:
        return str(self._container.container_name)

    def put_if_absent(self, name: str, data: bytes) -> None:
        try:
            try:
                self._upload(name, data)
            except ResourceNotFoundError:
                log.info("container %s does not exist yet; creating it", self.container)
                _create_private(self._container)
                self._upload(name, data)
        except AzureError as e:
            raise BlobStoreError(f"cannot write blob {self.container}/{name}: {e}") from e

    def _upload(self, name: str, data: bytes) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._container.upload_blob(name, data, overwrite=False, content_settings=_TEXT)


def _create_private(container: ContainerClient) -> None:
    with contextlib.suppress(ResourceExistsError):
        container.create_container()  # no public_access: private


T = TypeVar("T")
# A staging account that does not answer should not hold a drill's report step for minutes:
# one retry a second later, then the sweeper's next pass tries again.
_CONNECT_SECONDS = 10
_READ_SECONDS = 30


def _retry() -> ExponentialRetry:
    return ExponentialRetry(
        initial_backoff=1, increment_base=2, retry_total=1, random_jitter_range=0
    )


class StorageStagingBlobs:
    """The `StagingBlobs` port on Azure Storage: each staging account at its endpoint with
    Lifeboat's identity, or (locally) one blob service, Azurite's, standing in for all of them.
    A refusal (403: no Storage Blob Data Contributor on the account) or an account that does not
    answer is a StagingBlobsError saying which."""

    def __init__(self, service_for: Callable[[str], BlobServiceClient]) -> None:
        self._service_for = service_for
        self._services: dict[str, BlobServiceClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_identity(cls, endpoint_template: str, credential: Any) -> StorageStagingBlobs:
        """`endpoint_template` names `{account}` (https://{account}.blob.core.windows.net)."""
        return cls(
            lambda account: BlobServiceClient(
                endpoint_template.format(account=account),
                credential=credential,
                retry_policy=_retry(),
                connection_timeout=_CONNECT_SECONDS,
                read_timeout=_READ_SECONDS,
            )
        )

    @classmethod
    def from_connection_string(cls, connection_string: str) -> StorageStagingBlobs:
        """One blob service for every staging account (Azurite, locally)."""
        return cls(
            lambda account: BlobServiceClient.from_connection_string(
                connection_string,
                retry_policy=_retry(),
                connection_timeout=_CONNECT_SECONDS,
                read_timeout=_READ_SECONDS,
            )
        )

    def _service(self, account: str) -> BlobServiceClient:
        with self._lock:
            if account not in self._services:
                self._services[account] = self._service_for(account)
            return self._services[account]

    def list_containers(self, account: str, prefix: str) -> list[StagingContainer]:
        return _staging(
            account,
            f"list containers {prefix}*",
            lambda: [
                StagingContainer(c.name, c.last_modified)
                for c in self._service(account).list_containers(name_starts_with=prefix)
            ],
        )

    def list_blobs(self, account: str, container: str) -> list[str]:
        def listed() -> list[str]:
            client = self._service(account).get_container_client(container)
            try:
                return [str(b.name) for b in client.list_blobs()]
            except ResourceNotFoundError:
                return []

        return _staging(account, f"list blobs of {container}", listed)

    def delete_blob(self, account: str, container: str, name: str) -> bool:
        def deleted() -> bool:
            try:
                self._service(account).get_blob_client(container, name).delete_blob()
            except ResourceNotFoundError:
                return False
            return True

        return _staging(account, f"delete {container}/{name}", deleted)

    def delete_container(self, account: str, container: str) -> bool:
        def deleted() -> bool:
            try:
                self._service(account).get_container_client(container).delete_container()
            except ResourceNotFoundError:
                return False
            return True

        return _staging(account, f"delete container {container}", deleted)


class NoStagingBlobs:
    """The `StagingBlobs` port when no blob endpoint is set: every call says so."""

    def _off(self, *args: object) -> Any:
        raise StagingBlobsError(
            "no blob endpoint for the staging accounts (RESTORE_STAGING_BLOB_ENDPOINT is unset)"
        )

    list_containers = list_blobs = delete_blob = delete_container = _off


def _staging(account: str, what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except HttpResponseError as e:
        code = getattr(e, "error_code", None) or ""
        if e.status_code == 403:
            raise StagingBlobsError(
                f"staging account {account} refused to {what} (403 {code}): Lifeboat's identity "
                "needs Storage Blob Data Contributor on it"
            ) from e
        raise StagingBlobsError(
            f"staging account {account} could not {what} ({e.status_code} {code})"
        ) from e
    except AzureError as e:
        raise StagingBlobsError(
            f"staging account {account} did not answer to {what}: {type(e).__name__}"
        ) from e
