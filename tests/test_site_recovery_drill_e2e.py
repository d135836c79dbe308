"""Site-recovery drills end to end on the stand-in: the real adapters and SDKs
(azure-mgmt-recoveryservicessiterecovery among them), the real dispatch, the stand-in's clock
moved by the simulated host (frozen in between). One stand-in, the demo estate's vault:

- `rp-web` (vm-db-01 then vm-web-01): the test failover passes, each test VM is tagged as the
  drill's in `rg-app-asr` (no drill group), boots in the isolated drill network, RTO per boot
  group; cleaned up through Site Recovery, the test VMs gone;
- `rp-boot` (vm-report-01, whose test VM's agent never gets ready): the drill fails, the
  cleanup still runs;
- `rp-old` (vm-api-01, a test failover started 30 hours ago and never cleaned up): a drill of it
  is not started (the plan still waits for cleanup); the sweeper finds it and cleans it up;
- `rp-retry` (vm-cluster-01, whose cleanup fails SITE_RECOVERY_CLEANUP_ATTEMPTS - 1 times): the
  last attempt cleans up, the drill passes;
- `rp-stuck` (vm-db-02, whose cleanup fails once more than the attempts): the drill fails naming
  the test failover it leaves, the drill-failed alert fires for it (infra/alerts/drill-failed.kql
  run over its rows), and the sweeper's next pass cleans it up.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cli.drill_cmd import running_drills
from emulator.process import DEMO_ESTATE, Endpoints, running_emulator
from shared import dispatch
from shared.drills.failover import start_failover_drill_now, waiting_for_cleanup
from shared.model import Outcome
from shared.names import Timer
from shared.policies import parse_policies
from shared.services import build_runtime
from tests.drill_fakes import SimHost, SimQueues
from tests.e2e_env import replicated_item, stand_in_settings
from tests.fakes import MemoryReporter, patched_environ
from tests.test_alerts import run_query
from tests.test_recovery_point_e2e import StandInClock

pytestmark = pytest.mark.e2e

SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"  # the demo estate's
TARGET = f"/subscriptions/{SUB}/resourceGroups/rg-app-asr/providers/Microsoft.Compute"
ATTEMPTS = 3  # SITE_RECOVERY_CLEANUP_ATTEMPTS
DRILL_FAILED = Path(__file__).resolve().parent.parent / "infra" / "alerts" / "drill-failed.kql"
POLICIES = parse_policies({"version": 1, "policies": {}, "drillPlans": {}})


def _estate(path: Path) -> Path:
    estate = yaml.safe_load(Path(DEMO_ESTATE).read_text())
    asr = estate["siteRecovery"][0]
    asr["items"] = [
        replicated_item("rg-app/vm-web-01"),
        replicated_item("rg-data/vm-db-01"),
        replicated_item("rg-data/vm-report-01", bootFails=True),
        replicated_item("rg-app/vm-api-01"),
        replicated_item("rg-data/vm-db-02"),
        replicated_item("rg-app/vm-cluster-01"),
    ]
    asr["plans"] = [
        {"name": "rp-web", "groups": [{"vms": ["vm-db-01"]}, {"vms": ["vm-web-01"]}]},
        {"name": "rp-boot", "groups": [{"vms": ["vm-report-01"]}]},
        {"name": "rp-old", "groups": [{"vms": ["vm-api-01"]}], "testFailoverStarted": "30h"},
        {"name": "rp-stuck", "groups": [{"vms": ["vm-db-02"]}], "cleanupFailures": ATTEMPTS + 1},
        {
            "name": "rp-retry",
            "groups": [{"vms": ["vm-cluster-01"]}],
            "cleanupFailures": ATTEMPTS - 1,
        },
    ]
    path.write_text(yaml.safe_dump(estate))
    return path


@dataclass
class Stand:
    ep: Endpoints
    clock: StandInClock
    reporter: MemoryReporter
    rt: Any
    host: SimHost


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stand]:
    estate = _estate(tmp_path_factory.mktemp("asr-drill") / "estate.yaml")
    args = ("--clock-start", "2026-11-27T04:00:00Z", "--clock-rate", "0")
    args += ("--retry-after-scale", "0", "--operation-seconds", "5")
    with running_emulator(estate, *args, timeout=30) as ep, patched_environ(ep.environment()):
        admin = httpx.Client(
            base_url=ep.admin, verify=ssl.create_default_context(cafile=ep.ca_bundle), timeout=30
        )
        clock = StandInClock(admin)
        reporter = MemoryReporter()
        settings = stand_in_settings(
            ep,
            SUB,
            SITE_RECOVERY_DRILLS="true",
            SITE_RECOVERY_CLEANUP_ATTEMPTS=str(ATTEMPTS),
        )
        queues = SimQueues(clock)  # type: ignore[arg-type]
        rt = build_runtime(
            settings, clock=clock, reporter=reporter, queues=queues, policies=POLICIES
        )
        yield Stand(ep, clock, reporter, rt, SimHost(rt, queues))
        admin.close()


def _rows(reporter: MemoryReporter, operation: str) -> dict[str, Outcome]:
    """The final row of each drill (by plan name), the planned ones aside."""
    rows: dict[str, Outcome] = {}
    for o in reporter.outcomes:
        if o.operation == operation and o.status != "planned" and o.details.get("recoveryPlan"):
            rows.setdefault(o.details["recoveryPlan"], o)
    return rows


def _tag_writes(stand: Stand) -> list[str]:
    admin = httpx.Client(
        base_url=stand.ep.admin,
        verify=ssl.create_default_context(cafile=stand.ep.ca_bundle),
        timeout=30,
    )
    with admin:
        entries = admin.get("/requests", params={"limit": 1000}).json()["entries"]
    return [
        e["path"].split("/providers/Microsoft.Resources/tags")[0].rsplit("/", 1)[-1]
        for e in entries
        if e["operation"] == "Microsoft.Resources/tags/write"
    ]


def test_plan_test_failovers_pass_or_fail_and_are_always_cleaned_up(stand: Stand) -> None:
    started = {name: start_failover_drill_now(stand.rt, name) for name in ("rp-web", "rp-boot")}
    old = start_failover_drill_now(stand.rt, "rp-old")
    stand.host.drain()
    rows = _rows(stand.reporter, "drill")
    web = rows["rp-web"]
    assert web.status == "succeeded", web.reason
    d = web.details
    assert d["drillId"] == started["rp-web"].drill_id
    assert d["source"] == "site-recovery"
    assert d["cleanupStatus"] == "succeeded"
    assert d["failoverJobState"] == "Succeeded"
    assert [vm["validation"] for vm in d["vms"]] == ["passed", "passed"]
    assert [vm["testVmId"] for vm in d["vms"]] == [
        f"{TARGET}/virtualMachines/vm-db-01-test",
        f"{TARGET}/virtualMachines/vm-web-01-test",
    ]
    groups = d["groupRtoSeconds"]
    assert len(groups) == 2
    assert 0 < groups[0] < groups[1] == web.rto_seconds  # boot groups in order
    assert web.rto_seconds <= d["rtoTargetSeconds"]
    assert isinstance(web.rpo_seconds, int)
    # Each test VM was tagged as the drill's (the Tags API), in a group that is no drill group.
    assert "rg-app-asr" not in stand.rt.settings.drill_groups
    assert {"vm-db-01-test", "vm-web-01-test"} <= set(_tag_writes(stand))
    # The fault: the VM that never boots fails its drill; the cleanup still runs.
    boot = rows["rp-boot"]
    assert boot.status == "failed"
    assert "vm-report-01-test" in (boot.reason or "")
    assert boot.details["cleanupStatus"] == "succeeded"
    assert boot.rto_seconds is None
    for vm in ("vm-db-01-test", "vm-web-01-test", "vm-report-01-test"):
        assert stand.rt.drills.get_resource(f"{TARGET}/virtualMachines/{vm}") is None, vm
    # The plan still waiting for the cleanup of a forgotten test failover is not started again.
    skipped = rows["rp-old"]
    assert skipped.details["drillId"] == old.drill_id
    assert skipped.status == "skipped"
    assert "still waits for the cleanup" in (skipped.reason or "")
    assert skipped.details["failoverJobId"] is None


def test_the_sweeper_cleans_up_the_forgotten_test_failover(stand: Stand) -> None:
    vault = stand.rt.backup.list_vaults(SUB)
    plans = {
        p.name: p
        for v in vault
        for p in stand.rt.site_recovery.list_recovery_plans(v)
        if p.name.startswith("rp-")
    }
    assert waiting_for_cleanup(plans["rp-old"])
    # `lifeboat drill list` reads it from Site Recovery: no drill tagged its test VM.
    [listed] = running_drills(stand.rt)
    assert listed["drillId"] == "(untagged: rp-old)"
    assert listed["step"] == "waiting for cleanup"
    assert listed["resources"] == {"virtualMachines": ["vm-api-01-test"]}
    stand.clock.set(datetime(2026, 11, 27, 5, 0, tzinfo=UTC))
    dispatch.fire(stand.rt, Timer.SWEEPER)
    stand.host.drain()
    swept = _rows(stand.reporter, "sweep")
    assert list(swept) == ["rp-old"]
    row = swept["rp-old"]
    assert row.status == "succeeded", row.reason
    assert row.details["cleanupStatus"] == "succeeded"
    assert row.details["cleanupJobIds"]
    plan = stand.rt.site_recovery.get_recovery_plan(plans["rp-old"].id)
    assert plan is not None
    assert not waiting_for_cleanup(plan)
    test_vm = f"{TARGET}/virtualMachines/vm-api-01-test"
    assert stand.rt.drills.get_resource(test_vm) is None
    assert stand.clock.now() - datetime(2026, 11, 27, 5, 0, tzinfo=UTC) < timedelta(hours=1)


def test_a_cleanup_failing_past_its_attempts_fails_the_drill_alerts_and_is_swept(
    stand: Stand,
) -> None:
    started = {name: start_failover_drill_now(stand.rt, name) for name in ("rp-stuck", "rp-retry")}
    stand.host.drain()
    rows = _rows(stand.reporter, "drill")
    # Failed cleanups are tried again: the last attempt cleans up, the drill passes.
    retry = rows["rp-retry"]
    assert retry.status == "succeeded", retry.reason
    assert retry.details["cleanupStatus"] == "succeeded"
    assert retry.details["cleanupAttempts"] == ATTEMPTS
    assert len(set(retry.details["cleanupJobIds"])) == ATTEMPTS
    assert "TestFailoverCleanupFailed" in retry.details["cleanupError"]
    assert stand.rt.drills.get_resource(f"{TARGET}/virtualMachines/vm-cluster-01-test") is None
    # Failing every attempt: the drill fails naming the test failover it leaves running.
    stuck = rows["rp-stuck"]
    assert stuck.status == "failed"
    assert stuck.resource_id is not None
    assert stuck.details["cleanupStatus"] == "failed"
    assert stuck.details["cleanupAttempts"] == ATTEMPTS
    assert len(set(stuck.details["cleanupJobIds"])) == ATTEMPTS
    assert (stuck.reason or "").startswith(
        f"test failover cleanup of rp-stuck failed {ATTEMPTS} time(s) (TestFailoverCleanupFailed"
    )
    assert "its test VMs are left running; the sweeper tries again after" in (stuck.reason or "")
    test_vm = f"{TARGET}/virtualMachines/vm-db-02-test"
    assert [vm["testVmId"] for vm in stuck.details["vms"]] == [test_vm]
    assert stand.rt.drills.get_resource(test_vm) is not None
    # The drill-failed alert fires for it (and only it) on these drills' rows.
    ids = {s.drill_id for s in started.values()}
    records = [o.to_record() for o in stand.reporter.outcomes if o.details.get("drillId") in ids]
    fired = run_query(DRILL_FAILED.read_text(), records, stand.clock.now())
    assert [(r["Vm"], r["FailedDrills"], r["Drills"]) for r in fired] == [
        (stuck.resource_id.lower(), 1, 1)  # the plan: a site-recovery drill's row is the plan's
    ]
    assert f"{started['rp-stuck'].drill_id}: failed" in str(fired[0]["Drill"])
    assert stuck.resource_id.endswith("/replicationRecoveryPlans/rp-stuck")
    # The sweeper's next pass after the window cleans it up through Site Recovery (the stand-in
    # fails one cleanup more: the sweep tries again).
    stand.clock.set(stand.clock.now() + timedelta(hours=5))
    dispatch.fire(stand.rt, Timer.SWEEPER)
    stand.host.drain()
    swept = _rows(stand.reporter, "sweep")["rp-stuck"]
    assert swept.status == "succeeded", swept.reason
    assert swept.details["cleanupStatus"] == "succeeded"
    assert swept.details["cleanupAttempts"] == 2
    assert stand.rt.drills.get_resource(test_vm) is None
    plans = {
        p.name: p
        for v in stand.rt.backup.list_vaults(SUB)
        for p in stand.rt.site_recovery.list_recovery_plans(v)
    }
    assert not waiting_for_cleanup(plans["rp-stuck"])
