"""DR drills end to end: Azurite, the local host with the real app, and the Azure stand-in.

One rotation night makes the snapshot sets; then the drill timer fires and the three VMs the demo
estate tags `lifeboat:drill=nightly` are restored in isolation, one of which never boots (the
estate scripts it), and two more
drills are started by hand on networks the pre-flight must refuse (peered to production; an NSG
that lets the VM reach the Internet). Faults all along: 30% of the drills' disk, NIC and VM PUTs
are throttled, and the host loses the completion of some drill steps (so they run again and
hand the drill on twice). Every drill reports once, with RTO and RPO in the stand-in's time, and
afterwards the drill resource group holds nothing a drill made.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from cli.azurite import Azurite
from cli.demo import FAST_SETTINGS, STAND_IN_OPTIONS
from cli.localhost import Faults
from emulator.process import DEMO_ESTATE, running_emulator
from shared import drills
from shared.model import Outcome
from shared.services import reset_services, services
from tests.e2e_env import SUB, app_host, app_settings, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

DRILL_GROUP = "rg-lifeboat-drill-westeurope"
START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CLOCK_RATE = 30  # stand-in seconds per real second while the drills run
DRILLED = ("vm-web-01", "vm-db-01", "vm-report-01")  # vm-report-01 never boots
BLOCKED = {"vm-cluster-01": "peered", "vm-api-01": "open"}


def _vm_id(name: str, group: str = "rg-app") -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/"
        f"virtualMachines/{name}"
    )


def _subnet(vnet: str, subnet: str) -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}/providers/Microsoft.Network/"
        f"virtualNetworks/{vnet}/subnets/{subnet}"
    )


POLICIES = f"""\
version: 1
policies:
  daily:
    retention: {{daily: 7}}
drillPlans:
  nightly: {{everyDays: 1, rtoTargetMinutes: 30, maxLifetimeHours: 4, bootTimeoutMinutes: 6}}
  peered: {{everyDays: 1, network: {{subnetId: "{_subnet("vnet-drill-peered", "snet-drill")}"}}}}
  open: {{everyDays: 1, network: {{subnetId: "{_subnet("vnet-drill-open", "snet-drill")}"}}}}
"""


@pytest.fixture(scope="module")
def drill_night(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("drills")
    reporter = MemoryReporter()
    stand_in = (*STAND_IN_OPTIONS, "--clock-start", START.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with running_emulator(DEMO_ESTATE, *stand_in) as ep, patched_environ(ep.environment()):
        (tmp / "policies.yaml").write_text(POLICIES)
        environ = app_settings(
            azurite,
            ep,
            DRILL_SCHEDULE="0 0 4 * * *",
            **FAST_SETTINGS,
            POLICIES_FILE=str(tmp / "policies.yaml"),
        )
        overrides, clock, admin = wire_services(ep, environ, reporter, tmp / "host.json")
        credential = ManagedIdentityCredential(client_id=ep.client_id)
        options: dict[str, Any] = {
            "base_url": ep.arm,
            "credential_scopes": [ep.arm_audience + ".default"],
        }
        for kind in ("/disks/", "/networkInterfaces/", "/virtualMachines/"):
            admin.post(
                "/faults",
                json={
                    "action": "status",
                    "method": "PUT",
                    "path": kind,
                    "status": 429,
                    "code": "TooManyRequests",
                    "retryAfter": 0,
                    "count": 2,
                },
            ).raise_for_status()
        compute = ComputeManagementClient(credential, SUB, **options)
        network = NetworkManagementClient(credential, SUB, **options)
        try:
            with app_host(
                overrides,
                environ,
                clock,
                faults=Faults(fail_after_return=Counter({"drill_step": 4})),
            ) as host:
                rt = services()
                _set_clock(admin, START.replace(hour=2))
                _wait(lambda: _has(reporter, "run-end", job="rotation"), "the rotation night")
                host.wait_idle(timeout=60)
                before = {r.name for r in compute.disks.list_by_resource_group(DRILL_GROUP)}
                admin.post("/clock", json={"rate": CLOCK_RATE}).raise_for_status()
                _set_clock(admin, START.replace(hour=4))
                for name, plan in BLOCKED.items():
                    drills.start_drill_now(rt, _vm_id(name), plan)
                _wait(
                    lambda: len(_drills(reporter)) >= len(DRILLED) + len(BLOCKED),
                    "every drill to report",
                    timeout=150,
                )
                host.wait_idle(timeout=60)
                left = {
                    "vms": [v.name for v in compute.virtual_machines.list(DRILL_GROUP)],
                    "disks": sorted(
                        {d.name for d in compute.disks.list_by_resource_group(DRILL_GROUP)} - before
                    ),
                    "nics": [n.name for n in network.network_interfaces.list(DRILL_GROUP)],
                    "vnets": [v.name for v in network.virtual_networks.list(DRILL_GROUP)],
                    "nsgs": [n.name for n in network.network_security_groups.list(DRILL_GROUP)],
                }
                requests = admin.get("/requests", params={"limit": 1}).json()["counters"]
            yield reporter, left, requests
        finally:
            admin.close()
            reset_services()


def _set_clock(admin: httpx.Client, at: datetime) -> None:
    admin.post("/clock", json={"set": at.strftime("%Y-%m-%dT%H:%M:%SZ")}).raise_for_status()


def _wait(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def _has(reporter: MemoryReporter, operation: str, *, job: str) -> bool:
    return any(o.operation == operation and o.job == job for o in reporter.outcomes)


def _drills(reporter: MemoryReporter) -> dict[str, Outcome]:
    return {o.vm_name or "": o for o in reporter.outcomes if o.operation == "drill"}


def test_drills_restore_boot_measure_and_report_rto_and_rpo(drill_night: Any) -> None:
    reporter, _left, requests = drill_night
    results = _drills(reporter)
    assert set(results) == set(DRILLED) | set(BLOCKED)
    rows = {o.id: o for o in reporter.outcomes if o.operation == "drill"}
    reports = Counter(o.details["drillId"] for o in rows.values())
    assert set(reports.values()) == {1}, "every drill reports one row (a repeat has its id)"
    assert requests["byStatus"].get("429", 0) >= 6, "the faults happened: two 429s per kind"
    for name in ("vm-web-01", "vm-db-01"):
        outcome = results[name]
        assert outcome.status == "succeeded", (name, outcome.reason)
        # RTO in the stand-in's time: create (60 s), boot (45 s) and agent (30 s) at the least
        assert outcome.rto_seconds is not None
        assert 135 <= outcome.rto_seconds <= 1800, (name, outcome.rto_seconds)
        # RPO: the set is tonight's 02:00 slot, the drill started at 04:00
        assert outcome.rpo_seconds is not None
        assert 2 * 3600 - 60 <= outcome.rpo_seconds <= 2 * 3600 + 60, outcome.rpo_seconds
        assert outcome.details["setSlot"] == "202611270200"
        assert outcome.details["checks"] == {
            "running": True,
            "agentReady": True,
            "dataDisksAttached": True,
        }
        assert outcome.details["steps"]["wait-ready"] > 0
        # steps are timed end to end from the drill's start, so they add up to the RTO
        to_ready = ("prepare", "create-disks", "create-vm", "wait-ready")
        assert abs(sum(outcome.details["steps"][s] for s in to_ready) - outcome.rto_seconds) <= 2
        assert outcome.details["policyAssignments"], "the pre-flight lists policy assignments"


def test_a_vm_that_never_boots_fails_with_its_rpo(drill_night: Any) -> None:
    reporter, _left, _requests = drill_night
    outcome = _drills(reporter)["vm-report-01"]
    assert outcome.status == "failed"
    assert "did not become ready within 360 s" in (outcome.reason or "")
    assert outcome.rto_seconds is None
    assert outcome.rpo_seconds is not None


@pytest.mark.parametrize(
    ("vm", "reason"),
    [("vm-cluster-01", "the VNet is peered"), ("vm-api-01", "allows outbound Internet traffic")],
)
def test_the_pre_flight_blocks_unisolated_networks_before_any_disk(
    drill_night: Any, vm: str, reason: str
) -> None:
    reporter, _left, _requests = drill_night
    outcome = _drills(reporter)[vm]
    assert outcome.status == "failed"
    assert "isolation pre-flight failed" in (outcome.reason or "")
    assert reason in (outcome.reason or "")
    assert "create-disks" not in outcome.details["steps"]


def test_nothing_a_drill_made_is_left_and_drill_groups_stay_out_of_planning(
    drill_night: Any,
) -> None:
    reporter, left, requests = drill_night
    assert left["vms"] == []
    assert left["disks"] == []
    assert left["nics"] == []
    assert [v for v in left["vnets"] if v.startswith("lbd-")] == []
    assert [n for n in left["nsgs"] if n.startswith("lbd-")] == []
    # drill VMs were never planned for rotation nor onboarded
    assert not [
        o
        for o in reporter.outcomes
        if o.resource_group == DRILL_GROUP and o.job in ("rotation", "onboarding")
    ]
    # no snapshot beginGetAccess was ever asked for
    actions = requests.get("byAction", {})
    assert not [a for a in actions if "snapshots/begingetaccess" in a.lower()]
    assert requests["byOperation"].get("Microsoft.Compute/virtualMachines/write", 0) >= 3
