"""Shapes of real estates in the stand-in (emulator/ESTATE.md): VHD VMs, unattached disks, orphan
and seeded snapshots, locks and policy refusals, vaults in other subscriptions and changes between
nights. Each loads, shows through the real azure-mgmt-compute as Azure writes it, and a bad value
is an error naming its path."""

from __future__ import annotations

import copy
import hashlib
import json
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from emulator.clock import Clock
from emulator.config import Behaviour
from emulator.estate import EstateError, build_cloud, load_estate_file
from emulator.eventgrid import DeliveryOptions, EventGrid
from emulator.generate import REALISTIC, generate
from emulator.process import REPO_ROOT, Endpoints, running_emulator
from emulator.stand_in import StandIn, build_stand_in
from emulator.throttling import Throttler
from shared.snapshots import NAME_PATTERN, disk_hash, snapshot_name
from tests.emulator.conftest import pointed_at, refusal

SHAPES = REPO_ROOT / "emulator" / "estates" / "shapes.yaml"
START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
SUB = "3d9a1c55-2b7e-4f0a-8c61-5e2f7a9b1c20"
BACKUP_SUB = "8c2f6a17-4d9b-4e35-a1c0-2b7e9d5f3a48"
SNAP_RG = "rg-lifeboat-snapshots"
NIGHT_2 = START + timedelta(days=1)  # 01:00 before the second 02:00 after the start
NIGHT_3 = START + timedelta(days=2)


def compute_id(kind: str, group: str, name: str, sub: str = SUB) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/{kind}/{name}"


def shapes_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SHAPES.read_text(encoding="utf-8"))
    return data


def small(**sub: Any) -> dict[str, Any]:
    """A one-subscription estate with groups rg-app and the snapshot group."""
    base: dict[str, Any] = {
        "id": SUB,
        "resourceGroups": [{"name": "rg-app"}, {"name": SNAP_RG}],
    }
    return {
        "version": 1,
        "identities": [{"clientId": "c1", "objectId": "o1"}],
        "subscriptions": [{**base, **sub}],
    }


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(EstateError) as info:
        build_cloud(data, START)
    return str(info.value)


def stand_in_of(data: dict[str, Any]) -> StandIn:
    clock = Clock(START, rate=0)
    cloud = build_cloud(data, clock.now())
    events = EventGrid(clock, cloud.tenant_id, DeliveryOptions())
    return build_stand_in(cloud, clock, Behaviour(), Throttler(), events)


# ---- through the real SDK ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes_ep() -> Iterator[Endpoints]:
    options = ("--clock-start", "2026-11-27T01:00:00Z", "--clock-rate", "0", "--page-size", "500")
    with running_emulator(SHAPES, *options, "--operation-seconds", "0.2") as endpoints:
        yield endpoints


@pytest.fixture
def shapes(
    shapes_ep: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ComputeManagementClient, httpx.Client]]:
    pointed_at(shapes_ep, monkeypatch)
    client = ComputeManagementClient(
        ManagedIdentityCredential(client_id=shapes_ep.client_id),
        SUB,
        base_url=shapes_ep.arm,
        credential_scopes=[shapes_ep.arm_audience + ".default"],
        connection_verify=shapes_ep.ca_bundle,
        polling_interval=0.1,
        retry_total=0,
    )
    verify = ssl.create_default_context(cafile=shapes_ep.ca_bundle)
    with httpx.Client(base_url=shapes_ep.admin, verify=verify, timeout=30) as admin:
        yield client, admin


def test_vhd_vms_show_vhd_uris_and_no_managed_disk(
    shapes: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, _ = shapes
    classic = compute.virtual_machines.get("rg-classic", "vm-classic-01")
    os_disk = classic.storage_profile.os_disk
    assert os_disk.vhd.uri.endswith("/vhds/vm-classic-01-osdisk.vhd")
    assert os_disk.managed_disk is None
    assert os_disk.disk_size_gb == 127
    (data,) = classic.storage_profile.data_disks
    assert (data.lun, data.vhd.uri.endswith("data-00.vhd"), data.managed_disk) == (0, True, None)
    mixed = compute.virtual_machines.get("rg-app", "vm-mixed-01", expand="instanceView")
    kinds = [
        (d.lun, d.managed_disk is not None, d.vhd is not None)
        for d in mixed.storage_profile.data_disks
    ]
    assert kinds == [(0, True, False), (1, False, True)]
    assert mixed.storage_profile.os_disk.managed_disk.id.endswith("/disks/vm-mixed-01-osdisk")
    assert len(mixed.instance_view.disks) == 3
    # No disk resource stands behind a VHD: not listed, and a snapshot of one has no source.
    listed = {d.name for d in compute.disks.list_by_resource_group("rg-classic")}
    assert listed == set()
    body = {
        "location": "westeurope",
        "properties": {"creationData": {"createOption": "Copy", "sourceUri": os_disk.vhd.uri}},
    }
    error = refusal(lambda: compute.snapshots.begin_create_or_update(SNAP_RG, "lb-vhd", body))
    assert error.status_code == 404


def test_an_unattached_tagged_disk_has_no_owner(
    shapes: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, _ = shapes
    spare = compute.disks.get("rg-app", "disk-spare-01")
    assert (spare.disk_state, spare.managed_by) == ("Unattached", None)
    assert spare.tags == {"lifeboat:policy": "daily"}


def test_orphan_snapshots_name_a_disk_that_is_gone(
    shapes: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, _ = shapes
    snap = compute.snapshots.get(SNAP_RG, "snap-disk-deleted-02")
    missing = compute_id("disks", "rg-app", "disk-deleted-02")
    assert snap.creation_data.source_resource_id == missing
    assert snap.creation_data.source_unique_id  # what the deleted disk had
    assert snap.disk_size_gb == 64
    assert refusal(lambda: compute.disks.get("rg-app", "disk-deleted-02")).status_code == 404


def test_seeded_snapshots_are_listed_and_named_by_lifeboats_rule(
    shapes: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, _ = shapes
    disk = compute.disks.get("rg-app", "vm-full-01-osdisk")
    mine = [
        s
        for s in compute.snapshots.list_by_resource_group(SNAP_RG)
        if s.creation_data.source_resource_id == disk.id
    ]
    assert len(mine) == 460
    newest = max(mine, key=lambda s: s.time_created)
    assert newest.time_created == START - timedelta(hours=23)
    slot = newest.tags["lifeboat:slot"]
    assert newest.name == snapshot_name(disk.id, disk.unique_id, slot)  # the app's own function
    assert all(s.incremental and s.provisioning_state == "Succeeded" for s in mine)
    # Lookalikes: Lifeboat's pattern and tags, another disk's hash.
    odd = compute.disks.get("rg-app", "vm-odd-01-osdisk")
    looks = [
        s
        for s in compute.snapshots.list_by_resource_group(SNAP_RG)
        if s.creation_data.source_resource_id == odd.id
    ]
    assert len(looks) == 3
    for snap in looks:
        match = NAME_PATTERN.match(snap.name)
        assert match is not None
        assert match.group(1) != disk_hash(odd.id, odd.unique_id)
    foreign = list(compute.snapshots.list_by_resource_group("rg-other-snapshots"))
    assert len(foreign) == 5
    assert not any(NAME_PATTERN.match(s.name) for s in foreign)


def test_locks_and_policy_refusals_on_the_shapes_estate(
    shapes: tuple[ComputeManagementClient, httpx.Client],
) -> None:
    compute, _ = shapes
    locked = refusal(lambda: compute.snapshots.begin_delete(SNAP_RG, "snap-disk-deleted-01"))
    assert (locked.status_code, locked.error.code if locked.error else None) == (409, "ScopeLocked")
    source = compute_id("disks", "rg-app", "vm-odd-01-data-00")
    body = {
        "location": "westeurope",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": source},
            "incremental": True,
        },
    }
    denied = refusal(
        lambda: compute.snapshots.begin_create_or_update("rg-other-snapshots", "s-1", body)
    )
    assert denied.status_code == 403
    assert denied.error is not None
    assert denied.error.code == "RequestDisallowedByPolicy"


def test_changes_apply_at_their_instant_through_the_sdk() -> None:
    """A stand-in of its own: its clock moves to nights 2 and 3."""
    options = ("--clock-start", "2026-11-27T01:00:00Z", "--clock-rate", "0")
    with (
        running_emulator(SHAPES, *options) as ep,
        pytest.MonkeyPatch.context() as monkeypatch,
    ):
        pointed_at(ep, monkeypatch)
        compute = ComputeManagementClient(
            ManagedIdentityCredential(client_id=ep.client_id),
            SUB,
            base_url=ep.arm,
            credential_scopes=[ep.arm_audience + ".default"],
            connection_verify=ep.ca_bundle,
            retry_total=0,
        )
        verify = ssl.create_default_context(cafile=ep.ca_bundle)
        with httpx.Client(base_url=ep.admin, verify=verify, timeout=30) as admin:
            assert compute.virtual_machines.get("rg-app", "vm-going-01").name == "vm-going-01"
            admin.post("/clock", json={"set": "2026-11-28T00:59:59Z"}).raise_for_status()
            assert compute.virtual_machines.get("rg-app", "vm-going-01")  # not yet
            admin.post("/clock", json={"advanceSeconds": 1}).raise_for_status()
            gone = refusal(lambda: compute.virtual_machines.get("rg-app", "vm-going-01"))
            assert gone.status_code == 404
            assert refusal(lambda: compute.disks.get("rg-app", "vm-going-01-osdisk"))
            new = compute.virtual_machines.get("rg-app", "vm-new-01")
            assert new.tags == {"lifeboat:policy": "daily"}
            assert new.time_created == NIGHT_2
            assert compute.virtual_machines.get("rg-app", "vm-mixed-01").tags == {"owner": "team-b"}
            held = compute.snapshots.get(SNAP_RG, "snap-disk-deleted-02")
            assert held.tags["lifeboat:hold"] == "incident-4711"
            frozen = refusal(
                lambda: compute.snapshots.begin_delete(SNAP_RG, "snap-disk-deleted-02")
            )
            assert frozen.status_code == 409
            log = admin.get("/requests").json()
            changed = [e for e in log["entries"] if e["method"] == "CHANGE"]
            assert [e["operation"] for e in changed] == [
                "estate/addVm",
                "estate/deleteVm",
                "estate/retag",
                "estate/hold",
                "estate/lock",
            ]
            assert all(e["clock"] == "2026-11-28T01:00:00.000000Z" for e in changed)
            admin.post("/clock", json={"set": "2026-11-29T01:00:00Z"}).raise_for_status()
            listed = admin.get("/changes").json()["changes"]
            assert all(c["applied"] and c["status"] == 200 for c in listed)
            assert (
                "lifeboat:hold" not in compute.snapshots.get(SNAP_RG, "snap-disk-deleted-02").tags
            )
            compute.snapshots.begin_delete(SNAP_RG, "snap-disk-deleted-02", polling=False)
            assert compute.disks.get("rg-app", "disk-spare-02").disk_state == "Unattached"
            assert refusal(lambda: compute.disks.get("rg-app", "disk-spare-01")).status_code == 404


# ---- plain objects ---------------------------------------------------------------------------
def test_a_460_snapshot_disk_loads_in_well_under_a_second() -> None:
    one = small(disks=[{"name": "d", "resourceGroup": "rg-app", "snapshots": {"count": 460}}])
    began = time.monotonic()
    cloud = build_cloud(one, START)
    assert time.monotonic() - began < 0.25
    assert len(cloud.snapshots_of(compute_id("disks", "rg-app", "d"))) == 460
    assert cloud.snapshot_counts[(SUB, "westeurope", "Standard_ZRS")] == 460


def test_seeding_on_a_vm_covers_its_managed_disks_and_holds_the_oldest() -> None:
    data = small(
        vms=[
            {
                "name": "vm-a",
                "resourceGroup": "rg-app",
                "dataDisks": [{"lun": 0, "name": "vm-a-data"}],
                "snapshots": {"count": 4, "every": "12h", "newest": "1h", "held": 1},
            }
        ]
    )
    cloud = build_cloud(data, START)
    for disk in ("vm-a-osdisk", "vm-a-data"):
        snaps = sorted(
            cloud.snapshots_of(compute_id("disks", "rg-app", disk)), key=lambda s: s.time_created
        )
        assert len(snaps) == 4
        assert [("lifeboat:hold" in s.tags) for s in snaps] == [True, False, False, False]
        assert snaps[-1].time_created == (START - timedelta(hours=1)).replace(second=0)


def test_vault_in_another_subscription_protects_a_vm() -> None:
    stand_in = stand_in_of(shapes_data())
    found = stand_in.backup.protected_anywhere(
        compute_id("virtualMachines", "rg-app", "vm-full-01")
    )
    assert found is not None
    vault, _ = found
    assert vault.subscription == BACKUP_SUB


def test_changes_apply_lazily_log_and_publish() -> None:
    stand_in = stand_in_of(shapes_data())
    assert stand_in.catch_up() == []
    stand_in.clock.set(NIGHT_2 - timedelta(seconds=1))
    assert stand_in.catch_up() == []
    stand_in.clock.set(NIGHT_2)
    applied = stand_in.catch_up()
    assert [c.action for c in applied] == ["addVm", "deleteVm", "retag", "hold", "lock"]
    assert stand_in.catch_up() == []  # each applies once
    cloud = stand_in.cloud
    assert any(lk.name == "freeze-snapshots" for lk in cloud.locks)
    assert compute_id("disks", "rg-app", "vm-going-01-osdisk").lower() not in cloud.disks
    writes = [e for e in stand_in.events.status()["events"] if "vm-new-01" in e["subject"]]
    assert len(writes) == 2  # a new VM is two Event Grid writes, as a user's
    stand_in.clock.set(NIGHT_3)
    assert [c.action for c in stand_in.catch_up()] == ["addDisk", "release", "unlock", "deleteDisk"]
    assert not any(lk.name == "freeze-snapshots" for lk in cloud.locks)


def test_a_disk_recreated_under_a_deleted_ones_name_is_another_disk() -> None:
    data = shapes_data()
    data["changes"] = [
        {"at": "1h", "deleteDisk": "rg-app/disk-spare-01"},
        {"at": "2h", "addDisk": {"name": "disk-spare-01", "resourceGroup": "rg-app"}},
    ]
    stand_in = stand_in_of(data)
    disk_key = compute_id("disks", "rg-app", "disk-spare-01").lower()
    before = stand_in.cloud.disks[disk_key].unique_id
    stand_in.clock.advance(7200)
    assert [c.status for c in stand_in.catch_up()] == [200, 200]
    assert stand_in.cloud.disks[disk_key].unique_id != before


def test_a_change_whose_target_went_away_says_so() -> None:
    data = shapes_data()
    data["changes"] = [{"at": "1h", "hold": "rg-lifeboat-snapshots/snap-disk-deleted-02"}]
    stand_in = stand_in_of(data)
    del stand_in.cloud.snapshots[compute_id("snapshots", SNAP_RG, "snap-disk-deleted-02").lower()]
    stand_in.clock.advance(3600)
    (change,) = stand_in.catch_up()
    assert change.status == 404
    assert stand_in.log.snapshot(0, 10)["entries"][-1]["status"] == 404


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (
            {"vms": [{"name": "v", "resourceGroup": "rg-app", "osDisk": {"vhd": "c:/x.vhd"}}]},
            "subscriptions[0].vms[0].osDisk.vhd: must be a page blob URI",
        ),
        (
            {
                "vms": [
                    {
                        "name": "v",
                        "resourceGroup": "rg-app",
                        "dataDisks": [
                            {
                                "lun": 0,
                                "vhd": "https://acct.blob.core.windows.net/vhds/d.vhd",
                                "snapshots": {"count": 1},
                            }
                        ],
                    }
                ]
            },
            "subscriptions[0].vms[0].dataDisks[0].snapshots: a VHD has no disk resource",
        ),
        (
            {
                "disks": [
                    {
                        "name": "d",
                        "resourceGroup": "rg-app",
                        "vhd": "https://a1b.blob.core.windows.net/v/d.vhd",
                    }
                ]
            },
            "subscriptions[0].disks[0].vhd: a VHD is a blob",
        ),
        (
            {"snapshots": [{"name": "s", "resourceGroup": SNAP_RG, "source": "rg-app/gone"}]},
            "subscriptions[0].snapshots[0]: source disk rg-app/gone is not declared (a snapshot",
        ),
        (
            {
                "disks": [{"name": "d", "resourceGroup": "rg-app"}],
                "snapshots": [
                    {"name": "s", "resourceGroup": SNAP_RG, "source": "rg-app/d", "orphan": True}
                ],
            },
            "subscriptions[0].snapshots[0]: orphan: true, but source disk rg-app/d is declared",
        ),
        (
            {"disks": [{"name": "d", "resourceGroup": "rg-app", "snapshots": {"count": -1}}]},
            "subscriptions[0].disks[0].snapshots.count: must be a whole number >= 0",
        ),
        (
            {
                "disks": [
                    {
                        "name": "d",
                        "resourceGroup": "rg-app",
                        "snapshots": {"count": 2, "naming": "mine"},
                    }
                ]
            },
            "subscriptions[0].disks[0].snapshots.naming: must be one of",
        ),
        (
            {
                "disks": [
                    {
                        "name": "d",
                        "resourceGroup": "rg-app",
                        "snapshots": {"count": 2, "every": "30s"},
                    }
                ]
            },
            "subscriptions[0].disks[0].snapshots.every: must be at least 1m",
        ),
        (
            {
                "disks": [
                    {
                        "name": "d",
                        "resourceGroup": "rg-app",
                        "snapshots": {"count": 2, "group": "rg-x"},
                    }
                ]
            },
            "subscriptions[0].disks[0].snapshots.group: resource group 'rg-x' is not declared",
        ),
        (
            {
                "disks": [
                    {
                        "name": "d",
                        "resourceGroup": "rg-app",
                        "snapshots": {"count": 2, "evry": "1d"},
                    }
                ]
            },
            "subscriptions[0].disks[0].snapshots: unknown keys ['evry']",
        ),
    ],
)
def test_bad_shapes_name_their_path(shape: dict[str, Any], expected: str) -> None:
    assert expected in problems(small(**shape))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"at": "soon", "deleteVm": "rg-app/vm-going-01"}, "changes[0].at: must be an RFC 3339"),
        ({"deleteVm": "rg-app/vm-going-01"}, "changes[0].at: is required"),
        ({"at": "1h", "deleteVm": "rg-app/nope"}, "changes[0].deleteVm: no VM rg-app/nope by then"),
        ({"at": "1h", "hold": "x", "lock": {"name": "l"}}, "changes[0]: needs exactly one of"),
        (
            {"at": "1h", "retag": {"vm": "rg-app/vm-new-01", "tags": {}}},
            "changes[0].retag: no vm rg-app/vm-new-01 by then",
        ),
        (
            {"at": "1h", "retag": {"vm": "rg-app/vm-mixed-01", "tags": ["a"]}},
            "changes[0].retag.tags: a mapping",
        ),
        (
            {"at": "1h", "addVm": {"name": "v", "resourceGroup": "rg-none"}},
            "changes[0].addVm: resource group 'rg-none' is not declared",
        ),
        (
            {"at": "1h", "addVm": {"name": "vm-going-01", "resourceGroup": "rg-app"}},
            "changes[0].addVm: VM /subscriptions/",
        ),
        (
            {"at": "1h", "deleteDisk": "rg-app/vm-mixed-01-osdisk"},
            "changes[0].deleteDisk: rg-app/vm-mixed-01-osdisk is a VM's OS disk",
        ),
        ({"at": "1h", "lock": {"name": "l", "level": "Frozen"}}, "changes[0].lock.level: must be"),
        ({"at": "1h", "unlock": "nothing"}, "changes[0].unlock: no lock 'nothing' by then"),
        ({"at": "1h", "subscription": "0" * 36, "unlock": "x"}, "changes[0].subscription: 0000"),
        ({"at": "1h", "hold": "rg-lifeboat-snapshots/none"}, "changes[0].hold: no snapshot"),
        (
            {"at": "1h", "deleteVm": "rg-app/vm-going-01", "when": "now"},
            "changes[0]: unknown keys ['when']",
        ),
    ],
)
def test_bad_changes_name_their_path(change: dict[str, Any], expected: str) -> None:
    data = shapes_data()
    data["changes"] = [change]
    assert expected in problems(data)


def test_changes_are_checked_in_the_order_they_apply() -> None:
    data = shapes_data()
    data["changes"] = [
        {"at": "night 3", "deleteVm": "rg-app/vm-late"},  # added on night 2: fine
        {"at": "night 2", "addVm": {"name": "vm-late", "resourceGroup": "rg-app"}},
        {"at": "night 2", "deleteVm": "rg-app/vm-later"},  # added on night 3: too early
        {"at": "night 3", "addVm": {"name": "vm-later", "resourceGroup": "rg-app"}},
    ]
    message = problems(data)
    assert "changes[2].deleteVm: no VM rg-app/vm-later by then" in message
    assert "changes[0]" not in message


# ---- the generator -----------------------------------------------------------------------------
def test_generator_is_unchanged_by_default_and_adds_shapes_when_asked() -> None:
    # The bench's estate (bench/bench_rotation.py): its hash before shapes existed.
    bench = json.dumps(generate(5000, subscriptions=1, per_group=100, seed=5)).encode()
    assert hashlib.sha256(bench).hexdigest() == (
        "e15f332cd8c0d4d799ee44c0cbec1f4ca4cdd72951921d9cff107c4320fc4664"
    )
    data = generate(1500, seed=3, shapes=REALISTIC)
    assert data == generate(1500, seed=3, shapes=REALISTIC)
    plain = generate(1500, seed=3)
    assert [v["name"] for s in data["subscriptions"] for v in s["vms"]] == [
        v["name"] for s in plain["subscriptions"] for v in s["vms"]
    ]
    cloud = build_cloud(copy.deepcopy(data), START)
    vms = list(cloud.vms.values())
    vhd = sum(1 for vm in vms if vm.os_vhd is not None) / len(vms)
    assert 0.015 < vhd < 0.05
    assert any(not d.managed_by and "-spare" in d.name for d in cloud.disks.values())
    counts = [len(cloud.snapshots_of(d.id)) for d in cloud.disks.values()]
    assert any(440 <= n <= 470 for n in counts)
    assert any(n == 3 for n in counts)


def test_shapes_example_loads() -> None:
    cloud = load_estate_file(SHAPES, START)
    assert len(cloud.changes) == 9
    assert set(cloud.subscriptions) == {SUB, BACKUP_SUB}


def test_the_generators_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    from emulator.generate import main

    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--vms", "--shapes", "--vhd-percent", "--near-limit-percent"):
        assert flag in text
    assert "% of VMs on unmanaged VHD disks" in text
