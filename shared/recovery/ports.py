"""The port a recovery talks through (`shared/adapters/recovery.py` implements it on Azure).

Writes start Azure's work and return; the recovery looks again until it is done. Ids are full
ARM ids; a resource that does not exist reads as None.
"""

from __future__ import annotations

from typing import Protocol

from shared.model import DrillResource, Snapshot, VmStatus
from shared.ports import DrillDiskRequest, DrillVmRequest
from shared.recovery.model import Nic, RecoveryVm, SourceDisk, Usage


class PreconditionFailedError(Exception):
    """Azure answered 412: the VM changed since its ETag was read (someone else updated it)."""


class RecoveryCloud(Protocol):
    def caller(self) -> str:
        """Who the recovery runs as: the credential's `upn` and `oid` (for the record)."""
        ...

    def get_vm(self, vm_id: str) -> RecoveryVm | None: ...

    def get_disk(self, disk_id: str) -> SourceDisk | None: ...

    def list_snapshots(self, subscription_id: str, resource_group: str) -> list[Snapshot]: ...

    def get_nic(self, nic_id: str) -> Nic | None: ...

    def get_subnet_location(self, subnet_id: str) -> str | None:
        """The region of the subnet's VNet; None when the subnet does not exist."""
        ...

    def list_usages(self, subscription_id: str, location: str) -> list[Usage]: ...

    def get_resource(self, resource_id: str) -> DrillResource | None: ...

    def list_disks(self, subscription_id: str, resource_group: str) -> list[DrillResource]:
        """The managed disks of a group (where a restore from a recovery point leaves its own)."""
        ...

    def get_vm_status(self, vm_id: str) -> VmStatus | None: ...

    def begin_create_disk(self, request: DrillDiskRequest) -> None: ...

    def begin_create_nic(
        self,
        nic_id: str,
        location: str,
        subnet_id: str,
        tags: dict[str, str],
        private_ip: str | None = None,
    ) -> None: ...

    def begin_create_vm(self, request: DrillVmRequest) -> None: ...

    def begin_deallocate(self, vm_id: str) -> None: ...

    def begin_start(self, vm_id: str) -> None: ...

    def update_vm_disks(
        self,
        vm: RecoveryVm,
        os_disk_id: str,
        data_disks: tuple[tuple[int, str], ...],
    ) -> None:
        """PUT the VM with its storage profile changed, `If-Match: vm.etag`; raises
        PreconditionFailedError when the VM changed since it was read."""
        ...

    def merge_tags(self, resource_id: str, tags: dict[str, str]) -> None: ...

    def delete_tags(self, resource_id: str, keys: list[str]) -> None: ...
