"""Run-time settings of the stand-in (command-line options map onto these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Behaviour:
    page_size: int = 50
    """Items per page for every list (VMs, disks, snapshots, groups) before `nextLink`."""
    operation_seconds: float = 1.0
    """Stand-in seconds a snapshot create/delete stays InProgress."""
    hydration_seconds: float = 600.0
    """Stand-in seconds a Premium SSD v2 / Ultra snapshot takes from 0 to 100 completionPercent."""
    retry_after_scale: float = 1.0
    """Multiplies every Retry-After the stand-in sends (LRO polling and 429s)."""
    lro_initial_retry_after: float = 2.0
    """Retry-After on a snapshot PUT's 202 (2 in the recordings)."""
    lro_poll_retry_after: float = 10.0
    """Retry-After on an InProgress operation status (10 in the recordings)."""
    incremental_limit: int = 500
    """Incremental snapshots per disk (`SnapshotsLimitReached` beyond)."""
    burst_limit: int = 7
    burst_window_seconds: float = 300.0
    """At most `burst_limit` incremental snapshots of a disk in this many stand-in seconds."""
    pending_limit: int = 3
    region_snapshot_limit: int = 75000
    """Snapshots per subscription and region, Standard_ZRS and LRS counted apart."""
    untidy_shapes: bool = False
    """Compute list and GET bodies as Azure writes them: `creationData.sourceResourceId` without
    its leading slash, seven fractional digits and `+00:00`, ids in mixed case (`untidy.py`)."""
    vm_create_seconds: float = 60.0
    """Stand-in seconds a VM created through ARM stays ProvisioningState/creating."""
    boot_seconds: float = 45.0
    """Then seconds until PowerState/running."""
    agent_seconds: float = 30.0
    """Then seconds until the VM agent reports Ready (never, for a scripted boot failure)."""
    vm_delete_seconds: float = 30.0
    """Stand-in seconds a VM delete runs; then its disks and NICs are free."""

    def scaled(self, seconds: float) -> str:
        """Retry-After in whole seconds (the SDK parses it as an int), after scaling."""
        return str(max(0, round(seconds * self.retry_after_scale)))
