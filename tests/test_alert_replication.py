"""The replication alert (infra/alerts/replication.kql) with duckdb-kql over real rows.

The rows are what verification records (`verify_replication` on port fakes, through the real
dispatch), as the Logs Ingestion stream gets them: the rule must fire per subscription and vault
for unhealthy replication, an RPO over target, a test failover overdue and one left open past the
limit (each condition counted, not only the row's finding), count a row delivered twice once, and
stay quiet for healthy VMs, for a VM whose latest verdict is healthy again, for old rows and for
dry runs. A handful of queries: each costs about a second.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.fakes import FakeSiteRecovery
from tests.test_alerts import as_list, run, unordered
from tests.test_replication import ASR_VAULT, NOW, AsrWorld, plan, replicated

WAITING = {
    "scenario": "TestFailover",
    "scenario_status": "Suspended",
    "scenario_status_description": "WaitingForStopTestFailover",
    "scenario_started": NOW - timedelta(hours=30),
}


def records(*items: Any, plans: Any = ()) -> list[dict[str, Any]]:
    """The `verify-replication` rows one verification run records for these items."""
    world = AsrWorld(FakeSiteRecovery({ASR_VAULT: list(items)}, {ASR_VAULT: list(plans)}))
    world.run()
    return [o.to_record() for o in world.rows("verify-replication")]


def estate() -> list[dict[str, Any]]:
    web = replicated("web", test_failover_state="WaitingForCompletion")  # open 30 h (its plan)
    db = replicated(
        "db",
        replication_health="Critical",
        health_errors=("153039: stuck",),
        last_successful_test_failover=None,  # and never tested: both conditions count
    )
    late = replicated("late", rpo_seconds=40 * 3600)
    plain = replicated("plain", last_successful_test_failover=NOW - timedelta(days=200))
    return records(web, db, late, plain, plans=[plan(web, **WAITING)])


def test_it_fires_per_vault_counting_every_condition_and_a_repeat_once() -> None:
    rows = estate()
    now = NOW + timedelta(hours=1)
    (fired,) = run("replication", rows, now)
    assert fired["Vault"] == ASR_VAULT.lower()
    assert fired["VmsAtRisk"] == 4
    assert fired["Unhealthy"] == 1
    assert fired["RpoBreached"] == 1
    assert fired["TestFailoverOverdue"] == 2  # db never, plain 200 days ago
    assert fired["TestFailoverLeftOpen"] == 1
    assert fired["WorstRpoSeconds"] == 40 * 3600
    cases = as_list(fired["Cases"])
    assert any(
        c.startswith("db: replication-unhealthy: replication health is Critical") for c in cases
    )
    assert any(c.startswith("web: test-failover-not-cleaned:") for c in cases)
    twice = [r for record in rows for r in (record, dict(record))]
    assert unordered(run("replication", twice, now)) == unordered([fired])


def test_it_stays_quiet_for_healthy_vms_a_recovered_vm_old_rows_and_dry_runs() -> None:
    healthy = records(replicated("web"), replicated("plain"))
    # db was unhealthy yesterday at 06:00, and is well this morning: its latest verdict counts.
    yesterday = records(replicated("db", replication_health="Critical"))
    for row in yesterday:
        row["TimeGenerated"] = (NOW - timedelta(hours=20)).isoformat().replace("+00:00", "Z")
        row["OutcomeId"] += "-yesterday"
    today = records(replicated("db"))
    assert run("replication", healthy + yesterday + today, NOW + timedelta(hours=1)) == []
    # Unhealthy, but 27 hours ago; or a dry run: quiet.
    unhealthy = estate()
    assert run("replication", unhealthy, NOW + timedelta(hours=27)) == []
    dry = [dict(r, DryRun=True) for r in unhealthy]
    assert run("replication", dry, NOW + timedelta(hours=1)) == []
