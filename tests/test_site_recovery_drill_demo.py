"""`lifeboat demo` turns SITE_RECOVERY_DRILLS on (the `nightly` drill plan): each night, the first
among them, includes a test failover of the demo estate's recovery plan `rp-web` (vm-db-01, then
vm-web-01) in the North Europe drill network (the session's demo run, shared with test_e2e)."""

from __future__ import annotations

import pytest

from cli.demo import QUOTA_READ
from tests.conftest import DemoRun
from tests.test_infra_roles import _actions, _granted_by, _rows

pytestmark = pytest.mark.e2e

PLANS = "Microsoft.RecoveryServices/vaults/replicationRecoveryPlans"


def test_demo_json_carries_a_succeeded_site_recovery_drill_with_rto_per_group(
    demo_run: DemoRun,
) -> None:
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    drills = [d for d in demo_run.document["drills"] if d["source"] == "site-recovery"]
    assert len(drills) == 2, "one a night"
    first = drills[0]
    assert first["status"] == "succeeded", first["reason"]
    assert first["recoveryPlan"] == "rp-web"
    assert first["vmId"].endswith("/replicationRecoveryPlans/rp-web")
    assert isinstance(first["rtoSeconds"], int)
    assert isinstance(first["rpoSeconds"], int)
    assert first["rpoSeconds"] == 180000  # the plan's worst item: vm-db-01, two days behind
    groups = first["groupRtoSeconds"]
    assert len(groups) == 2
    assert all(isinstance(g, int) and 0 < g <= first["rtoSeconds"] for g in groups)
    assert max(groups) == first["rtoSeconds"] <= first["rtoTargetSeconds"]
    assert first["cleanupStatus"] == "succeeded"
    assert first["failoverJobId"]
    assert first["vms"] == [
        {"name": "vm-db-01", "validation": "passed"},
        {"name": "vm-web-01", "validation": "passed"},
    ]
    assert "drill of plan rp-web from site-recovery: succeeded" in demo_run.stderr


def test_the_test_failover_requests_are_the_test_failover_roles_alone(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    apart = demo_run.requests["siteRecoveryTestFailover"]
    assert apart["byOperation"][f"{PLANS}/testFailover/action"] == 2
    assert apart["byOperation"][f"{PLANS}/testFailoverCleanup/action"] == 2
    role = sorted(_actions(_rows("siteRecovery", {"testFailover"})))
    for counters in apart.values():
        for operation in counters:
            # The quota check's read has no row yet (cli/demo.py QUOTA_READ says where it goes).
            assert _granted_by(operation, role) or operation == QUOTA_READ, operation
    # Counted apart, not hidden: none of them is in the app's default counters.
    assert not set(apart["byOperation"]) & set(demo_run.requests["byOperation"])
