"""Where a recovery restores from: one of Lifeboat's snapshot sets of the VM.

A set is the VM's snapshots of one slot. Its id is the `lifeboat:set` tag rotation writes on each
of them (`shared.snapshots.set_id(vm id, slot)`, 12 characters); `--set` takes that id or the
slot itself (`yyyymmddHHMM`). Only Lifeboat's own snapshots count (its group, its name for the
disk, the platform-written creationData of that disk: `shared.snapshots.is_owned`), and only
good ones (provisioned and, for Premium SSD v2 and Ultra, fully copied).

Snapshots carry no LUN: the lineage of a snapshot is its creationData (the disk it was taken
from), and the LUN is where that disk sits on the VM now. A set is complete when every disk the
VM had at that slot has its snapshot in it; the disks the VM had are those attached now whose
lineage began at or before the slot (a disk attached later is not missing from an older set).
A snapshot of the slot whose disk is no longer attached has no LUN to go to and is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.model import Snapshot
from shared.recovery.model import RecoveryVm, SetMember, SnapshotSet
from shared.snapshots import owned_by_slot, parse_slot, set_id, slot_of

SLOT_LENGTH = 12


class NoSetError(ValueError):
    """No set can be used; the message says why and which set to use instead, if any."""


def snapshot_sets(vm: RecoveryVm, snapshots: Iterable[Snapshot], group: str) -> list[SnapshotSet]:
    """Every set of the VM, newest first."""
    luns = {a.disk_id.lower(): (a.lun, a.disk_id) for a in vm.attachments if a.disk_id}
    by_slot = owned_by_slot(luns, snapshots, group)
    first_seen: dict[str, str] = {}
    for slot in sorted(by_slot):
        for disk in by_slot[slot]:
            first_seen.setdefault(disk, slot)
    sets = []
    for slot in sorted(by_slot, reverse=True):
        taken = by_slot[slot]
        members = [
            SetMember(
                lun=luns[disk][0],
                disk_id=luns[disk][1],
                snapshot_id=snap.id,
                snapshot_name=snap.name,
                time_created=snap.time_created or parse_slot(slot),
            )
            for disk, snap in taken.items()
        ]
        members.sort(key=lambda m: -1 if m.lun is None else m.lun)
        had = {disk for disk, seen in first_seen.items() if seen <= slot}
        missing = tuple(sorted(luns[disk][1] for disk in had - taken.keys()))
        sets.append(SnapshotSet(slot, set_id(vm.id, slot), tuple(members), missing))
    return sets


def choose_set(
    vm: RecoveryVm,
    sets: list[SnapshotSet],
    *,
    at: datetime | None = None,
    wanted: str | None = None,
) -> SnapshotSet:
    """The set `--set` names, or the newest complete set at or before `at` (now when None).

    Raises NoSetError naming the missing disk and the newest complete set to use instead."""
    if wanted is not None:
        key = wanted.strip().lower()
        found = next((s for s in sets if key in (s.slot, s.set_id)), None)
        if found is None:
            raise NoSetError(
                f"{vm.name} has no snapshot set {wanted!r} (a set id or a slot yyyymmddHHMM)"
                + _offer(sets, None)
            )
        if not found.complete:
            raise NoSetError(_incomplete(vm, found) + _offer(sets, None))
        return found
    eligible = [s for s in sets if at is None or s.slot <= slot_of(at)]
    if not eligible:
        when = "" if at is None else f" at or before {at.isoformat()}"
        raise NoSetError(f"{vm.name} has no snapshot set{when}" + _offer(sets, None))
    newest = eligible[0]
    if not newest.complete:
        raise NoSetError(_incomplete(vm, newest) + _offer(sets, at))
    return newest


def _incomplete(vm: RecoveryVm, chosen: SnapshotSet) -> str:
    if not any(m.lun is None for m in chosen.members):
        return f"snapshot set {chosen.slot} ({chosen.set_id}) of {vm.name} has no OS disk snapshot"
    names = ", ".join(d.rsplit("/", 1)[-1] for d in chosen.missing)
    return (
        f"snapshot set {chosen.slot} ({chosen.set_id}) of {vm.name} is incomplete: "
        f"no good snapshot of {names}"
    )


def _offer(sets: list[SnapshotSet], at: datetime | None) -> str:
    complete = [s for s in sets if s.complete and (at is None or s.slot <= slot_of(at))]
    if not complete:
        return "; no complete set exists"
    best = complete[0]
    return f"; the newest complete set is {best.slot} (--set {best.set_id})"


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (a `Z` or an offset required) or a slot `yyyymmddHHMM` (UTC)."""
    value = text.strip()
    if len(value) == SLOT_LENGTH and value.isdigit():
        return parse_slot(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--at {text!r} is not a time: use RFC 3339 with a zone (2026-11-27T02:30:00Z) "
            "or a slot (202611270200)"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"--at {text!r} has no time zone: add Z or an offset")
    return parsed
