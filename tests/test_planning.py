from __future__ import annotations

import dataclasses
from datetime import timedelta

from shared.model import Disk
from shared.planning import NOT_ATTACHED, PlannedDisk, RotationConfig, plan_night, plan_prunes
from shared.policies import TAG_TYPO, UNKNOWN_POLICY, PolicySet, parse_policies
from shared.snapshots import disk_hash, name_matches_source, snapshot_name
from tests.builders import GROUP, disk, night, snapshot_of, vm

CONFIG = RotationConfig(
    snapshot_group=GROUP,
    drill_groups=frozenset({"rg-drill-westeurope"}),
    arm_writes_per_second=2.0,
    snapshot_writes_per_second=1.0,
)


def policies(**daily: object) -> PolicySet:
    spec: dict[str, object] = {"retention": {"daily": 3}}
    spec.update(daily)
    return parse_policies(
        {
            "version": 1,
            "policies": {"daily": spec, "os-only": {"retention": {"last": 2}, "disks": "os"}},
        }
    )


def index(*disks: Disk) -> dict[str, Disk]:
    return {d.id.lower(): d for d in disks}


# ------------------------------------------------------------------------------- naming


def test_names_follow_the_design() -> None:
    d = disk("vm1-os")
    name = snapshot_name(d.id, d.unique_id, "202611270200")
    assert name == f"lb-{disk_hash(d.id, d.unique_id)}-202611270200"
    assert len(disk_hash(d.id, d.unique_id)) == 16
    assert disk_hash(d.id.upper(), d.unique_id) == disk_hash(d.id, d.unique_id)
    assert disk_hash(d.id, "other-unique-id") != disk_hash(d.id, d.unique_id)
    assert name_matches_source(snapshot_of(d, night(27)))


# ------------------------------------------------------------------------------- the night


def test_every_selected_disk_gets_one_snapshot_under_one_set() -> None:
    os_disk, data = disk("vm1-os"), disk("vm1-data")
    plan = plan_night(
        [vm("vm1", "vm1-os", (0, "vm1-data"))],
        index(os_disk, data),
        [],
        policies(),
        CONFIG,
        night(27),
    )
    [planned] = plan.vms
    assert [a.snapshot_name for a in planned.creates] == [
        snapshot_name(os_disk.id, os_disk.unique_id, "202611270200"),
        snapshot_name(data.id, data.unique_id, "202611270200"),
    ]
    assert planned.policy == "daily"
    assert plan.slot == "202611270200"


def test_disks_that_cannot_be_snapshotted_are_skipped_with_reasons() -> None:
    d = index(disk("cvm-os"), disk("cvm-data"), disk("eph-data"))
    plan = plan_night(
        [
            vm("eph", None, (0, "eph-data"), ephemeral=True),
            vm("vhd", None),
            vm("cvm", "cvm-os", (0, "cvm-data"), security_type="ConfidentialVM"),
            vm("lost", "missing-os"),
        ],
        d,
        [],
        policies(),
        CONFIG,
        night(27),
    )
    reasons = {s.reason for p in plan.vms for s in p.skips}
    assert reasons == {
        "ephemeral OS disk: cannot be snapshotted",
        "unmanaged disk: the OS disk is a VHD in a storage account",
        "Confidential VM OS disk: snapshots are not supported",
        "OS disk not found in the subscription's disks",
    }
    assert sorted(a.disk_name for p in plan.vms for a in p.creates) == ["cvm-data", "eph-data"]


def test_vm_selection_by_tag_nights_and_drill_groups() -> None:
    d = index(
        disk("a-os"),
        disk("b-os"),
        disk("c-os"),
        disk("d-os"),
        disk("e-os", group="rg-drill-westeurope"),
    )
    plan = plan_night(
        [
            vm("a", "a-os"),
            vm("b", "b-os", tags={}),
            vm("c", "c-os", tags={"Lifeboat:Policy": "none"}),
            vm("d", "d-os", tags={"lifeboat:policy": "weekend"}),
            vm("e", "e-os", group="rg-drill-westeurope"),
        ],
        d,
        [],
        policies(nights=["fri"]),
        CONFIG,
        night(27),  # 2026-11-27 is a Friday
    )
    assert [p.vm.name for p in plan.vms] == ["a"]
    assert sorted(s.reason for s in plan.skipped_vms) == [
        "in a drill resource group",
        "no lifeboat:policy tag and no default policy",
        "opted out (lifeboat:policy=none)",
        "unknown policy weekend; known: daily, os-only",
    ]
    saturday = plan_night([vm("a", "a-os")], d, [], policies(nights=["fri"]), CONFIG, night(28))
    assert saturday.vms == ()
    assert saturday.skipped_vms[0].reason == "policy 'daily' does not run on sat"


def test_a_shared_disk_is_snapshotted_once_per_night() -> None:
    d = index(disk("n1-os"), disk("n2-os"), disk("shared", max_shares=2))
    plan = plan_night(
        [vm("n2", "n2-os", (0, "shared")), vm("n1", "n1-os", (0, "shared"))],
        d,
        [],
        policies(),
        CONFIG,
        night(27),
    )
    shared = [a for p in plan.vms for a in p.creates if a.disk_name == "shared"]
    assert len(shared) == 1
    [skip] = [s for p in plan.vms for s in p.skips]
    assert skip.reason.startswith("shared disk: snapshotted with /subscriptions/")


def test_policy_disk_selection() -> None:
    d = index(disk("v-os"), disk("v-data"))
    plan = plan_night(
        [vm("v", "v-os", (1, "v-data"), tags={"lifeboat:policy": "os-only"})],
        d,
        [],
        policies(),
        CONFIG,
        night(27),
    )
    assert [a.disk_name for a in plan.vms[0].creates] == ["v-os"]
    assert plan.vms[0].skips[0].reason == "data disk at LUN 1 not selected by policy 'os-only'"


def test_vms_are_paced_to_the_write_budgets() -> None:
    names = [f"v{i}" for i in range(4)]
    d = index(*[disk(f"{n}-os") for n in names], *[disk(f"{n}-data") for n in names])
    plan = plan_night(
        [vm(n, f"{n}-os", (0, f"{n}-data")) for n in names], d, [], policies(), CONFIG, night(27)
    )
    # Two snapshot writes per VM at 1 snapshot write/s in one region: a VM every 2 s.
    assert [p.delay_seconds for p in plan.vms] == [0.0, 2.0, 4.0, 6.0]
    assert plan.window_seconds == 8.0


def _two_regions(west: int, north: int, config: RotationConfig) -> dict[str, float]:
    """VMs of one OS disk each in westeurope (w0...) and northeurope (n0...): their starts."""
    names = [(f"w{i}", "westeurope") for i in range(west)]
    names += [(f"n{i}", "northeurope") for i in range(north)]
    disks = [dataclasses.replace(disk(f"{n}-os"), location=where) for n, where in names]
    machines = [dataclasses.replace(vm(n, f"{n}-os"), location=where) for n, where in names]
    plan = plan_night(machines, index(*disks), [], policies(), config, night(27))
    starts = {p.vm.name: p.delay_seconds for p in plan.vms}
    starts["window"] = plan.window_seconds
    return starts


def test_regions_run_side_by_side_so_the_night_runs_at_the_arm_budget() -> None:
    """Listed region by region, with a snapshot budget per region below the ARM one (Compute's
    HighCost family), two regions are paced side by side, each within its own budget, not one
    after the other (the second region would start at 3.5 s and end at 7.5 s)."""
    starts = _two_regions(4, 4, CONFIG)  # ARM 2/s, 1/s per region
    assert [starts[f"w{i}"] for i in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert [starts[f"n{i}"] for i in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert starts["window"] == 4.0  # 8 creates at the ARM budget of 2/s


def test_the_arm_budget_is_shared_by_each_regions_work_within_its_snapshot_budget() -> None:
    config = dataclasses.replace(CONFIG, snapshot_writes_per_second=1.5)
    starts = _two_regions(6, 2, config)  # westeurope 1.5/s (its cap), northeurope the 0.5/s left
    assert [starts[f"w{i}"] for i in range(6)] == [0.0, 0.667, 1.333, 2.0, 2.667, 3.333]
    assert [starts[f"n{i}"] for i in range(2)] == [0.0, 2.0]
    assert starts["window"] == 4.0  # both end together: 8 creates at 2/s
    capped = dataclasses.replace(CONFIG, snapshot_writes_per_second=0.5)
    assert _two_regions(6, 2, capped)["window"] == 12.0  # the snapshot budget binds: 6 at 0.5/s


def test_quota_warning_when_a_policy_could_exceed_500_per_disk() -> None:
    d = index(disk("v-os"))
    plan = plan_night(
        [vm("v", "v-os")], d, [], policies(retention={"daily": -1}), CONFIG, night(27)
    )
    assert any("500 incremental snapshots per disk" in w.message for w in plan.warnings)


# ------------------------------------------------------------------------------- pruning


def history(d: Disk, days: range, **kwargs: object) -> list:  # type: ignore[type-arg]
    return [snapshot_of(d, night(day), **kwargs) for day in days]  # type: ignore[arg-type]


def due(d: Disk, ps: PolicySet) -> list[PlannedDisk]:
    return [PlannedDisk(d, ps.policies["daily"])]


def test_retention_removes_the_oldest_once_tonight_is_good() -> None:
    d = disk("v-os")
    ps = policies()
    snaps = history(d, range(24, 28))  # 24, 25, 26, 27 (tonight)
    plan = plan_prunes(due(d, ps), index(d), snaps, ps, CONFIG, "202611270200")
    [prune] = plan.disks
    assert [r.snapshot.name for r in prune.delete] == [snaps[0].name]
    assert [s.name for s, _ in prune.keep] == [s.name for s in reversed(snaps[1:])]
    assert plan.deletes == 1


def test_nothing_is_pruned_until_tonights_snapshot_is_good() -> None:
    d = disk("v-os")
    ps = policies()
    snaps = [*history(d, range(23, 27)), snapshot_of(d, night(27), state="Creating")]
    [prune] = plan_prunes(due(d, ps), index(d), snaps, ps, CONFIG, "202611270200").disks
    assert prune.delete == ()
    reasons = {b.reason for b in prune.blocked}
    assert "tonight's snapshot is not confirmed good" in reasons


def test_held_snapshots_are_never_deleted_and_do_not_use_up_retention() -> None:
    d = disk("v-os")
    ps = policies()
    held = snapshot_of(d, night(20), tags={"Lifeboat:Hold": "incident-4711"})
    snaps = [held, *history(d, range(25, 28))]
    [prune] = plan_prunes(due(d, ps), index(d), snaps, ps, CONFIG, "202611270200").disks
    assert prune.delete == ()
    assert (held, ("held (lifeboat:hold)",)) in prune.keep


def test_unowned_and_lookalike_snapshots_are_never_deleted() -> None:
    d, other = disk("v-os"), disk("other-os")
    ps = policies()
    manual = snapshot_of(d, night(1), name="manual-before-upgrade")
    lookalike = snapshot_of(other, night(2), name=snapshot_of(d, night(2)).name)
    elsewhere = snapshot_of(d, night(3), group="rg-app")
    snaps = [manual, lookalike, elsewhere, *history(d, range(25, 28))]
    plan = plan_prunes(due(d, ps), index(d, other), snaps, ps, CONFIG, "202611270200")
    deleted = {r.snapshot.name for p in plan.disks for r in p.delete}
    assert deleted.isdisjoint({manual.name, lookalike.name, elsewhere.name})
    assert [b.snapshot for b in plan.suspicious] == [lookalike]


def test_adopting_policy_prunes_unowned_snapshots_of_the_disk() -> None:
    d = disk("v-os")
    ps = policies(adoptUnowned=True)
    manual = snapshot_of(d, night(1), name="manual-before-upgrade")
    snaps = [manual, *history(d, range(25, 28))]
    [prune] = plan_prunes(due(d, ps), index(d), snaps, ps, CONFIG, "202611270200").disks
    assert [r.snapshot for r in prune.delete] == [manual]


def test_per_disk_cap_prunes_the_oldest_share_a_night_and_counts_the_rest() -> None:
    d = disk("v-os")
    ps = policies(retention={"last": 1})
    snaps = history(d, range(20, 28))  # 8 snapshots, retention keeps 1
    [prune] = plan_prunes(due(d, ps), index(d), snaps, ps, CONFIG, "202611270200").disks
    assert [r.snapshot.name for r in prune.delete] == [s.name for s in snaps[:4]]  # oldest 4
    assert prune.remaining == 3
    assert prune.blocked == ()


def test_estate_cap_refuses_the_whole_run() -> None:
    ps = policies(retention={"last": 2})
    disks = [disk(f"d{i}-os") for i in range(3)]
    snaps = [s for d in disks for s in history(d, range(24, 28))]
    config = RotationConfig(snapshot_group=GROUP, max_estate_delete_fraction=0.2)
    plan = plan_prunes(
        [PlannedDisk(d, ps.policies["daily"]) for d in disks],
        index(*disks),
        snaps,
        ps,
        config,
        "202611270200",
    )
    assert plan.refused is not None
    assert "more than the estate cap 20%" in plan.refused
    assert plan.deletes == 0


def test_orphans_follow_their_policy_and_keep_the_newest() -> None:
    gone = disk("deleted-os")
    ps = policies(orphans={"retention": {"last": 1}})
    snaps = history(gone, range(25, 28))
    plan = plan_prunes([], {}, snaps, ps, CONFIG, "202611270200")
    [orphan] = plan.disks
    assert orphan.orphan
    assert [r.snapshot.name for r in orphan.delete] == [snaps[0].name]  # the cap: 1 of 3
    assert orphan.remaining == 1


def test_orphans_without_orphan_retention_are_kept() -> None:
    gone = disk("deleted-os")
    ps = policies()
    [orphan] = plan_prunes([], {}, history(gone, range(25, 28)), ps, CONFIG, "202611270200").disks
    assert orphan.delete == ()
    assert all("has no orphan retention" in reasons[0] for _, reasons in orphan.keep)


def test_the_newest_orphan_goes_only_when_the_policy_says_so() -> None:
    gone = disk("deleted-os")
    loose = RotationConfig(
        snapshot_group=GROUP, max_disk_delete_fraction=1.0, max_estate_delete_fraction=1.0
    )
    keep_newest = policies(orphans={"retention": {"within": "1d"}})
    snaps = history(gone, range(1, 3))  # both older than a day before the newest? no: 1 day apart
    [orphan] = plan_prunes([], {}, snaps, keep_newest, loose, "202611270200").disks
    assert snaps[1] not in [r.snapshot for r in orphan.delete]


# ------------------------------------------------------------------ shapes, limits, the 500


def test_a_tagged_disk_on_no_vm_is_skipped_and_says_tag_the_vm() -> None:
    loose = disk("loose", tags={"LIFEBOAT:POLICY ": "daily"})
    untagged = disk("spare")
    drill = disk("drill-copy", group="rg-drill-westeurope", tags={"lifeboat:policy": "daily"})
    attached = disk("a-os", tags={"lifeboat:policy": "daily"})
    plan = plan_night(
        [vm("a", "a-os")],
        index(loose, untagged, drill, attached),
        [],
        policies(),
        CONFIG,
        night(27),
    )
    assert [(s.resource_id, s.reason, s.kind) for s in plan.skipped_disks] == [
        (loose.id, "not attached to a VM (tag the VM)", NOT_ATTACHED)
    ]


def test_tag_mistakes_are_skips_with_their_kind() -> None:
    d = index(disk("a-os"), disk("b-os"))
    plan = plan_night(
        [
            vm("a", "a-os", tags={"lifebaot:policy": "daily"}),
            vm("b", "b-os", tags={"lifeboat:policy": "gold"}),
        ],
        d,
        [],
        policies(),
        CONFIG,
        night(27),
    )
    assert plan.vms == ()
    assert [(s.kind, s.reason) for s in plan.skipped_vms] == [
        (TAG_TYPO, 'tag "lifebaot:policy" looks like "lifeboat:policy"'),
        (UNKNOWN_POLICY, "unknown policy gold; known: daily, os-only"),
    ]


def test_the_plan_warns_from_450_per_disk_and_90_percent_per_region_as_seen() -> None:
    near, far = disk("near-os"), disk("far-os")
    snaps = [snapshot_of(near, night(1) + timedelta(hours=i)) for i in range(450)]
    snaps += [snapshot_of(far, night(1) + timedelta(hours=i)) for i in range(449)]
    plan = plan_night(
        [vm("near", "near-os"), vm("far", "far-os")],
        index(near, far),
        snaps,
        policies(),
        CONFIG,
        night(27),
    )
    [warning] = plan.warnings
    assert (warning.kind, warning.resource_id, warning.seen) == ("disk-near-limit", near.id, 450)
    assert "450 snapshots seen by Lifeboat, of Azure's 500 per disk" in warning.message

    many = [
        dataclasses.replace(snaps[0], id=f"{snaps[0].id}-{i}", source_resource_id=None)
        for i in range(67_500)
    ]
    region = plan_night([], {}, many, policies(), CONFIG, night(27)).warnings
    assert [(w.kind, w.region, w.seen) for w in region] == [
        ("region-near-limit", "westeurope", 67_500)
    ]
    assert "67500 snapshots seen by Lifeboat, of Azure's 75000" in region[0].message
    fewer = plan_night([], {}, many[:67_499], policies(), CONFIG, night(27)).warnings
    assert fewer == ()


def test_with_every_snapshot_counted_the_warnings_count_what_azure_counts() -> None:
    """COUNT_ALL_SNAPSHOTS: Azure Disk Backup's 440 snapshots of a disk, in another group, and
    Lifeboat's 10 make 450 of 500: a warning Lifeboat's group alone (10) would never give."""
    d = disk("v-os")
    ours = [snapshot_of(d, night(20) + timedelta(hours=i)) for i in range(10)]
    backup = [
        dataclasses.replace(
            s, id=s.id.replace("rg-lifeboat-snapshots", "AzureBackupRG_westeurope_1") + f"-{i}"
        )
        for i, s in enumerate(snapshot_of(d, night(1) + timedelta(hours=h)) for h in range(440))
    ]
    seen = plan_night([vm("v", "v-os")], index(d), ours, policies(), CONFIG, night(27))
    assert seen.warnings == ()
    counted = plan_night(
        [vm("v", "v-os")], index(d), ours, policies(), CONFIG, night(27), [*ours, *backup]
    )
    [warning] = counted.warnings
    assert (warning.kind, warning.seen, warning.counted) == ("disk-near-limit", 450, "subscription")
    assert "450 snapshots in the subscription, of Azure's 500 per disk" in warning.message
    assert "not seen" not in warning.message
    assert counted.vms == seen.vms  # counting changes warnings, never the plan


def test_at_500_the_oldest_surplus_goes_without_tonights_snapshot_within_one_message() -> None:
    d = disk("v-os")
    ps = policies()
    snaps = [snapshot_of(d, night(27) - timedelta(days=500 - i)) for i in range(500)]
    [prune] = plan_prunes(due(d, ps), index(d), snaps, ps, CONFIG, "202611270200").disks
    assert prune.at_limit
    assert [r.snapshot for r in prune.delete] == snaps[:100]
    assert prune.remaining == 497 - 100
    assert "Azure's 500 snapshots (500 seen by Lifeboat)" in prune.delete[0].reason
    # 499 of them: tonight's is needed as before.
    [prune] = plan_prunes(due(d, ps), index(d), snaps[1:], ps, CONFIG, "202611270200").disks
    assert (prune.at_limit, prune.delete) == (False, ())
    # Tonight's there but still pending: wait for it, do not prune around it.
    pending = [*snaps, snapshot_of(d, night(27), state="Creating")]
    [prune] = plan_prunes(due(d, ps), index(d), pending, ps, CONFIG, "202611270200").disks
    assert (prune.at_limit, prune.delete) == (False, ())


def test_held_snapshots_are_listed_with_their_holder() -> None:
    d = disk("v-os")
    ps = policies()
    held = snapshot_of(d, night(20), tags={" Lifeboat:Hold": "incident-4711"})
    [prune] = plan_prunes(
        due(d, ps), index(d), [held, *history(d, range(25, 28))], ps, CONFIG, "202611270200"
    ).disks
    assert [(b.snapshot, b.reason) for b in prune.held] == [
        (held, "held by tag lifeboat:hold=incident-4711: kept whatever retention says")
    ]


def test_lookalikes_carry_the_ownership_rule_they_fail() -> None:
    d, other = disk("v-os"), disk("other-os")
    ps = policies()
    lookalike = snapshot_of(other, night(2), name=snapshot_of(d, night(2)).name)
    sourceless = dataclasses.replace(
        snapshot_of(d, night(3)), source_resource_id=None, name=snapshot_of(d, night(3)).name
    )
    plan = plan_prunes(
        due(d, ps), index(d, other), [lookalike, sourceless], ps, CONFIG, "202611270200"
    )
    assert sorted(b.reason for b in plan.suspicious) == [
        "its creationData names no source disk",
        "its name's hash is not that of the disk its creationData names "
        "(other-os, id and uniqueId)",
    ]
