"""Every VM and disk gets its row, end to end: one estate with every shape of the README's
"VMs and disks" table, one night and one verification run through the local host, Azurite and
the stand-in; `lifeboat plan`'s document read from the same stand-in before the night.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cli.azurite import Azurite
from cli.plan_cmd import _describe
from emulator.ids import compute_id, stable_uuid
from emulator.process import running_emulator
from shared import rotation
from shared.model import Outcome
from shared.services import reset_services, services
from shared.snapshots import snapshot_name
from tests.e2e_env import SUB, app_host, app_settings, stand_in_options, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

OTHER = "9b2d4c61-0e3f-4a57-8b19-2c6d8e0f4a73"  # a subscription Lifeboat does not serve
NIGHT = datetime.fromisoformat("2026-11-27T02:00:00+00:00")
SLOT = "202611270200"
VM_ID = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines"
LOCKED_OS = compute_id(SUB, "rg-app", "disks", "vm-lock-osdisk")
# vm-lock's oldest seeded snapshot (6 a day apart, the newest a day before the 01:00 start).
LOCKED = snapshot_name(LOCKED_OS, stable_uuid(LOCKED_OS), "202611210100")
LOCK_SCOPE = f"resourceGroups/rg-lifeboat-snapshots/providers/Microsoft.Compute/snapshots/{LOCKED}"

POLICIES = """\
version: 1
policies:
  daily: {retention: {last: 3}}
  weekly: {retention: {last: 4}, nights: [sun]}
"""

ESTATE = f"""\
version: 1
identities:
  - {{name: id-lifeboat, clientId: 8a4f1e27-3c6b-4d95-a0e8-5b2c7f9d1e43,
     objectId: c2e75b19-8d4a-4f36-9b1e-7a3d5c8f2e64}}
subscriptions:
  - id: {SUB}
    location: westeurope
    resourceGroups:
      - {{name: rg-app}}
      - {{name: mrg-locked}}
      - {{name: rg-lifeboat-snapshots}}
    disks:
      - {{name: disk-loose, resourceGroup: rg-app, sku: Premium_LRS, sizeGB: 32,
         tags: {{"lifeboat:policy": daily}}}}
    vms:
      - {{name: vm-mixed, resourceGroup: rg-app, tags: {{"LIFEBOAT:Policy": " Daily "}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32}}}}
      - {{name: vm-typo, resourceGroup: rg-app, tags: {{"lifebaot:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32}}}}
      - {{name: vm-gold, resourceGroup: rg-app, tags: {{"lifeboat:policy": gold-plus}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32}}}}
      - {{name: vm-vhd, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{vhd: "https://stvhds01.blob.core.windows.net/vhds/vm-vhd.vhd"}}}}
      - {{name: vm-look, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32,
                  snapshots: {{count: 2, every: 1d, newest: 1d, naming: lookalike}}}}}}
      - {{name: vm-hold, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32,
                  snapshots: {{count: 5, every: 1d, newest: 1d, held: 1}}}}}}
      - {{name: vm-lock, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32,
                  snapshots: {{count: 6, every: 1d, newest: 1d}}}}}}
      - {{name: vm-near, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32,
                  snapshots: {{count: 460, every: 1h, newest: 1h, naming: other}}}}}}
      - {{name: vm-full, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32,
                  snapshots: {{count: 500, every: 1d, newest: 1d}}}}}}
      - {{name: vm-denied, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{name: disk-denied, resourceGroup: mrg-locked, sku: Premium_LRS, sizeGB: 32}}}}
      - {{name: vm-surplus, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32,
                  snapshots: {{count: 10, every: 1d, newest: 1d}}}}}}
      - {{name: vm-optout, resourceGroup: rg-app, tags: {{"lifeboat:policy": none}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32}}}}
      - {{name: vm-bare, resourceGroup: rg-app, osDisk: {{sku: Premium_LRS, sizeGB: 32}}}}
    locks:
      - {{name: legal-hold, level: CanNotDelete,
         scope: "{LOCK_SCOPE}"}}
    denyAssignments:
      - {{name: managed-rg, scope: resourceGroups/mrg-locked, actions: ["*"]}}
  - id: {OTHER}
    location: westeurope
    resourceGroups:
      - {{name: rg-backup}}
vaults:
  - name: rsv-app
    resourceGroup: rg-app
    items:
      - {{vm: rg-app/vm-typo, lastBackup: 30h, outcome: none}}
      - {{vm: rg-app/vm-optout, lastBackup: 5h}}
      - {{vm: rg-app/vm-bare, lastBackup: 5h}}
  - name: rsv-elsewhere
    subscription: {OTHER}
    resourceGroup: rg-backup
    items:
      - {{vm: "{VM_ID}/vm-mixed", lastBackup: 5h}}
"""


@contextlib.contextmanager
def _shapes(azurite: Azurite, tmp_path: Path) -> Iterator[tuple[Any, MemoryReporter, Any]]:
    estate, policies = tmp_path / "shapes.yaml", tmp_path / "policies.yaml"
    estate.write_text(ESTATE)
    policies.write_text(POLICIES)
    with (
        running_emulator(estate, *stand_in_options(5)) as ep,
        patched_environ(ep.environment()),
    ):
        environ = app_settings(
            azurite,
            ep,
            POLICIES_FILE=str(policies),
            VERIFICATION_SCHEDULE="0 0 6 * * *",
            ARM_WRITES_PER_SECOND="200",
            SNAPSHOT_WRITES_PER_SECOND="200",
            CONFIRM_DELAY_SECONDS="1",
            ON_DEMAND_BACKUP="true",
        )
        reporter = MemoryReporter()
        overrides, clock, admin = wire_services(ep, environ, reporter, tmp_path / "host.json")
        try:
            with app_host(overrides, environ, clock) as host:
                yield host, reporter, admin
        finally:
            admin.close()
            reset_services()


def _wait_for(reporter: MemoryReporter, job: str, operation: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(o.job.value == job and o.operation == operation for o in list(reporter.outcomes)):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no {job} {operation}")


def _rows(reporter: MemoryReporter, operation: str, status: str | None = None) -> list[Outcome]:
    return [
        o
        for o in reporter.outcomes
        if o.operation == operation and (status is None or o.status.value == status)
    ]


def _skip(reporter: MemoryReporter, kind: str) -> Outcome:
    [row] = {o.id: o for o in reporter.outcomes if o.details.get("skip") == kind}.values()
    return row


def test_every_vm_and_disk_shape_gets_its_row_in_one_night(
    azurite: Azurite, tmp_path: Path
) -> None:
    with _shapes(azurite, tmp_path) as (host, reporter, admin):
        plan = _describe(*rotation.preview_night(services(), SUB, NIGHT))
        admin.post("/clock", json={"set": NIGHT.isoformat()}).raise_for_status()
        _wait_for(reporter, "rotation", "run-end")
        host.wait_idle(timeout=60)
        admin.post("/clock", json={"set": "2026-11-27T06:00:00Z"}).raise_for_status()
        _wait_for(reporter, "verification", "run-end")
        host.wait_idle(timeout=60)

    # lifeboat plan, before the night: every shape listed with its reason.
    assert {m["resource"].rsplit("/", 1)[-1]: m["reason"] for m in plan["tagMistakes"]} == {
        "vm-typo": 'tag "lifebaot:policy" looks like "lifeboat:policy"',
        "vm-gold": "unknown policy gold-plus; known: daily, weekly",
    }
    assert {s["skip"] for s in plan["skips"] if s["skip"]} == {"not-attached", "unmanaged-disk"}
    assert {s["reason"] for s in plan["skips"] if not s["skip"]} == {
        "opted out (lifeboat:policy=none)",
        "no lifeboat:policy tag and no default policy",
    }
    assert len(plan["notLifeboats"]) == 2
    assert [w["kind"] for w in plan["warnings"]] == ["disk-near-limit", "disk-near-limit"]
    assert {h["snapshot"].rsplit("/", 1)[-1][:19] for h in plan["held"]} == {
        snapshot_name(*_os("vm-hold"), "x")[:19]
    }

    # Mixed-case, spaced tags: planned under the policy, snapshotted.
    [mixed] = [o for o in _rows(reporter, "plan-vm", "planned") if o.vm_name == "vm-mixed"]
    assert mixed.policy == "daily"
    typo, gold = _skip(reporter, "tag-typo"), _skip(reporter, "unknown-policy")
    assert (typo.vm_name, typo.status.value, typo.severity) == ("vm-typo", "skipped", "warning")
    assert gold.reason == "unknown policy gold-plus; known: daily, weekly"
    loose = _skip(reporter, "not-attached")
    assert (loose.resource_id or "").endswith("/disks/disk-loose")
    assert loose.reason == "not attached to a VM (tag the VM)"
    vhd = _skip(reporter, "unmanaged-disk")
    assert (vhd.vm_name, vhd.reason) == (
        "vm-vhd",
        "unmanaged disk: the OS disk is a VHD in a storage account",
    )

    # Lookalikes: one row for the night, never deleted, never blocked.
    [look] = {o.id: o for o in _rows(reporter, "lookalike-snapshots")}.values()
    assert (look.status.value, look.count) == ("skipped", 2)

    # Held by tag and by lock: `held` with who holds them.
    held = {o.id: o for o in _rows(reporter, "snapshot-delete", "held")}.values()
    by = {o.details["heldBy"]: o for o in held}
    assert set(by) == {"tag", "lock"}
    assert by["tag"].reason == "held by tag lifeboat:hold=seeded: kept whatever retention says"
    assert LOCKED in (by["lock"].reason or "")
    assert (by["lock"].resource_id or "").endswith(LOCKED)

    # Limits: 460 seen on vm-near's disk; vm-full at 500 waits, then prunes its oldest 100.
    near = [o for o in _rows(reporter, "quota-warning") if "vm-near" in (o.resource_id or "")]
    assert [o.count for o in {o.id: o for o in near}.values()] == [460]
    full = _os("vm-full")[0].lower()
    [waiting] = [
        o
        for o in _rows(reporter, "snapshot-create", "waiting")
        if (o.resource_id or "").lower() == full
    ]
    assert waiting.reason == "snapshot limit: 500 per disk"
    pruned = {
        o.resource_id
        for o in _rows(reporter, "snapshot-delete", "succeeded")
        if (o.details.get("sourceId") or "").lower() == full
    }
    assert len(pruned) == 100
    [left] = [
        o
        for o in _rows(reporter, "snapshot-delete", "waiting")
        if (o.resource_id or "").lower() == full
    ]
    assert (left.count, left.details["atLimit"]) == (397, True)

    # More surplus than the per-disk cap: 10 seeded and tonight's, 3 kept; of the 8 surplus,
    # the cap (half of 11) takes the oldest 5 tonight and the other 3 wait for the next nights.
    surplus_disk, surplus_uid = _os("vm-surplus")
    surplus_pruned = {
        o.resource_id.rsplit("/", 1)[-1]
        for o in _rows(reporter, "snapshot-delete", "succeeded")
        if o.resource_id and (o.details.get("sourceId") or "").lower() == surplus_disk.lower()
    }
    oldest = {snapshot_name(surplus_disk, surplus_uid, f"202611{d:02}0100") for d in range(17, 22)}
    assert surplus_pruned == oldest
    [later] = [
        o
        for o in _rows(reporter, "snapshot-delete", "waiting")
        if (o.resource_id or "").lower() == surplus_disk.lower()
    ]
    assert (later.count, later.details["remaining"], later.details["atLimit"]) == (3, 3, False)
    remaining = {disk.lower(): count for disk, count in plan["remaining"].items()}
    assert remaining[surplus_disk.lower()] == 3  # Azure writes ids in any casing

    # Blocked by Azure (a deny assignment): blocked, never failed; the night is not failed.
    denied = [o for o in reporter.outcomes if (o.resource_id or "").endswith("/disk-denied")]
    assert {o.status.value for o in denied} >= {"blocked"}
    assert "failed" not in {o.status.value for o in denied}
    [end] = {o.id: o for o in _rows(reporter, "run-end") if o.job.value == "rotation"}.values()
    assert end.status.value == "succeeded"

    # Verification: protected by a vault in a subscription Lifeboat does not serve.
    [unserved] = {
        o.id: o for o in reporter.outcomes if o.details.get("skip") == "vault-unserved"
    }.values()
    assert (unserved.vm_name, unserved.severity) == ("vm-mixed", "warning")
    assert unserved.reason == f"not verified: vault in unserved subscription {OTHER}"

    # Protected by Azure Backup whatever its tags (a tag mistake, an opt-out, no tag): verified
    # against a day's RPO (no default policy), outside Lifeboat's policies, never remediated.
    verified = {o.vm_name: o for o in _rows(reporter, "verify-vm")}
    for name in ("vm-typo", "vm-optout", "vm-bare"):
        row = verified[name]
        assert row.policy is None, name
        assert row.details["scope"] == "protected by Azure Backup, outside Lifeboat's policies"
        assert row.details["rpoTargetSeconds"] == 24 * 3600, name
    assert verified["vm-typo"].finding == "rpo-breached"  # 35 h: its backups stopped
    assert {verified[n].finding for n in ("vm-optout", "vm-bare")} == {"compliant"}
    assert not [o for o in reporter.outcomes if o.operation == "on-demand-backup"]


def _os(vm: str) -> tuple[str, str]:
    disk_id = compute_id(SUB, "rg-app", "disks", f"{vm}-osdisk")
    return disk_id, stable_uuid(disk_id)
