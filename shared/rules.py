"""The rules no write may break, in one place: the planner decides with them, and every worker
applies them again to what it reads from Azure just before it writes.

A queue message is a request, never authority: anyone with queue data rights could have
written it, and a plan goes stale while it waits. So a prune re-reads its victim and the disk's
snapshot of the night, and a snapshot create reads by name before it PUTs (an ARM PUT replaces
every tag, a user's `lifeboat:hold` included).
A remediation (enable protection, an on-demand backup) writes for a VM a message named: the VM
is read again and must still be served and in scope (`vm_out_of_scope`).
"""

from __future__ import annotations

from collections.abc import Collection, Container, Sequence
from dataclasses import dataclass

from shared.model import Snapshot, Vm
from shared.names import Status
from shared.policies import PolicySet
from shared.snapshots import MAX_SNAPSHOTS_PER_DISK, is_held, name_matches_source


def same_id(a: str | None, b: str | None) -> bool:
    """ARM ids compared as Azure does: any casing, with or without the leading slash."""
    if not a or not b:
        return False
    return a.strip("/").lower() == b.strip("/").lower()


@dataclass(frozen=True, slots=True)
class SnapshotId:
    """The parts of a snapshot's ARM id (`parse_snapshot_id` gives None for any other id)."""

    subscription_id: str
    resource_group: str
    name: str


def parse_snapshot_id(resource_id: str) -> SnapshotId | None:
    parts = resource_id.strip("/").split("/")
    if len(parts) != 8:
        return None
    subs, sub, groups, group, providers, namespace, kind, name = parts
    fixed = tuple(p.lower() for p in (subs, groups, providers, namespace, kind))
    if fixed != ("subscriptions", "resourcegroups", "providers", "microsoft.compute", "snapshots"):
        return None
    if not (sub and group and name):
        return None
    return SnapshotId(sub.lower(), group, name)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a write must not happen: `status` is the row's (held, blocked), `forged` when only
    a message that Lifeboat's planner would never write could ask for it."""

    status: Status
    reason: str
    forged: bool = False


def where_lifeboat_deletes(
    snapshot_id: str, *, subscriptions: Collection[str], snapshot_group: str
) -> Verdict | None:
    """Before any read: a prune may only name a snapshot in a served subscription's group."""
    parsed = parse_snapshot_id(snapshot_id)
    if parsed is None:
        return Verdict(Status.REFUSED, f"{snapshot_id!r} is not a snapshot id", forged=True)
    if parsed.subscription_id not in subscriptions:
        reason = f"subscription {parsed.subscription_id} is not one Lifeboat serves"
        return Verdict(Status.REFUSED, reason, forged=True)
    if parsed.resource_group.lower() != snapshot_group.lower():
        reason = f"{parsed.name} is in {parsed.resource_group}, not Lifeboat's {snapshot_group}"
        return Verdict(Status.REFUSED, reason, forged=True)
    return None


def may_delete(
    victim: Snapshot,
    *,
    source_id: str,
    tonight: Snapshot | None,
    orphan: bool,
    of_disk: Sequence[Snapshot] | None = None,
) -> Verdict | None:
    """None when the victim, as Azure shows it now, may be deleted; else why not.

    Ownership is platform-written (`creationData` matches the name's hash and the disk the
    message names), never a tag; a hold tag keeps it; the disk's snapshot of the night must be
    good and must not be the victim (so the newest good snapshot is never the one deleted).

    One exception to "tonight's must be good", so a disk at Azure's 500 snapshots never
    deadlocks (its create is refused until some are deleted): when tonight's snapshot is not
    there at all and `of_disk` (the disk's snapshots in Lifeboat's group, as listed now) holds
    at least 500, the victim may go unless it is the disk's newest good snapshot.
    """
    if not name_matches_source(victim):
        reason = f"{victim.name} is not Lifeboat's: its name does not match its creationData"
        return Verdict(Status.REFUSED, reason, forged=True)
    if not same_id(victim.source_resource_id, source_id):
        reason = f"{victim.name} was taken from {victim.source_resource_id}, not {source_id}"
        return Verdict(Status.REFUSED, reason, forged=True)
    if is_held(victim):
        return Verdict(Status.HELD, "held: the snapshot carries lifeboat:hold")
    if orphan:
        return None  # the disk is gone: no snapshot of the night to keep
    if tonight is not None and same_id(tonight.id, victim.id):
        reason = f"{victim.name} is the disk's snapshot of the night, its newest"
        return Verdict(Status.REFUSED, reason, forged=True)
    if tonight is None and of_disk is not None and at_the_disk_limit(of_disk, source_id):
        newest = newest_good(of_disk)
        if newest is None or same_id(newest.id, victim.id):
            return Verdict(Status.BLOCKED, "the disk's newest good snapshot (the disk is at 500)")
        return None
    if tonight is None or not tonight.good:
        return Verdict(Status.BLOCKED, "tonight's snapshot is not confirmed good")
    return None


def at_the_disk_limit(of_disk: Sequence[Snapshot], source_id: str) -> bool:
    """Azure's 500 snapshots of the disk are there (counted in Lifeboat's group, any state)."""
    taken = [s for s in of_disk if same_id(s.source_resource_id, source_id)]
    return len(taken) >= MAX_SNAPSHOTS_PER_DISK


def newest_good(snapshots: Sequence[Snapshot]) -> Snapshot | None:
    good = [s for s in snapshots if s.good and s.time_created is not None]
    return max(good, key=lambda s: (s.time_created, s.name), default=None)


def vm_out_of_scope(
    vm: Vm | None,
    *,
    subscriptions: Collection[str],
    drill_groups: Container[str],
    policies: PolicySet,
    policy: str | None = None,
) -> str | None:
    """Why Lifeboat may not write for this VM as Azure shows it now; None when it may.

    `vm` is a fresh read (None: it is gone). Served subscription, not a drill group's copy, a
    policy by its tags now (and the same one as planned, when `policy` names it).
    """
    if vm is None:
        return "the VM no longer exists"
    if vm.subscription_id.lower() not in subscriptions:
        return f"subscription {vm.subscription_id.lower()} is not one Lifeboat serves"
    if vm.resource_group.lower() in drill_groups:
        return f"{vm.name} is in drill resource group {vm.resource_group}"
    chosen, why = policies.for_tags(vm.tags)
    if chosen is None:
        return f"no longer in scope: {why}"
    if policy is not None and chosen.name != policy:
        return f"no longer in scope of policy {policy}: {why}"
    return None
