"""The night's rotation, decided: pure functions from inventory, policies and the slot to actions.

`plan_night` chooses, for one subscription, which disks of which VMs get a snapshot tonight (and
why the others do not), and paces the per-VM work to the write budgets. `plan_prunes` decides,
after the night's snapshots are confirmed, what retention removes from each disk and which of
those removals a safety rule blocks. Nothing here talks to Azure or reads the clock.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from shared.model import Disk, Snapshot, Vm
from shared.policies import DRILL_TAG, Policy, PolicySet, has_tag, tag_value
from shared.retention import UNLIMITED, RetentionPolicy, plan_retention
from shared.snapshots import (
    HOLD_TAG,
    MAX_SNAPSHOTS_PER_DISK,
    NAME_PATTERN,
    POLICY_TAG,
    hold_of,
    is_owned,
    ownership_failure,
    set_id,
    slot_of,
    snapshot_name,
    taken_from,
)

# Platform limits (REFERENCE.md): per disk, and per subscription and region (ZRS). Lifeboat sees
# only the snapshots in its own group (Azure Disk Backup's, and users' elsewhere, count too), so
# its counts are "seen by Lifeboat", and it warns before the limits: from 450 of a disk's 500,
# from 90% of a subscription and region's 75,000 (REGION_SNAPSHOT_LIMIT: the limit the plan warns
# against; Azure's own refusal is what rotation reports `blocked`, whatever this says).
MAX_SNAPSHOTS_PER_REGION = 75_000
DISK_WARNING_FROM = 450
REGION_WARNING_FRACTION = 0.9

# Snapshots one prune message deletes (rotation sends a disk's prunes in such chunks). A disk at
# Azure's 500 prunes at most one chunk a night without tonight's snapshot: a prune counts the
# disk's snapshots when it starts, and after one chunk the disk is no longer at 500.
PRUNES_PER_MESSAGE = 100

# Stable words for `Details.skip` of skip rows (the daily digests group by them).
NOT_ATTACHED = "not-attached"
UNMANAGED_DISK = "unmanaged-disk"
UNSNAPSHOTTABLE_SKUS: frozenset[str] = frozenset()
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A drill's resources carry `lifeboat:drill=<drill id>` (as `drill_id_of` makes them); a VM's own
# `lifeboat:drill` names a drill plan instead. A Site Recovery test VM gets the drill's id when
# its test failover completes: it is the drill's, never a VM to snapshot or onboard.
DRILL_ID_PATTERN = re.compile(r"lbd-[a-z2-7]{10}")


def drill_resource(tags: Mapping[str, str]) -> str | None:
    """The drill id a resource is tagged with (it is a drill's), or None."""
    value = (tag_value(tags, DRILL_TAG) or "").strip().lower()
    return value if DRILL_ID_PATTERN.fullmatch(value) else None


@dataclass(frozen=True, slots=True)
class RotationConfig:
    snapshot_group: str
    drill_groups: Container[str] = frozenset()
    max_disk_delete_fraction: float = 0.5
    max_estate_delete_fraction: float = 0.5
    arm_writes_per_second: float = 5.0
    snapshot_writes_per_second: float = 2.0
    region_snapshot_limit: int = MAX_SNAPSHOTS_PER_REGION


@dataclass(frozen=True, slots=True)
class DiskAction:
    disk_id: str
    disk_name: str
    unique_id: str
    location: str
    lun: int | None
    snapshot_name: str
    sku: str | None


@dataclass(frozen=True, slots=True)
class Skip:
    resource_id: str
    reason: str
    vm_id: str | None = None
    blocked: bool = False
    kind: str | None = None  # a stable word for the shape (TAG_TYPO, NOT_ATTACHED, ...)


@dataclass(frozen=True, slots=True)
class LimitWarning:
    """A platform limit the estate is near (or a policy could exceed), with what Lifeboat saw."""

    kind: str  # disk-near-limit, region-near-limit, policy-over-disk-limit, policies-over-region
    message: str
    resource_id: str | None = None  # the disk, for per-disk warnings
    region: str | None = None
    seen: float | None = None  # snapshots seen by Lifeboat (or a policy's bound)
    limit: int | None = None
    counted: str = "lifeboat-group"  # what `seen` counts: "lifeboat-group" or "subscription"


@dataclass(frozen=True, slots=True)
class VmPlan:
    vm: Vm
    policy: str
    set_id: str
    creates: tuple[DiskAction, ...]
    skips: tuple[Skip, ...]
    delay_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class NightPlan:
    slot: str
    vms: tuple[VmPlan, ...]
    skipped_vms: tuple[Skip, ...]
    warnings: tuple[LimitWarning, ...]
    window_seconds: float
    skipped_disks: tuple[Skip, ...] = ()  # tagged disks attached to no VM

    @property
    def creates(self) -> int:
        return sum(len(v.creates) for v in self.vms)


def plan_night(
    vms: Sequence[Vm],
    disks: Mapping[str, Disk],
    snapshots: Sequence[Snapshot],
    policies: PolicySet,
    config: RotationConfig,
    occurrence: datetime,
    counted: Sequence[Snapshot] | None = None,
) -> NightPlan:
    """Tonight's snapshot sets for one subscription. `disks` is keyed by lower-case disk id.
    `counted`: every snapshot of the subscription (COUNT_ALL_SNAPSHOTS), for the limit warnings;
    without it they count Lifeboat's group (`snapshots`), "as seen by Lifeboat"."""
    slot = slot_of(occurrence)
    weekday = occurrence.weekday()
    planned: list[VmPlan] = []
    skipped: list[Skip] = []
    shared_owner: dict[str, str] = {}
    for vm in sorted(vms, key=lambda v: v.id.lower()):
        if vm.resource_group.lower() in config.drill_groups:
            skipped.append(Skip(vm.id, "in a drill resource group", vm.id))
            continue
        drill = drill_resource(vm.tags)
        if drill is not None:
            skipped.append(Skip(vm.id, f"a drill's test VM ({DRILL_TAG}={drill})", vm.id))
            continue
        policy, why = policies.for_tags(vm.tags)
        if policy is None:
            mistake = policies.tag_mistake(vm.tags)
            skipped.append(Skip(vm.id, why, vm.id, kind=mistake.kind if mistake else None))
            continue
        if weekday not in policy.nights:
            skipped.append(
                Skip(vm.id, f"policy {policy.name!r} does not run on {WEEKDAYS[weekday]}", vm.id)
            )
            continue
        creates, skips = _classify_disks(vm, policy, disks, slot, shared_owner)
        planned.append(VmPlan(vm, policy.name, set_id(vm.id, slot), tuple(creates), tuple(skips)))
    paced, window = _pace(planned, config)
    warnings = quota_warnings(
        paced,
        disks,
        snapshots if counted is None else counted,
        policies,
        config,
        whole_subscription=counted is not None,
    )
    loose = unattached_disks(vms, disks, config)
    return NightPlan(slot, tuple(paced), tuple(skipped), tuple(warnings), window, tuple(loose))


def unattached_disks(
    vms: Sequence[Vm], disks: Mapping[str, Disk], config: RotationConfig
) -> list[Skip]:
    """Disks that carry a policy tag (any key spelling Lifeboat reads) but are attached to no VM:
    Lifeboat snapshots a VM's disks together, so the tag belongs on the VM."""
    attached = {a.disk_id.lower() for v in vms for a in v.attachments if a.disk_id}
    return [
        Skip(disk.id, "not attached to a VM (tag the VM)", kind=NOT_ATTACHED)
        for key, disk in sorted(disks.items())
        if key not in attached
        and has_tag(disk.tags, POLICY_TAG)
        and disk.resource_group.lower() not in config.drill_groups
    ]


def _classify_disks(
    vm: Vm,
    policy: Policy,
    disks: Mapping[str, Disk],
    slot: str,
    shared_owner: dict[str, str],
) -> tuple[list[DiskAction], list[Skip]]:
    creates: list[DiskAction] = []
    skips: list[Skip] = []
    for attachment in vm.attachments:
        label = "OS disk" if attachment.lun is None else f"data disk at LUN {attachment.lun}"
        where = attachment.disk_id or f"{vm.id}#{label}"
        if not policy.disks.includes(attachment.lun):
            skips.append(Skip(where, f"{label} not selected by policy {policy.name!r}", vm.id))
            continue
        if attachment.ephemeral:
            skips.append(Skip(where, "ephemeral OS disk: cannot be snapshotted", vm.id))
            continue
        if attachment.disk_id is None:
            reason = f"unmanaged disk: the {label} is a VHD in a storage account"
            skips.append(Skip(where, reason, vm.id, kind=UNMANAGED_DISK))
            continue
        disk = disks.get(attachment.disk_id.lower())
        if disk is None:
            skips.append(Skip(where, f"{label} not found in the subscription's disks", vm.id))
            continue
        if attachment.lun is None and (vm.security_type or "").lower() == "confidentialvm":
            skips.append(Skip(where, "Confidential VM OS disk: snapshots are not supported", vm.id))
            continue
        owner = shared_owner.setdefault(disk.id.lower(), vm.id)
        if owner != vm.id:
            skips.append(Skip(disk.id, f"shared disk: snapshotted with {owner}", vm.id))
            continue
        creates.append(
            DiskAction(
                disk_id=disk.id,
                disk_name=disk.name,
                unique_id=disk.unique_id,
                location=disk.location,
                lun=attachment.lun,
                snapshot_name=snapshot_name(disk.id, disk.unique_id, slot),
                sku=disk.sku,
            )
        )
    return creates, skips


def _pace(plans: list[VmPlan], config: RotationConfig) -> tuple[list[VmPlan], float]:
    """Spread VMs over time so writes stay within the ARM and Compute snapshot budgets.

    A VM's disks are in its region. The ARM write budget is shared among the regions in
    proportion to their creates, no region above its snapshot budget (what a capped region
    cannot use goes to the others), and each region's VMs are paced at their region's rate in
    list order: the regions run side by side and, where the budgets allow, finish together.
    Paced one after the other instead, an estate listed region by region ran at one region's
    snapshot budget where that is below the ARM one (Compute's HighCost family).
    """
    work: dict[str, int] = defaultdict(int)
    for plan in plans:
        work[_region_of(plan)] += len(plan.creates)
    rates = _share(
        {r: n for r, n in work.items() if n},
        config.arm_writes_per_second,
        config.snapshot_writes_per_second,
    )
    cursor: dict[str, float] = defaultdict(float)
    paced: list[VmPlan] = []
    for plan in plans:
        region = _region_of(plan)
        start = cursor[region]
        paced.append(
            VmPlan(plan.vm, plan.policy, plan.set_id, plan.creates, plan.skips, round(start, 3))
        )
        if plan.creates:
            cursor[region] = start + len(plan.creates) / rates[region]
    return paced, max(cursor.values(), default=0.0)


def _region_of(plan: VmPlan) -> str:
    return (plan.creates[0].location if plan.creates else plan.vm.location).lower()


def _share(work: Mapping[str, int], budget: float, cap: float) -> dict[str, float]:
    """Each region's write rate: `budget` in proportion to its `work`, none above `cap`; what a
    capped region cannot use is shared among the rest."""
    rates: dict[str, float] = {}
    left = dict(work)
    while left:
        total = sum(left.values())
        fair = {r: budget * n / total for r, n in left.items()}
        capped = {r for r, rate in fair.items() if rate >= cap}
        if not capped:
            return rates | fair
        for region in capped:  # each was due at least `cap`: what is left stays positive
            rates[region] = cap
            budget -= cap
            del left[region]
    return rates


def expected_kept(policy: RetentionPolicy) -> float:
    """An upper bound of how many snapshots a nightly policy keeps per disk (inf if unbounded)."""
    counts = [
        policy.last,
        policy.hourly,
        policy.daily,
        policy.weekly,
        policy.monthly,
        policy.yearly,
    ]
    if UNLIMITED in counts:
        return math.inf
    bound = float(sum(counts))
    for duration in (
        policy.within,
        policy.within_hourly,
        policy.within_daily,
        policy.within_weekly,
        policy.within_monthly,
        policy.within_yearly,
    ):
        if duration is not None:
            bound += duration.years * 366 + duration.months * 31 + duration.days + 1
    return bound + 1  # the oldest-snapshot rule


def quota_warnings(
    plans: Iterable[VmPlan],
    disks: Mapping[str, Disk],
    snapshots: Sequence[Snapshot],
    policies: PolicySet,
    config: RotationConfig,
    *,
    whole_subscription: bool = False,
) -> list[LimitWarning]:
    """The platform limits tonight's estate is near, and the ones its policies could exceed.
    `snapshots` are Lifeboat's group ("seen by Lifeboat": others count too and are not seen) or,
    with `whole_subscription`, every snapshot of the subscription (what Azure counts)."""
    seen_by = "in the subscription" if whole_subscription else "seen by Lifeboat"
    warnings: list[LimitWarning] = []
    per_region: dict[str, float] = defaultdict(float)
    existing: dict[str, int] = defaultdict(int)
    per_disk = snapshots_per_disk(snapshots)
    region_limit = config.region_snapshot_limit
    for snapshot in snapshots:
        existing[snapshot.location.lower()] += 1
    for plan in plans:
        policy = policies.policies[plan.policy]
        kept = expected_kept(policy.retention)
        for action in plan.creates:
            per_region[action.location.lower()] += kept
            if kept > MAX_SNAPSHOTS_PER_DISK:
                warnings.append(
                    LimitWarning(
                        "policy-over-disk-limit",
                        f"policy {policy.name!r} may keep {kept} snapshots of "
                        f"{action.disk_name}; Azure allows {MAX_SNAPSHOTS_PER_DISK} incremental "
                        "snapshots per disk",
                        resource_id=action.disk_id,
                        region=action.location.lower(),
                        seen=kept,
                        limit=MAX_SNAPSHOTS_PER_DISK,
                    )
                )
    for key, disk in sorted(disks.items()):
        seen = per_disk.get(key, 0)
        if seen >= DISK_WARNING_FROM:
            warnings.append(
                LimitWarning(
                    "disk-near-limit",
                    f"{disk.name}: {seen} snapshots {seen_by}, of Azure's "
                    f"{MAX_SNAPSHOTS_PER_DISK} per disk"
                    + (
                        ""
                        if whole_subscription
                        else " (Azure Disk Backup's and other groups' count too and are not seen)"
                    ),
                    resource_id=disk.id,
                    region=disk.location.lower(),
                    seen=seen,
                    limit=MAX_SNAPSHOTS_PER_DISK,
                )
            )
    for region in sorted(existing):
        seen = existing[region]
        if seen >= REGION_WARNING_FRACTION * region_limit:
            warnings.append(
                LimitWarning(
                    "region-near-limit",
                    f"{region}: {seen} snapshots {seen_by}, of Azure's "
                    f"{region_limit} per subscription and region ({seen / region_limit:.0%}"
                    + (
                        ")"
                        if whole_subscription
                        else "; snapshots outside Lifeboat's group count too and are not seen)"
                    ),
                    region=region,
                    seen=seen,
                    limit=region_limit,
                )
            )
    for region, kept in sorted(per_region.items()):
        total = max(kept, existing[region])
        if total > region_limit:
            warnings.append(
                LimitWarning(
                    "policies-over-region-limit",
                    f"policies may keep {total:.0f} snapshots in {region}; Azure allows "
                    f"{region_limit} per subscription and region",
                    region=region,
                    seen=total,
                    limit=region_limit,
                )
            )
    if whole_subscription:
        warnings = [replace(w, counted="subscription") for w in warnings]
    return warnings


def snapshots_per_disk(snapshots: Iterable[Snapshot]) -> dict[str, int]:
    """How many snapshots of each source disk (lower-case id) Lifeboat sees, in any state."""
    counts: dict[str, int] = defaultdict(int)
    for snapshot in snapshots:
        if snapshot.source_resource_id:
            counts["/" + snapshot.source_resource_id.strip("/").lower()] += 1
    return counts


# ------------------------------------------------------------------------------------ pruning


@dataclass(frozen=True, slots=True)
class Removal:
    snapshot: Snapshot
    reason: str


@dataclass(frozen=True, slots=True)
class Block:
    snapshot: Snapshot
    reason: str


@dataclass(frozen=True, slots=True)
class DiskPrune:
    """One disk's (or one orphaned source's) prune decision."""

    source_id: str
    policy: str | None
    keep: tuple[tuple[Snapshot, tuple[str, ...]], ...]
    delete: tuple[Removal, ...]
    blocked: tuple[Block, ...]
    orphan: bool = False
    held: tuple[Block, ...] = ()  # kept by a hold tag, with who holds them
    remaining: int = 0  # removed by retention but past tonight's cap: the next nights prune them
    at_limit: bool = False  # tonight's create met Azure's 500 per disk: the surplus goes first


@dataclass(frozen=True, slots=True)
class PrunePlan:
    disks: tuple[DiskPrune, ...]
    # Snapshots in Lifeboat's group named like its own that fail ownership (reason: the rule):
    # never deleted, listed by `lifeboat plan` and counted in one row a night.
    suspicious: tuple[Block, ...] = ()
    refused: str | None = None  # set when the estate cap refuses every deletion

    @property
    def deletes(self) -> int:
        return 0 if self.refused else sum(len(d.delete) for d in self.disks)


@dataclass(frozen=True, slots=True)
class PlannedDisk:
    """A disk that was due tonight, with the policy that made it due."""

    disk: Disk
    policy: Policy


@dataclass
class _Group:
    owned: list[Snapshot] = field(default_factory=list)
    adoptable: list[Snapshot] = field(default_factory=list)


def plan_prunes(
    due: Sequence[PlannedDisk],
    known_disks: Mapping[str, Disk],
    snapshots: Sequence[Snapshot],
    policies: PolicySet,
    config: RotationConfig,
    slot: str,
) -> PrunePlan:
    """What retention removes from each disk due tonight and from orphaned sources, with safety."""
    groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
    suspicious: list[Block] = []
    for snapshot in snapshots:
        if snapshot.resource_group.lower() != config.snapshot_group.lower():
            continue
        key = ((snapshot.source_resource_id or "").lower(), snapshot.source_unique_id or "")
        if is_owned(snapshot, config.snapshot_group):
            groups[key].owned.append(snapshot)
        elif NAME_PATTERN.match(snapshot.name.lower()):
            rule = ownership_failure(snapshot, config.snapshot_group) or "not Lifeboat's"
            suspicious.append(Block(snapshot, rule))
        else:
            groups[key].adoptable.append(snapshot)

    seen = snapshots_per_disk(snapshots)
    results: list[DiskPrune] = []
    for item in sorted(due, key=lambda d: d.disk.id.lower()):
        disk, policy = item.disk, item.policy
        group = groups.get((disk.id.lower(), disk.unique_id), _Group())
        candidates = [s for s in group.owned if taken_from(s, disk)]
        if policy.adopt_unowned:
            candidates += [s for s in group.adoptable if taken_from(s, disk)]
        tonight = snapshot_name(disk.id, disk.unique_id, slot)
        results.append(
            _prune_one(
                disk.id,
                policy.name,
                policy.retention,
                candidates,
                config,
                tonight=tonight,
                seen=seen.get("/" + disk.id.strip("/").lower(), 0),
            )
        )

    known = {(d.id.lower(), d.unique_id) for d in known_disks.values()}
    for key, group in sorted(groups.items()):
        if key in known or not group.owned:
            continue
        results.append(_prune_orphans(key[0], group.owned, policies, config))

    plan = PrunePlan(tuple(results), tuple(suspicious))
    owned_total = sum(len(g.owned) for g in groups.values())
    deletes = plan.deletes
    if owned_total and deletes / owned_total > config.max_estate_delete_fraction:
        refusal = (
            f"would delete {deletes} of {owned_total} snapshots "
            f"({deletes / owned_total:.0%}), more than the estate cap "
            f"{config.max_estate_delete_fraction:.0%}"
        )
        return PrunePlan(tuple(results), tuple(suspicious), refused=refusal)
    return plan


def _prune_one(
    source_id: str,
    policy_name: str | None,
    retention: RetentionPolicy,
    candidates: list[Snapshot],
    config: RotationConfig,
    *,
    tonight: str | None,
    protect_newest: bool = True,
    orphan: bool = False,
    seen: int = 0,
) -> DiskPrune:
    """One disk's prunes. Retention decides; then the safety rules, in order: never the newest
    good snapshot; nothing until tonight's snapshot is good, except at Azure's 500 per disk
    (`at_limit_without_tonight`); at most the per-disk cap a night, oldest first, the rest
    counted in `remaining` for the next nights."""
    blocked: list[Block] = []
    # Snapshots not (yet) good are neither counted nor removed: pending copies finish later,
    # failed ones are reported by the confirm step and left for an operator.
    good = [s for s in candidates if s.good and s.time_created is not None]
    holds = [(s, hold_of(s)) for s in good]
    held = [s for s, who in holds if who is not None]
    subject = [s for s, who in holds if who is None]
    ordered = sorted(subject, key=lambda s: (s.time_created, s.name), reverse=True)
    keep: list[tuple[Snapshot, tuple[str, ...]]] = [(s, ("held (lifeboat:hold)",)) for s in held]
    held_rows = tuple(
        Block(s, f"held by tag {HOLD_TAG}={who}: kept whatever retention says")
        for s, who in holds
        if who is not None
    )
    removals: list[Removal] = []
    if ordered:
        plan = plan_retention([s.time_created for s in ordered if s.time_created], retention)
        keep += [(ordered[k.index], k.reasons) for k in plan.keep]
        removals = [Removal(ordered[r.index], "removed by retention") for r in plan.remove]
    newest_good = max(good, key=lambda s: (s.time_created, s.name), default=None)
    deletes: list[Removal] = []
    for removal in removals:
        if protect_newest and removal.snapshot is newest_good:
            blocked.append(Block(removal.snapshot, "the disk's newest good snapshot"))
        else:
            deletes.append(removal)
    at_limit = False
    if tonight is not None and deletes:
        there = [s for s in candidates if s.name.lower() == tonight]
        if at_limit_without_tonight(seen, tonight_there=bool(there)):
            at_limit = True
            deletes = [
                Removal(
                    r.snapshot,
                    f"removed by retention; the disk is at Azure's {MAX_SNAPSHOTS_PER_DISK} "
                    f"snapshots ({seen} seen by Lifeboat), so the oldest surplus goes before "
                    "tonight's snapshot can be taken",
                )
                for r in deletes
            ]
        elif not any(s.good for s in there):
            blocked += [
                Block(r.snapshot, "tonight's snapshot is not confirmed good") for r in deletes
            ]
            deletes = []
    remaining = 0
    cap = math.floor(config.max_disk_delete_fraction * len(candidates))
    if at_limit:
        cap = min(cap, PRUNES_PER_MESSAGE)
    if len(deletes) > cap:
        # Oldest first: tonight's share of the surplus, the rest on the next nights.
        deletes = sorted(deletes, key=lambda r: (r.snapshot.time_created, r.snapshot.name))
        deletes, later = deletes[:cap], deletes[cap:]
        remaining = len(later)
    return DiskPrune(
        source_id,
        policy_name,
        tuple(keep),
        tuple(deletes),
        tuple(blocked),
        orphan=orphan,
        held=held_rows,
        remaining=remaining,
        at_limit=at_limit,
    )


def at_limit_without_tonight(seen: int, *, tonight_there: bool) -> bool:
    """The one case prunes go on without tonight's good snapshot: tonight's was never taken
    (not there at all, not merely pending) and the disk has at least Azure's 500 snapshots, so
    Azure refuses every create until some are deleted. Retention's surplus, oldest first and
    never the newest good one, is what makes room; waiting for tonight's would wait forever."""
    return not tonight_there and seen >= MAX_SNAPSHOTS_PER_DISK


def _prune_orphans(
    source_id: str, owned: list[Snapshot], policies: PolicySet, config: RotationConfig
) -> DiskPrune:
    names = {(tag_value(s.tags, POLICY_TAG) or "").lower() for s in owned}
    policy = policies.policies.get(names.pop()) if len(names) == 1 else None
    if policy is None or policy.orphan_retention is None:
        why = "no single known policy" if policy is None else f"policy {policy.name!r}"
        return DiskPrune(
            source_id,
            policy.name if policy else None,
            tuple((s, (f"orphan kept: {why} has no orphan retention",)) for s in owned),
            (),
            (),
            orphan=True,
        )
    return _prune_one(
        source_id,
        policy.name,
        policy.orphan_retention,
        owned,
        config,
        tonight=None,
        protect_newest=not policy.orphan_remove_newest,
        orphan=True,
    )
