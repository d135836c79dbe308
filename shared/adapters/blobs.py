"""Azure Storage blobs: one private container, each blob written once (its name is its hash)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from shared.ports import BlobStoreError

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
