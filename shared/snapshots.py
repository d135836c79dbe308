"""Snapshot names, tags and ownership: how Lifeboat knows a snapshot is its own.

A snapshot is Lifeboat's when it sits in Lifeboat's snapshot resource group of its
subscription, its name is `lb-{h}-{slot}` for the disk it was taken from, and its
platform-written `creationData` names that disk (id and uniqueId). Tags are never enough:
anyone who can write tags could dress a snapshot up as Lifeboat's.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Collection, Iterable
from datetime import UTC, datetime

from shared.model import Disk, Snapshot

# Azure's limit of incremental snapshots per disk (REFERENCE.md), counted over every snapshot of
# the disk, in any group: Lifeboat sees only its own group's.
MAX_SNAPSHOTS_PER_DISK = 500
NAME_PATTERN = re.compile(r"^lb-([a-z2-7]{16})-(\d{12})$")
HOLD_TAG = "lifeboat:hold"
MANAGED_TAG = "lifeboat:managed"
POLICY_TAG = "lifeboat:policy"
SLOT_TAG = "lifeboat:slot"
SET_TAG = "lifeboat:set"
RUN_TAG = "lifeboat:run"


def disk_hash(disk_id: str, unique_id: str) -> str:
    """First 16 characters of base32(sha256(lower(disk id) + "|" + uniqueId)), lower-case."""
    digest = hashlib.sha256(f"{disk_id.lower()}|{unique_id}".encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:16].lower()


def slot_of(occurrence: datetime) -> str:
    """The scheduled occurrence in UTC as yyyymmddHHMM."""
    if occurrence.tzinfo is None:
        raise ValueError("a slot needs a timezone-aware time")
    return occurrence.astimezone(UTC).strftime("%Y%m%d%H%M")


def parse_slot(slot: str) -> datetime:
    return datetime.strptime(slot, "%Y%m%d%H%M").replace(tzinfo=UTC)


def snapshot_name(disk_id: str, unique_id: str, slot: str) -> str:
    return f"lb-{disk_hash(disk_id, unique_id)}-{slot}"


def set_id(vm_id: str, slot: str) -> str:
    """The `lifeboat:set` of one VM's snapshots in one slot: deterministic, short."""
    digest = hashlib.sha256(f"{vm_id.lower()}|{slot}".encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:12].lower()


def name_matches_source(snapshot: Snapshot) -> bool:
    """The name is `lb-{h}-{slot}` with `h` computed from the snapshot's own creationData."""
    match = NAME_PATTERN.match(snapshot.name.lower())
    if not match or not snapshot.source_resource_id or not snapshot.source_unique_id:
        return False
    source = "/" + snapshot.source_resource_id.strip("/")  # Azure's lists may drop the slash
    return match.group(1) == disk_hash(source, snapshot.source_unique_id)


def ownership_failure(snapshot: Snapshot, snapshot_group: str) -> str | None:
    """The ownership rule a snapshot fails, in words (None: it is Lifeboat's)."""
    if snapshot.resource_group.lower() != snapshot_group.lower():
        return f"not in Lifeboat's group {snapshot_group}"
    match = NAME_PATTERN.match(snapshot.name.lower())
    if not match:
        return "not named lb-<disk hash>-<slot>"
    if not snapshot.source_resource_id or not snapshot.source_unique_id:
        return "its creationData names no source disk"
    if not name_matches_source(snapshot):
        return (
            "its name's hash is not that of the disk its creationData names "
            f"({snapshot.source_resource_id.strip('/').rsplit('/', 1)[-1]}, id and uniqueId)"
        )
    return None


def slot_of_name(name: str) -> str | None:
    match = NAME_PATTERN.match(name.lower())
    return match.group(2) if match else None


def is_owned(snapshot: Snapshot, snapshot_group: str) -> bool:
    """In Lifeboat's group, and named for the disk its creationData names."""
    return snapshot.resource_group.lower() == snapshot_group.lower() and name_matches_source(
        snapshot
    )


def owned_by_slot(
    disk_ids: Collection[str], snapshots: Iterable[Snapshot], snapshot_group: str
) -> dict[str, dict[str, Snapshot]]:
    """Lifeboat's own good snapshots of these disks (ids in lower case), by slot, then by disk
    id: the sets a drill or a recovery can restore from."""
    by_slot: dict[str, dict[str, Snapshot]] = {}
    for snapshot in snapshots:
        source = "/" + (snapshot.source_resource_id or "").strip("/").lower()
        slot = slot_of_name(snapshot.name)
        if source not in disk_ids or slot is None or not snapshot.good:
            continue
        if not is_owned(snapshot, snapshot_group):
            continue
        by_slot.setdefault(slot, {})[source] = snapshot
    return by_slot


def taken_from(snapshot: Snapshot, disk: Disk) -> bool:
    """creationData names this very disk: same id (any casing) and the same uniqueId."""
    source = (snapshot.source_resource_id or "").strip("/").lower()
    return (
        source == disk.id.strip("/").lower() and (snapshot.source_unique_id or "") == disk.unique_id
    )


def is_held(snapshot: Snapshot) -> bool:
    return hold_of(snapshot) is not None


def hold_of(snapshot: Snapshot) -> str | None:
    """Who holds the snapshot by tag: the `lifeboat:hold` value (any key casing and spacing), or
    None when it carries no hold tag."""
    for key, value in snapshot.tags.items():
        if key.strip().lower() == HOLD_TAG:
            return value
    return None
