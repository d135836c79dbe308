"""What a drill restores from: the snapshot-set choice, with literal VMs, disks and snapshots."""

from __future__ import annotations

import dataclasses

from shared.drills import DrillSource, NoRestorePoint, RestorePoint, SnapshotSets
from shared.drills.source import choose_snapshot_set
from shared.model import Disk, Snapshot, Vm
from tests.builders import GROUP, SUB, disk, night, snapshot_of, vm
from tests.fakes import FakeCompute, FixedClock

OS, DATA0, DATA1 = disk("web-os"), disk("web-data0"), disk("web-data1")
WEB = vm("web", "web-os", (0, "web-data0"), (1, "web-data1"))


def names(chosen: list[tuple[Snapshot, int | None, str]]) -> list[tuple[int | None, str]]:
    return [(lun, source.rsplit("/", 1)[1]) for _, lun, source in chosen]


def test_the_newest_complete_set_wins_over_a_newer_partial_one() -> None:
    snapshots = [
        *(snapshot_of(d, night(25)) for d in (OS, DATA0, DATA1)),
        *(snapshot_of(d, night(26)) for d in (OS, DATA0)),  # data1's snapshot is missing
    ]
    choice = choose_snapshot_set(WEB, snapshots, GROUP)
    assert choice is not None
    slot, chosen, missing = choice
    assert slot == "202611250200"
    assert names(chosen) == [(None, "web-os"), (0, "web-data0"), (1, "web-data1")]
    assert missing == []


def test_without_a_complete_set_the_newest_with_the_os_disk_is_taken_and_gaps_named() -> None:
    snapshots = [
        snapshot_of(OS, night(24)),
        snapshot_of(OS, night(26)),
        snapshot_of(DATA0, night(26)),
        snapshot_of(DATA1, night(25)),  # data1 was snapshotted once, in a set without the OS
    ]
    choice = choose_snapshot_set(WEB, snapshots, GROUP)
    assert choice is not None
    slot, chosen, missing = choice
    assert slot == "202611260200"
    assert names(chosen) == [(None, "web-os"), (0, "web-data0")]
    assert missing == [DATA1.id]


def test_only_good_owned_snapshots_of_this_vms_disks_count() -> None:
    other = disk("other-os")
    snapshots = [
        snapshot_of(OS, night(25)),
        snapshot_of(OS, night(26), state="Failed"),  # not good
        snapshot_of(OS, night(27), group="rg-somebody-else"),  # not in Lifeboat's group
        snapshot_of(OS, night(24, 3), name="lb-aaaaaaaaaaaaaaaa-202611240300"),  # misnamed
        snapshot_of(other, night(27)),  # another VM's disk
        snapshot_of(OS, night(23), name="nightly-backup"),  # not a Lifeboat name
    ]
    choice = choose_snapshot_set(WEB, snapshots, GROUP)
    assert choice is not None
    assert choice[0] == "202611250200"


def test_no_good_snapshot_of_the_os_disk_is_no_choice() -> None:
    snapshots = [snapshot_of(DATA0, night(26)), snapshot_of(OS, night(26), state="Creating")]
    assert choose_snapshot_set(WEB, snapshots, GROUP) is None


def compute_with(*disks: Disk, snapshots: list[Snapshot]) -> FakeCompute:
    compute = FakeCompute(FixedClock(night(27, 4)))
    for d in disks:
        compute.disks[d.id.lower()] = d
    for s in snapshots:
        compute.snapshots[s.id.lower()] = s
    return compute


def test_snapshot_sets_describe_each_disk_of_the_restore_point() -> None:
    os_disk = dataclasses.replace(OS, os_type="Windows", hyper_v_generation="V2")
    data = dataclasses.replace(DATA0, sku="UltraSSD_LRS")
    machine = vm("web", "web-os", (0, "web-data0"))
    compute = compute_with(
        os_disk, data, snapshots=[snapshot_of(OS, night(26)), snapshot_of(DATA0, night(26))]
    )
    source: DrillSource = SnapshotSets(compute, SUB, GROUP)
    assert source.kind == "snapshots"
    point = source.choose(machine, night(27, 4))
    assert isinstance(point, RestorePoint)
    assert point.slot == "202611260200"
    assert (point.os_type, point.hyper_v_generation) == ("Windows", "V2")
    assert point.missing_disks == ()
    (os_copy, data_copy) = point.disks
    assert (os_copy.lun, os_copy.disk_id, os_copy.sku) == (None, OS.id, "Premium_LRS")
    assert (data_copy.lun, data_copy.disk_id, data_copy.sku) == (0, DATA0.id, "UltraSSD_LRS")
    assert data_copy.snapshot_id == snapshot_of(DATA0, night(26)).id
    assert os_copy.time_created == snapshot_of(OS, night(26)).time_created


def test_snapshot_sets_skip_an_ephemeral_os_disk_and_fail_without_a_snapshot() -> None:
    compute = compute_with(OS, snapshots=[])
    source = SnapshotSets(compute, SUB, GROUP)
    ephemeral: Vm = vm("eph", None, ephemeral=True)
    assert source.choose(ephemeral, night(27, 4)) == NoRestorePoint(
        "skipped", "the OS disk is ephemeral: Lifeboat has no snapshot of it to restore"
    )
    unmanaged = source.choose(vm("old", None), night(27, 4))
    assert isinstance(unmanaged, NoRestorePoint)
    assert (unmanaged.outcome, "unmanaged" in unmanaged.reason) == ("skipped", True)
    nothing = source.choose(vm("web", "web-os"), night(27, 4))
    assert nothing == NoRestorePoint(
        "failed", f"no good snapshot of the OS disk in {GROUP}: nothing to restore"
    )
