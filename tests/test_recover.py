"""`lifeboat recover` on an in-memory RecoveryCloud: sets, every refusal, each mode's writes."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.recover_cmd import perform
from shared.model import DrillResource, Snapshot, VmStatus
from shared.ports import DrillDiskRequest, DrillVmRequest
from shared.recovery import (
    NoSetError,
    PreconditionFailedError,
    Request,
    Waiter,
    caller_of,
    choose_set,
    execute,
    prepare,
    record,
    snapshot_sets,
)
from shared.recovery.model import AttachedDisk, Nic, Plan, RecoveryVm, Result, SourceDisk, Usage
from shared.recovery.planning import size_cores
from shared.snapshots import set_id, snapshot_name
from tests.builders import SUB
from tests.fakes import FailingReporter, FixedClock, MemoryReporter

GROUP = "rg-lifeboat-snapshots"
NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
SUBNET = (
    f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Network/virtualNetworks/"
    "vnet-prod/subnets/snet-app"
)
ADE = ("azure_disk_encryption", True)


def _id(kind: str, name: str, group: str = "rg-app") -> str:
    provider = "Microsoft.Network" if kind == "networkInterfaces" else "Microsoft.Compute"
    return f"/subscriptions/{SUB}/resourceGroups/{group}/providers/{provider}/{kind}/{name}"


VM_ID = _id("virtualMachines", "vm-app")
OS, D0, D3 = (_id("disks", n) for n in ("vm-app-os", "vm-app-d0", "vm-app-d3"))
NIC = _id("networkInterfaces", "vm-app-nic")


def _vm(**changes: Any) -> RecoveryVm:
    vm = RecoveryVm(
        id=VM_ID,
        name="vm-app",
        subscription_id=SUB,
        resource_group="rg-app",
        location="westeurope",
        size="Standard_D2s_v5",
        os_type="Linux",
        os_disk=AttachedDisk(None, OS),
        data_disks=(AttachedDisk(0, D0, "ReadOnly"), AttachedDisk(3, D3)),
        zones=("2",),
        tags={"lifeboat:policy": "daily", "tier": "app"},
        nic_ids=(NIC,),
        boot_diagnostics={"enabled": True},
        etag='"7"',
        power_state="running",
    )
    return replace(vm, **changes)


def _snap(disk_id: str, slot: str, *, good: bool = True) -> Snapshot:
    name = snapshot_name(disk_id, f"uid-{disk_id[-4:]}", slot)
    at = datetime.strptime(slot, "%Y%m%d%H%M").replace(tzinfo=UTC) + timedelta(seconds=5)
    return Snapshot(
        id=_id("snapshots", name, GROUP),
        name=name,
        subscription_id=SUB,
        resource_group=GROUP,
        location="westeurope",
        time_created=at,
        source_resource_id=disk_id,
        source_unique_id=f"uid-{disk_id[-4:]}",
        incremental=True,
        provisioning_state="Succeeded" if good else "Failed",
    )


OLD, NEW = "202611250200", "202611270200"


class FakeRecovery:
    """The RecoveryCloud port in memory: what exists, and every write in order."""

    def __init__(self, clock: FixedClock, vm: RecoveryVm | None = None) -> None:
        self.clock = clock
        self.vms: dict[str, RecoveryVm] = {VM_ID.lower(): vm or _vm()}
        self.disks: dict[str, SourceDisk] = {
            d.lower(): SourceDisk(d, d.rsplit("/", 1)[-1], "westeurope", "Premium_LRS", 64)
            for d in (OS, D0, D3)
        }
        self.snapshots = [_snap(d, s) for d in (OS, D0, D3) for s in (OLD, NEW)]
        self.nics = {NIC.lower(): Nic(NIC, SUBNET, "10.10.1.4", VM_ID)}
        self.subnets = {SUBNET.lower(): "westeurope"}
        self.usages = [Usage("cores", 4, 20), Usage("standardDSv5Family", 4, 10)]
        self.made: dict[str, DrillResource] = {}
        self.group_disks: list[DrillResource] = []  # what a restore left in a group
        self.writes: list[tuple[str, Any]] = []
        self.power = "running"
        self.stale_etag = False

    def caller(self) -> str:
        return "oncall@contoso.com (oid-1)"

    def get_vm(self, vm_id: str) -> RecoveryVm | None:
        return self.vms.get(vm_id.lower())

    def get_disk(self, disk_id: str) -> SourceDisk | None:
        return self.disks.get(disk_id.lower())

    def list_snapshots(self, subscription_id: str, resource_group: str) -> list[Snapshot]:
        return list(self.snapshots)

    def get_nic(self, nic_id: str) -> Nic | None:
        return self.nics.get(nic_id.lower())

    def get_subnet_location(self, subnet_id: str) -> str | None:
        return self.subnets.get(subnet_id.lower())

    def list_usages(self, subscription_id: str, location: str) -> list[Usage]:
        return list(self.usages)

    def get_resource(self, resource_id: str) -> DrillResource | None:
        if resource_id.lower() in self.disks:
            return DrillResource(resource_id, "disks", "x", provisioning_state="Succeeded")
        return self.made.get(resource_id.lower())

    def list_disks(self, subscription_id: str, resource_group: str) -> list[DrillResource]:
        return [d for d in self.group_disks if d.id.split("/")[4].lower() == resource_group.lower()]

    def get_vm_status(self, vm_id: str) -> VmStatus | None:
        vm = self.vms.get(vm_id.lower())
        if vm is None:
            return None
        power = self.power if vm_id.lower() == VM_ID.lower() else "running"
        return VmStatus("Succeeded", power, "Ready", data_disks=len(vm.data_disks))

    def _make(self, resource_id: str, kind: str) -> None:
        self.made[resource_id.lower()] = DrillResource(
            resource_id, kind, resource_id.rsplit("/", 1)[-1], provisioning_state="Succeeded"
        )
        self.clock.advance(seconds=10)

    def begin_create_disk(self, request: DrillDiskRequest) -> None:
        self.writes.append(("disk", request))
        self._make(request.id, "disks")
        self.disks[request.id.lower()] = SourceDisk(
            request.id, request.id.rsplit("/", 1)[-1], "westeurope", request.sku, tags=request.tags
        )

    def begin_create_nic(
        self, nic_id: str, location: str, subnet_id: str, tags: Any, ip: Any = None
    ) -> None:
        self.writes.append(("nic", (nic_id, subnet_id, ip)))
        self._make(nic_id, "networkInterfaces")

    def begin_create_vm(self, request: DrillVmRequest) -> None:
        self.writes.append(("vm", request))
        self._make(request.id, "virtualMachines")
        self.vms[request.id.lower()] = _vm(
            id=request.id,
            name=request.id.rsplit("/", 1)[-1],
            data_disks=tuple(AttachedDisk(lun, d) for lun, d in request.data_disks),
        )

    def begin_deallocate(self, vm_id: str) -> None:
        self.writes.append(("deallocate", vm_id))
        self.power = "deallocated"

    def begin_start(self, vm_id: str) -> None:
        self.writes.append(("start", vm_id))
        self.power = "running"
        self.clock.advance(seconds=60)

    def update_vm_disks(
        self, vm: RecoveryVm, os_disk_id: str, data_disks: tuple[tuple[int, str], ...]
    ) -> None:
        self.writes.append(("update", (vm.etag, os_disk_id, data_disks)))
        if self.stale_etag:
            raise PreconditionFailedError("412 PreconditionFailed")
        current = self.vms[vm.id.lower()]
        self.vms[vm.id.lower()] = replace(
            current,
            os_disk=AttachedDisk(None, os_disk_id),
            data_disks=tuple(AttachedDisk(lun, d) for lun, d in data_disks),
            etag='"8"',
        )

    def merge_tags(self, resource_id: str, tags: dict[str, str]) -> None:
        self.writes.append(("tag", (resource_id, dict(tags))))
        disk = self.disks.get(resource_id.lower())
        if disk is not None:
            self.disks[resource_id.lower()] = replace(disk, tags={**disk.tags, **tags})

    def delete_tags(self, resource_id: str, keys: list[str]) -> None:
        self.writes.append(("untag", (resource_id, keys)))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def cloud(clock: FixedClock) -> FakeRecovery:
    return FakeRecovery(clock)


def _waiter(clock: FixedClock) -> Waiter:
    return Waiter(clock, lambda s: clock.advance(seconds=s), poll_seconds=5, timeout_seconds=600)


# ------------------------------------------------------------------------------- sets


def test_sets_are_newest_first_and_complete_when_every_disk_the_vm_had_is_in() -> None:
    snaps = [_snap(d, s) for d in (OS, D0, D3) for s in (OLD, NEW)]
    snaps = [s for s in snaps if not (s.name.endswith(NEW) and s.source_resource_id == D3)]
    sets = snapshot_sets(_vm(), snaps, GROUP)
    assert [s.slot for s in sets] == [NEW, OLD]
    assert sets[0].missing == (D3,)
    assert sets[1].complete
    assert [m.lun for m in sets[1].members] == [None, 0, 3]
    assert sets[1].set_id == set_id(VM_ID, OLD)
    with pytest.raises(
        NoSetError,
        match=r"incomplete: no good snapshot of vm-app-d3; the newest complete set is 202611250200",
    ):
        choose_set(_vm(), sets)
    assert choose_set(_vm(), sets, wanted=set_id(VM_ID, OLD)).slot == OLD
    assert choose_set(_vm(), sets, wanted=OLD).slot == OLD


def test_a_disk_attached_after_a_slot_is_not_missing_from_it() -> None:
    snaps = [_snap(d, s) for d in (OS, D0) for s in (OLD, NEW)] + [_snap(D3, NEW)]
    sets = snapshot_sets(_vm(), snaps, GROUP)
    old = choose_set(_vm(), sets, at=datetime(2026, 11, 26, tzinfo=UTC))
    assert old.slot == OLD
    assert old.complete


def test_snapshots_that_are_not_lifeboats_or_not_good_do_not_count() -> None:
    foreign = replace(_snap(OS, NEW), resource_group="rg-other")
    failed = _snap(D0, NEW, good=False)
    sets = snapshot_sets(_vm(), [foreign, failed, _snap(D3, NEW)], GROUP)
    with pytest.raises(NoSetError, match="has no OS disk snapshot; no complete set exists"):
        choose_set(_vm(), sets)


# ------------------------------------------------------------------------------- refusals


def _refused(cloud: FakeRecovery, **request: Any) -> str:
    decided = prepare(cloud, Request(VM_ID, **request), GROUP, NOW)
    assert not isinstance(decided, Plan), decided
    assert cloud.writes == []
    return decided.reason


REFUSALS: list[tuple[str, Any, dict[str, Any], str]] = [
    (
        "vhd",
        {"data_disks": (AttachedDisk(0, None, vhd_uri="https://a.blob/x.vhd"),)},
        {},
        "unmanaged (VHD) disks",
    ),
    (
        "marker",
        {"tags": {"Lifeboat:Recovery": "abc by bob"}},
        {},
        "in use by another recovery (lifeboat:recovery = abc by bob)",
    ),
    (
        "confidential",
        {"security_profile": {"securityType": "ConfidentialVM"}},
        {"mode": "swap-disks"},
        "is a Confidential VM",
    ),
    (
        "ephemeral",
        {"os_disk": AttachedDisk(None, None, ephemeral=True)},
        {"mode": "swap-disks"},
        "ephemeral OS disk",
    ),
    ("ade", "ade", {}, "vm-app-d0 uses Azure Disk Encryption"),
    ("des", "des", {}, "disk encryption set /subscriptions/other/"),
    ("name", "name", {"name": "taken"}, "the target name taken exists already"),
    (
        "keep-ip",
        None,
        {"keep_ip": True},
        "--keep-ip: vm-app's NIC vm-app-nic still holds 10.10.1.4",
    ),
    ("no-subnet", None, {"subnet_id": SUBNET + "x"}, "subnet " + SUBNET + "x does not exist"),
    ("region", "region", {}, "is in northeurope; vm-app and its snapshots are in westeurope"),
    ("vms", "vms", {}, "quota exceeded: virtualMachines in westeurope is at 25 of 25"),
    (
        "family",
        None,
        {"size": "Standard_D8s_v5"},
        "quota exceeded: standardDSv5Family in westeurope is at 4 of 10; a Standard_D8s_v5 "
        "needs 8 more",
    ),
    ("no-set", "noset", {"set_id": "nope"}, "vm-app has no snapshot set 'nope'"),
    (
        "at",
        None,
        {"at": datetime(2026, 11, 1, tzinfo=UTC)},
        "no snapshot set at or before 2026-11-01",
    ),
    ("rollback", None, {"mode": "rollback"}, "nothing to roll back"),
    ("gone", "gone", {}, "does not exist (or you cannot read it)"),
]


@pytest.mark.parametrize(
    ("vm_change", "request_", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_each_refusal_says_why_and_writes_nothing(
    cloud: FakeRecovery, vm_change: Any, request_: dict[str, Any], message: str
) -> None:
    if isinstance(vm_change, dict):
        cloud.vms[VM_ID.lower()] = _vm(**vm_change)
    elif vm_change == "ade":
        cloud.disks[D0.lower()] = replace(cloud.disks[D0.lower()], azure_disk_encryption=True)
    elif vm_change == "des":
        des = (
            "/subscriptions/other/resourceGroups/k/providers/Microsoft.Compute/diskEncryptionSets/d"
        )
        cloud.disks[OS.lower()] = replace(cloud.disks[OS.lower()], disk_encryption_set_id=des)
    elif vm_change == "name":
        cloud.made[_id("virtualMachines", "taken").lower()] = DrillResource("x", "vm", "taken")
    elif vm_change == "region":
        cloud.subnets[SUBNET.lower()] = "northeurope"
    elif vm_change == "vms":
        cloud.usages.append(Usage("virtualMachines", 25, 25))
    elif vm_change == "noset":
        pass
    elif vm_change == "gone":
        cloud.vms.clear()
    assert message in _refused(cloud, **request_)


def test_size_cores_and_family_follow_the_size_name() -> None:
    assert size_cores("Standard_D2s_v5") == (2, "standardDSv5Family")
    assert size_cores("Standard_E8s_v5") == (8, "standardESv5Family")
    assert size_cores("Standard_B2ms") == (2, "standardBSFamily")
    assert size_cores("Standard_DS3_v2") == (3, "standardDSv2Family")
    assert size_cores("Basic_A0") is None


# ------------------------------------------------------------------------------- modes


def test_new_vm_from_a_three_disk_set(cloud: FakeRecovery, clock: FixedClock) -> None:
    plan = prepare(cloud, Request(VM_ID), GROUP, NOW)
    assert isinstance(plan, Plan), plan
    assert [a.verb for a in plan.actions] == [
        "tag",
        "create-disk",
        "create-disk",
        "create-disk",
        "create-nic",
        "create-vm",
        "untag",
    ]
    assert [a.source for a in plan.actions if a.verb == "create-disk"] == [
        _snap(d, NEW).id for d in (OS, D0, D3)
    ]
    result = execute(cloud, plan, _waiter(clock), recovery_id="r1", caller="me")
    assert result.status == "succeeded", result.reason
    vm = next(r for kind, r in cloud.writes if kind == "vm")
    assert [lun for lun, _ in vm.data_disks] == [0, 3]
    assert vm.data_disks[0][1].endswith("-lun0")
    assert vm.zones == ("2",)
    assert vm.size == "Standard_D2s_v5"
    assert vm.boot_diagnostics == {"enabled": True}
    assert vm.caching == {0: "ReadOnly"}
    assert vm.tags["tier"] == "app"
    assert vm.tags["lifeboat:recovered-from"] == f"r1 {VM_ID}"
    disks = [r for kind, r in cloud.writes if kind == "disk"]
    assert all(d.zones == ("2",) for d in disks)
    assert ("nic", (plan.nic_id, SUBNET, None)) in cloud.writes
    assert cloud.writes[0] == (
        "tag",
        (VM_ID, {"lifeboat:recovery": f"r1 by me at {NOW.isoformat()}"}),
    )
    assert cloud.writes[-1] == ("untag", (VM_ID, ["lifeboat:recovery"]))
    assert set(result.steps) == {"disks", "vm", "agent-ready"}
    assert result.rto_seconds == pytest.approx(sum(result.steps.values()))
    assert result.rpo_seconds == (NOW - _snap(OS, NEW).time_created).total_seconds()  # type: ignore[operator]


def test_swap_keeps_the_old_disks_and_rollback_puts_them_back(
    cloud: FakeRecovery, clock: FixedClock
) -> None:
    plan = prepare(cloud, Request(VM_ID, mode="swap-disks"), GROUP, NOW)
    assert isinstance(plan, Plan), plan
    result = execute(cloud, plan, _waiter(clock), recovery_id="r1", caller="me")
    assert result.status == "succeeded", result.reason
    kinds = [k for k, _ in cloud.writes]
    assert kinds.index("deallocate") < kinds.index("update") < kinds.index("start")
    etag, os_id, data = next(r for k, r in cloud.writes if k == "update")
    assert etag == '"7"'
    assert os_id.endswith("-osdisk")
    assert [lun for lun, _ in data] == [0, 3]
    for old in (OS, D0, D3):
        assert (
            cloud.disks[old.lower()]
            .tags["lifeboat:replaced-by"]
            .endswith("-osdisk" if old == OS else f"-lun{old[-1]}")
        )
    assert set(result.steps) == {"disks", "deallocate", "swap", "start", "agent-ready"}
    cloud.writes.clear()
    back = prepare(cloud, Request(VM_ID, mode="rollback"), GROUP, NOW + timedelta(hours=1))
    assert isinstance(back, Plan), back
    assert execute(cloud, back, _waiter(clock), recovery_id="r2", caller="me").status == "succeeded"
    vm = cloud.vms[VM_ID.lower()]
    assert [a.disk_id for a in vm.attachments] == [OS, D0, D3]


def test_a_stale_etag_fails_the_swap_starts_the_vm_again_and_removes_the_marker(
    cloud: FakeRecovery, clock: FixedClock
) -> None:
    cloud.stale_etag = True
    plan = prepare(cloud, Request(VM_ID, mode="swap-disks"), GROUP, NOW)
    assert isinstance(plan, Plan)
    result = execute(cloud, plan, _waiter(clock), recovery_id="r1", caller="me")
    assert result.status == "failed"
    assert "If-Match on its ETag failed" in (result.reason or "")
    assert [k for k, _ in cloud.writes][-2:] == ["start", "untag"]
    assert cloud.vms[VM_ID.lower()].os_disk.disk_id == OS


def test_disks_only_writes_disks_and_no_marker(cloud: FakeRecovery, clock: FixedClock) -> None:
    plan = prepare(cloud, Request(VM_ID, mode="disks-only"), GROUP, NOW)
    assert isinstance(plan, Plan)
    result = execute(cloud, plan, _waiter(clock), recovery_id="r1", caller="me")
    assert result.status == "succeeded"
    assert [k for k, _ in cloud.writes] == ["disk", "disk", "disk"]


def test_a_step_that_never_ends_fails_with_its_name(cloud: FakeRecovery, clock: FixedClock) -> None:
    plan = prepare(cloud, Request(VM_ID), GROUP, NOW)
    assert isinstance(plan, Plan)
    cloud.get_vm_status = lambda vm_id: VmStatus("Succeeded", "running", "Not Ready")  # type: ignore[method-assign]
    result = execute(cloud, plan, _waiter(clock), recovery_id="r1", caller="me")
    assert result.status == "failed"
    assert "to run with its VM agent ready did not finish within 600 s" in (result.reason or "")
    assert result.rto_seconds is None
    assert cloud.writes[-1][0] == "untag"


# ------------------------------------------------------------------------------- report


def test_perform_records_one_row_and_a_failing_reporter_never_fails_the_recovery(
    cloud: FakeRecovery, clock: FixedClock
) -> None:
    reporter = MemoryReporter()
    document = perform(
        cloud,
        clock,
        reporter,
        Request(VM_ID),
        lambda s: GROUP,
        sleep=lambda s: clock.advance(seconds=s),
    )
    assert document["status"] == "succeeded"
    assert set(document) >= {
        "vmId",
        "mode",
        "source",
        "status",
        "rtoSeconds",
        "rpoSeconds",
        "newVmId",
        "steps",
    }
    [row] = reporter.outcomes
    assert (row.job, row.operation, row.status) == ("recovery", "recover", "succeeded")
    assert row.details["caller"] == "oncall@contoso.com (oid-1)"
    assert row.details["mode"] == "new-vm"
    assert row.rto_seconds == round(document["rtoSeconds"])
    unsent = record(
        FailingReporter(),
        clock,
        Result(None, "failed"),
        vm_id=VM_ID,
        mode="new-vm",
        recovery_id="r",
        stamp="1",
    )
    assert unsent == "ConnectionError: monitor unreachable"


def test_a_dry_run_and_a_refusal_record_what_they_should(
    cloud: FakeRecovery, clock: FixedClock
) -> None:
    reporter = MemoryReporter()
    planned = perform(cloud, clock, reporter, Request(VM_ID), lambda s: GROUP, dry_run=True)
    assert planned["status"] == "planned"
    assert reporter.outcomes == []
    assert cloud.writes == []
    refused = perform(cloud, clock, reporter, Request(VM_ID, keep_ip=True), lambda s: GROUP)
    assert refused["status"] == "refused"
    assert [o.status for o in reporter.outcomes] == ["refused"]


def test_caller_of_reads_upn_and_oid_from_a_token() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"upn": "a@b.c", "oid": "o-1"}).encode())
    assert caller_of(f"h.{claims.decode().rstrip('=')}.s") == "a@b.c (o-1)"
    assert caller_of("not-a-token") == "unknown"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--recovery-point", "latest", "--set", "x"], "choose one of --set and --recovery-point"),
        (["--rollback", "--recovery-point", "latest"], "it takes no --recovery-point"),
        (["--staging-account", "x"], "--staging-account goes with --recovery-point only"),
        (
            ["--recovery-point", "latest", "--staging-account", "/subscriptions/s/x"],
            "'/subscriptions/s/x' is not a storage account id",
        ),
        (["--swap-disks", "--disks-only"], "choose one of --swap-disks, --disks-only"),
        (["--at", "yesterday"], "--at 'yesterday' is not a time"),
        (["--swap-disks", "--keep-ip"], "--keep-ip go with --new-vm only"),
    ],
)
def test_usage_errors_exit_2_before_reading_anything(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["recover", VM_ID, *args])
    assert result.exit_code == 2
    assert message in result.output
